/**
 * One HTTP request to the registry, as the probe and zot's key API send it:
 * with the settings' CA, no redirect followed, never a throw (no HTTP
 * answer is status 0 with the error's code). The Authorization header is
 * the only place a key travels.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

/** What the registry answered one request. */
export interface Answer {
    status: number;
    location?: string;
    /** The error code when there was no HTTP answer. */
    error?: string;
    /** The response's body, when asked for (at most 1 MiB). */
    body?: string;
}

/** How one request to the registry is sent. */
export interface RegistryRequest {
    /** The Authorization header, e.g. `Basic …`; none: anonymous. */
    auth?: string | undefined;
    /** PEM of a private CA (`registry.caBundle`). */
    ca?: string | undefined;
    /** A JSON body. */
    json?: unknown;
    /** Read the response's body into `Answer.body`. */
    readBody?: boolean;
}

const MAX_BODY = 1024 * 1024;

const TIMEOUT_MS = 10_000;

/**
 * One request to the registry, with the settings' CA; never follows a
 * redirect and never throws: no HTTP answer is status 0 with the error's
 * code. The Authorization header is the only place a key travels.
 */
export function registryRequest(method: string, url: URL, r: RegistryRequest = {}): Promise<Answer> {
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    const body = r.json === undefined ? "" : JSON.stringify(r.json);
    return new Promise((resolve) => {
        const req = request(
            url,
            {
                method,
                headers: {
                    "Content-Length": String(Buffer.byteLength(body)),
                    ...(r.json !== undefined ? { "Content-Type": "application/json" } : {}),
                    ...(r.auth !== undefined ? { Authorization: r.auth } : {}),
                },
                timeout: TIMEOUT_MS,
                ...(r.ca !== undefined ? { ca: r.ca } : {}),
            },
            (res: IncomingMessage) => {
                const chunks: Buffer[] = [];
                let size = 0;
                res.on("data", (d: Buffer) => {
                    size += d.length;
                    if (r.readBody === true && size <= MAX_BODY) chunks.push(d);
                });
                res.on("end", () => {
                    const location = res.headers.location;
                    resolve({
                        status: res.statusCode ?? 0,
                        ...(location !== undefined ? { location } : {}),
                        ...(r.readBody === true ? { body: Buffer.concat(chunks).toString("utf8") } : {}),
                    });
                });
            },
        );
        req.on("timeout", () => req.destroy(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })));
        req.on("error", (err: NodeJS.ErrnoException) => {
            resolve({ status: 0, error: err.code ?? err.message });
        });
        req.end(body);
    });
}
