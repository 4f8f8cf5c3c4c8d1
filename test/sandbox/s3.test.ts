/**
 * The shared state backend (versitygw, sandbox/s3.ts) over its real S3 API,
 * SigV4-signed: the operator lists, reads, writes and deletes in
 * `pulumi-state`; CI reads its stacks' current checkpoints and nothing
 * else (never the `.bak`, history or backups, which keep every earlier
 * checkpoint), lists only with a checkpoint's name as the prefix, and every
 * write (put, overwrite, delete, batch delete, copy, multipart upload, the
 * bucket policy itself) is refused with AccessDenied and leaves the bucket
 * as it was; wrong or unknown credentials are refused. Then the pulumi CLI
 * on it: after the operator's `up`s, CI's `preview` and `stack export`
 * succeed reading only meta.yaml and the current checkpoint (each request
 * measured from the access log), and CI's `up` is refused at its first listing of the locks, the
 * bucket unchanged.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { S3Server, type S3Who } from "../../sandbox/s3";

const BUCKET = `/${S3Server.bucket}`;
let s3: S3Server;

/** The keys ListObjectsV2 returns under `prefix`, as `who`. */
async function list(who: S3Who, prefix: string): Promise<string[]> {
    const res = await s3.request(who, "GET", BUCKET, { query: { "list-type": "2", prefix } });
    expect(res.status).toBe(200);
    return [...res.body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1] ?? "");
}

beforeAll(async () => {
    s3 = await S3Server.start(17071, { project: "p" });
}, 60_000);

afterAll(async () => {
    await (s3 as S3Server | undefined)?.stop();
    (s3 as S3Server | undefined)?.remove();
}, 30_000);

describe("operator", () => {
    it("puts, gets, lists, overwrites and deletes objects", async () => {
        const key = `${BUCKET}/.pulumi/stacks/p/op.json`;
        expect((await s3.request("operator", "PUT", key, { body: "one" })).status).toBe(200);
        expect(await s3.request("operator", "GET", key)).toMatchObject({ status: 200, body: "one" });
        expect(await list("operator", ".pulumi/stacks/p/")).toEqual([".pulumi/stacks/p/op.json"]);
        expect((await s3.request("operator", "PUT", key, { body: "two" })).status).toBe(200);
        expect(await s3.request("operator", "GET", key)).toMatchObject({ status: 200, body: "two" });
        expect((await s3.request("operator", "DELETE", key)).status).toBe(204);
        expect(await s3.request("operator", "GET", key)).toMatchObject({ status: 404, code: "NoSuchKey" });
        expect(await list("operator", ".pulumi/stacks/p/")).toEqual([]);
    });
});

describe("ci", () => {
    const checkpoint = `${BUCKET}/.pulumi/stacks/p/ci.json`;
    const denied = { status: 403, code: "AccessDenied" };
    // What a diy backend keeps beside the current checkpoint: every earlier one.
    const earlier = [
        ".pulumi/stacks/p/ci.json.bak",
        ".pulumi/history/p/ci/ci-1764547200000000000.checkpoint.json",
        ".pulumi/history/p/ci/ci-1764547200000000000.history.json",
        ".pulumi/backups/p/ci/ci.1764547200000000000.json",
    ];

    beforeAll(async () => {
        for (const key of [".pulumi/stacks/p/ci.json", ".pulumi/stacks/p/other.json", ".pulumi/stacks/q/ci.json", ...earlier]) {
            expect((await s3.request("operator", "PUT", `${BUCKET}/${key}`, { body: `state of ${key}` })).status).toBe(200);
        }
    });

    it("gets (and heads) the current checkpoint of each stack of its project, one added later too, with no edit of the policy", async () => {
        expect(await s3.request("ci", "GET", checkpoint)).toMatchObject({ status: 200, body: "state of .pulumi/stacks/p/ci.json" });
        expect((await s3.request("ci", "HEAD", checkpoint)).status).toBe(200);
        expect(await s3.request("ci", "GET", `${BUCKET}/.pulumi/stacks/p/other.json`)).toMatchObject({ status: 200 });
    });

    it("is refused every earlier checkpoint: the .bak, history and backups, and another project's", async () => {
        for (const key of [...earlier, ".pulumi/stacks/q/ci.json"]) {
            expect(await s3.request("ci", "GET", `${BUCKET}/${key}`), key).toMatchObject(denied);
            expect((await s3.request("ci", "HEAD", `${BUCKET}/${key}`)).status, key).toBe(403);
        }
    });

    it("lists only with its checkpoint's name as the prefix, and nothing else", async () => {
        expect(await list("ci", ".pulumi/stacks/p/ci.json")).toEqual([".pulumi/stacks/p/ci.json", ".pulumi/stacks/p/ci.json.bak"]);
        expect(await list("ci", ".pulumi/stacks/p/other.json")).toEqual([".pulumi/stacks/p/other.json"]);
        for (const prefix of [
            "",
            ".pulumi/",
            ".pulumi/history/",
            ".pulumi/backups/",
            ".pulumi/stacks/p/",
            ".pulumi/stacks/p/ci",
            ".pulumi/stacks/q/ci.json",
            ".pulumi/history/p/ci/ci-1764547200000000000.checkpoint.json",
        ]) {
            const res = await s3.request("ci", "GET", BUCKET, { query: { "list-type": "2", prefix } });
            expect(res, `prefix "${prefix}"`).toMatchObject(denied);
        }
        expect((await s3.request("ci", "HEAD", BUCKET)).status).toBe(403);
    });

    it("is refused a new object, an overwrite, a delete, a copy and a multipart upload", async () => {
        expect(await s3.request("ci", "PUT", `${BUCKET}/.pulumi/locks/p/x.json`, { body: "lock" })).toMatchObject(denied);
        expect(await s3.request("ci", "PUT", checkpoint, { body: "overwritten" })).toMatchObject(denied);
        expect(await s3.request("ci", "DELETE", checkpoint)).toMatchObject(denied);
        expect(
            await s3.request("ci", "PUT", `${BUCKET}/.pulumi/stacks/p/copy.json`, {
                headers: { "x-amz-copy-source": `${S3Server.bucket}/.pulumi/stacks/p/ci.json` },
            }),
        ).toMatchObject(denied);
        expect(await s3.request("ci", "POST", `${BUCKET}/.pulumi/big`, { query: { uploads: "" } })).toMatchObject(denied);
        expect(await s3.request("operator", "GET", checkpoint)).toMatchObject({ status: 200, body: "state of .pulumi/stacks/p/ci.json" });
        expect(await list("operator", ".pulumi/stacks/p/ci.json")).toEqual([".pulumi/stacks/p/ci.json", ".pulumi/stacks/p/ci.json.bak"]);
    });

    it("deletes nothing in a batch delete (each key AccessDenied)", async () => {
        const body = `<Delete><Object><Key>.pulumi/stacks/p/ci.json</Key></Object></Delete>`;
        const md5 = createHash("md5").update(body).digest("base64");
        const res = await s3.request("ci", "POST", BUCKET, { query: { delete: "" }, headers: { "content-md5": md5 }, body });
        expect(res.body).not.toContain("<Deleted>");
        expect(res.body).toContain("AccessDenied");
        expect((await s3.request("operator", "GET", checkpoint)).status).toBe(200);
    });

    it("cannot rewrite the bucket policy that makes it read-only", async () => {
        const policy = JSON.stringify({
            Version: "2012-10-17",
            Statement: [
                { Effect: "Allow", Principal: { AWS: ["ci"] }, Action: ["s3:PutObject"], Resource: [`arn:aws:s3:::${S3Server.bucket}/*`] },
            ],
        });
        expect(await s3.request("ci", "PUT", BUCKET, { query: { policy: "" }, body: policy })).toMatchObject(denied);
    });
});

describe("wrong credentials", () => {
    it("refuses a wrong secret and an unknown access key", async () => {
        const ci = s3.credentials("ci");
        expect(await s3.request({ ...ci, secretAccessKey: "wrong" }, "GET", BUCKET)).toMatchObject({
            status: 403,
            code: "SignatureDoesNotMatch",
        });
        expect(await s3.request({ accessKeyId: "nobody", secretAccessKey: ci.secretAccessKey }, "GET", BUCKET)).toMatchObject({
            status: 403,
            code: "InvalidAccessKeyId",
        });
    });
});

describe("the pulumi CLI with this backend", () => {
    it("CI's preview and export read only meta.yaml and the stack's current checkpoint; its up is refused before any write and the bucket stays as it was", async () => {
        const dir = mkdtempSync(join(tmpdir(), "cra-s3-project-"));
        try {
            writeFileSync(join(dir, "Pulumi.yaml"), "name: p\nruntime: nodejs\nmain: index.js\n");
            writeFileSync(join(dir, "index.js"), "exports.answer = 42;\n");
            symlinkSync(resolve("node_modules"), join(dir, "node_modules"));
            const pulumi = (who: S3Who, ...args: string[]): { status: number | null; output: string } => {
                const r = spawnSync("pulumi", [...args, "--non-interactive"], {
                    cwd: dir,
                    encoding: "utf8",
                    env: {
                        ...process.env,
                        ...s3.env(who),
                        // As the workflows set it: no listing of every project's stacks for a legacy-layout warning.
                        ...(who === "ci" ? { PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true" } : {}),
                        PULUMI_HOME: join(dir, ".pulumi-home"),
                        PULUMI_BACKEND_URL: s3.backendUrl,
                        PULUMI_CONFIG_PASSPHRASE: "sandbox",
                    },
                });
                return { status: r.status, output: r.stdout + r.stderr };
            };
            // Keys, ETags and times of every object: any write changes it.
            const snapshot = async (): Promise<string> =>
                (await s3.request("operator", "GET", BUCKET, { query: { "list-type": "2", prefix: ".pulumi/" } })).body;
            expect(pulumi("operator", "stack", "init", "dev")).toMatchObject({ status: 0 });
            expect(pulumi("operator", "up", "--yes", "--skip-preview")).toMatchObject({ status: 0 });
            expect(pulumi("operator", "up", "--yes", "--skip-preview")).toMatchObject({ status: 0 });
            const before = await snapshot();
            // The operator's two ups left earlier checkpoints beside the current one.
            expect(before).toMatch(/<Key>\.pulumi\/history\/p\/dev\//);
            expect(before).toContain("<Key>.pulumi/stacks/p/dev.json.bak</Key>");
            const seen = s3.requests().length;
            const ci = () =>
                s3
                    .requests()
                    .slice(seen)
                    .filter((r) => r.requester === s3.credentials("ci").accessKeyId);

            const preview = pulumi("ci", "preview");
            expect(preview.status, preview.output).toBe(0);
            const exported = pulumi("ci", "stack", "export");
            expect(exported.status).toBe(0);
            expect(exported.output).toContain('"answer": 42');
            // What they read, measured: each request and whether it was allowed.
            const read = [...new Set(ci().map((r) => `${r.operation} ${r.key === "-" ? decodeURIComponent(r.uri) : r.key} ${r.status}`))];
            console.log(`CI's preview and stack export asked the backend for:\n  ${read.join("\n  ")}`);
            for (const r of ci()) {
                // Allowed, each: 200, or 404 for the tags of a stack that has none.
                expect([200, 404], `${r.operation} ${r.key} ${r.uri}`).toContain(r.status);
                if (r.key !== "-")
                    expect([".pulumi/meta.yaml", ".pulumi/stacks/p/dev.json", ".pulumi/stacks/p/dev.pulumi-tags"]).toContain(r.key);
                else expect(decodeURIComponent(r.uri)).toContain("prefix=.pulumi/stacks/p/dev.json");
            }
            expect(ci().map((r) => r.operation)).toContain("s3_GetObject");

            // An up is refused before it writes anything: the listing of the stack's locks is not CI's to make.
            const up = pulumi("ci", "up", "--yes", "--skip-preview");
            expect(up.status).not.toBe(0);
            expect(up.output).toMatch(/could not list bucket: .*ListObjectsV2, https response error StatusCode: 403.*AccessDenied/);
            const refused = ci().filter((r) => r.status === 403);
            expect(refused.map((r) => r.operation)).toEqual(["s3_ListObjectsV2"]);
            expect(decodeURIComponent(refused[0]?.uri ?? "")).toContain("prefix=.pulumi/locks/");
            expect(ci().filter((r) => !/^s3_(GetObject|HeadObject|ListObjects)/.test(r.operation))).toEqual([]);
            expect(await snapshot()).toBe(before);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
