/**
 * `npm run bench`, the stacks: the whole programs against the sandbox, side
 * by side with an empty TypeScript Pulumi program (one
 * `export const x = pulumi.output(1)`, the same CLI, the same
 * `typescript: true` runtime and tsconfig, a file backend), interleaved,
 * N runs each (BENCH_N, default 5), medians. Prints the table with ratios
 * against the empty program, the targets, the floors (what any program that
 * reads the same things pays: floorStacks) and where the time goes: engine
 * events timed as they arrive, per step, for one no-op up and one rotation
 * of each stack.
 *
 * With the command plugin (README, "Offline toolchain") the
 * stacks are index.ts with the committed stack files; without it only
 * indri's runner component runs (a project whose index.ts builds it with a
 * fixed fingerprint), and the table says so.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { LocalWorkspace, type EngineEvent, type Stack } from "@pulumi/pulumi/automation";

import { parseConfig, type KubernetesRunnerConfig } from "../../components/settings/config";
import { stopAll } from "../../sandbox/child";
import { EMPTY_PROGRAM, floorPrograms, indriComponentProgram } from "./programs";
import { Cluster, FORWARDING_RUNNER_CONFIG } from "../../sandbox/cluster";
import { spawnEmulator } from "../../sandbox/connect-emulator";
import { rotateKey } from "../../sandbox/onepassword";
import { startRegistry } from "../../sandbox/registry";
import { committedRunner, rawConfig, stackConfig } from "../../sandbox/committed-config";
import {
    indriSettings,
    operatorEnv,
    projectStack,
    providerPluginDir,
    ringtailSettings,
    type ProjectRun,
} from "../../sandbox/project-stack";
import { Ringtail } from "../../sandbox/ringtail";

const ROOT = join(__dirname, "..", "..");
const N = Number(process.env["BENCH_N"] ?? 5);
const TOKEN = "sandbox-connect-token-bench";
let keyCount = 0;
const newKey = (): string => `zak_bench_${String(++keyCount)}_${Date.now().toString(16)}_0a1b2c3d4e5f`;

/** A stack the bench runs with the pulumi CLI, as an operator would. */
interface BenchStack {
    name: string;
    project: string;
    env: Record<string, string>;
    stack: Stack;
}

const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

/** Wall time of one pulumi CLI command, seconds; throws on failure. */
function timed(s: BenchStack, args: string[]): number {
    const t0 = performance.now();
    const r = spawnSync("pulumi", [...args, "--stack", s.name, "--non-interactive", "--color", "never"], {
        cwd: s.project,
        env: { ...process.env, ...s.env },
        encoding: "utf8",
        timeout: 600_000,
    });
    const seconds = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} --stack ${s.name} failed:\n${r.stdout}\n${r.stderr}`);
    return seconds;
}
const preview = (s: BenchStack): number => timed(s, ["preview"]);
const up = (s: BenchStack): number => timed(s, ["up", "--yes", "--skip-preview"]);

/** A project of its own beside the real one's node_modules: `files` written, `copies` taken from this project. */
async function benchProject(
    work: string,
    dir: string,
    stackName: string,
    files: Record<string, string>,
    copies: string[],
    extraEnv: Record<string, string> = {},
): Promise<BenchStack> {
    const project = join(work, dir);
    mkdirSync(project, { recursive: true });
    for (const [file, text] of Object.entries(files)) writeFileSync(join(project, file), text);
    for (const f of copies) cpSync(join(ROOT, f), join(project, f), { recursive: true });
    symlinkSync(join(ROOT, "node_modules"), join(project, "node_modules"));
    const backend = join(work, `${dir}-backend`);
    mkdirSync(backend);
    const env = { ...extraEnv, PULUMI_CONFIG_PASSPHRASE: "bench", PULUMI_BACKEND_URL: `file://${backend}` };
    const stack = await LocalWorkspace.createOrSelectStack(
        { stackName, workDir: project },
        { envVars: env, secretsProvider: "passphrase" },
    );
    return { name: stackName, project, env, stack };
}

const typescriptProject = (name: string): string => `name: ${name}\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n`;

/** The empty program, with this project's package.json and tsconfig. */
const emptyStack = (work: string, dir = "empty"): Promise<BenchStack> =>
    benchProject(
        work,
        dir,
        "empty",
        {
            "Pulumi.yaml": typescriptProject("empty"),
            "index.ts": EMPTY_PROGRAM,
        },
        ["package.json", "tsconfig.json"],
    );

/** indri's runner component alone, for machines without the two plugins. */
const indriComponentStack = (work: string, kubeconfig: string, fp: string): Promise<BenchStack> =>
    benchProject(
        work,
        "indri-component",
        "indri",
        {
            "Pulumi.yaml": typescriptProject("ci-registry-auth"),
            "index.ts": indriComponentProgram(kubeconfig, fp),
        },
        ["package.json", "tsconfig.json", "components", "sandbox", "Pulumi.indri.yaml"],
    );

/**
 * The floors: what any program that reads the same things pays. The key
 * read from Connect as the program reads it (its OnePasswordKey
 * component, nothing else) and, for indri, that plus the
 * kubernetes plugin and one read of the runner's Deployment. `pluginEnv`
 * is a whole stack's (PULUMI_HOME with the plugins).
 */
async function floorStacks(work: string, connectUrl: string, kubeconfig: string, pluginEnv: Record<string, string>): Promise<BenchStack[]> {
    const key = { connectUrl, connectToken: TOKEN, ...stackConfig("ringtail").key };
    // indri's runner as the program resolves it (the committed stack file over the settings' defaults).
    const indri = parseConfig(rawConfig("indri", { runner: { ...committedRunner("indri"), kubeconfig } })).runner as KubernetesRunnerConfig;
    const programs = floorPrograms({
        key,
        cluster: { kubeconfig, ...(indri.context !== undefined ? { context: indri.context } : {}), enableServerSideApply: true },
        deployment: `${indri.namespace}/${indri.deployment}`,
    });
    const copies = ["package.json", "tsconfig.json", "components"];
    const plugins = { PULUMI_HOME: pluginEnv["PULUMI_HOME"] ?? "" };
    const floor = (dir: string, stackName: keyof typeof programs): Promise<BenchStack> =>
        benchProject(work, dir, stackName, { "Pulumi.yaml": typescriptProject("floor"), "index.ts": programs[stackName] }, copies, plugins);
    return [await floor("floor-1password", "key-read"), await floor("floor-kubernetes", "key-and-deployment-read")];
}

const fromRun = (r: ProjectRun): BenchStack => ({ name: r.stack.name, project: r.project, env: r.env, stack: r.stack });

/** Where one up spends its time: per resource, from its first engine event to its outputs, as the events arrive. */
async function breakdown(s: BenchStack, label: string): Promise<string[]> {
    const t0 = performance.now();
    const first = new Map<string, number>();
    const spans: { name: string; start: number; end: number }[] = [];
    let programEnd = 0;
    const onEvent = (e: EngineEvent): void => {
        const now = (performance.now() - t0) / 1000;
        // One span per step (a replacement is a create, then later a delete).
        const pre = e.resourcePreEvent?.metadata;
        if (pre !== undefined && !first.has(`${pre.urn} ${pre.op}`)) first.set(`${pre.urn} ${pre.op}`, now);
        const out = e.resOutputsEvent?.metadata;
        if (out !== undefined) {
            const start = first.get(`${out.urn} ${out.op}`) ?? now;
            const name = `${out.type.replace(/^kubernetes:|^command:|^pulumi:/, "")} ${out.urn.split("::").pop() ?? ""} (${out.op})`;
            spans.push({ name, start, end: now });
            if (out.type === "pulumi:pulumi:Stack") programEnd = now;
        }
    };
    await s.stack.up({ onEvent, color: "never" });
    const total = (performance.now() - t0) / 1000;
    const firstEvent = Math.min(...first.values());
    const lines = [
        `${label}: ${total.toFixed(2)} s in all; first resource event at ${firstEvent.toFixed(2)} s (CLI, plugins, program start)`,
    ];
    // In the order they began, so a chain of steps reads top to bottom.
    for (const sp of spans.sort((a, b) => a.start - b.start || a.end - b.end)) {
        lines.push(
            `    ${(sp.end - sp.start).toFixed(2).padStart(6)} s  ${sp.start.toFixed(2).padStart(6)} → ${sp.end.toFixed(2).padStart(6)}  ${sp.name}`,
        );
    }
    lines.push(`    stack outputs at ${programEnd.toFixed(2)} s; exit at ${total.toFixed(2)} s`);
    return lines;
}

async function main(): Promise<void> {
    let whole = true;
    try {
        providerPluginDir();
    } catch {
        whole = false;
    }
    const work = mkdtempSync(join(tmpdir(), "cra-bench-"));
    const stops: (() => Promise<void> | void)[] = [
        () => {
            rmSync(work, { recursive: true, force: true });
        },
    ];
    try {
        const emulator = await spawnEmulator({ token: TOKEN, key: newKey(), expires: new Date(Date.now() + 80 * 86_400_000) });
        stops.push(() => emulator.stop());
        const cluster = Cluster.start();
        stops.push(() => {
            cluster.stop();
            cluster.remove();
        });
        cluster.applyIndriWorld({ connectUrl: emulator.url, connectToken: TOKEN, runnerConfig: FORWARDING_RUNNER_CONFIG });
        const empty = await emptyStack(work);
        const stacks: BenchStack[] = [];
        const floors: BenchStack[] = [];
        if (whole) {
            const host = Ringtail.start();
            stops.push(() => {
                host.stop();
            });
            // The probe asks a registry on this machine, as it asks zot beside the real runners; it knows the first key only.
            const registry = await startRegistry(work, "127.0.0.1", 5002, "zot-ci", newKey());
            stops.push(() => registry.stop());
            const ringtail = await projectStack(
                "ringtail",
                ringtailSettings(emulator.url, host.facts, registry.url),
                operatorEnv(TOKEN, await host.agent()),
            );
            const indri = await projectStack("indri", indriSettings(emulator.url, cluster.kubeconfig, registry.url), operatorEnv(TOKEN));
            stops.push(() => {
                ringtail.dispose();
                indri.dispose();
            });
            stacks.push(fromRun(ringtail), fromRun(indri));
            floors.push(...(await floorStacks(work, emulator.url, cluster.kubeconfig, ringtail.env)), await emptyStack(work, "empty-2"));
            console.log("The whole stacks: index.ts with the committed stack files, the real command and kubernetes providers.");
        } else {
            stacks.push(await indriComponentStack(work, cluster.kubeconfig, "sha256:0000000000000000"));
            console.log("Without the command plugin: indri's runner component alone (real kubernetes provider), no ringtail.");
        }
        for (const s of [empty, ...stacks, ...floors]) up(s);

        const t: Record<string, Record<string, number[]>> = {};
        const add = (op: string, name: string, v: number): void => {
            ((t[op] ??= {})[name] ??= []).push(v);
        };
        for (let i = 0; i < N; i++) {
            for (const s of [empty, ...stacks]) add("no-op preview", s.name, preview(s));
            for (const s of [empty, ...stacks]) add("no-op up", s.name, up(s));
            for (const s of floors.slice(0, 2)) add("no-op up", s.name, up(s));
        }
        if (whole) {
            for (let i = 0; i < N; i++) {
                for (const s of stacks) {
                    await rotateKey(emulator.url, TOKEN, newKey());
                    add("rotation up to hasKey", s.name, up(s));
                }
                await rotateKey(emulator.url, TOKEN, newKey());
                const t0 = performance.now();
                await Promise.all(stacks.map((s) => s.stack.up({ color: "never" })));
                add("rotation, both in parallel", "both", (performance.now() - t0) / 1000);
                const t1 = performance.now();
                await Promise.all([empty, floors[2] ?? empty].map((s) => s.stack.up({ color: "never" })));
                add("two empty programs at once", "both", (performance.now() - t1) / 1000);
            }
        }

        const base = median(t["no-op up"]?.["empty"] ?? []);
        const names = stacks.map((s) => s.name);
        const rows: string[] = [];
        const misses: string[] = [];
        const cell = (op: string, name: string, ref: number, target: number): string => {
            const m = median(t[op]?.[name] ?? []);
            const ratio = m / ref;
            if (ratio > target) misses.push(`${op} ${name}: ${ratio.toFixed(2)}x > ${target}x`);
            return `${m.toFixed(2)} s (${ratio.toFixed(2)}x)`;
        };
        rows.push(`| operation | empty program | ${names.join(" | ")} |`, `|---|---|${names.map(() => "---|").join("")}`);
        for (const op of ["no-op preview", "no-op up"]) {
            const ref = median(t[op]?.["empty"] ?? []);
            rows.push(`| ${op} | ${ref.toFixed(2)} s | ${names.map((n) => cell(op, n, ref, 1.2)).join(" | ")} |`);
        }
        if (whole) {
            rows.push(
                `| rotation up to hasKey (vs empty up) | ${base.toFixed(2)} s | ${names.map((n) => cell("rotation up to hasKey", n, base, 1.5)).join(" | ")} |`,
            );
            rows.push(
                `| both stacks rotated in parallel (vs empty up) | ${base.toFixed(2)} s | ${cell("rotation, both in parallel", "both", base, 1.8)} |`,
            );
        }
        console.log(`\nMedians of ${N}, interleaved (targets: no-op 1.2x, rotation 1.5x, both in parallel 1.8x):\n${rows.join("\n")}`);
        if (whole) {
            const floor = (label: string, m: number): string => `| ${label} | ${m.toFixed(2)} s (${(m / base).toFixed(2)}x) |`;
            console.log(
                [
                    `\nFloors, measured in the same run (no-op up, medians of ${N}; what any program reading the same things pays):`,
                    "| program | time (vs empty up) |",
                    "|---|---|",
                    floor("empty", base),
                    floor("the key read from Connect, nothing else", median(t["no-op up"]?.["key-read"] ?? [])),
                    floor(
                        "that, plus the kubernetes plugin and one read of the runner Deployment",
                        median(t["no-op up"]?.["key-and-deployment-read"] ?? []),
                    ),
                    floor(
                        "two empty programs at once (both stacks' parallel floor)",
                        median(t["two empty programs at once"]?.["both"] ?? []),
                    ),
                ].join("\n"),
            );
        }

        console.log("\nWhere the time goes (one run each, engine events as they arrived):");
        for (const s of [empty, ...stacks]) {
            for (const line of await breakdown(s, `${s.name}, no-op up`)) console.log(line);
        }
        if (whole) {
            for (const s of stacks) {
                await rotateKey(emulator.url, TOKEN, newKey());
                for (const line of await breakdown(s, `${s.name}, rotation`)) console.log(line);
            }
        }
        console.log(misses.length === 0 ? "\nAll targets met." : `\nMISS: ${misses.join("; ")}`);
        if (misses.length > 0) process.exitCode = 1;
    } finally {
        await stopAll(stops);
    }
}

main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
});
