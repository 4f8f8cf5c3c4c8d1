/**
 * The real Dagger engine (v0.19.11, blumeops's `engineVersion`) for indri's
 * jobs: the binaries `../shared/tools/build-dagger` builds from upstream
 * source (`dagger-engine`, the `dagger` CLI, `dagger-init`, `dnsname`), from
 * CI_REGISTRY_AUTH_DAGGER (a directory), else the cache's `dagger/`.
 *
 * On indri a job's `dagger` starts the engine as a privileged container in
 * the dind sidecar. Here it runs as a process beside the sandbox dockerd
 * (docs/sandbox.md says why: this machine cannot run a privileged
 * container, and the sandbox dockerd has no bridge network), with what its
 * image would give it: runc and dagger-init in /usr/local/bin, the
 * xtables links in /usr/bin, CNI plugins with dnsname. It runs in a mount
 * namespace of its own where /usr/bin and /usr/local/bin are overlays whose
 * writes land in this engine's directory, and /run and its state are its
 * own, so what it rewrites at start (the iptables links, /etc/resolv.conf)
 * never reaches this machine. Host network (`--oci-worker-net host`), as
 * indri's jobs use: the push leaves from the engine and reaches the sandbox
 * registry on loopback. Jobs reach it on a loopback TCP address
 * (`_EXPERIMENTAL_DAGGER_RUNNER_HOST`, which the dagger CLI honours).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { cacheDir } from "./cache";
import { stopChild, unmountUnder } from "./child";

/** The binaries build-dagger leaves, all needed. */
export const DAGGER_BINARIES = ["dagger-engine", "dagger", "dagger-init", "dnsname"] as const;

/** Debian's packages for what the engine's image holds, by a path each installs (sandbox/deps installs them). */
export const HOST_TOOLS: Record<string, string> = {
    "/usr/sbin/runc": "runc",
    "/usr/sbin/dnsmasq": "dnsmasq-base",
    "/usr/sbin/xtables-legacy-multi": "iptables",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
};

/**
 * Where the Dagger binaries are: `{ dir }`, or `{ missing }` saying where
 * they were looked for and how to provide them. CI_REGISTRY_AUTH_DAGGER,
 * when set, is the only place looked at.
 */
export function findDagger(env: NodeJS.ProcessEnv = process.env, hostTools = HOST_TOOLS): { dir: string } | { missing: string } {
    const fromEnv = env["CI_REGISTRY_AUTH_DAGGER"];
    const set = fromEnv !== undefined && fromEnv !== "";
    const dir = set ? fromEnv : join(cacheDir(env), "dagger");
    const absent = DAGGER_BINARIES.filter((b) => !existsSync(join(dir, b)));
    if (absent.length > 0) {
        return {
            missing:
                `dagger not found: ${absent.join(", ")} not in ${dir} (${set ? "CI_REGISTRY_AUTH_DAGGER" : "CI_REGISTRY_AUTH_DAGGER is not set"}). ` +
                `Fix: build them with ../shared/tools/build-dagger ${join(cacheDir(env), "dagger")} <dagger git dir>, or set CI_REGISTRY_AUTH_DAGGER to a directory holding them`,
        };
    }
    const tools = Object.entries(hostTools).filter(([path]) => !existsSync(path));
    if (tools.length > 0) {
        return {
            missing: `the engine's host tools are missing: ${tools.map(([p, pkg]) => `${p} (${pkg})`).join(", ")}. Fix: bash sandbox/deps`,
        };
    }
    return { dir };
}

/** The script that prepares the engine's mount namespace and starts it (run by `unshare -m --propagation private`). */
function startScript(bin: string, dir: string, port: number, config: string): string {
    const overlay = (target: string, name: string) =>
        `mkdir -p ${dir}/${name}/upper ${dir}/${name}/work && ` +
        `mount -t overlay overlay -o lowerdir=${target},upperdir=${dir}/${name}/upper,workdir=${dir}/${name}/work ${target}`;
    return [
        "set -eu",
        overlay("/usr/bin", "usr-bin"),
        overlay("/usr/local/bin", "usr-local-bin"),
        // As the engine image lays them out (engine/server/server.go runs /usr/local/bin/runc).
        "ln -sf /usr/sbin/runc /usr/local/bin/runc",
        `ln -sf ${bin}/dagger-init /usr/local/bin/dagger-init`,
        "ln -sf /usr/sbin/xtables-legacy-multi /usr/bin/xtables-legacy-multi",
        "ln -sf /usr/sbin/xtables-nft-multi /usr/bin/xtables-nft-multi",
        `mkdir -p ${dir}/cni && for f in /usr/lib/cni/*; do ln -sf "$f" ${dir}/cni/; done && ln -sf ${bin}/dnsname ${dir}/cni/dnsname`,
        // Its default sockets (/run/buildkit, /run/dagger) and resolv.conf bind stay in this namespace.
        "mount -t tmpfs tmpfs /run",
        `exec ${bin}/dagger-engine --root ${dir}/state --addr tcp://127.0.0.1:${port} --config ${config} ` +
            `--oci-worker-net host --oci-cni-binary-dir ${dir}/cni --debug`,
    ].join("\n");
}

export class DaggerEngine {
    private constructor(
        readonly dir: string,
        readonly port: number,
        private readonly child: ChildProcess,
        /** Seconds from the process's start to its listener answering. */
        readonly startSeconds: number,
    ) {}

    /** What a client sets `_EXPERIMENTAL_DAGGER_RUNNER_HOST` to. */
    get address(): string {
        return `tcp://127.0.0.1:${this.port}`;
    }

    /** The engine's log (`--debug`), scanned for leaks. */
    get logFile(): string {
        return join(this.dir, "engine.log");
    }

    /**
     * Starts the engine on 127.0.0.1:`port` from the binaries in `bin`
     * (findDagger) and waits (bounded) until it answers. `plainHttp`:
     * registries (`host:port`) it talks to over plain HTTP (BuildKit's
     * registry config; loopback ones need none).
     */
    static async start(bin: string, port: number, plainHttp: string[] = []): Promise<DaggerEngine> {
        const dir = mkdtempSync(join(tmpdir(), "cra-dagger-"));
        const config = join(dir, "buildkitd.toml");
        writeFileSync(config, plainHttp.map((address) => `[registry."${address}"]\n  http = true\n`).join(""));
        writeFileSync(join(dir, "start.sh"), startScript(bin, dir, port, config));
        const log = openSync(join(dir, "engine.log"), "a");
        const t0 = Date.now();
        const child = spawn("unshare", ["-m", "--propagation", "private", "sh", join(dir, "start.sh")], { stdio: ["ignore", log, log] });
        const engine = new DaggerEngine(dir, port, child, 0);
        for (;;) {
            if (await listening(port)) break;
            if (child.exitCode !== null || Date.now() - t0 > 120_000) {
                const tail = readFileSync(join(dir, "engine.log"), "utf8").slice(-3000);
                await engine.stop();
                throw new Error(`the Dagger engine did not answer on 127.0.0.1:${port} within 120 s; its log ends:\n${tail}`);
            }
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
        return new DaggerEngine(dir, port, child, (Date.now() - t0) / 1000);
    }

    /**
     * Every file the engine wrote (its log, its state: metadata databases,
     * the content store, what it records of each session), for leak scans:
     * path to text. Files over 16 MiB are left out (layers of images).
     */
    written(): Record<string, string> {
        const out: Record<string, string> = {};
        const walk = (path: string): void => {
            for (const entry of readdirSync(path, { withFileTypes: true })) {
                const p = join(path, entry.name);
                if (entry.isDirectory()) walk(p);
                else if (entry.isFile() && statSync(p).size <= 16 * 1024 * 1024) out[p] = readFileSync(p).toString("latin1");
            }
        };
        walk(join(this.dir, "state"));
        out[this.logFile] = readFileSync(this.logFile, "utf8");
        return out;
    }

    /** Stops the engine (its mount namespace goes with it) and removes its directory. */
    async stop(): Promise<void> {
        await stopChild(this.child);
        // Snapshots the engine left mounted would make the removal fail (none outlive its namespace; belt and braces).
        unmountUnder(this.dir);
        rmSync(this.dir, { recursive: true, force: true });
    }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = createConnection({ host: "127.0.0.1", port });
        socket.once("connect", () => {
            socket.destroy();
            resolve(true);
        });
        socket.once("error", () => {
            resolve(false);
        });
    });
}

/**
 * Every distinct command line on this machine (`ps -eo args`: the job
 * container's processes, the engine's and the CLI's among them) sampled
 * every 100 ms until `during` settles, for leak scans of a push.
 */
export async function processListDuring<T>(during: Promise<T>): Promise<{ result: T; commandLines: string[] }> {
    const seen = new Set<string>();
    const state = { done: false };
    const sample = (): Promise<string> =>
        new Promise((resolve) => {
            execFile("ps", ["-eo", "args", "--no-headers"], { maxBuffer: 16 * 1024 * 1024 }, (_err, stdout) => {
                resolve(stdout);
            });
        });
    const sampling = (async () => {
        while (!state.done) {
            for (const line of (await sample()).split("\n")) if (line.trim() !== "") seen.add(line.trim());
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
    })();
    try {
        return { result: await during, commandLines: [...seen] };
    } finally {
        state.done = true;
        await sampling;
    }
}
