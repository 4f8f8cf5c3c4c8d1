/**
 * The push-permission probe: asks the registry itself whether CI can push
 * with the key, and whether anyone can without it. It opens a blob upload
 * on `registry.repository` with `registryUser` and the key (zot answers
 * 202 and a Location), cancels it (zot answers 403 unless the user may
 * delete: its garbage collector removes the session after gcDelay), and
 * sends the same request without credentials, which must get 401. A blob
 * upload writes nothing that stays: no blob, manifest or tag is made.
 *
 * `GET /v2/` proves nothing: with anonymous read it answers 200 to anyone.
 * Verdicts name the registry and the status, never the key, which travels
 * only in the Authorization header.
 *
 * Then it lists the user's API keys with the key (zot lets a key list its
 * user's keys, and mint more: a job that saw the key can keep push rights
 * with a key of its own), and reports this key's id and zot's expiry of it,
 * and every other key by label and last use: what `npm run rotate`
 * revokes, and what key-health raises.
 */
import { registryRequest, type Answer } from "./http";
import { ZotKeys, type ZotKey } from "./zot-keys";

/** Where the probe asks (the stack's `registry` settings). */
export interface RegistrySettings {
    /** e.g. `https://registry.ops.eblu.me`. */
    url: string;
    /** A repository CI pushes to, e.g. `blumeops/runner-job-image`. */
    repository: string;
    /** PEM certificates of a private CA that signs the registry's certificate. */
    caBundle?: string;
}

/** What the registry answered. Status 0: no HTTP answer (see verdict). */
export interface ProbeResult {
    url: string;
    repository: string;
    /** An upload opened with the key was accepted (202). */
    acceptsKey: boolean;
    /** The same upload without credentials was refused (401, or 403). */
    refusesAnonymous: boolean;
    keyStatus: number;
    anonymousStatus: number;
    /** Cancelling the upload the key opened: 204, or 403 when the user may not delete (the registry collects it). 0: nothing to cancel. */
    cancelStatus: number;
    /** When the registry answered (ISO 8601): changes with every run. */
    checkedAt: string;
    /** `ok`, or what is wrong, naming the registry and statuses. */
    verdict: string;
    /** `ok` when the user's keys were listed with the key, else why not (then the three below are absent). */
    keysRead: string;
    /** zot's id of this key: the one the item records, else the one whose last use was this probe's; `unknown` when neither. */
    keyId?: string;
    /** zot's expiry of this key (ISO 8601), `never`, or `unknown` when the key is not identified. */
    keyExpiresAt?: string;
    /** The user's other keys (a job's own, a killed rotation's), never their values. */
    otherKeys?: OtherKey[];
}

/** Another key of the user, as zot lists it. */
export type OtherKey = Pick<ZotKey, "uuid" | "label" | "createdAt" | "lastUsed" | "expirationDate">;

/** zot's "no time" (Go's zero time). */
const never = (t: string): boolean => t === "" || t.startsWith("0001-01-01");

/**
 * The user's keys as `key` lists them, with this key found: by the id the
 * item records, else as the one key whose `lastUsed` changed between two
 * listings (zot stamps each request a key makes; no clock is compared).
 */
export async function keysSeen(
    settings: RegistrySettings,
    user: string,
    key: string,
    recordedId: string | undefined,
): Promise<Pick<ProbeResult, "keysRead" | "keyId" | "keyExpiresAt" | "otherKeys">> {
    const zot = new ZotKeys(settings, user);
    try {
        let keys = await zot.list(key);
        let mine = recordedId === undefined ? undefined : keys.find((k) => k.uuid === recordedId);
        if (mine === undefined) {
            const again = await zot.list(key);
            const changed = again.filter((k) => k.lastUsed !== keys.find((o) => o.uuid === k.uuid)?.lastUsed);
            mine = changed.length === 1 ? changed[0] : undefined;
            keys = again;
        }
        return {
            keysRead: "ok",
            keyId: mine?.uuid ?? "unknown",
            keyExpiresAt: mine === undefined ? "unknown" : never(mine.expirationDate) ? "never" : mine.expirationDate,
            otherKeys: keys
                .filter((k) => k.uuid !== mine?.uuid)
                .map(({ uuid, label, createdAt, lastUsed, expirationDate }) => ({ uuid, label, createdAt, lastUsed, expirationDate })),
        };
    } catch (err) {
        return { keysRead: `${user}'s API keys could not be listed with the key: ${err instanceof Error ? err.message : String(err)}` };
    }
}

const TLS_ERRORS =
    /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_|ERR_SSL_|ERR_CERT_|HOSTNAME_MISMATCH)/;

/** Why an upload with the key was not accepted, naming the registry and the status. */
export function keyVerdict(url: string, repository: string, user: string, answer: Answer): string {
    const at = url;
    const s = answer.status;
    if (s === 0) {
        const code = answer.error ?? "no answer";
        return TLS_ERRORS.test(code)
            ? `TLS with ${at} failed (${code}): its certificate is not trusted here; set registry.caBundle to the PEM of the CA that signs it`
            : `${at} is unreachable (${code})`;
    }
    if (s >= 300 && s < 400) {
        return `${at} redirected the upload (${s}) to ${answer.location ?? "nowhere"}: a login page or proxy answers instead of the registry`;
    }
    if (s === 401) return `${at} refuses the key (401): it is revoked, expired, or not ${user}'s; create a new key and rotate`;
    if (s === 403) return `${user} may not push to ${repository} on ${at} (403): grant it create and update there`;
    if (s === 404) return `${at} has no registry API for ${repository} (404): check registry.url and registry.repository`;
    if (s === 429) return `${at} is rate limiting (429): try again later`;
    if (s >= 500) return `${at} failed (${s}): the registry is in trouble`;
    return `${at} answered ${s} to an upload with the key, not 202`;
}

/**
 * Probes `settings` as `user` with `key`: both uploads at once, then the
 * cancel. Never throws: a failure is a verdict (the delivery must still
 * happen while the registry is down).
 */
export async function probeRegistry(settings: RegistrySettings, user: string, key: string, recordedId?: string): Promise<ProbeResult> {
    const base = settings.url.replace(/\/+$/, "");
    const upload = new URL(`${base}/v2/${settings.repository}/blobs/uploads/`);
    const auth = `Basic ${Buffer.from(`${user}:${key}`).toString("base64")}`;
    const [withKey, anonymous] = await Promise.all([
        registryRequest("POST", upload, { auth, ca: settings.caBundle }),
        registryRequest("POST", upload, { ca: settings.caBundle }),
    ]);
    const checkedAt = new Date().toISOString();
    // Give back what was opened: zot answers 403 unless the user may delete.
    const cancel = async (answer: Answer, as: string | undefined): Promise<number> =>
        answer.status === 202 && answer.location !== undefined
            ? (await registryRequest("DELETE", new URL(answer.location, upload), { auth: as, ca: settings.caBundle })).status
            : 0;
    const [cancelStatus] = await Promise.all([cancel(withKey, auth), cancel(anonymous, undefined)]);
    const acceptsKey = withKey.status === 202;
    const refusesAnonymous = anonymous.status === 401 || anonymous.status === 403;
    const problems: string[] = [];
    if (!acceptsKey) problems.push(keyVerdict(base, settings.repository, user, withKey));
    if (anonymous.status >= 200 && anonymous.status < 300) {
        problems.push(
            `${base} accepts an upload to ${settings.repository} without credentials (${anonymous.status}): its authentication is off`,
        );
    } else if (!refusesAnonymous && acceptsKey) {
        problems.push(`${base} answered ${anonymous.status} to an upload without credentials, not 401`);
    }
    const keys = acceptsKey
        ? await keysSeen(settings, user, key, recordedId)
        : { keysRead: "not listed: the registry does not accept the key" };
    return {
        url: base,
        repository: settings.repository,
        acceptsKey,
        refusesAnonymous,
        keyStatus: withKey.status,
        anonymousStatus: anonymous.status,
        cancelStatus,
        checkedAt,
        verdict: problems.length === 0 ? "ok" : problems.join("; "),
        ...keys,
    };
}
