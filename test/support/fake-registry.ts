/**
 * A registry that answers the probe's requests as a test tells it to: zot's
 * answers by default (202 with a relative Location for a known key, 401
 * otherwise, 403 on cancel), or a fixed status, redirect or TLS; and zot's
 * listing of the user's API keys (`GET /zot/auth/apikey`, which stamps the
 * caller's `lastUsed`), from `listed`. For unit tests of the probe only:
 * the sandbox's registry is a real one.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttps } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FakeRegistry {
    url: string;
    /** What to answer an upload: "zot" (default), a status, or a redirect. */
    mode: "zot" | number | { redirect: string };
    /** The keys `user` may push with. */
    keys: Set<string>;
    /** What zot lists for each key (by value); a key without an entry is listed with a made-up id. */
    listed: Map<string, { uuid: string; label: string; createdAt: string; lastUsed: string; expirationDate: string }>;
    /** Anonymous uploads accepted (authentication off). */
    open: boolean;
    requests: { method: string; path: string; auth: string | undefined }[];
    close(): Promise<void>;
}

/** Starts one on loopback; `tls` makes it HTTPS with a fresh self-signed certificate (its PEM returned). */
export async function fakeRegistry(user: string, tls = false): Promise<FakeRegistry & { certificate?: string }> {
    let certificate: string | undefined;
    let server: Server;
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
        handle(fake, req, res);
    };
    if (tls) {
        const dir = mkdtempSync(join(tmpdir(), "cra-fake-tls-"));
        spawnSync("openssl", [
            ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
            ...["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
        ]);
        certificate = readFileSync(join(dir, "cert.pem"), "utf8");
        server = createHttps({ key: readFileSync(join(dir, "key.pem")), cert: certificate }, handler);
        rmSync(dir, { recursive: true, force: true });
    } else {
        server = createHttp(handler);
    }
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    const fake: FakeRegistry & { user: string; certificate?: string } = {
        url: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
        mode: "zot",
        keys: new Set(),
        listed: new Map(),
        open: false,
        requests: [],
        user,
        close: () =>
            new Promise<void>((resolve) => {
                server.closeAllConnections();
                server.close(() => {
                    resolve();
                });
            }),
    };
    if (certificate !== undefined) fake.certificate = certificate;
    return fake;
}

function handle(fake: FakeRegistry & { user: string }, req: IncomingMessage, res: ServerResponse): void {
    const auth = req.headers.authorization;
    fake.requests.push({ method: req.method ?? "", path: req.url ?? "", auth });
    req.resume();
    const [who, key] = Buffer.from((auth ?? "").replace(/^Basic /, ""), "base64")
        .toString()
        .split(":");
    const known = auth !== undefined && who === fake.user && key !== undefined && fake.keys.has(key);
    if ((req.url ?? "").startsWith("/zot/auth/apikey")) {
        if (!known) {
            res.writeHead(401).end();
            return;
        }
        const entry = (k: string, i: number) =>
            fake.listed.get(k) ?? {
                uuid: `uuid-${String(i)}`,
                label: "",
                createdAt: "2026-12-01T00:00:00Z",
                lastUsed: "0001-01-01T00:00:00Z",
                expirationDate: "0001-01-01T00:00:00Z",
            };
        // zot stamps the caller's key on every request it makes.
        fake.listed.set(key, {
            ...entry(key, [...fake.keys].indexOf(key)),
            lastUsed: new Date(Date.now() + fake.requests.length).toISOString(),
        });
        const apiKeys = [...fake.keys].map((k, i) => ({ ...entry(k, i), isExpired: false }));
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ apiKeys }));
        return;
    }
    if (req.method === "DELETE") {
        res.writeHead(known ? 403 : 401).end();
        return;
    }
    if (typeof fake.mode === "number") {
        res.writeHead(fake.mode).end();
    } else if (typeof fake.mode === "object") {
        res.writeHead(302, { Location: fake.mode.redirect }).end();
    } else if (known || (auth === undefined && fake.open)) {
        res.writeHead(202, { Location: `${req.url ?? "/"}8f1c0e9a-upload`, Range: "0-0" }).end();
    } else {
        res.writeHead(401, { "WWW-Authenticate": 'Basic realm="zot"' }).end();
    }
}
