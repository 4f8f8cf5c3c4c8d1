/** The PR comment, the key-health issue and the job's environment, without Forgejo or Pulumi. */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { judgeExpiry } from "../../components/onepassword/item";
import type { KubernetesDelivered } from "../../components/outputs";
import { checkKeySecret, errorText, failedFacts } from "../../automation/check-stack";
import {
    checkKeySecrets,
    jobContext,
    JobEnvError,
    pluginPath,
    prepareJobHome,
    projectStacks,
    PROVIDER_PLUGINS,
    pullRequestFork,
    stackArg,
} from "../../automation/job";
import {
    commentMarker,
    healthProblems,
    renderComment,
    renderHealthIssue,
    rotationPending,
    HEALTH_MARKER,
    type StackFacts,
} from "../../automation/report";

const ROOT = join(__dirname, "..", "..");
const NOW = "sha256:1111111111111111";
const OLD = "sha256:2222222222222222";

/** indri's delivered facts with every fingerprint `fp`, and `change`. */
function indri(fp: string, change: Partial<KubernetesDelivered> = {}): KubernetesDelivered {
    return {
        secretName: "zot-ci-api-key",
        externalSecretName: "zot-ci-api-key-1111111111",
        secretFingerprint: fp,
        templateFingerprint: fp,
        envWired: true,
        replicas: 1,
        readyReplicas: 1,
        updatedReplicas: 1,
        oldReplicas: 0,
        rolledOut: true,
        jobsSeeKey: true,
        jobRoute: "docker executor: container.options forwards the runner's ZOT_CI_API_KEY into job containers (-e ZOT_CI_API_KEY)",
        ...change,
    };
}

function facts(change: Partial<StackFacts> = {}): StackFacts {
    return {
        stack: "indri",
        ok: true,
        errors: [],
        warnings: [],
        counts: {},
        changes: [],
        now: {
            runnerKind: "kubernetes",
            keyFingerprint: NOW,
            keyDaysUntilExpiry: 40,
            keyExpiresAt: "2027-01-05T00:00:00.000Z",
            keyExpiryField: "expires",
            keyExpiryWarningDays: 14,
            hasKey: true,
        },
        last: { runnerKind: "kubernetes", keyFingerprint: NOW, hasKey: true, delivered: indri(NOW) },
        runnerRead: { how: "live", at: "2026-12-06T01:00:00.000Z" },
        diff: "Previewing update (indri):\n  pulumi:pulumi:Stack: (same)\nResources:\n    12 unchanged\n",
        ...change,
    };
}

describe("the PR comment", () => {
    it("starts with the stack's marker and says what a reviewer needs", () => {
        const body = renderComment(facts(), "https://forge.example/ops/repo/actions/runs/7");
        expect(body.startsWith(commentMarker("indri"))).toBe(true);
        expect(body).toContain("**No changes.**");
        expect(body).toContain(`- Key in 1Password now: \`${NOW}\``);
        expect(body).toContain(`- Last delivered: secretFingerprint \`${NOW}\`, templateFingerprint \`${NOW}\``);
        expect(body).toContain("- Expiry: 40 day(s) left (2027-01-05, field `expires`).");
        expect(body).not.toContain("Rotation pending");
        expect(body).toContain("<details><summary>Full preview</summary>\n\n```diff\nPreviewing update (indri):");
        expect(body).toContain("- hasKey read from the runner by this preview, 2026-12-06T01:00:00.000Z: true; at the last `up`: true");
        expect(body.endsWith("</details>\n\n[The run](https://forge.example/ops/repo/actions/runs/7)")).toBe(true);
    });

    it("says rotation pending, naming the stack and the fingerprints that differ, and lists the changes", () => {
        const f = facts({
            last: { runnerKind: "kubernetes", keyFingerprint: OLD, delivered: indri(OLD) },
            counts: { create: 1, delete: 1, update: 1 },
            changes: [
                { op: "create-replacement", type: "kubernetes:external-secrets.io/v1:ExternalSecret", name: "indri-external-secret" },
                { op: "update", type: "kubernetes:apps/v1:DeploymentPatch", name: "indri-deployment-patch" },
            ],
        });
        expect(rotationPending(f)).toEqual(["secretFingerprint", "templateFingerprint"]);
        const body = renderComment(f, undefined);
        expect(body).toContain(
            "**Rotation pending: run `pulumi up --stack indri`** (secretFingerprint, templateFingerprint differ from 1Password).",
        );
        expect(body).toContain("**Changes:** 1 to create, 1 to delete, 1 to update");
        expect(body).toContain("- update `kubernetes:apps/v1:DeploymentPatch` `indri-deployment-patch`");
        expect(body).not.toContain("[The run]");
        expect(renderComment(facts({ now: { keyFingerprint: NOW } }), undefined)).toContain(
            "read from the runner by this preview, 2026-12-06T01:00:00.000Z: known after `up`",
        );
    });

    it("warns within the expiry window, says expired after it, and names the configured field", () => {
        expect(renderComment(facts({ now: { ...facts().now, keyDaysUntilExpiry: 3 } }), undefined)).toContain(
            "- Expiry: 3 day(s) left (2027-01-05, field `expires`) — **expires within 14 days: rotate soon**.",
        );
        expect(renderComment(facts({ now: { ...facts().now, keyDaysUntilExpiry: -1 } }), undefined)).toContain(
            '- Expiry: **expired** (2027-01-05, field `expires`): rotate now (README, "Operations").',
        );
        expect(
            renderComment(facts({ now: { ...facts().now, keyDaysUntilExpiry: undefined, keyExpiryField: "valid until" } }), undefined),
        ).toContain("- Expiry: not recorded on the item (no field `valid until`, the `expiryField` setting), so not checked.");
        expect(renderComment(facts({ now: { ...facts().now, keyExpiryField: "valid until" } }), undefined)).toContain(
            "(2027-01-05, field `valid until`)",
        );
        expect(healthProblems(facts({ now: { ...facts().now, keyDaysUntilExpiry: -2, keyExpiryField: "valid until" } }))).toContain(
            'the key has expired (1Password\'s field `valid until`): rotate it now (README, "Operations")',
        );
    });

    it("says where the runner's facts were read and when: re-read now, or the last up's with its time, never the last up's as now", () => {
        const ssh = (runnerRead: StackFacts["runnerRead"]) =>
            renderComment(
                facts({ stack: "ringtail", now: { keyFingerprint: NOW, runnerKind: "ssh", hasKey: false }, runnerRead }),
                undefined,
            );
        expect(ssh({ how: "reread", at: "2026-12-06T01:02:03.000Z" })).toContain(
            "- hasKey re-read from the runner with the check key, 2026-12-06T01:02:03.000Z: false; at the last `up`: true",
        );
        const old = ssh({ how: "last-up", at: "2026-12-01T08:00:00.000Z", why: "the job holds no check key (secret RINGTAIL_CHECK_KEY)" });
        expect(old).toContain(
            "- hasKey as of the last `up` (2026-12-01T08:00:00.000Z), not read now: the job holds no check key (secret RINGTAIL_CHECK_KEY): true",
        );
        expect(old).not.toContain("now: false");
        expect(ssh({ how: "last-up", why: "the re-read failed" })).toContain("as of the last `up` (its time is not recorded)");
    });

    it("names the step that failed: opening the stack, the preview, or the re-read", () => {
        const failed = (failedAt: StackFacts["failedAt"]) =>
            renderComment(facts({ ok: false, failedAt, errors: ["the error. Fix: the fix"], now: {}, diff: "" }), undefined);
        expect(failed("open")).toContain("**The stack could not be opened.**\n\n```\nthe error. Fix: the fix\n```");
        expect(failed("preview")).toContain("**`pulumi preview` failed.**");
        expect(failed("reread")).toContain("**Re-reading the runner with the check key failed.**");
    });

    it("carries the program's error when the preview failed", () => {
        const error = 'ci-registry-auth: 1Password: could not read item "zot-ci-apikey" ... Fix: ... onepassword:token ...';
        const body = renderComment(facts({ ok: false, errors: [error], now: {}, diff: "" }), undefined);
        expect(body).toContain("**`pulumi preview` failed.**\n\n```\n" + error + "\n```");
        expect(body).not.toContain("Key in 1Password now");
    });

    it("cuts the diff, never the summary, to stay within the size Forgejo accepts", () => {
        const huge = facts({ diff: "x".repeat(200_000), warnings: ["the key in item ... expires in 3 day(s)"] });
        const body = renderComment(huge, "https://forge.example/run", 10_000);
        expect(body.length).toBeLessThanOrEqual(10_000);
        expect(body).toContain("… (cut to fit the comment; the run's log has it all)");
        expect(body).toContain("**Warnings**");
        expect(body).toContain("[The run](https://forge.example/run)");
        // Fences inside the diff cannot close the block early.
        expect(renderComment(facts({ diff: "a\n```\nb" }), undefined)).toContain("a\n'''\nb");
    });
});

describe("key health", () => {
    it("is healthy when the key is far from expiry, every runner has it and nothing is pending", () => {
        expect(healthProblems(facts())).toEqual([]);
    });

    it("names each problem: expiry, a runner without the key (and why), a pending rotation, pending changes, a failed preview", () => {
        const bad = facts({
            now: {
                ...facts().now,
                runnerKind: "kubernetes",
                keyDaysUntilExpiry: 3,
                hasKey: false,
                delivered: indri(NOW, { jobsSeeKey: false, jobRoute: "docker executor: …" }),
            },
            last: { runnerKind: "kubernetes", delivered: indri(OLD, { templateFingerprint: NOW }) },
            counts: { update: 2 },
        });
        expect(healthProblems(bad)).toEqual([
            'the key expires in 3 day(s) (warning window 14): rotate it (README, "Operations")',
            "the runner lacks the key (hasKey false; jobs: docker executor: …)",
            "rotation pending: run `pulumi up --stack indri`",
            "pending changes: 2 to update (run `pulumi preview --stack indri`)",
        ]);
        expect(healthProblems(facts({ ok: false, errors: ["boom\nFix: x"] }))).toEqual(["the preview failed: boom Fix: x"]);
    });

    it("writes one issue, found again by its marker", () => {
        const { title, body } = renderHealthIssue(
            [facts(), facts({ stack: "ringtail", now: { ...facts().now, keyDaysUntilExpiry: 2 } })],
            undefined,
        );
        expect(title).toBe("ci-registry-auth: the zot CI key needs attention");
        expect(body.startsWith(HEALTH_MARKER)).toBe(true);
        expect(body).toContain("**indri**: healthy");
        expect(body).toContain("**ringtail**: \n- the key expires in 2 day(s)");
        expect(body).toContain("_The runner's facts: read from the runner by this preview, 2026-12-06T01:00:00.000Z._");
    });

    it("names every stack that could not be checked, with its step and fix, beside the healthy ones", () => {
        const { body } = renderHealthIssue(
            [
                failedFacts("third", "open", "error: no stack named 'third' found. Fix: pulumi stack init third"),
                failedFacts("fourth", "preview", "ci-registry-auth: runner.hostKey is not set. Fix: pulumi config set ..."),
                facts(),
            ],
            undefined,
        );
        expect(body).toContain(
            "**third**: \n- the stack could not be opened: error: no stack named 'third' found. Fix: pulumi stack init third",
        );
        expect(body).toContain(
            "**fourth**: \n- the preview failed: ci-registry-auth: runner.hostKey is not set. Fix: pulumi config set ...",
        );
        expect(body).toContain("**indri**: healthy");
    });

    it("names a stack's check-key secret after the stack", () => {
        expect(checkKeySecret("ringtail")).toBe("RINGTAIL_CHECK_KEY");
        expect(checkKeySecret("build-host.2")).toBe("BUILD_HOST_2_CHECK_KEY");
    });

    it("keeps pulumi's own error line of a CLI failure, not its command line or a stack trace", () => {
        const err = new Error(
            "code: 255\n stdout: \n stderr: error: no stack named 'third' found\n\n err?: Error: Command failed with exit code 255: pulumi stack select --stack third\n    at x (y.js:1:1)",
        );
        expect(errorText(err)).toBe("error: no stack named 'third' found");
        expect(errorText(new Error("plain"))).toBe("plain");
    });
});

describe("one expiry rule for up, the comment and the issue", () => {
    // One rule (components/onepassword/item.ts: expiryVerdict) for the program, the comment and the issue, at
    // the window's edge and at the instant of expiry: each offset from now gives the same verdict in all three.
    const DAY = 86_400_000;
    it.each([
        ["15 days", 15 * DAY, "ok"],
        ["14 days", 14 * DAY, "ok"],
        ["14 days less 1 ms", 14 * DAY - 1, "soon"],
        ["1 hour", 3_600_000, "soon"],
        ["the instant itself", 0, "soon"],
        ["1 ms ago", -1, "expired"],
        ["3 days ago", -3 * DAY, "expired"],
    ] as const)("expiry %s away, window 14: %s in the program, the comment and the issue", (_when, offset, state) => {
        const now = new Date("2026-11-30T12:00:00Z");
        const verdict = judgeExpiry(new Date(now.getTime() + offset), now, 14);
        expect(verdict.state).toBe(state);
        const days = verdict.state === "unknown" ? undefined : verdict.days;
        const f = facts({ now: { ...facts().now, keyDaysUntilExpiry: days, keyExpiryWarningDays: 14 } });
        const comment = renderComment(f, undefined);
        const problems = healthProblems(f);
        expect(comment.includes("rotate soon")).toBe(state === "soon");
        expect(comment.includes("**expired**")).toBe(state === "expired");
        expect(problems.some((p) => p.startsWith("the key expires in"))).toBe(state === "soon");
        expect(problems.some((p) => p.startsWith("the key has expired"))).toBe(state === "expired");
    });
});

describe("the registry in the comment and the issue", () => {
    const registry = {
        url: "https://registry.ops.eblu.me",
        repository: "blumeops/runner-job-image",
        acceptsKey: true,
        refusesAnonymous: true,
        keyStatus: 202,
        anonymousStatus: 401,
        cancelStatus: 403,
        checkedAt: "2026-11-30T12:00:00.000Z",
        verdict: "ok",
        keysRead: "ok",
        keyId: "5f0e6f5c-0b3a-4b1e-9a43-0d7c2f7e9b11",
        keyExpiresAt: "2027-02-28T12:00:00Z",
        otherKeys: [],
    };

    it("the comment says what the registry answered with the key and without, and canPush", () => {
        const body = renderComment(facts({ now: { ...facts().now, canPush: true, registry } }), undefined);
        expect(body).toContain(
            "- Registry `https://registry.ops.eblu.me` (`blumeops/runner-job-image`): accepts the key (202); refuses uploads without credentials (401). canPush: true",
        );
        expect(healthProblems(facts({ now: { ...facts().now, canPush: true, registry } }))).toEqual([]);
    });

    it("the comment names this key at zot and its expiry there, and each other key of the user by label and last use; key-health raises them", () => {
        const job = {
            uuid: "0b8f5a2e-1111-4c1e-9d2a-5e3c7b9a0f12",
            label: "minted by a job",
            createdAt: "2026-11-20T08:00:00Z",
            lastUsed: "2026-11-29T21:14:03Z",
            expirationDate: "0001-01-01T00:00:00Z",
        };
        const withOther = { ...registry, otherKeys: [job] };
        const now = { ...facts().now, canPush: true, registryUser: "zot-ci", registry: withOther };
        const body = renderComment(facts({ now }), undefined);
        expect(body).toContain(
            "- Keys at zot: this key `5f0e6f5c-0b3a-4b1e-9a43-0d7c2f7e9b11`, expires at zot 2027-02-28T12:00:00Z; **zot-ci holds 1 other key(s)**: " +
                '"minted by a job" (0b8f5a2e-1111-4c1e-9d2a-5e3c7b9a0f12, created 2026-11-20, last used 2026-11-29T21:14:03Z): run `mise run rotate` to revoke them.',
        );
        expect(healthProblems(facts({ now }))).toEqual([
            'zot-ci holds 1 key(s) besides the delivered one, each able to push: "minted by a job" (0b8f5a2e-1111-4c1e-9d2a-5e3c7b9a0f12, created 2026-11-20, last used 2026-11-29T21:14:03Z); run `mise run rotate`, which revokes every other key',
        ]);
        expect(renderComment(facts({ now: { ...now, registry } }), undefined)).toContain("zot-ci holds no other key.");
        const unread = { ...registry, keysRead: "zot-ci's API keys could not be listed with the key: HTTP 404" };
        delete (unread as Partial<typeof registry>).otherKeys;
        expect(renderComment(facts({ now: { ...now, registry: unread } }), undefined)).toContain(
            "- Keys at zot: not read (zot-ci's API keys could not be listed with the key: HTTP 404).",
        );
    });

    it("key-health raises zot's own expiry of the key within the warning window, by the same rule as the item's, at the boundary", () => {
        const at = (days: number) => ({
            ...registry,
            keyExpiresAt: new Date(Date.parse(registry.checkedAt) + days * 86_400_000).toISOString(),
        });
        const problems = (days: number) =>
            healthProblems(facts({ now: { ...facts().now, canPush: true, keyExpiryWarningDays: 14, registry: at(days) } }));
        expect(problems(15)).toEqual([]);
        expect(problems(14)).toEqual([]);
        expect(problems(13)).toEqual([
            expect.stringMatching(/^zot expires the key in 13 day\(s\), on \d{4}-\d\d-\d\d \(warning window 14\)/) as unknown,
        ]);
        expect(problems(-1)).toEqual([expect.stringMatching(/^zot expires the key now, on /) as unknown]);
        expect(healthProblems(facts({ now: { ...facts().now, canPush: true, registry: { ...registry, keyExpiresAt: "never" } } }))).toEqual(
            [],
        );
    });

    it("key-health reports a refused key with the registry's verdict, and raises the alarm when anyone can push", () => {
        const refused = {
            ...registry,
            acceptsKey: false,
            keyStatus: 401,
            verdict:
                "https://registry.ops.eblu.me refuses the key (401): it is revoked, expired, or not zot-ci's; create a new key and rotate",
        };
        expect(healthProblems(facts({ now: { ...facts().now, canPush: false, registry: refused } }))).toEqual([
            `the registry does not accept the key, so no job can push: ${refused.verdict}`,
        ]);
        expect(renderComment(facts({ now: { ...facts().now, registry: refused } }), undefined)).toContain(
            "**does not accept the key** (401)",
        );
        const open = {
            ...registry,
            refusesAnonymous: false,
            anonymousStatus: 202,
            verdict: "https://registry.ops.eblu.me accepts an upload … its authentication is off",
        };
        expect(healthProblems(facts({ now: { ...facts().now, canPush: true, registry: open } }))).toEqual([
            "**alarm**: https://registry.ops.eblu.me accepts an upload to blumeops/runner-job-image without credentials (202): anyone can push",
        ]);
    });
});

describe("the job's environment", () => {
    const dirs: string[] = [];
    afterEach(() => {
        for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    });

    it("reads Forgejo's variables (FORGEJO_* before GITHUB_*) and the pull request from the event", () => {
        const dir = mkdtempSync(join(tmpdir(), "cra-event-"));
        dirs.push(dir);
        writeFileSync(join(dir, "event.json"), JSON.stringify({ number: 12, pull_request: { number: 12 } }));
        const ctx = jobContext(
            {
                GITHUB_SERVER_URL: "https://github.com",
                FORGEJO_SERVER_URL: "https://forge.ops.eblu.me/",
                GITHUB_REPOSITORY: "eblume/ci-registry-auth",
                FORGEJO_TOKEN: "t0ken",
                GITHUB_EVENT_PATH: join(dir, "event.json"),
                GITHUB_RUN_NUMBER: "41",
            },
            true,
        );
        expect(ctx).toEqual({
            serverUrl: "https://forge.ops.eblu.me",
            repository: "eblume/ci-registry-auth",
            token: "t0ken",
            pullRequest: 12,
            runUrl: "https://forge.ops.eblu.me/eblume/ci-registry-auth/actions/runs/41",
        });
    });

    it("names every missing variable and how to give it, in one error", () => {
        let error: unknown;
        try {
            jobContext({}, true);
        } catch (err) {
            error = err;
        }
        expect(error).toBeInstanceOf(JobEnvError);
        const message = (error as Error).message;
        expect(message).toMatch(/FORGEJO_SERVER_URL or GITHUB_SERVER_URL is not set/);
        expect(message).toMatch(/FORGEJO_TOKEN is not set: .*FORGEJO_TOKEN: \$\{\{ secrets\.GITHUB_TOKEN \}\}/);
        expect(message).toMatch(/GITHUB_EVENT_PATH is not set: run this on a pull_request event/);
    });

    it("puts a kubeconfig where the provider looks by default, 0600 in a HOME of its own under the runner's per-job temp directory, never in KUBECONFIG, and removes it at the end", () => {
        const runnerTemp = mkdtempSync(join(tmpdir(), "cra-runner-temp-"));
        dirs.push(runnerTemp);
        const home = prepareJobHome(
            { CI_REGISTRY_AUTH_KUBECONFIG: "apiVersion: v1\n", PULUMI_HOME: "/shared", RUNNER_TEMP: runnerTemp },
            ROOT,
        );
        const dir = home.env["HOME"] ?? "";
        expect(dir.startsWith(join(runnerTemp, "cra-home-"))).toBe(true);
        // PULUMI_HOME is this job's own, never the runner's shared one.
        expect(home.env).toEqual({ HOME: dir, PULUMI_HOME: join(dir, ".pulumi") });
        expect(readdirSync(join(dir, ".pulumi"))).toEqual([]);
        const file = join(dir, ".kube", "config");
        expect(readFileSync(file, "utf8")).toBe("apiVersion: v1\n");
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(home.checkKeys).toEqual({});
        expect(home.plugins).toEqual([]);
        home.dispose();
        expect(existsSync(dir)).toBe(false);
    });

    it("keeps only the check keys of the repository's secrets, each 0600 with its final newline by its secret's name, drops the variable, and removes them with the HOME", () => {
        const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----";
        const env: NodeJS.ProcessEnv = {
            CI_REGISTRY_AUTH_CHECK_KEYS: JSON.stringify({
                RINGTAIL_CHECK_KEY: key,
                BUILDER_2_CHECK_KEY: `${key}\n`,
                EMPTY_CHECK_KEY: "",
                OP_CONNECT_TOKEN: "not-a-check-key",
                github_token: "x",
            }),
        };
        const home = prepareJobHome(env, ROOT);
        expect(Object.keys(home.checkKeys).sort()).toEqual(["BUILDER_2_CHECK_KEY", "RINGTAIL_CHECK_KEY"]);
        for (const file of Object.values(home.checkKeys)) {
            expect(readFileSync(file, "utf8").endsWith("-----END OPENSSH PRIVATE KEY-----\n")).toBe(true);
            expect(readFileSync(file, "utf8").endsWith("\n\n")).toBe(false);
            expect(statSync(file).mode & 0o777).toBe(0o600);
        }
        expect(readdirSync(join(home.env["HOME"] ?? "", ".ssh")).sort()).toEqual(["BUILDER_2_CHECK_KEY", "RINGTAIL_CHECK_KEY"]);
        // Nothing the job starts inherits the other secrets.
        expect(env["CI_REGISTRY_AUTH_CHECK_KEYS"]).toBeUndefined();
        const file = home.checkKeys["RINGTAIL_CHECK_KEY"] ?? "";
        home.dispose();
        expect(existsSync(file)).toBe(false);
    });

    it("refuses check keys that are not a JSON object, naming the variable and never the value", () => {
        expect(checkKeySecrets(undefined)).toEqual({});
        expect(() => checkKeySecrets("-----BEGIN OPENSSH PRIVATE KEY-----")).toThrow(
            /CI_REGISTRY_AUTH_CHECK_KEYS is not a JSON object \(its value is not shown\): set it in the workflow to \$\{\{ toJSON\(secrets\) \}\}/,
        );
        expect(() => checkKeySecrets("-----BEGIN OPENSSH PRIVATE KEY-----")).not.toThrow(/BEGIN/);
    });

    it("removes the job's HOME when the job is stopped with SIGTERM or SIGINT, and then ends by that signal", async () => {
        for (const signal of ["SIGTERM", "SIGINT"] as const) {
            const runnerTemp = mkdtempSync(join(tmpdir(), "cra-runner-temp-"));
            dirs.push(runnerTemp);
            const script = [
                'require("ts-node").register({ transpileOnly: true });',
                `const home = require(${JSON.stringify(join(ROOT, "automation", "job.ts"))}).prepareJobHome(process.env, ${JSON.stringify(ROOT)});`,
                "console.log(home.env.HOME);",
                "setInterval(() => {}, 1000);",
            ].join("\n");
            const child = spawn(process.execPath, ["-e", script], {
                cwd: ROOT,
                env: { ...process.env, RUNNER_TEMP: runnerTemp, CI_REGISTRY_AUTH_KUBECONFIG: "apiVersion: v1\n" },
                stdio: ["ignore", "pipe", "inherit"],
            });
            const homeDir = await new Promise<string>((resolve) =>
                child.stdout.once("data", (d: Buffer) => {
                    resolve(d.toString().trim());
                }),
            );
            expect(existsSync(join(homeDir, ".kube", "config"))).toBe(true);
            const ended = new Promise<NodeJS.Signals | null>((resolve) =>
                child.once("exit", (_code, sig) => {
                    resolve(sig);
                }),
            );
            child.kill(signal);
            expect(await ended).toBe(signal);
            expect(existsSync(homeDir), signal).toBe(false);
        }
    });

    describe("provider plugins", () => {
        const versions = Object.fromEntries(
            PROVIDER_PLUGINS.map((name) => [
                name,
                (JSON.parse(readFileSync(join(ROOT, "node_modules", "@pulumi", name, "package.json"), "utf8")) as { version: string })
                    .version,
            ]),
        );
        /** A runner's plugin directory with a stand-in binary per plugin, and its pins. */
        function pluginDir(): { dir: string; pins: string } {
            const dir = mkdtempSync(join(tmpdir(), "cra-plugins-"));
            dirs.push(dir);
            const lines: string[] = [];
            for (const name of PROVIDER_PLUGINS) {
                const rel = pluginPath(name, versions[name] ?? "");
                mkdirSync(join(dir, rel, ".."), { recursive: true });
                writeFileSync(join(dir, rel), `#!/bin/sh\n# ${name}\n`);
                lines.push(`${createHash("sha256").update(`#!/bin/sh\n# ${name}\n`).digest("hex")}  ${rel}`);
            }
            return { dir, pins: `${lines.join("\n")}\n` };
        }

        it("installs each plugin the program runs into the job's PULUMI_HOME, from PULUMI_PLUGIN_DIR, once its SHA-256 is the pinned one", () => {
            const { dir, pins } = pluginDir();
            const home = prepareJobHome({ PULUMI_PLUGIN_DIR: dir, PULUMI_PLUGIN_SHA256: pins }, ROOT);
            try {
                expect(home.plugins).toEqual(PROVIDER_PLUGINS.map((name) => `resource-${name}-v${versions[name] ?? ""}`));
                for (const name of PROVIDER_PLUGINS) {
                    const installed = join(home.env["PULUMI_HOME"] ?? "", "plugins", pluginPath(name, versions[name] ?? ""));
                    expect(readFileSync(installed, "utf8")).toBe(`#!/bin/sh\n# ${name}\n`);
                    // A copy (later changes to the runner's directory never reach it), read-only.
                    expect(lstatSync(installed).isSymbolicLink()).toBe(false);
                    expect(statSync(installed).mode & 0o777).toBe(0o500);
                }
            } finally {
                home.dispose();
            }
        });

        it("stops the job, naming the plugin and the fix, when a plugin is not what was pinned, unpinned, or missing; nothing is left", () => {
            const runnerTemp = mkdtempSync(join(tmpdir(), "cra-runner-temp-"));
            dirs.push(runnerTemp);
            const { dir, pins } = pluginDir();
            const kubernetes = pluginPath("kubernetes", versions["kubernetes"] ?? "");
            writeFileSync(join(dir, kubernetes), "#!/bin/sh\ntouch /tmp/planted\n");
            const attempt = (env: Record<string, string>): string => {
                try {
                    prepareJobHome({ RUNNER_TEMP: runnerTemp, PULUMI_PLUGIN_DIR: dir, ...env }, ROOT);
                } catch (err) {
                    expect(err).toBeInstanceOf(JobEnvError);
                    return (err as Error).message;
                }
                return "no error";
            };
            expect(attempt({ PULUMI_PLUGIN_SHA256: pins })).toMatch(
                new RegExp(
                    `${kubernetes.replace(/\./g, "\\.")} has SHA-256 [0-9a-f]{64}, not the pinned [0-9a-f]{64}: it changed since it was pinned`,
                ),
            );
            expect(attempt({ PULUMI_PLUGIN_SHA256: pins.split("\n").slice(1).join("\n") })).toMatch(
                new RegExp(`PULUMI_PLUGIN_SHA256 pins no ${kubernetes.replace(/\./g, "\\.")}`),
            );
            expect(attempt({ PULUMI_PLUGIN_SHA256: "not a pin" })).toMatch(/PULUMI_PLUGIN_SHA256 line 1 is not/);
            rmSync(join(dir, kubernetes));
            expect(attempt({ PULUMI_PLUGIN_SHA256: pins })).toMatch(/does not exist: install the plugin into PULUMI_PLUGIN_DIR/);
            // The job's HOME went with the error.
            expect(readdirSync(runnerTemp)).toEqual([]);
        });
    });

    it("tells a fork's pull request from a branch of this repository", () => {
        const dir = mkdtempSync(join(tmpdir(), "cra-event-"));
        dirs.push(dir);
        const event = (head: string) => {
            writeFileSync(
                join(dir, "event.json"),
                JSON.stringify({ number: 3, pull_request: { number: 3, head: { repo: { full_name: head } } } }),
            );
            return { GITHUB_EVENT_PATH: join(dir, "event.json"), GITHUB_REPOSITORY: "eblume/ci-registry-auth" };
        };
        expect(pullRequestFork(event("mallory/ci-registry-auth"))).toBe("mallory/ci-registry-auth");
        expect(pullRequestFork(event("eblume/ci-registry-auth"))).toBeUndefined();
        expect(pullRequestFork({})).toBeUndefined();
    });

    it("finds the stacks from the project's Pulumi.<stack>.yaml files, a third one too", () => {
        const dir = mkdtempSync(join(tmpdir(), "cra-stacks-"));
        dirs.push(dir);
        for (const f of [
            "Pulumi.yaml",
            "Pulumi.indri.yaml",
            "Pulumi.ringtail.yaml",
            "Pulumi.build-host.yaml",
            "Pulumi.yaml.bak",
            "notes.yaml",
        ]) {
            writeFileSync(join(dir, f), "");
        }
        expect(projectStacks(dir)).toEqual(["build-host", "indri", "ringtail"]);
    });

    it("takes --stack arguments and refuses anything else", () => {
        expect(stackArg(["--stack", "indri", "--stack=ringtail"])).toEqual(["indri", "ringtail"]);
        expect(() => stackArg(["indri"])).toThrow(/unknown argument "indri"; usage: --stack <name>/);
    });
});
