/**
 * ci-registry-auth: delivers the zot CI API key from 1Password to one Forgejo
 * runner per stack and proves, by fingerprint, that the runner holds it and
 * that the registry accepts it. This file only wires: config -> stack ->
 * exports (components/outputs.ts). The program is async because the key is
 * read and checked before any resource uses it.
 */
import { loadConfig } from "./components/config";
import { defineStack } from "./components/stack";

export = async () => {
    const stack = await defineStack(loadConfig());
    return {
        runnerKind: stack.runnerKind,
        registryUser: stack.registryUser,
        envVar: stack.envVar,
        keyFingerprint: stack.keyFingerprint,
        keyExpiresAt: stack.keyExpiresAt,
        keyDaysUntilExpiry: stack.keyDaysUntilExpiry,
        keyExpiryWarningDays: stack.keyExpiryWarningDays,
        hasKey: stack.hasKey,
        canPush: stack.canPush,
        registry: stack.registry,
        delivered: stack.delivered,
        ...(stack.runnerKind === "kubernetes" ? { ciKubeconfig: stack.ciKubeconfig } : {}),
    };
};
