/**
 * The operator's side of 1Password in the sandbox, through the official
 * Connect JS SDK: read the zot CI key (vault blumeops, item zot-ci-apikey,
 * field id credential) and rotate it with a PUT of the item, as the
 * 1Password apps would.
 */
import { OnePasswordConnect, type FullItem } from "@1password/connect";

async function zotItem(
    url: string,
    token: string,
): Promise<{ vaultId: string; item: FullItem; op: ReturnType<typeof OnePasswordConnect> }> {
    const op = OnePasswordConnect({ serverURL: url, token, keepAlive: false });
    const vault = await op.getVaultByTitle("blumeops");
    const item = await op.getItemByTitle(vault.id!, "zot-ci-apikey");
    return { vaultId: vault.id!, item, op };
}

/** The current key. */
export async function readKey(url: string, token: string): Promise<string> {
    const { item } = await zotItem(url, token);
    const value = item.fields?.find((f) => f.id === "credential")?.value;
    if (!value) throw new Error("the item has no credential");
    return value;
}

/** Stores `value` as the new key (the SDK's items are class instances: change in place, then PUT). */
export async function rotateKey(url: string, token: string, value: string): Promise<void> {
    const { vaultId, item, op } = await zotItem(url, token);
    const credential = item.fields?.find((f) => f.id === "credential");
    if (!credential) throw new Error("the item has no credential field");
    credential.value = value;
    await op.updateItem(vaultId, item);
}

/** Records a new expiry date on the item (the section field labelled `expires`), as the 1Password apps would. */
export async function setExpiry(url: string, token: string, expires: Date): Promise<void> {
    const { vaultId, item, op } = await zotItem(url, token);
    const field = item.fields?.find((f) => f.label === "expires" && f.section !== undefined);
    if (!field) throw new Error("the item has no expires field in a section");
    field.value = String(Math.floor(expires.getTime() / 1000));
    await op.updateItem(vaultId, item);
}
