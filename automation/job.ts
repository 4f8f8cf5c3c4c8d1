/**
 * What a Forgejo Actions job gives the PR preview and key-health scripts:
 * the server, repository, token and event from its environment, and the
 * stack settings the committed stack files leave out, from the repository's
 * secrets and variables (README, "CI and trust"). Secrets go to
 * `pulumi config set --secret` on stdin, never on a command line.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import type { ForgejoTarget } from "./forgejo";

/** The Forgejo side of a job. */
export interface JobContext extends ForgejoTarget {
    /** The pull request's number, when the event is one. */
    pullRequest?: number;
    /** The page of this run, for the comment's link. */
    runUrl?: string;
}

/** The slice of a pull_request event read here. */
interface PullRequestEvent {
    number?: number;
    pull_request?: { number?: number; head?: { repo?: { full_name?: string } } };
}

/**
 * The repository a pull request's head branch lives in, when that is not
 * this repository (a fork's), else undefined. Forgejo gives such a job no
 * secrets, so the preview says so and stops before it needs any.
 */
export function pullRequestFork(env: NodeJS.ProcessEnv): string | undefined {
    const eventPath = env["FORGEJO_EVENT_PATH"] ?? env["GITHUB_EVENT_PATH"];
    const repository = env["FORGEJO_REPOSITORY"] ?? env["GITHUB_REPOSITORY"];
    if (eventPath === undefined || repository === undefined) return undefined;
    const head = (JSON.parse(readFileSync(eventPath, "utf8")) as PullRequestEvent).pull_request?.head?.repo?.full_name;
    return head !== undefined && head !== repository ? head : undefined;
}

/** A missing or malformed job variable: names it and the fix. */
export class JobEnvError extends Error {
    constructor(problems: string[]) {
        super(`ci-registry-auth: the job's environment is incomplete:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
        this.name = "JobEnvError";
    }
}

/**
 * Reads the job's context. forgejo-runner sets FORGEJO_* and GITHUB_* alike
 * (FORGEJO_* win); the token is the workflow's `secrets.GITHUB_TOKEN`, passed
 * as FORGEJO_TOKEN.
 */
export function jobContext(env: NodeJS.ProcessEnv, needPullRequest: boolean): JobContext {
    const problems: string[] = [];
    const get = (names: string[], fix: string): string => {
        const value = names.map((n) => env[n]).find((v) => v !== undefined && v !== "");
        if (value === undefined) problems.push(`${names.join(" or ")} is not set: ${fix}`);
        return value ?? "";
    };
    const serverUrl = get(["FORGEJO_SERVER_URL", "GITHUB_SERVER_URL"], "the runner sets it; run this inside a Forgejo Actions job");
    const repository = get(["FORGEJO_REPOSITORY", "GITHUB_REPOSITORY"], "the runner sets it; run this inside a Forgejo Actions job");
    const token = get(["FORGEJO_TOKEN"], "pass the job's token in the workflow: env: FORGEJO_TOKEN: ${{ secrets.GITHUB_TOKEN }}");
    let pullRequest: number | undefined;
    const eventPath = env["FORGEJO_EVENT_PATH"] ?? env["GITHUB_EVENT_PATH"];
    if (needPullRequest) {
        if (eventPath === undefined) {
            problems.push("GITHUB_EVENT_PATH is not set: run this on a pull_request event");
        } else {
            const event = JSON.parse(readFileSync(eventPath, "utf8")) as PullRequestEvent;
            pullRequest = event.pull_request?.number ?? event.number;
            if (pullRequest === undefined) problems.push(`the event at ${eventPath} is not a pull request: run this on pull_request`);
        }
    }
    if (problems.length > 0) throw new JobEnvError(problems);
    const run = env["FORGEJO_RUN_NUMBER"] ?? env["GITHUB_RUN_NUMBER"];
    return {
        serverUrl: serverUrl.replace(/\/+$/, ""),
        repository,
        token,
        ...(pullRequest !== undefined ? { pullRequest } : {}),
        ...(run !== undefined ? { runUrl: `${serverUrl.replace(/\/+$/, "")}/${repository}/actions/runs/${run}` } : {}),
    };
}

/** The project's stacks: one `Pulumi.<stack>.yaml` each. */
export function projectStacks(dir: string): string[] {
    return readdirSync(dir)
        .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
        .filter((s): s is string => s !== undefined)
        .sort();
}

/** `--stack <name>`, each once; the usage error names the argument. */
export function stackArg(argv: string[]): string[] {
    const stacks: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "--stack" && argv[i + 1] !== undefined) stacks.push(argv[++i] ?? "");
        else if (a.startsWith("--stack=")) stacks.push(a.slice("--stack=".length));
        else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: --stack <name>`);
    }
    return stacks;
}

/** Sets one stack setting the way an operator does, the value on stdin (`--path` keys, `--secret` when secret). */
export function setConfig(
    workDir: string,
    stack: string,
    key: string,
    value: string,
    secret: boolean,
    env: Record<string, string> = {},
): void {
    const r = spawnSync("pulumi", ["config", "set", "--path", key, "--stack", stack, secret ? "--secret" : "--plaintext"], {
        cwd: workDir,
        env: { ...process.env, ...env },
        input: value,
        encoding: "utf8",
    });
    if (r.status !== 0) {
        throw new Error(`pulumi config set ${key} failed: ${r.stderr}`);
    }
}

/** What a job hands to pulumi and to the re-read of an SSH runner, in a HOME of its own. */
export interface JobHome {
    /** Extra environment for the pulumi commands: HOME and a PULUMI_HOME of this job's own. */
    env: Record<string, string>;
    /**
     * The SSH runners' restricted check keys the job holds, written 0600
     * here, by repository secret name (`<STACK>_CHECK_KEY`: check-stack.ts,
     * checkKeySecret).
     */
    checkKeys: Record<string, string>;
    /** The provider plugins installed into this job's PULUMI_HOME, as `resource-<name>-v<version>`. */
    plugins: string[];
    /** Removes the HOME and what it holds (the kubeconfig, the check key, PULUMI_HOME). */
    dispose(): void;
}

/**
 * The provider plugins the program runs, each at the version its npm
 * package (in the checkout's node_modules) asks the engine for.
 */
export const PROVIDER_PLUGINS = ["kubernetes", "command"] as const;

/** Where a plugin sits in a plugin directory: pulumi's own layout, as `pulumi plugin install` leaves it. */
export function pluginPath(name: string, version: string): string {
    return `resource-${name}-v${version}/pulumi-resource-${name}`;
}

/** `sha256sum` lines (`<hex>  <path>`, `*` for binary mode) as a map of path to digest; other lines are refused. */
export function parsePins(text: string): Map<string, string> {
    const pins = new Map<string, string>();
    for (const [i, line] of text.split("\n").entries()) {
        if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
        const m = /^([0-9a-f]{64}) [ *](\S+)$/.exec(line.trim());
        if (m === null) {
            throw new JobEnvError([
                `PULUMI_PLUGIN_SHA256 line ${String(i + 1)} is not "<sha256>  resource-<name>-v<version>/pulumi-resource-<name>": ` +
                    "make it with (cd $PULUMI_PLUGIN_DIR && sha256sum resource-*/pulumi-resource-*)",
            ]);
        }
        pins.set(m[2] ?? "", m[1] ?? "");
    }
    return pins;
}

function sha256File(path: string): string {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * Installs the provider plugins the program needs into `pulumiHome` from
 * `pluginDir` (the runner's directory of plugins, which jobs must not be
 * able to write), each copied and then checked against its pin: a plugin
 * that is missing, unpinned or not what was pinned stops the job before
 * pulumi could run it. The copy is what is checked and run, so a file
 * swapped in the source after the check is never run.
 */
export function installPlugins(projectDir: string, pulumiHome: string, pluginDir: string, pinsText: string): string[] {
    const pins = parsePins(pinsText);
    const problems: string[] = [];
    const installed: string[] = [];
    for (const name of PROVIDER_PLUGINS) {
        const pkg = join(projectDir, "node_modules", "@pulumi", name, "package.json");
        const version = (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version;
        const rel = pluginPath(name, version);
        const pin = pins.get(rel);
        if (pin === undefined) {
            problems.push(
                `PULUMI_PLUGIN_SHA256 pins no ${rel}: add the line "$(sha256sum ${rel})" from PULUMI_PLUGIN_DIR once the plugin is checked`,
            );
            continue;
        }
        const from = join(pluginDir, rel);
        if (!existsSync(from)) {
            problems.push(
                `${from} does not exist: install the plugin into PULUMI_PLUGIN_DIR (pulumi plugin install, then copy) or fix PULUMI_PLUGIN_DIR`,
            );
            continue;
        }
        const to = join(pulumiHome, "plugins", rel);
        mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
        copyFileSync(from, to);
        const got = sha256File(to);
        if (got !== pin) {
            rmSync(dirname(to), { recursive: true, force: true });
            problems.push(
                `${from} has SHA-256 ${got}, not the pinned ${pin}: it changed since it was pinned. ` +
                    "Fix: find out who changed it; reinstall it from a trusted source and pin it again in PULUMI_PLUGIN_SHA256",
            );
            continue;
        }
        chmodSync(to, 0o500);
        installed.push(dirname(rel));
    }
    if (problems.length > 0) throw new JobEnvError(problems);
    return installed;
}

/**
 * The check keys among the repository's secrets (`toJSON(secrets)`): every
 * non-empty `<NAME>_CHECK_KEY`; everything else is dropped here. A value
 * that is not a JSON object is refused, naming the variable and the fix,
 * never showing it.
 */
export function checkKeySecrets(json: string | undefined): Record<string, string> {
    if (json === undefined || json.trim() === "") return {};
    let secrets: unknown;
    try {
        secrets = JSON.parse(json);
    } catch {
        secrets = undefined;
    }
    if (typeof secrets !== "object" || secrets === null || Array.isArray(secrets)) {
        throw new JobEnvError([
            "CI_REGISTRY_AUTH_CHECK_KEYS is not a JSON object (its value is not shown): set it in the workflow to ${{ toJSON(secrets) }}",
        ]);
    }
    return Object.fromEntries(
        Object.entries(secrets).filter(
            (e): e is [string, string] => /^[A-Z0-9_]+_CHECK_KEY$/.test(e[0]) && typeof e[1] === "string" && e[1].trim() !== "",
        ),
    );
}

/**
 * Lays out what the job's secrets give CI, in a HOME of this job's own:
 * under the runner's per-job temp directory (RUNNER_TEMP), which
 * forgejo-runner removes when the job ends however it ends (a cancelled or
 * timed-out step is SIGKILLed, so no handler of ours runs then), and
 * removed by `dispose`, on exit, and on SIGTERM and SIGINT (a runner or
 * unit stopping). The workflow maps repository secrets to these names;
 * none of them can change a runner, the cluster, the state or the vault
 * (README, "Trust model").
 *
 * - CI_REGISTRY_AUTH_KUBECONFIG: the kubeconfig of indri's read-only
 *   ServiceAccount (the stack's `ciKubeconfig` output), written 0600 to
 *   `.kube/config`, where the Kubernetes provider looks by default: neither
 *   KUBECONFIG nor `runner.kubeconfig` is set, either of which would become
 *   an input of the provider and show as a change against the operator's
 *   `up` (README, "CI and trust").
 * - CI_REGISTRY_AUTH_CHECK_KEYS: the repository's secrets as JSON
 *   (key-health.yaml: `toJSON(secrets)`), of which only the SSH runners'
 *   check keys are kept: each `<STACK>_CHECK_KEY`, which that stack's host
 *   restricts to the read-only check, written 0600 to `.ssh/<name>`. The
 *   variable is then removed from this process's environment, so nothing
 *   it starts (pulumi, the program) inherits the other secrets. A new SSH
 *   stack needs its secret and no edit of the workflow.
 * - PULUMI_HOME is always new (`.pulumi` here), never the runner's: a
 *   fork's job runs on the same runner as the same user and could have left
 *   a plugin there. With PULUMI_PLUGIN_DIR, the plugins come from that
 *   directory, each checked against PULUMI_PLUGIN_SHA256
 *   ({@link installPlugins}); without it pulumi downloads them into this
 *   PULUMI_HOME, per job.
 *
 * The 1Password Connect URL and token come as OP_CONNECT_HOST and
 * OP_CONNECT_TOKEN, which the program reads itself. There is no SSH key
 * for the preview: a preview connects to no host.
 */
export function prepareJobHome(env: NodeJS.ProcessEnv, projectDir: string): JobHome {
    const runnerTemp = env["RUNNER_TEMP"];
    const home = mkdtempSync(join(runnerTemp !== undefined && runnerTemp !== "" ? runnerTemp : tmpdir(), "cra-home-"));
    const dispose = (): void => {
        rmSync(home, { recursive: true, force: true });
    };
    process.once("exit", dispose);
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
        process.once(signal, () => {
            dispose();
            // Then as if unhandled: the process ends by the same signal.
            process.kill(process.pid, signal);
        });
    }
    try {
        const kubeconfig = env["CI_REGISTRY_AUTH_KUBECONFIG"];
        if (kubeconfig !== undefined && kubeconfig !== "") {
            mkdirSync(join(home, ".kube"), { mode: 0o700 });
            writeFileSync(join(home, ".kube", "config"), kubeconfig, { mode: 0o600 });
        }
        const checkKeys: Record<string, string> = {};
        for (const [name, key] of Object.entries(checkKeySecrets(env["CI_REGISTRY_AUTH_CHECK_KEYS"]))) {
            mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
            checkKeys[name] = join(home, ".ssh", name);
            // OpenSSH refuses a key file without its final newline, which secret stores often drop.
            writeFileSync(checkKeys[name], key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
        }
        delete env["CI_REGISTRY_AUTH_CHECK_KEYS"];
        const pulumiHome = join(home, ".pulumi");
        mkdirSync(pulumiHome, { mode: 0o700 });
        const pluginDir = env["PULUMI_PLUGIN_DIR"] ?? "";
        const plugins = pluginDir === "" ? [] : installPlugins(projectDir, pulumiHome, pluginDir, env["PULUMI_PLUGIN_SHA256"] ?? "");
        return {
            env: { HOME: home, PULUMI_HOME: pulumiHome },
            checkKeys,
            plugins,
            dispose,
        };
    } catch (err) {
        dispose();
        throw err;
    }
}
