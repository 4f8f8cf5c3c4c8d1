/**
 * The sandbox's registry, standing in for zot v2.1.20 at
 * registry.ops.eblu.me: anonymous users may read, `zot-ci` may push with its
 * password or one of its API keys, and with nothing else.
 *
 * Two implementations with one interface:
 * - `zot`: the real zot binary with registry.ops.eblu.me's configuration
 *   (sandbox/zot.ts), used whenever the binary is on this machine;
 * - `stand-in`: Debian's `docker-registry` behind a Node front that
 *   reproduces zot's auth layer (sandbox/zot-stand-in.ts), used otherwise.
 * CI_REGISTRY_AUTH_REGISTRY=zot or =stand-in forces one (`zot` then fails
 * when the binary is missing). test/sandbox/registry.test.ts runs one table
 * of behaviours against both.
 *
 * Passwords reach zot as bcrypt lines written with `htpasswd -niB` (the
 * password on stdin, never argv); zot reloads the file when it is rewritten
 * in place, so a rotation also rotates what the registry accepts.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { ZotStandIn } from "./zot-stand-in";
import { findZot, Zot, type ZotAction, type ZotPolicy } from "./zot";

export type RegistryKind = "zot" | "stand-in";

export interface Registry {
    /** Which implementation runs. */
    kind: RegistryKind;
    /** `host:port` to push to. */
    address: string;
    /** `http://host:port`. */
    url: string;
    /**
     * Replaces `user`'s password (what its basic auth and `createApiKey`
     * take). The stand-in accepts it at once; zot within milliseconds (it
     * reloads its htpasswd file), and this object's async methods wait for it.
     */
    setKey(key: string): void;
    /** The tags of `repository`, read as `user` with `key`; none when the registry refuses. */
    tags(repository: string, key: string): Promise<string[]>;
    /** Creates an API key of `user`, authenticated as `user` with `password` (zot: a user creates only its own keys). */
    createApiKey(user: string, password: string, options?: { label?: string; expiresAt?: Date }): Promise<{ key: string; id: string }>;
    /** Revokes `user`'s key `id`. */
    revokeApiKey(user: string, password: string, id: string): Promise<void>;
    /** Auth on (as at registry.ops.eblu.me) or off (anyone may push). zot restarts on the same port and storage; keys survive. */
    setAuth(enabled: boolean): Promise<void>;
    /** Upload sessions of `repository` open on disk right now. */
    uploadSessions(repository: string): Promise<number>;
    /** Where the registry logs go (scanned for leaks by the tests). */
    logFile: string;
    stop(): Promise<void>;
}

/** A user besides the pushing one, with the actions of its own policy. */
export interface RegistryUser {
    user: string;
    password: string;
    actions: ZotAction[];
}

export interface RegistryOptions {
    /** Default: CI_REGISTRY_AUTH_REGISTRY, else `zot` when its binary is found, else `stand-in`. */
    kind?: RegistryKind;
    /** More htpasswd users, e.g. one with `delete` or one with only `read`. */
    otherUsers?: RegistryUser[];
}

/** What registry.ops.eblu.me's policy gives `zot-ci`: push, never delete. */
const PUSHER_ACTIONS: ZotAction[] = ["read", "create", "update"];

/** Which implementation startRegistry will run, and why. */
export function registryKind(requested?: RegistryKind): { kind: RegistryKind; why: string } {
    if (requested !== undefined) return { kind: requested, why: "asked for" };
    const fromEnv = process.env["CI_REGISTRY_AUTH_REGISTRY"] ?? "";
    if (fromEnv === "zot" || fromEnv === "stand-in") return { kind: fromEnv, why: "CI_REGISTRY_AUTH_REGISTRY" };
    if (fromEnv !== "") {
        throw new Error(`CI_REGISTRY_AUTH_REGISTRY=${fromEnv} is neither "zot" nor "stand-in". Fix: set one of them, or unset it.`);
    }
    const zot = findZot();
    return "path" in zot ? { kind: "zot", why: zot.path } : { kind: "stand-in", why: zot.missing };
}

function requireTool(tool: string, pkg: string): void {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
        throw new Error(`${tool} is not installed (Debian package ${pkg}; sandbox/deps installs it)`);
    }
}

function basic(user: string, secret: string): string {
    return `Basic ${Buffer.from(`${user}:${secret}`).toString("base64")}`;
}

/** Starts the registry on `host:port`, accepting `user` with password `key`. */
export async function startRegistry(
    dir: string,
    host: string,
    port: number,
    user: string,
    key: string,
    options: RegistryOptions = {},
): Promise<Registry> {
    const { kind, why } = registryKind(options.kind);
    console.log(kind === "zot" ? `sandbox registry: zot (${why})` : `sandbox registry: the stand-in for zot (${why})`);
    mkdirSync(dir, { recursive: true });
    const others = options.otherUsers ?? [];
    const passwords = new Map<string, string>([[user, key], ...others.map((o): [string, string] => [o.user, o.password])]);
    const policies: ZotPolicy[] = [
        { users: [user], actions: PUSHER_ACTIONS },
        ...others.map((o) => ({ users: [o.user], actions: o.actions })),
    ];
    const address = `${host}:${port}`;
    const url = `http://${address}`;

    let impl: {
        logFile: string;
        setPassword(user: string, password: string): void;
        setAuth(enabled: boolean): Promise<void>;
        uploadSessions(repository: string): number;
        stop(): Promise<void>;
    };
    // Settles when the registry accepts the latest password (zot reloads its htpasswd file asynchronously).
    let settled: Promise<void> = Promise.resolve();

    if (kind === "zot") {
        requireTool("htpasswd", "apache2-utils");
        const htpasswd = join(dir, "htpasswd");
        const lines = new Map<string, string>();
        const hash = (name: string, password: string): void => {
            const r = spawnSync("htpasswd", ["-niB", name], { input: password, encoding: "utf8" });
            if (r.status !== 0) throw new Error(`htpasswd failed for ${name}: ${r.stderr}`);
            lines.set(name, r.stdout.trim());
        };
        // Rewritten in place (not renamed): zot watches the file.
        const write = (): void => {
            writeFileSync(htpasswd, [...lines.values(), ""].join("\n"));
        };
        for (const [name, password] of passwords) hash(name, password);
        write();
        const zot = await Zot.start({ dir, host, port, htpasswd, policies });
        let auth = true;
        impl = {
            logFile: zot.logFile,
            setPassword: (name, password) => {
                hash(name, password);
                write();
                const taken = (async () => {
                    const deadline = Date.now() + 10_000;
                    while (auth && (await fetch(`${url}/v2/`, { headers: { Authorization: basic(name, password) } })).status !== 200) {
                        if (Date.now() > deadline) throw new Error(`zot did not take ${name}'s new password within 10 s`);
                        await new Promise((resolve) => setTimeout(resolve, 50));
                    }
                })();
                // The next awaited call reports a failure; none is unhandled meanwhile.
                taken.catch(() => undefined);
                settled = taken;
            },
            setAuth: async (enabled) => {
                await zot.restart(enabled);
                auth = enabled;
            },
            uploadSessions: (repository) => {
                try {
                    return readdirSync(join(zot.rootDirectory, repository, ".uploads")).length;
                } catch {
                    return 0;
                }
            },
            stop: () => zot.stop(),
        };
    } else {
        requireTool("docker-registry", "docker-registry");
        const standIn = await ZotStandIn.start({ dir, host, port, passwords, policies, logFile: join(dir, "registry.log") });
        impl = {
            logFile: join(dir, "registry.log"),
            setPassword: (name, password) => {
                const taken = standIn.setPassword(name, password);
                taken.catch(() => undefined);
                settled = taken;
            },
            setAuth: (enabled) => standIn.setAuth(enabled),
            uploadSessions: (repository) => standIn.uploadSessions(repository),
            stop: () => standIn.stop(),
        };
    }

    const apiKey = async (method: string, asUser: string, password: string, query = "", body?: string): Promise<Response> => {
        await settled;
        return fetch(`${url}/zot/auth/apikey${query}`, {
            method,
            headers: { Authorization: basic(asUser, password), ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
            ...(body === undefined ? {} : { body }),
        });
    };

    return {
        kind,
        address,
        url,
        logFile: impl.logFile,
        setKey: (value) => {
            passwords.set(user, value);
            impl.setPassword(user, value);
        },
        tags: async (repository, value) => {
            await settled;
            const res = await fetch(`${url}/v2/${repository}/tags/list`, { headers: { Authorization: basic(user, value) } });
            return res.status === 200 ? (((await res.json()) as { tags: string[] | null }).tags ?? []) : [];
        },
        createApiKey: async (asUser, password, opts = {}) => {
            const body = {
                label: opts.label ?? "ci",
                ...(opts.expiresAt === undefined ? {} : { expirationDate: opts.expiresAt.toISOString() }),
            };
            const res = await apiKey("POST", asUser, password, "", JSON.stringify(body));
            if (res.status !== 201) throw new Error(`creating an API key for ${asUser}: HTTP ${res.status}`);
            const created = (await res.json()) as { apiKey: string; uuid: string };
            return { key: created.apiKey, id: created.uuid };
        },
        revokeApiKey: async (asUser, password, id) => {
            const res = await apiKey("DELETE", asUser, password, `?id=${encodeURIComponent(id)}`);
            if (res.status !== 200) throw new Error(`revoking API key ${id} of ${asUser}: HTTP ${res.status}`);
        },
        setAuth: async (enabled) => {
            await settled;
            await impl.setAuth(enabled);
        },
        uploadSessions: async (repository) => {
            await settled;
            return impl.uploadSessions(repository);
        },
        stop: () => impl.stop(),
    };
}
