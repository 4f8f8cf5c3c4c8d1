/**
 * The sandbox's Forgejo: Gitea v1.26.0 (Forgejo's upstream; Forgejo itself
 * is not served by the Go module proxy, and the REST routes and auth header
 * the PR preview uses are the same), built by sandbox/build. It runs on
 * loopback (or another local address) with SQLite, SSH off, offline mode; an
 * admin and an API token are made with its CLI, repositories and pull
 * requests through its API. With Actions on, real runner daemons take jobs
 * from it (sandbox/forgejo-runner.ts).
 */
import { randomBytes } from "node:crypto";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { stopChild } from "./child";

export interface GiteaRepo {
    owner: string;
    name: string;
    /** `owner/name`. */
    fullName: string;
}

/** Options of `Gitea.start`; none changes the default instance. */
export interface GiteaStartOptions {
    /**
     * Gitea Actions for a real runner daemon (sandbox/forgejo-runner.ts):
     * `[actions] ENABLED = true` and `DEFAULT_ACTIONS_URL = self`, so that
     * `uses: actions/checkout@v4` resolves to the `actions/checkout`
     * repository of this instance (nothing can be fetched from GitHub here).
     * Default false: the app.ini stays as it always was (Gitea 1.26's own
     * Actions defaults).
     */
    actions?: boolean;
    /**
     * The local address Gitea listens on and names itself by (ROOT_URL), e.g.
     * the host side of the sandbox ringtail's link, so that a runner inside
     * that machine and processes here reach it by the same URL. Default
     * 127.0.0.1.
     */
    address?: string;
    /**
     * With `actions`: whether Gitea starts due `schedule` workflows (its cron
     * task `start_schedule_tasks`, here every 2 s instead of Gitea's once a
     * minute, so a `* * * * *` workflow starts within seconds of each
     * minute). Default false, so that a workflow's daily cron never fires in
     * the middle of a test; the workflows run from the events the tests make.
     */
    schedules?: boolean;
}

/** Where Forgejo reads workflows; Gitea is told to read the same directory (`[actions] WORKFLOW_DIRS`). */
export const WORKFLOW_DIR = ".forgejo/workflows";

/** A workflow run as `GET /repos/{owner}/{repo}/actions/runs` lists it (fields used here). */
export interface GiteaActionRun {
    id: number;
    /** Event that triggered the run (`push`, `pull_request`, `workflow_dispatch`, …). */
    event: string;
    /** The workflow file, e.g. `.forgejo/workflows/x.yaml`. */
    path: string;
    head_sha: string;
    head_branch?: string;
    /** `queued`, `in_progress`, `completed`, … (GitHub's words). */
    status: string;
    /** Once completed: `success`, `failure`, `cancelled`, `skipped`, … */
    conclusion?: string;
    trigger_actor?: { login: string };
    head_repository?: { full_name: string };
    started_at: string;
    completed_at: string;
}

/** A job as `GET /repos/{owner}/{repo}/actions/runs/{run}/jobs` lists it (fields used here). */
export interface GiteaActionJob {
    id: number;
    run_id: number;
    name: string;
    status: string;
    conclusion: string;
    runner_id: number;
    runner_name: string;
    started_at: string;
    completed_at: string;
    /** The job's steps as the runner reported them. */
    steps?: { name: string; conclusion?: string; started_at?: string; completed_at?: string }[] | null;
}

/** How long each step of a job took, as Gitea recorded it (whole seconds), e.g. `checkout 1 s, npm ci 9 s`. */
export function stepTimes(job: GiteaActionJob): string {
    return (job.steps ?? [])
        .filter((s) => s.started_at !== undefined && s.completed_at !== undefined)
        .map((s) => `${s.name} ${(Date.parse(s.completed_at ?? "") - Date.parse(s.started_at ?? "")) / 1000} s`)
        .join(", ");
}

export class Gitea {
    private constructor(
        readonly dir: string,
        readonly url: string,
        /** An admin's API token (scopes: all). */
        readonly token: string,
        readonly user: string,
        private readonly child: ChildProcess,
    ) {}

    /** Gitea's own log (scanned for leaks by the tests). */
    get logDir(): string {
        return join(this.dir, "log");
    }

    /** Starts Gitea on 127.0.0.1:`port` with a fresh SQLite database and an admin with a token. */
    static async start(port = 13000, options: GiteaStartOptions = {}): Promise<Gitea> {
        const address = options.address ?? "127.0.0.1";
        const sandbox = process.env["CI_REGISTRY_AUTH_SANDBOX"];
        if (sandbox === undefined) throw new Error('CI_REGISTRY_AUTH_SANDBOX is not set: eval "$(bash sandbox/build --env)" first');
        const bin = join(sandbox, "bin", "gitea");
        const dir = mkdtempSync(join(tmpdir(), "cra-gitea-"));
        mkdirSync(join(dir, "custom", "conf"), { recursive: true });
        const config = join(dir, "custom", "conf", "app.ini");
        writeFileSync(
            config,
            [
                "APP_NAME = ci-registry-auth sandbox",
                "RUN_MODE = prod",
                `WORK_PATH = ${dir}`,
                "[server]",
                `HTTP_ADDR = ${address}`,
                `HTTP_PORT = ${port}`,
                `ROOT_URL = http://${address}:${port}/`,
                "DISABLE_SSH = true",
                "OFFLINE_MODE = true",
                `STATIC_ROOT_PATH = ${join(sandbox, "gitea-static")}`,
                `APP_DATA_PATH = ${join(dir, "data")}`,
                "[database]",
                "DB_TYPE = sqlite3",
                `PATH = ${join(dir, "data", "gitea.db")}`,
                "[security]",
                "INSTALL_LOCK = true",
                `SECRET_KEY = ${randomBytes(24).toString("hex")}`,
                "[service]",
                "DISABLE_REGISTRATION = true",
                "[repository]",
                `ROOT = ${join(dir, "repos")}`,
                "[log]",
                "MODE = file",
                `ROOT_PATH = ${join(dir, "log")}`,
                "LEVEL = Info",
                ...(options.actions === true
                    ? [
                          "[actions]",
                          "ENABLED = true",
                          "DEFAULT_ACTIONS_URL = self",
                          // Gitea 1.26 reads .gitea/workflows and .github/workflows by default; Forgejo reads .forgejo/workflows.
                          `WORKFLOW_DIRS = ${WORKFLOW_DIR}`,
                          "[cron.start_schedule_tasks]",
                          `ENABLED = ${options.schedules === true ? "true" : "false"}`,
                          "SCHEDULE = @every 2s",
                      ]
                    : []),
                "",
            ].join("\n"),
        );
        const env = { ...process.env, GITEA_WORK_DIR: dir, GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT: "true" };
        const cli = (args: string[]): string => {
            const r = spawnSync(bin, ["--config", config, ...args], { cwd: dir, env, encoding: "utf8" });
            if (r.status !== 0) throw new Error(`gitea ${args[0] ?? ""} ${args[1] ?? ""} failed: ${r.stderr}`);
            return r.stdout;
        };
        cli(["migrate"]);
        const user = "ops";
        cli([
            "admin",
            "user",
            "create",
            "--admin",
            "--username",
            user,
            "--random-password",
            "--email",
            "ops@example.invalid",
            "--must-change-password=false",
        ]);
        const token =
            cli(["admin", "user", "generate-access-token", "--username", user, "--scopes", "all", "--raw"]).trim().split("\n").pop() ?? "";
        const log = openSync(join(dir, "web.log"), "a");
        const child = spawn(bin, ["--config", config, "web"], { cwd: dir, env, stdio: ["ignore", log, log] });
        const gitea = new Gitea(dir, `http://${address}:${port}`, token, user, child);
        const deadline = Date.now() + 60_000;
        for (;;) {
            try {
                const res = await fetch(`${gitea.url}/api/v1/version`);
                if (res.ok) return gitea;
            } catch {
                // not listening yet
            }
            if (child.exitCode !== null || Date.now() > deadline) {
                await gitea.stop();
                throw new Error(`Gitea did not start within 60 s; log: ${join(dir, "web.log")}`);
            }
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
    }

    /** Calls the API as the admin; throws with the status on failure. */
    async api<T>(method: string, path: string, body?: unknown): Promise<T> {
        const res = await fetch(`${this.url}/api/v1${path}`, {
            method,
            headers: { Authorization: `token ${this.token}`, "Content-Type": "application/json" },
            ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        if (!res.ok) throw new Error(`Gitea ${method} ${path}: ${res.status} ${await res.text()}`);
        return (res.status === 204 ? undefined : await res.json()) as T;
    }

    /** Another (non-admin) user and an API token of theirs (scopes: all), e.g. one who plants markers. */
    async createUser(name: string): Promise<{ user: string; token: string }> {
        const password = randomBytes(18).toString("base64url");
        await this.api("POST", "/admin/users", { username: name, email: `${name}@example.invalid`, password, must_change_password: false });
        // Gitea makes tokens only for a user who logs in with a password.
        const res = await fetch(`${this.url}/api/v1/users/${name}/tokens`, {
            method: "POST",
            headers: {
                Authorization: `Basic ${Buffer.from(`${name}:${password}`).toString("base64")}`,
                "Content-Type": "application/json",
            },
            body: JSON.stringify({ name: `${name}-token`, scopes: ["all"] }),
        });
        if (!res.ok) throw new Error(`Gitea token for ${name}: ${res.status} ${await res.text()}`);
        return { user: name, token: ((await res.json()) as { sha1: string }).sha1 };
    }

    /** A repository of the admin, initialised with a README on `main`. */
    async createRepo(name: string): Promise<GiteaRepo> {
        await this.api("POST", "/user/repos", { name, auto_init: true, default_branch: "main" });
        return { owner: this.user, name, fullName: `${this.user}/${name}` };
    }

    /** Pushes a local commit to a branch over HTTP (the token in an extra header from the environment, never in the URL or argv). */
    push(repo: GiteaRepo, gitDir: string, commit: string, branch: string): void {
        const auth = `Authorization: Basic ${Buffer.from(`${this.user}:${this.token}`).toString("base64")}`;
        const r = spawnSync("git", ["push", "--force", `${this.url}/${repo.fullName}.git`, `${commit}:refs/heads/${branch}`], {
            cwd: gitDir,
            encoding: "utf8",
            env: {
                ...process.env,
                GIT_TERMINAL_PROMPT: "0",
                GIT_CONFIG_COUNT: "1",
                GIT_CONFIG_KEY_0: "http.extraHeader",
                GIT_CONFIG_VALUE_0: auth,
            },
        });
        if (r.status !== 0) throw new Error(`git push to ${repo.fullName} ${branch} failed: ${r.stderr}`);
    }

    /** Opens a pull request from `head` into `base`; returns its number. */
    async openPullRequest(repo: GiteaRepo, head: string, base: string, title: string): Promise<number> {
        const pr = await this.api<{ number: number }>("POST", `/repos/${repo.fullName}/pulls`, { head, base, title });
        return pr.number;
    }

    /** Runs Gitea's CLI against this instance's app.ini (as `start` does); returns stdout, which callers must not print when it holds a token. */
    private cli(args: string[]): string {
        const sandbox = process.env["CI_REGISTRY_AUTH_SANDBOX"] ?? "";
        const r = spawnSync(join(sandbox, "bin", "gitea"), ["--config", join(this.dir, "custom", "conf", "app.ini"), ...args], {
            cwd: this.dir,
            env: { ...process.env, GITEA_WORK_DIR: this.dir, GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT: "true" },
            encoding: "utf8",
        });
        if (r.status !== 0) throw new Error(`gitea ${args[0] ?? ""} ${args[1] ?? ""} failed: ${r.stderr}`);
        return r.stdout;
    }

    /**
     * A runner registration token from Gitea's CLI (`gitea actions
     * generate-runner-token`, through the running server's private API),
     * instance-wide unless `scope` (`owner` or `owner/repo`). Returned, never printed.
     */
    runnerRegistrationToken(scope?: string): string {
        const out = this.cli(["actions", "generate-runner-token", ...(scope !== undefined ? ["--scope", scope] : [])]);
        const token = out.trim().split("\n").pop()?.trim() ?? "";
        if (!/^[0-9A-Za-z]{20,}$/.test(token)) throw new Error("gitea actions generate-runner-token printed no token");
        return token;
    }

    /** Calls the API with another user's token (e.g. one from `createUser`); throws with the status on failure. */
    async apiAs<T>(token: string, method: string, path: string, body?: unknown): Promise<T> {
        const res = await fetch(`${this.url}/api/v1${path}`, {
            method,
            headers: { Authorization: `token ${token}`, "Content-Type": "application/json" },
            ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        if (!res.ok) throw new Error(`Gitea ${method} ${path}: ${res.status} ${await res.text()}`);
        return (res.status === 204 ? undefined : await res.json()) as T;
    }

    /** An organisation owned by the admin (e.g. `actions`, home of `actions/checkout`). */
    async createOrg(name: string): Promise<void> {
        await this.api("POST", "/orgs", { username: name, visibility: "public" });
    }

    /** A public repository of `owner` (the admin or one of the admin's organisations); empty unless `autoInit`. */
    async createRepoOf(owner: string, name: string, opts: { autoInit?: boolean } = {}): Promise<GiteaRepo> {
        const path = owner === this.user ? "/user/repos" : `/orgs/${owner}/repos`;
        await this.api("POST", path, { name, auto_init: opts.autoInit ?? false, default_branch: "main", private: false });
        return { owner, name, fullName: `${owner}/${name}` };
    }

    /** Pushes refspecs (`src:dst`) from a local or bare git directory, as `push` does (the token in a header from the environment). */
    pushRefs(repo: GiteaRepo, gitDir: string, refspecs: string[]): void {
        const auth = `Authorization: Basic ${Buffer.from(`${this.user}:${this.token}`).toString("base64")}`;
        const r = spawnSync("git", ["--git-dir", gitDir, "push", "--force", `${this.url}/${repo.fullName}.git`, ...refspecs], {
            encoding: "utf8",
            env: {
                ...process.env,
                GIT_TERMINAL_PROMPT: "0",
                // A mirror owned by another user is still only read.
                GIT_CONFIG_COUNT: "2",
                GIT_CONFIG_KEY_0: "http.extraHeader",
                GIT_CONFIG_VALUE_0: auth,
                GIT_CONFIG_KEY_1: "safe.directory",
                GIT_CONFIG_VALUE_1: "*",
            },
        });
        if (r.status !== 0) throw new Error(`git push to ${repo.fullName} (${refspecs.join(" ")}) failed: ${r.stderr}`);
    }

    /** Forks `repo` into the account of the user whose token this is; returns the fork. */
    async fork(repo: GiteaRepo, as: { user: string; token: string }): Promise<GiteaRepo> {
        const f = await this.apiAs<{ name: string; owner: { login: string } }>(as.token, "POST", `/repos/${repo.fullName}/forks`, {});
        return { owner: f.owner.login, name: f.name, fullName: `${f.owner.login}/${f.name}` };
    }

    /** Sets a repository's Actions secret (the value in the request body only). */
    async setActionsSecret(repo: GiteaRepo, name: string, value: string): Promise<void> {
        // Answered 201 or 204 with an empty body, which `api` would parse.
        const res = await fetch(`${this.url}/api/v1/repos/${repo.fullName}/actions/secrets/${name}`, {
            method: "PUT",
            headers: { Authorization: `token ${this.token}`, "Content-Type": "application/json" },
            body: JSON.stringify({ data: value }),
        });
        if (!res.ok) throw new Error(`Gitea PUT secret ${name} of ${repo.fullName}: ${res.status} ${await res.text()}`);
    }

    /** The repository's workflow runs, newest first. */
    async actionRuns(repo: GiteaRepo): Promise<GiteaActionRun[]> {
        const r = await this.api<{ workflow_runs: GiteaActionRun[] | null }>("GET", `/repos/${repo.fullName}/actions/runs?limit=50`);
        return r.workflow_runs ?? [];
    }

    /** The jobs of a run, with the runner that took each. */
    async actionRunJobs(repo: GiteaRepo, runId: number): Promise<GiteaActionJob[]> {
        const r = await this.api<{ jobs: GiteaActionJob[] | null }>("GET", `/repos/${repo.fullName}/actions/runs/${runId}/jobs`);
        return r.jobs ?? [];
    }

    /** A job's log as Gitea keeps it (what the runner reported, after its masking). */
    async actionJobLog(repo: GiteaRepo, jobId: number): Promise<string> {
        const res = await fetch(`${this.url}/api/v1/repos/${repo.fullName}/actions/jobs/${jobId}/logs`, {
            headers: { Authorization: `token ${this.token}` },
        });
        if (!res.ok) throw new Error(`Gitea GET job ${jobId} logs: ${res.status} ${await res.text()}`);
        return res.text();
    }

    /** Triggers a `workflow_dispatch` workflow (`file`: its name under the workflows directory) on `ref`; returns the run's id. */
    async dispatchWorkflow(repo: GiteaRepo, file: string, ref: string, inputs: Record<string, string> = {}): Promise<number> {
        const r = await this.api<{ workflow_run_id: number }>(
            "POST",
            `/repos/${repo.fullName}/actions/workflows/${file}/dispatches?return_run_details=true`,
            { ref, inputs },
        );
        return r.workflow_run_id;
    }

    /** Sets a repository's Actions variable (`vars.NAME` in workflows), creating or updating it. */
    async setVariable(repo: GiteaRepo, name: string, value: string): Promise<void> {
        const path = `/repos/${repo.fullName}/actions/variables/${name}`;
        const send = (method: string) =>
            fetch(`${this.url}/api/v1${path}`, {
                method,
                headers: { Authorization: `token ${this.token}`, "Content-Type": "application/json" },
                body: JSON.stringify({ name, value }),
            });
        let res = await send("POST");
        // 409: it exists already.
        if (res.status === 409) res = await send("PUT");
        if (!res.ok) throw new Error(`Gitea ${path}: ${res.status} ${await res.text()}`);
    }

    /**
     * Waits (bounded) until a run that `match`es has completed; returns it and
     * when this poll saw it end (ms since the epoch). The API's `event` is
     * Gitea's hook event: `push`, `pull_request` (opened), `pull_request_sync`
     * (a push to the PR's branch), `workflow_dispatch`.
     */
    async completedRun(
        repo: GiteaRepo,
        match: (run: GiteaActionRun) => boolean,
        opts: { timeoutMs?: number; describe?: () => string } = {},
    ): Promise<{ run: GiteaActionRun; seen: number }> {
        const timeoutMs = opts.timeoutMs ?? 300_000;
        const deadline = Date.now() + timeoutMs;
        let runs: GiteaActionRun[] = [];
        while (Date.now() < deadline) {
            runs = await this.actionRuns(repo);
            const run = runs.find(match);
            if (run?.status === "completed") return { run, seen: Date.now() };
            await new Promise((resolve) => setTimeout(resolve, 250));
        }
        const last = runs.map((r) => `#${r.id} ${r.event} ${r.path} ${r.head_sha.slice(0, 12)} ${r.status}`).join("; ");
        throw new Error(
            `no matching run of ${repo.fullName} completed within ${timeoutMs / 1000} s (runs: ${last})${opts.describe?.() ?? ""}`,
        );
    }

    /** The jobs of a run with their logs as Gitea keeps them (what the runner reported, after its masking). */
    async runJobsWithLogs(repo: GiteaRepo, runId: number): Promise<(GiteaActionJob & { log: string })[]> {
        const jobs = await this.actionRunJobs(repo, runId);
        // A job that never ran (skipped) has no log.
        return Promise.all(
            jobs.map(async (j) => ({ ...j, log: j.conclusion === "skipped" ? "" : await this.actionJobLog(repo, j.id).catch(() => "") })),
        );
    }

    /**
     * Approves a run that waits for a maintainer (a fork's first pull
     * request): Gitea 1.26 offers this in its web UI only, so this signs in
     * to the web UI as the admin (a password set through the API for this)
     * and posts what the button posts.
     */
    async approveRun(repo: GiteaRepo, runId: number): Promise<void> {
        const cookie = await this.webSession();
        const res = await fetch(`${this.url}/${repo.fullName}/actions/runs/${runId}/approve`, {
            method: "POST",
            headers: { Cookie: cookie },
            redirect: "manual",
        });
        if (!res.ok) throw new Error(`Gitea approve run ${runId} of ${repo.fullName}: ${res.status} ${await res.text()}`);
    }

    private session: string | undefined;

    /** A signed-in web session of the admin (its cookie header). */
    private async webSession(): Promise<string> {
        if (this.session !== undefined) return this.session;
        const password = randomBytes(18).toString("base64url");
        await this.api("PATCH", `/admin/users/${this.user}`, {
            login_name: this.user,
            source_id: 0,
            password,
            must_change_password: false,
        });
        const res = await fetch(`${this.url}/user/login`, {
            method: "POST",
            headers: { "Content-Type": "application/x-www-form-urlencoded" },
            body: new URLSearchParams({ user_name: this.user, password }).toString(),
            redirect: "manual",
        });
        // Signing in regenerates the session: the last value of a cookie is the one that counts.
        const cookies = new Map<string, string>();
        for (const c of res.headers.getSetCookie()) {
            const [pair = ""] = c.split(";");
            const eq = pair.indexOf("=");
            if (eq > 0 && !/max-age=0/i.test(c)) cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
        }
        if (res.status !== 303 || !cookies.has("i_like_gitea"))
            throw new Error(`Gitea web sign-in as ${this.user}: ${res.status}, no session`);
        this.session = [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
        return this.session;
    }

    async stop(): Promise<void> {
        await stopChild(this.child);
    }

    /** Removes its directory (after stop). */
    remove(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}
