/**
 * An ssh-agent holding the operator's key, as on the operator's machine:
 * the program has no setting for a private key (README, "Trust model"), so
 * the command provider signs with the agent at $SSH_AUTH_SOCK. Started with
 * its own socket per test run and stopped with it; the key is added with
 * ssh-add from its file, never through an argument or the environment.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { stopChild } from "./child";

export class SshAgent {
    private constructor(
        private readonly dir: string,
        /** The agent's socket: what $SSH_AUTH_SOCK names. */
        readonly socket: string,
        private readonly child: ChildProcess,
    ) {}

    /** Starts an agent holding the keys in `keyFiles`. */
    static async start(keyFiles: string[]): Promise<SshAgent> {
        const dir = mkdtempSync(join(tmpdir(), "cra-agent-"));
        const socket = join(dir, "agent.sock");
        const child = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
        const agent = new SshAgent(dir, socket, child);
        const deadline = Date.now() + 10_000;
        while (!existsSync(socket)) {
            if (child.exitCode !== null || Date.now() > deadline) {
                await agent.stop();
                throw new Error("ssh-agent did not start (Debian package openssh-client)");
            }
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        for (const file of keyFiles) {
            const r = spawnSync("ssh-add", ["-q", file], { env: { ...process.env, SSH_AUTH_SOCK: socket }, encoding: "utf8" });
            if (r.status !== 0) {
                await agent.stop();
                throw new Error(`ssh-add ${file} failed: ${r.stderr}`);
            }
        }
        return agent;
    }

    /** The environment a pulumi command needs to sign with this agent. */
    get env(): { SSH_AUTH_SOCK: string } {
        return { SSH_AUTH_SOCK: this.socket };
    }

    async stop(): Promise<void> {
        await stopChild(this.child);
        rmSync(this.dir, { recursive: true, force: true });
    }
}
