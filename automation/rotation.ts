/**
 * The rotation of zot-ci's API key in one command (README, "Rotation"):
 * mint the successor at zot with the current key, record it in 1Password,
 * deliver it to every runner with each stack's `up`, and only when every
 * stack reports `canPush` with the new fingerprint, revoke every other key
 * of the user at zot, so that no key a job minted for itself survives.
 *
 * Invariants (each tested, test/unit/rotation.test.ts and the whole-stack
 * rotation tests):
 * - every runner holds a key zot accepts at every moment: nothing is
 *   revoked until every stack has confirmed the new key;
 * - a stack that cannot confirm stops the command before any revocation,
 *   naming the stack and why; the old key keeps working;
 * - a run killed at any step, then run again, converges to one live key,
 *   held by the item and every runner: each run mints afresh and revokes
 *   every key but its own at the end, those a killed run minted included;
 * - a key this run minted but could not record is revoked at once.
 *
 * The world (1Password, zot, the stacks) comes in as {@link RotationWorld},
 * so the order of the steps is tested without any of them.
 */
import { fingerprint } from "../components/fingerprint";
import type { MintedKey, ZotKey } from "../components/registry/zot-keys";

/** The key the item holds now. */
export interface CurrentKey {
    value: string;
    /** zot's id of it, when the item records one (`keyIdField`). */
    keyId?: string;
}

/** What one stack's `up` reported. */
export interface StackConfirmation {
    canPush: boolean;
    keyFingerprint: string;
    /** Why not, when it did not confirm (the up's error, or the probe's verdict). */
    problem?: string;
}

/** What the rotation acts on. */
export interface RotationWorld {
    /** The registry and user, for messages. */
    registry: string;
    user: string;
    /** Where the key lives, for messages (`item "…" in vault "…"`). */
    where: string;
    readKey(): Promise<CurrentKey>;
    /** Records the new key, zot's expiry and id on the item. */
    storeKey(key: MintedKey): Promise<void>;
    zot: {
        accepts(key: string): Promise<boolean>;
        list(key: string): Promise<ZotKey[]>;
        mint(key: string, label: string, expiresAt: Date): Promise<MintedKey>;
        revoke(key: string, uuid: string): Promise<void>;
    };
    stacks: string[];
    /** `pulumi up` of one stack, saying its progress with `say`. */
    deliver(stack: string, say: (line: string) => void): Promise<StackConfirmation>;
    say(line: string): void;
    now(): Date;
}

/** What a finished rotation did. */
export interface RotationSummary {
    oldFingerprint: string;
    newFingerprint: string;
    confirmed: string[];
    revoked: ZotKey[];
    expiresAt: string;
}

/** A rotation that stopped, saying where and what holds now. */
export class RotationError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "RotationError";
    }
}

const DAY_MS = 86_400_000;

/** One key as the command lists it: never its value. */
export function describeKey(k: ZotKey): string {
    const never = (t: string): boolean => t === "" || t.startsWith("0001-01-01");
    return (
        `${k.uuid} "${k.label}", created ${never(k.createdAt) ? "at an unknown time" : k.createdAt}, ` +
        `last used ${never(k.lastUsed) ? "never" : k.lastUsed}, ` +
        (never(k.expirationDate) ? "no expiry" : `${k.isExpired ? "expired" : "expires"} ${k.expirationDate}`)
    );
}

/**
 * Rotates, or with `dryRun` says what it would do and changes nothing.
 * Throws RotationError naming the step, and what holds now.
 */
export async function rotate(world: RotationWorld, opts: { dryRun: boolean; lifetimeDays: number }): Promise<RotationSummary | undefined> {
    const { zot } = world;
    const say = (line: string): void => {
        world.say(line);
    };
    const current = await world.readKey();
    const oldFingerprint = fingerprint(current.value);
    if (!(await zot.accepts(current.value))) {
        throw new RotationError(
            `zot at ${world.registry} no longer accepts the key in ${world.where} (${oldFingerprint}): it was revoked or expired. ` +
                `A key can only be minted with a key zot accepts: log in to zot's UI as ${world.user} (OIDC), make a key there, ` +
                "store it in the item, and run rotate again.",
        );
    }
    const keys = await zot.list(current.value);
    say(`${world.user} holds ${keys.length} key(s) at ${world.registry}:`);
    for (const k of keys) say(`  ${describeKey(k)}${k.uuid === current.keyId ? " (the item's key)" : ""}`);

    const now = world.now();
    const expiresAt = new Date(now.getTime() + opts.lifetimeDays * DAY_MS);
    const label = `ci-registry-auth rotate ${now.toISOString().slice(0, 16)}Z`;
    if (opts.dryRun) {
        say("Dry run: nothing changes. A rotation would:");
        say(`  1. mint a key "${label}" for ${world.user}, expiring ${expiresAt.toISOString()}, with the item's key;`);
        say(`  2. store it in ${world.where}, with zot's expiry and id;`);
        say(`  3. run pulumi up on ${world.stacks.join(", ")}, and wait for canPush with its fingerprint on each;`);
        say(`  4. then revoke every other key of ${world.user}:`);
        for (const k of keys) say(`     ${describeKey(k)}`);
        return undefined;
    }

    const minted = await zot.mint(current.value, label, expiresAt);
    const newFingerprint = fingerprint(minted.value);
    say(`Minted ${describeKey(minted)} (${newFingerprint}).`);
    try {
        await world.storeKey(minted);
    } catch (err) {
        // Never left behind: the key is known only to this run.
        await zot.revoke(current.value, minted.uuid);
        throw new RotationError(
            `could not store the new key in ${world.where}: ${message(err)}. The new key was revoked; nothing changed on the runners, ` +
                "and the item's key still works. Fix that, then run rotate again.",
        );
    }
    say(`Stored it in ${world.where}.`);

    const results = await Promise.all(
        world.stacks.map(async (stack): Promise<[string, StackConfirmation]> => {
            say(`${stack}: pulumi up`);
            try {
                return [
                    stack,
                    await world.deliver(stack, (line) => {
                        say(`${stack}: ${line}`);
                    }),
                ];
            } catch (err) {
                return [stack, { canPush: false, keyFingerprint: "", problem: message(err) }];
            }
        }),
    );
    const unconfirmed = results.filter(([, r]) => !(r.canPush && r.keyFingerprint === newFingerprint));
    for (const [stack, r] of results) {
        say(
            `${stack}: ${unconfirmed.some(([s]) => s === stack) ? `not confirmed: ${why(r, newFingerprint)}` : `canPush with ${newFingerprint}`}`,
        );
    }
    if (unconfirmed.length > 0) {
        throw new RotationError(
            `not every stack confirmed the new key, so no key was revoked: ${unconfirmed.map(([s, r]) => `${s}: ${why(r, newFingerprint)}`).join("; ")}. ` +
                `The runners that have not got it keep the old key, which zot still accepts. ${world.where} holds the new one: ` +
                "fix the stacks named, then run rotate again (it mints afresh and revokes every other key).",
        );
    }

    let others: ZotKey[];
    let left: ZotKey[];
    try {
        others = (await zot.list(minted.value)).filter((k) => k.uuid !== minted.uuid);
        say(`Every stack confirmed; revoking ${others.length} other key(s) of ${world.user}:`);
        for (const k of others) {
            say(`  ${describeKey(k)}`);
            await zot.revoke(minted.value, k.uuid);
        }
        left = await zot.list(minted.value);
    } catch (err) {
        throw new RotationError(
            `every stack confirmed the new key (${newFingerprint}), but revoking the other keys failed: ${message(err)}. ` +
                `The runners and ${world.where} hold the new key; other keys may still work. Run rotate again once ${world.registry} answers: ` +
                "it mints afresh and revokes every key but its own.",
        );
    }
    if (left.length !== 1 || left[0]?.uuid !== minted.uuid) {
        throw new RotationError(`after revoking, ${world.user} still holds ${left.length} key(s): ${left.map(describeKey).join("; ")}`);
    }
    if (await zot.accepts(current.value)) {
        throw new RotationError(`zot still accepts the old key (${oldFingerprint}) after its revocation`);
    }
    say(`Confirmed: ${world.user} holds one key, the new one; the old key gets 401.`);
    return { oldFingerprint, newFingerprint, confirmed: world.stacks, revoked: others, expiresAt: minted.expirationDate };
}

function why(r: StackConfirmation, wanted: string): string {
    if (r.problem !== undefined) return r.problem;
    if (r.keyFingerprint !== wanted) return `it reports ${r.keyFingerprint || "no key"}, not ${wanted}`;
    return "canPush is false";
}

function message(err: unknown): string {
    return err instanceof Error ? err.message : String(err);
}
