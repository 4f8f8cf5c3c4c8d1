/** The Kubernetes manifests the indri runner applies, built from plain values. */
import { describe, expect, it } from "vitest";

import { fingerprint } from "../../components/fingerprint";
import {
    deploymentPatchManifest,
    externalSecretManifest,
    FINGERPRINT_ANNOTATION,
    secretObjectName,
    targetSecretManifest,
} from "../../components/kubernetes/manifests";
import { namespaceRules } from "../../components/kubernetes/ci-identity";
import { deploymentFacts } from "../../components/kubernetes/live-deployment";

const FP = fingerprint("zak_manifest_key_0123456789");

/** Every leaf path of a JSON value, with list items keyed by their `name`. */
function leafPaths(value: unknown, path = ""): string[] {
    if (Array.isArray(value)) {
        return value.flatMap((v: unknown) => leafPaths(v, `${path}[${String((v as { name?: string }).name)}]`));
    }
    if (typeof value === "object" && value !== null) {
        return Object.entries(value).flatMap(([k, v]) => leafPaths(v, `${path}.${k}`));
    }
    return [path];
}

describe("deployment patch", () => {
    const patch = deploymentPatchManifest({
        deployment: "forgejo-runner",
        namespace: "forgejo-runner",
        container: "runner",
        envVar: "ZOT_CI_API_KEY",
        secretName: "zot-ci-api-key-abc",
        keyFingerprint: FP,
        fieldManager: "ci-registry-auth",
        rolloutTimeoutSeconds: 600,
    });

    it("owns exactly one env entry of the runner container and one pod-template annotation", () => {
        expect(leafPaths(patch.spec).sort()).toEqual([
            `.template.metadata.annotations.${FINGERPRINT_ANNOTATION}`,
            ".template.spec.containers[runner].env[ZOT_CI_API_KEY].name",
            ".template.spec.containers[runner].env[ZOT_CI_API_KEY].valueFrom.secretKeyRef.key",
            ".template.spec.containers[runner].env[ZOT_CI_API_KEY].valueFrom.secretKeyRef.name",
            ".template.spec.containers[runner].name",
        ]);
    });

    it("never touches replicas, selector, the dind sidecar, envFrom or volumes", () => {
        const text = JSON.stringify(patch);
        for (const forbidden of ["replicas", "selector", "dind", "envFrom", "volumes", "image", "patchForce"]) {
            expect(text).not.toContain(forbidden);
        }
    });

    it("names its field manager", () => {
        expect(patch.metadata).toMatchObject({ annotations: { "pulumi.com/patchFieldManager": "ci-registry-auth" } });
    });
});

describe("external secret", () => {
    const es = externalSecretManifest({
        name: "zot-ci-api-key-abc",
        targetSecret: "zot-ci-api-key",
        namespace: "forgejo-runner",
        clusterSecretStore: "onepassword-blumeops",
        item: "zot-ci-apikey",
        field: "credential",
        secretKey: "ZOT_CI_API_KEY",
        keyFingerprint: FP,
        syncTimeoutSeconds: 90,
        fieldManager: "ci-registry-auth",
    });

    it("uses the v1 API, the ClusterSecretStore and a bounded wait for Ready", () => {
        expect(es.apiVersion).toBe("external-secrets.io/v1");
        expect(es.metadata).toMatchObject({
            annotations: { "pulumi.com/waitFor": "condition=Ready", "pulumi.com/timeoutSeconds": "90", [FINGERPRINT_ANNOTATION]: FP },
        });
        expect(es.spec).toMatchObject({ secretStoreRef: { kind: "ClusterSecretStore", name: "onepassword-blumeops" } });
    });

    it("applies with our field manager, so a create a killed run left half-done is applied again without a conflict", () => {
        expect(es.metadata).toMatchObject({ annotations: { "pulumi.com/patchFieldManager": "ci-registry-auth" } });
        expect(targetSecretManifest("zot-ci-api-key", "forgejo-runner", "ci-registry-auth").metadata.annotations).toMatchObject({
            "pulumi.com/patchFieldManager": "ci-registry-auth",
        });
    });

    it("is deleted in the background, not waiting for the garbage collector (neither object owns anything)", () => {
        const background = { "pulumi.com/deletionPropagationPolicy": "background" };
        expect(es.metadata).toMatchObject({ annotations: background });
        expect(targetSecretManifest("zot-ci-api-key", "forgejo-runner", "ci-registry-auth").metadata.annotations).toEqual({
            "pulumi.com/patchFieldManager": "ci-registry-auth",
            ...background,
        });
    });

    it("merges into the stable Secret this program made, keeping it on deletion", () => {
        expect(es.spec).toMatchObject({ target: { name: "zot-ci-api-key", creationPolicy: "Merge", deletionPolicy: "Retain" } });
    });

    it("has ESO stamp the fingerprint of what it read with sprig's sha256sum", () => {
        const template = (es.spec["target"] as { template: { metadata: { annotations: Record<string, string> } } }).template;
        expect(template.metadata.annotations[FINGERPRINT_ANNOTATION]).toBe(
            '{{ .ZOT_CI_API_KEY | sha256sum | trunc 16 | printf "sha256:%s" }}',
        );
    });
});

describe("names and facts", () => {
    it("suffixes object names with the fingerprint's first 10 hex digits", () => {
        expect(secretObjectName("zot-ci-api-key", "sha256:0123456789abcdef")).toBe("zot-ci-api-key-0123456789");
        expect(() => secretObjectName("x", "md5:00")).toThrow(/not a fingerprint/);
    });

    const live = (over: { ready?: number; updated?: number; observed?: number; annotation?: string; secret?: string }) => ({
        metadata: { generation: 4 },
        spec: {
            replicas: 1,
            template: {
                metadata: { annotations: over.annotation ? { [FINGERPRINT_ANNOTATION]: over.annotation } : ({} as Record<string, string>) },
                spec: {
                    containers: [
                        {
                            name: "runner",
                            env: [
                                {
                                    name: "ZOT_CI_API_KEY",
                                    valueFrom: { secretKeyRef: { name: over.secret ?? "s", key: "ZOT_CI_API_KEY" } },
                                },
                            ],
                        },
                        { name: "dind" },
                    ],
                },
            },
        },
        status: { observedGeneration: over.observed ?? 4, replicas: 1, readyReplicas: over.ready ?? 1, updatedReplicas: over.updated ?? 1 },
    });

    it("calls a Deployment rolled out only when the controller saw the spec and every replica is updated and ready", () => {
        expect(deploymentFacts(live({ annotation: FP }), "runner", "ZOT_CI_API_KEY", "s")).toEqual({
            templateFingerprint: FP,
            envWired: true,
            replicas: 1,
            readyReplicas: 1,
            updatedReplicas: 1,
            oldReplicas: 0,
            rolledOut: true,
        });
        // An old pod still being scaled down is reported, not hidden.
        const scalingDown = live({ annotation: FP });
        scalingDown.status.replicas = 2;
        expect(deploymentFacts(scalingDown, "runner", "ZOT_CI_API_KEY", "s")).toMatchObject({ oldReplicas: 1, rolledOut: true });
        expect(deploymentFacts(live({ observed: 3 }), "runner", "ZOT_CI_API_KEY", "s").rolledOut).toBe(false);
        expect(deploymentFacts(live({ ready: 0 }), "runner", "ZOT_CI_API_KEY", "s").rolledOut).toBe(false);
        expect(deploymentFacts(live({ updated: 0 }), "runner", "ZOT_CI_API_KEY", "s").rolledOut).toBe(false);
        expect(deploymentFacts(live({ secret: "old" }), "runner", "ZOT_CI_API_KEY", "s").envWired).toBe(false);
        expect(deploymentFacts(live({}), "runner", "ZOT_CI_API_KEY", "s").templateFingerprint).toBe("none");
    });
});

describe("CI's Role", () => {
    const reads = {
        namespace: "forgejo-runner",
        deployment: "forgejo-runner",
        secretName: "zot-ci-api-key",
        clusterSecretStore: "onepassword-blumeops",
        configMap: "forgejo-runner-config-abc123",
        externalSecret: "zot-ci-api-key-0123456789",
    };

    it("names every object it may get: no rule reaches an object of another name", () => {
        const rules = namespaceRules(reads);
        for (const rule of rules) {
            expect(rule.verbs).toEqual(["get"]);
            expect(rule.resourceNames?.length, rule.resources.join()).toBe(1);
        }
        expect(rules.map((r) => `${r.resources[0] ?? ""}/${r.resourceNames?.[0] ?? ""}`)).toEqual([
            "deployments/forgejo-runner",
            "configmaps/forgejo-runner-config-abc123",
            "secrets/zot-ci-api-key",
            "externalsecrets/zot-ci-api-key-0123456789",
        ]);
    });

    it("has no ConfigMap rule when the Deployment mounts no config: an empty resourceNames would grant every ConfigMap", () => {
        const rules = namespaceRules({ ...reads, configMap: undefined });
        expect(rules.map((r) => r.resources[0])).toEqual(["deployments", "secrets", "externalsecrets"]);
        for (const rule of rules) expect(rule.resourceNames?.length).toBe(1);
    });
});
