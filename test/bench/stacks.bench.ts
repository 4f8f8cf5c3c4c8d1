/**
 * `npm run bench`, the stacks: the whole programs against the sandbox, side
 * by side with an empty TypeScript Pulumi program (one
 * `export const x = pulumi.output(1)`, the same CLI, the same
 * `typescript: true` runtime and tsconfig, a file backend) and with the
 * floors (what any program that does the same reads pays: FLOORS says what
 * each includes), interleaved, N runs each (BENCH_N, default 5), medians.
 * Targets: each no-op preview and up within 1.1x of its stack's floor
 * (ringtail: key read + probe + the command plugin's start; indri: key
 * read + probe + the kubernetes plugin and the runner's reads), the
 * median of the per-round ratios, printed with their spread.
 *
 * `--against <commit>`: that commit's program (from this repository's
 * history, as the upgrade tests take it) runs too, interleaved with this
 * checkout's, each on runners of its own (a second ringtail machine, a
 * second runner namespace on the one cluster); each operation's ratio
 * this/that is the median of the per-round ratios, with their spread, and
 * must stay within 1.05x.
 *
 * Then where the time goes: engine events timed as they arrive, per step,
 * for one no-op preview, one no-op up and one rotation of each stack, with
 * the requests each no-op preview made, counted where they arrive (Connect,
 * the registry, the API server, ringtail's sshd).
 *
 * With the command plugin (README, "Offline toolchain") the
 * stacks are index.ts with the committed stack files; without it only
 * indri's runner component runs (a project whose index.ts builds it with a
 * fixed fingerprint), and the table says so.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { LocalWorkspace, type EngineEvent, type Stack } from "@pulumi/pulumi/automation";

import { upStack } from "../../automation/up";
import { parseConfig, type KubernetesRunnerConfig } from "../../components/settings/config";
import { stopAll } from "../../sandbox/child";
import { profileLines } from "./cpu-profile";
import { EMPTY_PROGRAM, FLOORS, floorPrograms, indriComponentProgram } from "./programs";
import { Cluster, FORWARDING_RUNNER_CONFIG } from "../../sandbox/cluster";
import { spawnEmulator } from "../../sandbox/connect-emulator";
import { rotateKey } from "../../sandbox/onepassword";
import { startRegistry } from "../../sandbox/registry";
import { committedRunner, rawConfig, stackConfig } from "../../sandbox/committed-config";
import {
    formerNodeModules,
    formerProgram,
    indriSettings,
    PROBE_REPOSITORY,
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
function timed(s: BenchStack, args: string[], extraEnv: Record<string, string> = {}): number {
    const t0 = performance.now();
    const r = spawnSync("pulumi", [...args, "--stack", s.name, "--non-interactive", "--color", "never"], {
        cwd: s.project,
        env: { ...process.env, ...s.env, ...extraEnv },
        encoding: "utf8",
        timeout: 600_000,
    });
    const seconds = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} --stack ${s.name} failed:\n${r.stdout}\n${r.stderr}`);
    return seconds;
}
const preview = (s: BenchStack): number => timed(s, ["preview"]);
const up = (s: BenchStack): number => timed(s, ["up", "--yes", "--skip-preview"]);

/** Where one no-op preview's Node.js process spends its CPU, by part (test/bench/cpu-profile.ts). */
function profiledPreview(work: string, s: BenchStack, label: string): string[] {
    const dir = mkdtempSync(join(work, "cpu-profile-"));
    const seconds = timed(s, ["preview"], { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` });
    return profileLines(`${label} (${seconds.toFixed(2)} s)`, dir);
}

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
 * The floors (FLOORS): what any program that does the same reads pays.
 * `pluginEnv` is a whole stack's (PULUMI_HOME with the plugins).
 */
async function floorStacks(
    work: string,
    connectUrl: string,
    kubeconfig: string,
    registryUrl: string,
    pluginEnv: Record<string, string>,
): Promise<BenchStack[]> {
    const config = stackConfig("ringtail");
    const key = { connectUrl, connectToken: TOKEN, ...config.key };
    // indri's runner as the program resolves it (the committed stack file over the settings' defaults).
    const indri = parseConfig(rawConfig("indri", { runner: { ...committedRunner("indri"), kubeconfig } })).runner as KubernetesRunnerConfig;
    const programs = floorPrograms({
        key,
        registry: { settings: { ...config.registry, url: registryUrl, repository: PROBE_REPOSITORY }, user: config.registryUser },
        cluster: { kubeconfig, ...(indri.context !== undefined ? { context: indri.context } : {}), enableServerSideApply: true },
        runner: {
            namespace: indri.namespace,
            deployment: indri.deployment,
            secretName: indri.secretName,
            clusterSecretStore: indri.clusterSecretStore,
        },
    });
    const copies = ["package.json", "tsconfig.json", "components"];
    const plugins = { PULUMI_HOME: pluginEnv["PULUMI_HOME"] ?? "" };
    const floors: BenchStack[] = [];
    for (const name of Object.keys(FLOORS) as (keyof typeof FLOORS)[]) {
        floors.push(
            await benchProject(
                work,
                `floor-${name}`,
                name,
                { "Pulumi.yaml": typescriptProject("floor"), "index.ts": programs[name] },
                copies,
                plugins,
            ),
        );
    }
    return floors;
}

/** The floor each stack is held to. */
const FLOOR_OF: Record<string, keyof typeof FLOORS> = { ringtail: "key-read-probe-command-plugin", indri: "key-read-probe-runner-reads" };

const fromRun = (r: ProjectRun): BenchStack => ({ name: r.stack.name, project: r.project, env: r.env, stack: r.stack });

/** Where one preview or up spends its time: per resource, from its first engine event to its outputs, as the events arrive. */
async function breakdown(s: BenchStack, label: string, op: "preview" | "up" = "up"): Promise<string[]> {
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
    if (op === "preview") await s.stack.preview({ onEvent, color: "never" });
    // One command, as `pulumi up` (the Automation API's up runs three more after it: automation/up.ts).
    else await upStack(s.stack, { onEvent });
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

/** Where the requests of a run arrive, each read before and after it. */
interface RequestCounters {
    connectLog: string;
    registryLog: string;
    cluster: Cluster;
    host: Ringtail;
}

/** Lines of `file` from byte `from` on. */
const linesFrom = (file: string, from: number): string[] =>
    readFileSync(file)
        .subarray(from)
        .toString("utf8")
        .split("\n")
        .filter((l) => l.trim() !== "");

/** The API server's request counter by verb and resource (`apiserver_request_total`, every client). */
function apiRequests(cluster: Cluster): Map<string, number> {
    const counts = new Map<string, number>();
    for (const line of cluster.kubectl(["get", "--raw", "/metrics"]).stdout.split("\n")) {
        const m = /^apiserver_request_total\{(.*)\} (\S+)$/.exec(line);
        if (m === null) continue;
        const labels = new Map([...(m[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1] ?? "", l[2] ?? ""]));
        const key = `${labels.get("verb") ?? "?"} ${labels.get("resource") || labels.get("group") || "(discovery)"}`;
        counts.set(key, (counts.get(key) ?? 0) + Number(m[2]));
    }
    return counts;
}

/** sshd's accepted logins on ringtail so far (read over SSH: that login counts itself). */
const sshLogins = (host: Ringtail): number =>
    Number(host.ssh("journalctl _COMM=sshd -o cat --no-pager | grep -c 'Accepted publickey' || true").stdout.trim());

/**
 * The requests one run of `run` made, where they arrived: Connect (the
 * emulator's request log), the registry (its log's request lines), the API
 * server (its request counter, less what the same time idle shows: ESO,
 * the controllers and kwok call it all along) and ringtail's sshd.
 */
async function requestsOf(label: string, c: RequestCounters, run: () => Promise<unknown>): Promise<string[]> {
    const connect0 = statSync(c.connectLog).size;
    const registry0 = statSync(c.registryLog).size;
    const api0 = apiRequests(c.cluster);
    const ssh0 = sshLogins(c.host);
    const t0 = performance.now();
    await run();
    const seconds = (performance.now() - t0) / 1000;
    const api1 = apiRequests(c.cluster);
    const ssh1 = sshLogins(c.host);
    const connect = linesFrom(c.connectLog, connect0).map((l) => l.replace(/\/[0-9a-z]{26}/g, "/<id>"));
    const registry = linesFrom(c.registryLog, registry0)
        .map((l) => /"method":"(\w+)".*?"path":"([^"?]*)/.exec(l) ?? /"(GET|POST|PUT|PATCH|DELETE|HEAD) ([^ ?"]*)/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => `${m[1] ?? ""} ${(m[2] ?? "").replace(/[0-9a-f-]{36}/g, "<uuid>")}`);
    // The same length of time with nothing of ours running: what the cluster's own clients asked meanwhile.
    const idle0 = apiRequests(c.cluster);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const idle1 = apiRequests(c.cluster);
    const delta = (a: Map<string, number>, b: Map<string, number>): Map<string, number> =>
        new Map([...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, v]) => v > 0));
    const ours = delta(api0, api1);
    const idle = delta(idle0, idle1);
    const tally = (xs: string[]): string =>
        [...xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>())]
            .map(([k, n]) => `${String(n)}× ${k}`)
            .join(", ") || "none";
    const api = [...ours]
        .map(([k, n]) => ({ k, n: n - (idle.get(k) ?? 0) }))
        .filter(({ n }) => n > 0)
        .map(({ k, n }) => `${String(n)}× ${k}`)
        .join(", ");
    return [
        `${label}: requests (${seconds.toFixed(2)} s)`,
        `    Connect: ${String(connect.length)}: ${tally(connect)}`,
        `    registry: ${String(registry.length)}: ${tally(registry)}`,
        `    API server, beyond its idle rate: ${api || "none"}`,
        `    ringtail sshd logins: ${String(ssh1 - ssh0 - 1)}`,
    ];
}

/** The median of per-round ratios this/that, with their spread. */
function ratioOf(these: number[], those: number[]): { median: number; min: number; max: number } {
    const ratios = these.map((v, i) => v / (those[i] ?? Number.NaN));
    return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}

/** `--against <commit>` from the command line, or undefined. */
function againstArg(argv: string[]): string | undefined {
    const at = argv.indexOf("--against");
    if (at < 0) return undefined;
    const commit = argv[at + 1];
    if (commit === undefined || commit.startsWith("--")) throw new Error("--against needs a commit: npm run bench -- --against <commit>");
    return commit;
}

/** The other version's program and node_modules (its own when its lockfile differs from this checkout's). */
function otherVersion(commit: string): { dir: string; nodeModules: string } {
    const dir = formerProgram(commit);
    const same = readFileSync(join(dir, "package-lock.json"), "utf8") === readFileSync(join(ROOT, "package-lock.json"), "utf8");
    return { dir, nodeModules: same ? join(ROOT, "node_modules") : formerNodeModules(dir) };
}

async function main(): Promise<void> {
    const against = againstArg(process.argv.slice(2));
    let whole = true;
    try {
        providerPluginDir();
    } catch {
        whole = false;
    }
    if (against !== undefined && !whole)
        throw new Error("--against runs the whole stacks: set CI_REGISTRY_AUTH_PROVIDER_PLUGINS (README, Offline toolchain)");
    const work = mkdtempSync(join(tmpdir(), "cra-bench-"));
    const stops: (() => Promise<void> | void)[] = [
        () => {
            rmSync(work, { recursive: true, force: true });
        },
    ];
    try {
        const connectLog = join(work, "connect-requests.log");
        writeFileSync(connectLog, "");
        const emulator = await spawnEmulator({
            token: TOKEN,
            key: newKey(),
            expires: new Date(Date.now() + 80 * 86_400_000),
            requestLog: connectLog,
        });
        stops.push(() => emulator.stop());
        const cluster = Cluster.start();
        stops.push(() => {
            cluster.stop();
            cluster.remove();
        });
        cluster.applyIndriWorld({ connectUrl: emulator.url, connectToken: TOKEN, runnerConfig: FORWARDING_RUNNER_CONFIG });
        const empty = await emptyStack(work);
        const stacks: BenchStack[] = [];
        const others: BenchStack[] = [];
        const floors: BenchStack[] = [];
        // The second empty program, for two empty programs at once (the parallel rotation's floor).
        let empty2: BenchStack | undefined;
        let counters: RequestCounters | undefined;
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
            floors.push(...(await floorStacks(work, emulator.url, cluster.kubeconfig, registry.url, ringtail.env)));
            empty2 = await emptyStack(work, "empty-2");
            counters = { connectLog, registryLog: registry.logFile, cluster, host };
            console.log("The whole stacks: index.ts with the committed stack files, the real command and kubernetes providers.");
            if (against !== undefined) {
                // The other version on runners of its own: a second ringtail machine and a second runner namespace.
                const other = otherVersion(against);
                stops.push(() => {
                    rmSync(other.dir, { recursive: true, force: true });
                });
                const host2 = Ringtail.start(1);
                stops.push(() => {
                    host2.stop();
                });
                const namespace = "forgejo-runner-against";
                cluster.applyIndriWorld({
                    connectUrl: emulator.url,
                    connectToken: TOKEN,
                    runnerConfig: FORWARDING_RUNNER_CONFIG,
                    namespace,
                });
                const where = { from: other.dir, nodeModules: other.nodeModules };
                const ringtail2 = await projectStack(
                    "ringtail",
                    ringtailSettings(emulator.url, host2.facts, registry.url),
                    operatorEnv(TOKEN, await host2.agent()),
                    where,
                );
                const indri2 = await projectStack(
                    "indri",
                    {
                        ...indriSettings(emulator.url, cluster.kubeconfig, registry.url),
                        "ci-registry-auth:runner.namespace": { value: namespace },
                    },
                    operatorEnv(TOKEN),
                    where,
                );
                stops.push(() => {
                    ringtail2.dispose();
                    indri2.dispose();
                });
                others.push({ ...fromRun(ringtail2), name: "ringtail" }, { ...fromRun(indri2), name: "indri" });
                console.log(`Against ${against}: its program, interleaved with this checkout's, on runners of its own.`);
            }
        } else {
            stacks.push(await indriComponentStack(work, cluster.kubeconfig, "sha256:0000000000000000"));
            console.log("Without the command plugin: indri's runner component alone (real kubernetes provider), no ringtail.");
        }
        // Deployed, then one no-op up: each stack as an operator's is after its first up with a version
        // (what that up writes, a later run reads: formerTokenHolder, components/former-token.ts).
        for (const s of [empty, ...stacks, ...others, ...floors, ...(empty2 !== undefined ? [empty2] : [])]) up(s);
        for (const s of [...stacks, ...others]) up(s);

        // Timings by operation and series ("this:<stack>", "that:<stack>", "floor:<name>", "empty").
        const t: Record<string, Record<string, number[]>> = {};
        const add = (op: string, series: string, v: number): void => {
            ((t[op] ??= {})[series] ??= []).push(v);
        };
        const series = [
            { key: "empty", s: empty },
            ...stacks.map((s) => ({ key: `this:${s.name}`, s })),
            ...others.map((s) => ({ key: `that:${s.name}`, s })),
            ...floors.map((s) => ({ key: `floor:${s.name}`, s })),
        ];
        for (let i = 0; i < N; i++) {
            // Alternate the order each round, so neither version always runs first.
            const round = i % 2 === 0 ? series : [...series].reverse();
            for (const { key, s } of round) add("no-op preview", key, preview(s));
            for (const { key, s } of round) add("no-op up", key, up(s));
        }
        if (whole) {
            for (let i = 0; i < N; i++) {
                await rotateKey(emulator.url, TOKEN, newKey());
                // Each stack delivers the new key to its own runner.
                const pairs = [...stacks.map((s) => ({ key: `this:${s.name}`, s })), ...others.map((s) => ({ key: `that:${s.name}`, s }))];
                for (const { key, s } of i % 2 === 0 ? pairs : [...pairs].reverse()) add("rotation up to hasKey", key, up(s));
                await rotateKey(emulator.url, TOKEN, newKey());
                const t0 = performance.now();
                await Promise.all(stacks.map((s) => upStack(s.stack)));
                add("rotation, both in parallel", "this", (performance.now() - t0) / 1000);
                if (others.length > 0) {
                    const t2 = performance.now();
                    await Promise.all(others.map((s) => upStack(s.stack)));
                    add("rotation, both in parallel", "that", (performance.now() - t2) / 1000);
                }
                const t1 = performance.now();
                await Promise.all([empty, empty2 ?? empty].map((s) => upStack(s.stack)));
                add("two empty programs at once", "both", (performance.now() - t1) / 1000);
            }
        }

        const misses: string[] = [];
        const m = (op: string, key: string): number => median(t[op]?.[key] ?? []);
        const names = stacks.map((s) => s.name);
        /** With --against: the cell comparing two series of `op` round by round (median ratio, spread, the other's median); a miss above 1.05x. */
        const versus = (op: string, these: string, those: string, label: string): string => {
            if (against === undefined) return "";
            const r = ratioOf(t[op]?.[these] ?? [], t[op]?.[those] ?? []);
            if (r.median > 1.05) misses.push(`${label}: ${r.median.toFixed(2)}x ${against.slice(0, 7)} > 1.05x`);
            return ` ${r.median.toFixed(2)}x (${r.min.toFixed(2)}-${r.max.toFixed(2)}; ${m(op, those).toFixed(2)} s) |`;
        };
        const rows = [
            `| operation | stack | this checkout | vs empty program | vs its floor (target 1.1x; spread; its median) |${against !== undefined ? ` vs ${against.slice(0, 7)} (target 1.05x; spread) |` : ""}`,
            `|---|---|---|---|---|${against !== undefined ? "---|" : ""}`,
        ];
        for (const op of ["no-op preview", "no-op up", ...(whole ? ["rotation up to hasKey"] : [])]) {
            for (const name of names) {
                const v = m(op, `this:${name}`);
                const empt = m(op.startsWith("rotation") ? "no-op up" : op, "empty");
                const floorName = FLOOR_OF[name];
                let floorCell = "(no floor)";
                if (whole && floorName !== undefined && !op.startsWith("rotation")) {
                    // Round by round, as the versions are compared: each run against its floor's run in the same round.
                    const r = ratioOf(t[op]?.[`this:${name}`] ?? [], t[op]?.[`floor:${floorName}`] ?? []);
                    if (r.median > 1.1) misses.push(`${op} ${name}: ${r.median.toFixed(2)}x its floor > 1.1x`);
                    floorCell = `${r.median.toFixed(2)}x (${r.min.toFixed(2)}-${r.max.toFixed(2)}; ${m(op, `floor:${floorName}`).toFixed(2)} s)`;
                }
                rows.push(
                    `| ${op} | ${name} | ${v.toFixed(2)} s | ${(v / empt).toFixed(2)}x | ${floorCell} |${versus(op, `this:${name}`, `that:${name}`, `${op} ${name}`)}`,
                );
            }
        }
        if (whole) {
            const base = m("no-op up", "empty");
            const both = m("rotation, both in parallel", "this");
            if (both / base > 1.8) misses.push(`both stacks rotated in parallel: ${(both / base).toFixed(2)}x empty up > 1.8x`);
            rows.push(
                `| both stacks rotated in parallel (target 1.8x empty up) | both | ${both.toFixed(2)} s | ${(both / base).toFixed(2)}x | |${versus("rotation, both in parallel", "this", "that", "both stacks rotated in parallel")}`,
            );
        }
        console.log(`\nMedians of ${String(N)}, interleaved, in one run:\n${rows.join("\n")}`);
        if (whole) {
            const base = m("no-op up", "empty");
            const floorRow = (label: string, op: string, key: string): string =>
                `| ${label} | ${m("no-op preview", key).toFixed(2)} s | ${m(op, key).toFixed(2)} s (${(m(op, key) / base).toFixed(2)}x) |`;
            console.log(
                [
                    `\nFloors, measured in the same run (medians of ${String(N)}; what any program doing the same reads pays):`,
                    "| program | no-op preview | no-op up (vs empty up) |",
                    "|---|---|---|",
                    floorRow("empty", "no-op up", "empty"),
                    ...(Object.entries(FLOORS) as [keyof typeof FLOORS, string][]).map(([name, label]) =>
                        floorRow(`${label} (${name})`, "no-op up", `floor:${name}`),
                    ),
                    `| two empty programs at once (both stacks' parallel floor) | | ${m("two empty programs at once", "both").toFixed(2)} s |`,
                ].join("\n"),
            );
        }

        console.log("\nWhere the time goes (one run each, engine events as they arrived):");
        for (const s of [empty, ...stacks]) {
            for (const line of await breakdown(s, `${s.name}, no-op preview`, "preview")) console.log(line);
            for (const line of await breakdown(s, `${s.name}, no-op up`)) console.log(line);
        }
        if (whole) {
            for (const s of stacks) {
                await rotateKey(emulator.url, TOKEN, newKey());
                for (const line of await breakdown(s, `${s.name}, rotation`)) console.log(line);
            }
        }
        console.log("\nThe program's Node.js CPU in one no-op preview each, by part (self time, ms; --cpu-prof):");
        for (const s of [empty, ...stacks, ...floors]) {
            for (const line of profiledPreview(work, s, s === empty ? "empty" : stacks.includes(s) ? s.name : `floor ${s.name}`))
                console.log(line);
        }
        if (counters !== undefined) {
            console.log("\nThe requests of one no-op preview of each stack, where they arrived:");
            for (const s of stacks) {
                for (const line of await requestsOf(`${s.name}, no-op preview`, counters, () => s.stack.preview({ color: "never" })))
                    console.log(line);
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
