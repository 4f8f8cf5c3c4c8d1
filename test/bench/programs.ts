/**
 * The programs `npm run bench` runs beside the real one (test/bench/stacks.bench.ts),
 * as the text of their index.ts. They import this project's components
 * (copied next to them), so a change of a component's API can break them
 * without any compiler seeing it: test/unit/bench-programs.test.ts
 * type-checks each.
 */

/** The empty program the ratios are taken against. */
export const EMPTY_PROGRAM = 'import * as pulumi from "@pulumi/pulumi";\n\nexport const x = pulumi.output(1);\n';

/** indri's runner component alone (for machines without the plugins), given the key's fingerprint. */
export function indriComponentProgram(kubeconfig: string, fp: string): string {
    return [
        'import { KubernetesRunner } from "./components/kubernetes/runner";',
        'import { parseConfig } from "./components/settings/config";',
        'import type { KubernetesRunnerConfig } from "./components/settings/config";',
        'import { rawConfig } from "./sandbox/committed-config";',
        `const runner = parseConfig(rawConfig("indri", { runner: { kind: "kubernetes", context: "minikube", kubeconfig: ${JSON.stringify(kubeconfig)} } })).runner as KubernetesRunnerConfig;`,
        `const r = new KubernetesRunner("indri", { runner, item: "zot-ci-apikey", field: "credential", envVar: "ZOT_CI_API_KEY", keyFingerprint: ${JSON.stringify(fp)} });`,
        "export const hasKey = r.hasKey;",
        "",
    ].join("\n");
}

/** What the floor programs read: the key's item (readKey's arguments), the cluster and the runner Deployment. */
export interface FloorInputs {
    key: Record<string, unknown>;
    cluster: { kubeconfig: string; context?: string; enableServerSideApply: boolean };
    /** `namespace/name` of the runner Deployment. */
    deployment: string;
}

/**
 * The floors' programs, by stack name: the key read from Connect as
 * index.ts reads it (an async program awaiting readKey, then the
 * OnePasswordKey component) and nothing else; and that plus the kubernetes
 * plugin and one read of the runner Deployment.
 */
export function floorPrograms(inputs: FloorInputs): Record<"key-read" | "key-and-deployment-read", string> {
    const keyImport = 'import { OnePasswordKey, readKey } from "./components/onepassword/onepassword-key";';
    const readKey = `const key = new OnePasswordKey("zot-ci-key", await readKey(${JSON.stringify(inputs.key)}));`;
    const program = (imports: string[], body: string[], exports: string): string =>
        [...imports, "", "export = async () => {", ...body.map((l) => `    ${l}`), `    return ${exports};`, "};", ""].join("\n");
    return {
        "key-read": program([keyImport], [readKey], "{ keyFingerprint: key.fingerprint }"),
        "key-and-deployment-read": program(
            ['import * as k8s from "@pulumi/kubernetes";', keyImport],
            [
                readKey,
                `const provider = new k8s.Provider("indri-cluster", ${JSON.stringify(inputs.cluster)});`,
                `const d = k8s.apps.v1.Deployment.get("indri-deployment", ${JSON.stringify(inputs.deployment)}, { provider });`,
            ],
            "{ keyFingerprint: key.fingerprint, replicas: d.spec.replicas }",
        ),
    };
}
