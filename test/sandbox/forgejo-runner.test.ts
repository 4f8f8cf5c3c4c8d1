/**
 * The real forgejo-runner daemon (v12) against the sandbox's Gitea with
 * Actions on: registered with a token from Gitea's CLI, started with the
 * key in its environment (as a systemd unit or a pod gives it), it takes
 * the job of a real push event from `.forgejo/workflows/` (Gitea reads it
 * there as Forgejo does: WORKFLOW_DIRS), checks the
 * repository out with `actions/checkout@v4` (served by the same Gitea) and
 * the job shows the key's fingerprint, never the key. Then what Gitea 1.26
 * gives jobs on `workflow_dispatch` (through the API), on a pull request
 * from a fork and on `schedule`: the head repository, whether the
 * repository's secret and the runner's key arrive, whose workflow runs, and
 * what the job token is and may do. These are facts of Gitea and the
 * runner, asserted as found (some are hazards: see each test's comments).
 *
 * The binary is built outside this project (sandbox/forgejo-runner.ts).
 * Without it these tests are skipped, never passed: the describe's name
 * and a line on stderr say "not run: …" and how to fix it.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { fingerprint } from "../../components/fingerprint";
import {
    ACTIONS_CHECKOUT_ENV,
    DEFAULT_ACTIONS_CHECKOUT,
    ForgejoRunner,
    forgejoRunnerAbsence,
    installCheckoutAction,
    type CheckoutAction,
} from "../../sandbox/forgejo-runner";
import { Gitea, WORKFLOW_DIR, type GiteaActionRun, type GiteaRepo } from "../../sandbox/gitea";
import { WORKFLOWS } from "../../sandbox/jobs";

const PORT = 13100;
const KEY = "zak_runner_daemon_6d5c4b3a2f1e0d9c8b7a";
const PROBE_SECRET = "probe-secret-4e3d2c1b0a9f8e7d";
const LABEL = "sandbox-host";
const RUNNER = "sandbox-daemon";

const absent = forgejoRunnerAbsence();
if (absent !== undefined) console.error(`test/sandbox/forgejo-runner.test.ts not run: ${absent}`);

let gitea: Gitea;
let runner: ForgejoRunner;
let checkout: CheckoutAction;
let repo: GiteaRepo;
let work: string;

function git(args: string[], cwd = join(work, "repo")): string {
    const r = spawnSync("git", ["-c", "user.name=ops", "-c", "user.email=ops@example.invalid", ...args], { cwd, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${r.stderr}`);
    return r.stdout.trim();
}

/**
 * Gitea.completedRun on the probe repository, with the runner's log on a timeout. `match`: the API's
 * `event` (Gitea's hook event: `push`, `pull_request_sync`, …) and, when given, the head commit.
 */
function completedRun(
    match: { event: string; sha?: string } | ((run: GiteaActionRun) => boolean),
    timeoutMs = 240_000,
): Promise<{ run: GiteaActionRun; seen: number }> {
    const matches =
        typeof match === "function"
            ? match
            : (r: GiteaActionRun) => r.event === match.event && (match.sha === undefined || r.head_sha === match.sha);
    return gitea.completedRun(repo, matches, { timeoutMs, describe: () => `; runner log:\n${runner.log.slice(-3000)}` });
}

/** The one job of a run, and its log as Gitea keeps it. */
async function onlyJob(
    run: GiteaActionRun,
): Promise<{ runnerName: string; conclusion: string; started: string; completed: string; log: string }> {
    const jobs = await gitea.actionRunJobs(repo, run.id);
    expect(jobs).toHaveLength(1);
    const job = jobs[0]!;
    return {
        runnerName: job.runner_name,
        conclusion: job.conclusion,
        started: job.started_at,
        completed: job.completed_at,
        log: await gitea.actionJobLog(repo, job.id),
    };
}

describe.skipIf(absent !== undefined)(absent !== undefined ? `not run: ${absent}` : "the real forgejo-runner daemon", () => {
    beforeAll(async () => {
        gitea = await Gitea.start(PORT, { actions: true, schedules: true });
        checkout = await installCheckoutAction(gitea);
        console.log(
            checkout.source === "upstream"
                ? `actions/checkout in Gitea: upstream ${checkout.tag} (${checkout.commit.slice(0, 12)}) from ${checkout.from}, also as v4`
                : `actions/checkout in Gitea: the project's stand-in (${checkout.from}); ${ACTIONS_CHECKOUT_ENV} or ${DEFAULT_ACTIONS_CHECKOUT} has no v4.x.y tag`,
        );
        runner = new ForgejoRunner();
        runner.register(gitea, { name: RUNNER, labels: [`${LABEL}:host`] });
        // A config of the runner's own kind: labels from the registration, defaults otherwise; no cache server, faster polling.
        await runner.start({
            config: ["runner:", "  capacity: 1", "  fetch_interval: 1s", "  report_interval: 1s", "cache:", "  enabled: false", ""].join(
                "\n",
            ),
            env: { ZOT_CI_API_KEY: KEY },
        });
        repo = await gitea.createRepo("runner-probe");
        await gitea.setActionsSecret(repo, "PROBE_SECRET", PROBE_SECRET);
        work = mkdtempSync(join(tmpdir(), "cra-runner-test-"));
        mkdirSync(join(work, "repo", WORKFLOW_DIR), { recursive: true });
        git(["init", "-q", "-b", "main"]);
    }, 300_000);

    afterAll(async () => {
        await (runner as ForgejoRunner | undefined)?.stop();
        await (gitea as Gitea | undefined)?.stop();
        (runner as ForgejoRunner | undefined)?.remove();
        (gitea as Gitea | undefined)?.remove();
        if ((work as string | undefined) !== undefined) rmSync(work, { recursive: true, force: true });
    }, 120_000);

    it("registers (tokens on stdin and in the 0600 registration file, in neither its log nor Gitea's)", () => {
        const reg = runner.registration();
        expect(reg).toMatchObject({ name: RUNNER, labels: [`${LABEL}:host`], address: gitea.url });
        const file = readFileSync(join(runner.dir, ".runner"), "utf8");
        const token = (JSON.parse(file) as { token: string }).token;
        expect(token.length).toBeGreaterThan(20);
        // Gitea answers with its latest active registration token: the one the runner was given.
        const registration = gitea.runnerRegistrationToken();
        expect(runner.log).toContain("declared successfully");
        const logs = [runner.log, ...readdirSync(gitea.logDir).map((f) => readFileSync(join(gitea.logDir, f), "utf8"))];
        for (const log of logs) {
            expect(log).not.toContain(token);
            expect(log).not.toContain(registration);
        }
        const mode = spawnSync("stat", ["-c", "%a", join(runner.dir, ".runner")], { encoding: "utf8" }).stdout.trim();
        expect(mode).toBe("600");
    });

    it("takes the job of a push from Gitea: checkout@v4 from the same Gitea, the daemon's key by fingerprint only", async () => {
        const dir = join(work, "repo");
        writeFileSync(join(dir, "README.md"), "runner probe\n");
        for (const f of ["runner-checkout.yaml", "runner-token-probe.yaml"]) {
            writeFileSync(join(dir, WORKFLOW_DIR, f), readFileSync(join(WORKFLOWS, f)));
        }
        git(["add", "-A"]);
        git(["commit", "-q", "-m", "Workflows for the runner daemon"]);
        const sha = git(["rev-parse", "HEAD"]);
        const t0 = Date.now();
        gitea.push(repo, dir, "HEAD", "main");
        const { run, seen } = await completedRun({ event: "push", sha });
        const job = await onlyJob(run);
        const jobSeconds = (Date.parse(job.completed) - Date.parse(job.started)) / 1000;
        console.log(
            `push → job end: ${((seen - t0) / 1000).toFixed(1)} s (by polling every 0.25 s); ` +
                `job ${jobSeconds} s (Gitea's started_at → completed_at, whole seconds); checkout: ${checkout.source} ${checkout.tag}`,
        );
        expect({ conclusion: run.conclusion, job: job.conclusion, runner: job.runnerName }).toEqual({
            conclusion: "success",
            job: "success",
            runner: RUNNER,
        });
        expect(job.log).toContain(`checked out ${sha}`);
        expect(job.log).toContain(`key fingerprint: ${fingerprint(KEY)}`);
        expect(job.log).not.toContain(KEY);
        expect(runner.log).not.toContain(KEY);
        if (checkout.source === "upstream") expect(job.log).toMatch(/Syncing repository: ops\/runner-probe/);
    });

    it("runs workflow_dispatch from the API: the repository's secret arrives; the job token is gitea-actions and may write issues and comments", async () => {
        const t0 = Date.now();
        const runId = await gitea.dispatchWorkflow(repo, "runner-token-probe.yaml", "main");
        const { run, seen } = await completedRun({ event: "workflow_dispatch" });
        expect(run.id).toBe(runId);
        const job = await onlyJob(run);
        console.log(`dispatch → job end: ${((seen - t0) / 1000).toFixed(1)} s\n${probeLines(job.log)}`);
        expect(job.conclusion).toBe("success");
        expect(job.log).toContain("head repo: none");
        expect(job.log).toContain(`secret fingerprint: ${fingerprint(PROBE_SECRET)}`);
        expect(job.log).toMatch(/token user: 200 login=gitea-actions id=-2/);
        expect(job.log).toMatch(/create issue: 201 by=gitea-actions/);
        expect(job.log).toMatch(/create comment: 201 by=gitea-actions/);
        expect(job.log).toMatch(/edit comment: 200/);
        expect(job.log).toMatch(/edit issue: 201/);
        expect(job.log).toContain("edit another job's comment: none found");
        expect(job.log).not.toContain(PROBE_SECRET);
    });

    it("a pull request from a fork: held for approval; then the fork's own workflow runs without the secret but with the runner's key, and its token may comment and edit other jobs' comments", async () => {
        const contributor = await gitea.createUser("contributor");
        const fork = await gitea.fork(repo, contributor);
        const first = (
            await gitea.apiAs<{ commit: { sha: string } }>(contributor.token, "POST", `/repos/${fork.fullName}/contents/CHANGE.md`, {
                branch: "main",
                new_branch: "change",
                message: "A change",
                content: Buffer.from("a change\n").toString("base64"),
            })
        ).commit.sha;
        const pr = await gitea.apiAs<{ number: number }>(contributor.token, "POST", `/repos/${repo.fullName}/pulls`, {
            head: `${contributor.user}:change`,
            base: "main",
            title: "A change from a fork",
        });
        // A first-time contributor without write access: the run waits for a maintainer's approval (a web UI
        // route only in 1.26: no API). The API's `event` is Gitea's hook event; the job's github.event_name is `pull_request`.
        const deadline = Date.now() + 30_000;
        let held: GiteaActionRun | undefined;
        while (Date.now() < deadline && held === undefined) {
            held = (await gitea.actionRuns(repo)).find((r) => r.event === "pull_request" && r.head_sha === first);
            if (held === undefined) await new Promise((resolve) => setTimeout(resolve, 250));
        }
        expect(held?.status).toBe("waiting");

        // A contributor with write access needs no approval; the PR still comes from a fork. Their next
        // push changes the workflow itself: pull_request runs the workflow of the PR's head.
        await gitea.api("PUT", `/repos/${repo.fullName}/collaborators/${contributor.user}`, { permission: "write" });
        const path = `${WORKFLOW_DIR}/runner-token-probe.yaml`;
        const current = await gitea.apiAs<{ sha: string; content: string }>(
            contributor.token,
            "GET",
            `/repos/${fork.fullName}/contents/${path}?ref=change`,
        );
        const changed = `${Buffer.from(current.content, "base64").toString("utf8")}
      - name: Added by the fork
        run: echo "added by the fork, this step is the fork's"
`;
        const t0 = Date.now();
        const second = (
            await gitea.apiAs<{ commit: { sha: string } }>(contributor.token, "PUT", `/repos/${fork.fullName}/contents/${path}`, {
                branch: "change",
                sha: current.sha,
                message: "Change the workflow",
                content: Buffer.from(changed).toString("base64"),
            })
        ).commit.sha;
        const { run, seen } = await completedRun({ event: "pull_request_sync", sha: second });
        const job = await onlyJob(run);
        console.log(`fork PR #${pr.number} synchronize → job end: ${((seen - t0) / 1000).toFixed(1)} s\n${probeLines(job.log)}`);
        expect(job.conclusion).toBe("success");
        expect(job.log).toContain("event: pull_request ref: refs/pull/");
        expect(job.log).toContain(`checked out ${second}`);
        expect(job.log).toContain(`head repo: ${fork.fullName}`);
        expect(job.log).toContain("added by the fork, this step is the fork's");
        // Secrets are withheld from a fork's PR; the host runner's own environment is not.
        expect(job.log).toContain("secret: none");
        expect(job.log).toContain(`runner key fingerprint: ${fingerprint(KEY)}`);
        // The token's user is the one all job tokens share; on a public repository it may still open
        // issues and comment (as any signed-in reader), and edit what any other job's token wrote.
        expect(job.log).toMatch(/token user: 200 login=gitea-actions id=-2/);
        expect(job.log).toMatch(/create comment: 201 by=gitea-actions/);
        expect(job.log).toMatch(/edit another job's comment: 200/);
        expect(job.log).not.toContain(PROBE_SECRET);
        expect(job.log).not.toContain(KEY);
    });

    // The sandbox's Gitea checks for due schedules every 2 s (Gitea's default: once a minute) and the workflow's cron has
    // minute steps, so the first run starts at the next whole minute: at most about a minute's wait.
    it("starts a `schedule` workflow once it is on the default branch, at the cron's next minute", async () => {
        const dir = join(work, "repo");
        writeFileSync(join(dir, WORKFLOW_DIR, "runner-schedule.yaml"), readFileSync(join(WORKFLOWS, "runner-schedule.yaml")));
        git(["add", "-A"]);
        git(["commit", "-q", "-m", "A scheduled workflow"]);
        const t0 = Date.now();
        gitea.push(repo, dir, "HEAD", "main");
        // A scheduled run keeps the hook event of the push that registered it (`push`); its workflow tells it apart.
        const { run, seen } = await completedRun((r) => r.path.startsWith("runner-schedule.yaml@"), 90_000);
        const job = await onlyJob(run);
        console.log(`push of a schedule → first scheduled job end: ${((seen - t0) / 1000).toFixed(1)} s`);
        expect(job.conclusion).toBe("success");
        expect(job.log).toContain("scheduled: event schedule actor gitea-actions secret present");
        expect(job.log).not.toContain(PROBE_SECRET);
    }, 120_000);
});

/** What the probe printed of a job log (timestamps cut). */
const PROBE_LINE =
    /^(event|head repo|runner key|runner key fingerprint|secret|secret fingerprint|token user|create issue|create comment|edit comment|edit issue|edit another job's comment):|^added by the fork,/;

/** The probe's own lines of a job log. */
function probeLines(log: string): string {
    return log
        .split("\n")
        .map((l) => l.replace(/^\S+Z\s/, ""))
        .filter((l) => PROBE_LINE.test(l))
        .map((l) => `  ${l}`)
        .join("\n");
}
