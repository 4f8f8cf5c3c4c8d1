/**
 * The indri runner end to end on real parts: the Pulumi engine and the real
 * Kubernetes provider (Automation API, file backend), a real kube-apiserver
 * with controller-manager and scheduler, kwok as the node's kubelet, the real
 * External Secrets Operator reading the 1Password Connect emulator, and a
 * runner Deployment that "Argo CD" applied with its own field manager.
 *
 * The key's fingerprint is given to the component directly: reading it
 * through the onepassword provider needs a plugin that cannot be built here
 * (README, "Offline toolchain"). Everything after that read is real.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { parseConfig, type KubernetesRunnerConfig } from "../../components/settings/config";
import { fingerprint } from "../../components/fingerprint";
import { FINGERPRINT_ANNOTATION } from "../../components/kubernetes/manifests";
import {
    ARGO_MANAGER,
    BLUMEOPS_RUNNER_CONFIG,
    Cluster,
    FORWARDING_RUNNER_CONFIG,
    runnerConfigMap,
    runnerDeployment,
} from "../../sandbox/cluster";
import { DaggerEngine, findDagger, processListDuring } from "../../sandbox/dagger";
import { Dockerd } from "../../sandbox/dockerd";
import { daemonOnly, engineLine, importJobImage, IndriJobs, jobEngine, WORKFLOWS, type JobRun } from "../../sandbox/jobs";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { IMAGE_DIR } from "../../sandbox/ringtail";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { rotateKey } from "../../sandbox/onepassword";
import { indriProgram, inlineStack, nonDebug, persistedState, recording, type Run } from "../../sandbox/stack";
import { findLeaks } from "../support/leaks";
import { committedRunner, rawConfig } from "../support/stack-config";

const TOKEN = "sandbox-connect-token";
const KEY = "zak_indri_5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b";
const ROTATED = "zak_indri_rotated_0a1b2c3d4e5f6a7b8c9d0e1f";
const NS = "forgejo-runner";
const GITEA_PORT = 13020;
const DAGGER_PORT = 13021;
const { engine } = jobEngine();
const dagger = findDagger();

/**
 * A Dagger job's test: needs the daemon (a real push event) and the Dagger binaries; else skipped, its
 * name saying "not run: …" and how to fix it.
 */
function daggerOnly(name: string): { skip: boolean; name: string } {
    const onDaemon = daemonOnly(name);
    if (onDaemon.skip) return onDaemon;
    return "missing" in dagger ? { skip: true, name: `${name} (not run: ${dagger.missing})` } : { skip: false, name };
}
if ("missing" in dagger) console.error(`test/sandbox/indri.test.ts: Dagger jobs not run: ${dagger.missing}`);

interface Container {
    name: string;
    env?: { name: string; valueFrom?: { secretKeyRef?: { name: string } } }[];
    [k: string]: unknown;
}
interface Deployment {
    metadata: { labels?: Record<string, string>; managedFields?: { manager: string; fieldsV1?: unknown }[] };
    spec: {
        replicas: number;
        selector: unknown;
        template: {
            metadata: { annotations?: Record<string, string>; labels?: Record<string, string> };
            spec: { containers: Container[]; volumes: unknown[] };
        };
    };
    status?: { readyReplicas?: number; updatedReplicas?: number };
}

let emulator: EmulatorProcess;
let cluster: Cluster;
let before: Deployment;
let run: Run;
let runner: KubernetesRunnerConfig;
let dockerd: Dockerd;
let runnerJobs: IndriJobs;
/** The Deployment as Argo CD left it after syncing the forwarding config (before our next up). */
let synced: Deployment;
let registry: Registry;
let work: string;
let daggerEngine: DaggerEngine | undefined;
const jobs: JobRun[] = [];
/** Every command line seen on this machine while a Dagger job ran. */
const daggerCommandLines: string[] = [];

/**
 * A workflow job on indri's runner, docker executor, with the runner container's live env and config: the real
 * daemon taking the job of a push from Gitea (a new "pod" when the template changed), or act without its binary.
 */
async function job(workflow: string, tag: string, override: Record<string, string> = {}): Promise<JobRun> {
    const vars = { RUNS_ON: "k8s", REGISTRY: registry.address, TAG: tag, IMAGE_DIR };
    const r = await runnerJobs.job(join(WORKFLOWS, workflow), vars, override);
    console.log(
        r.engine === "forgejo-runner"
            ? `indri job ${workflow} (${tag}) on forgejo-runner: exit ${r.code}; push event to finished job ${r.seconds.toFixed(1)} s (${r.run ?? ""})`
            : `indri job ${workflow} (${tag}) on act: exit ${r.code} in ${r.seconds.toFixed(1)} s`,
    );
    jobs.push(r);
    return r;
}

/** What the Dagger path left to scan: the engine's log and state (its record of each session, traces included) and the process list during its jobs. */
function daggerSources(daggerEngine: DaggerEngine): Record<string, string> {
    // The scan must have something to look at: Dagger jobs ran and the engine wrote its log and state.
    expect(daggerCommandLines.some((line) => line.includes("dagger core"))).toBe(true);
    const written = daggerEngine.written();
    expect(Object.keys(written).length).toBeGreaterThan(10);
    return {
        ...Object.fromEntries(Object.entries(written).map(([path, text]) => [`Dagger engine: ${path}`, text])),
        "process list during Dagger jobs": daggerCommandLines.join("\n"),
    };
}

const tags = (key: string) => registry.tags("blumeops/ci-probe", key);

/** A Dagger job (dagger-*.yaml) publishing blumeops/dagger-probe:`tag`, the process list sampled while it runs. */
async function runDagger(workflow: string, tag: string, override: Record<string, string> = {}): Promise<JobRun> {
    const { result, commandLines } = await processListDuring(job(workflow, tag, override));
    daggerCommandLines.push(...commandLines);
    return result;
}

/** The digest the registry serves for blumeops/dagger-probe:`tag` (anonymous read), or undefined. */
async function daggerProbeDigest(tag: string): Promise<string | undefined> {
    const res = await fetch(`http://${registry.address}/v2/blumeops/dagger-probe/manifests/${tag}`, {
        method: "HEAD",
        headers: { Accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" },
    });
    return res.ok ? (res.headers.get("docker-content-digest") ?? undefined) : undefined;
}

/** The digest `dagger core … publish` printed for blumeops/dagger-probe:`tag`. */
const publishedDigest = (log: string, tag: string): string | undefined =>
    new RegExp(`blumeops/dagger-probe:${tag}@(sha256:[0-9a-f]{64})`).exec(log)?.[1];

/** Runs dagger-publish.yaml for `tag`: it must succeed, and zot must serve the digest Dagger printed. */
async function expectPublished(tag: string): Promise<JobRun> {
    const r = await runDagger("dagger-publish.yaml", tag);
    expect(r.code, r.log).toBe(0);
    const pushed = publishedDigest(r.log, tag);
    expect(pushed, r.log).toMatch(/^sha256:/);
    expect(await daggerProbeDigest(tag)).toBe(pushed);
    return r;
}

const outputsOf = (up: { outputs: Record<string, { value: unknown }> }) =>
    Object.fromEntries(Object.entries(up.outputs).map(([k, v]) => [k, v.value]));

const deployment = (): Deployment => cluster.get<Deployment>("deployment", "forgejo-runner", NS)!;
const replicaSets = (): number =>
    (JSON.parse(cluster.kubectl(["get", "rs", "-n", NS, "-l", "app=forgejo-runner", "-o", "json"]).stdout) as { items: unknown[] }).items
        .length;
const container = (d: Deployment, name: string): Container => d.spec.template.spec.containers.find((c) => c.name === name)!;

beforeAll(async () => {
    emulator = await spawnEmulator({
        token: TOKEN,
        key: KEY,
        expires: new Date(Date.now() + 80 * 86_400_000),
        extraItems: [{ title: "forgejo-runner-registration", username: "runner", credential: "registration-token-not-the-zot-key" }],
    });
    cluster = Cluster.start();
    cluster.applyIndriWorld({ connectUrl: emulator.url, connectToken: TOKEN });
    cluster.wait(["--for=condition=Ready", "externalsecret/forgejo-runner-env", "-n", NS]);
    before = deployment();
    runner = parseConfig(rawConfig("indri", { runner: { ...committedRunner("indri"), kubeconfig: cluster.kubeconfig } }))
        .runner as KubernetesRunnerConfig;
    run = await inlineStack("ci-registry-auth", "indri", indriProgram(fingerprint(KEY), runner));
    dockerd = await Dockerd.start();
    const t0 = Date.now();
    const withDagger = "dir" in dagger && engine === "forgejo-runner" ? dagger.dir : undefined;
    importJobImage(dockerd, withDagger !== undefined ? join(withDagger, "dagger") : undefined);
    console.log(`job image imported into the sandbox dockerd in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (withDagger !== undefined) {
        daggerEngine = await DaggerEngine.start(withDagger, DAGGER_PORT);
        console.log(
            `Dagger engine v0.19.11 (${withDagger}) answering on ${daggerEngine.address} after ${daggerEngine.startSeconds.toFixed(1)} s`,
        );
    }
    work = mkdtempSync(join(tmpdir(), "cra-indri-registry-"));
    registry = await startRegistry(work, "127.0.0.1", 5000, "zot-ci", KEY);
    console.log(engineLine("indri"));
    runnerJobs = await IndriJobs.start(cluster, dockerd, GITEA_PORT, daggerEngine?.address);
}, 900_000);

afterAll(async () => {
    // Whatever beforeAll got to start, stop it.
    await (runnerJobs as IndriJobs | undefined)?.stop();
    await daggerEngine?.stop();
    await (registry as Registry | undefined)?.stop();
    await (dockerd as Dockerd | undefined)?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
    (run as Run | undefined)?.dispose();
    (cluster as Cluster | undefined)?.stop();
    await (emulator as EmulatorProcess | undefined)?.stop();
    (cluster as Cluster | undefined)?.remove();
}, 120_000);

describe(`indri on a real API server with the real External Secrets Operator (jobs: ${engine})`, () => {
    it("previews before anything exists, with fingerprints only", async () => {
        const preview = await run.stack.preview(recording(run));
        expect(preview.changeSummary).toMatchObject({ create: expect.any(Number) as unknown });
        expect(cluster.get("externalsecret", "zot-ci-api-key", NS)).toBeUndefined();
        expect(replicaSets()).toBe(1);
    });

    it("up: ESO syncs the key, the runner container gets it, the pods roll; with blumeops's config no job sees it, so hasKey is false", async () => {
        const up = await run.stack.up(recording(run));
        const out = outputsOf(up);
        const fp = fingerprint(KEY);
        expect(out).toMatchObject({
            hasKey: false,
            secretFingerprint: fp,
            templateFingerprint: fp,
            envWired: true,
            rolledOut: true,
            readyReplicas: 1,
            jobsSeeKey: false,
            jobRoute:
                "docker executor: job containers get none of the runner's environment and container.options does not forward ZOT_CI_API_KEY",
        });
        // One warning, naming the ConfigMap the live Deployment mounts and the line to add.
        const warnings = nonDebug(run).match(/jobs on forgejo-runner\/forgejo-runner do not see ZOT_CI_API_KEY/g) ?? [];
        expect(warnings.length).toBeGreaterThan(0);
        expect(nonDebug(run)).toContain(
            `Fix: set container.options: \\"-e ZOT_CI_API_KEY\\" in ConfigMap forgejo-runner/${runnerConfigMap(BLUMEOPS_RUNNER_CONFIG).metadata.name} (key config.yaml)`,
        );

        const secret = cluster.get<{ metadata: { annotations: Record<string, string> }; data: Record<string, string> }>(
            "secret",
            String(out["secretName"]),
            NS,
        )!;
        expect(secret.metadata.annotations[FINGERPRINT_ANNOTATION]).toBe(fp);
        expect(Buffer.from(secret.data["ZOT_CI_API_KEY"] ?? "", "base64").toString()).toBe(KEY);

        const after = deployment();
        expect(after.spec.template.metadata.annotations?.[FINGERPRINT_ANNOTATION]).toBe(fp);
        const runnerBefore = container(before, "runner");
        const runnerAfter = container(after, "runner");
        expect(runnerAfter.env).toEqual([
            ...(runnerBefore.env ?? []),
            { name: "ZOT_CI_API_KEY", valueFrom: { secretKeyRef: { name: String(out["secretName"]), key: "ZOT_CI_API_KEY" } } },
        ]);
        expect({ ...runnerAfter, env: undefined }).toEqual({ ...runnerBefore, env: undefined });
        expect(container(after, "dind")).toEqual(container(before, "dind"));
        expect(after.spec.template.spec.volumes).toEqual(before.spec.template.spec.volumes);
        expect(after.spec.replicas).toBe(before.spec.replicas);
        expect(after.spec.selector).toEqual(before.spec.selector);
        expect(replicaSets()).toBe(2);
        const withManagers = JSON.parse(
            cluster.kubectl(["get", "deployment", "forgejo-runner", "-n", NS, "-o", "json", "--show-managed-fields"]).stdout,
        ) as Deployment;
        const managers = (withManagers.metadata.managedFields ?? []).map((m) => m.manager);
        expect(managers).toEqual(expect.arrayContaining([ARGO_MANAGER, "ci-registry-auth"]));
    });

    it("a job on the docker executor then has no variable: nothing is pushed", async () => {
        const r = await job("push.yaml", "unforwarded");
        expect(r.code).not.toBe(0);
        expect(r.log).toContain("ZOT_CI_API_KEY is empty in this job");
        expect(await tags(KEY)).not.toContain("unforwarded");
    });

    const unforwarded = daggerOnly(
        "a Dagger job then has no key: its guard (docs/jobs.md) fails the job naming the variable, and nothing is published",
    );
    it.skipIf(unforwarded.skip)(unforwarded.name, async () => {
        const r = await runDagger("dagger-publish.yaml", "unforwarded");
        expect(r.code).not.toBe(0);
        expect(r.log).toContain("ZOT_CI_API_KEY is empty in this job");
        expect(await daggerProbeDigest("unforwarded")).toBeUndefined();
    });

    it("Argo CD syncs config.yaml with container.options: the next up reports jobsSeeKey and hasKey, and a job pushes with the key", async () => {
        cluster.syncRunnerConfig(FORWARDING_RUNNER_CONFIG);
        synced = deployment();
        const up = await run.stack.up(recording(run));
        expect(outputsOf(up)).toMatchObject({
            hasKey: true,
            jobsSeeKey: true,
            jobRoute: "docker executor: container.options forwards the runner's ZOT_CI_API_KEY into job containers (-e ZOT_CI_API_KEY)",
            envWired: true,
        });
        const r = await job("push.yaml", "v1");
        expect(r.code, r.log).toBe(0);
        expect(await tags(KEY)).toContain("v1");
        const masked = await job("mask.yaml", "-");
        expect(masked.code, masked.log).toBe(0);
        expect(masked.log).toContain("the key is ***");
    });

    const publishes = daggerOnly(
        "a Dagger job (dagger core … with-registry-auth … publish) publishes with the delivered key on the real engine; the tag holds the pushed digest",
    );
    it.skipIf(publishes.skip)(publishes.name, async () => {
        const r = await expectPublished("dagger-v1");
        console.log(`Dagger publish on indri: push event to finished job ${r.seconds.toFixed(1)} s`);
    });

    const shadowed = daggerOnly(
        "blumeops's shape (env: ZOT_CI_API_KEY: ${{ secrets.ZOT_CI_API_KEY }}) with that secret unset: the empty value shadows the runner's key, zot refuses with 401, nothing is published",
    );
    it.skipIf(shadowed.skip)(shadowed.name, async () => {
        const r = await runDagger("dagger-secret-env.yaml", "shadowed");
        expect(r.code).not.toBe(0);
        expect(r.log).toMatch(/401 Unauthorized/);
        expect(await daggerProbeDigest("shadowed")).toBeUndefined();
    });

    it("a second up changes nothing and rolls nothing", async () => {
        const before = cluster.get<{ metadata: { generation: number; resourceVersion: string } }>(
            "deployment",
            "forgejo-runner",
            NS,
        )!.metadata;
        const rs = replicaSets();
        const up = await run.stack.up(recording(run));
        const changes = Object.entries(up.summary.resourceChanges ?? {}).filter(([op]) => op !== "same" && op !== "read");
        expect(changes).toEqual([]);
        const after = cluster.get<{ metadata: { generation: number; resourceVersion: string } }>(
            "deployment",
            "forgejo-runner",
            NS,
        )!.metadata;
        expect(after.generation).toBe(before.generation);
        expect(after.resourceVersion).toBe(before.resourceVersion);
        expect(replicaSets()).toBe(rs);
    });

    it("rotation: ESO syncs the new key at once, the runner rolls exactly once, and the next job pushes with the new key", async () => {
        await rotateKey(emulator.url, TOKEN, ROTATED);
        registry.setKey(ROTATED);
        const rs = replicaSets();
        run.stack.workspace.program = indriProgram(fingerprint(ROTATED), runner);
        const t0 = Date.now();
        const up = await run.stack.up(recording(run));
        const seconds = (Date.now() - t0) / 1000;
        const out = Object.fromEntries(Object.entries(up.outputs).map(([k, v]) => [k, v.value as unknown]));
        expect(out).toMatchObject({ hasKey: true, secretFingerprint: fingerprint(ROTATED), templateFingerprint: fingerprint(ROTATED) });
        // ESO's refreshInterval is not involved: the new ExternalSecret syncs on creation.
        expect(seconds).toBeLessThan(120);
        expect(replicaSets()).toBe(rs + 1);
        const names = (
            JSON.parse(cluster.kubectl(["get", "externalsecret", "-n", NS, "-o", "json"]).stdout) as {
                items: { metadata: { name: string } }[];
            }
        ).items.map((i) => i.metadata.name);
        expect(names.sort()).toEqual(["forgejo-runner-env", String(out["externalSecretName"])].sort());
        expect(out["secretName"]).toBe("zot-ci-api-key");
        console.log(`rotation: pulumi up to hasKey in ${seconds.toFixed(1)} s`);
        const r = await job("push.yaml", "v2");
        expect(r.code, r.log).toBe(0);
        expect(await tags(ROTATED)).toEqual(expect.arrayContaining(["v1", "v2"]));
        // A runner that still held the old key (a pod of the old template) is refused.
        const stale = await job("push.yaml", "stale", { ZOT_CI_API_KEY: KEY });
        expect(stale.code).not.toBe(0);
        expect(stale.log).toMatch(/invalid username\/password|unauthorized|401/i);
    });

    const rotated = daggerOnly("after the rotation the next Dagger job publishes with the new key; a pod that kept the old key gets 401");
    it.skipIf(rotated.skip)(rotated.name, async () => {
        await expectPublished("dagger-v2");
        const stale = await runDagger("dagger-publish.yaml", "dagger-stale", { ZOT_CI_API_KEY: KEY });
        expect(stale.code).not.toBe(0);
        expect(stale.log).toMatch(/401 Unauthorized/);
        expect(await daggerProbeDigest("dagger-stale")).toBeUndefined();
    });

    it("Argo CD re-applying its manifest leaves our env entry and annotation in place", () => {
        const rsBefore = replicaSets();
        cluster.apply([runnerDeployment(FORWARDING_RUNNER_CONFIG)], ARGO_MANAGER);
        const d = deployment();
        expect(d.spec.template.metadata.annotations?.[FINGERPRINT_ANNOTATION]).toBe(fingerprint(ROTATED));
        expect(container(d, "runner").env?.map((e) => e.name)).toContain("ZOT_CI_API_KEY");
        expect(replicaSets()).toBe(rsBefore);
    });

    it("a sync that replaces the whole Deployment: the next up reports hasKey false; replacing our patch puts our fields back", async () => {
        // As an Argo CD sync with Replace=true would: the manifest alone, our fields gone.
        const current = deployment() as unknown as { metadata: Record<string, unknown> };
        const manifest = runnerDeployment(FORWARDING_RUNNER_CONFIG) as { metadata: Record<string, unknown> };
        cluster.kubectl(
            ["replace", "-f", "-"],
            JSON.stringify({ ...manifest, metadata: { ...manifest.metadata, resourceVersion: current.metadata["resourceVersion"] } }),
        );
        expect(container(deployment(), "runner").env?.map((e) => e.name)).not.toContain("ZOT_CI_API_KEY");

        const stale = await run.stack.up(recording(run));
        expect(stale.outputs["envWired"]?.value).toBe(false);
        expect(stale.outputs["hasKey"]?.value).toBe(false);

        const state = (await run.stack.exportStack()).deployment as { resources: { urn: string; type: string }[] };
        const patchUrn = state.resources.find((r) => r.type === "kubernetes:apps/v1:DeploymentPatch")!.urn;
        const rs = replicaSets();
        const repaired = await run.stack.up({ ...recording(run), replace: [patchUrn] });
        expect(repaired.outputs["envWired"]?.value).toBe(true);
        expect(repaired.outputs["hasKey"]?.value).toBe(true);
        const d = deployment();
        expect(container(d, "runner").env?.map((e) => e.name)).toContain("ZOT_CI_API_KEY");
        expect(d.spec.template.metadata.annotations?.[FINGERPRINT_ANNOTATION]).toBe(fingerprint(ROTATED));
        // Both templates existed before (the manifest's own, ours after the
        // rotation): Kubernetes scales their ReplicaSets back up, making none.
        expect(replicaSets()).toBe(rs);
    });

    it("never puts either key in state, in what pulumi prints, or in non-debug events", () => {
        const state = persistedState(run);
        expect(state).toContain('"ciphertext"');
        // Pulumi's Node.js runtime sends every RPC response, secrets included, as
        // debug diagnostics (shown only with --debug / -v, but present in the
        // event log). The program reads the synced Secret to confirm ESO's
        // fingerprint, so its data is there; see README, "Security notes".
        const seen = nonDebug(run);
        const logs = jobs.map((j) => j.log).join("\n");
        // The process list inside the job container while skopeo pushed.
        expect(logs).toContain("--- ps (sandbox, during skopeo)");
        const sources = {
            state,
            "output+events": seen,
            [engine === "act" ? "job logs (act's output)" : "job logs (Gitea's)"]: logs,
            "runner daemons' logs": runnerJobs.runnerLog(),
            "registry log": readFileSync(registry.logFile, "utf8"),
            "dockerd log": readFileSync(dockerd.logFile, "utf8"),
            ...(daggerEngine !== undefined ? daggerSources(daggerEngine) : {}),
        };
        expect(findLeaks(sources, { KEY, ROTATED })).toEqual([]);
    });

    it("destroy: our ExternalSecret, its Secret, env entry and annotation go; the rest stays", async () => {
        await run.stack.destroy(recording(run));
        const d = deployment();
        expect(d.spec.template.metadata.annotations?.[FINGERPRINT_ANNOTATION]).toBeUndefined();
        expect(container(d, "runner").env).toEqual(container(before, "runner").env);
        expect(container(d, "dind")).toEqual(container(before, "dind"));
        expect(d.spec.template.spec.volumes).toEqual(synced.spec.template.spec.volumes);
        const names = (
            JSON.parse(cluster.kubectl(["get", "externalsecret", "-n", NS, "-o", "json"]).stdout) as {
                items: { metadata: { name: string } }[];
            }
        ).items.map((i) => i.metadata.name);
        expect(names).toEqual(["forgejo-runner-env"]);
        expect(cluster.get("secret", "zot-ci-api-key", NS)).toBeUndefined();
        expect(cluster.get("secret", "forgejo-runner-env", NS)).toBeDefined();
    });
});

describe("bad input leaves the cluster as it was", () => {
    const attempt = async (config: KubernetesRunnerConfig, stackName: string) => {
        const bad = await inlineStack("ci-registry-auth", stackName, indriProgram(fingerprint(KEY), config));
        try {
            await bad.stack.up(recording(bad));
            return "";
        } catch (err) {
            return (err as Error).message;
        } finally {
            await bad.stack.destroy().catch(() => undefined);
            bad.dispose();
        }
    };

    it.each([
        ["applied server-side (Argo CD with ServerSideApply)", false],
        ["applied client-side (kubectl apply, Argo CD's default): last-applied-configuration holds the config again", true],
    ])("a key written into runner.envs, %s, is reported as an error, and neither state nor output holds it", async (_how, clientSide) => {
        const inConfig = "zak_written_into_the_configmap_5d4c3b2a1f0e";
        cluster.syncRunnerConfig(
            FORWARDING_RUNNER_CONFIG.replace(
                "    TZ: America/Los_Angeles\n",
                `    TZ: America/Los_Angeles\n    ZOT_CI_API_KEY: ${inConfig}\n`,
            ),
            clientSide,
        );
        if (clientSide) {
            // The live ConfigMap does carry the key in its annotation: the scan below reads a real threat.
            const live = cluster.kubectl(["get", "configmap", "-n", NS, "-o", "json"]).stdout;
            expect(live).toContain("last-applied-configuration");
            expect(findLeaks({ live }, { inConfig })).not.toEqual([]);
        }
        const other = await inlineStack("ci-registry-auth", "envs-key", indriProgram(fingerprint(KEY), runner));
        try {
            const up = await other.stack.up(recording(other));
            expect(outputsOf(up)).toMatchObject({
                hasKey: false,
                jobsSeeKey: false,
                jobRoute: expect.stringMatching(
                    /^error: runner\.envs in ConfigMap forgejo-runner\/forgejo-runner-config-\w+ \(key config\.yaml\) defines ZOT_CI_API_KEY/,
                ) as unknown,
            });
            // The ConfigMap read keeps its data encrypted in state.
            expect(findLeaks({ state: persistedState(other), "output+events": nonDebug(other) }, { inConfig })).toEqual([]);
        } finally {
            await other.stack.destroy().catch(() => undefined);
            other.dispose();
            cluster.syncRunnerConfig(FORWARDING_RUNNER_CONFIG);
        }
    });

    it("a wrong container name fails before anything is created", async () => {
        const rs = replicaSets();
        const message = await attempt({ ...runner, container: "forgejo" }, "bad-container");
        expect(message).toMatch(/has no container "forgejo" \(it has: runner, dind\).*runner\.container/);
        // Printed alone, as pulumi prints an error of the program.
        expect(message).not.toMatch(/error serializing property/);
        expect(replicaSets()).toBe(rs);
        expect(cluster.get("externalsecret", "zot-ci-api-key", NS)).toBeUndefined();
    });

    it("a missing ClusterSecretStore fails before anything is created", async () => {
        const message = await attempt({ ...runner, clusterSecretStore: "no-such-store" }, "bad-store");
        expect(message).toMatch(/no-such-store/);
        expect(message).not.toMatch(/error serializing property/);
        const names = (JSON.parse(cluster.kubectl(["get", "externalsecret", "-n", NS, "-o", "json"]).stdout) as { items: unknown[] }).items
            .length;
        expect(names).toBe(1);
    });

    it("a missing Deployment fails with its name", async () => {
        const message = await attempt({ ...runner, deployment: "no-such-runner" }, "bad-deployment");
        expect(message).toMatch(/no-such-runner/);
    });
    it("a missing namespace fails with the Deployment it looked for", async () => {
        const message = await attempt({ ...runner, namespace: "no-such-namespace" }, "bad-namespace");
        expect(message).toMatch(/no-such-namespace\/forgejo-runner|not found/);
    });

    it("an unreachable API server fails clearly and changes nothing", async () => {
        const kubeconfig = join(cluster.state, "unreachable.kubeconfig");
        writeFileSync(kubeconfig, readFileSync(cluster.kubeconfig, "utf8").replace(/server: .*/, "server: https://127.0.0.1:1"));
        const rs = replicaSets();
        const message = await attempt({ ...runner, kubeconfig }, "unreachable");
        expect(message).toMatch(/unreachable|connection refused/i);
        expect(replicaSets()).toBe(rs);
    });

    it("with ESO not running, the bounded wait for the sync fails and the Deployment is left alone", async () => {
        const pid = Number(readFileSync(join(cluster.state, "external-secrets.pid"), "utf8"));
        process.kill(pid, "SIGTERM");
        const before = deployment().spec.template;
        const rs = replicaSets();
        const message = await attempt({ ...runner, syncTimeoutSeconds: 10 }, "no-eso");
        expect(message).toMatch(/ExternalSecret|Ready|timed out/i);
        expect(deployment().spec.template).toEqual(before);
        expect(replicaSets()).toBe(rs);
    });
});
