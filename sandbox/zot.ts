/**
 * The real zot (v2.1.20, the version at registry.ops.eblu.me) for the
 * sandbox registry, when its binary is on this machine. zot is not served
 * by the Go module proxy in a form this project can build, so nothing here
 * builds it: the binary comes from CI_REGISTRY_AUTH_ZOT, else the cache's
 * `zot/zot` (`~/.cache/ci-registry-auth/zot/zot`), and without it the
 * sandbox uses the stand-in of sandbox/registry.ts.
 *
 * The configuration is registry.ops.eblu.me's, on plain HTTP: htpasswd
 * users (bcrypt only), API keys (`http.auth.apikey`), anonymous read, and
 * `zot-ci` (plus the test's other users) with the actions its policy
 * names. With `auth: false` the configuration has neither `http.auth` nor
 * `accessControl`, and anyone may push. zot reloads its htpasswd file when
 * it is rewritten, but fixes its routes at start: turning auth off or on
 * means a restart with the other configuration (Zot.restart).
 *
 * Log level: `info`, where the real registry runs `warn`. At info zot logs
 * one line per request, with the username, path, status and the request's
 * headers, Authorization masked; the sandbox's leak scans read those lines.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { stopChild } from "./child";
import { cacheDir } from "./cache";

/** A zot access-control action. */
export type ZotAction = "read" | "create" | "update" | "delete";

/** One policy of the `**` repositories: who may do what. */
export interface ZotPolicy {
    users: string[];
    actions: ZotAction[];
}

/**
 * Where the zot binary is: `{ path }`, or `{ missing }` saying where it was
 * looked for. CI_REGISTRY_AUTH_ZOT, when set, is the only place looked at.
 */
export function findZot(): { path: string } | { missing: string } {
    const fromEnv = process.env["CI_REGISTRY_AUTH_ZOT"];
    const path = fromEnv !== undefined && fromEnv !== "" ? fromEnv : join(cacheDir(), "zot", "zot");
    if (existsSync(path)) {
        return { path };
    }
    const where = fromEnv !== undefined && fromEnv !== "" ? `${path} (CI_REGISTRY_AUTH_ZOT)` : `${path} (CI_REGISTRY_AUTH_ZOT is not set)`;
    return { missing: `zot not found at ${where}` };
}

/** The zot binary, or an error that says where it was looked for and how to provide it. */
export function zotBinary(): string {
    const found = findZot();
    if ("missing" in found) {
        throw new Error(
            `${found.missing}. Fix: build zot v2.1.20 (zotregistry.dev/zot/v2, cmd/zot) elsewhere and set CI_REGISTRY_AUTH_ZOT to the binary, ` +
                `or put it at ${join(cacheDir(), "zot", "zot")}; or use the stand-in (CI_REGISTRY_AUTH_REGISTRY=stand-in).`,
        );
    }
    return found.path;
}

export interface ZotArgs {
    /** Holds `config.json`, `data/` (the storage root) and `zot.log`. */
    dir: string;
    host: string;
    port: number;
    /** The htpasswd file (bcrypt lines only) zot authenticates users with. */
    htpasswd: string;
    /** The policies of every repository (`**`); anonymous users may read. */
    policies: ZotPolicy[];
}

/** zot's configuration as registry.ops.eblu.me runs it (plain HTTP here), or with auth off. */
export function zotConfig(args: ZotArgs, auth: boolean): object {
    const http: Record<string, unknown> = { address: args.host, port: String(args.port) };
    if (auth) {
        http["realm"] = "zot";
        http["auth"] = { htpasswd: { path: args.htpasswd }, apikey: true };
        http["accessControl"] = { repositories: { "**": { anonymousPolicy: ["read"], policies: args.policies } } };
    }
    return {
        distSpecVersion: "1.1.1",
        storage: { rootDirectory: join(args.dir, "data"), gc: true, gcDelay: "1h", gcInterval: "1h" },
        http,
        log: { level: "info", output: join(args.dir, "zot.log") },
    };
}

/** A running zot. */
export class Zot {
    readonly url: string;
    readonly configFile: string;
    /** The storage root: `<rootDirectory>/<repository>/.uploads` holds the open upload sessions. */
    readonly rootDirectory: string;
    readonly logFile: string;

    private constructor(
        private readonly binary: string,
        private readonly args: ZotArgs,
        private child: ChildProcess,
    ) {
        this.url = `http://${args.host}:${args.port}`;
        this.configFile = join(args.dir, "config.json");
        this.rootDirectory = join(args.dir, "data");
        this.logFile = join(args.dir, "zot.log");
    }

    /** Starts zot with `args` (auth on) and waits until `GET /v2/` answers. */
    static async start(args: ZotArgs): Promise<Zot> {
        const binary = zotBinary();
        mkdirSync(join(args.dir, "data"), { recursive: true });
        const zot = new Zot(binary, args, spawnZot(binary, args, true));
        await zot.ready();
        return zot;
    }

    /** Stops zot and starts it again on the same address and storage, with auth on or off. */
    async restart(auth: boolean): Promise<void> {
        await stopChild(this.child);
        this.child = spawnZot(this.binary, this.args, auth);
        await this.ready();
    }

    async stop(): Promise<void> {
        await stopChild(this.child);
    }

    private async ready(): Promise<void> {
        const deadline = Date.now() + 30_000;
        for (;;) {
            try {
                const res = await fetch(`${this.url}/v2/`);
                if (res.status === 200) return;
            } catch {
                // not listening yet
            }
            if (this.child.exitCode !== null || this.child.signalCode !== null || Date.now() > deadline) {
                await stopChild(this.child);
                throw new Error(
                    `zot did not start on ${this.url}; its log: ${this.logFile}, its output: ${join(this.args.dir, "zot.out")}`,
                );
            }
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
    }
}

function spawnZot(binary: string, args: ZotArgs, auth: boolean): ChildProcess {
    const configFile = join(args.dir, "config.json");
    writeFileSync(configFile, JSON.stringify(zotConfig(args, auth), null, 2));
    // zot logs to log.output; what it prints before reading its config (and a panic) goes here.
    const out = openSync(join(args.dir, "zot.out"), "a");
    const child = spawn(binary, ["serve", configFile], { stdio: ["ignore", out, out] });
    closeSync(out);
    return child;
}
