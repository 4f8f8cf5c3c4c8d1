/**
 * What a Forgejo Actions job gives the PR preview and key-health scripts:
 * the server, repository, token and event from its environment, and the
 * stack settings the committed stack files leave out, from the repository's
 * secrets and variables (README, "Pull-request previews"). Secrets go to
 * `pulumi config set --secret` on stdin, never on a command line.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
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
            const event = JSON.parse(readFileSync(eventPath, "utf8")) as { number?: number; pull_request?: { number?: number } };
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

/**
 * Applies what the committed stack files leave to each machine, from the
 * job's environment (the workflow maps repository secrets and variables to
 * these names); returns extra environment for the pulumi commands.
 *
 * - CI_REGISTRY_AUTH_HOST_KEY: `runner.hostKey` (ssh stacks);
 * - CI_REGISTRY_AUTH_SSH_KEY: `sshPrivateKey`, a secret (ssh stacks);
 * - CI_REGISTRY_AUTH_KUBECONFIG: a kubeconfig (kubernetes stacks), written
 *   0600 to `.kube/config` in a HOME of this job's own, where the
 *   Kubernetes provider looks by default: neither KUBECONFIG nor
 *   `runner.kubeconfig` is set, either of which would become an input of the
 *   provider and show as a change against the operator's `up` (README,
 *   "Pull-request previews"). PULUMI_HOME stays where it was.
 * The 1Password Connect URL and token come as OP_CONNECT_HOST and
 * OP_CONNECT_TOKEN, which the program reads itself.
 */
export function applyJobSettings(workDir: string, stack: string, env: NodeJS.ProcessEnv): Record<string, string> {
    const hostKey = env["CI_REGISTRY_AUTH_HOST_KEY"];
    if (hostKey !== undefined && hostKey !== "") setConfig(workDir, stack, "ci-registry-auth:runner.hostKey", hostKey.trim(), false);
    const sshKey = env["CI_REGISTRY_AUTH_SSH_KEY"];
    if (sshKey !== undefined && sshKey !== "") setConfig(workDir, stack, "ci-registry-auth:sshPrivateKey", sshKey, true);
    const kubeconfig = env["CI_REGISTRY_AUTH_KUBECONFIG"];
    if (kubeconfig !== undefined && kubeconfig !== "") {
        const home = mkdtempSync(join(tmpdir(), "cra-home-"));
        mkdirSync(join(home, ".kube"), { mode: 0o700 });
        writeFileSync(join(home, ".kube", "config"), kubeconfig, { mode: 0o600 });
        return { HOME: home, PULUMI_HOME: env["PULUMI_HOME"] ?? join(homedir(), ".pulumi") };
    }
    return {};
}
