/**
 * The stack's outputs, typed once: what the program exports, what the PR
 * preview and key-health read back, what the tests assert, and what the
 * README's Outputs table lists (a unit test checks the table against
 * OUTPUT_NAMES). No value here is, or contains, the key.
 */
import type * as pulumi from "@pulumi/pulumi";

import type { FormerTokenHolder } from "./former-token";
import type { DeploymentFacts } from "./kubernetes/live-deployment";
import type { ProbeResult } from "./registry/probe";

/** indri: what the live Secret and Deployment say. */
export interface KubernetesDelivered extends DeploymentFacts {
    /** The Secret the runner reads (stable across rotations). */
    secretName: string;
    /** The ExternalSecret that synced the current key (named after it). */
    externalSecretName: string;
    /** Stamped on the Secret by ESO from the value it read, or "none". */
    secretFingerprint: string;
    jobsSeeKey: boolean;
    jobRoute: string;
}

/** ringtail: what the host's read-only check saw, last. */
export interface SshDelivered {
    /** The last delivery rewrote the file and restarted the unit. */
    changed: boolean;
    fileFingerprint: string;
    fileOwner: string;
    fileMode: string;
    unitActive: string;
    /** The unit's EnvironmentFiles include the file (its exact path). */
    unitReadsFile: boolean;
    /** The variable in the running unit's main process, or "none". */
    processFingerprint: string;
    jobsSeeKey: boolean;
    jobRoute: string;
    /** Whether key-health's key is restricted to the check: `restricted`, or why not. */
    checkKey: string;
}

/** What every stack exports. */
interface CommonOutputs {
    registryUser: string;
    envVar: string;
    /** `sha256:` + 16 hex of the key as 1Password holds it now. */
    keyFingerprint: string;
    keyExpiresAt: string | undefined;
    /** The item's field the expiry was read from (the `expiryField` setting). */
    keyExpiryField: string;
    keyDaysUntilExpiry: number | undefined;
    keyExpiryWarningDays: number;
    /** Every delivered fingerprint equals keyFingerprint, the consumer runs it, and its jobs see it. */
    hasKey: boolean;
    /** hasKey, and the registry accepts the key. */
    canPush: boolean;
    /** The push-permission probe (components/registry/probe.ts). */
    registry: ProbeResult;
    /** Whether the last checkpoint held a former version's Connect token holder, and where that was read (components/former-token.ts). */
    formerTokenHolder: FormerTokenHolder;
}

export interface KubernetesOutputs extends CommonOutputs {
    runnerKind: "kubernetes";
    delivered: KubernetesDelivered;
    /** A kubeconfig for CI's read-only ServiceAccount (secret), when the local kubeconfig could be read. */
    ciKubeconfig: string | undefined;
}

export interface SshOutputs extends CommonOutputs {
    runnerKind: "ssh";
    delivered: SshDelivered;
}

/** A stack's outputs as plain values, one shape per runner kind. */
export type StackOutputValues = KubernetesOutputs | SshOutputs;

/** The outputs known from the stack's settings alone, exported as plain values; every other one is an Output. */
type Settled = "runnerKind" | "registryUser" | "envVar" | "keyExpiryField" | "keyExpiryWarningDays";

/** The same as the program exports them. */
export type Exported<T extends StackOutputValues> = { [K in keyof T & Settled]: T[K] } & {
    [K in Exclude<keyof T, Settled>]: pulumi.Output<T[K]>;
};

/**
 * Every output's name, per place: what `index.ts` exports (in this order,
 * {@link exportedOutputs}), what the README's Outputs table must list, and
 * what a test compares with a real stack's exports.
 */
export const OUTPUT_NAMES = {
    top: [
        "runnerKind",
        "registryUser",
        "envVar",
        "keyFingerprint",
        "keyExpiresAt",
        "keyExpiryField",
        "keyDaysUntilExpiry",
        "keyExpiryWarningDays",
        "hasKey",
        "canPush",
        "registry",
        "delivered",
        "ciKubeconfig",
        "formerTokenHolder",
    ],
    kubernetes: [
        "secretName",
        "externalSecretName",
        "secretFingerprint",
        "templateFingerprint",
        "envWired",
        "replicas",
        "readyReplicas",
        "updatedReplicas",
        "oldReplicas",
        "rolledOut",
        "jobsSeeKey",
        "jobRoute",
    ],
    ssh: [
        "changed",
        "fileFingerprint",
        "fileOwner",
        "fileMode",
        "unitActive",
        "unitReadsFile",
        "processFingerprint",
        "jobsSeeKey",
        "jobRoute",
        "checkKey",
    ],
    registry: [
        "url",
        "repository",
        "acceptsKey",
        "refusesAnonymous",
        "keyStatus",
        "anonymousStatus",
        "cancelStatus",
        "checkedAt",
        "verdict",
        "keysRead",
        "keyId",
        "keyExpiresAt",
        "otherKeys",
    ],
} as const satisfies {
    top: readonly (keyof KubernetesOutputs | keyof SshOutputs)[];
    kubernetes: readonly (keyof KubernetesDelivered)[];
    ssh: readonly (keyof SshDelivered)[];
    registry: readonly (keyof ProbeResult)[];
};

/** Every top-level output name of either runner kind. */
type TopName = keyof KubernetesOutputs | keyof SshOutputs;
/** Fails to compile while an output of the types is missing from OUTPUT_NAMES.top (`satisfies` checks the other way). */
export const EVERY_OUTPUT_LISTED: [Exclude<TopName, (typeof OUTPUT_NAMES.top)[number]>] extends [never] ? true : never = true;

/**
 * The stack's exports, taken from `outputs` by {@link OUTPUT_NAMES}: one
 * list names what is exported, so an output added to the types and the
 * list is exported without another edit. A name the runner kind does not
 * have (ciKubeconfig on an SSH runner) is left out.
 */
export function exportedOutputs(outputs: Exported<KubernetesOutputs> | Exported<SshOutputs>): Record<string, unknown> {
    const all = outputs as unknown as Record<string, unknown>;
    return Object.fromEntries(OUTPUT_NAMES.top.filter((name) => name in all).map((name) => [name, all[name]]));
}

/** The fingerprints a stack delivered, by output name (indri: Secret and pod template; ringtail: file and process). */
export function deliveredFingerprints(
    outputs: Pick<KubernetesOutputs, "runnerKind" | "delivered"> | Pick<SshOutputs, "runnerKind" | "delivered">,
): Record<string, string> {
    return outputs.runnerKind === "kubernetes"
        ? { secretFingerprint: outputs.delivered.secretFingerprint, templateFingerprint: outputs.delivered.templateFingerprint }
        : { fileFingerprint: outputs.delivered.fileFingerprint, processFingerprint: outputs.delivered.processFingerprint };
}

/** What the engine reports for a value a preview does not know yet. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** `value` without what a preview does not know yet, at any depth. */
function known(value: unknown): unknown {
    if (Array.isArray(value)) return value.filter((v) => v !== UNKNOWN).map(known);
    if (typeof value === "object" && value !== null) {
        return Object.fromEntries(
            Object.entries(value)
                .filter(([, v]) => v !== UNKNOWN)
                .map(([k, v]) => [k, known(v)]),
        );
    }
    return value;
}

/**
 * A stack's outputs as the Automation API gives them (from the last `up`,
 * or as a preview computed them) in their type, without values the preview
 * does not know yet; an empty object when they are not this program's (no
 * runnerKind: nothing was deployed).
 */
export function readOutputs(values: Record<string, unknown>): Partial<StackOutputValues> {
    const kind = values["runnerKind"];
    if (kind !== "kubernetes" && kind !== "ssh") return {};
    return known(values) as Partial<StackOutputValues>;
}
