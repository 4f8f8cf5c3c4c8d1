/**
 * The rotation's order of steps (automation/rotation.ts) against a world
 * that records every call: zot as zot v2.1.20 behaves (a key mints, lists
 * and revokes its user's keys; a revoked or expired key gets 401), the
 * item, and the stacks' `up`s. Each invariant of the rotation is asserted
 * here; the whole-stack tests run it for real.
 */
import { describe, expect, it } from "vitest";

import { pulumiErrors, rotateArgs, staleLock } from "../../automation/rotate";
import { rotate, RotationError, type RotationWorld, type StackConfirmation } from "../../automation/rotation";
import { fingerprint } from "../../components/fingerprint";
import type { MintedKey, ZotKey } from "../../components/registry/zot-keys";

const OLD = "zak_0123456789abcdef0123456789abcdef";

/** zot's keys of one user, by value; each call is logged. */
class FakeZot {
    readonly keys = new Map<string, ZotKey>();
    readonly calls: string[] = [];
    private n = 0;

    constructor(values: string[]) {
        for (const v of values) this.add(v, `key ${v.slice(-4)}`);
    }

    add(value: string, label: string): ZotKey {
        const k: ZotKey = {
            uuid: `uuid-${++this.n}`,
            label,
            createdAt: "2026-12-01T00:00:00Z",
            expirationDate: "2027-03-01T00:00:00Z",
            isExpired: false,
            lastUsed: "2026-12-04T00:00:00Z",
        };
        this.keys.set(value, k);
        return k;
    }

    private authorize(key: string): void {
        if (!this.keys.has(key)) throw new Error("401");
    }

    readonly api = {
        accepts: (key: string): Promise<boolean> => {
            this.calls.push("accepts");
            return Promise.resolve(this.keys.has(key));
        },
        list: (key: string): Promise<ZotKey[]> => {
            this.calls.push("list");
            this.authorize(key);
            return Promise.resolve([...this.keys.values()]);
        },
        mint: (key: string, label: string, expiresAt: Date): Promise<MintedKey> => {
            this.calls.push("mint");
            this.authorize(key);
            const value = `zak_minted${String(this.n).padStart(26, "0")}`;
            const k = this.add(value, label);
            k.expirationDate = expiresAt.toISOString();
            return Promise.resolve({ ...k, value });
        },
        revoke: (key: string, uuid: string): Promise<void> => {
            this.authorize(key);
            this.calls.push(`revoke ${uuid}`);
            for (const [v, k] of this.keys) if (k.uuid === uuid) this.keys.delete(v);
            return Promise.resolve();
        },
    };
}

interface Fake {
    world: RotationWorld;
    zot: FakeZot;
    item: { value: string; keyId?: string };
    /** Every step, in order: zot's calls, stores, ups (with what zot held at the time). */
    steps: string[];
    said: string[];
}

function fake(opts: { others?: string[]; deliver?: (stack: string, key: string) => StackConfirmation; store?: () => void } = {}): Fake {
    const zot = new FakeZot([OLD, ...(opts.others ?? [])]);
    const item: { value: string; keyId?: string } = { value: OLD, keyId: zot.keys.get(OLD)?.uuid ?? "" };
    const steps: string[] = [];
    const said: string[] = [];
    const world: RotationWorld = {
        registry: "https://registry.example",
        user: "zot-ci",
        where: 'item "zot-ci-apikey" in vault "blumeops"',
        readKey: () => Promise.resolve({ ...item }),
        storeKey: (key) => {
            opts.store?.();
            item.value = key.value;
            item.keyId = key.uuid;
            steps.push("store");
            return Promise.resolve();
        },
        zot: zot.api,
        stacks: ["indri", "ringtail"],
        deliver: (stack) => {
            // What the runner then holds must be accepted by zot: checked at the moment of the up.
            steps.push(`up ${stack} (zot holds ${zot.keys.size})`);
            const r = opts.deliver?.(stack, item.value) ?? { canPush: zot.keys.has(item.value), keyFingerprint: fingerprint(item.value) };
            return Promise.resolve(r);
        },
        say: (line) => said.push(line),
        now: () => new Date("2026-12-05T12:00:00Z"),
    };
    return { world, zot, item, steps, said };
}

describe("rotate", () => {
    it("mints with the current key, stores, ups every stack, and only then revokes every other key: one live key, the item's", async () => {
        const f = fake({ others: ["zak_minted_by_a_job_00000000000000000"] });
        const summary = await rotate(f.world, { dryRun: false, lifetimeDays: 90 });
        expect(f.zot.calls.slice(0, 3)).toEqual(["accepts", "list", "mint"]);
        // Nothing was revoked before both stacks confirmed; the job's key and the old key after.
        const firstRevoke = f.zot.calls.findIndex((c) => c.startsWith("revoke"));
        expect(f.steps).toEqual(["store", "up indri (zot holds 3)", "up ringtail (zot holds 3)"]);
        expect(firstRevoke).toBeGreaterThan(f.zot.calls.indexOf("mint"));
        expect([...f.zot.keys.keys()]).toEqual([f.item.value]);
        expect(f.item.value).not.toBe(OLD);
        expect(summary).toMatchObject({
            oldFingerprint: fingerprint(OLD),
            newFingerprint: fingerprint(f.item.value),
            confirmed: ["indri", "ringtail"],
            expiresAt: "2027-03-05T12:00:00.000Z",
        });
        // The old key (uuid-1) and the one a job minted for itself (uuid-2).
        expect(summary?.revoked.map((k) => k.uuid).sort()).toEqual(["uuid-1", "uuid-2"]);
        // What it printed names keys by id, label and use, never a value.
        expect(f.said.join("\n")).toMatch(/uuid-2 "key 0000", created 2026-12-01T00:00:00Z, last used 2026-12-04T00:00:00Z/);
        for (const value of [OLD, f.item.value]) expect(f.said.join("\n")).not.toContain(value);
    });

    it("stops before any revocation when a stack cannot confirm, naming it and why; the old key keeps working", async () => {
        const f = fake({
            deliver: (stack, key) =>
                stack === "ringtail"
                    ? {
                          canPush: false,
                          keyFingerprint: fingerprint(OLD),
                          problem: "ssh: connect to host ringtail port 22: Connection refused",
                      }
                    : { canPush: true, keyFingerprint: fingerprint(key) },
        });
        const err = await rotate(f.world, { dryRun: false, lifetimeDays: 90 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RotationError);
        expect((err as Error).message).toMatch(/no key was revoked: ringtail: ssh: connect to host ringtail port 22: Connection refused/);
        expect(f.zot.calls.filter((c) => c.startsWith("revoke"))).toEqual([]);
        expect(f.zot.keys.has(OLD)).toBe(true);
    });

    it("also stops when a stack reports another fingerprint, or canPush false", async () => {
        for (const deliver of [
            (): StackConfirmation => ({ canPush: true, keyFingerprint: fingerprint(OLD) }),
            (_s: string, key: string): StackConfirmation => ({ canPush: false, keyFingerprint: fingerprint(key) }),
        ]) {
            const f = fake({ deliver });
            await expect(rotate(f.world, { dryRun: false, lifetimeDays: 90 })).rejects.toThrow(/no key was revoked: indri: /);
            expect(f.zot.calls.filter((c) => c.startsWith("revoke"))).toEqual([]);
        }
    });

    it("revokes the key it minted when it cannot store it, and changes nothing else", async () => {
        const f = fake({
            store: () => {
                throw new Error("Connect at http://connect did not answer (ECONNREFUSED)");
            },
        });
        await expect(rotate(f.world, { dryRun: false, lifetimeDays: 90 })).rejects.toThrow(
            /could not store the new key in item "zot-ci-apikey" in vault "blumeops": Connect .*ECONNREFUSED.*The new key was revoked/,
        );
        expect([...f.zot.keys.keys()]).toEqual([OLD]);
        expect(f.steps).toEqual([]);
    });

    it("says what holds when zot fails during the revocation: the runners have the new key, run it again", async () => {
        const f = fake();
        const list = f.zot.api.list;
        let calls = 0;
        f.zot.api.list = (key: string) =>
            ++calls > 1 ? Promise.reject(new Error("GET http://zot/zot/auth/apikey: no answer (ECONNREFUSED)")) : list(key);
        await expect(rotate(f.world, { dryRun: false, lifetimeDays: 90 })).rejects.toThrow(
            /every stack confirmed the new key \(sha256:[0-9a-f]{16}\), but revoking the other keys failed: GET .*ECONNREFUSED\)\. The runners and item "zot-ci-apikey" in vault "blumeops" hold the new key/,
        );
        expect(f.steps).toEqual(["store", "up indri (zot holds 2)", "up ringtail (zot holds 2)"]);
    });

    it("run again after a run that died between mint and revoke, converges to one key: the dead run's key is revoked", async () => {
        const f = fake();
        // The dead run minted and stored, and delivered to one stack only.
        const dead = await f.zot.api.mint(OLD, "ci-registry-auth rotate (killed)", new Date("2027-03-01T00:00:00Z"));
        f.item.value = dead.value;
        f.item.keyId = dead.uuid;
        await rotate(f.world, { dryRun: false, lifetimeDays: 90 });
        expect([...f.zot.keys.keys()]).toEqual([f.item.value]);
        expect(f.zot.keys.has(dead.value)).toBe(false);
        expect(f.zot.keys.has(OLD)).toBe(false);
    });

    it("says zot no longer accepts the item's key, and how the first key is made, when it was revoked or expired", async () => {
        const f = fake();
        f.zot.keys.delete(OLD);
        await expect(rotate(f.world, { dryRun: false, lifetimeDays: 90 })).rejects.toThrow(
            /zot at https:\/\/registry\.example no longer accepts the key in item "zot-ci-apikey" in vault "blumeops" \(sha256:[0-9a-f]{16}\): .*log in to zot's UI as zot-ci \(OIDC\), make a key there, store it in the item, and run rotate again/,
        );
        expect(f.zot.calls).toEqual(["accepts"]);
    });

    it("with --dry-run lists the keys it would revoke and changes nothing", async () => {
        const f = fake({ others: ["zak_minted_by_a_job_00000000000000000"] });
        expect(await rotate(f.world, { dryRun: true, lifetimeDays: 90 })).toBeUndefined();
        expect(f.zot.calls).toEqual(["accepts", "list"]);
        expect(f.steps).toEqual([]);
        expect(f.zot.keys.size).toBe(2);
        const said = f.said.join("\n");
        expect(said).toMatch(/Dry run: nothing changes/);
        expect(said).toMatch(/mint a key "ci-registry-auth rotate 2026-12-05T12:00Z" for zot-ci, expiring 2027-03-05T12:00:00\.000Z/);
        expect(said).toMatch(/revoke every other key of zot-ci:\n {5}uuid-1 .*\n {5}uuid-2 /);
    });
});

describe("the command around it", () => {
    const locked = (host: string, pid: number): string =>
        "stderr: Command failed with exit code 1: pulumi up --yes --stack indri --non-interactive\n" +
        "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n" +
        `  file:///b/.pulumi/locks/organization/ci-registry-auth/indri/x.json: created by root@${host} (pid ${String(pid)}) at 2026-12-05T23:11:38Z\n`;

    it("breaks only a lock left by a run of this machine that is gone: never another machine's, a live run's, or an unlocked error", () => {
        expect(staleLock(locked("vm", 6917), "vm", () => false)).toBe(6917);
        // As the Automation API's error has it: pulumi's stderr, then the same again.
        expect(staleLock(`${locked("vm", 6917)} err?: Error: ${locked("vm", 6917)}`, "vm", () => false)).toBe(6917);
        expect(staleLock(locked("vm", 6917), "vm", () => true)).toBeUndefined();
        expect(staleLock(locked("laptop", 6917), "vm", () => false)).toBeUndefined();
        expect(staleLock(`${locked("vm", 1)}${locked("vm", 2)}`, "vm", () => false)).toBeUndefined();
        expect(staleLock("error: ssh: handshake failed", "vm", () => false)).toBeUndefined();
    });

    it("shows pulumi's error lines, not the command line and streams around them", () => {
        expect(pulumiErrors(locked("vm", 1))).toBe(
            "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
        );
        expect(pulumiErrors("no error line here\nsecond")).toBe("no error line here");
    });

    it("takes --dry-run and --stack, and refuses anything else", () => {
        expect(rotateArgs(["--dry-run", "--stack", "indri", "--stack=ringtail"])).toEqual({ dryRun: true, stacks: ["indri", "ringtail"] });
        expect(() => rotateArgs(["--force"])).toThrow(
            /unknown argument "--force"; usage: npm run rotate -- \[--dry-run\] \[--stack <name> \.\.\.\]/,
        );
    });
});
