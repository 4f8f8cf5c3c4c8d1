/**
 * The whole program for each stack under Pulumi mocks: what it registers,
 * what it must never put in plaintext, what it reports, and how it fails.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";

import { renderEnvFile } from "../../components/ssh/envfile";
import { fingerprint } from "../../components/fingerprint";
import { FINGERPRINT_ANNOTATION, secretObjectName } from "../../components/kubernetes/manifests";
import { defineStack } from "../../components/stack";
import {
    Harness,
    healthyWorld,
    INDRI_CONFIG,
    isSecretValue,
    plainStrings,
    RUNNER_CONFIG_MAP,
    CONNECT_TOKEN,
    SERVICE_ACCOUNT_TOKEN,
    unwrap,
    type Recorded,
    type World,
} from "../support/harness";
import { fakeRegistry, type FakeRegistry } from "../support/fake-registry";
import { ciKubeconfigOf, kubernetesDelivered, sshDelivered, valueOf } from "../support/outputs";
import { committedRunner, stackConfig } from "../support/stack-config";

const KEY = "zak_3f9c2a71d04e4b6c9a8e5d2b17f0c6e1";
const ROTATED = "zak_8e1d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";

/** Fails if the key is in any resource name or plaintext input. */
function expectNoPlainKey(resources: Recorded[], key: string): void {
    for (const r of resources) {
        expect(r.name).not.toContain(key);
        const leaks = plainStrings(r.inputs).filter((s) => s.text.includes(key));
        expect(leaks.map((l) => `${r.type} ${r.name} ${l.path}`)).toEqual([]);
    }
}

const harness = new Harness();
beforeAll(() => harness.install());
afterAll(() => harness.dispose());

/** The Kubernetes objects the program asked to create (reads carry an id; the provider is not an object). */
function created(h: Harness): string[] {
    return h.resources.filter((r) => r.type.startsWith("kubernetes:") && r.id === undefined).map((r) => `${r.type} ${r.name}`);
}

async function run(stack: "indri" | "ringtail", world = healthyWorld(KEY)) {
    harness.reset(world);
    const outputs = await defineStack(stackConfig(stack));
    return { harness, outputs };
}

describe("ringtail (ssh)", () => {
    it("sends the env file on stdin as a secret and never puts the key in a plaintext input or name", async () => {
        const { harness, outputs } = await run("ringtail");
        await valueOf(outputs.hasKey);

        const commands = harness.byType("command:remote:Command");
        // Named after the stack (the mocks' stack is "test"), not after a host.
        expect(commands.map((c) => c.name).sort()).toEqual(["test-check-command", "test-env-file", "test-verify"]);
        const deliver = commands.find((c) => c.name === "test-env-file")!;
        expect(isSecretValue(deliver.inputs["stdin"])).toBe(true);
        expect(unwrap(deliver.inputs["stdin"])).toContain(`ZOT_CI_API_KEY=${KEY}\n`);
        for (const field of ["create", "update", "delete"]) {
            expect(typeof deliver.inputs[field]).toBe("string");
        }
        expect(deliver.inputs["logging"]).toBe("none");
        expect(deliver.inputs["addPreviousOutputInEnv"]).toBe(false);
        expect(deliver.inputs["environment"]).toBeUndefined();
        expectNoPlainKey(harness.resources, KEY);
    });

    it("pins the host key and holds no private key: the ssh-agent of the machine running pulumi signs", async () => {
        const { harness, outputs } = await run("ringtail");
        await valueOf(outputs.hasKey);
        for (const c of harness.byType("command:remote:Command")) {
            const connection = unwrap(c.inputs["connection"]) as Record<string, unknown>;
            expect(connection["host"]).toBe("ringtail");
            expect(connection["user"]).toBe("root");
            expect(String(connection["hostKey"])).toMatch(/^ssh-ed25519 /);
            expect(Object.keys(connection).sort()).toEqual(["dialErrorLimit", "host", "hostKey", "perDialTimeout", "port", "user"]);
        }
    });

    it("installs the check as key-health's forced command beside the env file, and reports the check key's restriction", async () => {
        const { harness, outputs } = await run("ringtail");
        await valueOf(outputs.hasKey);
        const install = harness.byType("command:remote:Command").find((c) => c.name === "test-check-command")!;
        expect(install.inputs["create"]).toContain("p='/etc/forgejo-runner/ci-registry-auth-check'");
        expect(harness.world.checkCommand).toMatch(/^#!\/bin\/sh\n/);
        expect(harness.world.checkCommand).toContain("f='/etc/forgejo-runner/zot-api-key.env'");
        expect(harness.world.checkCommand).not.toContain(KEY);
        expect((await sshDelivered(outputs)).checkKey).toBe("not configured (runner.checkKey is not set)");
    });

    it("reports matching fingerprints and hasKey when the host holds the key", async () => {
        const { outputs } = await run("ringtail");
        expect(await valueOf(outputs.keyFingerprint)).toBe(fingerprint(KEY));
        const delivered = await sshDelivered(outputs);
        expect(delivered).toMatchObject({
            changed: true,
            fileFingerprint: fingerprint(KEY),
            processFingerprint: fingerprint(KEY),
            fileOwner: "0:0",
            fileMode: "600",
            unitActive: "active",
            unitReadsFile: true,
        });
        expect(await valueOf(outputs.hasKey)).toBe(true);
        expect(JSON.stringify(delivered)).not.toContain(KEY);
    });

    it("reports that host jobs inherit the key, from the runner's config and registration labels", async () => {
        const { outputs } = await run("ringtail");
        expect(await sshDelivered(outputs)).toMatchObject({
            jobsSeeKey: true,
            jobRoute: "host executor (labels nix-container-builder): jobs inherit the runner's environment",
        });
    });

    it("says hasKey false, warning once with the fix, when runner.envs shadows the key or a docker label has no forwarding", async () => {
        for (const [change, route] of [
            [
                (w: World) => (w.hostConfig = `runner:\n  envs:\n    ZOT_CI_API_KEY: ${KEY}\n`),
                /^error: runner\.envs in \/nix\/store\/.*defines ZOT_CI_API_KEY/,
            ],
            [
                (w: World) => (w.hostRegistration = JSON.stringify({ labels: ["nix-container-builder:host", "docker:docker://node:22"] })),
                /^docker executor \(labels docker\)/,
            ],
            [(w: World) => delete w.hostRegistration, /^cannot tell which executor runs jobs: .*\.runner is missing/],
        ] as const) {
            const world = healthyWorld(KEY);
            change(world);
            const warn = vi.spyOn(pulumi.log, "warn");
            const { outputs } = await run("ringtail", world);
            const delivered = await sshDelivered(outputs);
            expect(delivered).toMatchObject({
                jobsSeeKey: false,
                jobRoute: expect.stringMatching(route) as unknown,
                processFingerprint: fingerprint(KEY),
            });
            expect(await valueOf(outputs.hasKey)).toBe(false);
            expect(JSON.stringify(delivered)).not.toContain(KEY);
            const warnings = warn.mock.calls.map(([m]) => m).filter((m) => m.includes("jobs on"));
            warn.mockRestore();
            expect(warnings).toHaveLength(1);
            expect(warnings[0]).toMatch(/Fix: .*services\.gitea-actions-runner\.instances\.nix_container_builder\.settings|Fix: check/);
            expect(warnings[0]).not.toContain(KEY);
        }
    });

    it("says hasKey false when the unit does not read the file", async () => {
        const world = healthyWorld(KEY);
        world.unitReadsFile = false;
        const { outputs } = await run("ringtail", world);
        expect(await valueOf(outputs.hasKey)).toBe(false);
    });

    it("restarts the unit when the file changes, so the process picks up the new key", async () => {
        const world = healthyWorld(KEY);
        world.files.set("/etc/forgejo-runner/zot-api-key.env", renderEnvFile("ZOT_CI_API_KEY", ROTATED));
        world.processEnv.set("ZOT_CI_API_KEY", ROTATED);
        const { outputs } = await run("ringtail", world);
        expect((await sshDelivered(outputs)).changed).toBe(true);
        expect(world.restarts).toBe(1);
        expect((await sshDelivered(outputs)).processFingerprint).toBe(fingerprint(KEY));
        expect(await valueOf(outputs.hasKey)).toBe(true);
    });

    it("restarts the unit once when the bytes are the same but the running unit holds another key (a delivery killed after its rename)", async () => {
        const world = healthyWorld(KEY);
        world.files.set("/etc/forgejo-runner/zot-api-key.env", renderEnvFile("ZOT_CI_API_KEY", KEY));
        world.processEnv.set("ZOT_CI_API_KEY", ROTATED);
        const { outputs } = await run("ringtail", world);
        expect((await sshDelivered(outputs)).changed).toBe(false);
        expect(world.restarts).toBe(1);
        expect((await sshDelivered(outputs)).processFingerprint).toBe(fingerprint(KEY));
        expect(await valueOf(outputs.hasKey)).toBe(true);
    });

    it("leaves a unit that does not read the file alone when the bytes are the same, and reports the stale process instead of hiding it", async () => {
        const world = healthyWorld(KEY);
        world.unitReadsFile = false;
        world.files.set("/etc/forgejo-runner/zot-api-key.env", renderEnvFile("ZOT_CI_API_KEY", KEY));
        world.processEnv.set("ZOT_CI_API_KEY", ROTATED);
        const { outputs } = await run("ringtail", world);
        expect((await sshDelivered(outputs)).changed).toBe(false);
        expect(world.restarts).toBe(0);
        expect((await sshDelivered(outputs)).processFingerprint).toBe(fingerprint(ROTATED));
        expect(await valueOf(outputs.hasKey)).toBe(false);
    });
});

describe("the registry: canPush", () => {
    let zot: FakeRegistry;
    beforeAll(async () => {
        zot = await fakeRegistry("zot-ci");
    });
    afterAll(async () => {
        await zot.close();
    });

    it.each(["ringtail", "indri"] as const)(
        "%s: canPush when the runner has the key and the registry accepts it; the probe's facts are outputs",
        async (stack) => {
            zot.keys.clear();
            zot.keys.add(KEY);
            harness.reset(healthyWorld(KEY));
            const outputs = await defineStack(stackConfig(stack, { registry: { url: zot.url, repository: "blumeops/runner-job-image" } }));
            expect(await valueOf(outputs.hasKey)).toBe(true);
            expect(await valueOf(outputs.canPush)).toBe(true);
            expect(await pulumi.isSecret(outputs.registry)).toBe(false);
            expect(await valueOf(outputs.registry)).toMatchObject({
                url: zot.url,
                repository: "blumeops/runner-job-image",
                acceptsKey: true,
                refusesAnonymous: true,
                keyStatus: 202,
                anonymousStatus: 401,
                cancelStatus: 403,
                verdict: "ok",
            });
        },
    );

    it("a key the registry refuses: hasKey stays true, canPush is false, one warning names the registry and the status, and the delivery still happens", async () => {
        zot.keys.clear();
        harness.reset(healthyWorld(KEY));
        const warn = vi.spyOn(pulumi.log, "warn");
        const outputs = await defineStack(stackConfig("ringtail", { registry: { url: zot.url } }));
        expect(await valueOf(outputs.hasKey)).toBe(true);
        expect(await valueOf(outputs.canPush)).toBe(false);
        expect((await valueOf(outputs.registry)).keyStatus).toBe(401);
        const messages = warn.mock.calls.map((c) => c[0]).filter((m) => m.startsWith("registry:"));
        expect(messages).toEqual([
            expect.stringMatching(/^registry: http:\/\/127\.0\.0\.1:\d+ refuses the key \(401\).*The delivery went ahead/) as unknown,
        ]);
        expect(messages.join()).not.toContain(KEY);
        expect(harness.world.files.size).toBe(1);
        warn.mockRestore();
    });
});

describe("indri: CI's read-only identity", () => {
    it("grants the ServiceAccount get on exactly the objects the program reads, each by name, and no other verb", async () => {
        const { harness, outputs } = await run("indri");
        await valueOf(outputs.hasKey);
        const account = harness.one("kubernetes:core/v1:ServiceAccount");
        expect(account.inputs["metadata"]).toMatchObject({ name: "ci-registry-auth-ci", namespace: "forgejo-runner" });
        const role = harness.one("kubernetes:rbac.authorization.k8s.io/v1:Role");
        expect(role.inputs["rules"]).toEqual([
            { apiGroups: ["apps"], resources: ["deployments"], resourceNames: ["forgejo-runner"], verbs: ["get"] },
            // The ConfigMap the live Deployment mounts, and the ExternalSecret of the key read now.
            { apiGroups: [""], resources: ["configmaps"], resourceNames: [RUNNER_CONFIG_MAP], verbs: ["get"] },
            { apiGroups: [""], resources: ["secrets"], resourceNames: ["zot-ci-api-key"], verbs: ["get"] },
            {
                apiGroups: ["external-secrets.io"],
                resources: ["externalsecrets"],
                resourceNames: [secretObjectName("zot-ci-api-key", fingerprint(KEY))],
                verbs: ["get"],
            },
        ]);
        const clusterRole = harness.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole");
        expect(clusterRole.inputs["metadata"]).toMatchObject({ name: "forgejo-runner-ci-registry-auth-ci" });
        expect(clusterRole.inputs["rules"]).toEqual([
            {
                apiGroups: ["external-secrets.io"],
                resources: ["clustersecretstores"],
                resourceNames: ["onepassword-blumeops"],
                verbs: ["get"],
            },
        ]);
        for (const binding of ["RoleBinding", "ClusterRoleBinding"]) {
            expect(harness.one(`kubernetes:rbac.authorization.k8s.io/v1:${binding}`).inputs["subjects"]).toEqual([
                { kind: "ServiceAccount", name: "ci-registry-auth-ci", namespace: "forgejo-runner" },
            ]);
        }
        const token = harness.byType("kubernetes:core/v1:Secret").find((r) => r.inputs["type"] === "kubernetes.io/service-account-token")!;
        expect(token.inputs["metadata"]).toMatchObject({
            name: "ci-registry-auth-ci-token",
            annotations: { "kubernetes.io/service-account.name": "ci-registry-auth-ci" },
        });
    });

    it("exports a kubeconfig for it, secret, on the operator's cluster entry and context name", async () => {
        const dir = mkdtempSync(join(tmpdir(), "cra-kubeconfig-"));
        const ca = join(dir, "ca.crt");
        writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        const kubeconfig = join(dir, "config");
        writeFileSync(
            kubeconfig,
            [
                "apiVersion: v1",
                "kind: Config",
                "clusters:",
                `- name: minikube\n  cluster:\n    server: https://192.168.49.2:8443\n    certificate-authority: ${ca}`,
                "users:",
                "- name: minikube\n  user:\n    client-key-data: T1BFUkFUT1ItQURNSU4tS0VZ",
                "contexts:",
                "- name: minikube\n  context: {cluster: minikube, user: minikube}",
                "current-context: minikube",
                "",
            ].join("\n"),
        );
        harness.reset(healthyWorld(KEY));
        const outputs = await defineStack(stackConfig("indri", { runner: { ...committedRunner("indri"), kubeconfig } }));
        expect(await valueOf(outputs.hasKey)).toBe(true);
        expect(await pulumi.isSecret(ciKubeconfigOf(outputs))).toBe(true);
        const made = parse((await valueOf(ciKubeconfigOf(outputs))) ?? "") as Record<string, unknown>;
        expect(made).toEqual({
            apiVersion: "v1",
            kind: "Config",
            clusters: [
                {
                    name: "minikube",
                    cluster: {
                        server: "https://192.168.49.2:8443",
                        "certificate-authority-data": readFileSync(ca).toString("base64"),
                    },
                },
            ],
            users: [{ name: "ci-registry-auth-ci", user: { token: SERVICE_ACCOUNT_TOKEN } }],
            contexts: [{ name: "minikube", context: { cluster: "minikube", user: "ci-registry-auth-ci", namespace: "forgejo-runner" } }],
            "current-context": "minikube",
        });
        rmSync(dir, { recursive: true, force: true });
    });
});

describe("indri (kubernetes)", () => {
    it("creates an ExternalSecret named after the key that ESO merges into a stable Secret", async () => {
        const { harness, outputs } = await run("indri");
        await valueOf(outputs.hasKey);
        const secret = harness
            .byType("kubernetes:core/v1:Secret")
            .filter((r) => r.id === undefined && r.inputs["type"] !== "kubernetes.io/service-account-token");
        expect(secret.map((r) => r.inputs)).toEqual([
            expect.objectContaining({
                metadata: expect.objectContaining({ name: "zot-ci-api-key", namespace: "forgejo-runner" }) as unknown,
                type: "Opaque",
            }),
        ]);
        expect(secret[0]!.inputs).not.toHaveProperty("data");
        expect(secret[0]!.inputs).not.toHaveProperty("stringData");
        const es = harness.one("kubernetes:external-secrets.io/v1:ExternalSecret");
        const suffix = fingerprint(KEY).slice("sha256:".length, "sha256:".length + 10);
        expect(es.inputs["metadata"]).toMatchObject({
            name: `zot-ci-api-key-${suffix}`,
            namespace: "forgejo-runner",
            annotations: { [FINGERPRINT_ANNOTATION]: fingerprint(KEY), "pulumi.com/waitFor": "condition=Ready" },
        });
        expect(es.inputs["spec"]).toMatchObject({
            refreshPolicy: "CreatedOnce",
            secretStoreRef: { kind: "ClusterSecretStore", name: "onepassword-blumeops" },
            target: { name: "zot-ci-api-key", creationPolicy: "Merge" },
            data: [{ secretKey: "ZOT_CI_API_KEY", remoteRef: { key: "zot-ci-apikey", property: "credential" } }],
        });
        expectNoPlainKey(harness.resources, KEY);
    });

    it("patches only the env entry and the pod-template annotation, with its own field manager", async () => {
        const { harness, outputs } = await run("indri");
        await valueOf(outputs.hasKey);
        const patch = harness.one("kubernetes:apps/v1:DeploymentPatch");
        expect(patch.inputs["metadata"]).toMatchObject({
            name: "forgejo-runner",
            namespace: "forgejo-runner",
            annotations: { "pulumi.com/patchFieldManager": "ci-registry-auth" },
        });
        expect(patch.inputs["metadata"]).not.toHaveProperty(["annotations", "pulumi.com/patchForce"]);
        expect(patch.inputs["spec"]).toEqual({
            template: {
                metadata: { annotations: { [FINGERPRINT_ANNOTATION]: fingerprint(KEY) } },
                spec: {
                    containers: [
                        {
                            name: "runner",
                            env: [
                                {
                                    name: "ZOT_CI_API_KEY",
                                    valueFrom: { secretKeyRef: { name: "zot-ci-api-key", key: "ZOT_CI_API_KEY" } },
                                },
                            ],
                        },
                    ],
                },
            },
        });
    });

    it("uses a server-side-apply provider on the configured context", async () => {
        const { harness, outputs } = await run("indri");
        await valueOf(outputs.hasKey);
        const provider = harness.one("pulumi:providers:kubernetes");
        expect(provider.inputs).toMatchObject({ context: "minikube", enableServerSideApply: "true" });
    });

    it("reports the fingerprints ESO and the Deployment carry, and hasKey", async () => {
        const { outputs } = await run("indri");
        const delivered = await kubernetesDelivered(outputs);
        expect(delivered).toMatchObject({
            secretFingerprint: fingerprint(KEY),
            templateFingerprint: fingerprint(KEY),
            envWired: true,
            readyReplicas: 1,
            rolledOut: true,
        });
        expect(await valueOf(outputs.hasKey)).toBe(true);
    });

    it("reads the runner's config.yaml from the ConfigMap the Deployment mounts at --config, and reports how jobs get the key", async () => {
        const { harness, outputs } = await run("indri");
        const delivered = await kubernetesDelivered(outputs);
        expect(delivered).toMatchObject({
            jobsSeeKey: true,
            jobRoute: "docker executor: container.options forwards the runner's ZOT_CI_API_KEY into job containers (-e ZOT_CI_API_KEY)",
        });
        expect(harness.byType("kubernetes:core/v1:ConfigMap").map((r) => r.id)).toEqual([`forgejo-runner/${RUNNER_CONFIG_MAP}`]);
    });

    it("says hasKey false, with one warning naming the change, when job containers do not get the key", async () => {
        const world = healthyWorld(KEY);
        world.runnerConfigMap = INDRI_CONFIG.replace(/^ {2}options: .*\n/m, "");
        const warn = vi.spyOn(pulumi.log, "warn");
        const { outputs } = await run("indri", world);
        expect(await kubernetesDelivered(outputs)).toMatchObject({
            jobsSeeKey: false,
            jobRoute: expect.stringMatching(/^docker executor: job containers get none of the runner's environment/) as unknown,
            envWired: true,
        });
        expect(await valueOf(outputs.hasKey)).toBe(false);
        const warnings = warn.mock.calls.map(([m]) => m).filter((m) => m.includes("jobs on"));
        warn.mockRestore();
        expect(warnings).toEqual([
            expect.stringContaining(
                `Fix: set container.options: "-e ZOT_CI_API_KEY" in ConfigMap forgejo-runner/${RUNNER_CONFIG_MAP} (key config.yaml) (in Git, for Argo CD;`,
            ),
        ]);
    });

    it("says hasKey false when the config is missing from the ConfigMap, with the reason", async () => {
        const world = healthyWorld(KEY);
        delete world.runnerConfigMap;
        const { outputs } = await run("indri", world);
        expect((await kubernetesDelivered(outputs)).jobRoute).toBe(
            `cannot tell: ConfigMap forgejo-runner/${RUNNER_CONFIG_MAP} (key config.yaml) does not exist`,
        );
        expect(await valueOf(outputs.hasKey)).toBe(false);
    });

    it("says hasKey false when ESO synced a different value than the program read", async () => {
        const world = healthyWorld(KEY);
        world.esoValue = ROTATED;
        const { outputs } = await run("indri", world);
        expect((await kubernetesDelivered(outputs)).secretFingerprint).toBe(fingerprint(ROTATED));
        expect(await valueOf(outputs.hasKey)).toBe(false);
    });

    it("says hasKey false while the rollout is under way (not every wanted replica runs the new template and is ready)", async () => {
        const world = healthyWorld(KEY);
        world.rolloutUnderWay = true;
        const { outputs } = await run("indri", world);
        const delivered = await kubernetesDelivered(outputs);
        expect(delivered).toMatchObject({ templateFingerprint: fingerprint(KEY), envWired: true, rolledOut: false, replicas: 2 });
        expect(await valueOf(outputs.hasKey)).toBe(false);
    });

    it("fails before creating anything when the container is missing", async () => {
        const world = healthyWorld(KEY);
        world.containers = ["forgejo", "dind"];
        const { harness, outputs } = await run("indri", world);
        await expect(valueOf(outputs.hasKey)).rejects.toThrow(/has no container "runner" \(it has: forgejo, dind\).*runner\.container/);
        expect(created(harness)).toEqual([]);
    });

    it("fails before creating anything when the ClusterSecretStore is not Ready", async () => {
        const world = healthyWorld(KEY);
        world.storeReady = false;
        const { harness, outputs } = await run("indri", world);
        await expect(valueOf(outputs.hasKey)).rejects.toThrow(
            /ClusterSecretStore onepassword-blumeops is not Ready \(InvalidProviderConfig/,
        );
        expect(created(harness)).toEqual([]);
    });
});

describe("1Password key", () => {
    it("keeps the key secret and publishes only its fingerprint", async () => {
        harness.reset(healthyWorld(KEY));
        const { OnePasswordKey, readKey } = await import("../../components/onepassword/onepassword-key");
        const read = await readKey({
            connectUrl: harness.connectUrl,
            connectToken: CONNECT_TOKEN,
            vault: "blumeops",
            item: "zot-ci-apikey",
            field: "credential",
            expiryField: "expires",
            expiryWarningDays: 14,
            keyIdField: "zot-key-id",
        });
        const key = new OnePasswordKey("k", read);
        expect(await pulumi.isSecret(key.value)).toBe(true);
        expect(await valueOf(key.value)).toBe(KEY);
        expect(await pulumi.isSecret(key.fingerprint)).toBe(false);
        expect(await valueOf(key.fingerprint)).toBe(fingerprint(KEY));
        // Read over Connect's API: the vault and item by title, then the item; no provider, so no token in any input or state.
        expect(harness.connect.requests.map((r) => r.path.replace(/[a-z0-9]{26}/g, "<id>"))).toEqual(
            expect.arrayContaining([
                "/v1/vaults?filter=title%20eq%20%22blumeops%22",
                "/v1/vaults/<id>/items?filter=title%20eq%20%22zot-ci-apikey%22",
                "/v1/vaults/<id>/items/<id>",
            ]),
        );
        expect(harness.invokes).toEqual([]);
        expect(harness.resources.filter((r) => r.type.startsWith("pulumi:providers:"))).toEqual([]);
        expect(harness.resources.flatMap((r) => plainStrings(unwrap(r.inputs))).filter((p) => p.text.includes(CONNECT_TOKEN))).toEqual([]);
    });

    it("names the token, the vault or Connect when they are wrong, each with its fix", async () => {
        harness.reset(healthyWorld(KEY));
        const { readKey } = await import("../../components/onepassword/onepassword-key");
        const read = (connectUrl: string, connectToken: string, vault = "blumeops") =>
            readKey({
                connectUrl,
                connectToken,
                vault,
                item: "zot-ci-apikey",
                field: "credential",
                expiryField: "expires",
                expiryWarningDays: 14,
                keyIdField: "zot-key-id",
            }).then(
                () => "",
                (err: unknown) => String(err),
            );
        expect(await read(harness.connectUrl, "not-the-token")).toMatch(
            /Connect answered 401: Invalid bearer token\. Fix: OP_CONNECT_TOKEN is not a token this Connect server accepts/,
        );
        harness.connect.grant("ci-token-other-vault", { vaults: ["homelab"] });
        expect(await read(harness.connectUrl, "ci-token-other-vault")).toMatch(/the token reaches no vault named "blumeops"/);
        expect(await read("http://127.0.0.1:2", CONNECT_TOKEN)).toMatch(
            /Connect at http:\/\/127\.0\.0\.1:2 did not answer \(ECONNREFUSED\)\. Fix: check onepassword:url/,
        );
        expect(await read(harness.connectUrl, "not-the-token")).not.toContain(CONNECT_TOKEN);
    });

    it("names vault, item and the fix when the item cannot be read", async () => {
        const world = healthyWorld(KEY);
        delete world.item;
        await expect(run("ringtail", world)).rejects.toThrow(
            /could not read item "zot-ci-apikey" in vault "blumeops": no item is titled "zot-ci-apikey"\. Fix: check ci-registry-auth:vault and ci-registry-auth:item/,
        );
        expect(harness.byType("command:remote:Command")).toEqual([]);
    });

    it("names the field and the fix when the field is empty or missing", async () => {
        const world = healthyWorld(KEY);
        world.item = { category: "API_CREDENTIAL" };
        await expect(run("ringtail", world)).rejects.toThrow(/has no value in field "credential".*ci-registry-auth:field/);
        expect(harness.byType("command:remote:Command")).toEqual([]);
    });

    it("stops on an expired key before anything reaches a runner", async () => {
        const world = healthyWorld(KEY);
        world.item = { credential: KEY, sections: [{ id: "s", label: "rotation", fields: [{ label: "expires", value: "2020-01-01" }] }] };
        await expect(run("ringtail", world)).rejects.toThrow(/expired on 2020-01-01.*create a new API key/);
        expect(harness.byType("command:remote:Command")).toEqual([]);
    });

    it("indri: the cluster is read while 1Password is read, but nothing is created when the key is refused", async () => {
        const world = healthyWorld(KEY);
        world.item = { credential: KEY, sections: [{ id: "s", label: "rotation", fields: [{ label: "expires", value: "2020-01-01" }] }] };
        await expect(run("indri", world)).rejects.toThrow(/expired on 2020-01-01.*create a new API key/);
        // Let the registrations already under way settle.
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(harness.resources.some((r) => r.type === "kubernetes:apps/v1:Deployment" && r.id !== undefined)).toBe(true);
        expect(created(harness)).toEqual([]);
    });

    it("refuses a key shorter than 20 characters, whose published fingerprint could be reversed, before anything reaches a runner", async () => {
        const error = await run("ringtail", healthyWorld("zak_short_key_1234")).then(
            () => undefined,
            (err: unknown) => String(err),
        );
        expect(error).toMatch(
            /has 18 characters, fewer than 20: its published fingerprint could be reversed.*Fix: store the registry's whole API key/,
        );
        expect(error).not.toContain("zak_short_key_1234");
        expect(harness.byType("command:remote:Command")).toEqual([]);
        // Twenty characters are enough.
        const { outputs: ok } = await run("ringtail", healthyWorld("zak_0123456789abcdef"));
        expect(await valueOf(ok.hasKey)).toBe(true);
    });

    it("never shows a field's value in an error, even when expiryField names the field that holds the key", async () => {
        const world = healthyWorld(KEY);
        world.item = {
            credential: KEY,
            sections: [{ id: "s", label: "rotation", fields: [{ id: "apikey", label: "apikey", value: KEY }] }],
        };
        harness.reset(world);
        const config = stackConfig("ringtail");
        const error = await defineStack({ ...config, key: { ...config.key, expiryField: "apikey" } }).then(
            () => undefined,
            (err: unknown) => String(err),
        );
        expect(error).toMatch(/field "apikey" does not hold a date .*its value is not shown.*ci-registry-auth:expiryField/);
        expect(error).not.toContain(KEY);
        expect(harness.byType("command:remote:Command")).toEqual([]);
    });

    it("reports days until expiry when the item records one", async () => {
        const world = healthyWorld(KEY);
        const inFortyDays = Math.floor(Date.now() / 1000) + 40 * 86400 + 3600;
        world.item = {
            credential: KEY,
            sections: [{ id: "s", label: "rotation", fields: [{ label: "expires", value: String(inFortyDays) }] }],
        };
        const { outputs } = await run("ringtail", world);
        expect(await valueOf(outputs.keyDaysUntilExpiry)).toBe(40);
        expect(await valueOf(outputs.hasKey)).toBe(true);
    });
});

describe("a former version's Connect token in the stack's history", () => {
    const WARNING = /^state: stack test was last deployed by a version of this program that kept the 1Password Connect token in its state/;

    /** The run's `state:` warnings and its formerTokenHolder output. */
    async function stateCheck(world: World): Promise<{ warned: string[]; holder: unknown }> {
        const warn = vi.spyOn(pulumi.log, "warn");
        try {
            const { outputs } = await run("ringtail", world);
            await valueOf(outputs.hasKey);
            const holder = await valueOf(outputs.formerTokenHolder);
            return { warned: warn.mock.calls.map((c) => c[0]).filter((m) => m.startsWith("state:")), holder };
        } finally {
            warn.mockRestore();
        }
    }
    const invoked = (): string[] => harness.invokes.map((i) => i.token);
    const READ_NOW = { readFrom: "the last checkpoint's resources", resourcesReadAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as string };
    const EARLIER = "2026-12-01T09:00:00.000Z";

    it("warns while the last checkpoint holds the onepassword provider: rotate the token, change the passphrase, fence CI off the history", async () => {
        const { warned, holder } = await stateCheck({
            ...healthyWorld(KEY),
            lastCheckpoint: {
                outputs: { hasKey: true },
                types: ["pulumi:pulumi:Stack", "pulumi:providers:onepassword", "command:remote:Command"],
            },
        });
        expect(warned).toHaveLength(1);
        expect(warned[0]).toMatch(WARNING);
        expect(warned[0]).toMatch(/rotate the Connect token/);
        expect(warned[0]).toContain("pulumi stack change-secrets-provider passphrase --stack test");
        expect(warned[0]).toMatch(/\.pulumi\/history\/, \.pulumi\/backups\/, the \.bak/);
        expect(holder).toEqual({ holder: "present", ...READ_NOW });
        // Both reads name this very stack.
        expect(harness.invokes.map((i) => [i.token, i.inputs])).toEqual([
            ["pulumi:pulumi:readStackOutputs", { name: "organization/ci-registry-auth/test" }],
            ["pulumi:pulumi:readStackResourceOutputs", { stackName: "organization/ci-registry-auth/test" }],
        ]);
    });

    it("says nothing once the provider is gone (the run after the upgrade), and its output says where that was read", async () => {
        const after = await stateCheck({
            ...healthyWorld(KEY),
            lastCheckpoint: { outputs: { hasKey: true }, types: ["pulumi:pulumi:Stack", "command:remote:Command"] },
        });
        expect(after).toEqual({ warned: [], holder: { holder: "absent", ...READ_NOW } });
        expect(invoked()).toEqual(["pulumi:pulumi:readStackOutputs", "pulumi:pulumi:readStackResourceOutputs"]);
    });

    it("takes a later run's answer from the last checkpoint's own output, without reading its resources", async () => {
        const { warned, holder } = await stateCheck({
            ...healthyWorld(KEY),
            // The resources would say otherwise: this proves they are not read.
            lastCheckpoint: {
                outputs: {
                    hasKey: true,
                    formerTokenHolder: { holder: "absent", readFrom: "the last checkpoint's resources", resourcesReadAt: EARLIER },
                },
                types: ["pulumi:providers:onepassword"],
            },
        });
        expect(warned).toEqual([]);
        // The time the resources were read is carried, not this run's.
        expect(holder).toEqual({
            holder: "absent",
            readFrom: expect.stringMatching(/^the last checkpoint's formerTokenHolder output/) as string,
            resourcesReadAt: EARLIER,
        });
        expect(invoked()).toEqual(["pulumi:pulumi:readStackOutputs"]);
    });

    it.each([
        ["present", { holder: "present", readFrom: "the last checkpoint's resources" }],
        ["unknown", { holder: "unknown", readFrom: "the last checkpoint's resources: the read failed" }],
        ["not-read", { holder: "not-read", readFrom: "nothing" }],
        ["absent without the time its resources were read", { holder: "absent", readFrom: "the last checkpoint's resources" }],
        ["anything but an object", "absent"],
    ])("reads the resources again when the last checkpoint's output says %s", async (_label, formerTokenHolder) => {
        const { warned, holder } = await stateCheck({
            ...healthyWorld(KEY),
            lastCheckpoint: {
                outputs: { hasKey: true, formerTokenHolder },
                types: ["pulumi:pulumi:Stack", "pulumi:providers:onepassword"],
            },
        });
        expect(warned).toHaveLength(1);
        expect(warned[0]).toMatch(WARNING);
        expect(holder).toEqual({ holder: "present", ...READ_NOW });
        expect(invoked()).toEqual(["pulumi:pulumi:readStackOutputs", "pulumi:pulumi:readStackResourceOutputs"]);
    });

    it("does not ask a stack never deployed for its resources, and says it read nothing", async () => {
        const { warned, holder } = await stateCheck(healthyWorld(KEY));
        expect(warned).toEqual([]);
        expect(holder).toEqual({ holder: "not-read", readFrom: "nothing: the last checkpoint has no outputs (a stack never deployed)" });
        expect(invoked()).toEqual(["pulumi:pulumi:readStackOutputs"]);
    });

    it("says it could not read the checkpoint, and that nothing is known of the history from here; the run goes on", async () => {
        const { warned, holder } = await stateCheck({ ...healthyWorld(KEY), lastCheckpoint: { outputs: { hasKey: true } } });
        expect(warned).toEqual([
            "state: the resources of stack test's last checkpoint could not be read (failed to load checkpoint: AccessDenied), " +
                "so whether an earlier version kept the Connect token in its state is not known from here.",
        ]);
        expect(holder).toEqual({
            holder: "unknown",
            readFrom: "the last checkpoint's resources: the read failed (the run's warning says why)",
        });
    });
});
