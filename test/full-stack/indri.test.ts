/**
 * The indri stack whole: `index.ts` with the committed Pulumi.indri.yaml
 * (only the kubeconfig path and the Connect settings changed), run by the
 * pulumi CLI with the real kubernetes provider, against the
 * Connect emulator and the sandbox control plane with the real External
 * Secrets Operator. Needs CI_REGISTRY_AUTH_PROVIDER_PLUGINS (see
 * sandbox/project-stack.ts). The component's finer behaviour (field
 * ownership, Argo CD re-apply, bad cluster input) is tested in
 * test/sandbox/indri.test.ts; this file proves the stack as operators run it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { fingerprint } from "../../components/fingerprint";
import { FINGERPRINT_ANNOTATION } from "../../components/kubernetes/manifests";
import { OUTPUT_NAMES } from "../../components/outputs";
import { BLUMEOPS_RUNNER_CONFIG, Cluster, FORWARDING_RUNNER_CONFIG, runnerConfigMap } from "../../sandbox/cluster";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { rotateKey } from "../../sandbox/onepassword";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { recording, recordingChanges } from "../../sandbox/stack";
import {
    attempt,
    FORMER_PROGRAM,
    formerProgram,
    leakSources,
    outputValues,
    indriSettings,
    operatorEnv,
    projectStack,
    resourceNames,
    upgradeProgram,
    type ProjectRun,
    type Settings,
} from "../../sandbox/project-stack";
import { findLeaks } from "../support/leaks";

const TOKEN = "sandbox-connect-token-indri";
const KEY = "zak_indri_full_3b2a1f0e9d8c7b6a5f4e3d2c1b0a";
const ROTATED = "zak_indri_full_rotated_6f5e4d3c2b1a0f9e8d7c";
const NS = "forgejo-runner";

let emulator: EmulatorProcess;
let cluster: Cluster;
let run: ProjectRun;
let registry: Registry;
let registryDir: string;
const runs: ProjectRun[] = [];

async function stack(overrides: Settings = {}, env: Record<string, string> = {}): Promise<ProjectRun> {
    const r = await projectStack(
        "indri",
        { ...indriSettings(emulator.url, cluster.kubeconfig, registry.url), ...overrides },
        { ...operatorEnv(TOKEN), ...env },
    );
    runs.push(r);
    return r;
}

interface Deployment {
    metadata: { generation: number; resourceVersion: string };
    spec: {
        template: {
            metadata: { annotations?: Record<string, string> };
            spec: { containers: { name: string; env?: { name: string }[] }[] };
        };
    };
}
const deployment = (): Deployment => cluster.get<Deployment>("deployment", "forgejo-runner", NS)!;
const replicaSets = (): number =>
    (JSON.parse(cluster.kubectl(["get", "rs", "-n", NS, "-l", "app=forgejo-runner", "-o", "json"]).stdout) as { items: unknown[] }).items
        .length;

beforeAll(async () => {
    emulator = await spawnEmulator({ token: TOKEN, key: KEY, expires: new Date(Date.now() + 80 * 86_400_000) });
    cluster = Cluster.start();
    cluster.applyIndriWorld({ connectUrl: emulator.url, connectToken: TOKEN });
    registryDir = mkdtempSync(join(tmpdir(), "cra-full-indri-registry-"));
    registry = await startRegistry(registryDir, "127.0.0.1", 5001, "zot-ci", KEY);
    run = await stack();
}, 900_000);

afterAll(async () => {
    for (const r of runs) r.dispose();
    await (registry as Registry | undefined)?.stop();
    if (registryDir) rmSync(registryDir, { recursive: true, force: true });
    (cluster as Cluster | undefined)?.stop();
    await (emulator as EmulatorProcess | undefined)?.stop();
    (cluster as Cluster | undefined)?.remove();
}, 120_000);

describe("the indri stack through pulumi, the real kubernetes provider", () => {
    it("previews before anything exists, with the fingerprint and, read from the live runner, the jobs warning", async () => {
        const preview = await run.stack.preview(recording(run));
        // What a PR reviewer sees: the key's fingerprint, read through the provider,
        // and that blumeops's config.yaml would not hand the key to jobs.
        expect(preview.stdout).toContain(fingerprint(KEY));
        expect(preview.stdout).toContain('Fix: set container.options: "-e ZOT_CI_API_KEY" in ConfigMap forgejo-runner/');
        expect(replicaSets()).toBe(1);
    });

    it("up: 1Password, ESO's Secret and the pod template agree on the fingerprint; with blumeops's config no job sees the key, so hasKey is false and pulumi warns with the fix", async () => {
        const up = await run.stack.up(recording(run));
        const out = outputValues(up.outputs);
        const fp = fingerprint(KEY);
        expect(out).toMatchObject({ runnerKind: "kubernetes", keyFingerprint: fp, hasKey: false, keyExpiryField: "expires" });
        // The stack exports exactly the one list of output names, each way round.
        expect(Object.keys(up.outputs).sort()).toEqual([...OUTPUT_NAMES.top].sort());
        expect(Object.keys(out["delivered"] as object).sort()).toEqual([...OUTPUT_NAMES.kubernetes].sort());
        // The probe's key fields are there when zot listed the keys, as it does here.
        expect(out["registry"]).toMatchObject({ keysRead: "ok" });
        expect(Object.keys(out["registry"] as object).sort()).toEqual([...OUTPUT_NAMES.registry].sort());
        expect(out["delivered"]).toMatchObject({
            secretFingerprint: fp,
            templateFingerprint: fp,
            envWired: true,
            rolledOut: true,
            jobsSeeKey: false,
            jobRoute:
                "docker executor: job containers get none of the runner's environment and container.options does not forward ZOT_CI_API_KEY",
        });
        expect(up.stdout).toContain(
            `Fix: set container.options: "-e ZOT_CI_API_KEY" in ConfigMap forgejo-runner/${runnerConfigMap(BLUMEOPS_RUNNER_CONFIG).metadata.name} (key config.yaml)`,
        );
        expect(Number(out["keyDaysUntilExpiry"])).toBeGreaterThan(70);
        const d = deployment();
        expect(d.spec.template.metadata.annotations?.[FINGERPRINT_ANNOTATION]).toBe(fp);
        expect(d.spec.template.spec.containers.find((c) => c.name === "runner")?.env?.map((e) => e.name)).toContain("ZOT_CI_API_KEY");
        expect(replicaSets()).toBe(2);
    });

    it("after Argo CD syncs config.yaml with container.options, up reports jobsSeeKey and hasKey", async () => {
        cluster.syncRunnerConfig(FORWARDING_RUNNER_CONFIG);
        const up = await run.stack.up(recording(run));
        const out = outputValues(up.outputs);
        expect(out).toMatchObject({ hasKey: true });
        expect(out["delivered"]).toMatchObject({
            jobsSeeKey: true,
            jobRoute: "docker executor: container.options forwards the runner's ZOT_CI_API_KEY into job containers (-e ZOT_CI_API_KEY)",
        });
        expect(up.stdout).not.toContain("do not see ZOT_CI_API_KEY");
    });

    it("a second up changes nothing and rolls nothing", async () => {
        const before = deployment().metadata;
        const up = await run.stack.up(recording(run));
        expect(Object.entries(up.summary.resourceChanges ?? {}).filter(([op]) => op !== "same" && op !== "read")).toEqual([]);
        expect(deployment().metadata).toMatchObject({ generation: before.generation, resourceVersion: before.resourceVersion });
    });

    it("rotation: a new item value in 1Password and `pulumi up` alone bring the runner the new key, in one rollout", async () => {
        await rotateKey(emulator.url, TOKEN, ROTATED);
        registry.setKey(ROTATED);
        const rs = replicaSets();
        const t0 = Date.now();
        const up = await run.stack.up(recording(run));
        const seconds = (Date.now() - t0) / 1000;
        const out = outputValues(up.outputs);
        const fp = fingerprint(ROTATED);
        expect(out).toMatchObject({ keyFingerprint: fp, hasKey: true });
        expect(out["delivered"]).toMatchObject({ secretFingerprint: fp, templateFingerprint: fp, jobsSeeKey: true });
        expect(replicaSets()).toBe(rs + 1);
        console.log(`indri rotation through the whole stack: pulumi up to hasKey in ${seconds.toFixed(1)} s`);
    });

    it("a wrong Connect token fails naming OP_CONNECT_TOKEN, and the cluster is left as it was", async () => {
        const before = deployment().metadata;
        const bad = await stack({}, { OP_CONNECT_TOKEN: "not-the-token" });
        const r = await attempt(bad, "up");
        expect(r.ok).toBe(false);
        expect(r.message).toMatch(/Connect answered 401[\s\S]*Fix: OP_CONNECT_TOKEN/);
        expect(r.message).not.toMatch(/^\s+at /m);
        // Printed alone, as pulumi prints an error of the program: no "error serializing property" chain.
        expect(r.message).not.toMatch(/error serializing property/);
        expect(deployment().metadata).toMatchObject({ generation: before.generation, resourceVersion: before.resourceVersion });
    });

    it("destroy: our objects, env entry and annotation go", async () => {
        const r = await attempt(run, "destroy");
        expect(r.message).toBe("");
        const d = deployment();
        expect(d.spec.template.metadata.annotations?.[FINGERPRINT_ANNOTATION]).toBeUndefined();
        expect(d.spec.template.spec.containers.find((c) => c.name === "runner")?.env?.map((e) => e.name)).not.toContain("ZOT_CI_API_KEY");
        expect(cluster.get("secret", "zot-ci-api-key", NS)).toBeUndefined();
    });

    // The operator's own stack is named indri (no rename: CI's objects move under their new component by
    // their parent alias alone); any other name renames the former program's host-named resources too.
    it.each(["upgrade-k8s", "indri"])(
        "upgrade: a stack %s the former program made (resources named after the host) takes this one with nothing replaced or rolled, and CI's Role updated in place",
        async (stackName) => {
            const former = formerProgram(FORMER_PROGRAM);
            try {
                const settings = indriSettings(emulator.url, cluster.kubeconfig, registry.url);
                const old = await projectStack("indri", settings, operatorEnv(TOKEN), { from: former, stackName });
                runs.push(old);
                const first = outputValues((await old.stack.up(recording(old))).outputs);
                expect(await resourceNames(old)).toContain("indri-deployment-patch");
                const before = deployment().metadata;
                const rs = replicaSets();

                upgradeProgram(old);
                // Reads are reads (the Deployment, the store, the synced Secret); the one change is CI's Role,
                // which now names the ConfigMap and the ExternalSecret it may read (CHANGELOG). CI's identity
                // is now a component of its own: created (no cluster object), its six objects moved under it
                // by alias, unchanged. The engine also registers its built-in provider the first time the
                // program reads the last checkpoint (the former-token check, components/former-token.ts): a
                // provider, no cluster object, and the change summary does not count it.
                const { options, changes } = recordingChanges(old);
                const changed = (): string[] => changes.map((c) => `${c.op} ${c.type} ${c.name}`).sort();
                const expected = [
                    `create ci-registry-auth:kubernetes:CiIdentity ${stackName}-ci`,
                    "create pulumi:providers:pulumi default",
                    `update kubernetes:rbac.authorization.k8s.io/v1:Role ${stackName}-ci-role`,
                ];
                const ops = (changes: Record<string, number>) =>
                    Object.fromEntries(Object.entries(changes).filter(([op]) => op !== "read" && op !== "same"));
                const preview = await old.stack.preview(options);
                expect(ops(preview.changeSummary)).toEqual({ create: 1, update: 1 });
                expect(changed()).toEqual(expected);
                changes.length = 0;
                const up = await old.stack.up(options);
                expect(ops(up.summary.resourceChanges ?? {})).toEqual({ create: 1, update: 1 });
                expect(changed()).toEqual(expected);
                // Renamed through the alias: the state now holds the stack-named resources only.
                const names = await resourceNames(old);
                expect(names).toContain(`${stackName}-deployment-patch`);
                expect(names).toContain(`${stackName}-ci-account`);
                if (stackName !== "indri") expect(names.filter((n) => n.startsWith("indri-"))).toEqual([]);
                expect(deployment().metadata).toMatchObject({ generation: before.generation, resourceVersion: before.resourceVersion });
                expect(replicaSets()).toBe(rs);
                expect(outputValues(up.outputs)).toMatchObject({ hasKey: first["hasKey"], keyFingerprint: first["keyFingerprint"] });
                expect((await attempt(old, "destroy")).message).toBe("");
            } finally {
                rmSync(former, { recursive: true, force: true });
            }
        },
    );

    it("no key in any state, config file, pulumi output, non-debug engine event or error", () => {
        const sources = leakSources(runs);
        expect(sources["stack 0 state+config"]).toContain('"ciphertext"');
        expect(findLeaks(sources, { KEY, ROTATED })).toEqual([]);
    });
});
