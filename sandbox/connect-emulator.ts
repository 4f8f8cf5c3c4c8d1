/**
 * A 1Password Connect emulator for the local sandbox: the one part of the
 * mission that cannot run here (Connect needs a 1Password account). It
 * serves the Connect REST API (v1) as the real clients use it: the Go SDK
 * inside External Secrets Operator and the onepassword provider, and the
 * JS SDK. What it follows:
 *
 * - `Authorization: Bearer <token>` on every /v1 call; 401 otherwise.
 * - A token reaches only the vaults it was granted, read-only or
 *   read-write, as Connect's tokens do: listing vaults shows only those
 *   (inferred: Connect lists what the token may access), and any request
 *   for another vault's id gets 403 `Authorization: token does not have
 *   access to vault` before the vault is even looked up; a write with a
 *   read-only grant gets 403 too (its message inferred).
 * - `1Password-Connect-Version` on every response (clients gate file
 *   access on it).
 * - ids are 26 lowercase alphanumerics (clients treat anything else as a title).
 * - `filter=title eq "..."` (and `name eq`, `title co`), encoded with `+`
 *   or `%20`; trailing slashes ignored.
 * - list responses are item summaries (no fields) that include `vault.id`.
 * - POST and PUT answer 200 with the full item, DELETE 204; errors are
 *   `{"status": N, "message": "..."}`.
 * - `/heartbeat` and `/health` are unauthenticated, at the root.
 *
 * State is in memory. Tests rotate the key with a real `PUT`.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

import { stopChild } from "./child";

export const CONNECT_VERSION = "1.7.3";

export interface Field {
    id: string;
    type: string;
    label: string;
    value?: string;
    purpose?: string;
    section?: { id: string };
}

export interface Item {
    id: string;
    title: string;
    vault: { id: string };
    category: string;
    version: number;
    tags?: string[];
    favorite?: boolean;
    urls?: { primary?: boolean; href: string }[];
    sections?: { id: string; label?: string }[];
    fields?: Field[];
    createdAt: string;
    updatedAt: string;
}

export interface Vault {
    id: string;
    name: string;
    description: string;
    attributeVersion: number;
    contentVersion: number;
    items: number;
    type: string;
    createdAt: string;
    updatedAt: string;
}

/** A 26-character lowercase alphanumeric id, as Connect mints them. */
export function newId(): string {
    const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    return Array.from(randomBytes(26), (b) => alphabet[b % alphabet.length]).join("");
}

class HttpError extends Error {
    constructor(
        readonly status: number,
        message: string,
    ) {
        super(message);
    }
}

/** What one Connect token may reach: vault names, and whether it may write to them. */
export interface TokenScope {
    /** Vault names; "all" for a token granted every vault (the sandbox operator's). */
    vaults: "all" | string[];
    /** May create, update and delete items. Default: false (a CI token). */
    write?: boolean;
}

type Filter = { field: "title" | "name"; op: "eq" | "co"; value: string } | undefined;

/** Parses `title eq "x"` / `name eq "x"` / `title co "x"`. */
export function parseFilter(raw: string | null): Filter {
    if (raw === null || raw === "") {
        return undefined;
    }
    const m = /^\s*(title|name)\s+(eq|co)\s+"(.*)"\s*$/.exec(raw);
    if (!m) {
        throw new HttpError(400, `Invalid filter query: ${raw}`);
    }
    return { field: m[1] as "title" | "name", op: m[2] as "eq" | "co", value: m[3] ?? "" };
}

function matches(filter: Filter, value: string): boolean {
    if (filter === undefined) return true;
    return filter.op === "eq" ? value === filter.value : value.includes(filter.value);
}

/** The emulator's state and HTTP handling. */
export class ConnectEmulator {
    readonly vaults = new Map<string, Vault>();
    readonly items = new Map<string, Item>();
    /** Every request seen, for tests that check what clients asked for. */
    readonly requests: { method: string; path: string }[] = [];
    private server: Server | undefined;
    /**
     * Sandbox test hook: while this file exists, vault and item requests
     * wait (after touching `<holdFile>.reached`), so a test can strike while
     * a client is reading 1Password. When the file names HTTP methods
     * (e.g. `PUT`), only requests with one of them wait, so a test can hold
     * a write without racing the reads before it. Real Connect has no such
     * thing.
     */
    holdFile: string | undefined;
    /** Sandbox hook: every request's method and path, appended to this file as it arrives (the bench counts them). */
    requestLog: string | undefined;

    private readonly scopes = new Map<string, TokenScope>();

    /** `token` reaches every vault, read-write; {@link grant} adds narrower ones. */
    constructor(readonly token: string) {
        this.scopes.set(token, { vaults: "all", write: true });
    }

    /** Adds a token that reaches `scope`'s vaults only. */
    grant(token: string, scope: TokenScope): void {
        this.scopes.set(token, scope);
    }

    private reaches(scope: TokenScope, vault: Vault): boolean {
        return scope.vaults === "all" || scope.vaults.includes(vault.name);
    }

    addVault(name: string): Vault {
        const now = new Date().toISOString();
        const vault: Vault = {
            id: newId(),
            name,
            description: "",
            attributeVersion: 1,
            contentVersion: 1,
            items: 0,
            type: "USER_CREATED",
            createdAt: now,
            updatedAt: now,
        };
        this.vaults.set(vault.id, vault);
        return vault;
    }

    addItem(vaultId: string, item: Omit<Item, "id" | "vault" | "version" | "createdAt" | "updatedAt">): Item {
        const now = new Date().toISOString();
        const full: Item = { ...item, id: newId(), vault: { id: vaultId }, version: 1, createdAt: now, updatedAt: now };
        this.items.set(full.id, full);
        this.touchVault(vaultId);
        return full;
    }

    private touchVault(vaultId: string): void {
        const vault = this.vaults.get(vaultId);
        if (vault) {
            vault.contentVersion++;
            vault.items = [...this.items.values()].filter((i) => i.vault.id === vaultId).length;
            vault.updatedAt = new Date().toISOString();
        }
    }

    /** Starts listening on 127.0.0.1 (or `host`); resolves to the base URL. */
    async listen(port = 0, host = "127.0.0.1"): Promise<string> {
        this.server = createServer((req, res) => {
            void this.handle(req, res);
        });
        // Connect (a Go net/http server) keeps idle connections open. Node's
        // default closes them after 5 s, which races any client that reuses
        // one (Node's global agent keeps sockets alive): the Connect SDK's
        // next request then fails with "socket hang up".
        this.server.keepAliveTimeout = 0;
        await new Promise<void>((resolve) => this.server?.listen(port, host, resolve));
        const address = this.server.address() as AddressInfo;
        return `http://${host}:${address.port}`;
    }

    async close(): Promise<void> {
        const server = this.server;
        this.server = undefined;
        if (server) {
            server.closeAllConnections();
            await new Promise<void>((resolve) =>
                server.close(() => {
                    resolve();
                }),
            );
        }
    }

    /** Whether the hold file (see {@link holdFile}) holds a request of `method` now. */
    private holds(method: string): boolean {
        if (this.holdFile === undefined || !existsSync(this.holdFile)) return false;
        const methods = readFileSync(this.holdFile, "utf8").split(/\s+/).filter(Boolean);
        return methods.length === 0 || methods.includes(method);
    }

    private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        res.setHeader("1Password-Connect-Version", CONNECT_VERSION);
        try {
            const url = new URL(req.url ?? "/", "http://connect.invalid");
            const path = url.pathname.replace(/\/+$/, "") || "/";
            const method = req.method ?? "GET";
            this.requests.push({ method, path: `${path}${url.search}` });
            if (this.requestLog !== undefined) appendFileSync(this.requestLog, `${method} ${path}\n`);
            while (path.startsWith("/v1/vaults") && this.holds(method)) {
                writeFileSync(`${this.holdFile}.reached`, "");
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
            if (method === "GET" && path === "/heartbeat") {
                res.writeHead(200, { "Content-Type": "text/plain" }).end(".");
                return;
            }
            if (method === "GET" && path === "/health") {
                this.json(res, 200, {
                    name: "1Password Connect API",
                    version: CONNECT_VERSION,
                    dependencies: [{ service: "sqlite", status: "ACTIVE" }],
                });
                return;
            }
            const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
            const scope = bearer === undefined ? undefined : this.scopes.get(bearer);
            if (scope === undefined) {
                throw new HttpError(401, "Invalid bearer token");
            }
            const body = method === "POST" || method === "PUT" ? await readJson(req) : undefined;
            const result = this.route(scope, method, path.split("/").filter(Boolean), url.searchParams, body);
            if (result === undefined) {
                res.writeHead(204).end();
            } else {
                this.json(res, 200, result);
            }
        } catch (err) {
            const status = err instanceof HttpError ? err.status : 500;
            this.json(res, status, { status, message: err instanceof Error ? err.message : "internal error" });
        }
    }

    private route(scope: TokenScope, method: string, parts: string[], query: URLSearchParams, body: unknown): unknown {
        const [v1, vaults, vid, items, iid, files] = parts;
        if (v1 !== "v1" || vaults !== "vaults") {
            throw new HttpError(404, "Invalid request path");
        }
        if (vid === undefined && method === "GET") {
            const filter = parseFilter(query.get("filter"));
            return [...this.vaults.values()].filter((v) => this.reaches(scope, v) && matches(filter, v.name));
        }
        const vault = vid === undefined ? undefined : this.vaults.get(vid);
        // The token's grants are checked before the vault is looked up, so a
        // vault outside them answers the same whether it exists or not.
        if (scope.vaults !== "all" && (vault === undefined || !this.reaches(scope, vault))) {
            throw new HttpError(403, "Authorization: token does not have access to vault");
        }
        if (vault === undefined) {
            throw new HttpError(404, `vault ${vid ?? ""} not found`);
        }
        if (method !== "GET" && scope.write !== true) {
            throw new HttpError(403, "Authorization: token does not have write access to vault");
        }
        if (items === undefined && method === "GET") {
            return vault;
        }
        if (items !== "items") {
            throw new HttpError(404, "Invalid request path");
        }
        if (iid === undefined) {
            if (method === "GET") {
                const filter = parseFilter(query.get("filter"));
                return [...this.items.values()].filter((i) => i.vault.id === vault.id && matches(filter, i.title)).map(summary);
            }
            if (method === "POST") {
                const input = validItem(body);
                return this.addItem(vault.id, { ...input, fields: (input.fields ?? []).map((f) => ({ ...f, id: f.id || newId() })) });
            }
            throw new HttpError(405, "Method not allowed");
        }
        const item = this.items.get(iid);
        if (item?.vault.id !== vault.id) {
            throw new HttpError(404, `item ${iid} not found`);
        }
        if (files !== undefined) {
            // No item here carries files; the paths exist so clients get Connect's answer.
            if (method === "GET" && files === "files" && parts.length === 6) return [];
            throw new HttpError(404, `file ${parts[6] ?? ""} not found`);
        }
        switch (method) {
            case "GET":
                return item;
            case "PUT": {
                const input = validItem(body);
                const updated: Item = {
                    ...input,
                    id: item.id,
                    vault: item.vault,
                    version: item.version + 1,
                    createdAt: item.createdAt,
                    updatedAt: new Date().toISOString(),
                };
                this.items.set(item.id, updated);
                this.touchVault(vault.id);
                return updated;
            }
            case "DELETE":
                this.items.delete(item.id);
                this.touchVault(vault.id);
                return undefined;
            default:
                throw new HttpError(405, "Method not allowed");
        }
    }

    private json(res: ServerResponse, status: number, body: unknown): void {
        res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
    }
}

function summary(item: Item): Omit<Item, "fields" | "sections"> {
    const rest: Partial<Item> = { ...item };
    delete rest.fields;
    delete rest.sections;
    return rest as Omit<Item, "fields" | "sections">;
}

function validItem(body: unknown): Omit<Item, "id" | "vault" | "version" | "createdAt" | "updatedAt"> {
    const b = body as Partial<Item> | undefined;
    if (typeof b?.title !== "string" || typeof b.category !== "string") {
        throw new HttpError(400, "Validation: (validateItem), Invalid item: title and category are required");
    }
    return {
        title: b.title,
        category: b.category,
        ...(b.tags ? { tags: b.tags } : {}),
        ...(b.urls ? { urls: b.urls } : {}),
        sections: b.sections ?? [],
        fields: b.fields ?? [],
    };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
        chunks.push(chunk as Buffer);
    }
    try {
        return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
    } catch {
        throw new HttpError(400, "Invalid JSON body");
    }
}

/**
 * The homelab's shape: vault `blumeops` with the API Credential
 * `zot-ci-apikey` (field id `credential`) and its expiry in a section.
 */
export function seedBlumeops(emulator: ConnectEmulator, key: string, expires: Date): { vault: Vault; item: Item } {
    const vault = emulator.addVault("blumeops");
    const item = emulator.addItem(vault.id, apiCredential("zot-ci-apikey", "zot-ci", key, expires));
    return { vault, item };
}

/** An API Credential item body, as the 1Password apps create it. */
export function apiCredential(
    title: string,
    username: string,
    key: string,
    expires: Date,
): Omit<Item, "id" | "vault" | "version" | "createdAt" | "updatedAt"> {
    return {
        title,
        category: "API_CREDENTIAL",
        tags: ["ci"],
        sections: [{ id: "rotation", label: "rotation" }],
        fields: [
            { id: "username", type: "STRING", label: "username", value: username },
            { id: "credential", type: "CONCEALED", label: "credential", value: key },
            { id: "type", type: "MENU", label: "type", value: "bearer" },
            { id: "notesPlain", type: "STRING", purpose: "NOTES", label: "notesPlain", value: "" },
            {
                id: "expires",
                type: "DATE",
                label: "expires",
                value: String(Math.floor(expires.getTime() / 1000)),
                section: { id: "rotation" },
            },
        ],
    };
}

/** The emulator in a child process (see connect-emulator-main.ts). */
export interface EmulatorProcess {
    url: string;
    stop(): Promise<void>;
}

/** Starts the emulator in its own Node.js process, seeded from `seed` (sent on stdin). */
export async function spawnEmulator(seed: {
    token: string;
    key: string;
    expires: Date;
    extraItems?: { title: string; username: string; credential: string; expires?: Date }[];
    /** See ConnectEmulator.holdFile. */
    holdFile?: string;
    /** See ConnectEmulator.requestLog. */
    requestLog?: string;
    /** A fixed port (to start it again where clients expect it). Default: any free one. */
    port?: number;
    /** Items as Connect stores them, e.g. with a custom field outside any section. */
    rawItems?: Omit<Item, "id" | "vault" | "version" | "createdAt" | "updatedAt">[];
    /** More tokens, each reaching only its vaults (ConnectEmulator.grant). */
    tokens?: ({ token: string } & TokenScope)[];
    /** Vaults beside blumeops, with API Credential items. */
    otherVaults?: { name: string; items: { title: string; credential: string }[] }[];
}): Promise<EmulatorProcess> {
    const child = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", join(__dirname, "connect-emulator-main.ts")], {
        stdio: ["pipe", "pipe", "inherit"],
        env: { ...process.env, TS_NODE_PROJECT: join(__dirname, "..", "tsconfig.json") },
    });
    child.stdin.end(
        JSON.stringify({
            ...seed,
            expires: seed.expires.toISOString(),
            extraItems: seed.extraItems?.map((i) => ({ ...i, expires: (i.expires ?? seed.expires).toISOString() })),
        }),
    );
    const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (d: Buffer) => {
            out += d.toString();
            const m = /listening (\S+)/.exec(out);
            if (m?.[1]) resolve(m[1]);
        });
        child.once("exit", (code) => {
            reject(new Error(`the Connect emulator exited (${String(code)}) before listening`));
        });
    });
    return {
        url,
        stop: () => stopChild(child),
    };
}
