/**
 * Starts and talks to the sandbox's indri cluster (sandbox/cluster/cluster)
 * from tests, and lays out what exists on the real indri before this
 * program runs: the ClusterSecretStore reading 1Password through Connect,
 * and the Forgejo runner Deployment that Argo CD owns, with its own
 * ExternalSecret `forgejo-runner-env`.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { stringify } from "yaml";

const CLUSTER_SCRIPT = join(__dirname, "cluster", "cluster");

/** The field manager Argo CD applies with. */
export const ARGO_MANAGER = "argocd-controller";

export class Cluster {
    private constructor(readonly state: string) {}

    get kubeconfig(): string {
        return join(this.state, "kubeconfig");
    }

    /** Starts the control plane, kwok and ESO (sandbox/build --env must be in the environment). */
    static start(): Cluster {
        const state = mkdtempSync(join(tmpdir(), "cra-indri-"));
        const r = spawnSync("bash", [CLUSTER_SCRIPT, "start", state], { encoding: "utf8", timeout: 600_000 });
        const cluster = new Cluster(state);
        if (r.status !== 0) {
            cluster.stop();
            throw new Error(`sandbox/cluster/cluster start failed:\n${r.stderr}`);
        }
        return cluster;
    }

    stop(): void {
        spawnSync("bash", [CLUSTER_SCRIPT, "stop", this.state], { encoding: "utf8", timeout: 120_000 });
    }

    /** Removes the state directory (after stop, once logs are no longer needed). */
    remove(): void {
        rmSync(this.state, { recursive: true, force: true });
    }

    /** Runs kubectl against the sandbox; throws with its stderr on failure unless `allowFail`. */
    kubectl(args: string[], input?: string, allowFail = false): { code: number; stdout: string; stderr: string } {
        const bin = join(process.env["CI_REGISTRY_AUTH_SANDBOX"] ?? "", "bin", "kubectl");
        const r = spawnSync(bin, ["--kubeconfig", this.kubeconfig, ...args], {
            input,
            encoding: "utf8",
            timeout: 300_000,
            maxBuffer: 64 * 1024 * 1024,
        });
        const result = { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
        if (result.code !== 0 && !allowFail) {
            throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}`);
        }
        return result;
    }

    /** Server-side applies objects with a field manager, as Argo CD does. */
    apply(objects: object[], manager: string): void {
        this.kubectl(
            ["apply", "--server-side", "--force-conflicts", `--field-manager=${manager}`, "-f", "-"],
            objects.map((o) => stringify(o)).join("---\n"),
        );
    }

    /** One object as JSON, or undefined when it does not exist. */
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the JSON shape it reads
    get<T = Record<string, unknown>>(kind: string, name: string, namespace?: string): T | undefined {
        const r = this.kubectl(["get", kind, name, "-o", "json", ...(namespace ? ["-n", namespace] : [])], undefined, true);
        return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
    }

    /**
     * Applies indri's world (indriWorld) as Argo CD does, then waits until
     * ESO has validated the ClusterSecretStore and the runner is Available.
     */
    applyIndriWorld(input: IndriWorldInput): void {
        this.apply(indriWorld(input), ARGO_MANAGER);
        this.wait(["--for=condition=Ready", "clustersecretstore/onepassword-blumeops"]);
        this.wait(["--for=condition=Available", "deployment/forgejo-runner", "-n", input.namespace ?? "forgejo-runner"]);
    }

    /** Waits (bounded) with kubectl wait. */
    wait(args: string[], timeoutSeconds = 120): void {
        this.kubectl(["wait", ...args, `--timeout=${timeoutSeconds}s`]);
    }

    /**
     * Kills the API server and starts it again with the same command line
     * and log (kine keeps the data), waiting until it answers: a restart of
     * the control plane under a running client.
     */
    restartApiServer(): void {
        const pidFile = join(this.state, "kube-apiserver.pid");
        const pid = Number(readFileSync(pidFile, "utf8"));
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8")
            .split("\0")
            .filter((a) => a !== "");
        process.kill(pid, "SIGKILL");
        spawnSync("sh", ["-c", `while kill -0 ${pid} 2>/dev/null; do sleep 0.1; done`], { timeout: 30_000 });
        const log = openSync(join(this.state, "kube-apiserver.log"), "a");
        const child = spawn(argv[0] ?? "kube-apiserver", argv.slice(1), { detached: true, stdio: ["ignore", log, log] });
        child.unref();
        writeFileSync(pidFile, `${String(child.pid)}\n`);
        const deadline = Date.now() + 60_000;
        while (this.kubectl(["get", "--raw", "/readyz"], undefined, true).code !== 0) {
            if (Date.now() > deadline)
                throw new Error(`the API server did not come back within 60 s; log: ${join(this.state, "kube-apiserver.log")}`);
            spawnSync("sleep", ["0.3"]);
        }
    }

    /**
     * Argo CD syncing a changed config.yaml: a new kustomize-named
     * ConfigMap and the Deployment pointing at it, which rolls the runner.
     * `clientSide` applies as `kubectl apply` and Argo CD's default sync do:
     * the objects then carry all of their content again in the
     * `kubectl.kubernetes.io/last-applied-configuration` annotation.
     */
    syncRunnerConfig(config: string, clientSide = false): void {
        const objects = [runnerConfigMap(config), runnerDeployment(config)];
        if (clientSide) {
            this.kubectl(["apply", "-f", "-"], objects.map((o) => stringify(o)).join("---\n"));
        } else {
            this.apply(objects, ARGO_MANAGER);
        }
        this.kubectl(["rollout", "status", "deployment/forgejo-runner", "-n", "forgejo-runner", "--timeout=120s"]);
    }
}

/** Where the indri world finds its 1Password Connect. */
export interface IndriWorldInput {
    connectUrl: string;
    connectToken: string;
    /** The runner's config.yaml. Default: blumeops's, which forwards nothing to jobs. */
    runnerConfig?: string;
    /** The vaults ESO's store reads, by priority. Default: blumeops only. */
    vaults?: Record<string, number>;
    /**
     * The runner's namespace. Default `forgejo-runner`; another gives a
     * second runner beside it (the same store), e.g. for the bench's
     * comparison of two versions of the program, each with a runner.
     */
    namespace?: string;
}

/** blumeops's argocd/manifests/forgejo-runner/config.yaml: no container.options, so no job sees the key. */
export const BLUMEOPS_RUNNER_CONFIG = [
    "log:",
    "  level: info",
    "",
    "runner:",
    "  file: /data/.runner",
    "  capacity: 2",
    "  timeout: 3h",
    "  # Env vars injected into all job containers",
    "  envs:",
    "    DOCKER_HOST: tcp://127.0.0.1:2375",
    "    TZ: America/Los_Angeles",
    "",
    "container:",
    "  # Job execution image is set via RUNNER_LABELS in deployment.yaml",
    '  network: "host"',
    "  # Connect to DinD sidecar via TCP (not socket)",
    "  docker_host: tcp://127.0.0.1:2375",
    "",
].join("\n");

/** The same config with the line README "Jobs" asks for: job containers get the runner's key. */
export const FORWARDING_RUNNER_CONFIG = BLUMEOPS_RUNNER_CONFIG.replace(
    '  network: "host"\n',
    '  network: "host"\n  # Hand the runner\'s ZOT_CI_API_KEY (from ci-registry-auth) to every job container.\n  options: "-e ZOT_CI_API_KEY"\n',
);

/** The runner's label, as blumeops registers it (RUNNER_LABELS). */
export const RUNNER_LABELS = "k8s:docker://registry.ops.eblu.me/blumeops/runner-job-image:v0.20.1-24f7512";

/**
 * The runner's ConfigMap as kustomize's configMapGenerator makes it: the
 * name carries a hash of the content, so every change of config.yaml is a
 * new ConfigMap and a new volume reference in the Deployment.
 */
export function runnerConfigMap(config: string): {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace: string };
    data: Record<string, string>;
} {
    const data = { "config.yaml": config, "daemon.json": '{ "features": { "buildkit": true } }\n' };
    const hash = createHash("sha256").update(JSON.stringify(data)).digest("hex").slice(0, 10);
    return { apiVersion: "v1", kind: "ConfigMap", metadata: { name: `forgejo-runner-config-${hash}`, namespace: "forgejo-runner" }, data };
}

/**
 * The runner Deployment as Argo CD applies it (before this program adds
 * anything), shaped like blumeops's: the daemon started from a shell script
 * with --config on the kustomize-named ConfigMap, a dind sidecar.
 */
export function runnerDeployment(config = BLUMEOPS_RUNNER_CONFIG): Record<string, unknown> {
    return {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "forgejo-runner", namespace: "forgejo-runner", labels: { app: "forgejo-runner" } },
        spec: {
            replicas: 1,
            selector: { matchLabels: { app: "forgejo-runner" } },
            template: {
                metadata: { labels: { app: "forgejo-runner" } },
                spec: {
                    containers: [
                        {
                            name: "runner",
                            image: "registry.ops.eblu.me/blumeops/forgejo-runner:v12.7.3-12d83ba",
                            env: [
                                { name: "TZ", value: "America/Los_Angeles" },
                                { name: "DOCKER_HOST", value: "tcp://localhost:2375" },
                                { name: "FORGEJO_URL", value: "https://forge.ops.eblu.me" },
                                { name: "RUNNER_NAME", value: "k8s-runner" },
                                { name: "RUNNER_LABELS", value: RUNNER_LABELS },
                            ],
                            command: [
                                "/bin/sh",
                                "-c",
                                [
                                    "# Wait for DinD to be ready",
                                    "while ! wget -q -O /dev/null http://localhost:2375/_ping 2>/dev/null; do sleep 1; done",
                                    "# Register if not already registered",
                                    "if [ ! -f /data/.runner ]; then",
                                    '  forgejo-runner register --instance "$FORGEJO_URL" --token "$RUNNER_TOKEN" \\',
                                    '    --name "$RUNNER_NAME" --labels "$RUNNER_LABELS" --no-interactive',
                                    "fi",
                                    "# Start daemon",
                                    "exec forgejo-runner daemon --config /config/config.yaml",
                                    "",
                                ].join("\n"),
                            ],
                            envFrom: [{ secretRef: { name: "forgejo-runner-env" } }],
                            volumeMounts: [
                                { name: "data", mountPath: "/data" },
                                { name: "config", mountPath: "/config" },
                            ],
                        },
                        {
                            name: "dind",
                            image: "docker:27-dind",
                            securityContext: { privileged: true },
                            env: [{ name: "DOCKER_TLS_CERTDIR", value: "" }],
                            volumeMounts: [
                                { name: "dind-storage", mountPath: "/var/lib/docker" },
                                { name: "config", mountPath: "/etc/docker/daemon.json", subPath: "daemon.json", readOnly: true },
                            ],
                        },
                    ],
                    volumes: [
                        { name: "data", emptyDir: {} },
                        { name: "dind-storage", emptyDir: {} },
                        { name: "config", configMap: { name: runnerConfigMap(config).metadata.name } },
                    ],
                },
            },
        },
    };
}

/** Everything on indri before the program: store, token, namespace, the runner and its own ExternalSecret. */
export function indriWorld(input: IndriWorldInput): Record<string, unknown>[] {
    const objects = blumeopsWorld(input);
    const ns = input.namespace ?? "forgejo-runner";
    if (ns === "forgejo-runner") return objects;
    return objects.map((o) => {
        const m = o["metadata"] as { name: string; namespace?: string };
        if (o["kind"] === "Namespace" && m.name === "forgejo-runner") return { ...o, metadata: { ...m, name: ns } };
        return m.namespace === "forgejo-runner" ? { ...o, metadata: { ...m, namespace: ns } } : o;
    });
}

/** indriWorld in blumeops's namespace. */
function blumeopsWorld(input: IndriWorldInput): Record<string, unknown>[] {
    return [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "external-secrets" } },
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "forgejo-runner" } },
        {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: "onepassword-connect-token", namespace: "external-secrets" },
            stringData: { token: input.connectToken },
        },
        {
            apiVersion: "external-secrets.io/v1",
            kind: "ClusterSecretStore",
            metadata: { name: "onepassword-blumeops" },
            spec: {
                provider: {
                    onepassword: {
                        connectHost: input.connectUrl,
                        vaults: input.vaults ?? { blumeops: 1 },
                        auth: {
                            secretRef: {
                                connectTokenSecretRef: { name: "onepassword-connect-token", key: "token", namespace: "external-secrets" },
                            },
                        },
                    },
                },
            },
        },
        {
            apiVersion: "external-secrets.io/v1",
            kind: "ExternalSecret",
            metadata: { name: "forgejo-runner-env", namespace: "forgejo-runner" },
            spec: {
                refreshInterval: "1h",
                secretStoreRef: { kind: "ClusterSecretStore", name: "onepassword-blumeops" },
                target: { name: "forgejo-runner-env", creationPolicy: "Owner" },
                data: [
                    {
                        secretKey: "FORGEJO_RUNNER_REGISTRATION_TOKEN",
                        remoteRef: { key: "forgejo-runner-registration", property: "credential" },
                    },
                ],
            },
        },
        runnerConfigMap(input.runnerConfig ?? BLUMEOPS_RUNNER_CONFIG),
        runnerDeployment(input.runnerConfig ?? BLUMEOPS_RUNNER_CONFIG),
    ];
}
