/**
 * The mission's point on ringtail, end to end on real parts: once the key is
 * delivered, a real workflow job pushes to the registry with it, and only
 * with the current one. With the forgejo-runner binary, the runner unit
 * (NixOS-shaped: DynamicUser, EnvironmentFile) runs the real daemon,
 * registered with the sandbox's Gitea with ringtail's labels, and each job
 * comes from a real push event; the delivery's restart restarts that daemon,
 * and the next job it takes pushes with the new key. Without the binary, act
 * runs each job as the unit would start it (sandbox/jobs.ts says which, and
 * one line printed here). The registry is zot (or its stand-in), over the
 * machine's own network link.
 *
 * The key is delivered with the program's own host scripts over SSH; the
 * whole-stack suite does the same through the Pulumi command provider.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { renderEnvFile } from "../../components/ssh/envfile";
import { deliverScript } from "../../components/ssh/host-scripts";
import { jobsFromReport, parseReport } from "../../components/ssh/host-report";
import { engineLine, jobEngine, RingtailJobs, WORKFLOWS, type JobRun } from "../../sandbox/jobs";
import { writeOciImage } from "../../sandbox/oci-image";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { IMAGE_DIR, type Ringtail, uploadImage } from "../../sandbox/ringtail";
import { findLeaks } from "../support/leaks";

const VAR = "ZOT_CI_API_KEY";
const KEY = "zak_push_1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a";
const ROTATED = "zak_push_rotated_9f8e7d6c5b4a3f2e1d0c9b8a";
const GITEA_PORT = 13010;
const { engine } = jobEngine();
const daemon = engine === "forgejo-runner";

let runner: RingtailJobs;
let host: Ringtail;
let registry: Registry;
let work: string;
const jobs: JobRun[] = [];

async function job(workflow: string, tag: string): Promise<JobRun> {
    const vars = { RUNS_ON: "nix-container-builder", REGISTRY: registry.address, TAG: tag, IMAGE_DIR };
    const run = await runner.job(join(WORKFLOWS, workflow), vars);
    console.log(
        run.engine === "forgejo-runner"
            ? `ringtail job ${workflow} (${tag}) on forgejo-runner: exit ${run.code}; push event to finished job ${run.seconds.toFixed(1)} s (${run.run ?? ""})`
            : `ringtail job ${workflow} (${tag}) on act: exit ${run.code} in ${run.seconds.toFixed(1)} s`,
    );
    jobs.push(run);
    return run;
}

const tags = (key: string) => registry.tags("blumeops/ci-probe", key);

function deliver(key: string): void {
    const r = host.ssh(deliverScript({ envFile: host.facts.envFile, unit: host.facts.unit, envVar: VAR }), renderEnvFile(VAR, key));
    expect(r.code, r.stderr).toBe(0);
    expect(parseReport(r.stdout)["file_fp"]).toMatch(/^sha256:/);
}

/** The registry refused the credentials. */
const refused = /unauthorized|authentication required|invalid username\/password|401/i;
/** The job found no key to push with. */
const noKey = "ZOT_CI_API_KEY is empty in this job";

beforeAll(async () => {
    console.log(engineLine("ringtail"));
    runner = await RingtailJobs.start(GITEA_PORT);
    host = runner.host;
    work = mkdtempSync(join(tmpdir(), "cra-registry-"));
    registry = await startRegistry(work, host.facts.registryAddress, 5000, "zot-ci", KEY);
    writeOciImage(join(work, "image"), "pushed by the ci-registry-auth sandbox\n");
    uploadImage(host, join(work, "image"));
    deliver(KEY);
}, 600_000);

afterAll(async () => {
    try {
        await registry.stop();
        await runner.stop();
    } finally {
        rmSync(work, { recursive: true, force: true });
    }
}, 120_000);

describe(`workflow jobs on ringtail's host executor (${engine})`, () => {
    it("the runner's check says host jobs see the key", () => {
        const report = host.check(VAR);
        expect(jobsFromReport(report, VAR, host.facts.unit)).toMatchObject({ jobsSeeKey: true });
    });

    it("a job pushes with the key the runner's env file holds", async () => {
        const r = await job("push.yaml", "v1");
        expect(r.code, r.log).toBe(0);
        expect(r.log).toContain(`Push complete: ${registry.address}/blumeops/ci-probe:v1`);
        expect(await tags(KEY)).toContain("v1");
    });

    it("the migration trap: a leftover `${{ secrets.ZOT_CI_API_KEY }}` mapping shadows the key with an empty value, and nothing is pushed", async () => {
        const r = await job("push-secret-env.yaml", "shadowed");
        expect(r.code).not.toBe(0);
        expect(r.log).toContain(noKey);
        expect(await tags(KEY)).not.toContain("shadowed");
    });

    it("a step that prints the key after ::add-mask:: shows it masked", async () => {
        const r = await job("mask.yaml", "-");
        expect(r.code, r.log).toBe(0);
        expect(r.log).toContain("the key is ***");
    });

    it("after rotation: a job with the old key is refused; the next job after delivery pushes with the new one", async () => {
        registry.setKey(ROTATED);
        const stale = await job("push.yaml", "stale");
        expect(stale.code).not.toBe(0);
        expect(stale.log).toMatch(refused);
        const before = daemon ? runner.mainPid() : 0;
        deliver(ROTATED);
        if (daemon) {
            // The delivery restarted the daemon: a new process, which declares itself to Gitea again.
            expect(runner.mainPid()).not.toBe(before);
            await runner.declared();
        }
        const r = await job("push.yaml", "v2");
        expect(r.code, r.log).toBe(0);
        expect(await tags(ROTATED)).toEqual(expect.arrayContaining(["v1", "v2"]));
        // The new daemon took that job: its process logged the task.
        if (daemon) expect(runner.lastTaskTakenBy()).toBe(runner.mainPid());
    });

    it("never shows either key in a job log, a process list during a push, the SSH transcript or the registry log", () => {
        const logs = jobs.map((j) => j.log).join("\n");
        // The process list skopeo saw while it pushed (sandbox/ringtail/rootfs/skopeo).
        expect(logs).toContain("--- ps (sandbox, during skopeo)");
        expect(logs).toMatch(/skopeo copy --authfile \S+ oci:\/srv\/ci-probe\/img:latest/);
        const log = readFileSync(registry.logFile, "utf8");
        expect(log).toContain("blumeops/ci-probe");
        const sources: Record<string, string> = { "job logs": logs, "ssh transcript": host.transcript.join("\n"), "registry log": log };
        if (daemon) sources["runner daemon's journal"] = runner.runnerLog();
        expect(findLeaks(sources, { KEY, ROTATED })).toEqual([]);
    });
});
