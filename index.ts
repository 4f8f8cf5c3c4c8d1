/**
 * ci-registry-auth: delivers the zot CI API key from 1Password to one Forgejo
 * runner per stack and proves, by fingerprint, that the runner holds it.
 * This file only wires: config -> stack -> exports.
 */
import { loadConfig } from "./components/config";
import { defineStack } from "./components/stack";

const stack = defineStack(loadConfig());

export const runnerKind = stack.runnerKind;
export const registryUser = stack.registryUser;
export const envVar = stack.envVar;
export const keyFingerprint = stack.keyFingerprint;
export const keyExpiresAt = stack.keyExpiresAt;
export const keyDaysUntilExpiry = stack.keyDaysUntilExpiry;
export const keyExpiryWarningDays = stack.keyExpiryWarningDays;
export const hasKey = stack.hasKey;
export const canPush = stack.canPush;
export const registry = stack.registry;
export const delivered = stack.delivered;
export const ciKubeconfig = stack.runnerKind === "kubernetes" ? stack.ciKubeconfig : undefined;
