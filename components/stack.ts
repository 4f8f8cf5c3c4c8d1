import * as pulumi from "@pulumi/pulumi";

import type { StackConfig } from "./config";
import { KubernetesRunner } from "./kubernetes-runner";
import { OnePasswordKey } from "./onepassword-key";
import { probeRegistry, type ProbeResult } from "./registry-probe";
import { SshRunner } from "./ssh-runner";

/** What a stack exports. No value here is, or contains, the key. */
export interface StackOutputs {
    runnerKind: "kubernetes" | "ssh";
    registryUser: string;
    envVar: string;
    /** Fingerprint of the key as 1Password holds it now. */
    keyFingerprint: pulumi.Output<string>;
    keyExpiresAt: pulumi.Output<string | undefined>;
    keyDaysUntilExpiry: pulumi.Output<number | undefined>;
    /** Days before expiry from which `pulumi up` warns (`expiryWarningDays`). */
    keyExpiryWarningDays: number;
    /** True only when every delivered fingerprint equals keyFingerprint, the consumer is wired and its jobs see the key. */
    hasKey: pulumi.Output<boolean>;
    /** Per-runner facts behind hasKey. */
    delivered: Record<string, pulumi.Output<unknown>>;
    /** What the registry answered to an upload with the key and one without (README, "Outputs"). */
    registry: pulumi.Output<ProbeResult>;
    /** hasKey, and the registry accepts the key: every job on the runner can push. */
    canPush: pulumi.Output<boolean>;
    /** kubernetes: the kubeconfig of CI's read-only identity, a secret (README, "Trust model"); ssh: undefined. */
    ciKubeconfig: pulumi.Output<string | undefined>;
}

/** Builds the one key and the one runner of a stack. */
export function defineStack(config: StackConfig): StackOutputs {
    for (const warning of config.warnings) {
        void pulumi.log.warn(warning);
    }
    const key = new OnePasswordKey("zot-ci-key", { connectUrl: config.connect.url, connectToken: config.connect.token, ...config.key });
    // The probe starts as soon as the key is read, beside the runner's reads.
    // It runs in an apply because it needs the key, and on every preview and
    // up; what it opens at the registry it cancels, and nothing stays.
    const registry = pulumi.unsecret(key.value.apply((value) => probeRegistry(config.registry, config.registryUser, value)));
    registry.apply((r) => {
        if (r.verdict !== "ok") {
            void pulumi.log.warn(`registry: ${r.verdict}. The delivery went ahead; jobs cannot push until this is fixed.`);
        }
    });
    const common = {
        runnerKind: config.runner.kind,
        registryUser: config.registryUser,
        envVar: config.envVar,
        keyFingerprint: key.fingerprint,
        keyExpiresAt: key.expiresAt,
        keyDaysUntilExpiry: key.daysUntilExpiry,
        keyExpiryWarningDays: config.key.expiryWarningDays,
        registry,
    };
    const canPush = (hasKey: pulumi.Output<boolean>): pulumi.Output<boolean> =>
        pulumi.all([hasKey, registry]).apply(([has, r]) => has && r.acceptsKey);
    if (config.runner.kind === "kubernetes") {
        const runner = new KubernetesRunner("indri", {
            runner: config.runner,
            item: config.key.item,
            field: config.key.field,
            envVar: config.envVar,
            keyFingerprint: key.fingerprint,
        });
        return {
            ...common,
            hasKey: runner.hasKey,
            canPush: canPush(runner.hasKey),
            delivered: {
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
            },
            ciKubeconfig: runner.ciKubeconfig,
        };
    }
    const runner = new SshRunner("ringtail", {
        runner: config.runner,
        envVar: config.envVar,
        key: key.value,
        keyFingerprint: key.fingerprint,
    });
    return {
        ...common,
        hasKey: runner.hasKey,
        canPush: canPush(runner.hasKey),
        delivered: {
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
        },
        ciKubeconfig: pulumi.output(undefined),
    };
}
