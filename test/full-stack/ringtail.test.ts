/**
 * The ringtail stack whole: `index.ts` with the committed Pulumi.ringtail.yaml
 * (only host, port, host key, SSH key and Connect settings changed), run by
 * the pulumi CLI with the real command and onepassword providers, against
 * the Connect emulator, the sandbox ringtail (real systemd and sshd) and the
 * sandbox registry. Needs CI_REGISTRY_AUTH_PROVIDER_PLUGINS (see
 * sandbox/project-stack.ts).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { renderEnvFile } from "../../components/ssh/envfile";
import { fingerprint } from "../../components/fingerprint";
import { OUTPUT_NAMES } from "../../components/outputs";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { writeOciImage } from "../../sandbox/oci-image";
import { rotateKey } from "../../sandbox/onepassword";
import { recording, recordingChanges } from "../../sandbox/stack";
import {
    attempt,
    FORMER_PROGRAM,
    formerProgram,
    leakSources,
    operatorEnv,
    PROBE_REPOSITORY,
    outputValues,
    projectStack,
    resourceNames,
    ringtailSettings,
    upgradeProgram,
    type ProjectRun,
    type Settings,
} from "../../sandbox/project-stack";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { engineLine, jobEngine, RingtailJobs, WORKFLOWS, type JobRun } from "../../sandbox/jobs";
import { IMAGE_DIR, type Ringtail, uploadImage } from "../../sandbox/ringtail";
import { SshAgent } from "../../sandbox/ssh-agent";
import { findLeaks } from "../support/leaks";

const TOKEN = "sandbox-connect-token-ringtail";
const KEY = "zak_ringtail_8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f";
const ROTATED = "zak_ringtail_rotated_1f2e3d4c5b6a7f8e9d0c1b2a";
const EXPIRED = "zak_ringtail_expired_0e9d8c7b6a5f4e3d2c1b0a9f";
const AGAIN = "zak_ringtail_again_4b3a2f1e0d9c8b7a6f5e4d3c";
const VAR = "ZOT_CI_API_KEY";
const IMPOSTOR_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

const GITEA_PORT = 13030;
const { engine } = jobEngine();
const daemon = engine === "forgejo-runner";

let emulator: EmulatorProcess;
/** ringtail and the engine of its jobs: with forgejo-runner, the unit runs the real daemon (sandbox/jobs.ts). */
let runner: RingtailJobs;
let host: Ringtail;
let registry: Registry;
let work: string;
let run: ProjectRun;
/** Every stack made, for the leak scan at the end. */
const runs: ProjectRun[] = [];
/** Keys the registry made (zot's `zak_…`), for the leak scan. */
const apiKeys: string[] = [];

/** The sandbox's differences from the committed ringtail stack. */
const sandboxConfig = (): Settings => ringtailSettings(emulator.url, host.facts, registry.url);

/** A stack of the operator's, with `overrides` to its settings and `env` to the operator's environment (Connect token, ssh-agent). */
async function stack(overrides: Settings = {}, env: Record<string, string> = {}): Promise<ProjectRun> {
    const r = await projectStack("ringtail", { ...sandboxConfig(), ...overrides }, { ...operatorEnv(TOKEN, await host.agent()), ...env });
    runs.push(r);
    return r;
}

const jobs: JobRun[] = [];
/** A workflow job on the runner: the daemon in the runner unit taking it from a push event, or act as the unit would start it. */
async function job(workflow: string, tag: string): Promise<JobRun> {
    const run = await runner.job(join(WORKFLOWS, workflow), {
        RUNS_ON: "nix-container-builder",
        REGISTRY: registry.address,
        TAG: tag,
        IMAGE_DIR,
    });
    console.log(
        `ringtail job ${workflow} (${tag}) on ${run.engine}: exit ${run.code}; ` +
            (run.engine === "forgejo-runner" ? `push event to finished job ${run.seconds.toFixed(1)} s` : `${run.seconds.toFixed(1)} s`),
    );
    jobs.push(run);
    return run;
}

/** What the host holds, by the program's own check. */
const report = () => host.check(VAR);
/** The URN of the stack's resource named `name` (for --replace). */
async function urn(name: string): Promise<string> {
    const state = (await run.stack.exportStack()).deployment as { resources: { urn: string }[] };
    return state.resources.find((r) => r.urn.endsWith(`::${name}`))!.urn;
}
const mainPid = () => host.ssh(`systemctl show -p MainPID --value ${host.facts.unit}`).stdout.trim();
/** SHA-256 of the env file on the host, compared without printing the file. */
const fileDigest = () => host.ssh(`sha256sum < ${host.facts.envFile}`).stdout.split(" ")[0];
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
/** How many times systemd has started the unit since boot. */
const starts = () => Number(host.ssh(`journalctl -u ${host.facts.unit} -o cat --no-pager | grep -c '^Started '`).stdout.trim());

beforeAll(async () => {
    emulator = await spawnEmulator({
        token: TOKEN,
        key: KEY,
        expires: new Date(Date.now() + 80 * 86_400_000),
        extraItems: [
            { title: "zot-ci-apikey-expired", username: "zot-ci", credential: EXPIRED, expires: new Date(Date.now() - 86_400_000) },
        ],
        // As a new user keeps it: a custom field added to an item, outside any section.
        rawItems: [
            {
                title: "Forgejo Secrets",
                category: "SECURE_NOTE",
                fields: [
                    { id: "notesPlain", type: "STRING", purpose: "NOTES", label: "notesPlain", value: "" },
                    { id: "x7k2m4p9q1w3e5r6t8y0u2i4o6", type: "CONCEALED", label: "zot-ci-api", value: KEY },
                ],
            },
        ],
    });
    console.log(engineLine("ringtail"));
    runner = await RingtailJobs.start(GITEA_PORT);
    host = runner.host;
    work = mkdtempSync(join(tmpdir(), "cra-full-ringtail-"));
    registry = await startRegistry(work, host.facts.registryAddress, 5000, "zot-ci", KEY);
    writeOciImage(join(work, "image"), "pushed after a real pulumi up\n");
    uploadImage(host, join(work, "image"));
    // Something else of the operator's beside our file, which destroy must leave.
    host.ssh("mkdir -p /etc/forgejo-runner && echo keep > /etc/forgejo-runner/runner.yaml");
    run = await stack();
}, 900_000);

afterAll(async () => {
    for (const r of runs) r.dispose();
    await (registry as Registry | undefined)?.stop();
    await (runner as RingtailJobs | undefined)?.stop();
    await (emulator as EmulatorProcess | undefined)?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe("the ringtail stack through pulumi and the real command provider", () => {
    it("previews before anything exists, with the fingerprint", async () => {
        const preview = await run.stack.preview(recording(run));
        // What a PR reviewer sees: the key's fingerprint, read through the provider.
        expect(preview.stdout).toContain(fingerprint(KEY));
        expect(report()["file"]).toBe("absent");
    });

    it("up: root-only env file with the key, unit restarted, outputs prove it by fingerprint", async () => {
        const startsBefore = starts();
        const up = await run.stack.up(recording(run));
        const out = outputValues(up.outputs);
        const fp = fingerprint(KEY);
        expect(out).toMatchObject({ runnerKind: "ssh", keyFingerprint: fp, hasKey: true });
        // The stack exports exactly the one list of output names, each way round (ciKubeconfig is indri's).
        expect(Object.keys(up.outputs).sort()).toEqual(OUTPUT_NAMES.top.filter((n) => n !== "ciKubeconfig").sort());
        expect(Object.keys(out["delivered"] as object).sort()).toEqual([...OUTPUT_NAMES.ssh].sort());
        expect(out["delivered"]).toMatchObject({
            jobsSeeKey: true,
            jobRoute: "host executor (labels nix-container-builder): jobs inherit the runner's environment",
            changed: true,
            fileFingerprint: fp,
            fileOwner: "0:0",
            fileMode: "600",
            unitActive: "active",
            unitReadsFile: true,
            processFingerprint: fp,
        });
        expect(fileDigest()).toBe(sha256(renderEnvFile(VAR, KEY)));
        expect(starts()).toBe(startsBefore + 1);
        // A stack never deployed: its last checkpoint was not asked for its resources.
        expect(out["formerTokenHolder"]).toMatchObject({ holder: "not-read" });
    });

    it("a second up changes nothing and restarts nothing; the former-token check reads the resources once, then carries its answer", async () => {
        const pid = mainPid();
        const up = await run.stack.up(recording(run));
        const changes = Object.entries(up.summary.resourceChanges ?? {}).filter(([op]) => op !== "same");
        expect(changes).toEqual([]);
        expect(mainPid()).toBe(pid);
        const second = outputValues(up.outputs)["formerTokenHolder"] as { resourcesReadAt?: string };
        expect(second).toEqual({
            holder: "absent",
            readFrom: "the last checkpoint's resources",
            resourcesReadAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as string,
        });
        // The third carries the second's answer, with the time the second read the resources.
        const third = outputValues((await run.stack.up(recording(run))).outputs);
        expect(third["formerTokenHolder"]).toEqual({
            holder: "absent",
            readFrom: expect.stringMatching(/^the last checkpoint's formerTokenHolder output/) as string,
            resourcesReadAt: second.resourcesReadAt,
        });
    });

    it(`a workflow job on the runner (${engine}) pushes to the registry with the delivered key; a leftover secret mapping shadows it`, async () => {
        const r = await job("push.yaml", "v1");
        expect(r.code, r.log).toBe(0);
        const shadowed = await job("push-secret-env.yaml", "shadowed");
        expect(shadowed.code).not.toBe(0);
        expect(shadowed.log).toContain("ZOT_CI_API_KEY is empty in this job");
    });

    it(`rotation: update the item through Connect, up; new fingerprint everywhere, one restart, old key gone; the runner's next job (${engine}) pushes with the new key`, async () => {
        await rotateKey(emulator.url, TOKEN, ROTATED);
        registry.setKey(ROTATED);
        // Until the delivery, the runner's jobs hold the old key, which the registry now refuses.
        const stale = await job("push.yaml", "stale");
        expect(stale.code).not.toBe(0);
        expect(stale.log).toMatch(/unauthorized|authentication required|invalid username\/password|401/i);
        const startsBefore = starts();
        const pidBefore = mainPid();
        const up = await run.stack.up(recording(run));
        const out = outputValues(up.outputs);
        const fp = fingerprint(ROTATED);
        expect(out).toMatchObject({ keyFingerprint: fp, hasKey: true });
        expect(out["delivered"]).toMatchObject({ changed: true, fileFingerprint: fp, processFingerprint: fp });
        expect(starts()).toBe(startsBefore + 1);
        // Exactly the rendered file with the new key: the old one is gone.
        expect(fileDigest()).toBe(sha256(renderEnvFile(VAR, ROTATED)));
        if (daemon) {
            // The restart replaced the process that takes the jobs; the new one declares itself to Gitea.
            expect(mainPid()).not.toBe(pidBefore);
            await runner.declared();
        }
        const push = await job("push.yaml", "v2");
        expect(push.code, push.log).toBe(0);
        if (daemon) expect(runner.lastTaskTakenBy()).toBe(Number(mainPid()));
    });
});

describe("the registry accepts the key: the push-permission probe, at the registry itself", () => {
    it("up reports canPush: the registry took an upload with the key and refused one without; no upload session stays but one it refused to cancel", async () => {
        const sessions = await registry.uploadSessions(PROBE_REPOSITORY);
        const out = outputValues((await run.stack.up(recording(run))).outputs);
        expect(out).toMatchObject({ hasKey: true, canPush: true });
        expect(out["registry"]).toMatchObject({
            url: registry.url,
            repository: PROBE_REPOSITORY,
            acceptsKey: true,
            refusesAnonymous: true,
            keyStatus: 202,
            anonymousStatus: 401,
            verdict: "ok",
        });
        const cancel = (out["registry"] as { cancelStatus: number }).cancelStatus;
        // zot-ci may not delete, so the registry refuses to cancel (403) and collects the session after gcDelay.
        expect([204, 403]).toContain(cancel);
        expect(await registry.uploadSessions(PROBE_REPOSITORY)).toBe(sessions + (cancel === 403 ? 1 : 0));
    });

    it("a key revoked at the registry: acceptsKey and canPush false, hasKey stays true, one warning names the registry and the status", async () => {
        const apiKey = await registry.createApiKey("zot-ci", ROTATED);
        await rotateKey(emulator.url, TOKEN, apiKey.key);
        const delivered = outputValues((await run.stack.up(recording(run))).outputs);
        expect(delivered).toMatchObject({ keyFingerprint: fingerprint(apiKey.key), hasKey: true, canPush: true });
        await registry.revokeApiKey("zot-ci", ROTATED, apiKey.id);
        const revoked: string[] = [];
        const preview = await run.stack.preview({
            onOutput: (s) => revoked.push(s),
            onEvent: (e) => {
                if (e.diagnosticEvent?.severity === "warning") revoked.push(e.diagnosticEvent.message);
            },
        });
        expect(preview.stdout).toContain(`registry: ${registry.url} refuses the key (401)`);
        const up = outputValues((await run.stack.up(recording(run))).outputs);
        expect(up).toMatchObject({ hasKey: true, canPush: false });
        expect(up["registry"]).toMatchObject({ acceptsKey: false, keyStatus: 401, refusesAnonymous: true });
        expect(findLeaks({ "preview and warnings": revoked.join("\n") }, { apiKey: apiKey.key })).toEqual([]);
        apiKeys.push(apiKey.key);
        // Back to a key the registry takes.
        await rotateKey(emulator.url, TOKEN, ROTATED);
        expect(outputValues((await run.stack.up(recording(run))).outputs)).toMatchObject({ canPush: true });
    });

    it("authentication turned off at the registry: the alarm fires (anyone can push), the delivery still happens", async () => {
        await registry.setAuth(false);
        try {
            const up = await run.stack.up(recording(run));
            const out = outputValues(up.outputs);
            expect(out["registry"]).toMatchObject({ refusesAnonymous: false, anonymousStatus: 202 });
            expect((out["registry"] as { verdict: string }).verdict).toMatch(
                /accepts an upload to blumeops\/ci-probe without credentials \(202\): its authentication is off/,
            );
            expect(up.stdout).toMatch(/registry: .*its authentication is off/);
            expect(out["hasKey"]).toBe(true);
        } finally {
            await registry.setAuth(true);
        }
        expect(outputValues((await run.stack.up(recording(run))).outputs)["registry"]).toMatchObject({
            refusesAnonymous: true,
            anonymousStatus: 401,
        });
    });
});

describe("bad input: one clear error, the runner as it was", () => {
    const unchanged = () => ({ report: report(), pid: mainPid() });

    it("a host key that does not match fails before any byte of the key is sent", async () => {
        const before = unchanged();
        const bad = await stack({ "ci-registry-auth:runner.hostKey": { value: IMPOSTOR_KEY } });
        const r = await attempt(bad, "up");
        expect(r.ok).toBe(false);
        expect(r.message).toMatch(/host key|knownhosts|mismatch/i);
        expect(unchanged()).toEqual(before);
    });

    it("nothing listening at the host's address fails with the address", async () => {
        const before = unchanged();
        const bad = await stack({ "ci-registry-auth:runner.port": { value: "2" } });
        const r = await attempt(bad, "up");
        expect(r.ok).toBe(false);
        expect(r.message).toMatch(new RegExp(`${host.facts.host.replace(/\./g, "\\.")}:2|connection refused`, "i"));
        expect(unchanged()).toEqual(before);
    });

    it("an address where no host answers fails with the address, after the bounded dial attempts", async () => {
        const before = unchanged();
        // On ringtail's link, but no machine has this address.
        const bad = await stack({ "ci-registry-auth:runner.host": { value: host.facts.absentAddress } });
        const r = await attempt(bad, "up");
        expect(r.ok).toBe(false);
        expect(r.message).toMatch(
            new RegExp(`${host.facts.absentAddress.replace(/\./g, "\\.")}:22: .*(no route to host|i/o timeout)`, "i"),
        );
        expect(unchanged()).toEqual(before);
    });

    it("an ssh-agent whose key the host does not accept fails with an authentication error", async () => {
        const dir = mkdtempSync(join(tmpdir(), "cra-badkey-"));
        spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "id")]);
        const agent = await SshAgent.start([join(dir, "id")]);
        try {
            const before = unchanged();
            const bad = await stack({}, agent.env);
            const r = await attempt(bad, "up");
            expect(r.ok).toBe(false);
            expect(r.message).toMatch(/unable to authenticate|handshake failed|permission denied/i);
            expect(unchanged()).toEqual(before);
        } finally {
            await agent.stop();
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("no ssh-agent: an up stops before anything runs and says how to give it the key", async () => {
        const before = unchanged();
        const bad = await stack({}, { SSH_AUTH_SOCK: "" });
        const r = await attempt(bad, "up");
        expect(r.ok).toBe(false);
        expect(r.message).toMatch(/SSH_AUTH_SOCK: no ssh-agent is reachable[\s\S]*Fix: eval "\$\(ssh-agent\)" && ssh-add/);
        expect(unchanged()).toEqual(before);
    });

    it.each([
        ["an unknown item", { "ci-registry-auth:item": { value: "no-such-item" } }, /no-such-item[\s\S]*ci-registry-auth:item/],
        ["an unknown field", { "ci-registry-auth:field": { value: "no-such-field" } }, /no-such-field[\s\S]*ci-registry-auth:field/],
        ["a wrong Connect token", {}, /Connect answered 401[\s\S]*Fix: OP_CONNECT_TOKEN/, { OP_CONNECT_TOKEN: "not-the-token" }],
        [
            "no Connect token",
            {},
            /OP_CONNECT_TOKEN: the 1Password Connect token is not in the environment[\s\S]*Fix: export OP_CONNECT_TOKEN=/,
            { OP_CONNECT_TOKEN: "" },
        ],
        [
            "an unreachable Connect server",
            { "onepassword:url": { value: "http://127.0.0.1:2" } },
            /127\.0\.0\.1:2 did not answer \(ECONNREFUSED\)[\s\S]*onepassword:url/,
        ],
        ["an expired key", { "ci-registry-auth:item": { value: "zot-ci-apikey-expired" } }, /expired on \d{4}-\d{2}-\d{2}[\s\S]*Fix:/],
    ] as [string, Settings, RegExp, Record<string, string>?][])(
        "%s fails naming the setting, and nothing reaches the host",
        async (_what, overrides, pattern, env) => {
            const before = unchanged();
            const bad = await stack(overrides, env);
            const r = await attempt(bad, "up");
            expect(r.ok).toBe(false);
            expect(r.message).toMatch(pattern);
            // One error, not a JavaScript stack trace.
            expect(r.message).not.toMatch(/^\s+at /m);
            // Printed alone, as pulumi prints an error of the program: no "error serializing property" chain.
            expect(r.message).not.toMatch(/error serializing property/);
            expect(unchanged()).toEqual(before);
        },
    );

    it("missing settings fail before anything runs, each named with its fix", async () => {
        const before = unchanged();
        const config = sandboxConfig();
        delete config["onepassword:url"];
        delete config["ci-registry-auth:runner.hostKey"];
        const bad = await projectStack("ringtail", config, operatorEnv(TOKEN, await host.agent()));
        runs.push(bad);
        const r = await attempt(bad, "up");
        expect(r.ok).toBe(false);
        expect(r.message).toMatch(/onepassword:url[\s\S]*Fix: pulumi config set onepassword:url/);
        expect(r.message).toMatch(/runner\.hostKey[\s\S]*Fix:/);
        expect(r.message).not.toMatch(/^\s+at /m);
        // Printed alone, as pulumi prints an error of the program: no "error serializing property" chain.
        expect(r.message).not.toMatch(/error serializing property/);
        expect(unchanged()).toEqual(before);
    });
});

describe("1Password: every field of the item is read through Connect", () => {
    it("a key in a custom field outside any section (as 1Password's apps add them) is found by its label", async () => {
        const custom = await stack({
            "ci-registry-auth:item": { value: "Forgejo Secrets" },
            "ci-registry-auth:field": { value: "zot-ci-api" },
        });
        const preview = await custom.stack.preview(recording(custom));
        expect(preview.stdout).toContain(fingerprint(KEY));
        expect(preview.stdout).not.toMatch(/error:/);
    });
});

describe("drift on the host", () => {
    it("replacing the check finds a removed file; replacing the delivery restores it, and the check re-runs after it", async () => {
        host.ssh(`rm ${host.facts.envFile} && systemctl restart ${host.facts.unit}`);
        const checked = await run.stack.up({ ...recording(run), replace: [await urn("ringtail-verify")] });
        expect(checked.outputs["hasKey"]?.value).toBe(false);
        expect(checked.outputs["delivered"]?.value).toMatchObject({ fileFingerprint: "none", processFingerprint: "none" });

        const repaired = await run.stack.up({ ...recording(run), replace: [await urn("ringtail-env-file")] });
        expect(repaired.outputs["hasKey"]?.value).toBe(true);
        expect(repaired.outputs["delivered"]?.value).toMatchObject({
            fileFingerprint: fingerprint(ROTATED),
            processFingerprint: fingerprint(ROTATED),
        });
        expect(fileDigest()).toBe(sha256(renderEnvFile(VAR, ROTATED)));
    });
});

describe("the runner's own config, carried in the delivery's report", () => {
    const IN_CONFIG = "zak_written_into_the_config_5d4c3b2a1f0e";

    it("reaches state only encrypted, even with a key wrongly put in runner.envs; the verdict names the setting", async () => {
        const saved = host.ssh(`cat ${host.facts.runnerConfig}`).stdout;
        const wrong = `${saved}  envs:\n    ${VAR}: ${IN_CONFIG}\n`;
        expect(host.ssh(`cat > ${host.facts.runnerConfig}`, wrong).code).toBe(0);
        try {
            // A rotation's delivery reads the config in its own session.
            await rotateKey(emulator.url, TOKEN, AGAIN);
            const up = await run.stack.up(recording(run));
            expect(Object.keys(up.summary.resourceChanges ?? {}).sort()).toEqual(["same", "update"]);
            expect(up.outputs["hasKey"]?.value).toBe(false);
            expect(up.outputs["delivered"]?.value).toMatchObject({
                jobsSeeKey: false,
                jobRoute: expect.stringMatching(/^error: runner\.envs in \/etc\/gitea-runner\/.* defines ZOT_CI_API_KEY/) as unknown,
            });
            const state = leakSources(runs);
            expect(findLeaks(state, { IN_CONFIG })).toEqual([]);
            // Nor the file itself, as the report carries it.
            const carried = Buffer.from(wrong).toString("base64");
            expect(
                Object.entries(state)
                    .filter(([, text]) => text.includes(carried))
                    .map(([source]) => source),
            ).toEqual([]);
        } finally {
            expect(host.ssh(`cat > ${host.facts.runnerConfig}`, saved).code).toBe(0);
        }
        // After the fix, the re-check the warning names brings hasKey back.
        const rechecked = await run.stack.up({ ...recording(run), replace: [await urn("ringtail-verify")] });
        expect(rechecked.outputs["hasKey"]?.value).toBe(true);
    });
});

describe("destroy and the leak scan", () => {
    it("destroy removes our file and restarts the unit; the operator's other files stay", async () => {
        const startsBefore = starts();
        const r = await attempt(run, "destroy");
        expect(r.message).toBe("");
        expect(report()).toMatchObject({ file: "absent", unit_active: "active", process_fp: "none" });
        expect(starts()).toBe(startsBefore + 1);
        expect(host.ssh("cat /etc/forgejo-runner/runner.yaml").stdout).toBe("keep\n");
    });

    it("upgrade: a stack the former program made (resources named after the host) takes this one with nothing replaced or restarted, the host commands updated in place", async () => {
        const former = formerProgram(FORMER_PROGRAM);
        try {
            const old = await projectStack("ringtail", sandboxConfig(), operatorEnv(TOKEN, await host.agent()), {
                from: former,
                stackName: "upgrade-ssh",
            });
            runs.push(old);
            const first = outputValues((await old.stack.up(recording(old))).outputs);
            expect(first).toMatchObject({ hasKey: true });
            expect(await resourceNames(old)).toEqual(expect.arrayContaining(["ringtail-env-file", "ringtail-verify"]));
            const pid = mainPid();
            const startsBefore = starts();
            const digest = fileDigest();

            upgradeProgram(old);
            // This version's host check reads a shell-wrapped ExecStart (components/ssh/host/runner-files.sh):
            // the three host commands whose scripts carry the check are updated in place, nothing is
            // replaced, the file's bytes stay and the unit is not restarted (CHANGELOG).
            const { options, changes } = recordingChanges(old);
            const changed = (): string[] => changes.map((c) => `${c.op} ${c.name}`).sort();
            // And the engine's built-in provider, registered by the former-token read (as on indri).
            const expected = [
                "create default",
                "update upgrade-ssh-check-command",
                "update upgrade-ssh-env-file",
                "update upgrade-ssh-verify",
            ];
            const preview = await old.stack.preview(options);
            expect(Object.keys(preview.changeSummary).sort()).toEqual(["same", "update"]);
            expect(changed()).toEqual(expected);
            changes.length = 0;
            const up = await old.stack.up(options);
            expect(Object.keys(up.summary.resourceChanges ?? {}).sort()).toEqual(["same", "update"]);
            expect(changed()).toEqual(expected);
            const names = await resourceNames(old);
            expect(names).toEqual(expect.arrayContaining(["upgrade-ssh-env-file", "upgrade-ssh-verify", "upgrade-ssh-check-command"]));
            expect(names.filter((n) => n.startsWith("ringtail-"))).toEqual([]);
            expect(mainPid()).toBe(pid);
            expect(starts()).toBe(startsBefore);
            expect(fileDigest()).toBe(digest);
            expect(outputValues(up.outputs)).toMatchObject({ hasKey: true, keyFingerprint: first["keyFingerprint"] });
            expect((await attempt(old, "destroy")).message).toBe("");
        } finally {
            rmSync(former, { recursive: true, force: true });
        }
    });

    it("no key in any state, config file, pulumi output, engine event, error, process list or registry log", () => {
        const sources: Record<string, string> = {
            ...leakSources(runs),
            "ssh transcript": host.transcript.join("\n"),
            "job logs": jobs.map((j) => j.log).join("\n"),
            "registry log": readFileSync(registry.logFile, "utf8"),
            ...(daemon ? { "runner daemon's journal": runner.runnerLog() } : {}),
        };
        // The scan reads real material: encrypted secrets in state, the push's process list.
        expect(sources["stack 0 state+config"]).toContain('"ciphertext"');
        expect(sources["job logs"]).toContain("--- ps (sandbox, during skopeo)");
        expect(
            findLeaks(sources, { KEY, ROTATED, EXPIRED, AGAIN, ...Object.fromEntries(apiKeys.map((k, i) => [`api key ${i}`, k])) }),
        ).toEqual([]);
    });
});
