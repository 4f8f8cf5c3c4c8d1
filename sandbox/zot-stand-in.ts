/**
 * A stand-in for zot's auth layer over a real registry, for machines
 * without the zot binary (sandbox/zot.ts): Debian's `docker-registry` (CNCF
 * distribution 2.8) with no auth of its own, on a private loopback port,
 * behind a small Node HTTP front that authenticates and authorizes as zot
 * v2.1.20 does at registry.ops.eblu.me and proxies the rest, bodies
 * streamed, the Host header kept.
 *
 * zot behaviour it follows (read from zot's source and checked against the
 * real binary by test/sandbox/registry.test.ts, which runs the same table
 * against both):
 * - htpasswd users; API keys `zak_` + 32 hex, each its own user's: `POST
 *   /zot/auth/apikey` (basic auth as the user, with its password or one of
 *   its keys; body `{"label", "expirationDate"?}`) → 201 with `apiKey` and
 *   `uuid`; a body that is not JSON, or an expiry that does not parse or has
 *   passed → 400. `GET` → 200 `{"apiKeys": [...]}` (no secrets). `DELETE
 *   ?id=` → 200 (also for an unknown id or another user's: nothing is
 *   revoked then), 400 without `id`. Any other method → 405. Anonymous →
 *   500, as zot answers.
 * - A key authenticates only with its own username, until revoked or
 *   expired; bad credentials get 401 (with the flat `{"code":"UNAUTHORIZED"}`
 *   body zot sends then) on every route, `GET /v2/` included.
 * - Access control of every repository (`**`): anonymous users may read; a
 *   user may do exactly what the policies naming it allow (nothing else,
 *   not even read). Uploads need `create`, a manifest push `create` (or
 *   `update` when the reference exists), any DELETE (an upload session too)
 *   `delete`. Missing an action: 401 with `WWW-Authenticate: Basic
 *   realm="zot"` when anonymous, 403 `DENIED` when authenticated.
 * - `GET /v2/` carries `WWW-Authenticate: basic realm=zot` even on its 200
 *   (clients such as skopeo send credentials because of it).
 * - Auth off: no checks at all, `/zot/auth/apikey` is 404.
 * - Stale upload sessions are purged after an hour (distribution's
 *   uploadpurging, standing in for zot's gcDelay).
 *
 * Distribution itself answers the OCI distribution API (Location headers
 * relative, as zot's). The front logs one line per request (method, path
 * without query, status) to the log file; never a header or a body.
 *
 * The front runs in its own Node.js process (this file, run as a script),
 * so a test that blocks its event loop (spawnSync of skopeo, ssh, act)
 * cannot stall a push. Its configuration, the passwords included, comes as
 * JSON lines on stdin (never argv) and stays in its memory; each later line
 * (a new password, auth on or off) is acknowledged on stdout.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { closeSync, createWriteStream, mkdirSync, openSync, readdirSync, rmSync, writeFileSync, type WriteStream } from "node:fs";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { stopChild } from "./child";
import type { ZotAction, ZotPolicy } from "./zot";

export interface StandInArgs {
    /** Holds distribution's config and `data/`. */
    dir: string;
    host: string;
    port: number;
    /** Each user's password. */
    passwords: ReadonlyMap<string, string>;
    policies: ZotPolicy[];
    /** distribution's log and the front's request lines. */
    logFile: string;
}

/** The front process's first stdin line. */
interface FrontConfig {
    host: string;
    port: number;
    backendPort: number;
    /** distribution's `repositories` directory. */
    repositories: string;
    passwords: Record<string, string>;
    policies: ZotPolicy[];
    logFile: string;
}

/** Every later stdin line, acknowledged with `ok <seq>`. */
type FrontMessage = { seq: number } & ({ op: "password"; user: string; password: string } | { op: "auth"; enabled: boolean });

/** What zot keeps of an API key and lists (never the key itself). */
interface ApiKeyRecord {
    createdAt: string;
    expirationDate: string;
    isExpired: boolean;
    creatorUa: string;
    generatedBy: "manual";
    lastUsed: string;
    label: string;
    scopes: null;
    uuid: string;
}

interface ApiKey {
    user: string;
    /** Epoch ms; undefined: never. */
    expiresAt: number | undefined;
    record: ApiKeyRecord;
}

type Caller = { kind: "anonymous" } | { kind: "user"; user: string } | { kind: "refused" };

/** Go's zero time, which zot shows for "never". */
const ZERO_TIME = "0001-01-01T00:00:00Z";

const UNAUTHORIZED = {
    code: "UNAUTHORIZED",
    message: "authentication required",
    detail: {
        description:
            "The access controller was unable to authenticate the client. Often this will be accompanied by a WWW-Authenticate HTTP response header indicating how to authenticate.",
    },
};
const DENIED = {
    code: "DENIED",
    message: "requested access to the resource is denied",
    detail: { description: "The access controller denied access for the operation on a resource." },
};

/** A loopback port nothing listens on right now. */
async function freePort(): Promise<number> {
    const server = createNetServer();
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
    const address = server.address();
    await new Promise((resolve) => server.close(resolve));
    if (address === null || typeof address === "string") throw new Error("no free loopback port");
    return address.port;
}

/** Where distribution keeps the repositories (each one's upload sessions in `<name>/_uploads/<uuid>/`). */
function repositoriesDir(dir: string): string {
    return join(dir, "data", "docker", "registry", "v2", "repositories");
}

/** The repository and what a request does to it, from its path (`/v2/<name>/<kind>/...`). */
function routeOf(
    path: string,
): { name: string; kind: "manifests" | "blobs" | "uploads" | "tags" | "referrers"; reference: string } | undefined {
    const m = /^\/v2\/(.+?)\/(manifests|blobs\/uploads|blobs|tags|referrers)(?:\/(.*))?$/.exec(path);
    if (m === null) return undefined;
    const kind = m[2] === "blobs/uploads" ? "uploads" : (m[2] as "manifests" | "blobs" | "tags" | "referrers");
    return { name: m[1] ?? "", kind, reference: m[3] ?? "" };
}

/** The zot stand-in, seen from the test: distribution and the auth front, each its own process. */
export class ZotStandIn {
    readonly url: string;
    private seq = 0;
    private readonly acks = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();

    private constructor(
        private readonly args: StandInArgs,
        private readonly registry: ChildProcess,
        private readonly front: ChildProcess & { stdin: NonNullable<ChildProcess["stdin"]> },
    ) {
        this.url = `http://${args.host}:${args.port}`;
    }

    /** Starts distribution on a private loopback port, then the front on `host:port`. */
    static async start(args: StandInArgs): Promise<ZotStandIn> {
        const dataDir = join(args.dir, "data");
        mkdirSync(dataDir, { recursive: true });
        const backendPort = await freePort();
        const config = join(args.dir, "distribution.yml");
        writeFileSync(
            config,
            [
                "version: 0.1",
                "log: { level: info }",
                `storage: { filesystem: { rootdirectory: ${dataDir} }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: true, age: 1h, interval: 1h, dryrun: false } } }`,
                `http: { addr: "127.0.0.1:${backendPort}", relativeurls: true }`,
                "",
            ].join("\n"),
        );
        const out = openSync(args.logFile, "a");
        const registry = spawn("docker-registry", ["serve", config], { stdio: ["ignore", out, out] });
        closeSync(out);
        const deadline = Date.now() + 15_000;
        for (;;) {
            try {
                if ((await fetch(`http://127.0.0.1:${backendPort}/v2/`)).status === 200) break;
            } catch {
                // not listening yet
            }
            if (registry.exitCode !== null || Date.now() > deadline) {
                await stopChild(registry);
                throw new Error(`docker-registry did not start on 127.0.0.1:${backendPort}; log: ${args.logFile}`);
            }
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const front = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", __filename], {
            stdio: ["pipe", "pipe", "inherit"],
            env: { ...process.env, TS_NODE_PROJECT: join(__dirname, "..", "tsconfig.json") },
        });
        const frontConfig: FrontConfig = {
            host: args.host,
            port: args.port,
            backendPort,
            repositories: repositoriesDir(args.dir),
            passwords: Object.fromEntries(args.passwords),
            policies: args.policies,
            logFile: args.logFile,
        };
        // A front that died is reported by its exit, below, not by a write to its stdin.
        front.stdin.on("error", () => undefined);
        front.stdin.write(`${JSON.stringify(frontConfig)}\n`);
        const standIn = new ZotStandIn(args, registry, front);
        const lines = createInterface({ input: front.stdout });
        try {
            await new Promise<void>((resolve, reject) => {
                lines.on("line", (line) => {
                    if (line === "listening") resolve();
                    const ack = /^ok (\d+)$/.exec(line);
                    if (ack) {
                        const seq = Number(ack[1]);
                        standIn.acks.get(seq)?.resolve();
                        standIn.acks.delete(seq);
                    }
                });
                front.once("exit", (code) => {
                    const err = new Error(`the zot stand-in's front exited (${String(code)}); it listened on ${args.host}:${args.port}`);
                    for (const ack of standIn.acks.values()) ack.reject(err);
                    standIn.acks.clear();
                    reject(err);
                });
            });
        } catch (err) {
            await standIn.stop();
            throw err;
        }
        return standIn;
    }

    /**
     * Replaces `user`'s password. The line reaches the front before this
     * returns (a small write to an idle pipe); the promise settles once the
     * front has taken it.
     */
    setPassword(user: string, password: string): Promise<void> {
        return this.send({ op: "password", user, password });
    }

    setAuth(enabled: boolean): Promise<void> {
        return this.send({ op: "auth", enabled });
    }

    /** Upload sessions open on disk in `repository` (distribution's `_uploads`). */
    uploadSessions(repository: string): number {
        const dir = join(repositoriesDir(this.args.dir), repository, "_uploads");
        try {
            return readdirSync(dir).length;
        } catch {
            return 0;
        }
    }

    async stop(): Promise<void> {
        await stopChild(this.front);
        await stopChild(this.registry);
    }

    private send(body: { op: "password"; user: string; password: string } | { op: "auth"; enabled: boolean }): Promise<void> {
        const seq = ++this.seq;
        const taken = new Promise<void>((resolve, reject) => {
            this.acks.set(seq, { resolve, reject });
        });
        this.front.stdin.write(`${JSON.stringify({ seq, ...body })}\n`);
        return taken;
    }
}

/** The front: zot's auth layer over distribution, in the process this file runs as. */
class AuthFront {
    /** Auth on (as at registry.ops.eblu.me) or off (anyone may push). */
    auth = true;
    private readonly keys = new Map<string, ApiKey>();
    private readonly passwords: Map<string, string>;
    readonly server: Server;
    private readonly log: WriteStream;

    constructor(private readonly config: FrontConfig) {
        this.passwords = new Map(Object.entries(config.passwords));
        const log = createWriteStream(config.logFile, { flags: "a" });
        this.log = log;
        this.server = createServer((req, res) => {
            this.handle(req, res).catch((err: unknown) => {
                if (!res.headersSent) {
                    res.writeHead(502).end();
                } else {
                    res.destroy();
                }
                log.write(`zot stand-in: ${req.method ?? ""} failed: ${(err as Error).message}\n`);
            });
        });
    }

    apply(message: FrontMessage): void {
        if (message.op === "password") {
            this.passwords.set(message.user, message.password);
        } else {
            this.auth = message.enabled;
        }
    }

    async close(): Promise<void> {
        await new Promise((resolve) => {
            this.server.close(resolve);
            this.server.closeAllConnections();
        });
        await new Promise((resolve) => this.log.end(resolve));
    }

    private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const url = new URL(req.url ?? "/", "http://front");
        const method = req.method ?? "GET";
        res.on("finish", () => this.log.write(`zot stand-in: ${method} ${url.pathname} ${res.statusCode}\n`));
        if (!this.auth) {
            if (url.pathname.startsWith("/zot/")) {
                res.writeHead(404).end();
                return;
            }
            this.proxy(req, res, {});
            return;
        }
        const caller = this.authenticate(req.headers.authorization);
        if (caller.kind === "refused") {
            this.json(res, 401, UNAUTHORIZED, { "WWW-Authenticate": 'Basic realm="zot"' });
            return;
        }
        if (url.pathname === "/zot/auth/apikey") {
            await this.apiKeys(req, res, caller, url);
            return;
        }
        if (url.pathname === "/v2/" || url.pathname === "/v2") {
            this.proxy(req, res, { "www-authenticate": "basic realm=zot" });
            return;
        }
        const action = await this.actionOf(method, url.pathname);
        if (action !== undefined && !this.allowed(caller, action)) {
            if (caller.kind === "anonymous") {
                this.json(res, 401, { errors: [UNAUTHORIZED] }, { "WWW-Authenticate": 'Basic realm="zot"' });
            } else {
                this.json(res, 403, { errors: [DENIED] }, { "WWW-Authenticate": 'Basic realm="zot"' });
            }
            return;
        }
        this.proxy(req, res, {});
    }

    /** Who the Authorization header says the caller is: a password or one of the user's own live keys. */
    private authenticate(header: string | undefined): Caller {
        if (header === undefined) return { kind: "anonymous" };
        const m = /^Basic\s+(\S+)$/i.exec(header);
        if (m === null) return { kind: "refused" };
        const decoded = Buffer.from(m[1] ?? "", "base64").toString("utf8");
        const colon = decoded.indexOf(":");
        if (colon < 0) return { kind: "refused" };
        const user = decoded.slice(0, colon);
        const secret = decoded.slice(colon + 1);
        const password = this.passwords.get(user);
        if (password !== undefined && password === secret) return { kind: "user", user };
        const key = this.keys.get(secret);
        if (key?.user === user && (key.expiresAt === undefined || key.expiresAt > Date.now())) {
            key.record.lastUsed = nanoTime();
            return { kind: "user", user };
        }
        return { kind: "refused" };
    }

    private allowed(caller: Caller, action: ZotAction): boolean {
        if (caller.kind === "anonymous") return action === "read";
        if (caller.kind === "refused") return false;
        return this.config.policies.some((p) => p.users.includes(caller.user) && p.actions.includes(action));
    }

    /** The action zot's access control requires of a request, or undefined for none. */
    private async actionOf(method: string, path: string): Promise<ZotAction | undefined> {
        const route = routeOf(path);
        if (method === "GET" || method === "HEAD") return "read";
        if (method === "DELETE") return "delete";
        if (route?.kind === "manifests" && method === "PUT") {
            // Overwriting an existing reference (a tag moved) is an update.
            const exists = await this.backendStatus("HEAD", `/v2/${route.name}/manifests/${route.reference}`);
            return exists === 200 ? "update" : "create";
        }
        return "create";
    }

    private async backendStatus(method: string, path: string): Promise<number> {
        return new Promise((resolve, reject) => {
            const r = request({ host: "127.0.0.1", port: this.config.backendPort, method, path }, (res) => {
                res.resume();
                resolve(res.statusCode ?? 0);
            });
            r.on("error", reject).end();
        });
    }

    /** `/zot/auth/apikey`: a user's own keys. */
    private async apiKeys(req: IncomingMessage, res: ServerResponse, caller: Caller, url: URL): Promise<void> {
        if (caller.kind !== "user") {
            // zot: anonymous callers get through authn and fail in the handler.
            res.writeHead(500).end();
            return;
        }
        const user = caller.user;
        const mine = [...this.keys.values()].filter((k) => k.user === user);
        switch (req.method) {
            case "GET":
                for (const k of mine) k.record.isExpired = k.expiresAt !== undefined && k.expiresAt <= Date.now();
                this.json(res, 200, { apiKeys: mine.map((k) => k.record) });
                return;
            case "POST": {
                const body = await readBody(req);
                let parsed: { label?: unknown; expirationDate?: unknown };
                try {
                    // As Go's json.Unmarshal into a struct: `null` is no fields, anything but an object is refused.
                    const value = JSON.parse(body) as unknown;
                    if (value !== null && (typeof value !== "object" || Array.isArray(value))) throw new Error("not an object");
                    parsed = value ?? {};
                } catch {
                    res.writeHead(400).end();
                    return;
                }
                let expiresAt: number | undefined;
                if (typeof parsed.expirationDate === "string" && parsed.expirationDate !== "") {
                    expiresAt = Date.parse(parsed.expirationDate);
                    if (Number.isNaN(expiresAt) || expiresAt <= Date.now()) {
                        res.writeHead(400).end();
                        return;
                    }
                }
                const apiKey = `zak_${randomBytes(16).toString("hex")}`;
                const record: ApiKeyRecord = {
                    createdAt: new Date().toISOString(),
                    expirationDate: expiresAt === undefined ? ZERO_TIME : new Date(expiresAt).toISOString(),
                    isExpired: false,
                    creatorUa: req.headers["user-agent"] ?? "",
                    generatedBy: "manual",
                    lastUsed: ZERO_TIME,
                    label: typeof parsed.label === "string" ? parsed.label : "",
                    scopes: null,
                    uuid: randomUUID(),
                };
                this.keys.set(apiKey, { user, expiresAt, record });
                this.json(res, 201, { ...record, apiKey });
                return;
            }
            case "DELETE": {
                // zot: no `id`, or more than one, is 400; an empty one deletes nothing and answers 200.
                const ids = url.searchParams.getAll("id");
                if (ids.length !== 1) {
                    res.writeHead(400).end();
                    return;
                }
                const id = ids[0] ?? "";
                for (const [value, k] of this.keys) {
                    if (k.user === user && k.record.uuid === id) this.keys.delete(value);
                }
                res.writeHead(200).end();
                return;
            }
            default:
                res.writeHead(405).end();
        }
    }

    private json(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
        res.writeHead(status, { "Content-Type": "application/json", ...headers }).end(JSON.stringify(body));
    }

    /** Hands the request to distribution as it came (credentials removed: distribution has no auth), streaming both bodies. */
    private proxy(req: IncomingMessage, res: ServerResponse, extra: Record<string, string>): void {
        const headers = { ...req.headers };
        delete headers.authorization;
        const upstream = request(
            { host: "127.0.0.1", port: this.config.backendPort, method: req.method ?? "GET", path: req.url ?? "/", headers },
            (up) => {
                const route = routeOf(new URL(req.url ?? "/", "http://front").pathname);
                if (
                    req.method === "DELETE" &&
                    up.statusCode === 204 &&
                    route?.kind === "uploads" &&
                    /^[0-9a-f-]{36}$/.test(route.reference)
                ) {
                    // distribution 2.8.2 answers 204 but leaves the session on disk ("error closing
                    // blobwriter"); zot removes it, so the session's directory goes here.
                    rmSync(join(this.config.repositories, route.name, "_uploads", route.reference), { recursive: true, force: true });
                }
                res.writeHead(up.statusCode ?? 502, { ...up.headers, ...extra });
                up.pipe(res);
            },
        );
        upstream.on("error", () => {
            if (!res.headersSent) res.writeHead(502).end();
            else res.destroy();
        });
        req.pipe(upstream);
    }
}

async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks).toString("utf8");
}

/** A stdin line as JSON; a parse error would quote the line, passwords and all, so none is passed on. */
function parseLine(line: string): unknown {
    try {
        return JSON.parse(line);
    } catch {
        throw new Error("a line on stdin is not JSON");
    }
}

/** The front process: configuration on stdin's first line, then messages; `listening`, then `ok <seq>` on stdout. */
async function main(): Promise<void> {
    const lines = createInterface({ input: process.stdin });
    let front: AuthFront | undefined;
    const stop = (): void => {
        void (front?.close() ?? Promise.resolve()).then(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    // The test's process is gone: so is the front.
    lines.on("close", stop);
    for await (const line of lines) {
        if (front === undefined) {
            const config = parseLine(line) as FrontConfig;
            front = new AuthFront(config);
            const server = front.server;
            await new Promise<void>((resolve, reject) => server.once("error", reject).listen(config.port, config.host, resolve));
            process.stdout.write("listening\n");
        } else {
            const message = parseLine(line) as FrontMessage;
            front.apply(message);
            process.stdout.write(`ok ${message.seq}\n`);
        }
    }
}

if (require.main === module) {
    main().catch((err: unknown) => {
        console.error(`zot stand-in: ${(err as Error).message}`);
        process.exit(1);
    });
}

/**
 * Now as zot stamps `lastUsed` (Go's time.Now(), RFC 3339 with nanoseconds):
 * two requests of one key never show the same time.
 */
function nanoTime(): string {
    const ns = process.hrtime.bigint() % 1_000_000n;
    return new Date().toISOString().replace(/Z$/, `${ns.toString().padStart(6, "0")}Z`);
}
