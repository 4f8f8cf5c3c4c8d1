/**
 * zot's API keys of one user, through its REST API (v2.1, `/zot/auth/apikey`),
 * as the rotation uses them: authenticated with HTTP basic auth as the user,
 * an API key as the password (zot lets a key mint, list and revoke every key
 * of its own user). Facts from zot v2.1.20's source (`pkg/api/routes.go`
 * CreateAPIKey, GetAPIKeys, RevokeAPIKey; `pkg/api/authn.go`):
 * - POST answers 201 with the new key (`apiKey`, `zak_` + 32 hex) and its
 *   `uuid`; an `expirationDate` in RFC 3339 makes zot refuse the key (401)
 *   once it passes; without one the key never expires.
 * - GET lists the user's keys (never their values): uuid, label,
 *   createdAt, expirationDate, isExpired, lastUsed.
 * - DELETE `?id=<uuid>` answers 200 even for an unknown id: a revocation is
 *   confirmed by listing again, and for a key whose value is known, by its
 *   401.
 * Errors name the registry, the route and the status, never a key.
 */

/** One key as zot lists it. */
export interface ZotKey {
    uuid: string;
    label: string;
    createdAt: string;
    expirationDate: string;
    isExpired: boolean;
    lastUsed: string;
}

/** A key just minted: its value (secret) and what zot says of it. */
export interface MintedKey extends ZotKey {
    value: string;
}

/** A failed call to zot. */
export class ZotError extends Error {
    constructor(
        readonly status: number,
        message: string,
    ) {
        super(message);
        this.name = "ZotError";
    }
}

const TIMEOUT_MS = 15_000;

/** What zot answers with for a key in a list or a mint (its JSON names). */
interface ZotKeyJson {
    uuid?: string;
    label?: string;
    createdAt?: string;
    expirationDate?: string;
    isExpired?: boolean;
    lastUsed?: string;
    apiKey?: string;
}

function toKey(j: ZotKeyJson): ZotKey {
    return {
        uuid: j.uuid ?? "",
        label: j.label ?? "",
        createdAt: j.createdAt ?? "",
        expirationDate: j.expirationDate ?? "",
        isExpired: j.isExpired ?? false,
        lastUsed: j.lastUsed ?? "",
    };
}

/** zot's keys of `user`, as that user with `key`. */
export class ZotKeys {
    constructor(
        /** The registry's URL, e.g. `https://registry.ops.eblu.me`. */
        readonly url: string,
        readonly user: string,
        /** How requests are sent (the registry probe's, with `registry.caBundle`, or the global fetch). */
        private readonly fetchImpl: typeof fetch = fetch,
    ) {}

    private async call(key: string, method: string, query = "", body?: unknown): Promise<Response> {
        const route = `${this.url.replace(/\/+$/, "")}/zot/auth/apikey${query}`;
        try {
            return await this.fetchImpl(route, {
                method,
                headers: {
                    Authorization: `Basic ${Buffer.from(`${this.user}:${key}`).toString("base64")}`,
                    ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
                },
                ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
                redirect: "manual",
                signal: AbortSignal.timeout(TIMEOUT_MS),
            });
        } catch (err) {
            const cause = (err as { cause?: { code?: string; message?: string } }).cause;
            throw new ZotError(0, `zot at ${this.url} did not answer ${method} /zot/auth/apikey (${cause?.code ?? cause?.message ?? String(err)})`);
        }
    }

    private static refused(method: string, res: Response, user: string): ZotError {
        const why =
            res.status === 401
                ? `zot does not accept the key for ${user} (revoked, expired, or not ${user}'s)`
                : res.status === 403
                  ? `${user} may not manage API keys`
                  : `HTTP ${res.status}`;
        return new ZotError(res.status, `${method} /zot/auth/apikey: ${why}`);
    }

    /** Mints a key of the user with `label`, expiring at `expiresAt`, authenticated with `key`. */
    async mint(key: string, label: string, expiresAt: Date): Promise<MintedKey> {
        const res = await this.call(key, "POST", "", { label, expirationDate: expiresAt.toISOString() });
        if (res.status !== 201) throw ZotKeys.refused("POST", res, this.user);
        const j = (await res.json()) as ZotKeyJson;
        if (j.apiKey === undefined || j.uuid === undefined) throw new ZotError(res.status, "POST /zot/auth/apikey: zot answered without a key or its id");
        return { ...toKey(j), value: j.apiKey };
    }

    /** The user's keys, as the user with `key`. */
    async list(key: string): Promise<ZotKey[]> {
        const res = await this.call(key, "GET");
        if (res.status !== 200) throw ZotKeys.refused("GET", res, this.user);
        return ((await res.json()) as { apiKeys?: ZotKeyJson[] | null }).apiKeys?.map(toKey) ?? [];
    }

    /** Revokes the key `uuid`, as the user with `key` (zot answers 200 whether or not it existed). */
    async revoke(key: string, uuid: string): Promise<void> {
        const res = await this.call(key, "DELETE", `?id=${encodeURIComponent(uuid)}`);
        if (res.status !== 200) throw ZotKeys.refused("DELETE", res, this.user);
    }

    /** Whether zot accepts `key` for the user now: true (200), false (401), else an error. */
    async accepts(key: string): Promise<boolean> {
        const res = await this.call(key, "GET");
        if (res.status === 200) return true;
        if (res.status === 401) return false;
        throw ZotKeys.refused("GET", res, this.user);
    }
}
