/**
 * The Connect emulator, driven by the official 1Password Connect JS SDK
 * (`@1password/connect`) and by raw HTTP in the Go SDK's encoding, which is
 * what ESO and the onepassword provider send.
 */
import { OnePasswordConnect, type FullItem } from "@1password/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { apiCredential, CONNECT_VERSION, ConnectEmulator, newId, parseFilter, seedBlumeops } from "../../sandbox/connect-emulator";

const TOKEN = "connect-token-for-tests";
const KEY = "zak_connect_emulator_0123456789abcdef";
const emulator = new ConnectEmulator(TOKEN);
let url = "";
let vaultId = "";

beforeAll(async () => {
    url = await emulator.listen();
    vaultId = seedBlumeops(emulator, KEY, new Date("2027-02-24T00:00:00Z")).vault.id;
});

afterAll(async () => {
    await emulator.close();
});

const client = () => OnePasswordConnect({ serverURL: url, token: TOKEN, keepAlive: false });

describe("with the official JS SDK", () => {
    it("finds the vault by title and the API Credential by title, with its credential field", async () => {
        const op = client();
        const vault = await op.getVaultByTitle("blumeops");
        expect(vault.id).toBe(vaultId);
        const item = await op.getItemByTitle(vault.id!, "zot-ci-apikey");
        expect(item.category).toBe("API_CREDENTIAL");
        expect(item.fields?.find((f) => f.id === "credential")?.value).toBe(KEY);
        expect((await op.getItem(vault.id!, item.id!)).title).toBe("zot-ci-apikey");
    });

    it("rotates the key with a real PUT and bumps the version", async () => {
        const op = client();
        const item = await op.getItemByTitle(vaultId, "zot-ci-apikey");
        const version = item.version ?? 0;
        // The SDK's items are class instances: change the field in place, as its docs do.
        const credential = item.fields?.find((f) => f.id === "credential");
        expect(credential?.value).toBe(KEY);
        credential!.value = "zak_rotated";
        const updated = await op.updateItem(vaultId, item);
        expect(updated.version).toBe(version + 1);
        const read = await op.getItemByTitle(vaultId, "zot-ci-apikey");
        expect(read.fields?.find((f) => f.id === "credential")?.value).toBe("zak_rotated");
        credential!.value = KEY;
        await op.updateItem(vaultId, item);
        expect((await op.getItemByTitle(vaultId, "zot-ci-apikey")).fields?.find((f) => f.id === "credential")?.value).toBe(KEY);
    });

    it("creates and deletes items", async () => {
        const op = client();
        const created = await op.createItem(vaultId, apiCredential("scratch", "u", "k", new Date()) as unknown as FullItem);
        expect(created.id).toMatch(/^[a-z0-9]{26}$/);
        await op.deleteItemById(vaultId, created.id!);
        await expect(op.getItemById(vaultId, created.id!)).rejects.toMatchObject({ status: 404 });
    });

    it("answers a wrong token with 401 and a missing item with 404", async () => {
        const bad = OnePasswordConnect({ serverURL: url, token: "wrong", keepAlive: false });
        await expect(bad.listVaults()).rejects.toMatchObject({ status: 401, message: "Invalid bearer token" });
        await expect(client().getItemByTitle(vaultId, "no-such-item")).rejects.toMatchObject({ status: 404 });
    });
});

describe("as the Go SDK (ESO, onepassword provider) calls it", () => {
    const get = (path: string, token = TOKEN) =>
        fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" } });

    it("accepts the query-escaped filter and returns summaries that carry vault.id but no fields", async () => {
        const vaults = (await (await get(`/v1/vaults?filter=title+eq+%22blumeops%22`)).json()) as { id: string }[];
        expect(vaults.map((v) => v.id)).toEqual([vaultId]);
        const res = await get(`/v1/vaults/${vaultId}/items?filter=title+eq+%22zot-ci-apikey%22`);
        expect(res.headers.get("1Password-Connect-Version")).toBe(CONNECT_VERSION);
        const items = (await res.json()) as Record<string, unknown>[];
        expect(items).toHaveLength(1);
        expect(items[0]).toMatchObject({ title: "zot-ci-apikey", vault: { id: vaultId }, category: "API_CREDENTIAL" });
        expect(items[0]).not.toHaveProperty("fields");
    });

    it("ignores trailing slashes, sends the version header on errors, and uses Connect's error body", async () => {
        expect((await get(`/v1/vaults/`)).status).toBe(200);
        const missing = await get(`/v1/vaults/${newId()}`);
        expect(missing.status).toBe(404);
        expect(missing.headers.get("1Password-Connect-Version")).toBe(CONNECT_VERSION);
        expect(await missing.json()).toMatchObject({ status: 404, message: expect.stringMatching(/^vault \w+ not found$/) as unknown });
    });

    it("serves /heartbeat and /health without a token", async () => {
        const heartbeat = await fetch(`${url}/heartbeat`);
        expect([heartbeat.status, await heartbeat.text()]).toEqual([200, "."]);
        expect(((await (await fetch(`${url}/health`)).json()) as { version: string }).version).toBe(CONNECT_VERSION);
    });

    it("parses filters strictly", () => {
        expect(parseFilter('title eq "a b"')).toEqual({ field: "title", op: "eq", value: "a b" });
        expect(parseFilter('title co "zot"')).toEqual({ field: "title", op: "co", value: "zot" });
        expect(parseFilter(null)).toBeUndefined();
        expect(() => parseFilter("title = x")).toThrow(/Invalid filter/);
    });
});

describe("a token's vault scope, as Connect enforces it", () => {
    const get = (path: string, token: string, method = "GET", body?: unknown) =>
        fetch(`${url}${path}`, {
            method,
            headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
            ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
    const other = emulator.addVault("homelab");
    emulator.addItem(other.id, apiCredential("root-password", "root", "homelab-secret-0123456789", new Date("2027-01-01T00:00:00Z")));
    emulator.grant("ci-token", { vaults: ["blumeops"] });

    it("lists only the vaults the token was granted", async () => {
        const all = (await (await get("/v1/vaults", TOKEN)).json()) as { name: string }[];
        expect(all.map((v) => v.name).sort()).toEqual(["blumeops", "homelab"]);
        const ci = (await (await get("/v1/vaults", "ci-token")).json()) as { name: string }[];
        expect(ci.map((v) => v.name)).toEqual(["blumeops"]);
        expect(await (await get(`/v1/vaults?filter=title+eq+%22homelab%22`, "ci-token")).json()).toEqual([]);
    });

    it("answers 403 for another vault's id, existing or not, and reads its own", async () => {
        for (const id of [other.id, newId()]) {
            const res = await get(`/v1/vaults/${id}/items`, "ci-token");
            expect(res.status).toBe(403);
            expect(await res.json()).toEqual({ status: 403, message: "Authorization: token does not have access to vault" });
        }
        expect((await get(`/v1/vaults/${vaultId}/items`, "ci-token")).status).toBe(200);
    });

    it("refuses writes from a read-only grant, and the SDK sees Connect's answer", async () => {
        const item = (await (await get(`/v1/vaults/${vaultId}/items?filter=title+eq+%22zot-ci-apikey%22`, "ci-token")).json()) as {
            id: string;
        }[];
        const put = await get(`/v1/vaults/${vaultId}/items/${item[0]!.id}`, "ci-token", "PUT", {
            title: "zot-ci-apikey",
            category: "API_CREDENTIAL",
        });
        expect(put.status).toBe(403);
        const sdk = OnePasswordConnect({ serverURL: url, token: "ci-token", keepAlive: false });
        await expect(sdk.listItems(other.id)).rejects.toMatchObject({
            status: 403,
            message: "Authorization: token does not have access to vault",
        });
        expect(((await sdk.getItemByTitle(vaultId, "zot-ci-apikey")).fields ?? []).find((f) => f.id === "credential")?.value).toBe(KEY);
    });
});
