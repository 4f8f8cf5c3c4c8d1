/**
 * Pulumi mocks that stand for the world the program talks to: 1Password
 * (the Connect emulator, in this process, which the program reads over
 * HTTP), a Kubernetes cluster with ESO, and an SSH host. Every
 * registered resource and invoke is recorded; an unexpected resource type or
 * invoke token fails the test. The fake host keeps the file it was sent on
 * stdin, and its check reports fingerprints of what it holds, so a wrong or
 * missing delivery shows up in the outputs.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import * as pulumi from "@pulumi/pulumi";
import { isRpcSecret } from "@pulumi/pulumi/runtime/rpc";

import { fingerprint } from "../../components/fingerprint";
import { ConnectEmulator, type Field } from "../../sandbox/connect-emulator";
import { useConnect } from "./stack-config";

export interface Recorded {
    type: string;
    name: string;
    inputs: Record<string, unknown>;
    /** Set for reads of existing objects (`.get`, `opts.id`). */
    id?: string;
    provider?: string;
}

/** The state of the world the mocks answer from; tests change it to make things go wrong. */
export interface World {
    /** The item: its `credential` field and the fields of its sections; undefined: no such item in the vault. */
    item?: {
        credential?: string;
        category?: string;
        sections?: { id?: string; label?: string; fields?: { id?: string; label?: string; value?: string }[] }[];
    };
    /** Containers of the runner Deployment; undefined means it does not exist. */
    containers?: string[];
    /** The Deployment as our patch left it; later reads return it. */
    patched?: Record<string, unknown>;
    /** Ready condition of the ClusterSecretStore. */
    storeReady?: boolean;
    /** The Deployment's status after our patch: the new template's pods not yet all updated and ready (a rollout still under way). */
    rolloutUnderWay?: boolean;
    /** What ESO read when it synced; defaults to the item's credential. */
    esoValue?: string;
    /** The env file the SSH host holds, by path. */
    files: Map<string, string>;
    /** The variable in the running unit's process, by name. */
    processEnv: Map<string, string>;
    /** Whether the unit lists the env file in EnvironmentFiles. */
    unitReadsFile: boolean;
    restarts: number;
    /** indri: config.yaml in the ConfigMap the runner container mounts at --config; undefined: no such key. */
    runnerConfigMap?: string;
    /** ringtail: the file the unit's ExecStart names with --config; undefined: absent. */
    hostConfig?: string;
    /** ringtail: the runner's registration file (`.runner`); undefined: absent. */
    hostRegistration?: string;
    /** ringtail: the check installed as key-health's forced command. */
    checkCommand?: string;
    /** The stack's last checkpoint (the engine's reads of it): its outputs, and its resources' types. */
    lastCheckpoint?: { outputs: Record<string, unknown>; types?: string[] };
}

/** Where the mock Deployment mounts the runner's config, and the ConfigMap behind it (kustomize-suffixed). */
export const RUNNER_CONFIG_MAP = "forgejo-runner-config-7f2b9c4d8m";
/** The ringtail unit's config and state directory in the mock host. */
export const HOST_CONFIG = "/nix/store/0m3w4xv2k6zq-config.yaml";
export const HOST_STATE = "/var/lib/gitea-runner/nix_container_builder";

/** The token the mock token controller puts into CI's ServiceAccount token Secret. */
export const SERVICE_ACCOUNT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.mock-service-account-token.sig";

/** True for a value the SDK sent as a secret. */
export function isSecretValue(value: unknown): value is { value: unknown } {
    return isRpcSecret(value);
}

/** Strips secret wrappers (for reading the plaintext a provider would receive). */
export function unwrap(value: unknown): unknown {
    if (isSecretValue(value)) {
        return unwrap(value.value);
    }
    if (Array.isArray(value)) {
        return value.map(unwrap);
    }
    if (typeof value === "object" && value !== null) {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrap(v)]));
    }
    return value;
}

/**
 * Every string reachable from `value` without passing through a secret
 * wrapper, with its path: what would be stored or shown in plaintext.
 */
export function plainStrings(value: unknown, path = "$"): { path: string; text: string }[] {
    if (isSecretValue(value)) {
        return [];
    }
    if (typeof value === "string") {
        return [{ path, text: value }];
    }
    if (Array.isArray(value)) {
        return value.flatMap((v, i) => plainStrings(v, `${path}[${i}]`));
    }
    if (typeof value === "object" && value !== null) {
        return Object.entries(value).flatMap(([k, v]) => [{ path: `${path}.${k}#key`, text: k }, ...plainStrings(v, `${path}.${k}`)]);
    }
    return [];
}

/** The Connect token the harness's emulator takes (the program gets it as $OP_CONNECT_TOKEN). */
export const CONNECT_TOKEN = "connect-token-for-tests";

/** The test's own stand-in for the SSH host (Harness.fakeHost). */
interface FakeHost {
    root: string;
    bin: string;
    log: string;
}

/** The unit the committed ringtail stack names. */
const UNIT = "gitea-runner-nix_container_builder.service";

export class Harness implements pulumi.runtime.Mocks {
    private host: FakeHost | undefined;
    /**
     * The bench's mode: each remote script runs once for real and its answer
     * is replayed after that, so evaluations measure the program, not the
     * shell. Tests never replay: they assert what the scripts did.
     */
    private readonly replayed: Map<string, string> | undefined;

    constructor(opts: { replay?: boolean } = {}) {
        if (opts.replay === true) this.replayed = new Map();
    }
    readonly connect = new ConnectEmulator(CONNECT_TOKEN);
    /** The emulator's URL, once installed. */
    connectUrl = "";
    readonly resources: Recorded[] = [];
    readonly invokes: { token: string; inputs: Record<string, unknown> }[] = [];
    world: World = healthyWorld("");

    /**
     * Installs these mocks; `preview` mimics `pulumi preview`. Install once per
     * test file: the mock monitor is global, and a component from an earlier
     * test that registers its outputs late must still find its own monitor.
     */
    async install(preview = false): Promise<void> {
        this.connectUrl = await this.connect.listen();
        this.connect.addVault("blumeops");
        useConnect(this.connectUrl);
        await pulumi.runtime.setMocks(this, "ci-registry-auth", preview ? "preview" : "test", preview, "organization");
    }

    /** Starts a test: a new world, nothing recorded. */
    reset(world: World): this {
        this.dropHost();
        this.world = world;
        this.resources.length = 0;
        this.invokes.length = 0;
        this.connect.items.clear();
        const vault = [...this.connect.vaults.values()][0];
        if (vault !== undefined && world.item !== undefined) {
            const item = world.item;
            const fields: Field[] = [
                ...(item.credential !== undefined
                    ? [{ id: "credential", type: "CONCEALED", label: "credential", value: item.credential }]
                    : []),
                ...(item.sections ?? []).flatMap((sec) =>
                    (sec.fields ?? []).map((f) => ({
                        id: f.id ?? f.label ?? "",
                        type: "STRING",
                        label: f.label ?? f.id ?? "",
                        ...(f.value !== undefined ? { value: f.value } : {}),
                        section: { id: sec.id ?? "s" },
                    })),
                ),
            ];
            this.connect.addItem(vault.id, {
                title: "zot-ci-apikey",
                category: item.category ?? "API_CREDENTIAL",
                sections: (item.sections ?? []).map((sec) => ({
                    id: sec.id ?? "s",
                    ...(sec.label !== undefined ? { label: sec.label } : {}),
                })),
                fields,
            });
        }
        return this;
    }

    byType(type: string): Recorded[] {
        return this.resources.filter((r) => r.type === type);
    }

    one(type: string): Recorded {
        const found = this.byType(type);
        if (found.length !== 1) {
            throw new Error(`expected one ${type}, found ${found.length}`);
        }
        return found[0]!;
    }

    call(args: pulumi.runtime.MockCallArgs): pulumi.runtime.MockCallResult {
        this.invokes.push({ token: args.token, inputs: args.inputs as Record<string, unknown> });
        // The engine's reads of this stack's own last checkpoint (components/former-token.ts).
        const last = this.world.lastCheckpoint;
        if (args.token === "pulumi:pulumi:readStackOutputs") return { outputs: last?.outputs ?? {} };
        if (args.token === "pulumi:pulumi:readStackResourceOutputs") {
            // As gRPC errors: the SDK rejects with an Error of their `details`.
            const engineError = (details: string): Error => Object.assign(new Error(details), { details });
            if (last === undefined) throw engineError("unknown stack: the engine's resource read fails on a stack never deployed");
            if (last.types === undefined) throw engineError("failed to load checkpoint: AccessDenied");
            return {
                outputs: Object.fromEntries(
                    last.types.map((type, i) => [`urn:pulumi:test::ci-registry-auth::${type}::r${String(i)}`, { type, outputs: {} }]),
                ),
            };
        }
        throw new Error(`unexpected invoke ${args.token}`);
    }

    newResource(args: pulumi.runtime.MockResourceArgs): { id: string | undefined; state: Record<string, unknown> } {
        const inputs = args.inputs as Record<string, unknown>;
        this.resources.push({
            type: args.type,
            name: args.name,
            inputs,
            // A create arrives with an empty import id; only reads carry one.
            ...(args.id ? { id: args.id } : {}),
            ...(args.provider !== undefined ? { provider: args.provider } : {}),
        });
        if (args.type.startsWith("ci-registry-auth:") && args.custom !== true) {
            return { id: undefined, state: {} };
        }
        switch (args.type) {
            case "pulumi:providers:kubernetes":
            case "pulumi:providers:command":
                return { id: `${args.name}-id`, state: inputs };
            case "command:remote:Command":
                return { id: `${args.name}-id`, state: { ...inputs, ...this.runRemote(inputs), stderr: "" } };
            case "kubernetes:apps/v1:Deployment":
                return this.readDeployment(args.id);
            case "kubernetes:external-secrets.io/v1:ClusterSecretStore":
                return this.readStore(args.id);
            case "kubernetes:external-secrets.io/v1:ExternalSecret": {
                const meta = inputs["metadata"] as { namespace: string; name: string };
                return {
                    id: `${meta.namespace}/${meta.name}`,
                    state: { ...inputs, status: { conditions: [{ type: "Ready", status: "True" }] } },
                };
            }
            case "kubernetes:core/v1:Secret": {
                if (args.id) {
                    return this.readSecret(args.id);
                }
                const meta = inputs["metadata"] as { namespace: string; name: string };
                // The token controller fills a ServiceAccount token Secret; the provider waits for it.
                const token =
                    inputs["type"] === "kubernetes.io/service-account-token"
                        ? { data: { token: Buffer.from(SERVICE_ACCOUNT_TOKEN).toString("base64") } }
                        : {};
                return { id: `${meta.namespace}/${meta.name}`, state: { ...inputs, ...token } };
            }
            case "kubernetes:core/v1:ServiceAccount":
            case "kubernetes:rbac.authorization.k8s.io/v1:Role":
            case "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding":
            case "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole":
            case "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": {
                const meta = inputs["metadata"] as { namespace?: string; name: string };
                return { id: meta.namespace !== undefined ? `${meta.namespace}/${meta.name}` : meta.name, state: inputs };
            }
            case "kubernetes:apps/v1:DeploymentPatch":
                return this.applyPatch(inputs);
            case "kubernetes:core/v1:ConfigMap": {
                if (args.id !== `forgejo-runner/${RUNNER_CONFIG_MAP}`) {
                    throw new Error(`configmaps "${args.id ?? ""}" not found`);
                }
                const text = this.world.runnerConfigMap;
                return { id: args.id, state: { data: text !== undefined ? { "config.yaml": text } : {} } };
            }
            default:
                throw new Error(`unexpected resource type ${args.type}`);
        }
    }

    /**
     * Runs a remote command's real script (components/ssh/host/) on this machine,
     * as the host would: the host's paths are moved under a directory of this
     * test's own (and moved back in what the script prints), and systemctl
     * is test/support/fake-systemctl.sh, whose unit's main process is a real
     * process holding the variables of the env file it was (re)started with.
     * The world then reflects what the script did: the files, the running
     * process's variable, the restarts.
     */
    private runRemote(inputs: Record<string, unknown>): { stdout: string } {
        const script = String(inputs["create"]);
        const stdin = unwrap(inputs["stdin"]);
        const asked = `${script}\0${String(stdin)}`;
        const answer = this.replayed?.get(asked);
        if (answer !== undefined) return { stdout: answer };
        const host = this.fakeHost();
        const unitName = /^unit='([^']*)'$/m.exec(script)?.[1] ?? "";
        const file = /^f='([^']*)'$/m.exec(script)?.[1] ?? "";
        const moved = script.replace(/^(f|p)='\//gm, `$1='${host.root}/`);
        const envFile = `${host.root}${file}`;
        const r = spawnSync("sh", ["-c", moved], {
            input: typeof stdin === "string" ? stdin : "",
            encoding: "utf8",
            env: {
                PATH: `${host.bin}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
                FAKE_LOG: host.log,
                FAKE_UNIT: unitName || UNIT,
                FAKE_STATE: host.root,
                ...(this.world.unitReadsFile ? { FAKE_ENVFILE: envFile } : {}),
                FAKE_ENVFILES: this.world.unitReadsFile
                    ? `${envFile} (ignore_errors=yes)`
                    : "/etc/forgejo-runner/token.env (ignore_errors=no)",
                FAKE_FLAGS: `--config ${host.root}${HOST_CONFIG}`,
                FAKE_WD: `!${host.root}${HOST_STATE}`,
            },
        });
        if (r.status !== 0) {
            // What the command provider reports when a script exits non-zero.
            throw new Error(`Process exited with status ${String(r.status)}: ${r.stderr}`);
        }
        this.syncWorld(host, file, /^var='([^']*)'$/m.exec(script)?.[1] ?? "");
        const stdout = r.stdout.split(host.root).join("");
        this.replayed?.set(asked, stdout);
        return { stdout };
    }

    /** The test's own host: a directory standing for `/`, the fake systemctl, and the unit's main process from world.processEnv. */
    private fakeHost(): FakeHost {
        if (this.host !== undefined) return this.host;
        const root = mkdtempSync(join(tmpdir(), "cra-harness-host-"));
        const bin = join(root, ".bin");
        mkdirSync(bin);
        symlinkSync(join(__dirname, "fake-systemctl.sh"), join(bin, "systemctl"));
        const log = join(root, ".systemctl.log");
        writeFileSync(log, "");
        const put = (path: string, text: string | undefined): void => {
            if (text === undefined) return;
            mkdirSync(dirname(`${root}${path}`), { recursive: true });
            writeFileSync(`${root}${path}`, text, { mode: 0o600 });
        };
        for (const [path, text] of this.world.files) put(path, text);
        put(HOST_CONFIG, this.world.hostConfig);
        put(`${HOST_STATE}/.runner`, this.world.hostRegistration);
        const env = Object.fromEntries(this.world.processEnv);
        const unit = spawn("sleep", ["600"], { env: { PATH: process.env["PATH"], ...env }, stdio: "ignore", detached: true });
        unit.unref();
        writeFileSync(join(root, "pid"), String(unit.pid));
        this.host = { root, bin, log };
        return this.host;
    }

    /** What the script left: the env file, the running process's variable, the restarts. */
    private syncWorld(host: FakeHost, file: string, envVar: string): void {
        const onDisk = `${host.root}${file}`;
        if (file !== "") {
            if (existsSync(onDisk)) this.world.files.set(file, readFileSync(onDisk, "utf8"));
            else this.world.files.delete(file);
        }
        const check = `${host.root}${file.slice(0, file.lastIndexOf("/"))}/ci-registry-auth-check`;
        if (existsSync(check)) this.world.checkCommand = readFileSync(check, "utf8");
        this.world.restarts = readFileSync(host.log, "utf8")
            .split("\n")
            .filter((l) => l.startsWith("try-restart")).length;
        const pid = readFileSync(join(host.root, "pid"), "utf8").trim();
        const running = existsSync(`/proc/${pid}/environ`)
            ? readFileSync(`/proc/${pid}/environ`, "utf8")
                  .split("\0")
                  .find((e) => e.startsWith(`${envVar}=`))
                  ?.slice(envVar.length + 1)
            : undefined;
        if (envVar !== "") {
            if (running === undefined) this.world.processEnv.delete(envVar);
            else this.world.processEnv.set(envVar, running);
        }
    }

    /** Stops the fake host's process, removes its directory and closes the Connect emulator: a test file's afterAll. */
    async dispose(): Promise<void> {
        this.dropHost();
        await this.connect.close();
    }

    private dropHost(): void {
        if (this.host === undefined) return;
        const pid = Number(readFileSync(join(this.host.root, "pid"), "utf8"));
        try {
            process.kill(pid);
        } catch {
            // already gone
        }
        rmSync(this.host.root, { recursive: true, force: true });
        this.host = undefined;
    }

    private deploymentObject(): Record<string, unknown> {
        return {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name: "forgejo-runner", namespace: "forgejo-runner", generation: 3 },
            spec: {
                replicas: 1,
                template: {
                    metadata: { annotations: {} },
                    spec: {
                        containers: (this.world.containers ?? []).map((name) => ({
                            name,
                            env: [],
                            ...(name === "runner"
                                ? {
                                      command: [
                                          "/bin/sh",
                                          "-c",
                                          "test -f /data/.runner || register\nexec forgejo-runner daemon --config /config/config.yaml",
                                      ],
                                      volumeMounts: [{ name: "config", mountPath: "/config" }],
                                  }
                                : {}),
                        })),
                        volumes: [{ name: "config", configMap: { name: RUNNER_CONFIG_MAP } }],
                    },
                },
            },
            status: { observedGeneration: 3, replicas: 1, readyReplicas: 1, updatedReplicas: 1 },
        };
    }

    private readDeployment(id: string | undefined): { id: string | undefined; state: Record<string, unknown> } {
        if (this.world.containers === undefined) {
            throw new Error(`deployments.apps "${id ?? ""}" not found`);
        }
        return { id, state: this.world.patched ?? this.deploymentObject() };
    }

    private readStore(id: string | undefined): { id: string | undefined; state: Record<string, unknown> } {
        const ready = this.world.storeReady ?? true;
        return {
            id,
            state: {
                apiVersion: "external-secrets.io/v1",
                kind: "ClusterSecretStore",
                metadata: { name: id },
                spec: {},
                status: {
                    conditions: [
                        ready
                            ? { type: "Ready", status: "True", reason: "Valid", message: "store validated" }
                            : { type: "Ready", status: "False", reason: "InvalidProviderConfig", message: "unable to validate store" },
                    ],
                },
            },
        };
    }

    private readSecret(id: string | undefined): { id: string | undefined; state: Record<string, unknown> } {
        const value = this.world.esoValue ?? this.world.item?.credential ?? "";
        const name = (id ?? "").split("/")[1] ?? "";
        return {
            id,
            state: {
                apiVersion: "v1",
                kind: "Secret",
                metadata: {
                    name,
                    annotations: { "ci-registry-auth.eblu.me/key-fingerprint": fingerprint(value) },
                },
                data: { ZOT_CI_API_KEY: Buffer.from(value).toString("base64") },
            },
        };
    }

    private applyPatch(inputs: Record<string, unknown>): { id: string | undefined; state: Record<string, unknown> } {
        const live = this.deploymentObject();
        const patch = inputs as { metadata: Record<string, unknown>; spec: { template: Record<string, unknown> } };
        const spec = live["spec"] as { template: { metadata: Record<string, unknown>; spec: { containers: { name: string }[] } } };
        const patchTemplate = patch.spec.template as {
            metadata: { annotations: Record<string, string> };
            spec: { containers: { name: string; env: unknown[] }[] };
        };
        spec.template.metadata = { annotations: patchTemplate.metadata.annotations };
        spec.template.spec.containers = spec.template.spec.containers.map((c) => {
            const p = patchTemplate.spec.containers.find((x) => x.name === c.name);
            return p ? { ...c, env: p.env } : c;
        });
        const state = {
            ...live,
            metadata: { ...(live["metadata"] as object), ...patch.metadata },
            ...(this.world.rolloutUnderWay === true
                ? {
                      spec: { ...spec, replicas: 2 },
                      status: { observedGeneration: 3, replicas: 3, readyReplicas: 2, updatedReplicas: 1 },
                  }
                : {}),
        };
        this.world.patched = state;
        return { id: "forgejo-runner/forgejo-runner", state };
    }
}

/** blumeops's indri config.yaml with the line that forwards the key to job containers. */
export const INDRI_CONFIG = [
    "runner:",
    "  file: /data/.runner",
    "  envs:",
    "    DOCKER_HOST: tcp://127.0.0.1:2375",
    "    TZ: America/Los_Angeles",
    "container:",
    "  network: host",
    '  options: "-e ZOT_CI_API_KEY"',
    "",
].join("\n");

/** ringtail's config as NixOS renders its settings. */
export const RINGTAIL_CONFIG = "log:\n  level: info\nrunner:\n  capacity: 1\n  timeout: 3h\n";

/** A fresh world where everything exists and works; the key expires in 60 days. */
export function healthyWorld(key: string): World {
    const expires = String(Math.floor(Date.now() / 1000) + 60 * 86_400);
    return {
        item: { credential: key, sections: [{ id: "rotation", label: "rotation", fields: [{ label: "expires", value: expires }] }] },
        containers: ["runner", "dind"],
        storeReady: true,
        files: new Map(),
        processEnv: new Map(),
        unitReadsFile: true,
        restarts: 0,
        runnerConfigMap: INDRI_CONFIG,
        hostConfig: RINGTAIL_CONFIG,
        hostRegistration: JSON.stringify(
            { id: 7, name: "ringtail-nix-builder", token: "-", labels: ["nix-container-builder:host"] },
            null,
            2,
        ),
    };
}
