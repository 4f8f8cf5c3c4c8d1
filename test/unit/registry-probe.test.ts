/**
 * The push-permission probe against a registry that answers as zot does,
 * and as a broken or open one would: each verdict names the registry and
 * the status, never the key.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { probeRegistry } from "../../components/registry/probe";
import { fakeRegistry, type FakeRegistry } from "../support/fake-registry";

const USER = "zot-ci";
const KEY = "zak_0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const REPO = "blumeops/runner-job-image";

let zot: FakeRegistry;
beforeAll(async () => {
    zot = await fakeRegistry(USER);
    zot.keys.add(KEY);
});
afterAll(async () => {
    await zot.close();
});

const probe = (url = zot.url, key = KEY, caBundle?: string) =>
    probeRegistry({ url, repository: REPO, ...(caBundle !== undefined ? { caBundle } : {}) }, USER, key);

describe("the probe", () => {
    it("accepts: an upload with the key opens (202) and is cancelled; one without credentials is refused (401)", async () => {
        zot.mode = "zot";
        zot.requests.length = 0;
        const r = await probe();
        expect(r).toMatchObject({
            acceptsKey: true,
            refusesAnonymous: true,
            keyStatus: 202,
            anonymousStatus: 401,
            cancelStatus: 403,
            verdict: "ok",
        });
        expect(r.url).toBe(zot.url);
        expect(Date.parse(r.checkedAt)).toBeGreaterThan(Date.now() - 60_000);
        // Both uploads on the repository, then the cancel of the one the key opened, at the Location it was given.
        expect(zot.requests.map((q) => `${q.method} ${q.path} ${q.auth === undefined ? "anonymous" : "key"}`).sort()).toEqual([
            `DELETE /v2/${REPO}/blobs/uploads/8f1c0e9a-upload key`,
            // The key's user's keys, twice: the item records no id here, so the probe finds the key by its last use.
            "GET /zot/auth/apikey key",
            "GET /zot/auth/apikey key",
            `POST /v2/${REPO}/blobs/uploads/ anonymous`,
            `POST /v2/${REPO}/blobs/uploads/ key`,
        ]);
        expect(zot.requests.find((q) => q.auth !== undefined)?.auth).toBe(`Basic ${Buffer.from(`${USER}:${KEY}`).toString("base64")}`);
    });

    it.each([
        [
            "a revoked or wrong key",
            () => (zot.mode = "zot"),
            "zak_not_this_registrys_key_00000000",
            /refuses the key \(401\): it is revoked, expired, or not zot-ci's/,
        ],
        [
            "no push rights",
            () => (zot.mode = 403),
            KEY,
            /zot-ci may not push to blumeops\/runner-job-image on http:\/\/127\.0\.0\.1:\d+ \(403\)/,
        ],
        ["rate limiting", () => (zot.mode = 429), KEY, /is rate limiting \(429\)/],
        ["a server error", () => (zot.mode = 503), KEY, /failed \(503\): the registry is in trouble/],
        [
            "a login page",
            () => (zot.mode = { redirect: "https://sso.example/login" }),
            KEY,
            /redirected the upload \(302\) to https:\/\/sso\.example\/login: a login page/,
        ],
    ])("%s: acceptsKey false, the verdict names registry and status", async (_label, arrange, key, verdict) => {
        arrange();
        const r = await probe(zot.url, key);
        expect(r.acceptsKey).toBe(false);
        expect(r.verdict).toMatch(verdict);
        expect(r.verdict).toContain(zot.url.replace(/^https?:\/\//, ""));
        expect(JSON.stringify(r)).not.toContain(key);
        zot.mode = "zot";
    });

    it("an unreachable registry: status 0 and the error's code", async () => {
        const r = await probe("http://127.0.0.1:9");
        expect(r).toMatchObject({ acceptsKey: false, refusesAnonymous: false, keyStatus: 0, anonymousStatus: 0, cancelStatus: 0 });
        expect(r.verdict).toMatch(/^http:\/\/127\.0\.0\.1:9 is unreachable \(ECONNREFUSED\)$/);
    });

    it("authentication off: an anonymous upload is accepted, and the verdict raises the alarm", async () => {
        zot.open = true;
        const r = await probe();
        zot.open = false;
        expect(r).toMatchObject({ acceptsKey: true, refusesAnonymous: false, anonymousStatus: 202 });
        expect(r.verdict).toMatch(/accepts an upload to blumeops\/runner-job-image without credentials \(202\): its authentication is off/);
    });

    it("TLS: an untrusted certificate is a TLS verdict naming caBundle; with the CA in caBundle the probe passes", async () => {
        const tls = await fakeRegistry(USER, true);
        tls.keys.add(KEY);
        try {
            const untrusted = await probe(tls.url);
            expect(untrusted.keyStatus).toBe(0);
            expect(untrusted.verdict).toMatch(/^TLS with https:\/\/127\.0\.0\.1:\d+ failed \(\w+\): .*set registry\.caBundle/);
            const trusted = await probe(tls.url, KEY, tls.certificate);
            expect(trusted).toMatchObject({ acceptsKey: true, refusesAnonymous: true, verdict: "ok" });
        } finally {
            await tls.close();
        }
    });
});

describe("the user's keys at zot", () => {
    const OTHER = "zak_minted_by_a_job_0000000000000000";
    beforeAll(() => {
        zot.mode = "zot";
        zot.keys.add(OTHER);
        zot.listed.set(KEY, {
            uuid: "k-current",
            label: "ci-registry-auth rotate",
            createdAt: "2026-12-01T00:00:00Z",
            lastUsed: "2026-12-04T00:00:00Z",
            expirationDate: "2027-03-01T00:00:00Z",
        });
        zot.listed.set(OTHER, {
            uuid: "k-job",
            label: "a job's own",
            createdAt: "2026-12-02T00:00:00Z",
            lastUsed: "2026-12-03T00:00:00Z",
            expirationDate: "0001-01-01T00:00:00Z",
        });
    });
    afterAll(() => {
        zot.keys.delete(OTHER);
        zot.listed.clear();
    });

    it("names the key by the id the item records, with zot's expiry, and every other key by label and last use", async () => {
        const r = await probeRegistry({ url: zot.url, repository: REPO }, USER, KEY, "k-current");
        expect(r).toMatchObject({
            keysRead: "ok",
            keyId: "k-current",
            keyExpiresAt: "2027-03-01T00:00:00Z",
            otherKeys: [
                {
                    uuid: "k-job",
                    label: "a job's own",
                    createdAt: "2026-12-02T00:00:00Z",
                    lastUsed: "2026-12-03T00:00:00Z",
                    expirationDate: "0001-01-01T00:00:00Z",
                },
            ],
        });
        expect(JSON.stringify(r)).not.toContain(KEY);
        expect(JSON.stringify(r)).not.toContain(OTHER);
    });

    it("without a recorded id, finds the key as the one whose last use moved between two listings", async () => {
        const r = await probeRegistry({ url: zot.url, repository: REPO }, USER, KEY);
        expect(r.keyId).toBe("k-current");
        expect(r.otherKeys?.map((k) => k.uuid)).toEqual(["k-job"]);
    });

    it("says when the keys could not be listed, and claims nothing about them", async () => {
        zot.mode = 404;
        const r = await probeRegistry({ url: zot.url, repository: REPO }, USER, KEY, "k-current");
        zot.mode = "zot";
        expect(r.keysRead).toMatch(/^not listed: the registry does not accept the key/);
        expect(r).not.toHaveProperty("keyId");
        expect(r).not.toHaveProperty("otherKeys");
    });
});
