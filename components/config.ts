import * as pulumi from "@pulumi/pulumi";

import { isValidEnvVarName } from "./envfile";
import {
    envFilePathProblem,
    isDns1123Label,
    isDns1123Subdomain,
    isHost,
    isSshPublicKey,
    isSshUser,
    isSystemdServiceName,
} from "./validate";

/** The Pulumi project name, which is also the config namespace. */
export const PROJECT = "ci-registry-auth";

/** Where the key lives in 1Password and how it is checked before delivery. */
export interface KeySourceConfig {
    /** Vault name or id. Pulumi.yaml default: `blumeops`. */
    vault: string;
    /** Item title. Pulumi.yaml default: `zot-ci-apikey`. */
    item: string;
    /** Field id or label holding the key. Pulumi.yaml default: `credential`. */
    field: string;
    /** Label of the date field that records when the key expires. Pulumi.yaml default: `expires`. */
    expiryField: string;
    /** Warn when the key expires within this many days. Pulumi.yaml default: 14. */
    expiryWarningDays: number;
}

/** How to reach 1Password Connect (`onepassword:url`, `onepassword:token`). */
export interface ConnectConfig {
    url: string;
    token: pulumi.Output<string>;
}

/** indri: a Deployment in a Kubernetes cluster, fed by External Secrets Operator. */
export interface KubernetesRunnerConfig {
    kind: "kubernetes";
    /** kubeconfig context. Default: the kubeconfig's current context. */
    context?: string;
    /** Path of the kubeconfig. Default: `$KUBECONFIG`, then `~/.kube/config`. */
    kubeconfig?: string;
    /** Default: `forgejo-runner`. */
    namespace: string;
    /** Default: `forgejo-runner`. */
    deployment: string;
    /** Container that receives the variable. Default: `runner`. */
    container: string;
    /** ClusterSecretStore that reads 1Password. Default: `onepassword-blumeops`. */
    clusterSecretStore: string;
    /** Name of the ExternalSecret and the Secret it owns. Default: `zot-ci-api-key`. */
    secretName: string;
    /** Server-side-apply field manager of our patch. Default: `ci-registry-auth`. */
    fieldManager: string;
    /** Bound on waiting for ESO to sync the Secret. Default: 120. */
    syncTimeoutSeconds: number;
    /** Bound on waiting for the Deployment to roll out. Default: 600. */
    rolloutTimeoutSeconds: number;
}

/** ringtail: a systemd unit on a host reached over SSH. */
export interface SshRunnerConfig {
    kind: "ssh";
    host: string;
    /** Default: 22. */
    port: number;
    /** Default: `root` (the file is root-owned and the unit is restarted). */
    user: string;
    /** The host's public key, `authorized_keys` form. Required unless insecureIgnoreHostKey. */
    hostKey?: string;
    /** Skip host-key pinning. Default: false. Never use it outside a throwaway test. */
    insecureIgnoreHostKey: boolean;
    /** Default: `/etc/forgejo-runner/zot-api-key.env`. */
    envFile: string;
    /** Default: `gitea-runner-nix_container_builder.service`. */
    unit: string;
    /** Secret config `sshPrivateKey`; when absent the ssh-agent at `$SSH_AUTH_SOCK` is used. */
    privateKey?: pulumi.Output<string>;
}

export type RunnerConfig = KubernetesRunnerConfig | SshRunnerConfig;

/** Everything one stack needs, read once and validated. */
export interface StackConfig {
    key: KeySourceConfig;
    connect: ConnectConfig;
    /** Environment variable the runner sees. Pulumi.yaml default: `ZOT_CI_API_KEY`. */
    envVar: string;
    /** Registry user the key belongs to (reported, not used to log in). Pulumi.yaml default: `zot-ci`. */
    registryUser: string;
    runner: RunnerConfig;
}

/** One configuration problem: the setting, what is wrong, and the fix. */
export interface ConfigIssue {
    setting: string;
    problem: string;
    fix: string;
}

/** Thrown with every problem found, so one run shows all of them. */
export class ConfigError extends pulumi.RunError {
    constructor(readonly issues: ConfigIssue[]) {
        super(
            `${PROJECT}: the stack configuration is invalid:\n` +
                issues.map((i) => `  - ${i.setting}: ${i.problem}.\n    Fix: ${i.fix}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

/** Plain values read from Pulumi config and the environment, before validation. */
export interface RawConfig {
    vault?: string;
    item?: string;
    field?: string;
    expiryField?: string;
    expiryWarningDays?: number;
    envVar?: string;
    registryUser?: string;
    runner?: unknown;
    hasSshPrivateKey: boolean;
    hasSshAgent: boolean;
    connectUrl?: string;
    hasConnectToken: boolean;
}

const K8S_DEFAULTS = {
    namespace: "forgejo-runner",
    deployment: "forgejo-runner",
    container: "runner",
    clusterSecretStore: "onepassword-blumeops",
    secretName: "zot-ci-api-key",
    fieldManager: PROJECT,
    syncTimeoutSeconds: 120,
    rolloutTimeoutSeconds: 600,
} as const;

const SSH_DEFAULTS = {
    port: 22,
    user: "root",
    envFile: "/etc/forgejo-runner/zot-api-key.env",
    unit: "gitea-runner-nix_container_builder.service",
} as const;

const set = (path: string, example: string): string => `pulumi config set --path ${path} ${example}`;

/** Collects issues while reading one object of untyped config. */
class Reader {
    readonly issues: ConfigIssue[] = [];

    constructor(
        private readonly obj: Record<string, unknown>,
        private readonly prefix: string,
    ) {}

    private path(key: string): string {
        return `${this.prefix}.${key}`;
    }

    string(key: string, fallback: string | undefined, valid: (v: string) => boolean, what: string, example: string): string | undefined {
        const raw = this.obj[key];
        if (raw === undefined || raw === null) {
            return fallback;
        }
        if (typeof raw !== "string" || !valid(raw)) {
            this.issues.push({
                setting: `${PROJECT}:${this.path(key)}`,
                problem: `${JSON.stringify(raw)} is not ${what}`,
                fix: set(this.path(key), example),
            });
            return undefined;
        }
        return raw;
    }

    integer(key: string, fallback: number, min: number, max: number, example: string): number {
        const raw = this.obj[key];
        if (raw === undefined || raw === null) {
            return fallback;
        }
        if (typeof raw !== "number" || !Number.isInteger(raw) || raw < min || raw > max) {
            this.issues.push({
                setting: `${PROJECT}:${this.path(key)}`,
                problem: `${JSON.stringify(raw)} is not a whole number from ${min} to ${max}`,
                fix: set(this.path(key), example),
            });
            return fallback;
        }
        return raw;
    }

    boolean(key: string, example: string): boolean {
        const raw = this.obj[key];
        if (raw === undefined || raw === null) {
            return false;
        }
        if (typeof raw !== "boolean") {
            this.issues.push({
                setting: `${PROJECT}:${this.path(key)}`,
                problem: `${JSON.stringify(raw)} is not true or false`,
                fix: set(this.path(key), example),
            });
            return false;
        }
        return raw;
    }

    unknownKeys(known: readonly string[]): void {
        for (const key of Object.keys(this.obj)) {
            if (!known.includes(key)) {
                this.issues.push({
                    setting: `${PROJECT}:${this.path(key)}`,
                    problem: `unknown setting for this runner kind (known: ${known.join(", ")})`,
                    fix: `pulumi config rm --path ${this.path(key)}`,
                });
            }
        }
    }
}

function parseKubernetes(obj: Record<string, unknown>, issues: ConfigIssue[]): KubernetesRunnerConfig | undefined {
    const r = new Reader(obj, "runner");
    r.unknownKeys([
        "kind",
        "context",
        "kubeconfig",
        "namespace",
        "deployment",
        "container",
        "clusterSecretStore",
        "secretName",
        "fieldManager",
        "syncTimeoutSeconds",
        "rolloutTimeoutSeconds",
    ]);
    const nonEmpty = (v: string): boolean => v.length > 0 && !/[\0\n]/.test(v);
    const context = r.string("context", undefined, nonEmpty, "a kubeconfig context name", "minikube");
    const kubeconfig = r.string("kubeconfig", undefined, nonEmpty, "a kubeconfig path", "~/.kube/config");
    const namespace = r.string("namespace", K8S_DEFAULTS.namespace, isDns1123Label, "a Kubernetes namespace name", K8S_DEFAULTS.namespace);
    const deployment = r.string(
        "deployment",
        K8S_DEFAULTS.deployment,
        isDns1123Subdomain,
        "a Kubernetes object name",
        K8S_DEFAULTS.deployment,
    );
    const container = r.string("container", K8S_DEFAULTS.container, isDns1123Label, "a container name", K8S_DEFAULTS.container);
    const store = r.string(
        "clusterSecretStore",
        K8S_DEFAULTS.clusterSecretStore,
        isDns1123Subdomain,
        "a ClusterSecretStore name",
        K8S_DEFAULTS.clusterSecretStore,
    );
    const secretName = r.string(
        "secretName",
        K8S_DEFAULTS.secretName,
        isDns1123Subdomain,
        "a Kubernetes object name",
        K8S_DEFAULTS.secretName,
    );
    const fieldManager = r.string(
        "fieldManager",
        K8S_DEFAULTS.fieldManager,
        (v) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(v),
        "a field manager name (letters, digits, '.', '_', '-'; at most 128)",
        K8S_DEFAULTS.fieldManager,
    );
    const syncTimeoutSeconds = r.integer("syncTimeoutSeconds", K8S_DEFAULTS.syncTimeoutSeconds, 10, 3600, "120");
    const rolloutTimeoutSeconds = r.integer("rolloutTimeoutSeconds", K8S_DEFAULTS.rolloutTimeoutSeconds, 30, 7200, "600");
    issues.push(...r.issues);
    if (r.issues.length > 0 || !namespace || !deployment || !container || !store || !secretName || !fieldManager) {
        return undefined;
    }
    return {
        kind: "kubernetes",
        ...(context !== undefined ? { context } : {}),
        ...(kubeconfig !== undefined ? { kubeconfig } : {}),
        namespace,
        deployment,
        container,
        clusterSecretStore: store,
        secretName,
        fieldManager,
        syncTimeoutSeconds,
        rolloutTimeoutSeconds,
    };
}

function parseSsh(obj: Record<string, unknown>, raw: RawConfig, issues: ConfigIssue[]): Omit<SshRunnerConfig, "privateKey"> | undefined {
    const r = new Reader(obj, "runner");
    r.unknownKeys(["kind", "host", "port", "user", "hostKey", "insecureIgnoreHostKey", "envFile", "unit"]);
    const host = r.string("host", undefined, isHost, "a host name or IP address (no user@, no port)", "ringtail");
    if (obj["host"] === undefined) {
        r.issues.push({
            setting: `${PROJECT}:runner.host`,
            problem: "is required for ssh runners",
            fix: set("runner.host", "ringtail"),
        });
    }
    const port = r.integer("port", SSH_DEFAULTS.port, 1, 65535, "22");
    const user = r.string("user", SSH_DEFAULTS.user, isSshUser, "a login name", SSH_DEFAULTS.user);
    const insecureIgnoreHostKey = r.boolean("insecureIgnoreHostKey", "false");
    const hostKey = r.string(
        "hostKey",
        undefined,
        isSshPublicKey,
        'one public host key in authorized_keys form ("ssh-ed25519 AAAA...")',
        `"$(ssh-keyscan -t ed25519 ${host ?? "HOST"} 2>/dev/null | cut -d' ' -f2-)"`,
    );
    if (obj["hostKey"] === undefined && !insecureIgnoreHostKey) {
        r.issues.push({
            setting: `${PROJECT}:runner.hostKey`,
            problem: "is required: without it the SSH connection would trust any host and could hand the key to an impostor",
            fix:
                `check the key out of band, then ${set("runner.hostKey", `"$(ssh-keyscan -t ed25519 ${host ?? "HOST"} 2>/dev/null | cut -d' ' -f2-)"`)}` +
                " (runner.insecureIgnoreHostKey: true turns the check off, for throwaway test hosts only)",
        });
    }
    const envFile = r.string(
        "envFile",
        SSH_DEFAULTS.envFile,
        (v) => envFilePathProblem(v) === undefined,
        `a usable env file path (${envFilePathProblem(String(obj["envFile"])) ?? "invalid"})`,
        SSH_DEFAULTS.envFile,
    );
    const unit = r.string("unit", SSH_DEFAULTS.unit, isSystemdServiceName, "a systemd .service unit name", SSH_DEFAULTS.unit);
    if (!raw.hasSshPrivateKey && !raw.hasSshAgent) {
        r.issues.push({
            setting: `${PROJECT}:sshPrivateKey`,
            problem: "no SSH credential: the secret is not set and no ssh-agent is reachable ($SSH_AUTH_SOCK is unset)",
            fix: `pulumi config set --secret ${PROJECT}:sshPrivateKey < ~/.ssh/id_ed25519 (or start an ssh-agent holding the key)`,
        });
    }
    issues.push(...r.issues);
    if (r.issues.length > 0 || !host || !user || !envFile || !unit) {
        return undefined;
    }
    return {
        kind: "ssh",
        host,
        port,
        user,
        ...(hostKey !== undefined ? { hostKey: hostKey.trim() } : {}),
        insecureIgnoreHostKey,
        envFile,
        unit,
    };
}

/**
 * Validates everything but the secrets themselves (which stay Outputs).
 * Pure: the caller reads Pulumi config and the environment into `raw`.
 * Throws one ConfigError listing every problem.
 */
export function parseConfig(raw: RawConfig): Omit<StackConfig, "connect" | "runner"> & {
    runner: KubernetesRunnerConfig | Omit<SshRunnerConfig, "privateKey">;
    connectUrl: string;
} {
    const issues: ConfigIssue[] = [];
    const need = (key: keyof RawConfig, value: string | undefined, example: string): string => {
        if (value === undefined || value.trim() === "" || /[\0\n]/.test(value)) {
            issues.push({
                setting: `${PROJECT}:${key}`,
                problem: value === undefined ? "is not set" : "is empty or spans lines",
                fix: `pulumi config set ${PROJECT}:${key} ${example}`,
            });
            return "";
        }
        return value;
    };
    const vault = need("vault", raw.vault, "blumeops");
    const item = need("item", raw.item, "zot-ci-apikey");
    const field = need("field", raw.field, "credential");
    const expiryField = need("expiryField", raw.expiryField, "expires");
    const registryUser = need("registryUser", raw.registryUser, "zot-ci");
    const envVar = need("envVar", raw.envVar, "ZOT_CI_API_KEY");
    if (envVar !== "" && !isValidEnvVarName(envVar)) {
        issues.push({
            setting: `${PROJECT}:envVar`,
            problem: `${JSON.stringify(envVar)} is not a valid environment variable name (letters, digits, '_'; not starting with a digit)`,
            fix: `pulumi config set ${PROJECT}:envVar ZOT_CI_API_KEY`,
        });
    }
    const expiryWarningDays = raw.expiryWarningDays ?? Number.NaN;
    if (!Number.isInteger(expiryWarningDays) || expiryWarningDays < 0 || expiryWarningDays > 365) {
        issues.push({
            setting: `${PROJECT}:expiryWarningDays`,
            problem:
                raw.expiryWarningDays === undefined
                    ? "is not set"
                    : `${String(expiryWarningDays)} is not a whole number of days from 0 to 365`,
            fix: `pulumi config set ${PROJECT}:expiryWarningDays 14`,
        });
    }

    const connectUrl = raw.connectUrl ?? "";
    if (connectUrl === "") {
        issues.push({
            setting: "onepassword:url",
            problem: "the 1Password Connect URL is not set (nor is $OP_CONNECT_HOST)",
            fix: "pulumi config set onepassword:url https://connect.example:8080",
        });
    } else if (!/^https?:\/\/[^\s/]+(\/\S*)?$/.test(connectUrl)) {
        issues.push({
            setting: "onepassword:url",
            problem: `${JSON.stringify(connectUrl)} is not an http(s) URL`,
            fix: "pulumi config set onepassword:url https://connect.example:8080",
        });
    }
    if (!raw.hasConnectToken) {
        issues.push({
            setting: "onepassword:token",
            problem: "the 1Password Connect token is not set (nor is $OP_CONNECT_TOKEN)",
            fix: "pulumi config set --secret onepassword:token < connect-token.txt",
        });
    }

    let runner: KubernetesRunnerConfig | Omit<SshRunnerConfig, "privateKey"> | undefined;
    const obj = raw.runner;
    if (obj === undefined || obj === null || typeof obj !== "object" || Array.isArray(obj)) {
        issues.push({
            setting: `${PROJECT}:runner`,
            problem: obj === undefined ? "is not set: the stack does not say which runner it serves" : "is not an object",
            fix: `${set("runner.kind", "kubernetes")} (or ssh), in the stack's Pulumi.<stack>.yaml`,
        });
    } else {
        const record = obj as Record<string, unknown>;
        const kind = record["kind"];
        if (kind === "kubernetes") {
            runner = parseKubernetes(record, issues);
        } else if (kind === "ssh") {
            runner = parseSsh(record, raw, issues);
        } else {
            issues.push({
                setting: `${PROJECT}:runner.kind`,
                problem: kind === undefined ? "is not set" : `${JSON.stringify(kind)} is not a runner kind (kubernetes or ssh)`,
                fix: set("runner.kind", "kubernetes") + " (or ssh)",
            });
        }
    }

    if (issues.length > 0 || runner === undefined) {
        throw new ConfigError(issues);
    }
    return {
        key: { vault, item, field, expiryField, expiryWarningDays },
        envVar,
        registryUser,
        runner,
        connectUrl,
    };
}

/** Reads this stack's Pulumi config (once) and validates it. */
export function loadConfig(): StackConfig {
    const cfg = new pulumi.Config(PROJECT);
    const op = new pulumi.Config("onepassword");
    const sshPrivateKey = cfg.getSecret("sshPrivateKey");
    const tokenFromConfig = op.getSecret("token");
    const tokenFromEnv = process.env["OP_CONNECT_TOKEN"];
    const raw: RawConfig = {
        vault: cfg.get("vault"),
        item: cfg.get("item"),
        field: cfg.get("field"),
        expiryField: cfg.get("expiryField"),
        expiryWarningDays: cfg.getNumber("expiryWarningDays"),
        envVar: cfg.get("envVar"),
        registryUser: cfg.get("registryUser"),
        runner: cfg.getObject<unknown>("runner"),
        hasSshPrivateKey: sshPrivateKey !== undefined,
        hasSshAgent: (process.env["SSH_AUTH_SOCK"] ?? "") !== "",
        connectUrl: op.get("url") ?? process.env["OP_CONNECT_HOST"],
        hasConnectToken: tokenFromConfig !== undefined || (tokenFromEnv ?? "") !== "",
    };
    const parsed = parseConfig(raw);
    const token = tokenFromConfig ?? pulumi.secret(tokenFromEnv ?? "");
    const runner: RunnerConfig =
        parsed.runner.kind === "ssh"
            ? { ...parsed.runner, ...(sshPrivateKey !== undefined ? { privateKey: sshPrivateKey } : {}) }
            : parsed.runner;
    return {
        key: parsed.key,
        connect: { url: parsed.connectUrl, token },
        envVar: parsed.envVar,
        registryUser: parsed.registryUser,
        runner,
    };
}
