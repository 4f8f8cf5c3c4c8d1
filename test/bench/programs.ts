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

/** What the floor programs read: the key's item (readKey's arguments), the registry probed, the cluster and indri's runner. */
export interface FloorInputs {
    key: Record<string, unknown>;
    /** probeRegistry's settings and user. */
    registry: { settings: Record<string, unknown>; user: string };
    cluster: { kubeconfig: string; context?: string; enableServerSideApply: boolean };
    /** indri's runner: its namespace, Deployment, the Secret ESO fills and the store. */
    runner: { namespace: string; deployment: string; secretName: string; clusterSecretStore: string };
}

/** The floors, by stack name, each with the work it includes (what any program that reads the same things pays). */
export const FLOORS = {
    "key-read": "the key read from Connect",
    "key-read-probe": "the key read + the registry probe",
    "key-read-probe-command-plugin": "the key read + the registry probe + the command plugin's start (a provider, no command)",
    "key-read-probe-runner-reads":
        "the key read + the registry probe + the kubernetes plugin and the runner's reads (Deployment, its ConfigMap, ClusterSecretStore, the synced Secret)",
} as const;

/**
 * The floors' programs, by stack name (FLOORS says what each includes): the
 * key read from Connect as index.ts reads it (an async program awaiting
 * readKey, then the OnePasswordKey component); that plus the registry
 * probe as the program runs it; that plus the command plugin's start
 * (ringtail's floor: its no-op reads nothing over SSH, but diffing its
 * Commands needs the plugin, as any program delivering through the command
 * provider does); and key read and probe plus the kubernetes plugin and
 * the reads indri's runner needs to say what it holds (indri's floor).
 */
export function floorPrograms(inputs: FloorInputs): Record<keyof typeof FLOORS, string> {
    // Loaded as index.ts loads (components/sdk-load.ts, components/stack-traces.ts): a floor is what any program pays for the same reads, not for how this one starts.
    const start = ['import "./components/sdk-load";', 'import "./components/stack-traces";'];
    const keyImports = [
        ...start,
        'import * as pulumi from "@pulumi/pulumi";',
        'import { OnePasswordKey, readKey } from "./components/onepassword/onepassword-key";',
        'import { probeRegistry } from "./components/registry/probe";',
    ];
    const readKey = [`const read = await readKey(${JSON.stringify(inputs.key)});`, 'const key = new OnePasswordKey("zot-ci-key", read);'];
    const probe = `const registry = pulumi.unsecret(key.value.apply((v) => probeRegistry(${JSON.stringify(inputs.registry.settings)}, ${JSON.stringify(inputs.registry.user)}, v, read.keyId)));`;
    const r = inputs.runner;
    const program = (imports: string[], body: string[], exports: string): string =>
        [...imports, "", "export = async () => {", ...body.map((l) => `    ${l}`), `    return ${exports};`, "};", ""].join("\n");
    return {
        "key-read": program(keyImports.slice(0, start.length + 2), readKey, "{ keyFingerprint: key.fingerprint }"),
        "key-read-probe": program(keyImports, [...readKey, probe], "{ keyFingerprint: key.fingerprint, canPush: registry.acceptsKey }"),
        // ringtail's floor: its Commands need the command plugin, as indri's reads need the kubernetes plugin; a provider starts it.
        "key-read-probe-command-plugin": program(
            [...keyImports, 'import { Provider as CommandProvider } from "@pulumi/command";'],
            [...readKey, probe, 'const commands = new CommandProvider("ringtail-commands");'],
            "{ keyFingerprint: key.fingerprint, canPush: registry.acceptsKey, commands: commands.urn }",
        ),
        "key-read-probe-runner-reads": program(
            [
                ...keyImports,
                'import * as apiextensions from "@pulumi/kubernetes/apiextensions";',
                'import * as apps from "@pulumi/kubernetes/apps/v1";',
                'import * as core from "@pulumi/kubernetes/core/v1";',
                'import { Provider } from "@pulumi/kubernetes/provider";',
            ],
            [
                ...readKey,
                probe,
                `const provider = new Provider("indri-cluster", ${JSON.stringify(inputs.cluster)});`,
                `const d = apps.Deployment.get("indri-deployment", ${JSON.stringify(`${r.namespace}/${r.deployment}`)}, { provider });`,
                `const store = new apiextensions.CustomResource("indri-store", { apiVersion: "external-secrets.io/v1", kind: "ClusterSecretStore", spec: undefined }, { provider, id: ${JSON.stringify(r.clusterSecretStore)} });`,
                `const secret = core.Secret.get("indri-synced-secret", ${JSON.stringify(`${r.namespace}/${r.secretName}`)}, { provider, additionalSecretOutputs: ["data"] });`,
                'const configMapName = d.spec.apply((spec) => spec.template.spec?.volumes?.find((v) => v.configMap !== undefined)?.configMap?.name ?? "");',
                `const config = core.ConfigMap.get("indri-runner-config", configMapName.apply((n) => ${JSON.stringify(`${r.namespace}/`)} + n), { provider });`,
            ],
            "{ keyFingerprint: key.fingerprint, canPush: registry.acceptsKey, replicas: d.spec.replicas, store: store.id, secret: secret.metadata.name, config: config.metadata.name }",
        ),
    };
}
