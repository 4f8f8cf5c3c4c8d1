/**
 * The project's own Forgejo workflows, run for real, and the trust model
 * they rest on (README, "Trust model"): act runs `.forgejo/workflows/
 * preview.yaml` on `pull_request` events and `key-health.yaml` on
 * `workflow_dispatch`, with the host executor, against the sandbox's Gitea
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
 * an agent, the backend's read-write key); the jobs check it out from
 * Gitea (sandbox/actions/checkout stands in for actions/checkout, which
 * cannot be fetched here).
 */
import { spawnSync } from "node:child_process";
import {
    appendFileSync,
    existsSync,
    mkdtempSync,
    readdirSync,
    readFileSync,
    rmSync,
    writeFileSync,
    copyFileSync,
    mkdirSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { commentMarker, HEALTH_MARKER } from "../../automation/report";
import { fingerprint } from "../../components/fingerprint";
import { checkCommandPath } from "../../components/host-scripts";
import { parseReport } from "../../components/host-report";
import { Cluster, FORWARDING_RUNNER_CONFIG } from "../../sandbox/cluster";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { Gitea, type GiteaRepo } from "../../sandbox/gitea";
import type { Attempt, HostileTargets } from "../../sandbox/hostile-pr";
import { rotateKey, setExpiry } from "../../sandbox/onepassword";
import { copyProjectTree, operatorEnv, PROBE_REPOSITORY, projectStack, type ProjectRun } from "../../sandbox/project-stack";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { Ringtail } from "../../sandbox/ringtail";
import { S3Server } from "../../sandbox/s3";
import { recording } from "../../sandbox/stack";
import { findLeaks } from "../support/leaks";

const ROOT = join(__dirname, "..", "..");
const TOKEN = "sandbox-connect-token-operator-pr";
const CI_TOKEN = "sandbox-connect-token-ci-read-only";
const WRONG_TOKEN = "not-the-connect-token-5a4b";
const KEY = "zak_pr_preview_8c7b6a5f4e3d2c1b0a9f8e7d";
const ROTATED = "zak_pr_preview_rotated_2b3c4d5e6f7a8b9c";
const HOMELAB_SECRET = "homelab-root-password-7e6d5c4b3a2f1e0d";
const LABEL = "pulumi-runner";

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
let pr: number;
let ringtail: ProjectRun;
let indri: ProjectRun;
const logs: string[] = [];
/** Keys the registry made (zot's `zak_…`), for the leak scan. */
const apiKeys: string[] = [];

function git(args: string[], cwd = repoDir): void {
    const r = spawnSync("git", ["-c", "user.name=ops", "-c", "user.email=ops@example.invalid", ...args], { cwd, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${r.stderr}`);
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
    };
}

/** The runner machine's own network trust (CA bundles, proxies), which npm needs to reach its registry; no credential. */
function machineTrust(): Record<string, string> {
    const names = /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|GIT_SSL_CAINFO|CURL_CA_BUNDLE|(HTTPS?|NO)_PROXY|(https?|no)_proxy)$/;
    return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => names.test(e[0]) && e[1] !== undefined));
}

/** The job homes (prepareJobHome) left in /tmp: the kubeconfig and check key must not outlive a job. */
const jobHomes = (): string[] => readdirSync(tmpdir()).filter((d) => d.startsWith("cra-home-"));

/**
 * Runs one of the project's workflows with act, as the runner would for
 * this repository: the job's process gets PATH, a HOME of its own, the
 * runner's PULUMI_HOME and the secrets above, nothing of this test's
 * environment.
 */
function workflow(
    file: "preview.yaml" | "key-health.yaml",
    opts: { secrets?: Record<string, string>; pullRequest?: number; head?: { ref: string; repo: string } } = {},
): { code: number; log: string } {
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
        ...["-P", `${LABEL}=-self-hosted`, "--var", `PULUMI_RUNNER_LABEL=${LABEL}`],
        ...["--var", `PULUMI_BACKEND_URL=${s3.backendUrl}`, "--var", `OP_CONNECT_HOST=${emulator.url}`],
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
            PULUMI_HOME: ringtail.env["PULUMI_HOME"] ?? "",
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
    (await comments(index)).filter((c) => c.body.includes(commentMarker(stack)) && c.user.login === gitea.user);
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
    gitea = await Gitea.start();
    s3 = await S3Server.start();
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
    writeFileSync(
        stackFile,
        readFileSync(stackFile, "utf8")
            .replace(/^( {4}host: ).*$/m, `$1${host.facts.host}`)
            .replace(/^( {4}port: ).*$/m, `$1${host.facts.port}`)
            .replace(/^( {4}user: root)$/m, `$1\n    hostKey: ${host.facts.hostKey}\n    checkKey: ${checkKey}`),
    );
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
    appendFileSync(join(repoDir, "README.md"), "\nA change under review.\n");
    git(["commit", "-q", "-am", "Touch the README"]);
    gitea.push(repo, repoDir, "HEAD", "preview-me");
    pr = await gitea.openPullRequest(repo, "preview-me", "main", "Touch the README");

    // The operator's stacks, from the same files, state in the bucket, the operator's own credentials.
    const where = { from: repoDir, backendUrl: s3.backendUrl, backend: s3.dir };
    const connect = { "onepassword:url": { value: emulator.url } };
    ringtail = await projectStack("ringtail", connect, { ...operatorEnv(TOKEN, await host.agent()), ...s3.env("operator") }, where);
    // The operator's kubeconfig where kubectl and the provider look by default (README).
    const operatorHome = join(work, "operator-home");
    mkdirSync(join(operatorHome, ".kube"), { recursive: true });
    copyFileSync(cluster.kubeconfig, join(operatorHome, ".kube", "config"));
    indri = await projectStack("indri", connect, { ...operatorEnv(TOKEN), ...s3.env("operator"), HOME: operatorHome }, where);
    for (const run of [ringtail, indri]) {
        const up = await run.stack.up(recording(run));
        expect(up.outputs["hasKey"]?.value).toBe(true);
    }
    ciKubeconfig = String((await indri.stack.outputs())["ciKubeconfig"]?.value ?? "");
    expect(ciKubeconfig).toContain("ci-registry-auth-ci");
}, 900_000);

afterAll(async () => {
    for (const r of [ringtail, indri] as (ProjectRun | undefined)[]) r?.dispose();
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
        const r = workflow("preview.yaml");
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
        const r = workflow("preview.yaml");
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
        const r = workflow("preview.yaml");
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
        const r = workflow("preview.yaml", { secrets: { OP_CONNECT_TOKEN: WRONG_TOKEN } });
        expect(r.code).not.toBe(0);
        const body = (await mine("ringtail"))[0]!.body;
        expect(body).toContain("**`pulumi preview` failed.**");
        expect(body).toMatch(/Connect answered 401[\s\S]*OP_CONNECT_TOKEN/);
        expect(await mine("ringtail")).toHaveLength(1);
    });

    it("a pull request from a fork: the preview job is skipped and a job says why; no comment is made", async () => {
        const before = (await comments()).length;
        const r = workflow("preview.yaml", { head: { ref: "preview-me", repo: "mallory/ci-registry-auth" } });
        expect(r.code, r.log).toBe(0);
        expect(r.log).toContain("Not previewing: this pull request's branch is in mallory/ci-registry-auth, a fork.");
        expect(r.log).not.toMatch(/Preview (indri|ringtail) and comment on the PR/);
        expect(await comments()).toHaveLength(before);
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
        const unhealthy = workflow("key-health.yaml");
        expect(unhealthy.code, unhealthy.log).toBe(0);
        expect(unhealthy.log).toMatch(new RegExp(`ringtail: re-read root@${host.facts.host.replace(/\./g, "\\.")} with the check key`));
        const opened = (await healthIssues()).filter((i) => i.user.login === gitea.user);
        expect(opened).toHaveLength(1);
        expect(opened[0]).toMatchObject({ state: "open" });
        expect(opened[0]!.body).toMatch(/\*\*indri\*\*: \n- the key expires in 3 day\(s\) \(warning window 14\)/);
        expect(opened[0]!.body).toMatch(/\*\*ringtail\*\*: \n- the key expires in 3 day\(s\)/);

        await setExpiry(emulator.url, TOKEN, new Date(Date.now() + 80 * 86_400_000));
        const healthy = workflow("key-health.yaml");
        expect(healthy.code, healthy.log).toBe(0);
        const closed = (await healthIssues()).filter((i) => i.user.login === gitea.user);
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
        const apiKey = await registry.createApiKey("zot-ci", ROTATED);
        apiKeys.push(apiKey.key);
        await rotateKey(emulator.url, TOKEN, apiKey.key);
        for (const run of [ringtail, indri]) expect((await run.stack.up(recording(run))).outputs["canPush"]?.value).toBe(true);
        await registry.revokeApiKey("zot-ci", ROTATED, apiKey.id);
        const refused = workflow("key-health.yaml");
        expect(refused.code, refused.log).toBe(0);
        const issue = (await healthIssues()).filter((i) => i.user.login === gitea.user)[0]!;
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
            const open = workflow("key-health.yaml");
            expect(open.code, open.log).toBe(0);
            const alarm = (await healthIssues()).filter((i) => i.user.login === gitea.user)[0]!;
            expect(alarm.body).toMatch(
                /\*\*alarm\*\*: http:\/\/127\.0\.0\.1:5004 accepts an upload to blumeops\/ci-probe without credentials \(202\): anyone can push/,
            );
        } finally {
            await registry.setAuth(true);
        }
        const healthy = workflow("key-health.yaml");
        expect(healthy.code, healthy.log).toBe(0);
        expect((await healthIssues()).filter((i) => i.user.login === gitea.user)[0]).toMatchObject({ state: "closed" });
    });
});

describe("a hostile pull request", () => {
    const exfiltrate = () => join(work, "exfiltrated");
    let attempts: Attempt[] = [];
    let hostileLog = "";
    let before: Record<string, unknown>;

    beforeAll(async () => {
        before = await untouched();
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
        const targets: HostileTargets = {
            ringtail: { host: host.facts.host, port: host.facts.port },
            connect: {
                otherVaultId: vaults.find((v) => v.name === "homelab")?.id ?? "",
                vaultId,
                itemId: items.find((i) => i.title === "zot-ci-apikey")?.id ?? "",
            },
            s3: { endpoint: s3.endpoint, region: s3.region, bucket: S3Server.bucket },
            exfiltrate: exfiltrate(),
            stacks: ["indri", "ringtail"],
        };
        git(["checkout", "-q", "-b", "hostile", "main"]);
        writeFileSync(join(repoDir, "hostile-targets.json"), JSON.stringify(targets, null, 2));
        appendFileSync(join(repoDir, "index.ts"), 'export { hostile } from "./sandbox/hostile-pr";\n');
        git(["add", "-A"]);
        git(["commit", "-q", "-m", "A harmless refactor"]);
        gitea.push(repo, repoDir, "HEAD", "hostile");
        const hostilePr = await gitea.openPullRequest(repo, "hostile", "main", "A harmless refactor");
        const r = workflow("preview.yaml", { pullRequest: hostilePr, head: { ref: "hostile", repo: repo.fullName } });
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
                CI_TOKEN,
                WRONG_TOKEN,
                HOMELAB_SECRET,
                "the Gitea token": gitea.token,
                "the operator's SSH private key": readFileSync(host.facts.privateKeyFile, "utf8").split("\n")[1] ?? "",
                "the check key": readFileSync(checkKeyFile, "utf8").split("\n")[1] ?? "",
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
