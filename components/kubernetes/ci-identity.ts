/**
 * The identity CI reads indri's cluster as: a ServiceAccount with `get` on
 * exactly the objects the program reads, and a kubeconfig for it. The
 * component {@link CiIdentity} (a child of KubernetesRunner) applies it; the
 * pure builders (rules, the kubeconfig text) are tested directly.
 *
 * Why `get` alone is enough (README, "Trust model"): a preview with nothing
 * to change makes no object request but the program's reads; a preview of
 * a change tries the provider's server-side dry run, and when that is
 * forbidden the provider shows the change from the program's inputs
 * instead (pulumi-kubernetes v4.25.0, `await.Creation`/`Update`: a 403 in
 * preview returns the inputs). No write verb is granted, so no request of
 * this identity can change the cluster, dry run or not.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

import * as core from "@pulumi/kubernetes/core/v1";
import * as rbac from "@pulumi/kubernetes/rbac/v1";
import * as pulumi from "@pulumi/pulumi";
import { parse, stringify } from "yaml";

import type { KubernetesRunnerConfig } from "../settings/config";
import { MANAGED_BY } from "./manifests";

/** What the CI identity may read. */
export interface CiReads {
    namespace: string;
    deployment: string;
    /** The Secret ESO fills (read to confirm its fingerprint). */
    secretName: string;
    clusterSecretStore: string;
    /**
     * The ConfigMap the live Deployment mounts the runner's config.yaml
     * from (kustomize suffixes its name with a content hash: a new name with
     * every change of config.yaml), or undefined when it mounts none.
     */
    configMap: string | undefined;
    /** Our ExternalSecret, named after the key's fingerprint. */
    externalSecret: string;
}

/** One RBAC rule. */
export interface PolicyRule {
    apiGroups: string[];
    resources: string[];
    resourceNames?: string[];
    verbs: string[];
}

/**
 * The namespaced rules: `get` on the runner Deployment, the ConfigMap it
 * mounts its config from, our Secret and our current ExternalSecret, each
 * by name. The ConfigMap's and the ExternalSecret's names change (a new
 * config.yaml, a new key), so the rules follow them on each `up`; until
 * then CI's preview is refused the new object and says so. A rule with no
 * name would grant every object of its kind (RBAC reads an empty
 * `resourceNames` as all): none is written then.
 */
export function namespaceRules(r: CiReads): PolicyRule[] {
    return [
        { apiGroups: ["apps"], resources: ["deployments"], resourceNames: [r.deployment], verbs: ["get"] },
        ...(r.configMap !== undefined
            ? [{ apiGroups: [""], resources: ["configmaps"], resourceNames: [r.configMap], verbs: ["get"] }]
            : []),
        { apiGroups: [""], resources: ["secrets"], resourceNames: [r.secretName], verbs: ["get"] },
        { apiGroups: ["external-secrets.io"], resources: ["externalsecrets"], resourceNames: [r.externalSecret], verbs: ["get"] },
    ];
}

/** The cluster-scoped rule: the ClusterSecretStore (its Ready condition is a precondition). */
export function clusterRules(clusterSecretStore: string): PolicyRule[] {
    return [
        { apiGroups: ["external-secrets.io"], resources: ["clustersecretstores"], resourceNames: [clusterSecretStore], verbs: ["get"] },
    ];
}

/** Labels on the identity's objects. */
export const CI_LABELS = { ...MANAGED_BY, "app.kubernetes.io/component": "ci-read-only" } as const;

/** A kubeconfig's cluster entry as the operator's kubeconfig names it. */
export interface ClusterEntry {
    /** The context's name (kept, so CI's kubeconfig selects the same `runner.context`). */
    context: string;
    /** The cluster's name and its entry, with a CA file inlined as data. */
    name: string;
    cluster: Record<string, unknown>;
}

interface KubeconfigFile {
    "current-context"?: string;
    contexts?: { name?: string; context?: { cluster?: string } }[];
    clusters?: { name?: string; cluster?: Record<string, unknown> }[];
}

/**
 * The cluster the Kubernetes provider talks to, from the kubeconfig it
 * loads (`path`, else $KUBECONFIG's files, else ~/.kube/config) and
 * `context` (else the current one). Undefined with the reason when it
 * cannot be found; never reads or returns credentials.
 */
export function localCluster(path: string | undefined, context: string | undefined, env = process.env): ClusterEntry | { problem: string } {
    const files = path !== undefined ? [path] : (env["KUBECONFIG"] ?? "").split(":").filter((p) => p !== "");
    if (files.length === 0) files.push(join(homedir(), ".kube", "config"));
    const docs: KubeconfigFile[] = [];
    for (const file of files.map((f) => f.replace(/^~(?=\/)/, homedir()))) {
        if (!existsSync(file)) continue;
        try {
            docs.push((parse(readFileSync(file, "utf8")) ?? {}) as KubeconfigFile);
        } catch {
            return { problem: `${file} does not parse as YAML` };
        }
    }
    const name = context ?? docs.map((d) => d["current-context"]).find((c) => c !== undefined && c !== "");
    if (name === undefined) return { problem: `no context is named (runner.context) and ${files.join(":")} has no current-context` };
    const ctx = docs.flatMap((d) => d.contexts ?? []).find((c) => c.name === name);
    const clusterName = ctx?.context?.cluster;
    const entry = docs.flatMap((d) => d.clusters ?? []).find((c) => c.name === clusterName)?.cluster;
    if (clusterName === undefined || entry === undefined) return { problem: `context ${name} or its cluster is not in ${files.join(":")}` };
    const cluster: Record<string, unknown> = { ...entry };
    const caFile = cluster["certificate-authority"];
    if (typeof caFile === "string") {
        try {
            cluster["certificate-authority-data"] = readFileSync(caFile).toString("base64");
        } catch {
            return { problem: `the cluster's certificate-authority ${caFile} cannot be read` };
        }
        delete cluster["certificate-authority"];
    }
    return { context: name, name: clusterName, cluster };
}

/** A kubeconfig that logs in to `cluster` as the ServiceAccount with `token`, in `namespace`. */
export function ciKubeconfig(cluster: ClusterEntry, user: string, namespace: string, token: string): string {
    return stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: cluster.name, cluster: cluster.cluster }],
        users: [{ name: user, user: { token } }],
        contexts: [{ name: cluster.context, context: { cluster: cluster.name, user, namespace } }],
        "current-context": cluster.context,
    });
}

/** Arguments of {@link CiIdentity}. */
export interface CiIdentityArgs {
    runner: KubernetesRunnerConfig;
    /** The names CI must read that only the live cluster and the key tell. */
    reads: pulumi.Input<CiReads>;
    /** Nothing is created before these (the runner's preconditions) are done. */
    after: pulumi.Input<pulumi.Resource[]>;
    /** The cluster's provider. */
    provider: pulumi.ProviderResource;
    /**
     * Where these objects were before this component existed: children of
     * `runner` with the same names (also under each of the runner's former
     * names, the prefix of theirs), so a stack made then keeps them.
     */
    formerly: { parent: pulumi.Resource; runnerName: string; formerRunnerNames: string[] };
}

/**
 * CI's identity in the cluster: a ServiceAccount that may only `get` what
 * the program reads (a Role and a ClusterRole, each by name), its
 * long-lived token (the token controller fills the Secret; the provider
 * waits for it), and a kubeconfig for it made from the cluster entry of the
 * kubeconfig this run uses, so CI talks to the same server with the same
 * context name. Its children are named `<name>-account`, `<name>-role`, … .
 */
export class CiIdentity extends pulumi.ComponentResource {
    /** A kubeconfig for the ServiceAccount (secret), or undefined when the local kubeconfig could not be read. */
    public readonly kubeconfig: pulumi.Output<string | undefined>;

    constructor(name: string, args: CiIdentityArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ci-registry-auth:kubernetes:CiIdentity", name, {}, opts);
        const r = args.runner;
        const { parent, runnerName, formerRunnerNames } = args.formerly;
        // Each child as it was named before, under the runner (whose own former names the engine maps to its old URN).
        const child = (suffix: string, dependsOn: pulumi.Input<pulumi.Input<pulumi.Resource>[]>): pulumi.CustomResourceOptions => {
            const rest = `${name}-${suffix}`.slice(runnerName.length);
            return {
                parent: this,
                provider: args.provider,
                dependsOn,
                aliases: [{ parent }, ...formerRunnerNames.map((former) => ({ name: `${former}${rest}`, parent }))],
            };
        };
        const metadata = { name: r.ciServiceAccount, namespace: r.namespace, labels: { ...CI_LABELS } };
        const account = new core.ServiceAccount(
            `${name}-account`,
            { metadata, automountServiceAccountToken: false },
            child("account", args.after),
        );
        const subjects = [{ kind: "ServiceAccount", name: r.ciServiceAccount, namespace: r.namespace }];
        const rules = pulumi.output(args.reads).apply(namespaceRules);
        const role = new rbac.Role(`${name}-role`, { metadata, rules }, child("role", args.after));
        new rbac.RoleBinding(
            `${name}-role-binding`,
            { metadata, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name }, subjects },
            child("role-binding", args.after),
        );
        // Cluster-scoped names are shared by every namespace: this one carries its namespace.
        const clusterMetadata = { name: `${r.namespace}-${r.ciServiceAccount}`, labels: { ...CI_LABELS } };
        const clusterRole = new rbac.ClusterRole(
            `${name}-cluster-role`,
            { metadata: clusterMetadata, rules: clusterRules(r.clusterSecretStore) },
            child("cluster-role", args.after),
        );
        new rbac.ClusterRoleBinding(
            `${name}-cluster-role-binding`,
            {
                metadata: clusterMetadata,
                roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole.metadata.name },
                subjects,
            },
            child("cluster-role-binding", args.after),
        );
        const token = new core.Secret(
            `${name}-token`,
            {
                metadata: {
                    name: `${r.ciServiceAccount}-token`,
                    namespace: r.namespace,
                    labels: { ...CI_LABELS },
                    annotations: { "kubernetes.io/service-account.name": r.ciServiceAccount },
                },
                type: "kubernetes.io/service-account-token",
            },
            child("token", [account]),
        );
        this.kubeconfig = this.kubeconfigFor(runnerName, r, account, token);
        this.registerOutputs({ kubeconfig: this.kubeconfig });
    }

    /** The kubeconfig from the token, or a warning (once the account is there) saying why there is none. */
    private kubeconfigFor(
        runnerName: string,
        r: KubernetesRunnerConfig,
        account: core.ServiceAccount,
        token: core.Secret,
    ): pulumi.Output<string | undefined> {
        const cluster = localCluster(r.kubeconfig, r.context);
        if ("problem" in cluster) {
            // Said once the account is there (never on a run that stops before it).
            return account.metadata.name.apply(() => {
                void pulumi.log.warn(
                    `${runnerName}: no kubeconfig for CI is made: ${cluster.problem}. The read-only ServiceAccount ${r.namespace}/${r.ciServiceAccount} exists; ` +
                        `make a kubeconfig from its token Secret ${r.ciServiceAccount}-token by hand.`,
                    this,
                );
                return undefined;
            });
        }
        return pulumi.secret(
            token.data.apply((data) => {
                const value = (data as Record<string, string> | undefined)?.["token"];
                return value === undefined
                    ? undefined
                    : ciKubeconfig(cluster, r.ciServiceAccount, r.namespace, Buffer.from(value, "base64").toString("utf8"));
            }),
        );
    }
}
