/**
 * The mission's point on ringtail, end to end on real parts: once the key is
 * delivered, a real workflow job (act's host executor, the engine
 * forgejo-runner forked) started as the runner unit starts its jobs (a
 * systemd unit with its EnvironmentFile= and DynamicUser=) pushes to the
 * registry with it, and only with the current one. The registry is Debian's
 * docker-registry standing in for zot, over the machine's own network link.
 *
 * The key is delivered with the program's own host scripts over SSH; the
 * whole-stack suite does the same through the Pulumi command provider.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { renderEnvFile } from "../../components/envfile";
import { deliverScript } from "../../components/host-scripts";
import { jobsFromReport, parseReport } from "../../components/host-report";
import { runRingtailJob, WORKFLOWS, type JobRun } from "../../sandbox/jobs";
import { writeOciImage } from "../../sandbox/oci-image";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { IMAGE_DIR, Ringtail, uploadImage } from "../../sandbox/ringtail";
import { findLeaks } from "../support/leaks";

const VAR = "ZOT_CI_API_KEY";
const KEY = "zak_push_1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a";
const ROTATED = "zak_push_rotated_9f8e7d6c5b4a3f2e1d0c9b8a";

let host: Ringtail;
let registry: Registry;
let work: string;
const jobs: JobRun[] = [];

function job(workflow: string, tag: string): JobRun {
    const vars = { RUNS_ON: "nix-container-builder", REGISTRY: registry.address, TAG: tag, IMAGE_DIR };
    const run = runRingtailJob(host, join(WORKFLOWS, workflow), vars);
    console.log(`ringtail job ${workflow} (${tag}): exit ${run.code} in ${run.seconds.toFixed(1)} s`);
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
    host = Ringtail.start();
    work = mkdtempSync(join(tmpdir(), "cra-registry-"));
    registry = await startRegistry(work, host.facts.registryAddress, 5000, "zot-ci", KEY);
    writeOciImage(join(work, "image"), "pushed by the ci-registry-auth sandbox\n");
    uploadImage(host, join(work, "image"));
    deliver(KEY);
}, 600_000);

afterAll(async () => {
    try {
        await registry.stop();
        host.stop();
    } finally {
        rmSync(work, { recursive: true, force: true });
    }
}, 120_000);

describe("workflow jobs on ringtail's host executor", () => {
    it("the runner's check says host jobs see the key", () => {
        const report = host.check(VAR);
        expect(jobsFromReport(report, VAR, host.facts.unit)).toMatchObject({ jobsSeeKey: true });
    });

    it("a job pushes with the key the runner's env file holds", async () => {
        const r = job("push.yaml", "v1");
        expect(r.code, r.log).toBe(0);
        expect(r.log).toContain(`Push complete: ${registry.address}/blumeops/ci-probe:v1`);
        expect(await tags(KEY)).toContain("v1");
    });

    it("the migration trap: a leftover `${{ secrets.ZOT_CI_API_KEY }}` mapping shadows the key with an empty value, and nothing is pushed", async () => {
        const r = job("push-secret-env.yaml", "shadowed");
        expect(r.code).not.toBe(0);
        expect(r.log).toContain(noKey);
        expect(await tags(KEY)).not.toContain("shadowed");
    });

    it("a step that prints the key after ::add-mask:: shows it masked", () => {
        const r = job("mask.yaml", "-");
        expect(r.code, r.log).toBe(0);
        expect(r.log).toContain("the key is ***");
    });

    it("after rotation: a job with the old key is refused; the next job after delivery pushes with the new one", async () => {
        registry.setKey(ROTATED);
        const stale = job("push.yaml", "stale");
        expect(stale.code).not.toBe(0);
        expect(stale.log).toMatch(refused);
        deliver(ROTATED);
        const r = job("push.yaml", "v2");
        expect(r.code, r.log).toBe(0);
        expect(await tags(ROTATED)).toEqual(expect.arrayContaining(["v1", "v2"]));
    });

    it("never shows either key in a job log, a process list during a push, the SSH transcript or the registry log", () => {
        const logs = jobs.map((j) => j.log).join("\n");
        // The process list skopeo saw while it pushed (sandbox/ringtail/rootfs/skopeo).
        expect(logs).toContain("--- ps (sandbox, during skopeo)");
        expect(logs).toMatch(/skopeo copy --authfile \S+ oci:\/srv\/ci-probe\/img:latest/);
        const log = readFileSync(registry.logFile, "utf8");
        expect(log).toContain("blumeops/ci-probe");
        expect(
            findLeaks({ "job logs": logs, "ssh transcript": host.transcript.join("\n"), "registry log": log }, { KEY, ROTATED }),
        ).toEqual([]);
    });
});
