/**
 * Starts and talks to the sandbox's indri cluster (sandbox/cluster/cluster)
 * from tests, and lays out what exists on the real indri before this
 * program runs: the ClusterSecretStore reading 1Password through Connect,
 * and the Forgejo runner Deployment that Argo CD owns, with its own
 * ExternalSecret `forgejo-runner-env`.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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
        const r = spawnSync(bin, ["--kubeconfig", this.kubeconfig, ...args], { input, encoding: "utf8", timeout: 300_000 });
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

    /** Waits (bounded) with kubectl wait. */
    wait(args: string[], timeoutSeconds = 120): void {
        this.kubectl(["wait", ...args, `--timeout=${timeoutSeconds}s`]);
    }
}

/** Where the indri world finds its 1Password Connect. */
export interface IndriWorldInput {
    connectUrl: string;
    connectToken: string;
}

/** The runner Deployment as Argo CD applies it (before this program adds anything). */
export function runnerDeployment(): Record<string, unknown> {
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
                            image: "code.forgejo.org/forgejo/runner:6.3.1",
                            command: ["forgejo-runner", "daemon", "--config", "/etc/runner/config.yaml"],
                            env: [
                                { name: "DOCKER_HOST", value: "tcp://localhost:2376" },
                                { name: "DOCKER_TLS_VERIFY", value: "1" },
                                { name: "DOCKER_CERT_PATH", value: "/certs/client" },
                            ],
                            envFrom: [{ secretRef: { name: "forgejo-runner-env" } }],
                            volumeMounts: [
                                { name: "docker-certs", mountPath: "/certs" },
                                { name: "runner-data", mountPath: "/data" },
                            ],
                        },
                        {
                            name: "dind",
                            image: "docker:28-dind",
                            securityContext: { privileged: true },
                            env: [{ name: "DOCKER_TLS_CERTDIR", value: "/certs" }],
                            volumeMounts: [{ name: "docker-certs", mountPath: "/certs" }],
                        },
                    ],
                    volumes: [
                        { name: "docker-certs", emptyDir: {} },
                        { name: "runner-data", emptyDir: {} },
                    ],
                },
            },
        },
    };
}

/** Everything on indri before the program: store, token, namespace, the runner and its own ExternalSecret. */
export function indriWorld(input: IndriWorldInput): Record<string, unknown>[] {
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
                        vaults: { blumeops: 1 },
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
        runnerDeployment(),
    ];
}
