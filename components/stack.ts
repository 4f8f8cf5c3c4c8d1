import * as pulumi from "@pulumi/pulumi";

import type { KubernetesRunnerConfig, SshRunnerConfig, StackConfig } from "./settings/config";
import { OnePasswordKey, readKey, type KeyRead } from "./onepassword/onepassword-key";
import type { Exported, KubernetesDelivered, KubernetesOutputs, SshDelivered, SshOutputs } from "./outputs";
import { probeRegistry } from "./registry/probe";
import { checkFormerToken, type FormerTokenHolder } from "./former-token";

/** What a stack exports (components/outputs.ts), one shape per runner kind. */
export type StackOutputs = Exported<KubernetesOutputs> | Exported<SshOutputs>;

/**
 * Reads the key (before anything uses it: a bad key stops the run with one
 * clean error) and builds the one runner of the stack.
 */
export async function defineStack(config: StackConfig): Promise<StackOutputs> {
    for (const warning of config.warnings) {
        void pulumi.log.warn(warning);
    }
    const reading = readKey({ connectUrl: config.connect.url, connectToken: config.connect.token, ...config.key });
    // Beside the key's read: what this stack's earlier checkpoints may hold.
    const formerTokenHolder = pulumi.output(checkFormerToken());
    return config.runner.kind === "kubernetes"
        ? kubernetesStack(config, config.runner, reading, formerTokenHolder)
        : sshStack(config, config.runner, reading, formerTokenHolder);
}

// Resources are named after the stack (a stack serves one runner). Up to
// 0.x they were named after the hosts whatever the stack: an existing
// stack keeps its resources through the alias (its children follow by
// their name prefix).
const formerly = (host: string): pulumi.ComponentResourceOptions => (pulumi.getStack() === host ? {} : { aliases: [{ name: host }] });

/** The key as a component, the registry probe and the outputs every runner kind shares. */
function keyOutputs(config: StackConfig, read: KeyRead, formerTokenHolder: pulumi.Output<FormerTokenHolder>) {
    const key = new OnePasswordKey("zot-ci-key", read);
    // The probe starts as soon as the key is read, beside the runner's reads.
    // It runs in an apply because it needs the key, and on every preview and
    // up; what it opens at the registry it cancels, and nothing stays.
    const registry = pulumi.unsecret(key.value.apply((value) => probeRegistry(config.registry, config.registryUser, value, read.keyId)));
    registry.apply((r) => {
        if (r.verdict !== "ok") {
            void pulumi.log.warn(`registry: ${r.verdict}. The delivery went ahead; jobs cannot push until this is fixed.`);
        }
    });
    const common = {
        registryUser: config.registryUser,
        envVar: config.envVar,
        keyFingerprint: key.fingerprint,
        keyExpiresAt: key.expiresAt,
        keyExpiryField: config.key.expiryField,
        keyDaysUntilExpiry: key.daysUntilExpiry,
        keyExpiryWarningDays: config.key.expiryWarningDays,
        registry,
        formerTokenHolder,
    };
    const canPush = (hasKey: pulumi.Output<boolean>): pulumi.Output<boolean> =>
        pulumi.all([hasKey, registry]).apply(([has, r]) => has && r.acceptsKey);
    return { key, common, canPush };
}

/**
 * indri's runner needs only the key's fingerprint: its reads of the cluster
 * start while 1Password is still read, and it creates nothing until the
 * key is read and checked (the fingerprint gates its creations).
 */
async function kubernetesStack(
    config: StackConfig,
    runnerConfig: KubernetesRunnerConfig,
    reading: Promise<KeyRead>,
    formerTokenHolder: pulumi.Output<FormerTokenHolder>,
): Promise<StackOutputs> {
    // Loaded here, not at the top: a stack loads only its own runner kind (ringtail never loads the Kubernetes SDK).
    const { KubernetesRunner } = await import("./kubernetes/runner");
    const runner = new KubernetesRunner(
        pulumi.getStack(),
        {
            runner: runnerConfig,
            item: config.key.item,
            field: config.key.field,
            envVar: config.envVar,
            keyFingerprint: pulumi.output(reading.then((read) => read.fingerprint)),
        },
        formerly("indri"),
    );
    const { common, canPush } = keyOutputs(config, await reading, formerTokenHolder);
    const delivered: pulumi.Output<KubernetesDelivered> = pulumi.output({
        secretName: runner.secretName,
        externalSecretName: runner.externalSecretName,
        secretFingerprint: runner.secretFingerprint,
        templateFingerprint: runner.templateFingerprint,
        envWired: runner.envWired,
        replicas: runner.replicas,
        readyReplicas: runner.readyReplicas,
        updatedReplicas: runner.updatedReplicas,
        oldReplicas: runner.oldReplicas,
        rolledOut: runner.rolledOut,
        jobsSeeKey: runner.jobsSeeKey,
        jobRoute: runner.jobRoute,
    });
    return {
        ...common,
        runnerKind: "kubernetes",
        hasKey: runner.hasKey,
        canPush: canPush(runner.hasKey),
        delivered,
        ciKubeconfig: runner.ciKubeconfig,
    };
}

/** ringtail's runner is given the key itself, once it is read and checked. */
async function sshStack(
    config: StackConfig,
    runnerConfig: SshRunnerConfig,
    reading: Promise<KeyRead>,
    formerTokenHolder: pulumi.Output<FormerTokenHolder>,
): Promise<StackOutputs> {
    const { SshRunner } = await import("./ssh/runner");
    const { key, common, canPush } = keyOutputs(config, await reading, formerTokenHolder);
    const runner = new SshRunner(
        pulumi.getStack(),
        { runner: runnerConfig, envVar: config.envVar, key: key.value, keyFingerprint: key.fingerprint },
        formerly("ringtail"),
    );
    const delivered: pulumi.Output<SshDelivered> = pulumi.output({
        changed: runner.changed,
        fileFingerprint: runner.fileFingerprint,
        fileOwner: runner.fileOwner,
        fileMode: runner.fileMode,
        unitActive: runner.unitActive,
        unitReadsFile: runner.unitReadsFile,
        processFingerprint: runner.processFingerprint,
        jobsSeeKey: runner.jobsSeeKey,
        jobRoute: runner.jobRoute,
        checkKey: runner.checkKey,
    });
    return { ...common, runnerKind: "ssh", hasKey: runner.hasKey, canPush: canPush(runner.hasKey), delivered };
}
