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
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { parseConfig, type KubernetesRunnerConfig } from "../../components/config";
import { fingerprint } from "../../components/fingerprint";
import { FINGERPRINT_ANNOTATION } from "../../components/kubernetes-manifests";
import { ARGO_MANAGER, Cluster, indriWorld, runnerDeployment } from "../../sandbox/cluster";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { rotateKey } from "../../sandbox/onepassword";
import { indriProgram, inlineStack, nonDebug, persistedState, recording, type Run } from "../../sandbox/stack";
import { findLeaks } from "../support/leaks";
import { committedRunner, rawConfig } from "../support/stack-config";

const TOKEN = "sandbox-connect-token";
const KEY = "zak_indri_5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b";
const ROTATED = "zak_indri_rotated_0a1b2c3d4e5f6a7b8c9d0e1f";
const NS = "forgejo-runner";

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
    cluster.apply(indriWorld({ connectUrl: emulator.url, connectToken: TOKEN }), ARGO_MANAGER);
    cluster.wait(["--for=condition=Ready", "clustersecretstore/onepassword-blumeops"]);
    cluster.wait(["--for=condition=Ready", "externalsecret/forgejo-runner-env", "-n", NS]);
    cluster.wait(["--for=condition=Available", "deployment/forgejo-runner", "-n", NS]);
    before = deployment();
    runner = parseConfig(rawConfig("indri", { runner: { ...committedRunner("indri"), kubeconfig: cluster.kubeconfig } }))
        .runner as KubernetesRunnerConfig;
    run = await inlineStack("ci-registry-auth", "indri", indriProgram(fingerprint(KEY), runner));
}, 900_000);

afterAll(async () => {
    // Whatever beforeAll got to start, stop it.
    (run as Run | undefined)?.dispose();
    (cluster as Cluster | undefined)?.stop();
    await (emulator as EmulatorProcess | undefined)?.stop();
    (cluster as Cluster | undefined)?.remove();
}, 120_000);

describe("indri on a real API server with the real External Secrets Operator", () => {
    it("previews before anything exists, with fingerprints only", async () => {
        const preview = await run.stack.preview(recording(run));
        expect(preview.changeSummary).toMatchObject({ create: expect.any(Number) as unknown });
        expect(cluster.get("externalsecret", "zot-ci-api-key", NS)).toBeUndefined();
        expect(replicaSets()).toBe(1);
    });

    it("up: ESO syncs the key, the runner container gets it, the pods roll, hasKey", async () => {
        const up = await run.stack.up(recording(run));
        const out = Object.fromEntries(Object.entries(up.outputs).map(([k, v]) => [k, v.value as unknown]));
        const fp = fingerprint(KEY);
        expect(out).toMatchObject({
            hasKey: true,
            secretFingerprint: fp,
            templateFingerprint: fp,
            envWired: true,
            rolledOut: true,
            readyReplicas: 1,
        });

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

    it("a second up changes nothing and rolls nothing", async () => {
        const before = cluster.get<{ metadata: { generation: number; resourceVersion: string } }>(
            "deployment",
            "forgejo-runner",
            NS,
        )!.metadata;
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
        expect(replicaSets()).toBe(2);
    });

    it("rotation: ESO syncs the new key at once and the runner rolls exactly once", async () => {
        await rotateKey(emulator.url, TOKEN, ROTATED);
        run.stack.workspace.program = indriProgram(fingerprint(ROTATED), runner);
        const t0 = Date.now();
        const up = await run.stack.up(recording(run));
        const seconds = (Date.now() - t0) / 1000;
        const out = Object.fromEntries(Object.entries(up.outputs).map(([k, v]) => [k, v.value as unknown]));
        expect(out).toMatchObject({ hasKey: true, secretFingerprint: fingerprint(ROTATED), templateFingerprint: fingerprint(ROTATED) });
        // ESO's refreshInterval is not involved: the new ExternalSecret syncs on creation.
        expect(seconds).toBeLessThan(120);
        expect(replicaSets()).toBe(3);
        const names = (
            JSON.parse(cluster.kubectl(["get", "externalsecret", "-n", NS, "-o", "json"]).stdout) as {
                items: { metadata: { name: string } }[];
            }
        ).items.map((i) => i.metadata.name);
        expect(names.sort()).toEqual(["forgejo-runner-env", String(out["externalSecretName"])].sort());
        expect(out["secretName"]).toBe("zot-ci-api-key");
        console.log(`rotation: pulumi up to hasKey in ${seconds.toFixed(1)} s`);
    });

    it("Argo CD re-applying its manifest leaves our env entry and annotation in place", () => {
        const rsBefore = replicaSets();
        cluster.apply([runnerDeployment()], ARGO_MANAGER);
        const d = deployment();
        expect(d.spec.template.metadata.annotations?.[FINGERPRINT_ANNOTATION]).toBe(fingerprint(ROTATED));
        expect(container(d, "runner").env?.map((e) => e.name)).toContain("ZOT_CI_API_KEY");
        expect(replicaSets()).toBe(rsBefore);
    });

    it("a sync that replaces the whole Deployment: the next up reports hasKey false; replacing our patch puts our fields back", async () => {
        // As an Argo CD sync with Replace=true would: the manifest alone, our fields gone.
        const current = deployment() as unknown as { metadata: Record<string, unknown> };
        const manifest = runnerDeployment() as { metadata: Record<string, unknown> };
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
        expect(findLeaks({ state, "output+events": seen }, { KEY, ROTATED })).toEqual([]);
    });

    it("destroy: our ExternalSecret, its Secret, env entry and annotation go; the rest stays", async () => {
        await run.stack.destroy(recording(run));
        const d = deployment();
        expect(d.spec.template.metadata.annotations?.[FINGERPRINT_ANNOTATION]).toBeUndefined();
        expect(container(d, "runner").env).toEqual(container(before, "runner").env);
        expect(container(d, "dind")).toEqual(container(before, "dind"));
        expect(d.spec.template.spec.volumes).toEqual(before.spec.template.spec.volumes);
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

    it("a wrong container name fails before anything is created", async () => {
        const rs = replicaSets();
        const message = await attempt({ ...runner, container: "forgejo" }, "bad-container");
        expect(message).toMatch(/has no container "forgejo" \(it has: runner, dind\).*runner\.container/);
        expect(replicaSets()).toBe(rs);
        expect(cluster.get("externalsecret", "zot-ci-api-key", NS)).toBeUndefined();
    });

    it("a missing ClusterSecretStore fails before anything is created", async () => {
        const message = await attempt({ ...runner, clusterSecretStore: "no-such-store" }, "bad-store");
        expect(message).toMatch(/no-such-store/);
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
