/**
 * The project's own Forgejo workflows, run for real: act runs
 * `.forgejo/workflows/preview.yaml` on a `pull_request` event and
 * `key-health.yaml` on `workflow_dispatch`, with the host executor, the job
 * environment pointing at the sandbox's Gitea (Forgejo's API), the stacks'
 * state in one shared file backend, and both whole stacks against the
 * sandbox's runners, 1Password Connect emulator and cluster.
 *
 * The repository in Gitea is this project's working tree with the
 * sandbox's ringtail in Pulumi.ringtail.yaml (host, port, pinned host key),
 * as an operator's fork would hold its real host. The operator's stacks were
 * created and `up`ped from a copy of it; the jobs check it out from Gitea
 * (sandbox/actions/checkout stands in for actions/checkout, which cannot be
 * fetched here) and get only what the README tells operators to give them.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { commentMarker, HEALTH_MARKER } from "../../automation/report";
import { fingerprint } from "../../components/fingerprint";
import { Cluster, FORWARDING_RUNNER_CONFIG } from "../../sandbox/cluster";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { Gitea, type GiteaRepo } from "../../sandbox/gitea";
import { rotateKey, setExpiry } from "../../sandbox/onepassword";
import { copyProjectTree, projectStack, type ProjectRun } from "../../sandbox/project-stack";
import { Ringtail } from "../../sandbox/ringtail";
import { recording } from "../../sandbox/stack";
import { findLeaks } from "../support/leaks";

const ROOT = join(__dirname, "..", "..");
const TOKEN = "sandbox-connect-token-pr-preview";
const WRONG_TOKEN = "not-the-connect-token-5a4b";
const KEY = "zak_pr_preview_8c7b6a5f4e3d2c1b0a9f8e7d";
const ROTATED = "zak_pr_preview_rotated_2b3c4d5e6f7a8b9c";
const LABEL = "pulumi-runner";

let emulator: EmulatorProcess;
let host: Ringtail;
let cluster: Cluster;
let gitea: Gitea;
let repo: GiteaRepo;
let work: string;
let repoDir: string;
let backend: string;
let pr: number;
let ringtail: ProjectRun;
let indri: ProjectRun;
const logs: string[] = [];

function git(args: string[]): void {
    const r = spawnSync("git", ["-c", "user.name=ops", "-c", "user.email=ops@example.invalid", ...args], {
        cwd: repoDir,
        encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${r.stderr}`);
}

/** Runs one of the project's workflows with act, as the runner would for this repository. */
function workflow(
    file: "preview.yaml" | "key-health.yaml",
    env: Record<string, string> = {},
    matrix?: string,
): { code: number; log: string } {
    const event = join(work, "event.json");
    const isPr = file === "preview.yaml";
    writeFileSync(
        event,
        JSON.stringify(
            isPr
                ? {
                      action: "synchronize",
                      number: pr,
                      pull_request: { number: pr, head: { ref: "preview-me" }, base: { ref: "main" } },
                      repository: { full_name: repo.fullName, default_branch: "main" },
                  }
                : { inputs: {}, repository: { full_name: repo.fullName, default_branch: "main" } },
        ),
    );
    const home = mkdtempSync(join(tmpdir(), "cra-act-home-"));
    const args = [
        isPr ? "pull_request" : "workflow_dispatch",
        ...["-W", join(repoDir, ".forgejo", "workflows", file), "-e", event, "--no-cache-server"],
        ...["-P", `${LABEL}=-self-hosted`, "--var", `PULUMI_RUNNER_LABEL=${LABEL}`],
        ...["--var", `PULUMI_BACKEND_URL=file://${backend}`, "--var", `OP_CONNECT_HOST=${emulator.url}`],
        // Secrets by name: act reads their values from its environment, never argv.
        ...[
            "-s",
            "GITHUB_TOKEN",
            "-s",
            "PULUMI_CONFIG_PASSPHRASE",
            "-s",
            "OP_CONNECT_TOKEN",
            "-s",
            "INDRI_KUBECONFIG",
            "-s",
            "RINGTAIL_SSH_KEY",
        ],
        // What forgejo-runner sets and act does not.
        ...["--env", `FORGEJO_SERVER_URL=${gitea.url}`, "--env", `FORGEJO_REPOSITORY=${repo.fullName}`],
        ...["--local-repository", `actions/checkout@v4=${join(ROOT, "sandbox", "actions", "checkout")}`],
        ...(matrix !== undefined ? ["--matrix", `stack:${matrix}`] : []),
    ];
    const act = join(process.env["CI_REGISTRY_AUTH_SANDBOX"] ?? "", "bin", "act");
    const r = spawnSync(act, args, {
        cwd: repoDir,
        encoding: "utf8",
        timeout: 600_000,
        env: {
            ...process.env,
            HOME: home,
            PULUMI_HOME: ringtail.env["PULUMI_HOME"] ?? "",
            GITHUB_TOKEN: gitea.token,
            PULUMI_CONFIG_PASSPHRASE: ringtail.env["PULUMI_CONFIG_PASSPHRASE"] ?? "",
            OP_CONNECT_TOKEN: TOKEN,
            INDRI_KUBECONFIG: readFileSync(cluster.kubeconfig, "utf8"),
            RINGTAIL_SSH_KEY: readFileSync(host.facts.privateKeyFile, "utf8"),
            ...env,
        },
    });
    rmSync(home, { recursive: true, force: true });
    const log = r.stdout + r.stderr;
    logs.push(log);
    return { code: r.status ?? -1, log };
}

const comments = () => gitea.api<{ id: number; body: string }[]>("GET", `/repos/${repo.fullName}/issues/${pr}/comments`);
const mine = async (stack: string) => (await comments()).filter((c) => c.body.includes(commentMarker(stack)));
const healthIssues = async () =>
    (
        await gitea.api<{ number: number; state: string; body: string }[]>("GET", `/repos/${repo.fullName}/issues?state=all&type=issues`)
    ).filter((i) => i.body.includes(HEALTH_MARKER));

beforeAll(async () => {
    emulator = await spawnEmulator({ token: TOKEN, key: KEY, expires: new Date(Date.now() + 80 * 86_400_000) });
    host = Ringtail.start();
    cluster = Cluster.start();
    cluster.applyIndriWorld({ connectUrl: emulator.url, connectToken: TOKEN, runnerConfig: FORWARDING_RUNNER_CONFIG });
    gitea = await Gitea.start();
    work = mkdtempSync(join(tmpdir(), "cra-pr-"));
    backend = join(work, "backend");

    // The operator's repository: this project, with the sandbox's ringtail pinned in its stack file.
    repoDir = join(work, "repo");
    copyProjectTree(repoDir);
    const stackFile = join(repoDir, "Pulumi.ringtail.yaml");
    writeFileSync(
        stackFile,
        readFileSync(stackFile, "utf8")
            .replace(/^( {4}host: ).*$/m, `$1${host.facts.host}`)
            .replace(/^( {4}port: ).*$/m, `$1${host.facts.port}`)
            .replace(/^( {4}user: root)$/m, `$1\n    hostKey: ${host.facts.hostKey}`),
    );
    git(["init", "-q", "-b", "main"]);
    git(["add", "-A"]);
    git(["commit", "-q", "-m", "ci-registry-auth with the sandbox's ringtail"]);
    repo = await gitea.createRepo("ci-registry-auth");
    gitea.push(repo, repoDir, "HEAD", "main");
    appendFileSync(join(repoDir, "README.md"), "\nA change under review.\n");
    git(["commit", "-q", "-am", "Touch the README"]);
    gitea.push(repo, repoDir, "HEAD", "preview-me");
    pr = await gitea.openPullRequest(repo, "preview-me", "main", "Touch the README");

    // The operator's stacks, from the same files, state in the shared backend.
    const connect = { "onepassword:url": { value: emulator.url }, "onepassword:token": { value: TOKEN, secret: true } };
    ringtail = await projectStack(
        "ringtail",
        { ...connect, "ci-registry-auth:sshPrivateKey": { value: readFileSync(host.facts.privateKeyFile, "utf8"), secret: true } },
        { SSH_AUTH_SOCK: "" },
        { from: repoDir, backend },
    );
    // The operator's kubeconfig where kubectl and the provider look by default (README).
    const operatorHome = join(work, "operator-home");
    mkdirSync(join(operatorHome, ".kube"), { recursive: true });
    copyFileSync(cluster.kubeconfig, join(operatorHome, ".kube", "config"));
    indri = await projectStack("indri", connect, { HOME: operatorHome }, { from: repoDir, backend });
    for (const run of [ringtail, indri]) {
        const up = await run.stack.up(recording(run));
        expect(up.outputs["hasKey"]?.value).toBe(true);
    }
}, 900_000);

afterAll(async () => {
    for (const r of [ringtail, indri] as (ProjectRun | undefined)[]) r?.dispose();
    await (gitea as Gitea | undefined)?.stop();
    (cluster as Cluster | undefined)?.stop();
    (host as Ringtail | undefined)?.stop();
    await (emulator as EmulatorProcess | undefined)?.stop();
    (cluster as Cluster | undefined)?.remove();
    (gitea as Gitea | undefined)?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe("preview.yaml on a pull request", () => {
    const first: Record<string, number> = {};

    it("posts one comment per stack: the fingerprint in 1Password, what each runner was last given, no changes, expiry", async () => {
        const r = workflow("preview.yaml");
        expect(r.code, r.log).toBe(0);
        const fp = fingerprint(KEY);
        for (const stack of ["indri", "ringtail"]) {
            const found = await mine(stack);
            expect(found).toHaveLength(1);
            const body = found[0]!.body;
            expect(body).toContain(`### ci-registry-auth · \`${stack}\``);
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
            expect(body).toContain(`[The run](${gitea.url}/${repo.fullName}/actions/runs/`);
            expect(body).toContain("<details><summary>Full preview</summary>");
            first[stack] = found[0]!.id;
        }
    });

    it("a second run edits the same comments: still one per stack", async () => {
        const r = workflow("preview.yaml");
        expect(r.code, r.log).toBe(0);
        for (const stack of ["indri", "ringtail"]) {
            const found = await mine(stack);
            expect(found.map((c) => c.id)).toEqual([first[stack]]);
        }
    });

    it("after a rotation in 1Password, each comment says rotation pending and names its stack, with the changes `up` would make", async () => {
        await rotateKey(emulator.url, TOKEN, ROTATED);
        const r = workflow("preview.yaml");
        expect(r.code, r.log).toBe(0);
        for (const stack of ["indri", "ringtail"]) {
            const body = (await mine(stack))[0]!.body;
            expect(body).toContain(`- Key in 1Password now: \`${fingerprint(ROTATED)}\``);
            expect(body).toContain(`**Rotation pending: run \`pulumi up --stack ${stack}\`**`);
            expect(body).toMatch(/\*\*Changes:\*\* \d+ to (update|replace|create)/);
        }
    });

    it("a wrong Connect token: the comment carries the error naming onepassword:token, and the job fails", async () => {
        const r = workflow("preview.yaml", { OP_CONNECT_TOKEN: WRONG_TOKEN }, "ringtail");
        expect(r.code).not.toBe(0);
        const body = (await mine("ringtail"))[0]!.body;
        expect(body).toContain("**`pulumi preview` failed.**");
        expect(body).toMatch(/onepassword:token/);
        expect(await mine("ringtail")).toHaveLength(1);
    });
});

describe("key-health.yaml", () => {
    it("opens one issue when the key expires within the warning window, and closes it after a healthy run", async () => {
        // The operator rotated: both runners hold the new key.
        for (const run of [ringtail, indri]) await run.stack.up(recording(run));
        await setExpiry(emulator.url, TOKEN, new Date(Date.now() + 3 * 86_400_000 + 3_600_000));
        const unhealthy = workflow("key-health.yaml");
        expect(unhealthy.code, unhealthy.log).toBe(0);
        const opened = await healthIssues();
        expect(opened).toHaveLength(1);
        expect(opened[0]).toMatchObject({ state: "open" });
        expect(opened[0]!.body).toMatch(/\*\*indri\*\*: \n- the key expires in 3 day\(s\) \(warning window 14\)/);
        expect(opened[0]!.body).toMatch(/\*\*ringtail\*\*: \n- the key expires in 3 day\(s\)/);
        expect(unhealthy.log).toMatch(/ringtail: re-read the runner \(urn:pulumi:ringtail::ci-registry-auth::.*ringtail-verify\)/);

        await setExpiry(emulator.url, TOKEN, new Date(Date.now() + 80 * 86_400_000));
        const healthy = workflow("key-health.yaml");
        expect(healthy.code, healthy.log).toBe(0);
        const closed = await healthIssues();
        expect(closed).toHaveLength(1);
        expect(closed[0]).toMatchObject({ number: opened[0]!.number, state: "closed" });
        expect(closed[0]!.body).toContain("**indri**: healthy");
        expect(closed[0]!.body).toContain("**ringtail**: healthy");
    });
});

describe("leaks", () => {
    it("no key, token or private key in any comment, issue, job log or act's output", async () => {
        const issues = await healthIssues();
        const sources = {
            comments: (await comments()).map((c) => c.body).join("\n"),
            issues: issues.map((i) => i.body).join("\n"),
            "job logs and act output": logs.join("\n"),
        };
        expect(sources.comments).toContain("ci-registry-auth:pr-preview:");
        expect(
            findLeaks(sources, {
                KEY,
                ROTATED,
                TOKEN,
                WRONG_TOKEN,
                "the Gitea token": gitea.token,
                "the SSH private key": readFileSync(host.facts.privateKeyFile, "utf8").split("\n")[1] ?? "",
            }),
        ).toEqual([]);
    });
});
