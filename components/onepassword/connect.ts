/**
 * Reads one item from 1Password Connect's REST API (v1), the three calls
 * ESO's and 1Password's own SDKs make for a vault and item given by name:
 * the vault by title, the item by title in it, then the whole item.
 *
 * The program reads Connect itself instead of through the onepassword
 * Pulumi provider: that provider keeps its Connect token in the stack's
 * state (its bridge copies $OP_CONNECT_TOKEN into the provider's inputs even
 * when the token is only in the environment; measured with
 * pulumi-onepassword 1.1.3), where anyone with the passphrase, CI too, can
 * decrypt it. Here the token stays in this process's memory.
 *
 * Errors name the vault, the item, the status and Connect's message,
 * never the token.
 */

/** A field as Connect returns it. */
export interface ConnectField {
    id?: string;
    label?: string;
    type?: string;
    purpose?: string;
    value?: string;
    section?: { id?: string };
}

/** An item as Connect returns it (`GET /v1/vaults/{vault}/items/{item}`). */
export interface ConnectItem {
    id?: string;
    title?: string;
    vault?: { id?: string };
    category?: string;
    fields?: ConnectField[];
    sections?: { id?: string; label?: string }[];
}

/** A failed read: `status` is Connect's (0 when it did not answer). */
export class ConnectError extends Error {
    constructor(
        readonly status: number,
        message: string,
    ) {
        super(message);
        this.name = "ConnectError";
    }
}

/** Connect's own ids: 26 lowercase letters and digits (as its SDKs tell an id from a name). */
const CONNECT_ID = /^[a-z0-9]{26}$/;

const TIMEOUT_MS = 15_000;

async function get<T>(url: string, token: string, path: string, put?: unknown): Promise<T> {
    let res: Response;
    try {
        res = await fetch(`${url.replace(/\/+$/, "")}${path}`, {
            ...(put !== undefined ? { method: "PUT", body: JSON.stringify(put) } : {}),
            headers: {
                Authorization: `Bearer ${token}`,
                Accept: "application/json",
                ...(put !== undefined ? { "Content-Type": "application/json" } : {}),
            },
            signal: AbortSignal.timeout(TIMEOUT_MS),
        });
    } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const why = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
        throw new ConnectError(0, `Connect at ${url} did not answer (${why})`);
    }
    if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { message?: string };
        const message = (body.message ?? res.statusText).replaceAll(token, "***");
        throw new ConnectError(res.status, `Connect answered ${res.status}: ${message}`);
    }
    return (await res.json()) as T;
}

const titled = (title: string): string => encodeURIComponent(`title eq "${title}"`);

/** The item titled `title` (or with that id) in the vault named `vault` (or with that id). */
export async function readItem(url: string, token: string, vault: string, title: string): Promise<ConnectItem> {
    let vaultId = vault;
    if (!CONNECT_ID.test(vault)) {
        const vaults = await get<{ id: string }[]>(url, token, `/v1/vaults?filter=${titled(vault)}`);
        if (vaults.length !== 1) {
            throw new ConnectError(
                404,
                vaults.length === 0
                    ? `the token reaches no vault named "${vault}"`
                    : `${vaults.length} vaults the token reaches are named "${vault}"`,
            );
        }
        vaultId = vaults[0]?.id ?? "";
    }
    let itemId = title;
    if (!CONNECT_ID.test(title)) {
        const items = await get<{ id: string }[]>(url, token, `/v1/vaults/${vaultId}/items?filter=${titled(title)}`);
        if (items.length !== 1) {
            throw new ConnectError(
                404,
                items.length === 0 ? `no item is titled "${title}"` : `${items.length} items are titled "${title}" (titles must be unique)`,
            );
        }
        itemId = items[0]?.id ?? "";
    }
    return get<ConnectItem>(url, token, `/v1/vaults/${vaultId}/items/${itemId}`);
}

/**
 * Replaces `item` (as read, with changed fields) in its vault: Connect's
 * `PUT /v1/vaults/{vault}/items/{item}`, as 1Password's SDKs update an
 * item. Needs a token granted write on the vault. Returns the item as
 * Connect stored it.
 */
export async function writeItem(url: string, token: string, item: ConnectItem): Promise<ConnectItem> {
    const vaultId = item.vault?.id ?? "";
    const itemId = item.id ?? "";
    if (!CONNECT_ID.test(vaultId) || !CONNECT_ID.test(itemId)) throw new ConnectError(400, "the item to write has no vault or item id");
    return get<ConnectItem>(url, token, `/v1/vaults/${vaultId}/items/${itemId}`, item);
}
