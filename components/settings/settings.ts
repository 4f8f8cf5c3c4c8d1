/**
 * The stack's settings, each written once: its type, default, rule, an
 * example for the fix, and its meaning. One table per object of config
 * (the top-level keys, `registry`, and `runner` per kind) drives parsing
 * ({@link readSettings}), the unknown-key check and the README's
 * Configuration table ({@link settingsTable}, checked by a unit test).
 * Defaults live here only: Pulumi.yaml declares none, and the committed
 * stack files set only what differs.
 */
import { X509Certificate } from "node:crypto";

import { isValidEnvVarName } from "../ssh/envfile";
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

/** One setting. */
export interface Setting {
    readonly key: string;
    readonly type: "string" | "integer" | "boolean";
    /** Used when the key is absent (a key with no value, or "", is refused). */
    readonly default?: string | number | boolean;
    /** Absent is an error (no default). */
    readonly required?: true;
    /** What a valid value is, for the error ("a Kubernetes namespace name"). */
    readonly what: string;
    /** Why a string value is not valid ("" for no detail), or undefined when it is. */
    readonly check?: (value: string) => string | undefined;
    readonly min?: number;
    readonly max?: number;
    /** The value in the fix's `pulumi config set` (shell-quoted where needed). */
    readonly example: string;
    /** Its meaning, for the README. */
    readonly doc: string;
    /** The default as the README says it, when it is not a value ("the kubeconfig's current context"). */
    readonly defaultDoc?: string;
}

/** A predicate as a {@link Setting.check}. */
const ok =
    (valid: (value: string) => boolean) =>
    (value: string): string | undefined =>
        valid(value) ? undefined : "";
const oneLine = ok((v) => v.trim() !== "" && !/[\0\n\r]/.test(v));

/** Top-level keys (`ci-registry-auth:<key>`). */
export const TOP_SETTINGS = [
    {
        key: "vault",
        type: "string",
        default: "blumeops",
        what: "a vault name or id",
        check: oneLine,
        example: "blumeops",
        doc: "1Password vault (name or id) that holds the key item",
    },
    {
        key: "item",
        type: "string",
        default: "zot-ci-apikey",
        what: "an item title",
        check: oneLine,
        example: "zot-ci-apikey",
        doc: "title of the item (an API Credential) holding the key",
    },
    {
        key: "field",
        type: "string",
        default: "credential",
        what: "a field id or label",
        check: oneLine,
        example: "credential",
        doc: "id or label of the field holding the key (in a section or not); ESO matches it as a label",
    },
    {
        key: "expiryField",
        type: "string",
        default: "expires",
        what: "a field label",
        check: oneLine,
        example: "expires",
        doc: "label of a date field of the item recording when the key expires",
    },
    {
        key: "expiryWarningDays",
        type: "integer",
        default: 14,
        min: 0,
        max: 365,
        what: "a whole number of days",
        example: "14",
        doc: "warn from this many days before expiry; an expired key stops the update",
    },
    {
        key: "keyIdField",
        type: "string",
        default: "zot-key-id",
        what: "a field label",
        check: oneLine,
        example: "zot-key-id",
        doc: "label of a text field of the item recording zot's id of the key (`npm run rotate` writes it; never a secret)",
    },
    {
        key: "keyLifetimeDays",
        type: "integer",
        default: 90,
        min: 1,
        max: 365,
        what: "a whole number of days",
        example: "90",
        doc: "`npm run rotate` mints each key to expire at zot this many days after it is made",
    },
    {
        key: "envVar",
        type: "string",
        default: "ZOT_CI_API_KEY",
        what: "a valid environment variable name (letters, digits, '_'; not starting with a digit)",
        check: ok(isValidEnvVarName),
        example: "ZOT_CI_API_KEY",
        doc: "the variable jobs see the key in",
    },
    {
        key: "registryUser",
        type: "string",
        default: "zot-ci",
        what: "a registry user name",
        check: oneLine,
        example: "zot-ci",
        doc: "the zot user the key belongs to; the registry probe logs in as it",
    },
] as const satisfies readonly Setting[];

/** An OCI distribution repository name (lowercase path components). */
const REPOSITORY = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;

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

/** `registry.<key>`: where the probe asks. */
export const REGISTRY_SETTINGS = [
    {
        key: "url",
        type: "string",
        default: "https://registry.ops.eblu.me",
        what: "the registry's http(s) URL, without a path",
        check: ok((v) => /^https?:\/\/[^\s/?#]+\/?$/.test(v)),
        example: "https://registry.ops.eblu.me",
        doc: "the registry the probe asks (plain `http://` to another host is warned)",
    },
    {
        key: "repository",
        type: "string",
        default: "blumeops/runner-job-image",
        what: "a repository name (lowercase, e.g. blumeops/runner-job-image)",
        check: ok((v) => v.length <= 255 && REPOSITORY.test(v)),
        example: "blumeops/runner-job-image",
        doc: "a repository CI pushes to (an upload on a new one makes zot create it)",
    },
    {
        key: "caBundle",
        type: "string",
        what: "one or more PEM certificates (-----BEGIN CERTIFICATE-----)",
        check: ok((v) => pemCertificates(v) > 0),
        example: '"$(cat private-ca.pem)"',
        doc: "PEM of a private CA the registry's certificate chains to",
        defaultDoc: "the system's CAs",
    },
] as const satisfies readonly Setting[];

const nonEmpty = ok((v) => v.length > 0 && !/[\0\n]/.test(v));

/** `runner.<key>` of `kind: kubernetes` (indri). */
export const KUBERNETES_SETTINGS = [
    {
        key: "context",
        type: "string",
        what: "a kubeconfig context name",
        check: nonEmpty,
        example: "minikube",
        doc: "kubeconfig context",
        defaultDoc: "the current context",
    },
    {
        key: "kubeconfig",
        type: "string",
        what: "a kubeconfig path",
        check: nonEmpty,
        example: "~/.kube/config",
        doc: "kubeconfig path; keep it unset: it becomes a provider input, and CI's preview would show a change",
        defaultDoc: "`$KUBECONFIG`, then `~/.kube/config`",
    },
    {
        key: "namespace",
        type: "string",
        default: "forgejo-runner",
        what: "a Kubernetes namespace name",
        check: ok(isDns1123Label),
        example: "forgejo-runner",
        doc: "the runner's namespace",
    },
    {
        key: "deployment",
        type: "string",
        default: "forgejo-runner",
        what: "a Kubernetes object name",
        check: ok(isDns1123Subdomain),
        example: "forgejo-runner",
        doc: "the runner's Deployment",
    },
    {
        key: "container",
        type: "string",
        default: "runner",
        what: "a container name",
        check: ok(isDns1123Label),
        example: "runner",
        doc: "the container that gets the variable",
    },
    {
        key: "clusterSecretStore",
        type: "string",
        default: "onepassword-blumeops",
        what: "a ClusterSecretStore name",
        check: ok(isDns1123Subdomain),
        example: "onepassword-blumeops",
        doc: "ESO's store that reads 1Password",
    },
    {
        key: "secretName",
        type: "string",
        default: "zot-ci-api-key",
        what: "a Kubernetes object name",
        check: ok(isDns1123Subdomain),
        example: "zot-ci-api-key",
        doc: "our Secret (ESO fills it), and the prefix of our ExternalSecrets",
    },
    {
        key: "fieldManager",
        type: "string",
        default: PROJECT,
        what: "a field manager name (letters, digits, '.', '_', '-'; at most 128)",
        check: ok((v) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(v)),
        example: PROJECT,
        doc: "our server-side-apply field manager",
    },
    {
        key: "syncTimeoutSeconds",
        type: "integer",
        default: 120,
        min: 10,
        max: 3600,
        what: "a whole number of seconds",
        example: "120",
        doc: "bound on ESO's sync",
    },
    {
        key: "rolloutTimeoutSeconds",
        type: "integer",
        default: 600,
        min: 30,
        max: 7200,
        what: "a whole number of seconds",
        example: "600",
        doc: "bound on the rollout",
    },
    {
        key: "ciServiceAccount",
        type: "string",
        default: "ci-registry-auth-ci",
        what: "a ServiceAccount name",
        check: ok(isDns1123Subdomain),
        example: "ci-registry-auth-ci",
        doc: "CI's read-only identity (*CI and trust*)",
    },
] as const satisfies readonly Setting[];

/** `runner.<key>` of `kind: ssh` (ringtail). */
export const SSH_SETTINGS = [
    {
        key: "host",
        type: "string",
        required: true,
        what: "a host name or IP address (no user@, no port)",
        check: ok(isHost),
        example: "ringtail",
        doc: "where to log in",
    },
    {
        key: "port",
        type: "integer",
        default: 22,
        min: 1,
        max: 65535,
        what: "a port number",
        example: "22",
        doc: "SSH port",
    },
    {
        key: "user",
        type: "string",
        default: "root",
        what: "a login name",
        check: ok(isSshUser),
        example: "root",
        doc: "login (the file is root-owned and the unit is restarted)",
    },
    {
        key: "hostKey",
        type: "string",
        what: 'one public host key in authorized_keys form ("ssh-ed25519 AAAA...")',
        check: ok(isSshPublicKey),
        example: `"$(ssh-keyscan -t ed25519 HOST 2>/dev/null | cut -d' ' -f2-)"`,
        doc: "the host's public key, checked out of band",
        defaultDoc: "(required)",
    },
    {
        key: "insecureIgnoreHostKey",
        type: "boolean",
        default: false,
        what: "true or false",
        example: "false",
        doc: "`true` instead of `hostKey` turns host-key pinning off: throwaway hosts only",
    },
    {
        key: "envFile",
        type: "string",
        default: "/etc/forgejo-runner/zot-api-key.env",
        what: "a usable env file path",
        check: envFilePathProblem,
        example: "/etc/forgejo-runner/zot-api-key.env",
        doc: "our file (refused if it exists without our header, is a symlink, or sits in a directory others can write)",
    },
    {
        key: "unit",
        type: "string",
        default: "gitea-runner-nix_container_builder.service",
        what: "a systemd .service unit name",
        check: ok(isSystemdServiceName),
        example: "gitea-runner-nix_container_builder.service",
        doc: "the runner's unit, which reads the file with `EnvironmentFile=`",
    },
    {
        key: "checkKey",
        type: "string",
        what: 'one public key in authorized_keys form ("ssh-ed25519 AAAA... ci-registry-auth-check")',
        check: ok(isSshPublicKey),
        example: '"$(cat ~/.ssh/ci-registry-auth-check.pub)"',
        doc: "the public key of key-health's SSH key; the check reports whether the host restricts it",
        defaultDoc: "none",
    },
] as const satisfies readonly Setting[];

type ValueOf<S extends Setting> = S["type"] extends "integer" ? number : S["type"] extends "boolean" ? boolean : string;
type Settled = { readonly default: string | number | boolean } | { readonly required: true };

/** The values a table reads: a setting with a default or required is always there, the others may be absent. */
export type SettingValues<T extends readonly Setting[]> = {
    -readonly [S in Extract<T[number], Settled> as S["key"]]: ValueOf<S>;
} & {
    -readonly [S in Exclude<T[number], Settled> as S["key"]]?: ValueOf<S>;
};

/** One configuration problem: the setting, what is wrong, and the fix. */
export interface ConfigIssue {
    setting: string;
    problem: string;
    fix: string;
}

/** The `pulumi config set` that gives `path` the value `example`. */
export function setCommand(path: string, example: string): string {
    return path.includes(".") ? `pulumi config set --path ${path} ${example}` : `pulumi config set ${PROJECT}:${path} ${example}`;
}

/**
 * Reads one object of config against its table: defaults for absent keys,
 * each present key checked, unknown keys refused (`extra` names keys read
 * elsewhere, like `kind`). A key with no value (YAML `hostKey:`, read as
 * null) or "" is refused, never taken as unset: an empty security setting
 * must not silently turn into its default (for runner.hostKey: no
 * pinning). The values of invalid settings are left out, with an issue.
 */
export function readSettings<T extends readonly Setting[]>(
    obj: Record<string, unknown>,
    prefix: string,
    table: T,
    issues: ConfigIssue[],
    extra: readonly string[] = [],
): Partial<SettingValues<T>> {
    const path = (key: string): string => (prefix === "" ? key : `${prefix}.${key}`);
    const issue = (key: string, problem: string, fix: string): void => {
        issues.push({ setting: `${PROJECT}:${path(key)}`, problem, fix });
    };
    const known = [...extra, ...table.map((s) => s.key)];
    for (const key of Object.keys(obj)) {
        if (!known.includes(key)) {
            issue(
                key,
                `unknown setting${prefix === "runner" ? " for this runner kind" : ""} (known: ${known.join(", ")})`,
                `pulumi config rm ${prefix === "" ? `${PROJECT}:${key}` : `--path ${path(key)}`}`,
            );
        }
    }
    const values: Record<string, string | number | boolean> = {};
    for (const s of table as readonly Setting[]) {
        const raw = obj[s.key];
        if (raw === undefined) {
            if (s.default !== undefined) values[s.key] = s.default;
            else if (s.required === true) issue(s.key, "is required", setCommand(path(s.key), s.example));
            continue;
        }
        if (raw === null || raw === "") {
            issue(
                s.key,
                'is empty (a key with no value, or "")',
                `${setCommand(path(s.key), s.example)}, or delete the line to use its default`,
            );
            continue;
        }
        const problem = settingProblem(s, raw);
        if (problem !== undefined) {
            issue(s.key, problem, setCommand(path(s.key), s.example));
            continue;
        }
        values[s.key] = raw as string | number | boolean;
    }
    return values as Partial<SettingValues<T>>;
}

/** Why `raw` is not a value of `s`, or undefined. */
function settingProblem(s: Setting, raw: unknown): string | undefined {
    const shown = JSON.stringify(raw);
    if (s.type === "integer") {
        const min = s.min ?? Number.MIN_SAFE_INTEGER;
        const max = s.max ?? Number.MAX_SAFE_INTEGER;
        return typeof raw === "number" && Number.isInteger(raw) && raw >= min && raw <= max
            ? undefined
            : `${shown} is not ${s.what} from ${min} to ${max}`;
    }
    if (s.type === "boolean") {
        return typeof raw === "boolean" ? undefined : `${shown} is not ${s.what}`;
    }
    if (typeof raw !== "string") return `${shown} is not ${s.what}`;
    const why = s.check?.(raw);
    return why === undefined ? undefined : `${shown} is not ${s.what}${why === "" ? "" : ` (${why})`}`;
}

/** The README's Configuration table, one row per setting, from the tables. */
export function settingsTable(): string {
    const shown = (s: Setting): string =>
        s.defaultDoc ?? (s.required === true ? "(required)" : s.default === undefined ? "none" : `\`${String(s.default)}\``);
    const rows = (where: string, table: readonly Setting[]): string[] =>
        table.map((s) => `| \`${where}${s.key}\` | ${s.type} | ${shown(s)} | ${s.doc} |`);
    return [
        "| setting | type | default | meaning |",
        "|---|---|---|---|",
        "| `onepassword:url` | string | `$OP_CONNECT_HOST` | the Connect server (plain `http://` to another host is warned: the token travels in cleartext) |",
        ...rows("", TOP_SETTINGS),
        ...rows("registry.", REGISTRY_SETTINGS),
        "| `runner.kind` | string | (required) | `kubernetes` (the settings below marked kubernetes) or `ssh` |",
        ...rows("runner.", KUBERNETES_SETTINGS).map((r) => r.replace("| `runner.", "| kubernetes: `runner.")),
        ...rows("runner.", SSH_SETTINGS).map((r) => r.replace("| `runner.", "| ssh: `runner.")),
    ].join("\n");
}
