/**
 * Faults during a run, on the whole stacks (the real engine, command,
 * onepassword and kubernetes providers): `pulumi up` killed at each step of
 * a rotation, a link cut mid-delivery, two runs at once, Connect gone
 * mid-run, and on indri a kill during the sync and the rollout waits. After
 * each: the runner holds one whole key (never half a file), the next `up`
 * converges to hasKey after exactly the recovery step the README names, and
 * the runner was restarted (ringtail) or rolled (indri) at most once per
 * delivered key. Each case logs a figure for the README's table.
 *
 * The steps are reached with test-only hooks outside the program: on the
 * sandbox host a FIFO that `sync` (between writing the temp file and the
 * rename), `systemctl try-restart` (after the rename) or `systemctl
 * is-active` (the read-only check) waits on (sandbox/ringtail/rootfs/
 * test-hook), and the Connect emulator's hold file. "Killed" is the whole
 * `pulumi up` process group (CLI, language host, program, providers), as a
 * CI job timeout does it, plus, for the host steps, the paused script on
 * the host, so nothing after that step runs there.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { fingerprint } from "../../components/fingerprint";
import { Cluster, FORWARDING_RUNNER_CONFIG } from "../../sandbox/cluster";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { setConfig } from "../../automation/job";
import { rotateKey } from "../../sandbox/onepassword";
import { startRegistry, type Registry } from "../../sandbox/registry";
import {
    indriSettings,
    operatorEnv,
    killPulumi,
    outputValues,
    projectStack,
    ringtailSettings,
    spawnPulumi,
    type ProjectRun,
    type PulumiProcess,
} from "../../sandbox/project-stack";
import { Ringtail } from "../../sandbox/ringtail";
import { nonDebug, recording } from "../../sandbox/stack";
import { findLeaks } from "../support/leaks";

const TOKEN = "sandbox-connect-token-faults";
const VAR = "ZOT_CI_API_KEY";
const NS = "forgejo-runner";
const keys: Record<string, string> = {};
const newKey = (name: string): string => (keys[name] = `zak_faults_${name}_${randomBytes(12).toString("hex")}`);

let work: string;
let holdFile: string;
let emulator: EmulatorProcess;
let port: number;
let host: Ringtail;
let cluster: Cluster;
let ringtail: ProjectRun;
let indri: ProjectRun;
let registry: Registry;
const transcripts: string[] = [];
/** One row per fault, for the README. */
const figures: string[] = [];

const report = () => host.check(VAR);
const starts = () => Number(host.ssh(`journalctl -u ${host.facts.unit} -o cat --no-pager | grep -c '^Started '`).stdout.trim());
const leftovers = () => host.ssh("ls -A /etc/forgejo-runner | grep -c '^\\.ci-registry-auth\\.' || true").stdout.trim();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, check: () => boolean, seconds = 60): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (!check()) {
        if (Date.now() > deadline) throw new Error(`${what} did not happen within ${seconds} s`);
        await sleep(200);
    }
}

/** Every pulumi run a test started, so none outlives its test. */
const running: PulumiProcess[] = [];
function start(run: ProjectRun): PulumiProcess {
    const p = spawnPulumi(run, ["up", "--yes", "--skip-preview"]);
    running.push(p);
    return p;
}

/** Processes of a killed run that outlived its process group (the program's node process). */
const orphans: string[] = [];

/** Kills a pulumi run's whole process group, as a CI job timeout would, and whatever outlived it. */
async function kill(p: PulumiProcess): Promise<void> {
    const survivors = await killPulumi(p);
    if (survivors.length > 0) orphans.push(`${String(survivors.length)} after ${p.child.spawnargs.slice(1, 2).join(" ")}`);
    transcripts.push(p.output.join(""));
}

/** A FIFO that a hooked command on the host waits on. */
function arm(hook: string): void {
    expect(host.ssh(`mkdir -p /run/cra-test-hooks && rm -f /run/cra-test-hooks/${hook}* && mkfifo /run/cra-test-hooks/${hook}`).code).toBe(
        0,
    );
}

/** Kills the host script paused at `hook` (nothing after that step runs) and removes the hook. */
function killPaused(hook: string): void {
    const r = host.ssh(
        [
            `f=/run/cra-test-hooks/${hook}`,
            // The delivery script and the hook's shell first (so neither goes on), then the hook's `cat`.
            'for pid in $(pgrep -f "^/bin/sh /usr/local/bin/(sync|systemctl)"); do kids=$(pgrep -P "$pid"); ppid=$(ps -o ppid= -p "$pid"); kill -KILL $ppid "$pid" $kids 2>/dev/null; done',
            'rm -f "$f" "$f.reached"',
        ].join("\n"),
    );
    expect(r.code, r.stderr).toBe(0);
}

const reached = (hook: string) => host.ssh(`test -e /run/cra-test-hooks/${hook}.reached`).code === 0;

/**
 * `pulumi up` until it succeeds, taking the recovery steps the README names
 * when the killed run left them to take: `pulumi cancel` for the lock, and
 * `pulumi refresh --clear-pending-creates` for creates it left pending.
 */
async function converge(run: ProjectRun): Promise<{ steps: string[]; outputs: Record<string, unknown> }> {
    const steps: string[] = [];
    for (let i = 0; i < 4; i++) {
        try {
            const up = await run.stack.up(recording(run));
            return { steps, outputs: outputValues(up.outputs) };
        } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            run.transcript.push(message);
            if (/currently locked/.test(message)) {
                steps.push("pulumi cancel");
                await run.stack.cancel();
            } else if (/pending operations|clear-pending-creates/.test(message)) {
                steps.push("pulumi refresh --clear-pending-creates");
                await run.stack.refresh({ ...recording(run), clearPendingCreates: true });
            } else {
                throw err;
            }
        }
    }
    throw new Error(`pulumi up did not converge after ${steps.join(", ")}`);
}

beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "cra-faults-"));
    holdFile = join(work, "hold-connect");
    emulator = await spawnEmulator({ token: TOKEN, key: newKey("first"), expires: new Date(Date.now() + 80 * 86_400_000), holdFile });
    port = Number(new URL(emulator.url).port);
    host = Ringtail.start();
    cluster = Cluster.start();
    cluster.applyIndriWorld({ connectUrl: emulator.url, connectToken: TOKEN, runnerConfig: FORWARDING_RUNNER_CONFIG });
    // The probe's registry; its key is the first one, so after a rotation the probe warns (these tests assert the runners).
    registry = await startRegistry(work, "127.0.0.1", 5003, "zot-ci", newKey("registry"));
    ringtail = await projectStack(
        "ringtail",
        ringtailSettings(emulator.url, host.facts, registry.url),
        operatorEnv(TOKEN, await host.agent()),
    );
    indri = await projectStack("indri", indriSettings(emulator.url, cluster.kubeconfig, registry.url), operatorEnv(TOKEN));
    for (const run of [ringtail, indri]) {
        expect((await run.stack.up(recording(run))).outputs["hasKey"]?.value).toBe(true);
    }
}, 900_000);

afterEach(async (context) => {
    for (const p of running.splice(0)) await kill(p);
    rmSync(holdFile, { force: true });
    rmSync(`${holdFile}.reached`, { force: true });
    host.ssh("rm -rf /run/cra-test-hooks; ip link set eth0 up 2>/dev/null || true");
    if (context.task.result?.state === "fail") {
        await converge(ringtail).catch(() => undefined);
        await converge(indri).catch(() => undefined);
    }
}, 300_000);

afterAll(async () => {
    console.log(`faults:\n${figures.map((f) => `  ${f}`).join("\n")}`);
    console.log(`processes that outlived a killed run's process group: ${orphans.length === 0 ? "none" : orphans.join(", ")}`);
    for (const r of [ringtail, indri] as (ProjectRun | undefined)[]) r?.dispose();
    await (registry as Registry | undefined)?.stop();
    (cluster as Cluster | undefined)?.stop();
    (host as Ringtail | undefined)?.stop();
    await (emulator as EmulatorProcess | undefined)?.stop();
    (cluster as Cluster | undefined)?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe("ringtail: `pulumi up` killed during a rotation, at each step", () => {
    const steps = [
        { step: "before SSH (reading 1Password)", hook: undefined, holds: "old" },
        { step: "temp file written, not yet renamed", hook: "sync", holds: "old" },
        { step: "renamed, unit not yet restarted", hook: "systemctl.try-restart", holds: "new" },
        { step: "during the check's read", hook: "systemctl.is-active", holds: "new" },
    ] as const;

    it.each(steps)("killed $step: one whole key on the host, and the next up converges with one restart", async ({ step, hook, holds }) => {
        const old = report();
        const key = newKey(step.replace(/\W+/g, "-"));
        await rotateKey(emulator.url, TOKEN, key);
        const startsBefore = starts();
        if (hook === undefined) writeFileSync(holdFile, "");
        else arm(hook);

        const up = start(ringtail);
        await waitFor(`pulumi up reaching "${step}"`, () => (hook === undefined ? existsSync(`${holdFile}.reached`) : reached(hook)), 120);
        const t0 = Date.now();
        await kill(up);
        if (hook === undefined) {
            rmSync(holdFile, { force: true });
            rmSync(`${holdFile}.reached`, { force: true });
        } else {
            killPaused(hook);
        }

        // What the host holds now: one whole key, root-only, and the unit runs.
        const now = report();
        const expected = holds === "old" ? old["file_fp"] : fingerprint(key);
        expect(now).toMatchObject({ file_fp: expected, file_owner: "0:0", file_mode: "600", unit_active: "active" });
        const stray = leftovers();

        const { steps: recovery, outputs } = await converge(ringtail);
        const seconds = ((Date.now() - t0) / 1000).toFixed(1);
        expect(outputs).toMatchObject({ hasKey: true, keyFingerprint: fingerprint(key) });
        expect(report()).toMatchObject({ file_fp: fingerprint(key), process_fp: fingerprint(key) });
        expect(leftovers()).toBe("0");
        const restarts = starts() - startsBefore;
        expect(restarts).toBe(1);
        figures.push(
            `ringtail, killed ${step}: host held the ${holds} key whole (0600, unit active, ${stray} stray temp file(s)); ` +
                `recovery: ${recovery.join(" + ") || "none"} then up, ${seconds} s to hasKey; ${restarts} restart(s)`,
        );
    });
});

describe("ringtail: the SSH link cut mid-delivery", () => {
    it("fails within a bounded time, the old file whole; the next up after the link is back converges", async () => {
        const old = report();
        const key = newKey("link-cut");
        await rotateKey(emulator.url, TOKEN, key);
        const startsBefore = starts();
        arm("sync");
        const up = start(ringtail);
        await waitFor("the delivery's temp file", () => reached("sync"), 120);
        // The link drops: nothing more passes either way (the host side of ringtail's veth).
        const t0 = Date.now();
        execFileSync("ip", ["link", "set", "cra-rt0", "down"]);
        let code: number | string;
        try {
            code = await Promise.race([up.exited, sleep(400_000).then(() => "still running after 400 s")]);
        } finally {
            execFileSync("ip", ["link", "set", "cra-rt0", "up"]);
        }
        const seconds = ((Date.now() - t0) / 1000).toFixed(0);
        const output = up.output.join("");
        transcripts.push(output);
        expect(code).not.toBe(0);
        expect(code).not.toBe("still running after 400 s");
        // The provider's error quotes the whole host script after this.
        const error = /error: (wait: [^:]+): running/.exec(output)?.[1] ?? "no error line";
        expect(error).toBe("wait: remote command exited without exit status or exit signal");
        await waitFor("ringtail answering again", () => host.ssh("true").code === 0, 60);
        killPaused("sync");
        expect(report()).toMatchObject({ file_fp: old["file_fp"], file_mode: "600", unit_active: "active" });

        const { steps, outputs } = await converge(ringtail);
        expect(outputs).toMatchObject({ hasKey: true, keyFingerprint: fingerprint(key) });
        expect(leftovers()).toBe("0");
        expect(starts() - startsBefore).toBe(1);
        figures.push(
            `ringtail, link cut mid-delivery: up failed after ${seconds} s (${error}); old key whole; recovery: ${steps.join(" + ") || "none"} then up; 1 restart`,
        );
    });
});

describe("ringtail: two `pulumi up` at once", () => {
    it("the second is refused with the backend's lock message; one delivery, one restart", async () => {
        const key = newKey("concurrent");
        await rotateKey(emulator.url, TOKEN, key);
        const startsBefore = starts();
        // The first holds the stack's lock while it waits on 1Password (the
        // emulator's hold file), so the second surely starts inside its run.
        writeFileSync(holdFile, "");
        const a = start(ringtail);
        await waitFor("the first pulumi up reading 1Password", () => existsSync(`${holdFile}.reached`), 120);
        const b = start(ringtail);
        const codeB = await b.exited;
        rmSync(holdFile, { force: true });
        rmSync(`${holdFile}.reached`, { force: true });
        const codeA = await a.exited;
        transcripts.push(a.output.join(""), b.output.join(""));
        expect(codeA, a.output.join("")).toBe(0);
        expect(codeB).not.toBe(0);
        expect(b.output.join("")).toMatch(/the stack is currently locked by 1 lock\(s\)/);
        expect(report()).toMatchObject({ file_fp: fingerprint(key), process_fp: fingerprint(key) });
        expect(starts() - startsBefore).toBe(1);
        figures.push(`ringtail, two ups at once: the second refused ("the stack is currently locked"), 1 restart`);
    });
});

describe("1Password Connect gone mid-run", () => {
    it.each(["ringtail", "indri"] as const)(
        "%s: a clear error naming onepassword:url, the runner unchanged; the next up converges",
        async (name) => {
            const run = name === "ringtail" ? ringtail : indri;
            const before =
                name === "ringtail"
                    ? report()["file_fp"]
                    : cluster.get<{ metadata: { resourceVersion: string } }>("deployment", "forgejo-runner", NS)?.metadata.resourceVersion;
            writeFileSync(holdFile, "");
            const up = start(run);
            await waitFor("pulumi up reading 1Password", () => existsSync(`${holdFile}.reached`), 120);
            const t0 = Date.now();
            await emulator.stop();
            const code = await up.exited;
            const seconds = ((Date.now() - t0) / 1000).toFixed(1);
            const output = up.output.join("");
            transcripts.push(output);
            rmSync(holdFile, { force: true });
            rmSync(`${holdFile}.reached`, { force: true });
            expect(code).not.toBe(0);
            expect(output).toMatch(/onepassword:url/);
            const after =
                name === "ringtail"
                    ? report()["file_fp"]
                    : cluster.get<{ metadata: { resourceVersion: string } }>("deployment", "forgejo-runner", NS)?.metadata.resourceVersion;
            expect(after).toBe(before);
            // Connect comes back where the stack expects it.
            emulator = await spawnEmulator({
                token: TOKEN,
                key: keys["concurrent"] ?? "",
                expires: new Date(Date.now() + 80 * 86_400_000),
                holdFile,
                port,
            });
            const first: string[] = [];
            // ESO may have marked the store not Ready while Connect was gone; it
            // re-validates at its next reconcile, which any change of the store starts.
            const storeReady = () =>
                cluster.kubectl(
                    ["wait", "--for=condition=Ready", "clustersecretstore/onepassword-blumeops", "--timeout=2s"],
                    undefined,
                    true,
                ).code === 0;
            if (name === "indri" && !storeReady()) {
                first.push("kubectl annotate clustersecretstore onepassword-blumeops (re-validate)");
                cluster.kubectl([
                    "annotate",
                    "clustersecretstore",
                    "onepassword-blumeops",
                    `ci-registry-auth.eblu.me/revalidate=${String(Date.now())}`,
                    "--overwrite",
                ]);
                cluster.wait(["--for=condition=Ready", "clustersecretstore/onepassword-blumeops"]);
            }
            const converged = await converge(run);
            const steps = [...first, ...converged.steps];
            const outputs = converged.outputs;
            expect(outputs["hasKey"]).toBe(true);
            figures.push(
                `${name}, Connect gone mid-run: error naming onepassword:url after ${seconds} s, runner unchanged; recovery: ${steps.join(" + ") || "none"} then up`,
            );
        },
    );
});

describe("indri: `pulumi up` killed during a rotation's waits", () => {
    const pid = (name: string) => Number(readFileSync(join(cluster.state, `${name}.pid`), "utf8"));
    const ours = () =>
        (
            JSON.parse(
                cluster.kubectl(["get", "externalsecret", "-n", NS, "-l", "app.kubernetes.io/managed-by=ci-registry-auth", "-o", "json"])
                    .stdout,
            ) as {
                items: unknown[];
            }
        ).items.length;
    const secretFingerprint = () =>
        cluster.get<{ metadata: { annotations?: Record<string, string> } }>("secret", "zot-ci-api-key", NS)?.metadata.annotations?.[
            "ci-registry-auth.eblu.me/key-fingerprint"
        ];
    const readyOld = (fp: string) =>
        (
            JSON.parse(cluster.kubectl(["get", "rs", "-n", NS, "-l", "app=forgejo-runner", "-o", "json"]).stdout) as {
                items: { spec: { template: { metadata: { annotations?: Record<string, string> } } }; status: { readyReplicas?: number } }[];
            }
        ).items.find((rs) => rs.spec.template.metadata.annotations?.["ci-registry-auth.eblu.me/key-fingerprint"] === fp)?.status
            .readyReplicas ?? 0;
    const rsCount = () =>
        (JSON.parse(cluster.kubectl(["get", "rs", "-n", NS, "-l", "app=forgejo-runner", "-o", "json"]).stdout) as { items: unknown[] })
            .items.length;

    it.each([
        { wait: "the ExternalSecret sync wait", stopped: "external-secrets" },
        { wait: "the rollout wait", stopped: "kwok" },
    ])(
        "killed during $wait: the runner keeps a whole key and its pods; the next up converges with one rollout",
        async ({ wait, stopped }) => {
            const oldFp =
                cluster.get<{ spec: { template: { metadata: { annotations?: Record<string, string> } } } }>(
                    "deployment",
                    "forgejo-runner",
                    NS,
                )?.spec.template.metadata.annotations?.["ci-registry-auth.eblu.me/key-fingerprint"] ?? "";
            const key = newKey(stopped);
            await rotateKey(emulator.url, TOKEN, key);
            const rs = rsCount();
            process.kill(pid(stopped), "SIGSTOP");
            const up = start(indri);
            let fpNow: string | undefined;
            try {
                if (stopped === "external-secrets") {
                    await waitFor("the new ExternalSecret", () => ours() === 2, 120);
                } else {
                    await waitFor("the new pod template", () => rsCount() === rs + 1, 120);
                }
                await sleep(1000);
                await kill(up);
                // While the wait is still stuck: the Secret the Deployment
                // references holds a whole key, and the old pods still run.
                fpNow = secretFingerprint();
                expect([oldFp, fingerprint(key)]).toContain(fpNow);
                expect(readyOld(oldFp)).toBe(1);
            } finally {
                process.kill(pid(stopped), "SIGCONT");
            }
            const t0 = Date.now();

            const { steps, outputs } = await converge(indri);
            const seconds = ((Date.now() - t0) / 1000).toFixed(1);
            expect(outputs).toMatchObject({ hasKey: true, keyFingerprint: fingerprint(key) });
            expect(ours()).toBe(1);
            expect(rsCount()).toBe(rs + 1);
            figures.push(
                `indri, killed during ${wait}: Secret held ${fpNow === oldFp ? "the old" : "the new"} key whole, old pods ready; ` +
                    `recovery: ${steps.join(" + ") || "none"} then up, ${seconds} s to hasKey; 1 new ReplicaSet`,
            );
        },
    );
});

describe("indri: the cluster's parts failing during a rotation", () => {
    const pid = (name: string) => Number(readFileSync(join(cluster.state, `${name}.pid`), "utf8"));
    const secretFingerprint = () =>
        cluster.get<{ metadata: { annotations?: Record<string, string> } }>("secret", "zot-ci-api-key", NS)?.metadata.annotations?.[
            "ci-registry-auth.eblu.me/key-fingerprint"
        ];

    it("ESO stopped: the bounded sync wait fails with a clear error, the old key is still served; the next up converges", async () => {
        setConfig(indri.project, "indri", "ci-registry-auth:runner.syncTimeoutSeconds", "15", false, indri.env);
        await converge(indri);
        const oldFp = secretFingerprint();
        const key = newKey("eso-stopped");
        await rotateKey(emulator.url, TOKEN, key);
        process.kill(pid("external-secrets"), "SIGSTOP");
        const t0 = Date.now();
        let code: number | string;
        let output: string;
        try {
            const up = start(indri);
            code = await up.exited;
            output = up.output.join("");
            transcripts.push(output);
            // Meanwhile the runner's Secret kept the old key.
            expect(secretFingerprint()).toBe(oldFp);
        } finally {
            process.kill(pid("external-secrets"), "SIGCONT");
        }
        const seconds = ((Date.now() - t0) / 1000).toFixed(0);
        expect(code).not.toBe(0);
        const error = /ExternalSecret[^\n]*(timed out|not ready|Ready)[^\n]*/i.exec(output)?.[0] ?? "";
        expect(error).not.toBe("");
        const { steps, outputs } = await converge(indri);
        expect(outputs).toMatchObject({ hasKey: true, keyFingerprint: fingerprint(key) });
        figures.push(
            `indri, ESO stopped during a rotation: up failed after ${seconds} s (${error.slice(0, 160)}); old key served; recovery: ${steps.join(" + ") || "none"} then up`,
        );
    });

    it("the API server restarted during the rollout wait: the wait rides it out or fails with one plain error naming the cause, and the next up converges", async () => {
        const key = newKey("apiserver-restart");
        await rotateKey(emulator.url, TOKEN, key);
        const rsBefore = JSON.parse(cluster.kubectl(["get", "rs", "-n", NS, "-l", "app=forgejo-runner", "-o", "json"]).stdout) as {
            items: unknown[];
        };
        process.kill(pid("kwok"), "SIGSTOP");
        const up = start(indri);
        const t0 = Date.now();
        try {
            await waitFor(
                "the new pod template",
                () =>
                    (
                        JSON.parse(cluster.kubectl(["get", "rs", "-n", NS, "-l", "app=forgejo-runner", "-o", "json"]).stdout) as {
                            items: unknown[];
                        }
                    ).items.length ===
                    rsBefore.items.length + 1,
                120,
            );
            await sleep(1000);
            cluster.restartApiServer();
        } finally {
            process.kill(pid("kwok"), "SIGCONT");
        }
        const code = await up.exited;
        const seconds = ((Date.now() - t0) / 1000).toFixed(0);
        const output = up.output.join("");
        transcripts.push(output);
        // Either outcome is allowed; a failure must say what failed, in one plain line.
        const failure = /error: ([^\n]{0,160})/.exec(output)?.[1];
        if (code !== 0) {
            expect(failure, output).toMatch(/rollout|connect|refused|timed out|deadline|unavailable|EOF/i);
            expect(output).not.toMatch(/error serializing property|at .+\.js:\d+/);
        }
        const { steps, outputs } = await converge(indri);
        expect(outputs).toMatchObject({ hasKey: true, keyFingerprint: fingerprint(key) });
        const ending = code === 0 ? "up finished" : `up failed (${failure ?? ""})`;
        figures.push(
            `indri, API server restarted during the rollout wait: ${ending} after ${seconds} s; recovery: ${steps.join(" + ") || "none"} then up`,
        );
    });
});

describe("leaks", () => {
    it("no key in any killed run's output, state, or the host transcript", () => {
        const sources = {
            "killed and concurrent runs": transcripts.join("\n"),
            "ringtail state+output": ringtail.persisted() + nonDebug(ringtail),
            "indri state+output": indri.persisted() + nonDebug(indri),
            "ssh transcript": host.transcript.join("\n"),
        };
        expect(findLeaks(sources, keys)).toEqual([]);
    });
});
