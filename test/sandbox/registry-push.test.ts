/**
 * The mission's point, end to end on real parts: once the key is delivered
 * to ringtail, a CI job there can push to the registry with it, and only
 * with the current one. The job runs as a transient systemd unit with the
 * runner's EnvironmentFile= and DynamicUser=, the way the runner's jobs see
 * ZOT_CI_API_KEY; it pushes with skopeo to Debian's docker-registry (the
 * stand-in for zot) over the machine's own network link.
 *
 * The key is delivered with the program's own host scripts over SSH; the
 * Pulumi command provider that normally carries them cannot be built here.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { renderEnvFile } from "../../components/envfile";
import { deliverScript, parseReport } from "../../components/remote-scripts";
import { writeOciImage } from "../../sandbox/oci-image";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { pushAsJob as pushJob, Ringtail, uploadImage } from "../../sandbox/ringtail";
import { findLeaks } from "../support/leaks";

const VAR = "ZOT_CI_API_KEY";
const KEY = "zak_push_1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a";
const ROTATED = "zak_push_rotated_9f8e7d6c5b4a3f2e1d0c9b8a";

let host: Ringtail;
let registry: Registry;
let work: string;

const pushAsJob = (tag: string, withCredentials: boolean) => pushJob(host, registry.address, tag, withCredentials);

async function tags(key: string): Promise<string[]> {
    const res = await fetch(`http://${registry.address}/v2/blumeops/ci-probe/tags/list`, {
        headers: { Authorization: `Basic ${Buffer.from(`zot-ci:${key}`).toString("base64")}` },
    });
    if (res.status !== 200) return [];
    return ((await res.json()) as { tags: string[] }).tags;
}

function deliver(key: string): void {
    const r = host.ssh(deliverScript({ envFile: host.facts.envFile, unit: host.facts.unit, envVar: VAR }), renderEnvFile(VAR, key));
    expect(r.code, r.stderr).toBe(0);
    expect(parseReport(r.stdout)["file_fp"]).toMatch(/^sha256:/);
}

beforeAll(async () => {
    host = Ringtail.start();
    work = mkdtempSync(join(tmpdir(), "cra-registry-"));
    registry = await startRegistry(work, host.facts.registryAddress, 5000, "zot-ci", KEY);
    writeOciImage(join(work, "image"), "pushed by the ci-registry-auth sandbox\n");
    uploadImage(host, join(work, "image"));
}, 600_000);

afterAll(async () => {
    try {
        await registry.stop();
        host.stop();
    } finally {
        rmSync(work, { recursive: true, force: true });
    }
}, 120_000);

describe("a CI job on ringtail pushes with the delivered key", () => {
    it("is refused without credentials, even with the key in its environment", () => {
        deliver(KEY);
        const r = pushAsJob("anonymous", false);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/unauthorized|authentication required|401/i);
    });

    it("pushes with the key the runner's env file holds", async () => {
        const r = pushAsJob("v1", true);
        expect(r.code, r.stderr).toBe(0);
        expect(await tags(KEY)).toContain("v1");
    });

    it("after rotation: the old key is refused, the newly delivered one pushes", async () => {
        registry.setKey(ROTATED);
        const stale = pushAsJob("stale", true);
        expect(stale.code).not.toBe(0);
        expect(stale.stderr).toMatch(/unauthorized|authentication required|401/i);
        deliver(ROTATED);
        const r = pushAsJob("v2", true);
        expect(r.code, r.stderr).toBe(0);
        expect(await tags(ROTATED)).toEqual(expect.arrayContaining(["v1", "v2"]));
    });

    it("never shows either key in a process list, the SSH transcript or the registry log", () => {
        const seen = host.transcript.join("\n");
        expect(seen).toContain("--- ps");
        expect(seen).toContain("skopeo copy");
        const log = readFileSync(registry.logFile, "utf8");
        expect(log).toContain("blumeops/ci-probe");
        expect(findLeaks({ "ssh transcript": seen, "registry log": log }, { KEY, ROTATED })).toEqual([]);
    });
});
