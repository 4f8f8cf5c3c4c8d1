import * as pulumi from "@pulumi/pulumi";

import { X509Certificate } from "node:crypto";

import { isValidEnvVarName } from "./envfile";
import type { RegistrySettings } from "./registry-probe";
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

/**
 * How to reach 1Password Connect: `onepassword:url` (or $OP_CONNECT_HOST)
 * and the token from $OP_CONNECT_TOKEN on the machine that runs pulumi. The
 * token stays in the program's memory: never an Output, an input of a
 * resource or the stack's state (components/connect.ts).
 */
export interface ConnectConfig {
    url: string;
    token: string;
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
    /** The ServiceAccount that CI's previews and key-health read the cluster as (get only). Default: `ci-registry-auth-ci`. */
    ciServiceAccount: string;
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
    /**
     * The public key of key-health's SSH key, which the host restricts to the
     * read-only check (README, "Trust model"); the check reports whether the
     * restriction is in place. Default: none (not checked). The operator's own
     * key is never a setting: it comes from the ssh-agent at $SSH_AUTH_SOCK.
     */
    checkKey?: string;
}

export type RunnerConfig = KubernetesRunnerConfig | SshRunnerConfig;

/**
 * The registry the probe asks (`ci-registry-auth:registry`): `url`
 * (default `https://registry.ops.eblu.me`), `repository` (a repository CI
 * pushes to; default `blumeops/runner-job-image`), `caBundle` (PEM of a
 * private CA; default: the system's CAs).
 */
export type RegistryConfig = RegistrySettings;

/** Everything one stack needs, read once and validated. */
export interface StackConfig {
    key: KeySourceConfig;
    connect: ConnectConfig;
    /** Environment variable the runner sees. Pulumi.yaml default: `ZOT_CI_API_KEY`. */
    envVar: string;
    /** Registry user the key belongs to (reported, not used to log in). Pulumi.yaml default: `zot-ci`. */
    registryUser: string;
    registry: RegistryConfig;
    runner: RunnerConfig;
    /** What the stack should change but may run with (stored credentials, a cleartext Connect URL): warned on every run. */
    warnings: string[];
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
    registry?: unknown;
    /** `ci-registry-auth:sshPrivateKey` is in the stack's config (no longer read: a warning says how to move it out). */
    storedSshPrivateKey: boolean;
    /** An ssh-agent is reachable ($SSH_AUTH_SOCK). */
    hasSshAgent: boolean;
    /** This run is a preview, which connects to no host and needs no SSH credential. */
    preview: boolean;
    connectUrl?: string;
    /** $OP_CONNECT_TOKEN. */
    connectToken?: string;
    /** `onepassword:token` is in the stack's config (no longer read: a warning says how to move it out). */
    storedConnectToken: boolean;
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
    ciServiceAccount: "ci-registry-auth-ci",
} as const;

const REGISTRY_DEFAULTS = {
    url: "https://registry.ops.eblu.me",
    repository: "blumeops/runner-job-image",
} as const;

/** An OCI distribution repository name (lowercase path components). */
const REPOSITORY = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;

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

    /** The key is not in the object at all (a key with no value, or "", is there, and refused). */
    absent(key: string): boolean {
        return this.obj[key] === undefined;
    }

    /**
     * A key written with no value (YAML `hostKey:`, read as null) or as ""
     * is refused, never taken as "unset": an empty security setting must
     * not silently turn into its default (for runner.hostKey: no pinning).
     */
    private empty(key: string, example: string): boolean {
        const raw = this.obj[key];
        if (raw !== null && raw !== "") {
            return false;
        }
        this.issues.push({
            setting: `${PROJECT}:${this.path(key)}`,
            problem: 'is empty (a key with no value, or "")',
            fix: `${set(this.path(key), example)}, or delete the line to use its default`,
        });
        return true;
    }

    string(key: string, fallback: string | undefined, valid: (v: string) => boolean, what: string, example: string): string | undefined {
        const raw = this.obj[key];
        if (raw === undefined) {
            return fallback;
        }
        if (this.empty(key, example)) {
            return undefined;
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
        if (raw === undefined) {
            return fallback;
        }
        if (this.empty(key, example)) {
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
        if (raw === undefined) {
            return false;
        }
        if (this.empty(key, example)) {
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
        "ciServiceAccount",
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
    const ciServiceAccount = r.string(
        "ciServiceAccount",
        K8S_DEFAULTS.ciServiceAccount,
        isDns1123Subdomain,
        "a ServiceAccount name",
        K8S_DEFAULTS.ciServiceAccount,
    );
    issues.push(...r.issues);
    if (r.issues.length > 0 || !namespace || !deployment || !container || !store || !secretName || !fieldManager || !ciServiceAccount) {
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
        ciServiceAccount,
    };
}

function parseSsh(
    obj: Record<string, unknown>,
    raw: Pick<RawConfig, "hasSshAgent" | "preview">,
    issues: ConfigIssue[],
): SshRunnerConfig | undefined {
    const r = new Reader(obj, "runner");
    r.unknownKeys(["kind", "host", "port", "user", "hostKey", "insecureIgnoreHostKey", "envFile", "unit", "checkKey"]);
    const host = r.string("host", undefined, isHost, "a host name or IP address (no user@, no port)", "ringtail");
    if (r.absent("host")) {
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
    if (r.absent("hostKey") && !insecureIgnoreHostKey) {
        r.issues.push({
            setting: `${PROJECT}:runner.hostKey`,
            problem: "is required: without it the SSH connection would trust any host and could hand the key to an impostor",
            fix:
                `check the key out of band, then ${set("runner.hostKey", `"$(ssh-keyscan -t ed25519 ${host ?? "HOST"} 2>/dev/null | cut -d' ' -f2-)"`)}` +
                " (runner.insecureIgnoreHostKey: true turns the check off, for throwaway test hosts only)",
        });
    }
    if (!r.absent("hostKey") && insecureIgnoreHostKey) {
        r.issues.push({
            setting: `${PROJECT}:runner.insecureIgnoreHostKey`,
            problem: "is true while runner.hostKey is set: the host key would be pinned, so the opt-out says something untrue",
            fix: "pulumi config rm --path runner.insecureIgnoreHostKey (keep the pinned host key)",
        });
    }
    const checkKey = r.string(
        "checkKey",
        undefined,
        isSshPublicKey,
        'one public key in authorized_keys form ("ssh-ed25519 AAAA... ci-registry-auth-check")',
        '"$(cat ~/.ssh/ci-registry-auth-check.pub)"',
    );
    const envFile = r.string(
        "envFile",
        SSH_DEFAULTS.envFile,
        (v) => envFilePathProblem(v) === undefined,
        `a usable env file path (${envFilePathProblem(String(obj["envFile"])) ?? "invalid"})`,
        SSH_DEFAULTS.envFile,
    );
    const unit = r.string("unit", SSH_DEFAULTS.unit, isSystemdServiceName, "a systemd .service unit name", SSH_DEFAULTS.unit);
    // A preview connects to no host, so CI's preview holds no SSH key at all.
    if (!raw.preview && !raw.hasSshAgent) {
        r.issues.push({
            setting: "SSH_AUTH_SOCK",
            problem: "no ssh-agent is reachable, and `pulumi up` needs one holding the key that logs in to the host as runner.user",
            fix:
                'eval "$(ssh-agent)" && ssh-add ~/.ssh/ci-registry-auth, then run pulumi again ' +
                "(or, for one run: ssh-agent sh -c 'ssh-add ~/.ssh/ci-registry-auth && pulumi up')",
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
        ...(checkKey !== undefined ? { checkKey: checkKey.trim() } : {}),
    };
}

/** The `registry` object; undefined (with the issues) when it is not valid. */
function parseRegistry(obj: unknown, issues: ConfigIssue[], warnings: string[]): RegistryConfig | undefined {
    if (obj !== undefined && (obj === null || typeof obj !== "object" || Array.isArray(obj))) {
        issues.push({
            setting: `${PROJECT}:registry`,
            problem: "is not an object",
            fix: set("registry.url", REGISTRY_DEFAULTS.url),
        });
        return undefined;
    }
    const r = new Reader((obj ?? {}) as Record<string, unknown>, "registry");
    r.unknownKeys(["url", "repository", "caBundle"]);
    const url = r.string(
        "url",
        REGISTRY_DEFAULTS.url,
        (v) => /^https?:\/\/[^\s/?#]+\/?$/.test(v),
        "the registry's http(s) URL, without a path",
        REGISTRY_DEFAULTS.url,
    );
    const repository = r.string(
        "repository",
        REGISTRY_DEFAULTS.repository,
        (v) => v.length <= 255 && REPOSITORY.test(v),
        "a repository name (lowercase, e.g. blumeops/runner-job-image)",
        REGISTRY_DEFAULTS.repository,
    );
    const caBundle = r.string(
        "caBundle",
        undefined,
        (v) => pemCertificates(v) > 0,
        "one or more PEM certificates (-----BEGIN CERTIFICATE-----)",
        '"$(cat private-ca.pem)"',
    );
    issues.push(...r.issues);
    if (r.issues.length > 0 || url === undefined || repository === undefined) return undefined;
    if (cleartextHost(url) !== undefined) {
        warnings.push(
            `registry.url ${url} is plain http:// to ${cleartextHost(url) ?? ""}: the probe's key travels in cleartext, as every push's does. Use https://.`,
        );
    }
    return { url: url.replace(/\/$/, ""), repository, ...(caBundle !== undefined ? { caBundle } : {}) };
}

/** How many PEM certificates `text` holds, each parsed; 0 when any does not parse. */
function pemCertificates(text: string): number {
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    try {
        for (const block of blocks) new X509Certificate(block);
    } catch {
        return 0;
    }
    return blocks.length;
}

/** The `runner` object, validated for its kind; undefined (with the issues) when it is not valid. */
function parseRunner(obj: unknown, raw: Pick<RawConfig, "hasSshAgent" | "preview">, issues: ConfigIssue[]): RunnerConfig | undefined {
    if (obj === undefined || obj === null || typeof obj !== "object" || Array.isArray(obj)) {
        issues.push({
            setting: `${PROJECT}:runner`,
            problem: obj === undefined ? "is not set: the stack does not say which runner it serves" : "is not an object",
            fix: `${set("runner.kind", "kubernetes")} (or ssh), in the stack's Pulumi.<stack>.yaml`,
        });
        return undefined;
    }
    const record = obj as Record<string, unknown>;
    const kind = record["kind"];
    if (kind === "kubernetes") return parseKubernetes(record, issues);
    if (kind === "ssh") return parseSsh(record, raw, issues);
    issues.push({
        setting: `${PROJECT}:runner.kind`,
        problem: kind === undefined ? "is not set" : `${JSON.stringify(kind)} is not a runner kind (kubernetes or ssh)`,
        fix: set("runner.kind", "kubernetes") + " (or ssh)",
    });
    return undefined;
}

/**
 * A stack's `runner` object as the program reads it (defaults applied),
 * for a reader that connects to no runner and holds no credential
 * (key-health's re-read). Throws one ConfigError.
 */
export function readRunnerSettings(obj: unknown): RunnerConfig {
    const issues: ConfigIssue[] = [];
    const runner = parseRunner(obj, { hasSshAgent: false, preview: true }, issues);
    if (issues.length > 0 || runner === undefined) throw new ConfigError(issues);
    return runner;
}

/**
 * Validates everything but the secrets themselves (which stay Outputs).
 * Pure: the caller reads Pulumi config and the environment into `raw`.
 * Throws one ConfigError listing every problem.
 */
export function parseConfig(raw: RawConfig): StackConfig {
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

    const warnings: string[] = [];
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
    } else if (cleartextHost(connectUrl) !== undefined) {
        warnings.push(
            `onepassword:url ${connectUrl} is plain http:// to ${cleartextHost(connectUrl) ?? ""}, not this machine: ` +
                "the Connect token and the key travel in cleartext over the network. Use https:// (Connect serves TLS with OP_HTTPS_PORT and a certificate).",
        );
    }
    const connectToken = raw.connectToken ?? "";
    if (connectToken === "") {
        issues.push({
            setting: "OP_CONNECT_TOKEN",
            problem: "the 1Password Connect token is not in the environment, where the program reads it",
            fix:
                "export OP_CONNECT_TOKEN=\"$(op read 'op://<vault>/<connect token item>/credential')\" (or from your secret store), then run pulumi again" +
                (raw.storedConnectToken ? "; the token in the stack's config is no longer read (see the warning)" : ""),
        });
    }
    if (raw.storedConnectToken) {
        warnings.push(
            "onepassword:token is kept in the stack's encrypted config, which anyone with the stack's passphrase (CI too) can decrypt, " +
                'and this program no longer reads it. Move it out: export OP_CONNECT_TOKEN="$(pulumi config get onepassword:token)" ' +
                "(or read it from 1Password with op read), then pulumi config rm onepassword:token. " +
                "Older states and backups of this stack hold it: rotate the Connect token once it is moved.",
        );
    }
    if (raw.storedSshPrivateKey) {
        warnings.push(
            `${PROJECT}:sshPrivateKey is kept in the stack's encrypted config, which anyone with the stack's passphrase (CI too) can decrypt, ` +
                "and this program no longer reads it. Move it out: pulumi config get ci-registry-auth:sshPrivateKey > ~/.ssh/ci-registry-auth " +
                "&& chmod 600 ~/.ssh/ci-registry-auth && ssh-add ~/.ssh/ci-registry-auth, then pulumi config rm ci-registry-auth:sshPrivateKey. " +
                "Older states and backups of this stack hold it: replace that key on the host once it is moved.",
        );
    }

    const runner = parseRunner(raw.runner, raw, issues);
    const registry = parseRegistry(raw.registry, issues, warnings);

    if (issues.length > 0 || runner === undefined || registry === undefined) {
        throw new ConfigError(issues);
    }
    return {
        key: { vault, item, field, expiryField, expiryWarningDays },
        connect: { url: connectUrl, token: connectToken },
        envVar,
        registryUser,
        registry,
        runner,
        warnings,
    };
}

/** The host of a plain-http URL when it is not this machine (loopback), else undefined. */
export function cleartextHost(url: string): string | undefined {
    let parsed: URL;
    try {
        parsed = new URL(url);
    } catch {
        return undefined;
    }
    if (parsed.protocol !== "http:") return undefined;
    const host = parsed.hostname.replace(/^\[|\]$/g, "");
    const loopback = host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
    return loopback ? undefined : host;
}

/**
 * Reads this stack's Pulumi config (once) and validates it. Credentials are
 * never read from it: the Connect token comes from $OP_CONNECT_TOKEN (read
 * by the provider), the SSH key from the ssh-agent (used by the command
 * provider); a stack that still keeps them gets a warning.
 */
export function loadConfig(): StackConfig {
    const cfg = new pulumi.Config(PROJECT);
    const op = new pulumi.Config("onepassword");
    const raw: RawConfig = {
        vault: cfg.get("vault"),
        item: cfg.get("item"),
        field: cfg.get("field"),
        expiryField: cfg.get("expiryField"),
        expiryWarningDays: cfg.getNumber("expiryWarningDays"),
        envVar: cfg.get("envVar"),
        registryUser: cfg.get("registryUser"),
        runner: cfg.getObject<unknown>("runner"),
        registry: cfg.getObject<unknown>("registry"),
        // Only whether they are there, for the warning: their values are never read.
        storedSshPrivateKey: cfg.getSecret("sshPrivateKey") !== undefined,
        hasSshAgent: (process.env["SSH_AUTH_SOCK"] ?? "") !== "",
        preview: pulumi.runtime.isDryRun(),
        connectUrl: op.get("url") ?? process.env["OP_CONNECT_HOST"],
        connectToken: process.env["OP_CONNECT_TOKEN"],
        storedConnectToken: op.getSecret("token") !== undefined,
    };
    return parseConfig(raw);
}
