/**
 * What a Forgejo Actions job gives the PR preview and key-health scripts:
 * the server, repository, token and event from its environment, and the
 * stack settings the committed stack files leave out, from the repository's
 * secrets and variables (README, "CI and trust"). Secrets go to
 * `pulumi config set --secret` on stdin, never on a command line.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

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
    /** Extra environment for the pulumi commands. */
    env: Record<string, string>;
    /** key-health's restricted SSH key, written 0600 here, when the job has one. */
    checkKeyFile?: string;
    /** Removes the HOME and what it holds (the kubeconfig, the check key). */
    dispose(): void;
}

/**
 * Lays out what the job's secrets give CI, in a temporary HOME removed by
 * `dispose` (and when the process exits): the workflow maps repository
 * secrets to these names; none of them can change a runner, the cluster,
 * the state or the vault (README, "Trust model").
 *
 * - CI_REGISTRY_AUTH_KUBECONFIG: the kubeconfig of indri's read-only
 *   ServiceAccount (the stack's `ciKubeconfig` output), written 0600 to
 *   `.kube/config`, where the Kubernetes provider looks by default: neither
 *   KUBECONFIG nor `runner.kubeconfig` is set, either of which would become
 *   an input of the provider and show as a change against the operator's
 *   `up` (README, "CI and trust"). PULUMI_HOME stays where it was.
 * - CI_REGISTRY_AUTH_CHECK_KEY: key-health's SSH key, which the host
 *   restricts to the read-only check, written 0600 to
 *   `.ssh/ci-registry-auth-check`.
 *
 * The 1Password Connect URL and token come as OP_CONNECT_HOST and
 * OP_CONNECT_TOKEN, which the program and its provider read themselves.
 * There is no SSH key for the preview: a preview connects to no host.
 */
export function prepareJobHome(env: NodeJS.ProcessEnv): JobHome {
    const home = mkdtempSync(join(tmpdir(), "cra-home-"));
    const dispose = (): void => {
        rmSync(home, { recursive: true, force: true });
    };
    process.once("exit", dispose);
    const kubeconfig = env["CI_REGISTRY_AUTH_KUBECONFIG"];
    if (kubeconfig !== undefined && kubeconfig !== "") {
        mkdirSync(join(home, ".kube"), { mode: 0o700 });
        writeFileSync(join(home, ".kube", "config"), kubeconfig, { mode: 0o600 });
    }
    let checkKeyFile: string | undefined;
    const checkKey = env["CI_REGISTRY_AUTH_CHECK_KEY"];
    if (checkKey !== undefined && checkKey !== "") {
        mkdirSync(join(home, ".ssh"), { mode: 0o700 });
        checkKeyFile = join(home, ".ssh", "ci-registry-auth-check");
        // OpenSSH refuses a key file without its final newline, which secret stores often drop.
        writeFileSync(checkKeyFile, checkKey.endsWith("\n") ? checkKey : `${checkKey}\n`, { mode: 0o600 });
    }
    return {
        env: { HOME: home, PULUMI_HOME: env["PULUMI_HOME"] ?? join(homedir(), ".pulumi") },
        ...(checkKeyFile !== undefined ? { checkKeyFile } : {}),
        dispose,
    };
}
