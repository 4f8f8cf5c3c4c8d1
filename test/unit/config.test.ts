/** Validation of the stack configuration: each bad input names the setting and the fix. */
import { describe, expect, it } from "vitest";

import { ConfigError, configFromValues, parseConfig, type RawConfig } from "../../components/settings/config";
import { KUBERNETES_SETTINGS, SSH_SETTINGS } from "../../components/settings/settings";
import { committedRunner, rawConfig, TEST_HOST_KEY } from "../support/stack-config";

function issuesOf(raw: RawConfig): ConfigError["issues"] {
    try {
        parseConfig(raw);
    } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).issues;
    }
    throw new Error("expected a ConfigError");
}

const ringtail = (runner: Record<string, unknown>, overrides: Partial<RawConfig> = {}): RawConfig =>
    rawConfig("ringtail", { runner: { ...committedRunner("ringtail"), hostKey: TEST_HOST_KEY, ...runner }, ...overrides });
const indri = (runner: Record<string, unknown>): RawConfig => rawConfig("indri", { runner: { ...committedRunner("indri"), ...runner } });

describe("committed stacks", () => {
    it("indri's committed settings are complete and valid", () => {
        const parsed = parseConfig(rawConfig("indri"));
        expect(parsed.runner).toEqual({
            kind: "kubernetes",
            context: "minikube",
            namespace: "forgejo-runner",
            deployment: "forgejo-runner",
            container: "runner",
            clusterSecretStore: "onepassword-blumeops",
            secretName: "zot-ci-api-key",
            fieldManager: "ci-registry-auth",
            syncTimeoutSeconds: 120,
            rolloutTimeoutSeconds: 600,
            ciServiceAccount: "ci-registry-auth-ci",
        });
        expect(parsed.key).toEqual({
            vault: "blumeops",
            item: "zot-ci-apikey",
            field: "credential",
            expiryField: "expires",
            expiryWarningDays: 14,
            keyIdField: "zot-key-id",
            keyLifetimeDays: 90,
        });
        expect(parsed.envVar).toBe("ZOT_CI_API_KEY");
        expect(parsed.registryUser).toBe("zot-ci");
    });

    it("ringtail's committed settings lack only the host key, which the operator must pin", () => {
        const issues = issuesOf(rawConfig("ringtail"));
        expect(issues.map((i) => i.setting)).toEqual(["ci-registry-auth:runner.hostKey"]);
        expect(issues[0]!.fix).toContain("pulumi config set --path runner.hostKey");
        expect(issues[0]!.fix).toContain("ssh-keyscan -t ed25519 ringtail");
    });

    it("ringtail with a pinned host key uses the unit and file of the mission", () => {
        const parsed = parseConfig(ringtail({}));
        expect(parsed.runner).toEqual({
            kind: "ssh",
            host: "ringtail",
            port: 22,
            user: "root",
            hostKey: TEST_HOST_KEY,
            insecureIgnoreHostKey: false,
            envFile: "/etc/forgejo-runner/zot-api-key.env",
            unit: "gitea-runner-nix_container_builder.service",
        });
    });
});

describe("defaults come from components/settings/settings.ts alone", () => {
    it("a stack that sets nothing but its runner gets every default, and the committed stack files set only what differs", () => {
        const bare = parseConfig(rawConfig("indri", { runner: { kind: "kubernetes" } }));
        expect(bare.key).toEqual({
            vault: "blumeops",
            item: "zot-ci-apikey",
            field: "credential",
            expiryField: "expires",
            expiryWarningDays: 14,
            keyIdField: "zot-key-id",
            keyLifetimeDays: 90,
        });
        expect(bare.runner).toEqual({ ...parseConfig(rawConfig("indri")).runner, context: undefined });
        for (const stack of ["indri", "ringtail"] as const) {
            const table = stack === "indri" ? KUBERNETES_SETTINGS : SSH_SETTINGS;
            const committed = committedRunner(stack);
            const repeated = table.filter((t) => "default" in t && committed[t.key] === t.default).map((t) => t.key);
            expect(repeated, `Pulumi.${stack}.yaml repeats defaults`).toEqual([]);
        }
    });
});

describe("bad input gives one error naming each setting and its fix", () => {
    const cases: [string, RawConfig, string, RegExp][] = [
        ["missing runner", rawConfig("indri", { runner: undefined }), "ci-registry-auth:runner", /pulumi config set --path runner\.kind/],
        ["unknown kind", indri({ kind: "nomad" }), "ci-registry-auth:runner.kind", /kubernetes.*ssh/],
        ["missing kind", indri({ kind: undefined }), "ci-registry-auth:runner.kind", /runner\.kind/],
        ["relative env file", ringtail({ envFile: "zot.env" }), "ci-registry-auth:runner.envFile", /runner\.envFile/],
        ["env file with newline", ringtail({ envFile: "/etc/a\n/b.env" }), "ci-registry-auth:runner.envFile", /runner\.envFile/],
        ["env file directory", ringtail({ envFile: "/etc/forgejo-runner/" }), "ci-registry-auth:runner.envFile", /runner\.envFile/],
        ["env file with ..", ringtail({ envFile: "/etc/../root/x.env" }), "ci-registry-auth:runner.envFile", /runner\.envFile/],
        ["bad env var", rawConfig("indri", { envVar: "ZOT-CI" }), "ci-registry-auth:envVar", /ZOT_CI_API_KEY/],
        ["env var with digit first", rawConfig("indri", { envVar: "1KEY" }), "ci-registry-auth:envVar", /envVar/],
        ["bad namespace", indri({ namespace: "Forgejo_Runner" }), "ci-registry-auth:runner.namespace", /runner\.namespace/],
        ["bad deployment", indri({ deployment: "-x" }), "ci-registry-auth:runner.deployment", /runner\.deployment/],
        ["bad container", indri({ container: "a.b" }), "ci-registry-auth:runner.container", /runner\.container/],
        ["bad store", indri({ clusterSecretStore: "" }), "ci-registry-auth:runner.clusterSecretStore", /clusterSecretStore/],
        ["bad timeout", indri({ syncTimeoutSeconds: 0 }), "ci-registry-auth:runner.syncTimeoutSeconds", /syncTimeoutSeconds/],
        ["unknown setting", indri({ nmespace: "x" }), "ci-registry-auth:runner.nmespace", /pulumi config rm --path runner\.nmespace/],
        ["ssh setting on kubernetes", indri({ host: "x" }), "ci-registry-auth:runner.host", /pulumi config rm/],
        ["bad host key", ringtail({ hostKey: "not-a-key" }), "ci-registry-auth:runner.hostKey", /ssh-keyscan/],
        ["missing host", ringtail({ host: undefined }), "ci-registry-auth:runner.host", /runner\.host/],
        ["host with user", ringtail({ host: "root@ringtail" }), "ci-registry-auth:runner.host", /runner\.host/],
        ["port out of range", ringtail({ port: 70000 }), "ci-registry-auth:runner.port", /runner\.port/],
        ["bad unit", ringtail({ unit: "gitea runner" }), "ci-registry-auth:runner.unit", /runner\.unit/],
        ["no ssh-agent for an up", ringtail({}, { hasSshAgent: false }), "SSH_AUTH_SOCK", /ssh-add /],
        ["no Connect URL", rawConfig("indri", { connectUrl: undefined }), "onepassword:url", /pulumi config set onepassword:url/],
        ["bad Connect URL", rawConfig("indri", { connectUrl: "connect:8080" }), "onepassword:url", /onepassword:url/],
        ["no Connect token", rawConfig("indri", { connectToken: undefined }), "OP_CONNECT_TOKEN", /export OP_CONNECT_TOKEN=/],
        [
            "registry URL with a path",
            rawConfig("indri", { registry: { url: "https://registry.ops.eblu.me/v2/" } }),
            "ci-registry-auth:registry.url",
            /registry\.url/,
        ],
        [
            "registry URL without scheme",
            rawConfig("indri", { registry: { url: "registry.ops.eblu.me" } }),
            "ci-registry-auth:registry.url",
            /https:\/\/registry/,
        ],
        [
            "registry repository in capitals",
            rawConfig("indri", { registry: { repository: "BlumeOps/x" } }),
            "ci-registry-auth:registry.repository",
            /registry\.repository/,
        ],
        [
            "CA bundle that is no certificate",
            rawConfig("indri", { registry: { caBundle: "not a pem" } }),
            "ci-registry-auth:registry.caBundle",
            /private-ca\.pem/,
        ],
        [
            "CA bundle that does not parse",
            rawConfig("indri", { registry: { caBundle: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" } }),
            "ci-registry-auth:registry.caBundle",
            /caBundle/,
        ],
        [
            "unknown registry setting",
            rawConfig("indri", { registry: { uri: "x" } }),
            "ci-registry-auth:registry.uri",
            /pulumi config rm --path registry\.uri/,
        ],
        [
            "empty registry repository",
            rawConfig("indri", { registry: { repository: "" } }),
            "ci-registry-auth:registry.repository",
            /delete the line/,
        ],
        // A key with no value (YAML `hostKey:`) or "" is refused, never read as unset.
        ["empty host key (no value)", ringtail({ hostKey: null }), "ci-registry-auth:runner.hostKey", /runner\.hostKey.*delete the line/],
        ['empty host key ("")', ringtail({ hostKey: "" }), "ci-registry-auth:runner.hostKey", /runner\.hostKey/],
        ["empty host", ringtail({ host: "" }), "ci-registry-auth:runner.host", /runner\.host/],
        ["empty opt-out", ringtail({ insecureIgnoreHostKey: null }), "ci-registry-auth:runner.insecureIgnoreHostKey", /delete the line/],
        ["empty port", ringtail({ port: null }), "ci-registry-auth:runner.port", /runner\.port/],
        ["empty check key", ringtail({ checkKey: "" }), "ci-registry-auth:runner.checkKey", /runner\.checkKey/],
        ["empty namespace", indri({ namespace: null }), "ci-registry-auth:runner.namespace", /runner\.namespace/],
        ["empty CI account", indri({ ciServiceAccount: "" }), "ci-registry-auth:runner.ciServiceAccount", /ciServiceAccount/],
        [
            "opt-out beside a pinned key",
            ringtail({ insecureIgnoreHostKey: true }),
            "ci-registry-auth:runner.insecureIgnoreHostKey",
            /pulumi config rm --path runner\.insecureIgnoreHostKey/,
        ],
        ["empty vault", rawConfig("indri", { vault: "" }), "ci-registry-auth:vault", /pulumi config set ci-registry-auth:vault/],
        [
            "item spanning lines",
            rawConfig("indri", { item: "zot-ci\napikey" }),
            "ci-registry-auth:item",
            /pulumi config set ci-registry-auth:item/,
        ],
        ["unknown top-level value type", rawConfig("indri", { expiryWarningDays: 1.5 }), "ci-registry-auth:expiryWarningDays", /14/],
        [
            "negative warning days",
            rawConfig("indri", { expiryWarningDays: -1 }),
            "ci-registry-auth:expiryWarningDays",
            /expiryWarningDays 14/,
        ],
    ];

    it.each(cases)("%s", (_label, raw, setting, fix) => {
        const issues = issuesOf(raw);
        expect(issues.map((i) => i.setting)).toEqual([setting]);
        expect(issues[0]!.fix).toMatch(fix);
        const message = new ConfigError(issues).message;
        expect(message).toContain(setting);
        expect(message).toContain("Fix:");
    });

    it("lists every problem at once", () => {
        const issues = issuesOf(rawConfig("ringtail", { connectUrl: undefined, connectToken: undefined, envVar: "x-y" }));
        expect(issues.map((i) => i.setting).sort()).toEqual([
            "OP_CONNECT_TOKEN",
            "ci-registry-auth:envVar",
            "ci-registry-auth:runner.hostKey",
            "onepassword:url",
        ]);
    });

    it("accepts the loudly named insecure opt-out instead of a host key", () => {
        const runner = { ...committedRunner("ringtail"), insecureIgnoreHostKey: true };
        const parsed = parseConfig(rawConfig("ringtail", { runner }));
        expect(parsed.runner).toMatchObject({ kind: "ssh", insecureIgnoreHostKey: true });
        expect(parsed.runner).not.toHaveProperty("hostKey");
    });

    it("a preview needs no SSH credential at all: CI's preview job holds none", () => {
        expect(() => parseConfig(ringtail({}, { hasSshAgent: false, preview: true }))).not.toThrow();
    });

    it("the pinning messages are true: the opt-out alone turns pinning off, and only it", () => {
        const opted = parseConfig(ringtail({ hostKey: undefined, insecureIgnoreHostKey: true })).runner;
        expect(opted).toMatchObject({ insecureIgnoreHostKey: true });
        expect(opted).not.toHaveProperty("hostKey");
        for (const empty of [null, ""]) {
            const issues = issuesOf(ringtail({ hostKey: empty }));
            expect(issues.map((i) => i.setting)).toEqual(["ci-registry-auth:runner.hostKey"]);
            expect(issues[0]!.problem).toMatch(/^is empty/);
        }
        const missing = issuesOf(ringtail({ hostKey: undefined }));
        expect(missing[0]!.problem).toMatch(/is required: without it the SSH connection would trust any host/);
    });
});

describe("credentials never come from the stack's config", () => {
    it("a stack that still keeps the SSH key or the Connect token gets one warning each, with the commands that move them out", () => {
        const parsed = parseConfig(ringtail({}, { storedSshPrivateKey: true, storedConnectToken: true }));
        expect(parsed.warnings).toHaveLength(2);
        const [token, ssh] = parsed.warnings;
        expect(token).toMatch(/onepassword:token is kept in the stack's encrypted config.*no longer reads it/);
        expect(token).toContain('export OP_CONNECT_TOKEN="$(pulumi config get onepassword:token)"');
        expect(token).toContain("pulumi config rm onepassword:token");
        expect(ssh).toMatch(/sshPrivateKey is kept in the stack's encrypted config/);
        expect(ssh).toContain("ssh-add ~/.ssh/ci-registry-auth");
        expect(ssh).toContain("pulumi config rm ci-registry-auth:sshPrivateKey");
    });

    it("a token kept only in the stack's config is not used: the run stops and says where the token must be", () => {
        const issues = issuesOf(rawConfig("indri", { connectToken: undefined, storedConnectToken: true }));
        expect(issues.map((i) => i.setting)).toEqual(["OP_CONNECT_TOKEN"]);
        expect(issues[0]!.fix).toMatch(/the token in the stack's config is no longer read/);
    });

    it("the registry defaults to registry.ops.eblu.me and a repository CI pushes to; plain http to another host is warned", () => {
        expect(parseConfig(rawConfig("indri")).registry).toEqual({
            url: "https://registry.ops.eblu.me",
            repository: "blumeops/runner-job-image",
        });
        const plain = parseConfig(rawConfig("indri", { registry: { url: "http://registry.lan:5000/" } }));
        expect(plain.registry.url).toBe("http://registry.lan:5000");
        expect(plain.warnings).toEqual([
            expect.stringMatching(
                /registry\.url http:\/\/registry\.lan:5000\/ is plain http:\/\/ to registry\.lan: the probe's key travels in cleartext/,
            ) as unknown,
        ]);
    });

    it("warns when the stack's file sets onepassword:url over a different $OP_CONNECT_HOST (the URL is per machine), naming the fix", () => {
        const values = {
            "ci-registry-auth:runner": JSON.stringify({ kind: "kubernetes" }),
            "onepassword:url": "https://laptop.example:8443",
        };
        const env = { OP_CONNECT_TOKEN: "t", OP_CONNECT_HOST: "https://connect.ops.eblu.me" };
        const warned = configFromValues(values, env, true);
        expect(warned.connect.url).toBe("https://laptop.example:8443");
        expect(warned.warnings).toEqual([
            "onepassword:url in the stack's file (https://laptop.example:8443) overrides $OP_CONNECT_HOST (https://connect.ops.eblu.me): " +
                "the URL is per machine (CI sets OP_CONNECT_HOST), and a committed one sends every machine to this one. " +
                "Fix: pulumi config rm onepassword:url, commit the stack file, and export OP_CONNECT_HOST on each machine.",
        ]);
        // The same URL in both, or only one of them: nothing to say.
        expect(configFromValues({ ...values, "onepassword:url": env.OP_CONNECT_HOST }, env, true).warnings).toEqual([]);
        expect(configFromValues(values, { OP_CONNECT_TOKEN: "t" }, true).warnings).toEqual([]);
        expect(configFromValues({ "ci-registry-auth:runner": values["ci-registry-auth:runner"] }, env, true).warnings).toEqual([]);
    });

    it("warns when the Connect URL is plain http to another host, and not for loopback or https", () => {
        const warned = parseConfig(rawConfig("indri", { connectUrl: "http://connect.ops.eblu.me:8080" })).warnings;
        expect(warned).toHaveLength(1);
        expect(warned[0]).toMatch(/onepassword:url .* plain http:\/\/ to connect\.ops\.eblu\.me.*cleartext/);
        for (const url of ["https://connect.ops.eblu.me:8443", "http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"]) {
            expect(parseConfig(rawConfig("indri", { connectUrl: url })).warnings).toEqual([]);
        }
    });
});
