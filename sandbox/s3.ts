/**
 * The sandbox's shared Pulumi state backend: versitygw v1.8.0, an
 * S3-compatible server built by sandbox/build, on loopback over plain HTTP
 * with its POSIX backend (objects are files in a temp dir, metadata in
 * xattrs) and its internal IAM (`--iam-dir`: accounts in `users.json`).
 *
 * Two accounts share the bucket `pulumi-state`:
 * - `operator` (role `user`) owns it and may list, read, write and delete;
 * - `ci` (role `user`) may read only what `pulumi preview` and key-health
 *   read (measured in test/sandbox/s3.test.ts from this server's access
 *   log): `.pulumi/meta.yaml`, each named stack's current checkpoint
 *   `.pulumi/stacks/<project>/<stack>.json` and its tags
 *   (`<stack>.pulumi-tags`, read on every preview), and list only with
 *   that checkpoint's exact name as the prefix (how the backend finds it).
 *   Never `.pulumi/history/`, `.pulumi/backups/` or a `.bak`: they keep
 *   every earlier checkpoint, and a former version's checkpoints hold the
 *   Connect token (CHANGELOG). The same policy for MinIO is in the README
 *   ("CI and trust"); {@link ciReadPolicy} builds both.
 *
 * Both are a bucket policy, set by the root account. With internal IAM
 * versitygw has no identity policies, and once a bucket has a policy its ACL
 * is not consulted: each request of a `user` account is allowed only by a
 * statement naming its access key id as principal (root and `admin`
 * accounts bypass it, so neither account is an admin). ACLs would not do:
 * new buckets default to BucketOwnerEnforced (ACL grants refused, as on
 * AWS), and a bucket READ grant in versitygw also grants GetObject, unlike
 * AWS; the policy names each action, as one on a real bucket would.
 *
 * No secret is on a command line: the root credentials reach versitygw as
 * ROOT_ACCESS_KEY_ID / ROOT_SECRET_ACCESS_KEY in its environment, and the
 * accounts are created through its admin API (PATCH /create-user, served on
 * the S3 port, SigV4-signed as root), not with `versitygw admin create-user
 * --secret`, which takes the secret as an argument.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { stopChild } from "./child";

export type S3Who = "operator" | "ci";

export interface S3Credentials {
    accessKeyId: string;
    secretAccessKey: string;
}

/** A response of the S3 API: its status, body, and the `<Code>` of an S3 error body ("" when none). */
export interface S3Response {
    status: number;
    body: string;
    code: string;
}

/** One line of versitygw's access log. */
export interface S3LogEntry {
    /** The access key id that signed the request. */
    requester: string;
    /** `s3_GetObject`, `s3_PutObject`, ... */
    operation: string;
    /** The object key, `-` for none (a listing's prefix is in `uri`). */
    key: string;
    /** The request line's path and query, percent-encoded as sent. */
    uri: string;
    status: number;
    /** The S3 error code, `-` for none. */
    code: string;
}

const SERVICE = "s3";

function sha256Hex(data: string | Buffer): string {
    return createHash("sha256").update(data).digest("hex");
}

function hmac(key: string | Buffer, data: string): Buffer {
    return createHmac("sha256", key).update(data).digest();
}

/** RFC 3986 encoding as SigV4 wants it: every byte but unreserved characters, `/` kept where `keepSlash`. */
function uriEncode(s: string, keepSlash: boolean): string {
    const encoded = encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    return keepSlash ? encoded.replace(/%2F/g, "/") : encoded;
}

/**
 * Signs a request with AWS Signature Version 4 for S3 (payload hashed, not
 * `UNSIGNED-PAYLOAD`); returns the headers to send. `path` is the unencoded
 * path (`/bucket/key`); `query` the unencoded parameters. Signs `host`,
 * `x-amz-content-sha256`, `x-amz-date` and every header in `headers`.
 */
export function signV4(args: {
    method: string;
    endpoint: string;
    path: string;
    query?: Record<string, string>;
    headers?: Record<string, string>;
    body?: string | Buffer;
    credentials: S3Credentials;
    region: string;
    now?: Date;
}): { url: string; headers: Record<string, string> } {
    const now = args.now ?? new Date();
    const amzDate = now
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d{3}/, "");
    const day = amzDate.slice(0, 8);
    const host = new URL(args.endpoint).host;
    const headers: Record<string, string> = {
        ...Object.fromEntries(Object.entries(args.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v.trim()])),
        host,
        "x-amz-content-sha256": sha256Hex(args.body ?? ""),
        "x-amz-date": amzDate,
    };
    const names = Object.keys(headers).sort();
    const canonicalPath = uriEncode(args.path, true);
    const canonicalQuery = Object.entries(args.query ?? {})
        .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `${k}=${v}`)
        .join("&");
    const canonicalRequest = [
        args.method,
        canonicalPath,
        canonicalQuery,
        ...names.map((n) => `${n}:${headers[n] ?? ""}`),
        "",
        names.join(";"),
        headers["x-amz-content-sha256"],
    ].join("\n");
    const scope = `${day}/${args.region}/${SERVICE}/aws4_request`;
    const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonicalRequest)].join("\n");
    const key = hmac(hmac(hmac(hmac(`AWS4${args.credentials.secretAccessKey}`, day), args.region), SERVICE), "aws4_request");
    const signature = createHmac("sha256", key).update(stringToSign).digest("hex");
    // fetch sets `host` itself from the URL.
    const send = Object.fromEntries(Object.entries(headers).filter(([n]) => n !== "host"));
    send["authorization"] =
        `AWS4-HMAC-SHA256 Credential=${args.credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
    return { url: `${args.endpoint}${canonicalPath}${canonicalQuery === "" ? "" : `?${canonicalQuery}`}`, headers: send };
}

/** Sends one SigV4-signed request. */
export async function s3Request(
    endpoint: string,
    region: string,
    credentials: S3Credentials,
    method: string,
    path: string,
    opts: { query?: Record<string, string>; headers?: Record<string, string>; body?: string } = {},
): Promise<S3Response> {
    const { url, headers } = signV4({ method, endpoint, path, region, credentials, ...opts });
    const res = await fetch(url, { method, headers, ...(opts.body !== undefined ? { body: opts.body } : {}) });
    const body = await res.text();
    return { status: res.status, body, code: /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? "" };
}

/** Which project CI previews: it may read the current checkpoint of each of its stacks and nothing else. */
export interface CiScope {
    project: string;
}

/**
 * The statements that let `principal` read exactly what `pulumi preview`
 * of `scope`'s stacks reads on a diy backend in `bucket`, and deny it every
 * earlier checkpoint outright. Plain AWS policy grammar (versitygw and
 * MinIO take it alike). The stacks are matched by pattern
 * (`<project>/*.json`), so a new stack file needs no edit of the policy:
 * `*` matches across `/`, but a current checkpoint is the only object
 * under `.pulumi/stacks/<project>/` that ends in `.json` (`<stack>.json.bak`
 * does not, and is denied by name too), and history and backups live under
 * other prefixes, denied outright. No `NotResource`/`NotAction`: versitygw
 * v1.8.0 drops them silently.
 */
export function ciReadPolicy(bucket: string, principal: Record<string, string[]>, scope: CiScope): Record<string, unknown>[] {
    const checkpoints = `.pulumi/stacks/${scope.project}/*.json`;
    // The stacks' tags, which the backend reads on every preview (absent ones too: refused is an error).
    const tags = `.pulumi/stacks/${scope.project}/*.pulumi-tags`;
    return [
        {
            Sid: "CiReadsCurrentCheckpoints",
            Effect: "Allow",
            Principal: principal,
            Action: ["s3:GetObject"],
            Resource: [".pulumi/meta.yaml", checkpoints, tags].map((key) => `arn:aws:s3:::${bucket}/${key}`),
        },
        {
            // The backend lists with the checkpoint's own name as the prefix to find it (and its compressed variants).
            Sid: "CiFindsCurrentCheckpoints",
            Effect: "Allow",
            Principal: principal,
            Action: ["s3:ListBucket"],
            Resource: [`arn:aws:s3:::${bucket}`],
            Condition: { StringLike: { "s3:prefix": [checkpoints] } },
        },
        {
            Sid: "CiNeverReadsHistory",
            Effect: "Deny",
            Principal: principal,
            Action: ["s3:GetObject"],
            Resource: [".pulumi/history/*", ".pulumi/backups/*", "*.bak"].map((key) => `arn:aws:s3:::${bucket}/${key}`),
        },
    ];
}

export class S3Server {
    /** The bucket that holds the Pulumi state. */
    static readonly bucket = "pulumi-state";

    private constructor(
        readonly dir: string,
        /** `http://127.0.0.1:<port>`. */
        readonly endpoint: string,
        readonly region: string,
        private readonly root: S3Credentials,
        private readonly accounts: Record<S3Who, S3Credentials>,
        private readonly child: ChildProcess,
        /** What CI may read (its stacks' current checkpoints). */
        readonly ciScope: CiScope,
    ) {}

    /** versitygw's stdout and stderr. */
    get logFile(): string {
        return join(this.dir, "versitygw.log");
    }

    /** One line per S3 request: requester (access key id), operation, key, status, error code. */
    get accessLog(): string {
        return join(this.dir, "access.log");
    }

    /** The S3 requests so far, from the access log (admin API calls are not in it). */
    requests(): S3LogEntry[] {
        // `owner bucket [date zone] ip requester request-id operation key uri status error-code ...`
        return readFileSync(this.accessLog, "utf8")
            .split("\n")
            .filter((line) => line !== "" && !line.startsWith("log starts"))
            .map((line) => {
                const f = line.split(" ");
                return {
                    requester: f[5] ?? "",
                    operation: f[7] ?? "",
                    key: f[8] ?? "",
                    uri: f[9] ?? "",
                    status: Number(f[10]),
                    code: f[11] ?? "",
                };
            });
    }

    /**
     * The backend URL for `pulumi login`: endpoint with its scheme (plain
     * HTTP needs no other parameter), path-style addressing, region. The
     * pulumi CLI (3.274.1, gocloud.dev s3blob on AWS SDK v2) accepts
     * `endpoint`, `region`, `use_path_style` (or `s3ForcePathStyle`),
     * `disable_https` (only for an endpoint without a scheme; the v1-era
     * `disableSSL` is translated to it), and for an `endpoint` it defaults
     * `request_checksum_calculation` to `when_required`.
     */
    get backendUrl(): string {
        const q = new URLSearchParams({ endpoint: this.endpoint, region: this.region, use_path_style: "true" });
        return `s3://${S3Server.bucket}?${q.toString()}`;
    }

    /** The access key ids and secrets of an account (tests sign requests with them). */
    credentials(who: S3Who): S3Credentials {
        return { ...this.accounts[who] };
    }

    /** The AWS_* variables the pulumi CLI (and any AWS SDK) needs to act as `who` on the backend. */
    env(who: S3Who): Record<string, string> {
        const c = this.accounts[who];
        return {
            AWS_ACCESS_KEY_ID: c.accessKeyId,
            AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
            AWS_REGION: this.region,
            // No shared-config profile, session token or instance metadata may stand in for them.
            AWS_PROFILE: "",
            AWS_SESSION_TOKEN: "",
            AWS_EC2_METADATA_DISABLED: "true",
        };
    }

    /** A request as `who` (or with any credentials): `path` like `/pulumi-state/key`. */
    request(
        who: S3Who | S3Credentials,
        method: string,
        path: string,
        opts: { query?: Record<string, string>; headers?: Record<string, string>; body?: string } = {},
    ): Promise<S3Response> {
        const credentials = typeof who === "string" ? this.accounts[who] : who;
        return s3Request(this.endpoint, this.region, credentials, method, path, opts);
    }

    /**
     * Starts versitygw on 127.0.0.1:`port` with an empty POSIX store and IAM,
     * the accounts `operator` and `ci` with fresh secrets, and the bucket
     * `pulumi-state` owned by `operator` with its policy: CI reads the
     * current checkpoints of `ciScope`'s stacks.
     */
    static async start(port: number, ciScope: CiScope): Promise<S3Server> {
        const sandbox = process.env["CI_REGISTRY_AUTH_SANDBOX"];
        if (sandbox === undefined) throw new Error('CI_REGISTRY_AUTH_SANDBOX is not set: eval "$(bash sandbox/build --env)" first');
        const bin = join(sandbox, "bin", "versitygw");
        const dir = mkdtempSync(join(tmpdir(), "cra-s3-"));
        for (const sub of ["data", "iam"]) mkdirSync(join(dir, sub));
        const secret = (): string => randomBytes(24).toString("base64url");
        const root = { accessKeyId: "sandbox-root", secretAccessKey: secret() };
        const accounts: Record<S3Who, S3Credentials> = {
            // Access key ids like AWS's (20 characters): a runner masks secrets in job logs, and a
            // two-letter id given to CI as a secret would mask those letters in every line.
            operator: { accessKeyId: `AKOPERATOR${randomBytes(5).toString("hex").toUpperCase()}`, secretAccessKey: secret() },
            ci: { accessKeyId: `AKCIREADONLY${randomBytes(4).toString("hex").toUpperCase()}`, secretAccessKey: secret() },
        };
        const region = "us-east-1";
        const endpoint = `http://127.0.0.1:${port}`;
        // Its own variables only: none of the caller's VGW_*, ADMIN_* or LOGFILE may change it.
        const env: Record<string, string> = {
            PATH: process.env["PATH"] ?? "/usr/bin:/bin",
            ROOT_ACCESS_KEY_ID: root.accessKeyId,
            ROOT_SECRET_ACCESS_KEY: root.secretAccessKey,
        };
        const log = openSync(join(dir, "versitygw.log"), "a");
        const child = spawn(
            bin,
            [
                "--port",
                `127.0.0.1:${port}`,
                "--region",
                region,
                "--iam-dir",
                join(dir, "iam"),
                "--access-log",
                join(dir, "access.log"),
                "--admin-access-log",
                join(dir, "admin-access.log"),
                "--health",
                "/health",
                "posix",
                join(dir, "data"),
            ],
            { cwd: dir, env, stdio: ["ignore", log, log] },
        );
        const server = new S3Server(dir, endpoint, region, root, accounts, child, ciScope);
        try {
            await server.waitHealthy();
            await server.setUp();
        } catch (err) {
            await server.stop();
            throw new Error(`versitygw: ${(err as Error).message}; log: ${server.logFile}`);
        }
        return server;
    }

    private async waitHealthy(): Promise<void> {
        const deadline = Date.now() + 30_000;
        for (;;) {
            try {
                if ((await fetch(`${this.endpoint}/health`)).ok) return;
            } catch {
                // not listening yet
            }
            if (this.child.exitCode !== null) throw new Error(`exited with ${this.child.exitCode} before it listened`);
            if (Date.now() > deadline) throw new Error("not healthy within 30 s");
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
    }

    private async asRoot(
        method: string,
        path: string,
        opts: { headers?: Record<string, string>; body?: string; query?: Record<string, string> },
    ): Promise<void> {
        const res = await s3Request(this.endpoint, this.region, this.root, method, path, opts);
        if (res.status >= 300) throw new Error(`${method} ${path} as root: ${res.status} ${res.code || res.body}`);
    }

    private async setUp(): Promise<void> {
        for (const c of Object.values(this.accounts)) {
            // auth.Account, as `versitygw admin create-user` marshals it.
            const account = `<Account><Access>${c.accessKeyId}</Access><Secret>${c.secretAccessKey}</Secret><Role>user</Role></Account>`;
            await this.asRoot("PATCH", "/create-user", { body: account });
        }
        const bucket = S3Server.bucket;
        await this.asRoot("PATCH", `/${bucket}/create`, { headers: { "x-vgw-owner": this.accounts.operator.accessKeyId } });
        const resources = [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`];
        const policy = {
            Version: "2012-10-17",
            Statement: [
                {
                    Sid: "OperatorReadWrite",
                    Effect: "Allow",
                    Principal: { AWS: [this.accounts.operator.accessKeyId] },
                    Action: [
                        "s3:ListBucket",
                        "s3:GetBucketLocation",
                        "s3:GetObject",
                        "s3:PutObject",
                        "s3:DeleteObject",
                        "s3:ListBucketMultipartUploads",
                        "s3:ListMultipartUploadParts",
                        "s3:AbortMultipartUpload",
                    ],
                    Resource: resources,
                },
                ...ciReadPolicy(bucket, { AWS: [this.accounts.ci.accessKeyId] }, this.ciScope),
            ],
        };
        await this.asRoot("PUT", `/${bucket}`, { query: { policy: "" }, body: JSON.stringify(policy) });
    }

    async stop(): Promise<void> {
        await stopChild(this.child);
    }

    /** Removes its directory (after stop). */
    remove(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}
