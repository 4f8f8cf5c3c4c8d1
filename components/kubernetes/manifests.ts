/**
 * Pure builders of the Kubernetes objects the indri runner applies: the
 * ExternalSecret and the server-side-apply patch of the runner Deployment.
 * No Pulumi here: they take plain values and are tested directly.
 */
import { FINGERPRINT_PREFIX } from "../fingerprint";

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
