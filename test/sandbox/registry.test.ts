/**
 * The sandbox registry behaves as zot v2.1.20 at registry.ops.eblu.me, so
 * that the push-permission probe can be tested against it: one table of
 * behaviours, run against the stand-in (docker-registry behind a front
 * that reproduces zot's auth layer) always, and against the real zot
 * binary when it is on this machine (sandbox/zot.ts says where it looks).
 * The file prints which ran.
 *
 * The push is real skopeo (ringtail's root filesystem, run with
 * systemd-nspawn on this machine's network), the key on its stdin.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ZotKeys, type ZotKey } from "../../components/registry/zot-keys";
import { writeOciImage } from "../../sandbox/oci-image";
import { startRegistry, type Registry, type RegistryKind, type RegistryUser } from "../../sandbox/registry";
import { findZot } from "../../sandbox/zot";
import { findLeaks } from "../support/leaks";

const REPO = "blumeops/ci-probe";
const USER = "zot-ci";
const PASSWORD = "sandbox-zot-ci-password-7f3a9c1e";
const ROTATED = "sandbox-zot-ci-password-rotated-2b8d4e6f";
/** A user with `delete`, which zot-ci lacks. */
const ADMIN: RegistryUser = {
    user: "ops-admin",
    password: "sandbox-ops-admin-password-5c1d",
    actions: ["read", "create", "update", "delete"],
};
/** An authenticated user whose policy gives only `read`. */
const READER: RegistryUser = { user: "reader", password: "sandbox-reader-password-9e2f", actions: ["read"] };
/** An authenticated user no policy gives anything. */
const OUTSIDER: RegistryUser = { user: "outsider", password: "sandbox-outsider-password-3a7b", actions: [] };
const PORTS: Record<RegistryKind, number> = { "stand-in": 5051, zot: 5052 };

const zot = findZot();
const kinds: RegistryKind[] = ["stand-in", ...("path" in zot ? (["zot"] as const) : [])];
console.log(`registry behaviours run against: ${kinds.join(" and ")}${"missing" in zot ? ` (not zot: ${zot.missing})` : ""}`);

let rootfs: string;
let image: string;

beforeAll(() => {
    const r = spawnSync("bash", [join(__dirname, "..", "..", "sandbox", "ringtail", "host"), "rootfs"], {
        encoding: "utf8",
        timeout: 600_000,
    });
    if (r.status !== 0) throw new Error(`sandbox/ringtail/host rootfs failed: ${r.stderr}`);
    rootfs = r.stdout.trim();
    image = mkdtempSync(join(tmpdir(), "cra-registry-image-"));
    writeOciImage(image, "pushed by the registry behaviour test\n");
}, 600_000);

afterAll(() => {
    rmSync(image, { recursive: true, force: true });
});

const basic = (user: string, secret: string): Record<string, string> => ({
    Authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString("base64")}`,
});

describe.each(kinds)("the sandbox registry (%s)", (kind) => {
    let registry: Registry;
    let work: string;
    /** Every key and password this block used, for the leak scan. */
    const secrets: Record<string, string> = {
        PASSWORD,
        ROTATED,
        ADMIN: ADMIN.password,
        READER: READER.password,
        OUTSIDER: OUTSIDER.password,
    };
    let key = "";
    let keyId = "";
    let password = PASSWORD;

    const upload = (headers: Record<string, string> = {}): Promise<Response> =>
        fetch(`${registry.url}/v2/${REPO}/blobs/uploads/`, { method: "POST", headers });
    const sessions = (): Promise<number> => registry.uploadSessions(REPO);
    async function newKey(name: string, options?: { expiresAt?: Date }): Promise<{ key: string; id: string }> {
        const created = await registry.createApiKey(USER, password, options);
        secrets[name] = created.key;
        return created;
    }

    /** skopeo login (the secret on stdin) and copy of the small image to `tag`, as the workflows push. */
    function skopeoPush(tag: string, user: string, secret: string): { code: number | null; output: string } {
        const authfile = "/tmp/auth.json";
        const script = [
            `/usr/bin/skopeo login --tls-verify=false --authfile ${authfile} --username ${user} --password-stdin ${registry.address}`,
            `/usr/bin/skopeo copy --dest-tls-verify=false --authfile ${authfile} oci:/img:latest docker://${registry.address}/${REPO}:${tag}`,
        ].join(" && ");
        const r = spawnSync(
            "systemd-nspawn",
            [
                "--quiet",
                "--register=no",
                "--keep-unit",
                "--as-pid2",
                `--machine=cra-skopeo-${process.pid}`,
                `--directory=${rootfs}`,
                "--volatile=overlay",
                "--console=pipe",
                `--bind-ro=${image}:/img`,
                "--",
                "/bin/sh",
                "-c",
                script,
            ],
            { input: secret, encoding: "utf8", timeout: 120_000 },
        );
        return { code: r.status, output: r.stdout + r.stderr };
    }

    beforeAll(async () => {
        work = mkdtempSync(join(tmpdir(), `cra-registry-${kind}-`));
        const t0 = Date.now();
        registry = await startRegistry(work, "127.0.0.1", PORTS[kind], USER, PASSWORD, { kind, otherUsers: [ADMIN, READER, OUTSIDER] });
        console.log(`${kind}: up in ${Date.now() - t0} ms at ${registry.url}`);
    }, 60_000);

    afterAll(async () => {
        await (registry as Registry | undefined)?.stop();
        rmSync(work, { recursive: true, force: true });
    }, 60_000);

    it(`[${kind}] runs as asked`, () => {
        expect(registry.kind).toBe(kind);
        expect(registry.url).toBe(`http://${registry.address}`);
    });

    it(`[${kind}] anonymous GET /v2/ is 200, and invites basic auth`, async () => {
        const res = await fetch(`${registry.url}/v2/`);
        expect(res.status).toBe(200);
        expect(res.headers.get("www-authenticate")).toMatch(/^basic realm="?zot"?$/i);
    });

    it(`[${kind}] an anonymous upload is 401 with WWW-Authenticate: Basic realm="zot"`, async () => {
        const res = await upload();
        expect(res.status).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe('Basic realm="zot"');
        expect(await res.json()).toMatchObject({ errors: [{ code: "UNAUTHORIZED" }] });
    });

    it(`[${kind}] zot-ci creates its own API key (zak_ + 32 hex); the listing names it, never the secret`, async () => {
        ({ key, id: keyId } = await newKey("key"));
        expect(key).toMatch(/^zak_[0-9a-f]{32}$/);
        expect(keyId).toMatch(/^[0-9a-f-]{36}$/);
        const res = await fetch(`${registry.url}/zot/auth/apikey`, { headers: basic(USER, PASSWORD) });
        expect(res.status).toBe(200);
        const text = await res.text();
        expect((JSON.parse(text) as { apiKeys: { uuid: string; label: string }[] }).apiKeys).toEqual([
            expect.objectContaining({ uuid: keyId, label: "ci" }),
        ]);
        expect(text.includes(key)).toBe(false);
    });

    it(`[${kind}] an upload with the key is 202 with a relative Location and Range 0-0, and opens a session on disk`, async () => {
        const before = await sessions();
        const res = await upload(basic(USER, key));
        expect(res.status).toBe(202);
        expect(res.headers.get("location")).toMatch(new RegExp(`^/v2/${REPO}/blobs/uploads/[0-9a-f-]{36}`));
        expect(res.headers.get("range")).toBe("0-0");
        expect(await sessions()).toBe(before + 1);
    });

    it(`[${kind}] zot-ci may not DELETE its upload (403, the session stays); a user with delete may (204, gone)`, async () => {
        const location = (await upload(basic(USER, key))).headers.get("location")!;
        const open = await sessions();
        const denied = await fetch(`${registry.url}${location}`, { method: "DELETE", headers: basic(USER, key) });
        expect(denied.status).toBe(403);
        expect(await denied.json()).toMatchObject({ errors: [{ code: "DENIED" }] });
        expect(await sessions()).toBe(open);
        const anonymous = await fetch(`${registry.url}${location}`, { method: "DELETE" });
        expect(anonymous.status).toBe(401);
        const admin = await fetch(`${registry.url}${location}`, { method: "DELETE", headers: basic(ADMIN.user, ADMIN.password) });
        expect(admin.status).toBe(204);
        expect(await sessions()).toBe(open - 1);
    });

    it(`[${kind}] an authenticated user without create is 403 on upload; one outside every policy may not even read`, async () => {
        const tags = (who: RegistryUser) => fetch(`${registry.url}/v2/${REPO}/tags/list`, { headers: basic(who.user, who.password) });
        expect((await upload(basic(READER.user, READER.password))).status).toBe(403);
        // Allowed: what the registry behind says (an untagged repository may be unknown to it).
        expect([200, 404]).toContain((await tags(READER)).status);
        // Anonymous users may read; an authenticated one gets only what its policies give.
        expect((await upload(basic(OUTSIDER.user, OUTSIDER.password))).status).toBe(403);
        expect((await tags(OUTSIDER)).status).toBe(403);
    });

    it(`[${kind}] a wrong key or password is 401, on uploads and on GET /v2/ alike`, async () => {
        const wrong = `zak_${"0".repeat(32)}`;
        expect((await upload(basic(USER, wrong))).status).toBe(401);
        expect((await upload(basic(USER, "not-the-password"))).status).toBe(401);
        expect((await fetch(`${registry.url}/v2/`, { headers: basic(USER, wrong) })).status).toBe(401);
        expect((await upload({ Authorization: `Bearer ${wrong}` })).status).toBe(401);
    });

    it(`[${kind}] the right key with another username is 401`, async () => {
        expect((await upload(basic(ADMIN.user, key))).status).toBe(401);
        expect((await upload(basic("nobody", key))).status).toBe(401);
    });

    it(`[${kind}] two keys at once both push; revoking one refuses it and leaves the other; another user cannot revoke it`, async () => {
        const second = await newKey("second");
        expect((await upload(basic(USER, key))).status).toBe(202);
        expect((await upload(basic(USER, second.key))).status).toBe(202);
        // zot answers 200 to a revocation of a key that is not the caller's, and revokes nothing.
        const res = await fetch(`${registry.url}/zot/auth/apikey?id=${second.id}`, {
            method: "DELETE",
            headers: basic(ADMIN.user, ADMIN.password),
        });
        expect(res.status).toBe(200);
        expect((await upload(basic(USER, second.key))).status).toBe(202);
        await registry.revokeApiKey(USER, PASSWORD, second.id);
        expect((await upload(basic(USER, second.key))).status).toBe(401);
        expect((await upload(basic(USER, key))).status).toBe(202);
    });

    it(`[${kind}] a key pushes until its expiry, then is 401; an expiry in the past is refused`, async () => {
        const expiresAt = new Date(Math.ceil((Date.now() + 3_000) / 1000) * 1000);
        const expiring = await newKey("expiring", { expiresAt });
        expect((await upload(basic(USER, expiring.key))).status).toBe(202);
        await new Promise((resolve) => setTimeout(resolve, expiresAt.getTime() - Date.now() + 500));
        expect((await upload(basic(USER, expiring.key))).status).toBe(401);
        await expect(registry.createApiKey(USER, PASSWORD, { expiresAt: new Date(Date.now() - 60_000) })).rejects.toThrow(/HTTP 400/);
    });

    it(`[${kind}] the key endpoint: anonymous 500 (zot's answer), a key may make a key, no id is 400`, async () => {
        expect((await fetch(`${registry.url}/zot/auth/apikey`)).status).toBe(500);
        const made = await registry.createApiKey(USER, key);
        secrets["made by a key"] = made.key;
        expect(made.key).toMatch(/^zak_[0-9a-f]{32}$/);
        expect((await fetch(`${registry.url}/zot/auth/apikey`, { method: "DELETE", headers: basic(USER, PASSWORD) })).status).toBe(400);
        expect((await fetch(`${registry.url}/zot/auth/apikey`, { method: "POST", headers: basic(USER, PASSWORD), body: "x" })).status).toBe(
            400,
        );
    });

    it(`[${kind}] with a key alone (components/registry/zot-keys.ts): mint, list (the caller's lastUsed moves), revoke any key of the user, itself too; an empty id revokes nothing`, async () => {
        const zot = new ZotKeys({ url: registry.url }, USER);
        const start = await newKey("key-only");
        const minted = await zot.mint(start.key, "minted with a key", new Date(Date.now() + 86_400_000));
        secrets["minted with a key"] = minted.value;
        expect(minted).toMatchObject({ label: "minted with a key", isExpired: false });
        const first = await zot.list(start.key);
        const second = await zot.list(start.key);
        const used = (list: ZotKey[]) => list.find((k) => k.uuid === start.id)?.lastUsed;
        expect(used(second)).not.toBe(used(first));
        expect(second.find((k) => k.uuid === minted.uuid)?.lastUsed).toBe(first.find((k) => k.uuid === minted.uuid)?.lastUsed);
        const empty = await fetch(`${registry.url}/zot/auth/apikey?id=`, { method: "DELETE", headers: basic(USER, start.key) });
        expect(empty.status).toBe(200);
        expect((await zot.list(start.key)).length).toBe(second.length);
        await zot.revoke(minted.value, start.id);
        expect(await zot.accepts(start.key)).toBe(false);
        await zot.revoke(minted.value, minted.uuid);
        expect(await zot.accepts(minted.value)).toBe(false);
    });

    it(`[${kind}] skopeo pushes with the key (login --password-stdin, copy) and is refused with a revoked one`, async () => {
        const t0 = Date.now();
        const pushed = skopeoPush("v1", USER, key);
        console.log(`${kind}: skopeo push in ${Date.now() - t0} ms`);
        expect(pushed.code, pushed.output).toBe(0);
        expect(await registry.tags(REPO, PASSWORD)).toContain("v1");
        const anonymous = await fetch(`${registry.url}/v2/${REPO}/tags/list`);
        expect(anonymous.status).toBe(200);
        const revoked = await newKey("revoked");
        await registry.revokeApiKey(USER, PASSWORD, revoked.id);
        const refused = skopeoPush("v2", USER, revoked.key);
        expect(refused.code).not.toBe(0);
        expect(refused.output).toMatch(/401|unauthorized|authentication required|invalid username\/password/i);
        expect(await registry.tags(REPO, PASSWORD)).not.toContain("v2");
    });

    it(`[${kind}] setKey rotates zot-ci's password: skopeo with the old is refused, with the new pushes; keys made before still work`, async () => {
        // As the ringtail and indri suites use it: setKey, then at once a push (a blocking spawnSync).
        registry.setKey(ROTATED);
        password = ROTATED;
        const stale = skopeoPush("stale", USER, PASSWORD);
        expect(stale.code).not.toBe(0);
        expect(stale.output).toMatch(/401|unauthorized|authentication required|invalid username\/password/i);
        const pushed = skopeoPush("rotated", USER, ROTATED);
        expect(pushed.code, pushed.output).toBe(0);
        expect(await registry.tags(REPO, ROTATED)).toEqual(expect.arrayContaining(["v1", "rotated"]));
        expect(await registry.tags(REPO, ROTATED)).not.toContain("stale");
        expect((await upload(basic(USER, PASSWORD))).status).toBe(401);
        expect((await upload(basic(USER, key))).status).toBe(202);
    });

    it(`[${kind}] auth off: anonymous uploads are 202 and the key endpoint is gone; on again: 401, and the key still pushes`, async () => {
        const t0 = Date.now();
        await registry.setAuth(false);
        expect((await upload()).status).toBe(202);
        expect((await fetch(`${registry.url}/zot/auth/apikey`, { headers: basic(USER, ROTATED) })).status).toBe(404);
        await registry.setAuth(true);
        console.log(`${kind}: auth off and on in ${Date.now() - t0} ms`);
        expect((await upload()).status).toBe(401);
        expect((await upload(basic(USER, key))).status).toBe(202);
    });

    it(`[${kind}] the registry log has the requests and no key or password in any form`, () => {
        const log = readFileSync(registry.logFile, "utf8");
        expect(log).toContain(`/v2/${REPO}/blobs/uploads/`);
        expect(Object.keys(secrets).length).toBeGreaterThanOrEqual(10);
        expect(findLeaks({ "registry log": log }, secrets)).toEqual([]);
    });
});
