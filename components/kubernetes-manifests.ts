/**
 * Pure builders of the Kubernetes objects the indri runner applies: the
 * ExternalSecret and the server-side-apply patch of the runner Deployment.
 * No Pulumi here: they take plain values and are tested directly.
 */
import { FINGERPRINT_PREFIX } from "./fingerprint";
import { shellSplit } from "./runner-config";

/** Annotation carrying the key's fingerprint (ExternalSecret, Secret, pod template). */
export const FINGERPRINT_ANNOTATION = "ci-registry-auth.eblu.me/key-fingerprint";
/** Label on what this program creates. */
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "ci-registry-auth" } as const;

/** Hex digits of the fingerprint used in object names. */
const NAME_SUFFIX_DIGITS = 10;

/**
 * Name of the ExternalSecret for one key: the configured base name and the
 * fingerprint's first hex digits. A rotation therefore creates a new
 * ExternalSecret, which ESO syncs at once and whose readiness is never
 * stale; the old one is deleted afterwards.
 */
export function secretObjectName(base: string, keyFingerprint: string): string {
    if (!keyFingerprint.startsWith(FINGERPRINT_PREFIX)) {
        throw new Error(`not a fingerprint: ${keyFingerprint}`);
    }
    const suffix = keyFingerprint.slice(FINGERPRINT_PREFIX.length, FINGERPRINT_PREFIX.length + NAME_SUFFIX_DIGITS);
    return `${base}-${suffix}`;
}

/**
 * Annotations that make the Kubernetes provider apply an object with our
 * field manager instead of a random one chosen per create: a create that a
 * killed `pulumi up` left half-done (the object made, the state not written)
 * is then applied again by the same manager on the next `up`, where a new
 * random manager would hit a server-side-apply field conflict.
 */
const fieldManagerAnnotation = (fieldManager: string): Record<string, string> => ({ "pulumi.com/patchFieldManager": fieldManager });

/**
 * Our objects are deleted in the background. Neither owns anything (ESO
 * merges into our Secret without an owner reference), and the provider's
 * default, a foreground delete, waits for the garbage collector to watch
 * the kind: on a cluster whose ExternalSecret CRD is new, the old
 * ExternalSecret's delete at the end of a rotation took 14 to 27 s in the
 * sandbox, against 0.06 s in the background.
 */
const deleteInBackground: Record<string, string> = { "pulumi.com/deletionPropagationPolicy": "background" };

/**
 * The Secret the runner reads, made (empty) by this program under a stable
 * name so the Deployment's env entry never changes; every ExternalSecret
 * merges the key into it.
 */
export function targetSecretManifest(
    name: string,
    namespace: string,
    fieldManager: string,
): {
    metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
    type: string;
} {
    return {
        metadata: {
            name,
            namespace,
            labels: { ...MANAGED_BY },
            annotations: { ...fieldManagerAnnotation(fieldManager), ...deleteInBackground },
        },
        type: "Opaque",
    };
}

/** Inputs of {@link externalSecretManifest}. */
export interface ExternalSecretInput {
    /** The ExternalSecret's own (fingerprint-named) name. */
    name: string;
    /** The stable Secret it merges the key into. */
    targetSecret: string;
    namespace: string;
    clusterSecretStore: string;
    /** 1Password item title (ESO's remoteRef.key). */
    item: string;
    /** 1Password field label (ESO's remoteRef.property). */
    field: string;
    /** Key in the Secret, which is also the environment variable name. */
    secretKey: string;
    keyFingerprint: string;
    syncTimeoutSeconds: number;
    /** Server-side-apply field manager (see fieldManagerAnnotation). */
    fieldManager: string;
}

/**
 * The ExternalSecret. ESO merges the key into the stable Secret; a template
 * annotation stamps the fingerprint of what ESO actually read onto it, so the
 * program can confirm ESO delivered the same key it read itself. Pulumi waits
 * (bounded) for the Ready condition, which on a freshly named object cannot
 * be left over from an earlier sync.
 */
export function externalSecretManifest(input: ExternalSecretInput): {
    apiVersion: string;
    kind: string;
    metadata: Record<string, unknown>;
    spec: Record<string, unknown>;
} {
    return {
        apiVersion: "external-secrets.io/v1",
        kind: "ExternalSecret",
        metadata: {
            name: input.name,
            namespace: input.namespace,
            labels: { ...MANAGED_BY },
            annotations: {
                ...fieldManagerAnnotation(input.fieldManager),
                ...deleteInBackground,
                [FINGERPRINT_ANNOTATION]: input.keyFingerprint,
                "pulumi.com/waitFor": "condition=Ready",
                "pulumi.com/timeoutSeconds": String(input.syncTimeoutSeconds),
            },
        },
        spec: {
            // The object is named after the key; Pulumi replaces it on rotation,
            // so ESO never needs to poll 1Password for this one.
            refreshPolicy: "CreatedOnce",
            secretStoreRef: { kind: "ClusterSecretStore", name: input.clusterSecretStore },
            target: {
                name: input.targetSecret,
                // The Secret is this program's (stable name); ESO only fills it.
                creationPolicy: "Merge",
                deletionPolicy: "Retain",
                template: {
                    engineVersion: "v2",
                    metadata: {
                        labels: { ...MANAGED_BY },
                        annotations: {
                            [FINGERPRINT_ANNOTATION]: `{{ .${input.secretKey} | sha256sum | trunc 16 | printf "${FINGERPRINT_PREFIX}%s" }}`,
                        },
                    },
                },
            },
            data: [{ secretKey: input.secretKey, remoteRef: { key: input.item, property: input.field } }],
        },
    };
}

/** Inputs of {@link deploymentPatchManifest}. */
export interface DeploymentPatchInput {
    deployment: string;
    namespace: string;
    container: string;
    envVar: string;
    secretName: string;
    keyFingerprint: string;
    fieldManager: string;
    rolloutTimeoutSeconds: number;
}

/**
 * The server-side-apply patch. It names only what this program owns: one
 * env entry in one container (merged by name) and one pod-template
 * annotation. Everything else in the Deployment keeps its owner (Argo CD).
 * A changed annotation rolls the pods, since env never changes in a running
 * container.
 */
export function deploymentPatchManifest(input: DeploymentPatchInput): {
    metadata: Record<string, unknown>;
    spec: Record<string, unknown>;
} {
    return {
        metadata: {
            name: input.deployment,
            namespace: input.namespace,
            annotations: {
                "pulumi.com/patchFieldManager": input.fieldManager,
                "pulumi.com/timeoutSeconds": String(input.rolloutTimeoutSeconds),
            },
        },
        spec: {
            template: {
                metadata: { annotations: { [FINGERPRINT_ANNOTATION]: input.keyFingerprint } },
                spec: {
                    containers: [
                        {
                            name: input.container,
                            env: [
                                {
                                    name: input.envVar,
                                    valueFrom: { secretKeyRef: { name: input.secretName, key: input.envVar } },
                                },
                            ],
                        },
                    ],
                },
            },
        },
    };
}

/** The slice of a live Deployment that the confirmation reads. */
export interface DeploymentView {
    metadata?: { generation?: number };
    spec?: {
        replicas?: number;
        template?: {
            metadata?: { annotations?: Record<string, string> };
            spec?: {
                containers?: {
                    name?: string;
                    command?: string[];
                    args?: string[];
                    env?: { name?: string; valueFrom?: { secretKeyRef?: { name?: string; key?: string } } }[];
                    volumeMounts?: { name?: string; mountPath?: string; subPath?: string }[];
                }[];
                volumes?: {
                    name?: string;
                    configMap?: { name?: string; items?: { key?: string; path?: string }[] };
                }[];
            };
        };
    };
    status?: { observedGeneration?: number; replicas?: number; readyReplicas?: number; updatedReplicas?: number };
}

/** What the live Deployment says about our key. */
export interface DeploymentFacts {
    /** The fingerprint annotation on the pod template, or "none". */
    templateFingerprint: string;
    /** The runner container reads envVar from the expected Secret and key. */
    envWired: boolean;
    replicas: number;
    readyReplicas: number;
    updatedReplicas: number;
    /** Replicas of older templates still running (scale-down under way). */
    oldReplicas: number;
    /**
     * The controller has seen the latest spec and as many replicas run it as
     * wanted, with at least that many ready. Read after the patch's awaited
     * rollout: the Kubernetes provider returns once the new ReplicaSet is
     * available, possibly while old pods are still being scaled down
     * (counted in oldReplicas).
     */
    rolledOut: boolean;
}

/** Reads {@link DeploymentFacts} from a live Deployment. */
export function deploymentFacts(d: DeploymentView, container: string, envVar: string, secretName: string): DeploymentFacts {
    const c = d.spec?.template?.spec?.containers?.find((x) => x.name === container);
    const ref = c?.env?.find((e) => e.name === envVar)?.valueFrom?.secretKeyRef;
    const replicas = d.spec?.replicas ?? 1;
    const readyReplicas = d.status?.readyReplicas ?? 0;
    const updatedReplicas = d.status?.updatedReplicas ?? 0;
    const observed = (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
    return {
        templateFingerprint: d.spec?.template?.metadata?.annotations?.[FINGERPRINT_ANNOTATION] ?? "none",
        envWired: ref?.name === secretName && ref.key === envVar,
        replicas,
        readyReplicas,
        updatedReplicas,
        oldReplicas: Math.max(0, (d.status?.replicas ?? 0) - updatedReplicas),
        rolledOut: observed && updatedReplicas === replicas && readyReplicas >= replicas,
    };
}

/** Names of the containers of a Deployment's pod template. */
export function containerNames(d: DeploymentView): string[] {
    return (d.spec?.template?.spec?.containers ?? []).map((c) => c.name ?? "");
}

/** Where the runner container reads forgejo-runner's `config.yaml` from. */
export type RunnerConfigSource =
    | { kind: "configMap"; name: string; key: string; path: string }
    /** The daemon runs without --config: forgejo-runner's defaults apply. */
    | { kind: "defaults"; why: string }
    | { kind: "problem"; problem: string };

const RUNNER_BINARIES = /^(forgejo-runner|act_runner|act-runner|gitea-runner)$/;

/**
 * The `--config` of the forgejo-runner daemon in an argv, also when the
 * daemon is started from a shell script (`sh -c "... exec forgejo-runner
 * daemon --config /config/config.yaml"`, as blumeops does). `undefined`
 * when no daemon command is found; `{ path: undefined }` when it has no
 * --config.
 */
export function daemonConfigPath(argv: string[]): { path: string | undefined } | undefined {
    const candidates: string[][] = [argv];
    for (const element of argv) {
        if (/\s/.test(element)) {
            for (const line of element.split(/\n|;|&&|\|\|/)) {
                const words = shellSplit(line);
                if (words !== undefined) candidates.push(words);
            }
        }
    }
    for (const words of candidates) {
        const at = words.findIndex((w) => RUNNER_BINARIES.test(w.split("/").pop() ?? ""));
        if (at < 0 || !words.slice(at + 1).includes("daemon")) continue;
        const flags = words.slice(at + 1);
        for (let i = 0; i < flags.length; i++) {
            const w = flags[i] ?? "";
            if (w === "--config" || w === "-c") return { path: flags[i + 1] };
            const attached = /^(?:--config=|-c=?)(.+)$/.exec(w);
            if (attached?.[1] !== undefined) return { path: attached[1] };
        }
        return { path: undefined };
    }
    return undefined;
}

/**
 * Follows the runner container's `--config` path to the ConfigMap volume
 * that mounts it and the key that holds the file.
 */
export function runnerConfigSource(d: DeploymentView, container: string): RunnerConfigSource {
    const c = d.spec?.template?.spec?.containers?.find((x) => x.name === container);
    const command = c?.command ?? [];
    const args = c?.args ?? [];
    // Without a command the image's entrypoint (the runner) gets the args.
    const argv = command.length > 0 ? [...command, ...args] : args.length > 0 ? ["forgejo-runner", ...args] : [];
    const daemon = daemonConfigPath(argv);
    if (daemon === undefined) {
        return {
            kind: "problem",
            problem: `container "${container}" does not start "forgejo-runner daemon" in its command or args, so its config cannot be found`,
        };
    }
    if (daemon.path === undefined) {
        return { kind: "defaults", why: `container "${container}" starts forgejo-runner daemon without --config` };
    }
    const path = daemon.path;
    const mount = (c?.volumeMounts ?? [])
        .filter((m) => m.mountPath !== undefined && (path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, "")}/`)))
        .sort((a, b) => (b.mountPath?.length ?? 0) - (a.mountPath?.length ?? 0))[0];
    if (mount?.mountPath === undefined) {
        return { kind: "problem", problem: `the daemon's --config ${path} is on no volume of container "${container}"` };
    }
    const volume = d.spec?.template?.spec?.volumes?.find((v) => v.name === mount.name);
    if (volume?.configMap?.name === undefined) {
        return {
            kind: "problem",
            problem: `the daemon's --config ${path} is on volume "${mount.name ?? ""}", which is not a ConfigMap (only a ConfigMap can be read here)`,
        };
    }
    const rest = path === mount.mountPath ? "" : path.slice(mount.mountPath.replace(/\/$/, "").length + 1);
    const rel = [mount.subPath ?? "", rest].filter((p) => p !== "").join("/");
    const items = volume.configMap.items;
    const key = items !== undefined ? items.find((i) => i.path === rel)?.key : rel.includes("/") || rel === "" ? undefined : rel;
    if (key === undefined) {
        return {
            kind: "problem",
            problem: `the daemon's --config ${path} is not a file of ConfigMap ${volume.configMap.name} as volume "${mount.name ?? ""}" mounts it`,
        };
    }
    return { kind: "configMap", name: volume.configMap.name, key, path };
}
