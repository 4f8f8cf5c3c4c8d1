// The API groups this component uses, not the SDK's index, which loads
// every group and Helm eagerly (about 20 ms on every run; docs/performance.md).
import * as apiextensions from "@pulumi/kubernetes/apiextensions";
import * as apps from "@pulumi/kubernetes/apps/v1";
import * as core from "@pulumi/kubernetes/core/v1";
import { Provider } from "@pulumi/kubernetes/provider";
import * as pulumi from "@pulumi/pulumi";

import { CiIdentity, type CiReads } from "./ci-identity";
import type { KubernetesRunnerConfig } from "../settings/config";
import { ProgramError } from "../errors";
import {
    FINGERPRINT_ANNOTATION,
    deploymentPatchManifest,
    externalSecretManifest,
    secretObjectName,
    targetSecretManifest,
} from "./manifests";
import { containerNames, deploymentFacts, runnerConfigSource, type DeploymentFacts, type RunnerConfigSource } from "./live-deployment";
import { judgeJobs, parseRunnerConfig, type JobsVerdict, type RunnerConfigRead } from "../runner-config";

/** The names a resource had before, from its `aliases: [{ name }]` (components/stack.ts, `formerly`). */
function formerNames(opts: pulumi.ComponentResourceOptions | undefined): string[] {
    return (opts?.aliases ?? []).flatMap((alias) => {
        const name = typeof alias === "object" && "name" in alias ? alias.name : undefined;
        return typeof name === "string" ? [name] : [];
    });
}

/** Arguments of {@link KubernetesRunner}. */
export interface KubernetesRunnerArgs {
    /** Where and what to patch; see {@link KubernetesRunnerConfig} for defaults. */
    runner: KubernetesRunnerConfig;
    /** 1Password item title that ESO reads. */
    item: string;
    /** 1Password field label that ESO reads. */
    field: string;
    /** Environment variable (and Secret key) the runner container gets. */
    envVar: string;
    /**
     * Fingerprint of the key as read from 1Password by this program. It may
     * still be being read: nothing is created until it resolves, and a failed
     * read leaves the cluster untouched.
     */
    keyFingerprint: pulumi.Input<string>;
}

/**
 * indri: a Forgejo runner Deployment in Kubernetes. External Secrets Operator
 * copies the key from 1Password into a Secret (the program never writes the
 * key to the cluster itself); a server-side-apply patch with its own field
 * manager adds one env entry to the runner container and one pod-template
 * annotation, which rolls the pods when the key changes.
 *
 * Before anything is created it reads the Deployment (it must exist and have
 * the container) and the ClusterSecretStore (it must exist and be Ready),
 * and waits for the key's fingerprint: these reads run while 1Password is
 * still being read.
 */
export class KubernetesRunner extends pulumi.ComponentResource {
    /** Name of the Secret the runner reads (stable across rotations). */
    public readonly secretName: pulumi.Output<string>;
    /** Name of the ExternalSecret that synced the current key (changes with the key). */
    public readonly externalSecretName: pulumi.Output<string>;
    /** Fingerprint stamped on the Secret by ESO from the value it read, or "none". */
    public readonly secretFingerprint: pulumi.Output<string>;
    /** Fingerprint annotation on the Deployment's pod template, or "none". */
    public readonly templateFingerprint: pulumi.Output<string>;
    /** The runner container takes the variable from that Secret. */
    public readonly envWired: pulumi.Output<boolean>;
    public readonly replicas: pulumi.Output<number>;
    public readonly readyReplicas: pulumi.Output<number>;
    public readonly updatedReplicas: pulumi.Output<number>;
    /** Replicas of older templates still being scaled down when the patch returned. */
    public readonly oldReplicas: pulumi.Output<number>;
    /** The wanted replicas run the current template and are ready (see DeploymentFacts.rolledOut). */
    public readonly rolledOut: pulumi.Output<boolean>;
    /** Job containers get the variable: the runner's config.yaml forwards it (`container.options: -e NAME`). */
    public readonly jobsSeeKey: pulumi.Output<boolean>;
    /** How jobs get the variable, or why they don't: settings and names, never values. */
    public readonly jobRoute: pulumi.Output<string>;
    /** Secret and template carry the key's fingerprint, the env is wired, the rollout finished and jobs see it. */
    public readonly hasKey: pulumi.Output<boolean>;
    /** A kubeconfig for CI's read-only ServiceAccount (secret), or undefined when the local kubeconfig could not be read. */
    public readonly ciKubeconfig: pulumi.Output<string | undefined>;

    constructor(name: string, args: KubernetesRunnerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ci-registry-auth:kubernetes:Runner", name, {}, opts);
        const r = args.runner;
        const child = { parent: this, provider: this.clusterProvider(name, r) };

        const existing = apps.Deployment.get(`${name}-deployment-before`, `${r.namespace}/${r.deployment}`, child);
        const checked = this.checkPreconditions(name, r, args.keyFingerprint, existing, child);
        // Where the runner's config.yaml comes from, as the live Deployment says: read by the job route and named in CI's Role.
        const configSource = existing.spec.apply((spec) => runnerConfigSource({ spec }, r.container));
        const jobs = this.readJobRoute(name, configSource, args, child);
        this.jobsSeeKey = jobs.jobsSeeKey;
        this.jobRoute = jobs.jobRoute;

        const secret = this.syncSecret(name, args, checked, child);
        this.secretName = secret.secretName;
        this.externalSecretName = secret.externalSecretName;
        this.secretFingerprint = secret.fingerprint;

        const facts = this.patchDeployment(name, args, secret, child);
        this.templateFingerprint = facts.templateFingerprint;
        this.envWired = facts.envWired;
        this.replicas = facts.replicas;
        this.readyReplicas = facts.readyReplicas;
        this.updatedReplicas = facts.updatedReplicas;
        this.oldReplicas = facts.oldReplicas;
        this.rolledOut = facts.rolledOut;
        this.hasKey = pulumi
            .all([args.keyFingerprint, this.secretFingerprint, facts, this.jobsSeeKey])
            .apply(
                ([fp, secretFp, f, jobsSeeKey]) =>
                    secretFp === fp && f.templateFingerprint === fp && f.envWired && f.rolledOut && jobsSeeKey,
            );

        const reads = pulumi.all([configSource, this.externalSecretName]).apply(([source, externalSecret]): CiReads => ({
            namespace: r.namespace,
            deployment: r.deployment,
            secretName: r.secretName,
            clusterSecretStore: r.clusterSecretStore,
            configMap: source.kind === "configMap" ? source.name : undefined,
            externalSecret,
        }));
        const identity = new CiIdentity(
            `${name}-ci`,
            {
                runner: r,
                reads,
                after: checked,
                provider: child.provider,
                formerly: { parent: this, runnerName: name, formerRunnerNames: formerNames(opts) },
            },
            { parent: this },
        );
        this.ciKubeconfig = identity.kubeconfig;

        this.registerOutputs({
            secretName: this.secretName,
            externalSecretName: this.externalSecretName,
            secretFingerprint: this.secretFingerprint,
            templateFingerprint: this.templateFingerprint,
            envWired: this.envWired,
            readyReplicas: this.readyReplicas,
            rolledOut: this.rolledOut,
            jobsSeeKey: this.jobsSeeKey,
            jobRoute: this.jobRoute,
            hasKey: this.hasKey,
        });
    }

    /** The Kubernetes provider for the configured kubeconfig and context, applying server-side. */
    private clusterProvider(name: string, r: KubernetesRunnerConfig): Provider {
        return new Provider(
            `${name}-cluster`,
            {
                ...(r.context !== undefined ? { context: r.context } : {}),
                ...(r.kubeconfig !== undefined ? { kubeconfig: r.kubeconfig } : {}),
                enableServerSideApply: true,
            },
            { parent: this },
        );
    }

    /**
     * Reads, before anything is created, that the Deployment has the runner
     * container and that the ClusterSecretStore is Ready, and waits for the
     * key to be read and checked. The result is an empty list to use as
     * `dependsOn`: what must wait for the checks waits for it. A failed check
     * is a ProgramError: pulumi prints its message alone
     * (components/errors.ts).
     */
    private checkPreconditions(
        name: string,
        r: KubernetesRunnerConfig,
        keyFingerprint: pulumi.Input<string>,
        existing: apps.Deployment,
        child: pulumi.CustomResourceOptions,
    ): pulumi.Output<pulumi.Resource[]> {
        const container = existing.spec.apply((spec) => {
            const names = containerNames({ spec });
            if (!names.includes(r.container)) {
                throw new ProgramError(
                    `Deployment ${r.namespace}/${r.deployment} has no container "${r.container}" (it has: ${names.join(", ") || "none"}). ` +
                        "Fix: pulumi config set --path runner.container <name>",
                );
            }
        });
        const store = new apiextensions.CustomResource(
            `${name}-store`,
            { apiVersion: "external-secrets.io/v1", kind: "ClusterSecretStore", spec: undefined, status: undefined },
            { ...child, id: r.clusterSecretStore },
        );
        // A read CustomResource exposes the fields named in its args as outputs.
        const storeStatus = (store as unknown as { status: pulumi.Output<StoreStatus | undefined> }).status;
        const storeReady = storeStatus.apply((status) => {
            const ready = status?.conditions?.find((c) => c.type === "Ready");
            if (ready?.status !== "True") {
                throw new ProgramError(
                    `ClusterSecretStore ${r.clusterSecretStore} is not Ready (${ready?.reason ?? "no status"}: ${ready?.message ?? "ESO has not validated it"}). ` +
                        "Fix: check the store's 1Password Connect host and token secret (kubectl describe clustersecretstore), or set runner.clusterSecretStore.",
                );
            }
        });
        return pulumi.all([container, storeReady, keyFingerprint]).apply((): pulumi.Resource[] => []);
    }

    /**
     * The Secret the runner reads, made empty under a stable name once the
     * preconditions passed, and an ExternalSecret named after the key's
     * fingerprint that has ESO merge the key into it (the program never
     * writes the key to the cluster). Then the Secret as ESO left it, read
     * once ESO reports Ready: its fingerprint annotation is ESO's own.
     */
    private syncSecret(
        name: string,
        args: KubernetesRunnerArgs,
        checked: pulumi.Output<pulumi.Resource[]>,
        child: pulumi.CustomResourceOptions,
    ): SyncedSecret {
        const r = args.runner;
        const target = targetSecretManifest(r.secretName, r.namespace, r.fieldManager);
        const targetSecret = new core.Secret(
            `${name}-secret`,
            { metadata: target.metadata, type: target.type },
            { ...child, dependsOn: checked },
        );
        const secretName = targetSecret.metadata.name;
        const externalSecretName = pulumi.output(args.keyFingerprint).apply((fp) => secretObjectName(r.secretName, fp));
        const manifest = pulumi.all([externalSecretName, args.keyFingerprint, secretName]).apply(([esName, keyFingerprint, targetName]) =>
            externalSecretManifest({
                name: esName,
                targetSecret: targetName,
                namespace: r.namespace,
                clusterSecretStore: r.clusterSecretStore,
                item: args.item,
                field: args.field,
                secretKey: args.envVar,
                keyFingerprint,
                syncTimeoutSeconds: r.syncTimeoutSeconds,
                fieldManager: r.fieldManager,
            }),
        );
        const externalSecret = new apiextensions.CustomResource(
            `${name}-external-secret`,
            {
                apiVersion: "external-secrets.io/v1",
                kind: "ExternalSecret",
                metadata: manifest.metadata,
                spec: manifest.spec,
            },
            // Create the new one (and wait for its sync) before deleting the old.
            { ...child, deleteBeforeReplace: false, dependsOn: [targetSecret] },
        );
        // Its id depends on the ExternalSecret's, so a preview that would
        // create one does not read it.
        const synced = core.Secret.get(
            `${name}-synced-secret`,
            pulumi.all([externalSecret.id, secretName]).apply(([, n]) => `${r.namespace}/${n}`),
            { ...child, dependsOn: [externalSecret] },
        );
        const fingerprint = synced.metadata.apply(
            // Typed as always present, but a Secret without annotations has none.
            (m) => (m.annotations as Record<string, string> | undefined)?.[FINGERPRINT_ANNOTATION] ?? "none",
        );
        return { secretName, externalSecretName, fingerprint, synced };
    }

    /**
     * The server-side-apply patch (our env entry and the template's
     * fingerprint annotation, which rolls the pods), applied once ESO
     * confirmed the Secret holds the key; then the Deployment as it is now,
     * read after the patch on every run (a read, not a change): the outputs
     * report the cluster, not our last write, so a sync that replaced the
     * whole object shows as hasKey false.
     */
    private patchDeployment(
        name: string,
        args: KubernetesRunnerArgs,
        secret: SyncedSecret,
        child: pulumi.CustomResourceOptions,
    ): pulumi.Output<DeploymentFacts> {
        const r = args.runner;
        const patchManifest = pulumi.all([secret.secretName, args.keyFingerprint]).apply(([secretName, keyFingerprint]) =>
            deploymentPatchManifest({
                deployment: r.deployment,
                namespace: r.namespace,
                container: r.container,
                envVar: args.envVar,
                secretName,
                keyFingerprint,
                fieldManager: r.fieldManager,
                rolloutTimeoutSeconds: r.rolloutTimeoutSeconds,
            }),
        );
        const patch = new apps.DeploymentPatch(
            `${name}-deployment-patch`,
            { metadata: patchManifest.metadata, spec: patchManifest.spec },
            {
                ...child,
                dependsOn: [secret.synced],
                // The env entry never changes (stable Secret name). The provider
                // diffs patches against the live list by index, where our entry
                // sits after Argo CD's, so without this every run would show a
                // (no-op) update. The annotation still rolls the pods.
                ignoreChanges: ["spec.template.spec.containers"],
                // A replace (`pulumi up --replace`, the repair after a sync
                // replaced the whole Deployment) must give our fields back
                // before applying them again: the other order would remove
                // what it had just applied.
                deleteBeforeReplace: true,
            },
        );
        const live = apps.Deployment.get(`${name}-deployment-after`, `${r.namespace}/${r.deployment}`, {
            ...child,
            dependsOn: [patch],
        });
        return pulumi
            .all([live.metadata, live.spec, live.status, secret.secretName])
            .apply(([metadata, spec, status, secretName]) =>
                deploymentFacts({ metadata, spec, status }, r.container, args.envVar, secretName),
            );
    }

    /**
     * Reads the runner's own config.yaml, from the ConfigMap the live
     * Deployment mounts at the daemon's --config path, and judges whether
     * job containers get the variable. Warns once with the fix when not.
     */
    private readJobRoute(
        name: string,
        configSource: pulumi.Output<RunnerConfigSource>,
        args: KubernetesRunnerArgs,
        child: pulumi.CustomResourceOptions,
    ): pulumi.Output<JobsVerdict> {
        const r = args.runner;
        const addConfig =
            `in a config.yaml that the runner container "${r.container}" reads (forgejo-runner daemon --config <path> ` +
            "on a ConfigMap volume)";
        const config: pulumi.Output<RunnerConfigRead> = configSource.apply((source): pulumi.Output<RunnerConfigRead> => {
            if (source.kind !== "configMap") {
                return pulumi.output<RunnerConfigRead>(source.kind === "defaults" ? source : { kind: "problem", problem: source.problem });
            }
            const origin = {
                where: `ConfigMap ${r.namespace}/${source.name} (key ${source.key})`,
                howToEdit: "in Git, for Argo CD; the runner reads it when it starts",
            };
            // The ConfigMap's name is known only from the live Deployment
            // (kustomize suffixes it with a hash), so this read is declared
            // once that is read: a read, with nothing else depending on it.
            // Its data may hold secrets of its own (a key wrongly put in
            // runner.envs): kept encrypted in state, also the copy the
            // provider keeps of it as the read's inputs (`__inputs`).
            const configMap = core.ConfigMap.get(`${name}-runner-config`, `${r.namespace}/${source.name}`, {
                ...child,
                // `metadata` too: a ConfigMap applied client-side (kubectl apply,
                // Argo CD's default) carries all of its data again in its
                // last-applied-configuration annotation.
                additionalSecretOutputs: ["data", "metadata", "__inputs"],
            });
            return pulumi.unsecret(
                configMap.data.apply((data): RunnerConfigRead => {
                    const text = (data as Record<string, string> | undefined)?.[source.key];
                    if (text === undefined) {
                        return { kind: "problem", origin, problem: "does not exist" };
                    }
                    const parsed = parseRunnerConfig(text);
                    return "config" in parsed
                        ? { kind: "file", origin, config: parsed.config }
                        : { kind: "problem", origin, problem: parsed.problem };
                }),
            );
        });
        const verdict = config.apply((c) =>
            judgeJobs({
                envVar: args.envVar,
                config: c,
                labels: { kind: "assumed", scheme: "docker", why: "the docker executor (dind sidecar)" },
                addConfig,
            }),
        );
        verdict.apply((v) => {
            if (v.fix !== undefined) {
                void pulumi.log.warn(
                    `${name}: jobs on ${r.namespace}/${r.deployment} do not see ${args.envVar}: ${v.jobRoute}. Fix: ${v.fix}.`,
                    this,
                );
            }
        });
        return verdict;
    }
}

/** The Secret ESO fills, as {@link KubernetesRunner.syncSecret} leaves it. */
interface SyncedSecret {
    secretName: pulumi.Output<string>;
    externalSecretName: pulumi.Output<string>;
    /** ESO's fingerprint annotation on the Secret, or "none". */
    fingerprint: pulumi.Output<string>;
    /** The read of the synced Secret: the patch waits for it. */
    synced: core.Secret;
}

interface StoreStatus {
    conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
}
