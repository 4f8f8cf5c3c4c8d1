/**
 * The sandbox's Docker daemon, standing in for indri's dind sidecar: Debian's
 * `docker.io` dockerd with a data root, exec root, pidfile and socket of its
 * own, no bridge and no iptables (jobs run on the host network, as
 * blumeops's `container.network: host` has them), stopped and removed
 * afterwards. Nothing is ever pulled: the job image is imported from a local
 * root filesystem.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { stopChild, unmountUnder } from "./child";

export interface DockerResult {
    code: number;
    stdout: string;
    stderr: string;
}

export class Dockerd {
    private constructor(
        readonly dir: string,
        private readonly child: ChildProcess,
    ) {}

    /** `DOCKER_HOST` for clients of this daemon. */
    get host(): string {
        return `unix://${join(this.dir, "docker.sock")}`;
    }

    /** The daemon's log (scanned for leaks by the tests). */
    get logFile(): string {
        return join(this.dir, "dockerd.log");
    }

    /** Starts dockerd and waits (bounded) until it answers. */
    static async start(): Promise<Dockerd> {
        if (spawnSync("sh", ["-c", "command -v dockerd"]).status !== 0) {
            throw new Error("dockerd is not installed (Debian package docker.io; sandbox/deps installs it)");
        }
        const dir = mkdtempSync(join(tmpdir(), "cra-dockerd-"));
        mkdirSync(join(dir, "data"));
        const log = openSync(join(dir, "dockerd.log"), "a");
        const child = spawn(
            "dockerd",
            [
                ...["--data-root", join(dir, "data"), "--exec-root", join(dir, "exec"), "--pidfile", join(dir, "dockerd.pid")],
                ...[
                    "-H",
                    `unix://${join(dir, "docker.sock")}`,
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-forward=false",
                    "--ip-masq=false",
                ],
            ],
            { stdio: ["ignore", log, log] },
        );
        const daemon = new Dockerd(dir, child);
        const started = Date.now();
        for (;;) {
            if (daemon.docker(["version", "--format", "{{.Server.Version}}"]).code === 0) {
                return daemon;
            }
            if (child.exitCode !== null || Date.now() - started > 60_000) {
                await daemon.stop();
                throw new Error(`dockerd did not start within 60 s; log: ${join(dir, "dockerd.log")}`);
            }
            await new Promise((resolve) => setTimeout(resolve, 250));
        }
    }

    /** Runs the docker CLI against this daemon. */
    docker(args: string[], input?: Buffer): DockerResult {
        const r = spawnSync("docker", args, {
            env: { ...process.env, DOCKER_HOST: this.host },
            input,
            encoding: "utf8",
            maxBuffer: 64 * 1024 * 1024,
            timeout: 600_000,
        });
        return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    }

    /**
     * Imports an image from a root filesystem directory, plus `paths` (new
     * ones, relative) taken from `extra` (`docker import` of one tar
     * stream; no pull).
     */
    importImage(tag: string, rootfs: string, extra?: { dir: string; paths: string[] }): void {
        const parts = ["-C", rootfs, ".", ...(extra ? ["-C", extra.dir, ...extra.paths] : [])];
        const tar = spawnSync("tar", ["--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "-c", ...parts], {
            maxBuffer: 2 * 1024 * 1024 * 1024,
        });
        if (tar.status !== 0) {
            throw new Error(`tar of ${rootfs} failed: ${tar.stderr.toString()}`);
        }
        const r = this.docker(["import", "-", tag], tar.stdout);
        if (r.code !== 0) {
            throw new Error(`docker import ${tag} failed: ${r.stderr}`);
        }
    }

    /** Stops the daemon (its containers with it) and removes its directories. */
    async stop(): Promise<void> {
        await stopChild(this.child);
        // Layers the daemon left mounted would make the removal fail.
        unmountUnder(this.dir);
        rmSync(this.dir, { recursive: true, force: true });
    }
}
