import * as pulumi from "@pulumi/pulumi";

import type { RegistrySettings } from "../registry/probe";
import {
    KUBERNETES_SETTINGS,
    PROJECT,
    readSettings,
    REGISTRY_SETTINGS,
    setCommand,
    SSH_SETTINGS,
    TOP_SETTINGS,
    type ConfigIssue,
    type SettingValues,
} from "./settings";

export { PROJECT, type ConfigIssue } from "./settings";

type TopSettings = SettingValues<typeof TOP_SETTINGS>;

/** Where the key lives in 1Password and how it is checked before delivery (components/settings/settings.ts: TOP_SETTINGS). */
export type KeySourceConfig = Pick<
    TopSettings,
    "vault" | "item" | "field" | "expiryField" | "expiryWarningDays" | "keyIdField" | "keyLifetimeDays"
>;

/**
 * How to reach 1Password Connect: `onepassword:url` (or $OP_CONNECT_HOST)
 * and the token from $OP_CONNECT_TOKEN on the machine that runs pulumi. The
 * token stays in the program's memory: never an Output, an input of a
 * resource or the stack's state (components/onepassword/connect.ts).
 */
export interface ConnectConfig {
    url: string;
    token: string;
}

/** indri: a Deployment in a Kubernetes cluster, fed by External Secrets Operator (settings: KUBERNETES_SETTINGS). */
export type KubernetesRunnerConfig = { kind: "kubernetes" } & SettingValues<typeof KUBERNETES_SETTINGS>;

/**
 * ringtail: a systemd unit on a host reached over SSH (settings:
 * SSH_SETTINGS). The operator's own key is never a setting: it comes from
 * the ssh-agent at $SSH_AUTH_SOCK.
 */
export type SshRunnerConfig = { kind: "ssh" } & SettingValues<typeof SSH_SETTINGS>;

export type RunnerConfig = KubernetesRunnerConfig | SshRunnerConfig;

/** The registry the probe asks (`ci-registry-auth:registry`; settings: REGISTRY_SETTINGS). */
export type RegistryConfig = RegistrySettings;

/** Everything one stack needs, read once and validated. */
export interface StackConfig {
    key: KeySourceConfig;
    connect: ConnectConfig;
    /** Environment variable the runner and its jobs see. */
    envVar: string;
    /** Registry user the key belongs to (the probe logs in as it). */
    registryUser: string;
    registry: RegistryConfig;
    runner: RunnerConfig;
    /** What the stack should change but may run with (stored credentials, a cleartext Connect URL): warned on every run. */
    warnings: string[];
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
    keyIdField?: string;
    keyLifetimeDays?: number;
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
    /** $OP_CONNECT_HOST, when `onepassword:url` is in the stack's config too (the file's value wins). */
    connectHostEnv?: string;
    /** $OP_CONNECT_TOKEN. */
    connectToken?: string;
    /** `onepassword:token` is in the stack's config (no longer read: a warning says how to move it out). */
    storedConnectToken: boolean;
}

function parseKubernetes(obj: Record<string, unknown>, issues: ConfigIssue[]): KubernetesRunnerConfig | undefined {
    const before = issues.length;
    const values = readSettings(obj, "runner", KUBERNETES_SETTINGS, issues, ["kind"]);
    // Without issues every setting with a default is there.
    return issues.length === before ? { kind: "kubernetes", ...(values as SettingValues<typeof KUBERNETES_SETTINGS>) } : undefined;
}

/** The ssh runner's settings, then the rules between them: host-key pinning, and an ssh-agent for an up. */
function parseSsh(
    obj: Record<string, unknown>,
    raw: Pick<RawConfig, "hasSshAgent" | "preview">,
    issues: ConfigIssue[],
): SshRunnerConfig | undefined {
    const before = issues.length;
    const v = readSettings(obj, "runner", SSH_SETTINGS, issues, ["kind"]);
    const keyscan = `"$(ssh-keyscan -t ed25519 ${v.host ?? "HOST"} 2>/dev/null | cut -d' ' -f2-)"`;
    if (obj["hostKey"] === undefined && v.insecureIgnoreHostKey !== true) {
        issues.push({
            setting: `${PROJECT}:runner.hostKey`,
            problem: "is required: without it the SSH connection would trust any host and could hand the key to an impostor",
            fix:
                `check the key out of band, then ${setCommand("runner.hostKey", keyscan)}` +
                " (runner.insecureIgnoreHostKey: true turns the check off, for throwaway test hosts only)",
        });
    }
    if (obj["hostKey"] !== undefined && v.insecureIgnoreHostKey === true) {
        issues.push({
            setting: `${PROJECT}:runner.insecureIgnoreHostKey`,
            problem: "is true while runner.hostKey is set: the host key would be pinned, so the opt-out says something untrue",
            fix: "pulumi config rm --path runner.insecureIgnoreHostKey (keep the pinned host key)",
        });
    }
    // A preview connects to no host, so CI's preview holds no SSH key at all.
    if (!raw.preview && !raw.hasSshAgent) {
        issues.push({
            setting: "SSH_AUTH_SOCK",
            problem: "no ssh-agent is reachable, and `pulumi up` needs one holding the key that logs in to the host as runner.user",
            fix:
                'eval "$(ssh-agent)" && ssh-add ~/.ssh/ci-registry-auth, then run pulumi again ' +
                "(or, for one run: ssh-agent sh -c 'ssh-add ~/.ssh/ci-registry-auth && pulumi up')",
        });
    }
    if (issues.length > before) return undefined;
    const values = v as SettingValues<typeof SSH_SETTINGS>;
    return {
        kind: "ssh",
        ...values,
        ...(values.hostKey !== undefined ? { hostKey: values.hostKey.trim() } : {}),
        ...(values.checkKey !== undefined ? { checkKey: values.checkKey.trim() } : {}),
    };
}

/** The `registry` object; undefined (with the issues) when it is not valid. */
function parseRegistry(obj: unknown, issues: ConfigIssue[], warnings: string[]): RegistryConfig | undefined {
    if (obj !== undefined && (obj === null || typeof obj !== "object" || Array.isArray(obj))) {
        issues.push({
            setting: `${PROJECT}:registry`,
            problem: "is not an object",
            fix: setCommand("registry.url", "https://registry.ops.eblu.me"),
        });
        return undefined;
    }
    const before = issues.length;
    const v = readSettings((obj ?? {}) as Record<string, unknown>, "registry", REGISTRY_SETTINGS, issues);
    if (issues.length > before || v.url === undefined || v.repository === undefined) return undefined;
    const plain = cleartextHost(v.url);
    if (plain !== undefined) {
        warnings.push(
            `registry.url ${v.url} is plain http:// to ${plain}: the probe's key travels in cleartext, as every push's does. Use https://.`,
        );
    }
    return { url: v.url.replace(/\/$/, ""), repository: v.repository, ...(v.caBundle !== undefined ? { caBundle: v.caBundle } : {}) };
}

/** The `runner` object, validated for its kind; undefined (with the issues) when it is not valid. */
function parseRunner(obj: unknown, raw: Pick<RawConfig, "hasSshAgent" | "preview">, issues: ConfigIssue[]): RunnerConfig | undefined {
    if (obj === undefined || obj === null || typeof obj !== "object" || Array.isArray(obj)) {
        issues.push({
            setting: `${PROJECT}:runner`,
            problem: obj === undefined ? "is not set: the stack does not say which runner it serves" : "is not an object",
            fix: `${setCommand("runner.kind", "kubernetes")} (or ssh), in the stack's Pulumi.<stack>.yaml`,
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
        fix: setCommand("runner.kind", "kubernetes") + " (or ssh)",
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
    const given = Object.fromEntries(TOP_SETTINGS.map((t) => [t.key, raw[t.key]] as const).filter(([, value]) => value !== undefined));
    const top = readSettings(given, "", TOP_SETTINGS, issues) as TopSettings;
    const { vault, item, field, expiryField, expiryWarningDays, keyIdField, keyLifetimeDays, envVar, registryUser } = top;

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
    if (raw.connectHostEnv !== undefined && raw.connectHostEnv !== "" && raw.connectHostEnv !== connectUrl) {
        warnings.push(
            `onepassword:url in the stack's file (${connectUrl}) overrides $OP_CONNECT_HOST (${raw.connectHostEnv}): the URL is per ` +
                "machine (CI sets OP_CONNECT_HOST), and a committed one sends every machine to this one. " +
                "Fix: pulumi config rm onepassword:url, commit the stack file, and export OP_CONNECT_HOST on each machine.",
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
        key: { vault, item, field, expiryField, expiryWarningDays, keyIdField, keyLifetimeDays },
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
 * never read from it: the Connect token comes from $OP_CONNECT_TOKEN, the
 * SSH key from the ssh-agent (used by the command provider); a stack that
 * still keeps them gets a warning.
 */
export function loadConfig(): StackConfig {
    return configFromValues(pulumi.runtime.allConfig(), process.env, pulumi.runtime.isDryRun());
}

/** A config value as Pulumi keeps it (text) in its setting's type; text that is not one stays text, for the error. */
function typed(setting: { type: string }, text: string | undefined): unknown {
    if (text === undefined) return undefined;
    if (setting.type === "integer" && /^-?\d+$/.test(text)) return Number(text);
    if (setting.type === "boolean" && (text === "true" || text === "false")) return text === "true";
    return text;
}

/**
 * A stack's settings from its config values (`<namespace>:<key>` to text,
 * objects as JSON, as `pulumi.runtime.allConfig()` and the Automation
 * API's `getAllConfig` give them) and the environment, validated: what
 * the program reads, and what the rotation reads of every stack. Of
 * credentials kept in the config only their presence is looked at.
 */
export function configFromValues(values: Record<string, string>, env: NodeJS.ProcessEnv, preview: boolean): StackConfig {
    const ours = (key: string): string | undefined => values[`${PROJECT}:${key}`];
    const object = (key: string): unknown => {
        const text = ours(key);
        if (text === undefined) return undefined;
        try {
            return JSON.parse(text) as unknown;
        } catch {
            return text;
        }
    };
    const top: Record<string, unknown> = Object.fromEntries(
        TOP_SETTINGS.map((s): [string, unknown] => [s.key, typed(s, ours(s.key))]).filter(([, v]) => v !== undefined),
    );
    return parseConfig({
        ...(top as Partial<RawConfig>),
        runner: object("runner"),
        registry: object("registry"),
        storedSshPrivateKey: ours("sshPrivateKey") !== undefined,
        hasSshAgent: (env["SSH_AUTH_SOCK"] ?? "") !== "",
        preview,
        connectUrl: values["onepassword:url"] ?? env["OP_CONNECT_HOST"],
        ...(values["onepassword:url"] !== undefined && env["OP_CONNECT_HOST"] !== undefined
            ? { connectHostEnv: env["OP_CONNECT_HOST"] }
            : {}),
        connectToken: env["OP_CONNECT_TOKEN"],
        storedConnectToken: values["onepassword:token"] !== undefined,
    });
}
