/**
 * Starts and talks to the sandbox ringtail (sandbox/ringtail/host) from
 * tests: a real systemd machine reached with the OpenSSH client, the host
 * key pinned through a known_hosts file. Its runner unit runs a stand-in
 * that only holds the unit's environment (`start`), or the real
 * forgejo-runner daemon taking jobs from a Gitea (`startWithDaemon`).
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { verifyScript } from "../components/ssh/host-scripts";
import { parseReport } from "../components/ssh/host-report";
import { SshAgent } from "./ssh-agent";

const HOST_SCRIPT = join(__dirname, "ringtail", "host");

/** What `host start` writes to host.json. */
export interface HostFacts {
    host: string;
    port: number;
    user: string;
    hostKey: string;
    privateKeyFile: string;
    unit: string;
    envFile: string;
    /** The host side of the machine's network link, where sandbox services listen. */
    registryAddress: string;
    /** An address on the link that no machine answers: an unreachable host. */
    absentAddress: string;
    /** The runner's config.yaml, as the unit's ExecStart names it with --config. */
    runnerConfig: string;
    /** The runner's registration file (`.runner` in its working directory). */
    runnerRegistration: string;
}

/** The real runner daemon for the unit (Ringtail.startWithDaemon). */
export interface RingtailDaemon {
    /** The forgejo-runner binary, bound over the unit's /usr/local/bin/act_runner. */
    binary: string;
    /** The registration file (`.runner`, token included) the daemon reads from its working directory. */
    registration: string;
}

export interface SshResult {
    code: number;
    stdout: string;
    stderr: string;
}

export class Ringtail {
    /** Everything ssh printed, for leak scans. */
    readonly transcript: string[] = [];
    readonly knownHosts: string;
    private operatorAgent: SshAgent | undefined;

    private constructor(
        readonly state: string,
        readonly facts: HostFacts,
    ) {
        this.knownHosts = join(state, "known_hosts");
        writeFileSync(this.knownHosts, `${facts.host} ${facts.hostKey}\n`);
    }

    /**
     * Boots a fresh machine (building its root filesystem first if needed);
     * its runner unit runs the stand-in daemon. `instance` 1-9 boots another
     * SSH host beside ringtail (instance 0): its own namespace, link and
     * address (sandbox/ringtail/host).
     */
    static start(instance = 0): Ringtail {
        const state = mkdtempSync(join(tmpdir(), "cra-ringtail-"));
        writeFileSync(join(state, "instance"), `${instance}\n`);
        hostScript("start", state);
        return new Ringtail(state, JSON.parse(readFileSync(join(state, "host.json"), "utf8")) as HostFacts);
    }

    /**
     * Boots a fresh machine whose runner unit runs the real forgejo-runner
     * daemon: the machine's link is made first, then `prepare` is given the
     * link's host-side address (where a Gitea the machine can reach must
     * listen) and answers with the binary and the registration file; the
     * binary is bound over the unit's `act_runner` (as NixOS links
     * forgejo-runner) and the registration put into the unit's state
     * directory, where NixOS's module registers it.
     */
    static async startWithDaemon(prepare: (hostAddress: string) => Promise<RingtailDaemon>): Promise<Ringtail> {
        const state = mkdtempSync(join(tmpdir(), "cra-ringtail-"));
        try {
            hostScript("net", state);
            const net = JSON.parse(readFileSync(join(state, "net.json"), "utf8")) as { hostAddress: string };
            const daemon = await prepare(net.hostAddress);
            mkdirSync(join(state, "runner-state", "nix_container_builder"), { recursive: true });
            writeFileSync(join(state, "runner-state", "nix_container_builder", ".runner"), daemon.registration, { mode: 0o600 });
            symlinkSync(daemon.binary, join(state, "runner-binary"));
            hostScript("start", state);
        } catch (err) {
            try {
                hostScript("stop", state);
            } finally {
                rmSync(state, { recursive: true, force: true });
            }
            throw err;
        }
        return new Ringtail(state, JSON.parse(readFileSync(join(state, "host.json"), "utf8")) as HostFacts);
    }

    /**
     * Adds a line to root's authorized keys on the host (the sandbox's sshd
     * reads them from a file bound from this machine): what a NixOS rebuild
     * with users.users.root.openssh.authorizedKeys does on the real host.
     */
    authorize(line: string): void {
        appendFileSync(join(this.state, "ssh", "authorized_keys"), `${line.trim()}\n`);
    }

    /** An ssh-agent holding the operator's key for this host, as on the operator's machine (stopped with the host). */
    async agent(): Promise<SshAgent> {
        this.operatorAgent ??= await SshAgent.start([this.facts.privateKeyFile]);
        return this.operatorAgent;
    }

    /** Powers the machine off and removes its network namespace and keys. */
    stop(): void {
        void this.operatorAgent?.stop();
        try {
            hostScript("stop", this.state);
        } finally {
            rmSync(this.state, { recursive: true, force: true });
        }
    }

    /**
     * The program's own read-only check of the host (verifyScript) for
     * `envVar`, parsed; without the check's clock (`checked_at`), so two
     * reports of one state are equal.
     */
    check(envVar: string): Record<string, string> {
        const target = { envFile: this.facts.envFile, unit: this.facts.unit, envVar };
        const report = parseReport(this.ssh(verifyScript(target)).stdout);
        return Object.fromEntries(Object.entries(report).filter(([k]) => k !== "checked_at"));
    }

    /** Runs `command` as root over SSH with `stdin`, checking the host key against `knownHosts`. */
    ssh(command: string, stdin = "", knownHosts = this.knownHosts): SshResult {
        const r = spawnSync(
            "ssh",
            [
                ...["-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"],
                ...["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-i", this.facts.privateKeyFile],
                ...["-p", String(this.facts.port), `${this.facts.user}@${this.facts.host}`, command],
            ],
            { input: stdin, encoding: "utf8", timeout: 120_000 },
        );
        this.transcript.push(r.stdout, r.stderr);
        return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    }
}

/** Where the probe image lives on the host, readable by the job's dynamic user. */
export const IMAGE_DIR = "/srv/ci-probe/img";

/** Copies an OCI layout from this machine to IMAGE_DIR on the host. */
export function uploadImage(host: Ringtail, layout: string): void {
    const tar = spawnSync("tar", ["-C", layout, "-cf", "-", "."]);
    const r = host.ssh(`mkdir -p ${IMAGE_DIR} && tar -C ${IMAGE_DIR} -xf - && chmod -R a+rX /srv/ci-probe`, tar.stdout.toString("latin1"));
    if (r.code !== 0) {
        throw new Error(`uploading the probe image failed: ${r.stderr}`);
    }
}

function hostScript(...args: string[]): void {
    const r = spawnSync("bash", [HOST_SCRIPT, ...args], { encoding: "utf8", timeout: 600_000 });
    if (r.status !== 0) {
        throw new Error(`sandbox/ringtail/host ${args.join(" ")} failed:\n${r.stderr}`);
    }
}
