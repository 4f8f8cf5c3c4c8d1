/**
 * `npm run demo`: the mission on the local sandbox. Starts the 1Password
 * Connect emulator, ringtail (systemd over SSH), the registry and the indri
 * cluster with ESO; delivers the key to both runners; prints what each holds
 * (fingerprints only, whether its jobs see the key, and whether the registry
 * takes the key: canPush); pushes from a real
 * workflow job on each runner; rotates the key in 1Password and does it all
 * again; stops everything. The jobs run on the real forgejo-runner daemon,
 * from push events to the sandbox's Gitea, when its binary is here (as in
 * the tests: sandbox/jobs.ts), on act otherwise; a printed line says which.
 * With the daemon and the Dagger binaries (sandbox/dagger.ts), indri also
 * runs a Dagger job each round that publishes with the key on the real
 * engine; without them a line says why not.
 *
 * With CI_REGISTRY_AUTH_PROVIDER_PLUGINS naming a directory that holds the
 * command provider plugin, each round is `pulumi up` of both whole stacks
 * (index.ts with the committed stack files). Without it, stand-ins, said on
 * screen too: ringtail's delivery runs the program's own host scripts over
 * OpenSSH instead of through the command provider, which cannot be built
 * here, and indri's runner component runs alone, given the key's
 * fingerprint as read with the Connect JS SDK.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { parseConfig, type KubernetesRunnerConfig } from "../components/settings/config";
import { renderEnvFile } from "../components/ssh/envfile";
import { fingerprint } from "../components/fingerprint";
import { probeRegistry } from "../components/registry/probe";
import { deliverScript } from "../components/ssh/host-scripts";
import { jobsFromReport, reportHasKey } from "../components/ssh/host-report";
import { upStack } from "../automation/up";
import { stopAll } from "./child";
import { Cluster, FORWARDING_RUNNER_CONFIG } from "./cluster";
import { committedRunner, rawConfig } from "./committed-config";
import { spawnEmulator, type EmulatorProcess } from "./connect-emulator";
import { writeOciImage } from "./oci-image";
import { startRegistry, type Registry } from "./registry";
import { Dockerd } from "./dockerd";
import { DaggerEngine, findDagger } from "./dagger";
import { engineLine, importJobImage, IndriJobs, jobEngine, RingtailJobs, WORKFLOWS } from "./jobs";
import { IMAGE_DIR, Ringtail, uploadImage } from "./ringtail";
import { readKey, rotateKey } from "./onepassword";
import {
    indriSettings,
    operatorEnv,
    PROBE_REPOSITORY,
    projectStack,
    providerPluginDir,
    ringtailSettings,
    type ProjectRun,
} from "./project-stack";
import { indriProgram, inlineStack, type Run } from "./stack";

const TOKEN = randomBytes(16).toString("hex");
/** The demo's Gitea ports (with the daemon): one per runner, as in the tests. */
const RINGTAIL_GITEA_PORT = 13030;
const INDRI_GITEA_PORT = 13040;
const DAGGER_PORT = 13041;
const newKey = (): string => `zak_${randomBytes(20).toString("hex")}`;

interface Row {
    runner: string;
    onePassword: string;
    delivered: string;
    consumer: string;
    jobsSeeKey: boolean;
    hasKey: boolean;
    /** hasKey, and the registry took an upload with the key. */
    canPush: boolean;
}

function table(title: string, rows: Row[]): void {
    console.log(`\n${title}`);
    const head = ["runner", "1Password", "delivered", "consumer", "jobsSeeKey", "hasKey", "canPush"];
    const cells = rows.map((r) => [
        r.runner,
        r.onePassword,
        r.delivered,
        r.consumer,
        String(r.jobsSeeKey),
        String(r.hasKey),
        String(r.canPush),
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const line = (c: string[]): string => c.map((v, i) => v.padEnd(widths[i]!)).join("  ");
    console.log(line(head));
    console.log(widths.map((w) => "-".repeat(w)).join("  "));
    cells.forEach((c) => {
        console.log(line(c));
    });
}

function deliverToRingtail(host: Ringtail, key: string): Omit<Row, "canPush"> {
    const target = { envFile: host.facts.envFile, unit: host.facts.unit, envVar: "ZOT_CI_API_KEY" };
    const delivered = host.ssh(deliverScript(target), renderEnvFile("ZOT_CI_API_KEY", key));
    if (delivered.code !== 0) throw new Error(`delivery to ringtail failed: ${delivered.stderr}`);
    const v = host.check(target.envVar);
    const fp = fingerprint(key);
    const jobs = jobsFromReport(v, target.envVar, target.unit);
    return {
        runner: "ringtail (ssh)",
        onePassword: fp,
        delivered: v["file_fp"] ?? "none",
        consumer: v["process_fp"] ?? "none",
        jobsSeeKey: jobs.jobsSeeKey,
        hasKey: reportHasKey(v, fp) && jobs.jobsSeeKey,
    };
}

async function deliverToIndri(run: Run, runner: KubernetesRunnerConfig, key: string): Promise<Omit<Row, "canPush">> {
    const fp = fingerprint(key);
    run.stack.workspace.program = indriProgram(fp, runner);
    const up = await run.stack.up();
    const out = (k: string): string => String(up.outputs[k]?.value);
    return {
        runner: "indri (kubernetes)",
        onePassword: fp,
        delivered: out("secretFingerprint"),
        consumer: out("templateFingerprint"),
        jobsSeeKey: out("jobsSeeKey") === "true",
        hasKey: out("hasKey") === "true",
    };
}

/** One round of the whole ringtail or indri stack: `pulumi up`, its outputs from the run's own events (automation/up.ts). */
async function upWhole(run: ProjectRun, runner: string): Promise<Row> {
    const { outputs } = await upStack(run.stack);
    const delivered = (outputs["delivered"] ?? {}) as Record<string, unknown>;
    const ssh = outputs["runnerKind"] === "ssh";
    return {
        runner,
        onePassword: String(outputs["keyFingerprint"]),
        delivered: String(ssh ? delivered["fileFingerprint"] : delivered["secretFingerprint"]),
        consumer: String(ssh ? delivered["processFingerprint"] : delivered["templateFingerprint"]),
        jobsSeeKey: delivered["jobsSeeKey"] === true,
        hasKey: outputs["hasKey"] === true,
        canPush: outputs["canPush"] === true,
    };
}

/**
 * The stand-in round: ringtail through the host scripts over OpenSSH, indri
 * through the KubernetesRunner component given the key's fingerprint.
 */
async function standIns(
    cluster: Cluster,
    host: Ringtail,
    registry: Registry,
    cleanup: (() => Promise<void> | void)[],
): Promise<(key: string) => Promise<Row[]>> {
    // indri's committed settings; only the kubeconfig points at the sandbox.
    const committed = committedRunner("indri");
    const runner = parseConfig(rawConfig("indri", { runner: { ...committed, kubeconfig: cluster.kubeconfig } }))
        .runner as KubernetesRunnerConfig;
    const run = await inlineStack("ci-registry-auth", "indri", () => Promise.resolve({}));
    cleanup.push(async () => {
        await run.stack.destroy().catch(() => undefined);
        run.dispose();
    });
    // The program's own registry probe, as the whole stacks run it on every up.
    return async (key: string) => {
        const probe = await probeRegistry({ url: registry.url, repository: PROBE_REPOSITORY }, "zot-ci", key);
        return [deliverToRingtail(host, key), await deliverToIndri(run, runner, key)].map((row) => ({
            ...row,
            canPush: row.hasKey && probe.acceptsKey,
        }));
    };
}

async function main(): Promise<void> {
    const started: (() => Promise<void> | void)[] = [];
    const work = mkdtempSync(join(tmpdir(), "cra-demo-"));
    started.push(() => {
        rmSync(work, { recursive: true, force: true });
    });
    try {
        const whole = (process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"] ?? "") !== "";
        // A wrong plugin directory fails now, not after the sandbox started.
        if (whole) providerPluginDir();
        console.log("Starting the sandbox: 1Password Connect emulator, ringtail, registry, indri with ESO …");
        const first = newKey();
        const emulator: EmulatorProcess = await spawnEmulator({
            token: TOKEN,
            key: first,
            expires: new Date(Date.now() + 90 * 86_400_000),
            extraItems: [{ title: "forgejo-runner-registration", username: "runner", credential: randomBytes(12).toString("hex") }],
        });
        started.push(() => emulator.stop());
        console.log(engineLine("the demo"));
        const ringtailJobs = await RingtailJobs.start(RINGTAIL_GITEA_PORT);
        started.push(() => ringtailJobs.stop());
        const host = ringtailJobs.host;
        const registry: Registry = await startRegistry(work, host.facts.registryAddress, 5000, "zot-ci", first);
        started.push(() => registry.stop());
        const cluster = Cluster.start();
        started.push(() => {
            cluster.stop();
            cluster.remove();
        });
        // indri's config.yaml with the line that hands the key to job containers (docs/jobs.md).
        cluster.applyIndriWorld({ connectUrl: emulator.url, connectToken: TOKEN, runnerConfig: FORWARDING_RUNNER_CONFIG });
        writeOciImage(join(work, "image"), "pushed by the ci-registry-auth demo\n");
        uploadImage(host, join(work, "image"));
        // indri's jobs run in containers of this dockerd (the dind sidecar's stand-in).
        const dockerd = await Dockerd.start();
        started.push(() => dockerd.stop());
        // The Dagger path on indri, where its binaries are built and jobs run on the daemon (sandbox/dagger.ts).
        const dagger = findDagger();
        const daggerBin = "dir" in dagger && jobEngine().engine === "forgejo-runner" ? dagger.dir : undefined;
        importJobImage(dockerd, daggerBin !== undefined ? join(daggerBin, "dagger") : undefined);
        let daggerEngine: DaggerEngine | undefined;
        if (daggerBin !== undefined) {
            daggerEngine = await DaggerEngine.start(daggerBin, DAGGER_PORT, [registry.address]);
            started.push(() => daggerEngine?.stop());
            console.log(`Dagger engine v0.19.11 started in ${daggerEngine.startSeconds.toFixed(1)} s`);
        } else {
            console.log(`No Dagger job on indri: ${"missing" in dagger ? dagger.missing : "its jobs run on act, not the daemon"}`);
        }
        const indriJobs = await IndriJobs.start(cluster, dockerd, INDRI_GITEA_PORT, daggerEngine?.address);
        started.push(() => indriJobs.stop());
        let deliver: (key: string) => Promise<Row[]>;
        if (whole) {
            console.log("Whole stacks: `pulumi up` of index.ts with the committed Pulumi.ringtail.yaml and Pulumi.indri.yaml,");
            console.log(`the command plugin from ${process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"] ?? ""}.`);
            const ringtail = await projectStack(
                "ringtail",
                ringtailSettings(emulator.url, host.facts, registry.url),
                operatorEnv(TOKEN, await host.agent()),
            );
            const indri = await projectStack("indri", indriSettings(emulator.url, cluster.kubeconfig, registry.url), operatorEnv(TOKEN));
            started.push(() => {
                ringtail.dispose();
                indri.dispose();
            });
            // The key is read by the program itself; both stacks run at once.
            deliver = () => Promise.all([upWhole(ringtail, "ringtail (ssh)"), upWhole(indri, "indri (kubernetes)")]);
        } else {
            console.log("Stand-ins: ringtail's delivery runs the program's host scripts over OpenSSH (not the command provider),");
            console.log("and indri's runner component runs alone, given the key's fingerprint read with the Connect JS SDK: see README.");
            console.log("Set CI_REGISTRY_AUTH_PROVIDER_PLUGINS to a directory with the command plugin to run the whole stacks.");
            deliver = await standIns(cluster, host, registry, started);
        }

        const push = join(WORKFLOWS, "push.yaml");
        const daggerPublish = join(WORKFLOWS, "dagger-publish.yaml");
        for (const [round, label] of [
            [1, "Both runners after the first run"],
            [2, "After rotating the key in 1Password and running again"],
        ] as const) {
            if (round === 2) {
                const next = newKey();
                await rotateKey(emulator.url, TOKEN, next);
                registry.setKey(next);
            }
            const key = await readKey(emulator.url, TOKEN);
            const t0 = Date.now();
            const rows = await deliver(key);
            table(`${label} (${((Date.now() - t0) / 1000).toFixed(1)} s):`, rows);
            const vars = { REGISTRY: registry.address, IMAGE_DIR };
            const engine = jobEngine().engine;
            // The delivery restarted ringtail's unit; with the daemon, its new process declares itself before it takes jobs.
            if (engine === "forgejo-runner") await ringtailJobs.declared();
            const pushes = [
                [
                    `ringtail (${engine}, host executor)`,
                    await ringtailJobs.job(push, { ...vars, RUNS_ON: "nix-container-builder", TAG: `ringtail-${round}` }),
                ],
                [`indri (${engine}, docker executor)`, await indriJobs.job(push, { ...vars, RUNS_ON: "k8s", TAG: `indri-${round}` })],
                ...(daggerEngine !== undefined
                    ? [
                          [
                              "indri (Dagger, real engine)",
                              await indriJobs.job(daggerPublish, { ...vars, RUNS_ON: "k8s", TAG: `indri-dagger-${round}` }),
                          ] as const,
                      ]
                    : []),
            ] as const;
            for (const [where, job] of pushes) {
                console.log(
                    `Workflow job on ${where} pushes with the runner's key: ${job.code === 0 ? "ok" : `FAILED\n${job.log.trim()}`}`,
                );
            }
            // The demo's own read of 1Password must agree with what the program read.
            const stale = rows.filter((r) => r.onePassword !== fingerprint(key)).map((r) => r.runner);
            if (stale.length > 0) console.log(`1Password fingerprint differs from the demo's own read for: ${stale.join(", ")}`);
            if (rows.some((r) => !r.hasKey || !r.canPush) || pushes.some(([, job]) => job.code !== 0) || stale.length > 0)
                process.exitCode = 1;
        }
    } finally {
        console.log("\nStopping the sandbox …");
        await stopAll(started);
    }
}

main().catch((err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
});
