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
import { registryRequest, type Answer } from "./http";
import type { RegistrySettings } from "./probe";

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

/** zot's keys of `user`, as that user with one of its keys. */
export class ZotKeys {
    constructor(
        /** The registry (`registry.url`, `registry.caBundle`). */
        readonly registry: Pick<RegistrySettings, "url" | "caBundle">,
        readonly user: string,
    ) {}

    private get base(): string {
        return this.registry.url.replace(/\/+$/, "");
    }

    private async call(key: string, method: string, query = "", json?: unknown): Promise<Answer> {
        const answer = await registryRequest(method, new URL(`${this.base}/zot/auth/apikey${query}`), {
            auth: `Basic ${Buffer.from(`${this.user}:${key}`).toString("base64")}`,
            ca: this.registry.caBundle,
            json,
            readBody: true,
        });
        if (answer.status === 0) {
            throw new ZotError(0, `${method} ${this.base}/zot/auth/apikey: no answer (${answer.error ?? "unknown"})`);
        }
        return answer;
    }

    private refused(method: string, answer: Answer): ZotError {
        const why =
            answer.status === 401
                ? `zot does not accept the key for ${this.user} (revoked, expired, or not ${this.user}'s)`
                : answer.status === 403
                  ? `${this.user} may not manage API keys`
                  : `HTTP ${answer.status}`;
        return new ZotError(answer.status, `${method} ${this.base}/zot/auth/apikey: ${why}`);
    }

    /** Mints a key of the user with `label`, expiring at `expiresAt`, authenticated with `key`. */
    async mint(key: string, label: string, expiresAt: Date): Promise<MintedKey> {
        const answer = await this.call(key, "POST", "", { label, expirationDate: expiresAt.toISOString() });
        if (answer.status !== 201) throw this.refused("POST", answer);
        const j = JSON.parse(answer.body ?? "{}") as ZotKeyJson;
        if (j.apiKey === undefined || j.uuid === undefined) {
            throw new ZotError(answer.status, `POST ${this.base}/zot/auth/apikey: zot answered without a key or its id`);
        }
        return { ...toKey(j), value: j.apiKey };
    }

    /** The user's keys, as the user with `key`. */
    async list(key: string): Promise<ZotKey[]> {
        const answer = await this.call(key, "GET");
        if (answer.status !== 200) throw this.refused("GET", answer);
        return (JSON.parse(answer.body ?? "{}") as { apiKeys?: ZotKeyJson[] | null }).apiKeys?.map(toKey) ?? [];
    }

    /** Revokes the key `uuid`, as the user with `key` (zot answers 200 whether or not it existed). */
    async revoke(key: string, uuid: string): Promise<void> {
        const answer = await this.call(key, "DELETE", `?id=${encodeURIComponent(uuid)}`);
        if (answer.status !== 200) throw this.refused("DELETE", answer);
    }

    /** Whether zot accepts `key` for the user now: true (200), false (401), else an error. */
    async accepts(key: string): Promise<boolean> {
        const answer = await this.call(key, "GET");
        if (answer.status === 200) return true;
        if (answer.status === 401) return false;
        throw this.refused("GET", answer);
    }
}
