/**
 * The real forgejo-runner daemon (v12), one per instance of `ForgejoRunner`,
 * registered with the sandbox's Gitea and taking jobs from real Gitea events
 * (push, pull_request, workflow_dispatch), as ringtail's and indri's
 * runners do. The binary is not built by this project: forgejo-runner is
 * not served by the Go module proxy, so `../shared/tools/build-forgejo-runner`
 * (outside the project) builds it from a mirror of its source.
 *
 * Tokens: the registration token comes from Gitea's CLI and is written to
 * `forgejo-runner register`'s stdin (its interactive mode), because the
 * non-interactive mode takes it only as `--token` on the command line and
 * no environment variable or file is read instead (v12
 * `internal/app/cmd/register.go`). The runner token Gitea answers with is
 * kept only in the registration file (`.runner`, made 0600 here), which
 * the daemon reads; neither is printed.
 *
 * `installCheckoutAction` puts `actions/checkout` into Gitea, so that
 * `uses: actions/checkout@v4` resolves inside the sandbox when Gitea runs
 * with `DEFAULT_ACTIONS_URL = self` (`Gitea.start(port, { actions: true })`).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { Gitea, GiteaRepo } from "./gitea";
import { cacheDir } from "./cache";

/** Environment variable naming the forgejo-runner binary. */
export const FORGEJO_RUNNER_ENV = "CI_REGISTRY_AUTH_FORGEJO_RUNNER";

/** Environment variable naming a git directory of actions/checkout (upstream github:actions/checkout). */
export const ACTIONS_CHECKOUT_ENV = "CI_REGISTRY_AUTH_ACTIONS_CHECKOUT";

/** Where this machine keeps a bare mirror of actions/checkout (the default of ACTIONS_CHECKOUT_ENV). */
export const DEFAULT_ACTIONS_CHECKOUT = "/work/.mirror/actions+checkout/repo";

/** The path where the binary is looked for: FORGEJO_RUNNER_ENV, else the cache's `forgejo-runner/forgejo-runner`. */
export function forgejoRunnerPath(): string {
    return process.env[FORGEJO_RUNNER_ENV] ?? join(cacheDir(), "forgejo-runner", "forgejo-runner");
}

/** Why the daemon cannot run here ("not found … Fix: …"), or undefined when the binary is present. */
export function forgejoRunnerAbsence(): string | undefined {
    const path = forgejoRunnerPath();
    if (existsSync(path)) return undefined;
    const from = process.env[FORGEJO_RUNNER_ENV] !== undefined ? `${FORGEJO_RUNNER_ENV}=${path}` : `${path} (the cache's default)`;
    return (
        `forgejo-runner not found at ${from}. Fix: build it outside this project with ` +
        `../shared/tools/build-forgejo-runner ${join(cacheDir(), "forgejo-runner")} <bare git dir of forgejo-runner>, ` +
        `or set ${FORGEJO_RUNNER_ENV} to an existing forgejo-runner v12 binary`
    );
}

/** The binary's path; throws forgejoRunnerAbsence()'s message when it is missing. */
export function findForgejoRunner(): string {
    const absent = forgejoRunnerAbsence();
    if (absent !== undefined) throw new Error(absent);
    return forgejoRunnerPath();
}

/** What `register` is told. */
export interface RegisterOptions {
    /** The runner's name, as Gitea lists it and as a job's `runner_name`. */
    name: string;
    /** `name:scheme[:arg]` labels, e.g. `sandbox-host:host` or `k8s:docker://image`. */
    labels: string[];
}

/** What `start` is given. */
export interface StartOptions {
    /** The text of config.yaml (e.g. the runner's own config); `runner.file` must stay `.runner` (the default). */
    config: string;
    /**
     * The daemon's whole environment, as a systemd unit's `Environment=` or a
     * pod's `env` would give it; nothing of this process's environment is
     * added except PATH (when absent, so that host jobs find git, bash and
     * node) and HOME (when absent: the runner's directory).
     */
    env: Record<string, string>;
    /** How long to wait for the daemon to declare itself to Gitea (default 60 s). */
    timeoutMs?: number;
}

/** The registration file without its token. */
export interface RunnerRegistration {
    id: number;
    uuid: string;
    name: string;
    address: string;
    labels: string[];
}

/**
 * One real forgejo-runner daemon in a directory of its own (its working
 * directory, holding config.yaml, `.runner`, its log and, as HOME by
 * default, the host executor's work trees and action cache).
 */
export class ForgejoRunner {
    /** The runner's directory. */
    readonly dir: string;
    readonly binary: string;
    private child: ChildProcess | undefined;

    /** Finds the binary (throws "not found … Fix: …") and makes the runner's directory. */
    constructor() {
        this.binary = findForgejoRunner();
        this.dir = mkdtempSync(join(tmpdir(), "cra-forgejo-runner-"));
    }

    /**
     * The registration file a runner named `opts.name` with `opts.labels`
     * gets from `gitea` (token included: it is the runner's credential), for
     * a daemon that runs elsewhere (the sandbox ringtail's unit). Registered
     * here, in a directory removed afterwards.
     */
    static registrationFor(gitea: Gitea, opts: RegisterOptions): string {
        const runner = new ForgejoRunner();
        try {
            runner.register(gitea, opts);
            return readFileSync(join(runner.dir, ".runner"), "utf8");
        } finally {
            runner.remove();
        }
    }

    /** The daemon's output (and the registration's), for assertions and leak scans. */
    get log(): string {
        const file = join(this.dir, "runner.log");
        return existsSync(file) ? readFileSync(file, "utf8") : "";
    }

    /** Whether the daemon process is running. */
    get running(): boolean {
        return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
    }

    /** The registration (`.runner`) as the daemon last wrote it, token left out. */
    registration(): RunnerRegistration {
        const r = JSON.parse(readFileSync(join(this.dir, ".runner"), "utf8")) as RunnerRegistration & { token?: string };
        return { id: r.id, uuid: r.uuid, name: r.name, address: r.address, labels: r.labels };
    }

    /**
     * Registers with `gitea` as an instance-wide runner: a registration
     * token from Gitea's CLI, then `forgejo-runner register` answering its
     * prompts (instance, token, name, labels) on stdin.
     */
    register(gitea: Gitea, opts: RegisterOptions): void {
        const token = gitea.runnerRegistrationToken();
        const log = openSync(join(this.dir, "runner.log"), "a");
        try {
            const r = spawnSync(this.binary, ["register"], {
                cwd: this.dir,
                env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: this.dir },
                input: [gitea.url, token, opts.name, opts.labels.join(","), ""].join("\n"),
                stdio: ["pipe", log, log],
                timeout: 60_000,
            });
            if (r.status !== 0 || !existsSync(join(this.dir, ".runner"))) {
                throw new Error(
                    `forgejo-runner register failed (exit ${String(r.status ?? r.signal)}); log: ${join(this.dir, "runner.log")}`,
                );
            }
        } finally {
            closeSync(log);
        }
        chmodSync(join(this.dir, ".runner"), 0o600);
    }

    /** Writes config.yaml and starts `forgejo-runner daemon --config config.yaml`; resolves once it has declared itself to Gitea. */
    async start(opts: StartOptions): Promise<void> {
        if (this.running) throw new Error("this forgejo-runner daemon is already running");
        if (!existsSync(join(this.dir, ".runner"))) throw new Error("forgejo-runner is not registered: call register() first");
        writeFileSync(join(this.dir, "config.yaml"), opts.config);
        const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: this.dir, ...opts.env };
        const log = openSync(join(this.dir, "runner.log"), "a");
        const offset = this.log.length;
        // Its own process group, so that stop() also ends the job processes a host executor started.
        const child = spawn(this.binary, ["daemon", "--config", "config.yaml"], {
            cwd: this.dir,
            env,
            stdio: ["ignore", log, log],
            detached: true,
        });
        closeSync(log);
        this.child = child;
        const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
        for (;;) {
            const out = this.log.slice(offset);
            if (/declared successfully/.test(out)) return;
            if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
                await this.stop();
                throw new Error(
                    `forgejo-runner daemon did not declare itself to Gitea; log: ${join(this.dir, "runner.log")}\n${out.slice(-2000)}`,
                );
            }
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
    }

    /** Stops the daemon (SIGTERM to its process group; SIGKILL after `graceMs`, default 20 s). */
    async stop(graceMs = 20_000): Promise<void> {
        const child = this.child;
        if (child === undefined || child.pid === undefined || !this.running) return;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        const signal = (sig: NodeJS.Signals): void => {
            try {
                process.kill(-(child.pid ?? 0), sig);
            } catch {
                // already gone
            }
        };
        signal("SIGTERM");
        const timer = setTimeout(() => {
            signal("SIGKILL");
        }, graceMs);
        await exited;
        clearTimeout(timer);
    }

    /** Removes the runner's directory (after stop). */
    remove(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}

/** Which actions/checkout the sandbox's Gitea holds. */
export interface CheckoutAction {
    /** `upstream`: the real action from a git directory of github:actions/checkout; `stand-in`: sandbox/actions/checkout. */
    source: "upstream" | "stand-in";
    /** The git directory the upstream action came from, or the stand-in's directory. */
    from: string;
    /** The release tag pushed (upstream: the newest v4.x.y), also pushed as `v4`. */
    tag: string;
    commit: string;
    repo: GiteaRepo;
}

function git(gitDir: string, args: string[]): string {
    const r = spawnSync("git", ["-c", "safe.directory=*", "--git-dir", gitDir, ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")} in ${gitDir} failed: ${r.stderr}`);
    return r.stdout.trim();
}

/** The newest `v4.x.y` tag of a git directory, or undefined when it is not one or has none. */
export function newestV4Tag(gitDir: string): string | undefined {
    if (!existsSync(gitDir)) return undefined;
    let tags: string[];
    try {
        tags = git(gitDir, ["tag", "--list", "v4.*"]).split("\n");
    } catch {
        return undefined;
    }
    const versions = tags
        .map((t) => /^v4\.(\d+)\.(\d+)$/.exec(t))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ tag: m[0], minor: Number(m[1]), patch: Number(m[2]) }))
        .sort((a, b) => a.minor - b.minor || a.patch - b.patch);
    return versions.at(-1)?.tag;
}

/**
 * Creates the organisation `actions` and its public repository `checkout`
 * in `gitea`, holding the real action pushed from ACTIONS_CHECKOUT_ENV's git
 * directory (default DEFAULT_ACTIONS_CHECKOUT): its newest v4.x.y tag, as
 * that tag, as `v4` and as `main`. When that directory is missing or has no
 * v4 tag, the project's stand-in (sandbox/actions/checkout) is committed
 * and pushed the same way instead. Nothing is copied into this project.
 */
export async function installCheckoutAction(gitea: Gitea): Promise<CheckoutAction> {
    await gitea.createOrg("actions");
    const repo = await gitea.createRepoOf("actions", "checkout");
    const from = process.env[ACTIONS_CHECKOUT_ENV] ?? DEFAULT_ACTIONS_CHECKOUT;
    const tag = newestV4Tag(from);
    if (tag !== undefined) {
        const commit = git(from, ["rev-parse", `${tag}^{commit}`]);
        gitea.pushRefs(repo, from, [`${commit}:refs/heads/main`, `refs/tags/${tag}:refs/tags/${tag}`, `${commit}:refs/tags/v4`]);
        return { source: "upstream", from, tag, commit, repo };
    }
    const standIn = join(__dirname, "actions", "checkout");
    const work = mkdtempSync(join(tmpdir(), "cra-checkout-stand-in-"));
    try {
        const run = (args: string[]): string => {
            const r = spawnSync("git", ["-c", "user.name=ops", "-c", "user.email=ops@example.invalid", ...args], {
                cwd: work,
                encoding: "utf8",
            });
            if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${r.stderr}`);
            return r.stdout.trim();
        };
        run(["init", "-q", "-b", "main"]);
        writeFileSync(join(work, "action.yml"), readFileSync(join(standIn, "action.yml")));
        run(["add", "action.yml"]);
        run(["commit", "-q", "-m", "actions/checkout stand-in (ci-registry-auth sandbox)"]);
        const commit = run(["rev-parse", "HEAD"]);
        gitea.pushRefs(repo, join(work, ".git"), ["HEAD:refs/heads/main", "HEAD:refs/tags/v4"]);
        return { source: "stand-in", from: standIn, tag: "v4", commit, repo };
    } finally {
        rmSync(work, { recursive: true, force: true });
    }
}
