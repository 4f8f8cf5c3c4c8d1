/**
 * Readers of a live runner Deployment, as the API server returns it: what it
 * says about our key (env entry, template annotation, rollout) and where its
 * runner container reads forgejo-runner's config.yaml from. Pure functions of
 * the object; the component does the reading.
 */
import { FINGERPRINT_ANNOTATION } from "./manifests";
import { daemonConfigPath } from "../runner-config";

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
