/**
 * The project's own Forgejo workflows, run for real, and the trust model
 * they rest on (README, "Trust model"): `.forgejo/workflows/preview.yaml` on
 * `pull_request` events and `key-health.yaml` on `workflow_dispatch`, on a
 * host-executor runner labelled `pulumi-runner`, against the sandbox's Gitea
 * (Forgejo's API), with both whole stacks' state in a real S3 bucket
 * (versitygw) and exactly the credentials the README tells operators to
 * give CI:
 * - the backend's read-only key (CI cannot write state),
 * - a Connect token that reads the CI vault only,
 * - indri's read-only kubeconfig (the stack's `ciKubeconfig` output),
 * - for key-health only, ringtail's check key, which the host restricts to
 *   the read-only check; no SSH key for previews at all,
 * - the stacks' passphrase (which decrypts only what CI may hold).
 * A hostile pull request runs its own program in the preview job and tries
 * everything those credentials must not allow; each attempt is asserted,
 * and the runners, the state and the vault are left as they were.
 *
 * The repository in Gitea is this project's working tree with the
 * sandbox's ringtail in Pulumi.ringtail.yaml (host, port, pinned host key,
 * check key), as an operator's fork would hold its real host. The
 * operator's stacks were created and `up`ped from a copy of it with the
 * operator's own credentials (Connect token in the environment, SSH key in
 * an agent, the backend's read-write key).
 *
 * The engine (sandbox/jobs.ts picks it, a printed line says which):
 * - forgejo-runner, when its binary is here: Gitea reads the workflows where
 *   Forgejo does (`.forgejo/workflows`), the secrets and variables are the
 *   repository's, set through Gitea's API, and the real daemon, registered
 *   as `pulumi-runner:host` on this machine, takes each job of a real event:
 *   a pull request opened from a branch, each later run a push to that
 *   branch, a fork's pull request, the hostile pull request, a dispatch of
 *   key-health. `secrets.GITHUB_TOKEN` is then Gitea's job token (user
 *   `gitea-actions`), and `actions/checkout@v4` the upstream action served
 *   by the same Gitea (sandbox/forgejo-runner.ts: installCheckoutAction).
 * - act, without the binary: a synthetic event payload per run, the
 *   secrets from act's environment (GITHUB_TOKEN: the admin's token), and
 *   sandbox/actions/checkout standing in for actions/checkout.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
    appendFileSync,
    chmodSync,
    existsSync,
    mkdtempSync,
    readdirSync,
    readFileSync,
    rmSync,
    symlinkSync,
    writeFileSync,
    copyFileSync,
    mkdirSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";

import { pluginPath, projectStacks, PROVIDER_PLUGINS, setConfig } from "../../automation/job";
import { commentMarker, HEALTH_MARKER } from "../../automation/report";
import { fingerprint } from "../../components/fingerprint";
import { checkCommandPath } from "../../components/ssh/host-scripts";
import { parseReport } from "../../components/ssh/host-report";
import { Cluster, FORWARDING_RUNNER_CONFIG } from "../../sandbox/cluster";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { ForgejoRunner, installCheckoutAction } from "../../sandbox/forgejo-runner";
import { Gitea, stepTimes, type GiteaActionRun, type GiteaRepo } from "../../sandbox/gitea";
import type { Attempt, HostileTargets } from "../../sandbox/hostile-pr";
import { rotateKey, setExpiry } from "../../sandbox/onepassword";
import { daemonOnly, engineLine, jobEngine } from "../../sandbox/jobs";
import {
    copyProjectTree,
    formerNodeModules,
    formerProgram,
    operatorEnv,
    PROBE_REPOSITORY,
    projectStack,
    TOKEN_KEEPING_PROGRAM,
    upgradeProgram,
    type ProjectRun,
} from "../../sandbox/project-stack";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { Ringtail } from "../../sandbox/ringtail";
import { S3Server } from "../../sandbox/s3";
import { recording } from "../../sandbox/stack";
import { findLeaks } from "../support/leaks";
import { decryptedSecrets } from "../support/passphrase";

const ROOT = join(__dirname, "..", "..");

/** The version of @pulumi/<name> in this checkout: the plugin version its SDK asks the engine for. */
const npmVersionOf = (name: string): string =>
    (JSON.parse(readFileSync(join(ROOT, "node_modules", "@pulumi", name, "package.json"), "utf8")) as { version: string }).version;
const TOKEN = "sandbox-connect-token-operator-pr";
const CI_TOKEN = "sandbox-connect-token-ci-read-only";
const WRONG_TOKEN = "not-the-connect-token-5a4b";
const KEY = "zak_pr_preview_8c7b6a5f4e3d2c1b0a9f8e7d";
const ROTATED = "zak_pr_preview_rotated_2b3c4d5e6f7a8b9c";
const HOMELAB_SECRET = "homelab-root-password-7e6d5c4b3a2f1e0d";
const LABEL = "pulumi-runner";
const { engine } = jobEngine();
const daemon = engine === "forgejo-runner";

let emulator: EmulatorProcess;
let host: Ringtail;
let cluster: Cluster;
let gitea: Gitea;
let s3: S3Server;
let registry: Registry;
let repo: GiteaRepo;
let work: string;
let repoDir: string;
let checkKeyFile: string;
let ciKubeconfig: string;
/** The pull request from the branch `preview-me`, opened by the first preview run (0 until then). */
let pr = 0;
/** The head of `preview-me`; each later preview run pushes a new commit on it (a `synchronize` event). */
let previewHead: string;
/** forgejo-runner: the daemon that takes the jobs (label pulumi-runner, host executor, on this machine). */
let pulumiRunner: ForgejoRunner | undefined;
/** forgejo-runner: an outside contributor, their fork and its pull request. */
let outsider: { user: string; token: string };
let fork: GiteaRepo;
let forkPr: number;
let ringtail: ProjectRun;
let indri: ProjectRun;
/** The lines of the upgrade's warning in the operator's `up`s after the upgrade, by stack and round. */
const upgradeWarnings: Record<string, boolean> = {};
/** The runner's plugin directory (read-only copies) and their pins. */
let runnerPlugins: string;
let pluginPins: string;
const logs: string[] = [];
/** Secrets the operator adds later (a third runner's check key), by name. */
const laterSecrets: Record<string, string> = {};
/** The third runner: a second SSH host, its operator stack, its check key. */
let builder: Ringtail | undefined;
let builderRun: ProjectRun | undefined;
let builderKeyFile: string | undefined;
/** Keys the registry made (zot's `zak_…`), for the leak scan. */
const apiKeys: string[] = [];

function git(args: string[], cwd = repoDir): string {
    const r = spawnSync("git", ["-c", "user.name=ops", "-c", "user.email=ops@example.invalid", ...args], { cwd, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${r.stderr}`);
    return r.stdout.trim();
}

/**
 * Commits what `change` writes (in the work tree) on top of main as Gitea
 * has it, pushes it there, and returns to the local branch; the new head.
 * The local main also holds the pull request's change, which main must not
 * get (the pull request's diff, and so preview.yaml's `paths`, would lose it).
 */
async function commitToMain(message: string, change: () => void): Promise<string> {
    const head = (await gitea.api<{ commit: { id: string } }>("GET", `/repos/${repo.fullName}/branches/main`)).commit.id;
    git(["checkout", "-q", "--detach", head]);
    try {
        change();
        git(["add", "-A"]);
        git(["commit", "-q", "-m", message]);
        const sha = git(["rev-parse", "HEAD"]);
        gitea.push(repo, repoDir, sha, "main");
        return sha;
    } finally {
        git(["checkout", "-q", "-f", "main"]);
    }
}

/** A new key of zot-ci, put in 1Password and delivered to both runners (canPush), then revoked at zot. */
async function deliverThenRevoke(): Promise<void> {
    const apiKey = await registry.createApiKey("zot-ci", ROTATED);
    apiKeys.push(apiKey.key);
    await rotateKey(emulator.url, TOKEN, apiKey.key);
    for (const run of [ringtail, indri]) expect((await run.stack.up(recording(run))).outputs["canPush"]?.value).toBe(true);
    await registry.revokeApiKey("zot-ci", ROTATED, apiKey.id);
}

/** What the README tells operators to give CI, as the repository's secrets (by name; act reads the values from its environment). */
function ciSecrets(): Record<string, string> {
    const backend = s3.credentials("ci");
    return {
        GITHUB_TOKEN: gitea.token,
        PULUMI_CONFIG_PASSPHRASE: ringtail.env["PULUMI_CONFIG_PASSPHRASE"] ?? "",
        PULUMI_BACKEND_ACCESS_KEY_ID: backend.accessKeyId,
        PULUMI_BACKEND_SECRET_ACCESS_KEY: backend.secretAccessKey,
        OP_CONNECT_TOKEN: CI_TOKEN,
        INDRI_KUBECONFIG: ciKubeconfig,
        RINGTAIL_CHECK_KEY: readFileSync(checkKeyFile, "utf8"),
        ...laterSecrets,
    };
}

/**
 * The repository's secrets on Gitea: ciSecrets() but GITHUB_TOKEN, which Gitea
 * gives each job itself (the job's token) and refuses as a secret's name.
 */
function repositorySecrets(): Record<string, string> {
    return Object.fromEntries(Object.entries(ciSecrets()).filter(([name]) => name !== "GITHUB_TOKEN"));
}

/** The repository's variables, as preview.yaml and key-health.yaml read them. */
const ciVariables = (): Record<string, string> => ({
    PULUMI_RUNNER_LABEL: LABEL,
    PULUMI_BACKEND_URL: s3.backendUrl,
    OP_CONNECT_HOST: emulator.url,
    PULUMI_PLUGIN_DIR: runnerPlugins,
    PULUMI_PLUGIN_SHA256: pluginPins,
});

/**
 * Who CI's comments and issues are by: the user of the job's token, which the
 * automation asks (`GET /user`) to find its own. forgejo-runner: Gitea's job
 * token, user `gitea-actions`; act: the admin's token the test hands it.
 */
const ciUser = (): string => (daemon ? "gitea-actions" : gitea.user);

/** The runner machine's own network trust (CA bundles, proxies), which npm needs to reach its registry; no credential. */
function machineTrust(): Record<string, string> {
    const names = /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|GIT_SSL_CAINFO|CURL_CA_BUNDLE|(HTTPS?|NO)_PROXY|(https?|no)_proxy)$/;
    return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => names.test(e[0]) && e[1] !== undefined));
}

/**
 * The job homes (prepareJobHome) anywhere under the temp directory, where
 * the runner's (and act's) per-job directories are: the kubeconfig and the
 * check key must not outlive a job.
 */
const jobHomes = (): string[] =>
    spawnSync("find", [tmpdir(), "-maxdepth", "8", "-type", "d", "-name", "cra-home-*"], { encoding: "utf8" })
        .stdout.split("\n")
        .filter((d) => d !== "");

interface WorkflowOptions {
    /** Secrets that differ from ciSecrets() for this run (forgejo-runner: set on the repository for it, then restored). */
    secrets?: Record<string, string>;
    /** A pull request other than `pr` (it was just opened: its event is already made). */
    pullRequest?: number;
    /** act only: the event's head branch and repository. */
    head?: { ref: string; repo: string };
}

/** Opens the pull request from `preview-me` if it is not open yet. */
async function ensurePr(): Promise<void> {
    if (pr === 0) pr = await gitea.openPullRequest(repo, "preview-me", "main", "A change under review");
}

/** Runs one of the project's workflows for this repository, on the engine jobEngine() picked. */
async function workflow(file: "preview.yaml" | "key-health.yaml", opts: WorkflowOptions = {}): Promise<{ code: number; log: string }> {
    return daemon ? daemonWorkflow(file, opts) : actWorkflow(file, opts);
}

/**
 * forgejo-runner: makes the workflow's event and waits for the run Gitea
 * gives the daemon. preview.yaml: the pull request opened (first run), or a
 * new commit pushed to its branch (`synchronize`), or the run of a pull
 * request just opened (`opts.pullRequest`); key-health.yaml: a dispatch
 * through the API. The log is every job's log as Gitea keeps it.
 */
async function daemonWorkflow(file: "preview.yaml" | "key-health.yaml", opts: WorkflowOptions): Promise<{ code: number; log: string }> {
    const restore = Object.fromEntries(Object.keys(opts.secrets ?? {}).map((name) => [name, repositorySecrets()[name] ?? ""]));
    for (const [name, value] of Object.entries(opts.secrets ?? {})) await gitea.setActionsSecret(repo, name, value);
    try {
        const t0 = Date.now();
        let match: (run: GiteaActionRun) => boolean;
        let event: string;
        if (file === "key-health.yaml") {
            const id = await gitea.dispatchWorkflow(repo, file, "main");
            match = (r) => r.id === id;
            event = "workflow_dispatch through the API";
        } else {
            let sha: string;
            if (opts.pullRequest !== undefined) {
                sha = (await gitea.api<{ head: { sha: string } }>("GET", `/repos/${repo.fullName}/pulls/${opts.pullRequest}`)).head.sha;
                event = `pull request #${opts.pullRequest} opened`;
            } else if (pr === 0) {
                await ensurePr();
                sha = previewHead;
                event = `pull request #${pr} opened`;
            } else {
                // A new commit on the PR's branch: Gitea's `synchronize`.
                previewHead = git(["commit-tree", `${previewHead}^{tree}`, "-p", previewHead, "-m", "Another look, please"]);
                gitea.push(repo, repoDir, previewHead, "preview-me");
                sha = previewHead;
                event = `push to the branch of pull request #${pr}`;
            }
            match = (r) => r.path.startsWith(`${file}@`) && r.head_sha === sha;
        }
        const { run, seen } = await gitea.completedRun(repo, match, {
            timeoutMs: 600_000,
            describe: () => `; runner log:\n${pulumiRunner?.log.slice(-3000) ?? ""}`,
        });
        const jobs = await gitea.runJobsWithLogs(repo, run.id);
        console.log(
            `${file} on forgejo-runner, ${event}: ${run.conclusion ?? run.status} in ${((seen - t0) / 1000).toFixed(1)} s from the event to the finished run ` +
                `(${jobs.map((j) => `${j.name}: ${j.conclusion}${j.conclusion === "skipped" ? "" : `; steps: ${stepTimes(j)}`}`).join(", ")})`,
        );
        const log = jobs.map((j) => `--- job ${j.name}: ${j.conclusion}\n${j.log}`).join("\n");
        logs.push(log);
        return { code: run.conclusion === "success" ? 0 : 1, log };
    } finally {
        for (const [name, value] of Object.entries(restore)) await gitea.setActionsSecret(repo, name, value);
    }
}

/**
 * act: runs one of the project's workflows as the runner would for this
 * repository, from a synthetic event: the job's process gets PATH, a HOME of
 * its own, the runner's PULUMI_HOME and the secrets above, nothing of this
 * test's environment.
 */
async function actWorkflow(file: "preview.yaml" | "key-health.yaml", opts: WorkflowOptions): Promise<{ code: number; log: string }> {
    await ensurePr();
    const event = join(work, "event.json");
    const isPr = file === "preview.yaml";
    const head = opts.head ?? { ref: "preview-me", repo: repo.fullName };
    const number = opts.pullRequest ?? pr;
    writeFileSync(
        event,
        JSON.stringify(
            isPr
                ? {
                      action: "synchronize",
                      number,
                      pull_request: { number, head: { ref: head.ref, repo: { full_name: head.repo } }, base: { ref: "main" } },
                      repository: { full_name: repo.fullName, default_branch: "main" },
                  }
                : { inputs: {}, repository: { full_name: repo.fullName, default_branch: "main" } },
        ),
    );
    const secrets = { ...ciSecrets(), ...opts.secrets };
    const home = mkdtempSync(join(tmpdir(), "cra-act-home-"));
    const args = [
        isPr ? "pull_request" : "workflow_dispatch",
        ...["-W", join(repoDir, ".forgejo", "workflows", file), "-e", event, "--no-cache-server"],
        ...["-P", `${LABEL}=-self-hosted`],
        ...Object.entries(ciVariables()).flatMap(([name, value]) => ["--var", `${name}=${value}`]),
        ...Object.keys(secrets).flatMap((name) => ["-s", name]),
        // What forgejo-runner sets and act does not; github.repository from the origin remote on this instance.
        ...["--env", `FORGEJO_SERVER_URL=${gitea.url}`, "--env", `FORGEJO_REPOSITORY=${repo.fullName}`],
        ...["--github-instance", new URL(gitea.url).host],
        ...["--local-repository", `actions/checkout@v4=${join(ROOT, "sandbox", "actions", "checkout")}`],
    ];
    const act = join(process.env["CI_REGISTRY_AUTH_SANDBOX"] ?? "", "bin", "act");
    const r = spawnSync(act, args, {
        cwd: repoDir,
        encoding: "utf8",
        timeout: 600_000,
        env: {
            ...machineTrust(),
            PATH: process.env["PATH"] ?? "/usr/bin:/bin",
            HOME: home,
            PULUMI_HOME: join(work, "runner-pulumi-home"),
            ...secrets,
        },
    });
    rmSync(home, { recursive: true, force: true });
    const log = r.stdout + r.stderr;
    logs.push(log);
    return { code: r.status ?? -1, log };
}

type Comment = { id: number; body: string; user: { login: string } };
const comments = (index = pr) => gitea.api<Comment[]>("GET", `/repos/${repo.fullName}/issues/${index}/comments`);
const mine = async (stack: string, index = pr) =>
    (await comments(index)).filter((c) => c.body.includes(commentMarker(stack)) && c.user.login === ciUser());
const healthIssues = async () =>
    (
        await gitea.api<{ number: number; state: string; body: string; user: { login: string } }[]>(
            "GET",
            `/repos/${repo.fullName}/issues?state=all&type=issues`,
        )
    ).filter((i) => i.body.includes(HEALTH_MARKER));

/** The check key on ringtail, as key-health uses it: whatever it asks, and how the session ends. */
function sshWithCheckKey(extra: string[], command?: string): { code: number; stdout: string; stderr: string } {
    const r = spawnSync(
        "ssh",
        [
            ...["-o", `UserKnownHostsFile=${host.knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"],
            ...["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "ConnectTimeout=10", "-i", checkKeyFile],
            ...extra,
            `root@${host.facts.host}`,
            ...(command !== undefined ? [command] : []),
        ],
        { encoding: "utf8", timeout: 60_000 },
    );
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** What must not change while CI runs: the runners, the vault and the state. */
async function untouched(): Promise<Record<string, unknown>> {
    const d = cluster.get<{ metadata: { generation: number; resourceVersion: string } }>("deployment", "forgejo-runner", "forgejo-runner");
    const secret = cluster.get<{ metadata: { resourceVersion: string } }>("secret", "zot-ci-api-key", "forgejo-runner");
    const pid = host.ssh(`systemctl show -p MainPID --value ${host.facts.unit}`).stdout.trim();
    const listing = await s3.request("operator", "GET", `/${S3Server.bucket}`, { query: { "list-type": "2" } });
    const objects = [...listing.body.matchAll(/<Key>([^<]*)<\/Key>[\s\S]*?<ETag>([^<]*)<\/ETag>/g)].map(
        (m) => `${m[1] ?? ""} ${m[2] ?? ""}`,
    );
    const item = await fetch(`${emulator.url}/v1/vaults?filter=${encodeURIComponent('title eq "blumeops"')}`, {
        headers: { Authorization: `Bearer ${TOKEN}` },
    })
        .then((r) => r.json() as Promise<{ contentVersion: number }[]>)
        .then((v) => v[0]?.contentVersion);
    return {
        deployment: [d?.metadata.generation, d?.metadata.resourceVersion],
        secret: secret?.metadata.resourceVersion,
        ringtail: host.check("ZOT_CI_API_KEY"),
        mainPid: pid,
        state: objects,
        vault: item,
    };
}

beforeAll(async () => {
    emulator = await spawnEmulator({
        token: TOKEN,
        key: KEY,
        expires: new Date(Date.now() + 80 * 86_400_000),
        // CI's token reads the CI vault only, and cannot write it.
        tokens: [{ token: CI_TOKEN, vaults: ["blumeops"], write: false }],
        otherVaults: [{ name: "homelab", items: [{ title: "root-password", credential: HOMELAB_SECRET }] }],
    });
    host = Ringtail.start();
    cluster = Cluster.start();
    cluster.applyIndriWorld({ connectUrl: emulator.url, connectToken: TOKEN, runnerConfig: FORWARDING_RUNNER_CONFIG });
    console.log(engineLine("PR preview and key-health"));
    gitea = await Gitea.start(13000, { actions: daemon });
    // CI's backend key reads the current checkpoint of each stack of the project, nothing more.
    s3 = await S3Server.start(17070, { project: "ci-registry-auth" });
    work = mkdtempSync(join(tmpdir(), "cra-pr-"));
    registry = await startRegistry(join(work, "registry"), "127.0.0.1", 5004, "zot-ci", KEY);

    // key-health's key: its public half in the stack file, restricted on the host to the installed check.
    checkKeyFile = join(work, "check-key");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ci-registry-auth-check", "-f", checkKeyFile]);
    const checkKey = readFileSync(`${checkKeyFile}.pub`, "utf8").trim();
    host.authorize(`restrict,command="${checkCommandPath(host.facts.envFile)}" ${checkKey}`);

    // The operator's repository: this project, with the sandbox's ringtail pinned in its stack file.
    repoDir = join(work, "repo");
    copyProjectTree(repoDir);
    const stackFile = join(repoDir, "Pulumi.ringtail.yaml");
    const stackDoc = parseDocument(readFileSync(stackFile, "utf8"));
    for (const [key, value] of Object.entries({ host: host.facts.host, port: host.facts.port, hostKey: host.facts.hostKey, checkKey })) {
        stackDoc.setIn(["config", "ci-registry-auth:runner", key], value);
    }
    writeFileSync(stackFile, stackDoc.toString());
    // Both stacks probe the sandbox's registry (committed, as an operator commits registry.url).
    for (const stack of ["ringtail", "indri"]) {
        appendFileSync(
            join(repoDir, `Pulumi.${stack}.yaml`),
            `  ci-registry-auth:registry:\n    url: ${registry.url}\n    repository: ${PROBE_REPOSITORY}\n`,
        );
    }
    git(["init", "-q", "-b", "main"]);
    // Where act takes github.repository from, as Forgejo knows the repository.
    git(["remote", "add", "origin", `${gitea.url}/${gitea.user}/ci-registry-auth.git`]);
    git(["add", "-A"]);
    git(["commit", "-q", "-m", "ci-registry-auth with the sandbox's ringtail"]);
    repo = await gitea.createRepo("ci-registry-auth");
    gitea.push(repo, repoDir, "HEAD", "main");
    // A change preview.yaml's `paths` select (Gitea honours them; act does not read them).
    appendFileSync(join(repoDir, "index.ts"), "// A change under review.\n");
    git(["commit", "-q", "-am", "A change under review"]);
    previewHead = git(["rev-parse", "HEAD"]);
    gitea.push(repo, repoDir, previewHead, "preview-me");
    // The default branch as the README requires it: only the operator pushes, a merge needs an approving review.
    await gitea.api("POST", `/repos/${repo.fullName}/branch_protections`, {
        rule_name: "main",
        enable_push: true,
        enable_push_whitelist: true,
        push_whitelist_usernames: [gitea.user],
        required_approvals: 1,
        dismiss_stale_approvals: true,
        block_on_rejected_reviews: true,
    });

    // The operator's stacks, as a real install has them: made by the last version that kept the
    // Connect token in its state (854cf40, the token only in the environment), state in the bucket,
    // the operator's own credentials; then upgraded to this program from the repository's files.
    const former = formerProgram(TOKEN_KEEPING_PROGRAM);
    const where = { from: former, nodeModules: formerNodeModules(former), backendUrl: s3.backendUrl, backend: s3.dir };
    const connect = { "onepassword:url": { value: emulator.url } };
    ringtail = await projectStack(
        "ringtail",
        {
            ...connect,
            "ci-registry-auth:runner.host": { value: host.facts.host },
            "ci-registry-auth:runner.port": { value: String(host.facts.port) },
            "ci-registry-auth:runner.hostKey": { value: host.facts.hostKey },
        },
        { ...operatorEnv(TOKEN, await host.agent()), ...s3.env("operator") },
        where,
    );
    // The operator's kubeconfig where kubectl and the provider look by default (README).
    const operatorHome = join(work, "operator-home");
    mkdirSync(join(operatorHome, ".kube"), { recursive: true });
    copyFileSync(cluster.kubeconfig, join(operatorHome, ".kube", "config"));
    indri = await projectStack("indri", connect, { ...operatorEnv(TOKEN), ...s3.env("operator"), HOME: operatorHome }, where);
    for (const run of [ringtail, indri]) {
        const up = await run.stack.up(recording(run));
        expect(up.outputs["hasKey"]?.value).toBe(true);
    }
    rmSync(former, { recursive: true, force: true });
    for (const run of [ringtail, indri]) {
        upgradeProgram(run, repoDir, true);
        setConfig(run.project, run.stack.name, "onepassword:url", emulator.url, false, run.env);
        for (const round of ["first", "second"] as const) {
            const up = await run.stack.up(recording(run));
            expect(up.outputs["hasKey"]?.value).toBe(true);
            upgradeWarnings[`${run.stack.name} ${round}`] = up.stdout.includes(
                `state: stack ${run.stack.name} was last deployed by a version`,
            );
        }
    }
    ciKubeconfig = String((await indri.stack.outputs())["ciKubeconfig"]?.value ?? "");
    expect(ciKubeconfig).toContain("ci-registry-auth-ci");

    // The runner's plugins, checked once and pinned (README, "CI and trust"): copies that jobs only
    // read, and the pins as the repository variable PULUMI_PLUGIN_SHA256.
    runnerPlugins = join(work, "runner-plugins");
    const pins: string[] = [];
    for (const name of PROVIDER_PLUGINS) {
        const version = (
            JSON.parse(readFileSync(join(ROOT, "node_modules", "@pulumi", name, "package.json"), "utf8")) as { version: string }
        ).version;
        const rel = pluginPath(name, version);
        mkdirSync(dirname(join(runnerPlugins, rel)), { recursive: true });
        copyFileSync(join(ringtail.env["PULUMI_HOME"] ?? "", "plugins", rel), join(runnerPlugins, rel));
        chmodSync(join(runnerPlugins, rel), 0o555);
        pins.push(
            `${createHash("sha256")
                .update(readFileSync(join(runnerPlugins, rel)))
                .digest("hex")}  ${rel}`,
        );
        // The runner user's own PULUMI_HOME, where a `pulumi plugin install` on the runner would have put them.
        mkdirSync(dirname(join(work, "runner-pulumi-home", "plugins", rel)), { recursive: true });
        symlinkSync(join(runnerPlugins, rel), join(work, "runner-pulumi-home", "plugins", rel));
    }
    pluginPins = `${pins.join("\n")}\n`;

    if (daemon) {
        // What the operator sets up once in Forgejo: the repository's secrets and variables, a runner for pulumi.
        for (const [name, value] of Object.entries(repositorySecrets())) await gitea.setActionsSecret(repo, name, value);
        for (const [name, value] of Object.entries(ciVariables())) await gitea.setVariable(repo, name, value);
        const checkout = await installCheckoutAction(gitea);
        console.log(
            `actions/checkout in Gitea: ${checkout.source} ${checkout.tag} (${checkout.commit.slice(0, 12)}) from ${checkout.from}`,
        );
        pulumiRunner = new ForgejoRunner();
        pulumiRunner.register(gitea, { name: "pulumi-runner", labels: [`${LABEL}:host`] });
        // The runner machine's environment: node, npm and pulumi on PATH, pulumi's plugins, its network trust; no credential.
        await pulumiRunner.start({
            config: ["runner:", "  capacity: 1", "cache:", "  enabled: false", ""].join("\n"),
            env: { ...machineTrust(), PATH: process.env["PATH"] ?? "/usr/bin:/bin", PULUMI_HOME: join(work, "runner-pulumi-home") },
        });
    }
}, 900_000);

afterAll(async () => {
    await pulumiRunner?.stop();
    pulumiRunner?.remove();
    for (const r of [ringtail, indri, builderRun] as (ProjectRun | undefined)[]) r?.dispose();
    builder?.stop();
    await (gitea as Gitea | undefined)?.stop();
    await (s3 as S3Server | undefined)?.stop();
    await (registry as Registry | undefined)?.stop();
    (cluster as Cluster | undefined)?.stop();
    (host as Ringtail | undefined)?.stop();
    await (emulator as EmulatorProcess | undefined)?.stop();
    (cluster as Cluster | undefined)?.remove();
    (gitea as Gitea | undefined)?.remove();
    (s3 as S3Server | undefined)?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

/** Every object of the state bucket, by name, as versitygw stores them (files under its POSIX root). */
function bucketObjects(): Map<string, string> {
    const root = join(s3.dir, "data", S3Server.bucket);
    const objects = new Map<string, string>();
    const walk = (dir: string): void => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
            const path = join(dir, entry.name);
            if (entry.isDirectory()) walk(path);
            else objects.set(path.slice(root.length + 1), readFileSync(path, "utf8"));
        }
    };
    walk(root);
    return objects;
}

describe("the upgrade from the last version that kept the Connect token", () => {
    it("warned in the first up after it, for each stack, and not in the next", () => {
        expect(upgradeWarnings).toEqual({ "ringtail first": true, "ringtail second": false, "indri first": true, "indri second": false });
    });

    it("left the token in the backend's history, a secret the stacks' passphrase (CI's too) decrypts; the current checkpoints hold none", () => {
        const passphrase = ringtail.env["PULUMI_CONFIG_PASSPHRASE"] ?? "";
        const holds = (text: string): boolean => text.includes(TOKEN) || decryptedSecrets(text, passphrase).some((s) => s.includes(TOKEN));
        const objects = bucketObjects();
        const holding = [...objects].filter(([, text]) => holds(text)).map(([key]) => key);
        expect(holding.length).toBeGreaterThan(0);
        for (const key of holding) expect(key).toMatch(/^\.pulumi\/(history|backups)\/|\.bak$/);
        for (const stack of projectStacks(ROOT))
            expect(holds(objects.get(`.pulumi/stacks/ci-registry-auth/${stack}.json`) ?? "")).toBe(false);
        console.log(
            `the former version's Connect token is in ${holding.length} of the bucket's ${objects.size} objects, all history, backups or .bak`,
        );
    });
});

describe("what the operator's up left for CI", () => {
    it("ringtail reports key-health's key as restricted to the installed check", async () => {
        const delivered = (await ringtail.stack.outputs())["delivered"]?.value as Record<string, unknown>;
        expect(delivered["checkKey"]).toBe("restricted");
    });

    it("the stacks' secrets, decrypted with CI's passphrase and read-only backend key, hold no SSH private key and no Connect token", () => {
        for (const stack of ["ringtail", "indri"]) {
            const r = spawnSync("pulumi", ["stack", "export", "--show-secrets", "--stack", stack], {
                cwd: ringtail.project,
                env: { ...process.env, ...ringtail.env, ...s3.env("ci") },
                encoding: "utf8",
            });
            expect(r.status, r.stderr).toBe(0);
            expect(r.stdout).toContain("ci-registry-auth");
            expect(r.stdout).not.toMatch(/PRIVATE KEY/);
            expect(findLeaks({ [`${stack} export`]: r.stdout }, { TOKEN, CI_TOKEN })).toEqual([]);
        }
    });
});

describe("preview.yaml on a pull request", () => {
    const first: Record<string, number> = {};

    it("posts one comment per stack: the fingerprint in 1Password, what each runner was last given, no changes, expiry; no job home is left", async () => {
        const homes = jobHomes();
        const r = await workflow("preview.yaml");
        expect(r.code, r.log).toBe(0);
        expect(jobHomes()).toEqual(homes);
        const fp = fingerprint(KEY);
        for (const stack of ["indri", "ringtail"]) {
            const found = await mine(stack);
            expect(found).toHaveLength(1);
            const body = found[0]!.body;
            expect(body).toContain(`### ci-registry-auth · \`${stack}\``);
            // No SSH key (ringtail), a read-only identity (indri): no diff for either.
            expect(body).toContain("**No changes.**");
            expect(body).toContain(`- Key in 1Password now: \`${fp}\``);
            expect(body).toMatch(
                stack === "indri"
                    ? /secretFingerprint `sha256:\w+`, templateFingerprint/
                    : /fileFingerprint `sha256:\w+`, processFingerprint/,
            );
            expect(body).toMatch(new RegExp(`- Last delivered: \\w+ \`${fp}\`, \\w+ \`${fp}\``));
            expect(body).not.toContain("Rotation pending");
            expect(body).toMatch(/- Expiry: (79|80) day\(s\) left/);
            // Said as read: indri's runner live by the preview; ringtail's (no check key in a preview) as of the last up, with its time.
            expect(body).toMatch(
                stack === "indri"
                    ? /- hasKey read from the runner by this preview, 20\d\d-[^:]+:\d\d:\d\d\.\d{3}Z: true; at the last `up`: true/
                    : /- hasKey as of the last `up` \(20\d\d-[^)]+\), not read now: the job holds no check key \(secret RINGTAIL_CHECK_KEY\): true/,
            );
            expect(body).toContain(`[The run](${gitea.url}/${repo.fullName}/actions/runs/`);
            first[stack] = found[0]!.id;
        }
    });

    it("a second run edits the same comments; a comment with the marker by someone else is never touched", async () => {
        const mallory = await gitea.createUser("mallory");
        const planted = await fetch(`${gitea.url}/api/v1/repos/${repo.fullName}/issues/${pr}/comments`, {
            method: "POST",
            headers: { Authorization: `token ${mallory.token}`, "Content-Type": "application/json" },
            body: JSON.stringify({ body: `${commentMarker("indri")}\nplanted` }),
        }).then((res) => res.json() as Promise<{ id: number }>);
        const r = await workflow("preview.yaml");
        expect(r.code, r.log).toBe(0);
        for (const stack of ["indri", "ringtail"]) {
            expect((await mine(stack)).map((c) => c.id)).toEqual([first[stack]]);
        }
        const after = (await comments()).find((c) => c.id === planted.id);
        expect(after?.body).toBe(`${commentMarker("indri")}\nplanted`);
    });

    it("after a rotation in 1Password, each comment says rotation pending and names its stack (the read-only identity's dry runs fall back to the inputs)", async () => {
        const before = await untouched();
        await rotateKey(emulator.url, TOKEN, ROTATED);
        registry.setKey(ROTATED);
        const r = await workflow("preview.yaml");
        expect(r.code, r.log).toBe(0);
        for (const stack of ["indri", "ringtail"]) {
            const body = (await mine(stack))[0]!.body;
            expect(body).toContain(`- Key in 1Password now: \`${fingerprint(ROTATED)}\``);
            expect(body).toContain(`**Rotation pending: run \`pulumi up --stack ${stack}\`**`);
            expect(body).toMatch(/\*\*Changes:\*\* \d+ to (update|replace|create)/);
        }
        const after = await untouched();
        expect({ ...after, vault: undefined }).toEqual({ ...before, vault: undefined });
    });

    it("a wrong Connect token: the comment carries the error naming OP_CONNECT_TOKEN, and the job fails", async () => {
        const r = await workflow("preview.yaml", { secrets: { OP_CONNECT_TOKEN: WRONG_TOKEN } });
        expect(r.code).not.toBe(0);
        const body = (await mine("ringtail"))[0]!.body;
        expect(body).toContain("**`pulumi preview` failed.**");
        expect(body).toMatch(/Connect answered 401[\s\S]*OP_CONNECT_TOKEN/);
        expect(await mine("ringtail")).toHaveLength(1);
    });

    it(
        daemon
            ? "a pull request from a real fork: Gitea holds a first-time outsider's run for approval; once approved, the preview job is skipped and a job says why; no comment is made"
            : "a pull request from a fork (act: a synthetic event): the preview job is skipped and a job says why; no comment is made",
        async () => {
            const before = (await comments()).length;
            if (!daemon) {
                const r = await workflow("preview.yaml", { head: { ref: "preview-me", repo: "mallory/ci-registry-auth" } });
                expect(r.code, r.log).toBe(0);
                expect(r.log).toContain("Not previewing: this pull request's branch is in mallory/ci-registry-auth, a fork.");
                expect(r.log).not.toMatch(/Preview .* and comment on the PR/);
                expect(await comments()).toHaveLength(before);
                return;
            }
            outsider = await gitea.createUser("outsider");
            fork = await gitea.fork(repo, outsider);
            // A change in a path preview.yaml watches, on a branch of the fork.
            const change = await gitea.apiAs<{ commit: { sha: string } }>(
                outsider.token,
                "POST",
                `/repos/${fork.fullName}/contents/components/NOTE.md`,
                {
                    branch: "main",
                    new_branch: "outside-change",
                    message: "A change from outside",
                    content: Buffer.from("a change from outside\n").toString("base64"),
                },
            );
            const t0 = Date.now();
            forkPr = (
                await gitea.apiAs<{ number: number }>(outsider.token, "POST", `/repos/${repo.fullName}/pulls`, {
                    head: `${outsider.user}:outside-change`,
                    base: "main",
                    title: "A change from outside",
                })
            ).number;
            const deadline = Date.now() + 30_000;
            let held: GiteaActionRun | undefined;
            while (held === undefined && Date.now() < deadline) {
                held = (await gitea.actionRuns(repo)).find((r) => r.head_sha === change.commit.sha);
                if (held === undefined) await new Promise((resolve) => setTimeout(resolve, 250));
            }
            expect(held?.status).toBe("waiting");
            await gitea.approveRun(repo, held!.id);
            const { run, seen } = await gitea.completedRun(repo, (r) => r.id === held!.id, { timeoutMs: 120_000 });
            const jobs = await gitea.runJobsWithLogs(repo, run.id);
            console.log(
                `preview.yaml on forgejo-runner, fork pull request #${forkPr} opened and approved: ${run.conclusion ?? run.status} in ` +
                    `${((seen - t0) / 1000).toFixed(1)} s from the event (${jobs.map((j) => `${j.name}: ${j.conclusion}`).join(", ")})`,
            );
            const log = jobs.map((j) => j.log).join("\n");
            logs.push(log);
            expect(run.conclusion).toBe("success");
            expect(Object.fromEntries(jobs.map((j) => [j.name, j.conclusion]))).toEqual({ fork: "success", preview: "skipped" });
            expect(log).toContain(`Not previewing: this pull request's branch is in ${fork.fullName}, a fork.`);
            expect(log).not.toMatch(/Preview .* and comment on the PR/);
            expect(await comments(forkPr)).toEqual([]);
            expect(await comments()).toHaveLength(before);
        },
    );

    const forkProbe = daemonOnly(
        "Gitea gives a fork's pull request no secrets: a fork that replaces preview.yaml with its own job gets each secret empty, only the job's own token",
    );
    /**
     * The fork's author puts `fixture` in place of the fork PR's preview.yaml
     * (pull_request runs the workflow of the PR's head: the fork's author
     * decides what runs); once approved, its runs no longer wait.
     */
    async function forkRuns(fixture: string): Promise<{ conclusion: string; log: string }> {
        const path = ".forgejo/workflows/preview.yaml";
        const current = await gitea.apiAs<{ sha: string }>(
            outsider.token,
            "GET",
            `/repos/${fork.fullName}/contents/${path}?ref=outside-change`,
        );
        const t0 = Date.now();
        const pushed = await gitea.apiAs<{ commit: { sha: string } }>(outsider.token, "PUT", `/repos/${fork.fullName}/contents/${path}`, {
            branch: "outside-change",
            sha: current.sha,
            message: `Our own preview: ${fixture}`,
            content: readFileSync(join(ROOT, "test", "fixtures", "workflows", fixture)).toString("base64"),
        });
        const { run, seen } = await gitea.completedRun(repo, (r) => r.head_sha === pushed.commit.sha, { timeoutMs: 120_000 });
        const jobs = await gitea.runJobsWithLogs(repo, run.id);
        const log = jobs.map((j) => j.log).join("\n");
        logs.push(log);
        console.log(
            `fork's own preview.yaml (${fixture}), push to fork PR #${forkPr}: ${run.conclusion ?? run.status} in ${((seen - t0) / 1000).toFixed(1)} s`,
        );
        return { conclusion: run.conclusion ?? run.status, log };
    }

    it.skipIf(forkProbe.skip)(forkProbe.name, async () => {
        const { conclusion, log } = await forkRuns("fork-secrets-probe.yaml");
        expect(conclusion).toBe("success");
        expect(log).toContain("secret GITHUB_TOKEN_SECRET: given");
        for (const name of Object.keys(repositorySecrets())) expect(log).toContain(`secret ${name}: empty`);
        expect(log).not.toMatch(/secret (?!GITHUB_TOKEN_SECRET)\w+: given/);
    });

    const forkPlants = daemonOnly(
        "what a fork's job plants on the shared runner never runs in the next preview: a plugin in the runner's PULUMI_HOME, a poisoned npm cache entry",
    );
    it.skipIf(forkPlants.skip)(forkPlants.name, async () => {
        const markers = "/tmp/cra-fork-markers";
        rmSync(markers, { recursive: true, force: true });
        const planted = await forkRuns("fork-plants.yaml");
        expect(planted.conclusion, planted.log.slice(-3000)).toBe("success");
        expect(planted.log).toContain(`planted ${PROVIDER_PLUGINS.length} plugin(s) in ${join(work, "runner-pulumi-home")}/plugins`);
        expect(planted.log).toMatch(/poisoned \S*yaml\/-\/yaml-[0-9.]+\.tgz in /);
        // The plants are in place, and nothing ran them yet.
        const plugin = join(work, "runner-pulumi-home", "plugins", pluginPath("kubernetes", npmVersionOf("kubernetes")));
        expect(readFileSync(plugin, "utf8")).toContain(`${markers}/plugin-ran-`);
        expect(readdirSync(markers)).toEqual([]);

        // The next preview, of the repository's own branch, with every secret.
        const r = await workflow("preview.yaml");
        expect(r.code, r.log.slice(-3000)).toBe(0);
        expect(r.log).toContain(
            `Provider plugins checked and installed for this job: ${PROVIDER_PLUGINS.map((n) => `resource-${n}-v${npmVersionOf(n)}`).join(", ")}`,
        );
        // npm refused the poisoned entry (its bytes are not the lockfile's) and fetched yaml again: by itself
        // (seen 2026-12-07: "seems to be corrupted. Trying again."), or after the install failed and the
        // workflow verified the cache. Neither the planted plugin nor the poisoned package ran.
        expect(r.log).toMatch(
            /npm ci failed: verifying the runner's npm cache|tarball data for yaml@[0-9.]+ \(sha512-\S+\) seems to be corrupted\. Trying again\./,
        );
        expect(readdirSync(markers)).toEqual([]);
        // And the preview did its work: each comment edited by this run.
        for (const stack of ["indri", "ringtail"]) expect((await mine(stack))[0]?.body).toContain(`[The run](${gitea.url}/`);
    });

    const killed = daemonOnly(
        "a preview killed mid-run leaves no job HOME, kubeconfig or key behind: the runner removes its per-job directory",
    );
    it.skipIf(killed.skip)(killed.name, async () => {
        previewHead = git(["commit-tree", `${previewHead}^{tree}`, "-p", previewHead, "-m", "Look again, then stop"]);
        gitea.push(repo, repoDir, previewHead, "preview-me");
        // Wait until the preview step has laid out its HOME (the kubeconfig is in it), then kill it as a timeout would.
        const deadline = Date.now() + 300_000;
        let homes: string[] = [];
        while (homes.length === 0 && Date.now() < deadline) {
            homes = jobHomes().filter((d) => d.startsWith(pulumiRunner?.dir ?? "/nonexistent") && existsSync(join(d, ".kube", "config")));
            if (homes.length === 0) await new Promise((resolve) => setTimeout(resolve, 200));
        }
        expect(homes).toHaveLength(1);
        const step = spawnSync("pgrep", ["-f", "automation/pr-preview.ts"], { encoding: "utf8" })
            .stdout.trim()
            .split("\n")
            .filter((p) => p !== "");
        expect(step.length).toBeGreaterThan(0);
        // As the runner ends a cancelled or timed-out step: SIGKILL to the step's process group, no grace.
        for (const pid of step) {
            const group = Number(spawnSync("ps", ["-o", "pgid=", "-p", pid], { encoding: "utf8" }).stdout.trim());
            if (group > 0) process.kill(-group, "SIGKILL");
        }
        const { run } = await gitea.completedRun(repo, (r) => r.path.startsWith("preview.yaml@") && r.head_sha === previewHead, {
            timeoutMs: 300_000,
        });
        expect(run.conclusion).toBe("failure");
        // The runner removes the job's directory once the job ended; a provider the killed step started may
        // outlive it for seconds (it stops when it finds its engine gone).
        const t0 = Date.now();
        while (jobHomes().length > 0 && Date.now() - t0 < 60_000) await new Promise((resolve) => setTimeout(resolve, 500));
        console.log(`killed preview: its job HOME was gone ${((Date.now() - t0) / 1000).toFixed(1)} s after the run was seen failed`);
        expect(jobHomes()).toEqual([]);
        // Nothing of the CI identity's kubeconfig or the check key is anywhere in the runner's directory.
        const token = /token: (\S+)/.exec(ciKubeconfig)?.[1] ?? "";
        expect(token).not.toBe("");
        const found = spawnSync("grep", ["-rlF", "--", token, pulumiRunner?.dir ?? ""], { encoding: "utf8" }).stdout.trim();
        expect(found).toBe("");
    });
});

describe("the check key on ringtail", () => {
    it("runs the check whatever it asks: no shell, no other command", () => {
        const asked = sshWithCheckKey(["-T"], "id; cat /etc/shadow");
        expect(asked.code).toBe(0);
        expect(asked.stdout).not.toMatch(/uid=|root:/);
        expect(parseReport(asked.stdout)).toMatchObject({ file: "present", unit_active: "active" });
        // No command at all (what a login shell asks for) still runs the check.
        expect(parseReport(sshWithCheckKey([]).stdout)["file"]).toBe("present");
        // A terminal is refused (`restrict`), and the client gives up.
        const shell = sshWithCheckKey(["-tt"]);
        expect(shell.code).toBe(255);
        expect(shell.stderr).toMatch(/PTY allocation request failed/);
        expect(shell.stdout).toBe("");
    });

    it("forwards nothing: a tunnel through the host and a port opened on it are refused, and no file can be fetched", () => {
        const tunnel = sshWithCheckKey(["-W", "127.0.0.1:22"]);
        expect(tunnel.code).not.toBe(0);
        expect(tunnel.stderr).toMatch(/administratively prohibited|open failed/i);
        const remote = sshWithCheckKey(["-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:17999:127.0.0.1:22"]);
        expect(remote.code).not.toBe(0);
        expect(remote.stderr).toMatch(/remote port forwarding failed/i);
        const sftp = spawnSync(
            "sftp",
            ["-o", `UserKnownHostsFile=${host.knownHosts}`, "-o", "BatchMode=yes", "-i", checkKeyFile, `root@${host.facts.host}`],
            {
                input: "get /etc/shadow\n",
                encoding: "utf8",
                timeout: 60_000,
            },
        );
        expect(sftp.status).not.toBe(0);
    });
});

describe("key-health.yaml", () => {
    it("re-reads ringtail with the check key, opens one issue when the key expires within the window, and closes it after a healthy run", async () => {
        // The operator rotated: both runners hold the new key.
        for (const run of [ringtail, indri]) await run.stack.up(recording(run));
        const stateBefore = (await untouched())["state"];
        // Someone else's issue with the marker is never edited, reopened or closed.
        const mallory = await gitea.createUser("mallory2");
        const plantedIssue = await fetch(`${gitea.url}/api/v1/repos/${repo.fullName}/issues`, {
            method: "POST",
            headers: { Authorization: `token ${mallory.token}`, "Content-Type": "application/json" },
            body: JSON.stringify({ title: "planted", body: `${HEALTH_MARKER}\nplanted` }),
        }).then((res) => res.json() as Promise<{ number: number }>);
        await setExpiry(emulator.url, TOKEN, new Date(Date.now() + 3 * 86_400_000 + 3_600_000));
        const unhealthy = await workflow("key-health.yaml");
        expect(unhealthy.code, unhealthy.log).toBe(0);
        expect(unhealthy.log).toMatch(new RegExp(`ringtail: re-read root@${host.facts.host.replace(/\./g, "\\.")} with the check key`));
        const opened = (await healthIssues()).filter((i) => i.user.login === ciUser());
        expect(opened).toHaveLength(1);
        expect(opened[0]).toMatchObject({ state: "open" });
        expect(opened[0]!.body).toMatch(/\*\*indri\*\*: \n- the key expires in 3 day\(s\) \(warning window 14\)/);
        expect(opened[0]!.body).toMatch(/\*\*ringtail\*\*: \n- the key expires in 3 day\(s\)/);

        await setExpiry(emulator.url, TOKEN, new Date(Date.now() + 80 * 86_400_000));
        const healthy = await workflow("key-health.yaml");
        expect(healthy.code, healthy.log).toBe(0);
        const closed = (await healthIssues()).filter((i) => i.user.login === ciUser());
        expect(closed).toHaveLength(1);
        expect(closed[0]).toMatchObject({ number: opened[0]!.number, state: "closed" });
        expect(closed[0]!.body).toContain("**indri**: healthy");
        expect(closed[0]!.body).toContain("**ringtail**: healthy");
        const planted = (await healthIssues()).find((i) => i.number === plantedIssue.number);
        expect(planted).toMatchObject({ state: "open", body: `${HEALTH_MARKER}\nplanted` });
        // key-health wrote nothing to the state.
        expect((await untouched())["state"]).toEqual(stateBefore);
    });

    it("opens its issue when the registry refuses the key (naming the status), and raises the alarm when the registry takes anonymous uploads", async () => {
        await deliverThenRevoke();
        const refused = await workflow("key-health.yaml");
        expect(refused.code, refused.log).toBe(0);
        const issue = (await healthIssues()).filter((i) => i.user.login === ciUser())[0]!;
        expect(issue.state).toBe("open");
        for (const stack of ["indri", "ringtail"]) {
            expect(issue.body).toMatch(
                new RegExp(
                    `\\*\\*${stack}\\*\\*: \\n- the registry does not accept the key, so no job can push: .* refuses the key \\(401\\)`,
                ),
            );
        }
        await rotateKey(emulator.url, TOKEN, ROTATED);
        for (const run of [ringtail, indri]) await run.stack.up(recording(run));
        await registry.setAuth(false);
        try {
            const open = await workflow("key-health.yaml");
            expect(open.code, open.log).toBe(0);
            const alarm = (await healthIssues()).filter((i) => i.user.login === ciUser())[0]!;
            expect(alarm.body).toMatch(
                /\*\*alarm\*\*: http:\/\/127\.0\.0\.1:5004 accepts an upload to blumeops\/ci-probe without credentials \(202\): anyone can push/,
            );
        } finally {
            await registry.setAuth(true);
        }
        const healthy = await workflow("key-health.yaml");
        expect(healthy.code, healthy.log).toBe(0);
        expect((await healthIssues()).filter((i) => i.user.login === ciUser())[0]).toMatchObject({ state: "closed" });
    });
});

describe("key-health.yaml with a broken stack among the good", () => {
    it("judges every stack on its own: one never initialised, one with a bad setting, and the two whose key zot revoked are each named in the issue", async () => {
        await deliverThenRevoke();
        // Pulumi.third.yaml, committed but never `pulumi stack init`-ed; Pulumi.fourth.yaml, initialised by
        // the operator, with a setting the program refuses.
        await commitToMain("Two more runners", () => {
            const ringtailFile = readFileSync(join(repoDir, "Pulumi.ringtail.yaml"), "utf8");
            writeFileSync(join(repoDir, "Pulumi.third.yaml"), ringtailFile);
            const init = spawnSync("pulumi", ["stack", "init", "fourth", "--non-interactive"], {
                cwd: repoDir,
                env: { ...process.env, ...ringtail.env },
                encoding: "utf8",
            });
            expect(init.status, init.stderr).toBe(0);
            const fourth = parseDocument(readFileSync(join(repoDir, "Pulumi.fourth.yaml"), "utf8"));
            fourth.set("config", parseDocument(ringtailFile).get("config"));
            fourth.setIn(["config", "ci-registry-auth:expiryWarningDays"], "soon");
            writeFileSync(join(repoDir, "Pulumi.fourth.yaml"), fourth.toString());
        });
        try {
            const r = await workflow("key-health.yaml");
            // A stack that could not be checked fails the job, after every stack was checked and the issue written.
            expect(r.code, r.log).not.toBe(0);
            const issue = (await healthIssues()).filter((i) => i.user.login === ciUser())[0]!;
            expect(issue.state).toBe("open");
            expect(issue.body).toMatch(
                /\*\*third\*\*: \n- the stack could not be opened: error: no stack named 'third' found\. Fix: a new Pulumi\.third\.yaml needs its stack made and deployed once by the operator \(pulumi stack init third, then pulumi up --stack third/,
            );
            expect(issue.body).toMatch(/\*\*fourth\*\*: \n- the preview failed: [^\n]*expiryWarningDays[^\n]*/);
            for (const stack of ["indri", "ringtail"]) {
                expect(issue.body).toMatch(
                    new RegExp(
                        `\\*\\*${stack}\\*\\*: \\n- the registry does not accept the key, so no job can push: .* refuses the key \\(401\\)`,
                    ),
                );
            }
            // Where each healthy stack's runner facts were read, and when.
            expect(issue.body).toMatch(/_The runner's facts: read from the runner by this preview, 20\d\d-/);
            expect(issue.body).toMatch(/_The runner's facts: re-read from the runner with the check key, 20\d\d-/);
        } finally {
            await commitToMain("Not yet", () => {
                git(["rm", "-q", "Pulumi.third.yaml", "Pulumi.fourth.yaml"]);
            });
            const rm = spawnSync("pulumi", ["stack", "rm", "fourth", "--yes", "--force"], {
                cwd: repoDir,
                env: { ...process.env, ...ringtail.env },
                encoding: "utf8",
            });
            expect(rm.status, rm.stderr).toBe(0);
            await rotateKey(emulator.url, TOKEN, ROTATED);
            for (const run of [ringtail, indri]) await run.stack.up(recording(run));
        }
        const healthy = await workflow("key-health.yaml");
        expect(healthy.code, healthy.log).toBe(0);
        expect((await healthIssues()).filter((i) => i.user.login === ciUser())[0]).toMatchObject({ state: "closed" });
    });
});

describe("a hostile pull request", () => {
    const exfiltrate = () => join(work, "exfiltrated");
    let attempts: Attempt[] = [];
    let hostileLog = "";
    let before: Record<string, unknown>;

    let mainHead = "";

    beforeAll(async () => {
        before = await untouched();
        mainHead = (await gitea.api<{ commit: { id: string } }>("GET", `/repos/${repo.fullName}/branches/main`)).commit.id;
        const vaults = (await fetch(`${emulator.url}/v1/vaults`, { headers: { Authorization: `Bearer ${TOKEN}` } }).then((r) =>
            r.json(),
        )) as {
            id: string;
            name: string;
        }[];
        const vaultId = vaults.find((v) => v.name === "blumeops")?.id ?? "";
        const items = (await fetch(`${emulator.url}/v1/vaults/${vaultId}/items`, { headers: { Authorization: `Bearer ${TOKEN}` } }).then(
            (r) => r.json(),
        )) as { id: string; title: string }[];
        const delivered = (await indri.stack.outputs())["delivered"]?.value as { externalSecretName: string };
        const runnerConfigMap =
            cluster
                .get<{ spec: { template: { spec: { volumes: { configMap?: { name: string } }[] } } } }>(
                    "deployment",
                    "forgejo-runner",
                    "forgejo-runner",
                )
                ?.spec.template.spec.volumes.find((v) => v.configMap !== undefined)?.configMap?.name ?? "";
        const targets: HostileTargets = {
            ringtail: { host: host.facts.host, port: host.facts.port },
            connect: {
                otherVaultId: vaults.find((v) => v.name === "homelab")?.id ?? "",
                vaultId,
                itemId: items.find((i) => i.title === "zot-ci-apikey")?.id ?? "",
            },
            s3: {
                endpoint: s3.endpoint,
                region: s3.region,
                bucket: S3Server.bucket,
                // As if every name had leaked: the key is tried on each object the bucket holds.
                objects: [...bucketObjects().keys()],
                prefixes: [
                    "",
                    ".pulumi/",
                    ".pulumi/history/",
                    ".pulumi/backups/",
                    ".pulumi/stacks/ci-registry-auth/",
                    ".pulumi/stacks/ci-registry-auth/indri.json",
                ],
            },
            kube: {
                runnerConfigMap,
                // Every namespace has one (kube-controller-manager publishes the cluster's CA in it).
                otherConfigMap: "kube-root-ca.crt",
                otherExternalSecret: "zot-ci-api-key-0000000000",
            },
            forgejo: { defaultBranch: "main", otherPullRequest: pr },
            exfiltrate: exfiltrate(),
            stacks: ["indri", "ringtail"],
        };
        expect(runnerConfigMap).not.toBe("");
        expect(delivered.externalSecretName).not.toBe(targets.kube.otherExternalSecret);
        git(["checkout", "-q", "-b", "hostile", "main"]);
        writeFileSync(join(repoDir, "hostile-targets.json"), JSON.stringify(targets, null, 2));
        // The program's own outputs carry the hostile one, so the preview runs it (index.ts exports an async program).
        const program = readFileSync(join(repoDir, "index.ts"), "utf8");
        const hostileProgram = `import { hostile } from "./sandbox/hostile-pr";\n${program}`.replace(
            /^export = async \(\) => (.+);$/m,
            "export = async () => ({ ...$1, hostile });",
        );
        if (!hostileProgram.includes(", hostile });"))
            throw new Error("index.ts has no `export = async () => …;` to add the hostile output to");
        writeFileSync(join(repoDir, "index.ts"), hostileProgram);
        // A branch pusher runs the workflow of their own branch: this one drops preview.yaml's
        // `permissions:`, so the job token has all the repository grants it (Gitea's default, permissive).
        const workflowFile = join(repoDir, ".forgejo", "workflows", "preview.yaml");
        const workflowDoc = parseDocument(readFileSync(workflowFile, "utf8"));
        workflowDoc.delete("permissions");
        writeFileSync(workflowFile, workflowDoc.toString());
        git(["add", "-A"]);
        git(["commit", "-q", "-m", "A harmless refactor"]);
        gitea.push(repo, repoDir, "HEAD", "hostile");
        const hostilePr = await gitea.openPullRequest(repo, "hostile", "main", "A harmless refactor");
        const r = await workflow("preview.yaml", { pullRequest: hostilePr, head: { ref: "hostile", repo: repo.fullName } });
        hostileLog = r.log;
        attempts = ["indri", "ringtail"].flatMap((stack) => {
            const file = `${exfiltrate()}.attempts.${stack}.json`;
            return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Attempt[]) : [];
        });
        git(["checkout", "-q", "main"]);
    }, 900_000);

    const outcome = (what: string): number[] => attempts.filter((a) => a.attempt === what).map((a) => a.status);

    it("ran its program in the previews of both stacks", () => {
        expect(outcome("patch the runner Deployment"), hostileLog.slice(-6000)).toHaveLength(2);
        expect(outcome("decrypt stack indri's secrets")).toHaveLength(2);
    });

    it("cannot change or read past the cluster's read-only identity: every write, dry run or not, and every other Secret is forbidden", () => {
        // The preview job holds the kubeconfig for every stack's preview.
        for (const what of [
            "patch the runner Deployment",
            "patch the runner Deployment, dry run",
            "patch the key's Secret",
            "read the runner's registration Secret",
            "read the Connect token Secret",
            "list Secrets",
            "create a pod",
        ]) {
            expect(outcome(what), what).toEqual([403, 403]);
        }
    });

    it("cannot log in to ringtail: the preview job holds no SSH key", () => {
        expect(outcome("run id on ringtail over ssh")).toEqual([255, 255]);
        expect(
            attempts
                .filter((a) => a.attempt === "run id on ringtail over ssh")
                .map((a) => a.detail)
                .join(),
        ).toMatch(/Permission denied/);
    });

    it("cannot read another vault, nor write the key's item", () => {
        expect(outcome("read an item in another vault")).toEqual([403, 403]);
        expect(outcome("write the key's item")).toEqual([403, 403]);
    });

    it("cannot write the state backend, directly or through pulumi", () => {
        expect(outcome("write an object to the state backend")).toEqual([403, 403]);
        expect(outcome("delete the state backend's objects")).toEqual([403, 403]);
        for (const stack of ["indri", "ringtail"]) {
            for (const status of outcome(`tag stack ${stack} (a backend write through pulumi)`)) expect(status).not.toBe(0);
        }
    });

    it("reads only meta.yaml and each stack's current checkpoint: every other listing, and every .bak, history and backup, is refused", () => {
        const current = new Set([".pulumi/meta.yaml", ...projectStacks(ROOT).map((s) => `.pulumi/stacks/ci-registry-auth/${s}.json`)]);
        const reads = attempts.filter((a) => a.attempt.startsWith("read .pulumi/"));
        // There is history to refuse: the upgrade left the former version's checkpoints.
        expect(reads.filter((a) => a.attempt.startsWith("read .pulumi/history/")).length).toBeGreaterThan(0);
        expect(reads.filter((a) => a.attempt.startsWith("read .pulumi/backups/")).length).toBeGreaterThan(0);
        for (const a of reads) expect(a.status, a.attempt).toBe(current.has(a.attempt.slice("read ".length)) ? 200 : 403);
        const lists = attempts.filter((a) => a.attempt.startsWith("list the bucket under"));
        expect(lists.length).toBe(12);
        for (const a of lists) {
            expect(a.status, a.attempt).toBe(
                a.attempt === 'list the bucket under ".pulumi/stacks/ci-registry-auth/indri.json"' ? 200 : 403,
            );
        }
    });

    it("finds no Connect token and no SSH private key in anything it read from the backend, raw or decrypted with the passphrase", () => {
        for (const stack of ["indri", "ringtail"]) {
            const taken = Object.values(
                JSON.parse(readFileSync(`${exfiltrate()}.objects.${stack}.json`, "utf8")) as Record<string, string>,
            );
            expect(taken.length).toBeGreaterThan(0);
            const decrypted = taken.flatMap((text) => decryptedSecrets(text, ringtail.env["PULUMI_CONFIG_PASSPHRASE"] ?? ""));
            // The passphrase decrypts what it read (the zot key, CI's kubeconfig): the scan reads real plaintext.
            expect(decrypted.length).toBeGreaterThan(0);
            const all = [...taken, ...decrypted].join("\n");
            expect(all).not.toMatch(/PRIVATE KEY/);
            expect(findLeaks({ [`${stack}: objects read, and their secrets`]: all }, { TOKEN, HOMELAB_SECRET })).toEqual([]);
        }
    });

    it("reads the runner's ConfigMap, but no ConfigMap of another name and no other ExternalSecret", () => {
        expect(outcome("read the runner's ConfigMap")).toEqual([200, 200]);
        expect(outcome("read a ConfigMap of another name")).toEqual([403, 403]);
        expect(outcome("read an ExternalSecret of another name")).toEqual([403, 403]);
    });

    const jobToken = daemonOnly(
        "with the job token, and preview.yaml's permissions dropped, it pushes a branch of its own, but cannot reach the protected default branch, merge, count as an approval, or write a secret or variable",
    );
    it.skipIf(jobToken.skip)(jobToken.name, async () => {
        const one = (what: string): Attempt => {
            const found = attempts.filter((a) => a.attempt === what);
            expect(found, what).toHaveLength(1);
            return found[0]!;
        };
        // What the token may do where nothing protects: Gitea's default grants a same-repository job write.
        expect(one("job token: push a new branch").status).toBe(0);
        const push = one("job token: push to the default branch");
        expect(push.status, push.detail).not.toBe(0);
        expect(push.detail).toMatch(/\[remote rejected\] \S+ -> main|protected branch/i);
        expect(one("job token: write a workflow on the default branch").status).toBe(403);
        expect(one("job token: merge this pull request").status).toBe(405);
        // An approval by the job token is not a reviewer's: the other pull request still cannot be merged.
        const approval = one("job token: approve another pull request");
        const merge = one("job token: merge the approved pull request");
        expect(merge.status, `${approval.status} ${approval.detail}; ${merge.detail}`).toBe(405);
        expect(one("job token: write a repository secret").status).toBe(403);
        expect(one("job token: write a repository variable").status).toBe(403);
        const main = await gitea.api<{ commit: { id: string } }>("GET", `/repos/${repo.fullName}/branches/main`);
        expect(main.commit.id).toBe(mainHead);
        console.log(
            `job token, measured: ${attempts
                .filter((a) => a.attempt.startsWith("job token:"))
                .map((a) => `${a.attempt.slice("job token: ".length)} -> ${String(a.status)} (${a.detail})`)
                .join("; ")}`,
        );
    });

    it("decrypts the stacks' secrets, and finds no SSH private key and no Connect token but its own", () => {
        for (const stack of ["indri", "ringtail"]) {
            expect(outcome(`decrypt stack ${stack}'s secrets`)).toEqual([0, 0]);
            const taken = readFileSync(`${exfiltrate()}.${stack}.json`, "utf8");
            expect(taken).toContain("ci-registry-auth");
            expect(taken).not.toMatch(/PRIVATE KEY/);
            expect(findLeaks({ [`${stack} export`]: taken }, { TOKEN, HOMELAB_SECRET })).toEqual([]);
        }
    });

    it("left the runners, the state and the vault as they were", async () => {
        expect(await untouched()).toEqual(before);
    });
});

describe('a third runner, added with its stack file and its secret alone (README, "Add a runner")', () => {
    it("gets its own comment on the pull request and its own re-read in key-health, with no edit of code, workflows or tasks", async () => {
        // A second SSH host beside ringtail (sandbox/ringtail/host, instance 1).
        const host2 = Ringtail.start(1);
        builder = host2;
        builderKeyFile = join(work, "builder-check");
        spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ci-registry-auth-check", "-f", builderKeyFile]);
        const checkKey = readFileSync(`${builderKeyFile}.pub`, "utf8").trim();
        host2.authorize(`restrict,command="${checkCommandPath(host2.facts.envFile)}" ${checkKey}`);
        // Pulumi.builder.yaml: ringtail's committed file with this host's settings, committed to main.
        const doc = parseDocument(readFileSync(join(repoDir, "Pulumi.ringtail.yaml"), "utf8"));
        for (const [key, value] of Object.entries({
            host: host2.facts.host,
            port: host2.facts.port,
            hostKey: host2.facts.hostKey,
            checkKey,
        })) {
            doc.setIn(["config", "ci-registry-auth:runner", key], value);
        }
        const builderFile = doc.toString();
        await commitToMain("Add the builder runner", () => {
            writeFileSync(join(repoDir, "Pulumi.builder.yaml"), builderFile);
        });
        // The operator's checkout has it too (untracked in the local branch here).
        writeFileSync(join(repoDir, "Pulumi.builder.yaml"), builderFile);
        // The operator's stack for it, from that file, and its first up.
        builderRun = await projectStack(
            "builder",
            { "onepassword:url": { value: emulator.url } },
            { ...operatorEnv(TOKEN, await host2.agent()), ...s3.env("operator") },
            { from: repoDir, backendUrl: s3.backendUrl, backend: s3.dir },
        );
        const up = await builderRun.stack.up(recording(builderRun));
        expect(up.outputs["hasKey"]?.value).toBe(true);
        const fp = String(up.outputs["keyFingerprint"]?.value);
        expect(up.outputs["delivered"]?.value).toMatchObject({ checkKey: "restricted" });
        // Its secret, named after the stack.
        laterSecrets["BUILDER_CHECK_KEY"] = readFileSync(builderKeyFile, "utf8");
        if (daemon) await gitea.setActionsSecret(repo, "BUILDER_CHECK_KEY", laterSecrets["BUILDER_CHECK_KEY"]);

        // The pull request's branch gets the stack file too: the one in the work tree, committed on it.
        git(["checkout", "-q", "--detach", previewHead]);
        try {
            git(["add", "Pulumi.builder.yaml"]);
            git(["commit", "-q", "-m", "Review with the builder runner"]);
            previewHead = git(["rev-parse", "HEAD"]);
            gitea.push(repo, repoDir, previewHead, "preview-me");
        } finally {
            git(["checkout", "-q", "-f", "main"]);
        }
        const preview = await workflow("preview.yaml");
        expect(preview.code, preview.log).toBe(0);
        const comment = await mine("builder");
        expect(comment).toHaveLength(1);
        expect(comment[0]!.body).toContain(`- Key in 1Password now: \`${fp}\``);
        expect(comment[0]!.body).toMatch(new RegExp(`- Last delivered: fileFingerprint \`${fp}\`, processFingerprint \`${fp}\``));
        expect(comment[0]!.body).toMatch(
            /- hasKey as of the last `up` \(20\d\d-[^)]+\), not read now: the job holds no check key \(secret BUILDER_CHECK_KEY\): true/,
        );

        const health = await workflow("key-health.yaml");
        expect(health.code, health.log).toBe(0);
        const at = (h: Ringtail) => h.facts.host.replace(/\./g, "\\.");
        expect(health.log).toMatch(new RegExp(`builder: re-read root@${at(host2)} with the check key`));
        expect(health.log).toMatch(new RegExp(`ringtail: re-read root@${at(host)} with the check key`));
        expect(health.log).toMatch(/builder: healthy/);
        expect(health.log).toMatch(/ringtail: healthy/);
        expect(health.log).toMatch(/indri: healthy/);
    });
});

describe("leaks", () => {
    it("no key, token or private key in any comment, issue, job log or act's output", async () => {
        const issues = await healthIssues();
        const sources = {
            comments: (await comments()).map((c) => c.body).join("\n"),
            issues: issues.map((i) => i.body).join("\n"),
            [daemon ? "job logs (Gitea's) and the runner daemon's log" : "job logs and act output"]: [
                ...logs,
                pulumiRunner?.log ?? "",
            ].join("\n"),
        };
        expect(sources.comments).toContain("ci-registry-auth:pr-preview:");
        expect(
            findLeaks(sources, {
                KEY,
                ROTATED,
                TOKEN,
                CI_TOKEN,
                WRONG_TOKEN,
                HOMELAB_SECRET,
                "the Gitea token": gitea.token,
                "the operator's SSH private key": readFileSync(host.facts.privateKeyFile, "utf8").split("\n")[1] ?? "",
                "the check key": readFileSync(checkKeyFile, "utf8").split("\n")[1] ?? "",
                ...(builderKeyFile !== undefined
                    ? { "the builder's check key": readFileSync(builderKeyFile, "utf8").split("\n")[1] ?? "" }
                    : {}),
                ...Object.fromEntries(apiKeys.map((k, i) => [`api key ${i}`, k])),
            }),
        ).toEqual([]);
        expect(
            findLeaks(
                { "registry log": readFileSync(registry.logFile, "utf8") },
                { KEY, ROTATED, ...Object.fromEntries(apiKeys.map((k, i) => [`api key ${i}`, k])) },
            ),
        ).toEqual([]);
    });
});
