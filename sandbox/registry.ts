/**
 * The sandbox's registry: Debian's `docker-registry` (CNCF distribution)
 * with htpasswd basic auth for `zot-ci`, standing in for zot at
 * registry.ops.eblu.me: anonymous requests get 401 on push, `zot-ci` with
 * the current key may push. The password is written with `htpasswd -iB`
 * (from stdin, never argv); distribution re-reads the file when it changes,
 * so a rotation also rotates what the registry accepts.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { stopChild } from "./child";

export interface Registry {
    /** `host:port` to push to. */
    address: string;
    /** Replaces the accepted key for `user`. */
    setKey(key: string): void;
    /** The tags of `repository`, read as `user` with `key`; none when the registry refuses. */
    tags(repository: string, key: string): Promise<string[]>;
    stop(): Promise<void>;
    /** Where the registry logs go (scanned for leaks by the tests). */
    logFile: string;
}

/** Starts the registry on `host:port`, accepting `user` with `key`. */
export async function startRegistry(dir: string, host: string, port: number, user: string, key: string): Promise<Registry> {
    for (const tool of ["docker-registry", "htpasswd"]) {
        if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
            throw new Error(`${tool} is not installed (Debian packages docker-registry and apache2-utils)`);
        }
    }
    mkdirSync(join(dir, "data"), { recursive: true });
    const htpasswd = join(dir, "htpasswd");
    const setKey = (value: string): void => {
        const r = spawnSync("htpasswd", ["-iBc", htpasswd, user], { input: value, encoding: "utf8" });
        if (r.status !== 0) {
            throw new Error(`htpasswd failed: ${r.stderr}`);
        }
    };
    setKey(key);
    const config = join(dir, "config.yml");
    writeFileSync(
        config,
        [
            "version: 0.1",
            "log: { level: info }",
            `storage: { filesystem: { rootdirectory: ${join(dir, "data")} }, delete: { enabled: true } }`,
            `http: { addr: "${host}:${port}" }`,
            `auth: { htpasswd: { realm: ci-registry-auth-sandbox, path: ${htpasswd} } }`,
            "",
        ].join("\n"),
    );
    const logFile = join(dir, "registry.log");
    const out = openSync(logFile, "a");
    const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: ["ignore", out, out] });
    const address = `${host}:${port}`;
    const deadline = Date.now() + 15_000;
    for (;;) {
        try {
            const res = await fetch(`http://${address}/v2/`);
            if (res.status === 401) break;
        } catch {
            // not listening yet
        }
        if (child.exitCode !== null || Date.now() > deadline) {
            child.kill();
            throw new Error(`the registry did not start on ${address}; log: ${logFile}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const tags = async (repository: string, key: string): Promise<string[]> => {
        const res = await fetch(`http://${address}/v2/${repository}/tags/list`, {
            headers: { Authorization: `Basic ${Buffer.from(`${user}:${key}`).toString("base64")}` },
        });
        return res.status === 200 ? ((await res.json()) as { tags: string[] }).tags : [];
    };
    return {
        address,
        setKey,
        tags,
        logFile,
        stop: () => stopChild(child),
    };
}
