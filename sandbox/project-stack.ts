/**
 * The whole program as an operator runs it: `index.ts` with the committed
 * `Pulumi.yaml` and `Pulumi.<stack>.yaml`, through the Automation API's
 * LocalWorkspace (the `pulumi` CLI of the toolchain), with a `file://`
 * backend in a temp dir. Only what the sandbox changes is set on top of the
 * committed stack file, with `pulumi config set` as an operator would.
 *
 * The command provider plugin cannot be built by this project (README,
 * "Offline toolchain"). These stacks take it from the directory named by
 * CI_REGISTRY_AUTH_PROVIDER_PLUGINS and refuse to run without it; a temp
 * PULUMI_HOME holds it beside the toolchain's kubernetes plugin, at exactly
 * the versions the npm packages request.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { LocalWorkspace } from "@pulumi/pulumi/automation";

import { setConfig } from "../automation/job";
import type { HostFacts } from "./ringtail";
import { nonDebug, persistedState, recording, type Run } from "./stack";
import { cacheDir } from "./cache";

/** A stack setting as `pulumi config set --path` takes it. */
export type Settings = Record<string, { value: string; secret?: boolean }>;

/** The repository the sandbox's CI jobs push to, which the probe opens its upload on. */
export const PROBE_REPOSITORY = "blumeops/ci-probe";

/** The sandbox's registry (sandbox/registry.ts) in place of registry.ops.eblu.me. */
function registrySettings(registryUrl: string): Settings {
    return {
        "ci-registry-auth:registry.url": { value: registryUrl },
        "ci-registry-auth:registry.repository": { value: PROBE_REPOSITORY },
    };
}

/** Where the sandbox differs from the committed Pulumi.ringtail.yaml (settings only: no credential is one). */
export function ringtailSettings(connectUrl: string, host: HostFacts, registryUrl: string): Settings {
    return {
        ...registrySettings(registryUrl),
        "onepassword:url": { value: connectUrl },
        "ci-registry-auth:runner.host": { value: host.host },
        "ci-registry-auth:runner.port": { value: String(host.port) },
        "ci-registry-auth:runner.hostKey": { value: host.hostKey },
    };
}

/** Where the sandbox differs from the committed Pulumi.indri.yaml. */
export function indriSettings(connectUrl: string, kubeconfig: string, registryUrl: string): Settings {
    return {
        ...registrySettings(registryUrl),
        "onepassword:url": { value: connectUrl },
        "ci-registry-auth:runner.kubeconfig": { value: kubeconfig },
    };
}

/**
 * The operator's credentials, from the operator's machine at run time as
 * the README says: the Connect token in the environment, the SSH key in an
 * agent (ringtail; none for indri, whose provider reads the kubeconfig).
 */
export function operatorEnv(connectToken: string, agent?: { env: { SSH_AUTH_SOCK: string } }): Record<string, string> {
    return { OP_CONNECT_TOKEN: connectToken, SSH_AUTH_SOCK: agent?.env.SSH_AUTH_SOCK ?? "" };
}

const ROOT = join(__dirname, "..");

const PASSPHRASE = "sandbox-passphrase";

/** The directory of the command provider binary, or a clear error. */
export function providerPluginDir(): string {
    const dir = process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"] ?? "";
    const missing = ["pulumi-resource-command"].filter((b) => dir === "" || !existsSync(join(dir, b)));
    if (missing.length > 0) {
        throw new Error(
            `running the whole stacks needs the ${missing.join(" and ")} provider plugin, which this project cannot build ` +
                "(its Go module is not served here; docs/toolchain.md). " +
                "Fix: build it, put the binary in a directory and set CI_REGISTRY_AUTH_PROVIDER_PLUGINS to it.",
        );
    }
    return dir;
}

function npmVersion(pkg: string, nodeModules = join(ROOT, "node_modules")): string | undefined {
    const file = join(nodeModules, pkg, "package.json");
    return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version : undefined;
}

/**
 * A PULUMI_HOME whose plugins are the toolchain's kubernetes provider and
 * the given command binary, each at the version its npm package (in
 * `nodeModules`) asks the engine for, and the onepassword binary when
 * `nodeModules` holds its package (a former program's).
 */
export function pluginHome(into: string, pluginDir: string, nodeModules: string): string {
    const toolchainHome = process.env["PULUMI_HOME"];
    if (toolchainHome === undefined) {
        throw new Error(
            'PULUMI_HOME is not set. Fix: run through `npm run test:full-stack` or eval "$(bash toolchain/build --env)" first.',
        );
    }
    const home = join(into, "pulumi-home");
    const kubernetes = npmVersion("@pulumi/kubernetes", nodeModules) ?? "";
    const onepassword = npmVersion("@1password/pulumi-onepassword", nodeModules);
    const plugins: [string, string, string][] = [
        ["kubernetes", kubernetes, join(toolchainHome, "plugins", `resource-kubernetes-v${kubernetes}`)],
        ["command", npmVersion("@pulumi/command", nodeModules) ?? "", pluginDir],
        ...(onepassword !== undefined ? [["onepassword", onepassword, pluginDir] as [string, string, string]] : []),
    ];
    for (const [name, version, from] of plugins) {
        const dir = join(home, "plugins", `resource-${name}-v${version}`);
        mkdirSync(dir, { recursive: true });
        symlinkSync(join(from, `pulumi-resource-${name}`), join(dir, `pulumi-resource-${name}`));
    }
    return home;
}

export interface ProjectRun extends Run {
    /** The copy of the project the stack runs in (its Pulumi.<stack>.yaml holds the overrides). */
    project: string;
    /** Every file a leak scan must read: persisted state and the stack's config file. */
    persisted(): string;
    /** What the pulumi commands of this stack run with: PULUMI_HOME (with the plugins), backend, passphrase. */
    env: Record<string, string>;
}

/**
 * A stack of the real program in a copy of the project (or of the project
 * in `where.from`), its committed stack file with `config` set on top (keys
 * as `pulumi config set --path` takes them; `secret` ones encrypted), in its
 * own file backend or the shared `where.backend`, or at `where.backendUrl`
 * (an S3 bucket; then `where.backend` is the directory that stores its
 * objects, for the leak scans, and `env` carries the credentials), with
 * this checkout's node_modules or `where.nodeModules` (a former program's).
 * `where.beside` puts the stack into another stack's project (its backend
 * and files too), where a second stack file is added: a project with more
 * than one stack, as the rotation runs them.
 */
export async function projectStack(
    /** The committed `Pulumi.<stackFile>.yaml` of `where.from` the stack starts from (a third runner's too). */
    stackFile: string,
    config: Settings,
    env: Record<string, string> = {},
    where: { from?: string; backend?: string; backendUrl?: string; stackName?: string; nodeModules?: string; beside?: ProjectRun } = {},
): Promise<ProjectRun> {
    const pluginDir = providerPluginDir();
    const work = mkdtempSync(join(tmpdir(), "cra-project-"));
    const project = where.beside?.project ?? join(work, "project");
    const from = where.from ?? ROOT;
    // A stack of another name gets the committed file of its runner kind.
    const stackName = where.stackName ?? stackFile;
    const nodeModules = where.nodeModules ?? join(ROOT, "node_modules");
    if (where.beside === undefined) {
        mkdirSync(project);
        for (const entry of PROGRAM_FILES) {
            cpSync(join(from, entry), join(project, entry), { recursive: true });
        }
        symlinkSync(nodeModules, join(project, "node_modules"));
    }
    cpSync(join(from, `Pulumi.${stackFile}.yaml`), join(project, `Pulumi.${stackName}.yaml`));
    const backend = where.beside?.backend ?? where.backend ?? join(work, "backend");
    mkdirSync(backend, { recursive: true });

    const envVars = {
        ...env,
        PULUMI_HOME: pluginHome(work, pluginDir, nodeModules),
        PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
        PULUMI_BACKEND_URL: where.backendUrl ?? `file://${backend}`,
    };
    const stack = await LocalWorkspace.createOrSelectStack({ stackName, workDir: project }, { envVars, secretsProvider: "passphrase" });
    // As the README tells operators: values on stdin, never on a command line
    // (the Automation API's setConfig passes them as arguments).
    for (const [key, { value, secret }] of Object.entries(config)) {
        setConfig(project, stackName, key, value, secret === true, envVars);
    }

    const run: ProjectRun = {
        stack,
        backend,
        project,
        env: envVars,
        transcript: [],
        persisted: () => [persistedState(run), readFileSync(join(project, `Pulumi.${stackName}.yaml`), "utf8")].join("\n"),
        dispose: () => {
            rmSync(work, { recursive: true, force: true });
        },
    };
    return run;
}

/**
 * The last program whose resources were named after the hosts (`indri-*`,
 * `ringtail-*`) whatever the stack, before the runner component steps,
 * the settings table and the stack-named resources: the upgrade tests run
 * it, then this checkout, on one stack.
 */
export const FORMER_PROGRAM = "056c6e89e78d1f4ffe65a71ba860a376e3862b04";

/** The files of the program as `pulumi` runs it (the stack files aside). */
const PROGRAM_FILES = ["Pulumi.yaml", "index.ts", "package.json", "tsconfig.json", "components"];

/**
 * The program as a past commit of this repository had it (its committed
 * stack files too), in a new directory, for upgrade runs. Needs the
 * repository's history (a clone, not an export).
 */
export function formerProgram(commit: string): string {
    const dir = mkdtempSync(join(tmpdir(), "cra-former-"));
    const files = [...PROGRAM_FILES, "package-lock.json", "Pulumi.indri.yaml", "Pulumi.ringtail.yaml"];
    const archive = spawnSync("git", ["-C", ROOT, "archive", "--format=tar", commit, ...files], { maxBuffer: 64 * 1024 * 1024 });
    if (archive.status !== 0) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(
            `git archive ${commit} failed: ${archive.stderr.toString().trim()}. ` +
                "Fix: run the upgrade tests in a clone with the repository's history (git fetch --unshallow).",
        );
    }
    const untar = spawnSync("tar", ["-x", "-C", dir], { input: archive.stdout });
    if (untar.status !== 0) throw new Error(`tar -x of ${commit}'s program failed: ${untar.stderr.toString().trim()}`);
    return dir;
}

/**
 * The last program that kept the 1Password Connect token in its state (as
 * the onepassword provider's input, from $OP_CONNECT_TOKEN): the history
 * CI's trust tests upgrade from (CHANGELOG).
 */
export const TOKEN_KEEPING_PROGRAM = "854cf40b8663b7304916685b80051e8c261e6d86";

/**
 * node_modules for a former program whose dependencies are not this
 * checkout's (854cf40 needs @1password/pulumi-onepassword): `npm ci` of its
 * own lockfile, once per lockfile, in the machine's cache.
 */
export function formerNodeModules(programDir: string): string {
    const lock = readFileSync(join(programDir, "package-lock.json"));
    const dir = join(cacheDir(), "former-node-modules", createHash("sha256").update(lock).digest("hex").slice(0, 16));
    if (!existsSync(join(dir, ".complete"))) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        for (const f of ["package.json", "package-lock.json"]) cpSync(join(programDir, f), join(dir, f));
        const r = spawnSync("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], {
            cwd: dir,
            encoding: "utf8",
            timeout: 900_000,
        });
        if (r.status !== 0)
            throw new Error(`npm ci of the former program's dependencies failed: ${r.stderr.trim().split("\n").slice(-5).join("\n")}`);
        writeFileSync(join(dir, ".complete"), "");
    }
    return join(dir, "node_modules");
}

/**
 * Replaces the program of a stack's project with this checkout's (or the
 * one in `from`), its node_modules with this checkout's: the upgrade. Its
 * state stays, and its stack file, unless `stackFile` brings the new
 * committed one (the `encryptionsalt` of the old kept; per-machine settings
 * must then be set again).
 */
export function upgradeProgram(run: ProjectRun, from = ROOT, stackFile = false): void {
    for (const entry of PROGRAM_FILES) {
        rmSync(join(run.project, entry), { recursive: true, force: true });
        cpSync(join(from, entry), join(run.project, entry), { recursive: true });
    }
    rmSync(join(run.project, "node_modules"), { force: true });
    symlinkSync(join(ROOT, "node_modules"), join(run.project, "node_modules"));
    if (stackFile) {
        const file = join(run.project, `Pulumi.${run.stack.name}.yaml`);
        const salt = /^encryptionsalt: .*$/m.exec(readFileSync(file, "utf8"))?.[0];
        const committed = readFileSync(join(from, `Pulumi.${run.stack.name}.yaml`), "utf8");
        writeFileSync(file, salt !== undefined ? `${salt}\n${committed}` : committed);
    }
}

/** The names of the resources in a stack's state (the last part of each URN). */
export async function resourceNames(run: Run): Promise<string[]> {
    const state = (await run.stack.exportStack()).deployment as { resources?: { urn: string }[] };
    return (state.resources ?? []).map((r) => r.urn.split("::").pop() ?? "");
}

/** What an operation printed or threw, for assertions and leak scans. */
export async function attempt(run: Run, op: "up" | "preview" | "destroy"): Promise<{ ok: boolean; message: string }> {
    try {
        await run.stack[op](recording(run));
        return { ok: true, message: "" };
    } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        run.transcript.push(message);
        return { ok: false, message };
    }
}

/** What each stack kept and printed, named for a leak scan: `stack <i> state+config` and `stack <i> output+events+errors`. */
export function leakSources(runs: ProjectRun[]): Record<string, string> {
    return Object.fromEntries(
        runs.flatMap((r, i) => [
            [`stack ${i} state+config`, r.persisted()],
            [`stack ${i} output+events+errors`, nonDebug(r)],
        ]),
    );
}

/** A stack's outputs as plain values. */
export function outputValues(outputs: Record<string, { value: unknown }>): Record<string, unknown> {
    return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.value]));
}

/**
 * Copies the project as git sees it (tracked and untracked files that are
 * not ignored, as they are in the working tree) into `dest`: what a clone of
 * this commit, with the working tree's changes, would hold.
 */
export function copyProjectTree(dest: string): void {
    const r = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ls-files failed: ${r.stderr}`);
    for (const file of r.stdout.split("\0").filter((f) => f !== "" && existsSync(join(ROOT, f)))) {
        mkdirSync(dirname(join(dest, file)), { recursive: true });
        cpSync(join(ROOT, file), join(dest, file));
    }
}

/** A `pulumi` command of a project stack as its own process group, so a test can kill all of it. */
export interface PulumiProcess {
    child: ChildProcess;
    /** Everything it printed so far. */
    output: string[];
    /** Resolves to its exit code (or the signal's name). */
    exited: Promise<number | string>;
}

/** Every process below `pid` (children, their children, …), from `ps`. */
export function descendants(pid: number): number[] {
    const rows = spawnSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" })
        .stdout.trim()
        .split("\n")
        .map((l) => l.trim().split(/\s+/).map(Number));
    const found: number[] = [];
    const walk = (parent: number): void => {
        for (const [child, ppid] of rows) {
            if (ppid === parent && child !== undefined) {
                found.push(child);
                walk(child);
            }
        }
    };
    walk(pid);
    return found;
}

/**
 * SIGKILLs a pulumi command's process group, as a CI job timeout does, and
 * returns the processes below it that were in another group and outlived
 * that (they are killed too, and reported): the nodejs language host starts
 * the program in a process group of its own.
 */
export async function killPulumi(p: PulumiProcess): Promise<number[]> {
    const pid = p.child.pid ?? 0;
    const below = descendants(pid);
    try {
        process.kill(-pid, "SIGKILL");
    } catch {
        // already gone
    }
    await p.exited;
    const survivors = below.filter((d) => {
        try {
            process.kill(d, 0);
            return true;
        } catch {
            return false;
        }
    });
    for (const d of survivors) process.kill(d, "SIGKILL");
    return survivors;
}

/** Starts `pulumi <args> --stack <name>` in the stack's project with its environment, in a new process group. */
export function spawnPulumi(run: ProjectRun, args: string[]): PulumiProcess {
    return spawnInProject(run, "pulumi", [...args, "--stack", run.stack.name, "--non-interactive", "--color", "never"]);
}

/** Starts `command args` in the stack's project with its environment (and `env`), in a new process group, its output kept. */
export function spawnInProject(run: ProjectRun, command: string, args: string[], env: Record<string, string> = {}): PulumiProcess {
    const child = spawn(command, args, {
        cwd: run.project,
        env: { ...process.env, ...env, ...run.env },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
    });
    const output: string[] = [];
    child.stdout.on("data", (d: Buffer) => output.push(d.toString()));
    child.stderr.on("data", (d: Buffer) => output.push(d.toString()));
    const exited = new Promise<number | string>((resolve) =>
        child.once("exit", (code, signal) => {
            resolve(code ?? signal ?? -1);
        }),
    );
    return { child, output, exited };
}
