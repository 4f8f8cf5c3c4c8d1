/**
 * `pulumi up` of one stack in one CLI command, with the outputs the run
 * itself registered. The Automation API's `stack.up()` runs three more
 * commands after the update (`pulumi stack output` twice, then
 * `pulumi stack history`), each starting the CLI and loading the state, two
 * of them deriving the passphrase's key (1,000,000 rounds of PBKDF2): time
 * an operator's `pulumi up` does not spend (docs/performance.md, "The
 * demo's rotation"). The outputs here are the stack's outputs as the run's
 * last engine event for the stack resource carries them; a secret output
 * has no value there (`[secret]`) and is left out.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { isRpcSecret } from "@pulumi/pulumi/runtime/rpc";

/** What {@link upStack} returns: pulumi's output and the stack's outputs by name (secret ones left out). */
export interface UpRun {
    stdout: string;
    stderr: string;
    outputs: Record<string, unknown>;
}

/** The event log as it grows: each call returns the events of the lines completed since the last. */
class EventLog {
    private offset = 0;
    private partial = "";

    constructor(readonly path: string) {}

    read(): EngineEvent[] {
        let fd: number;
        try {
            fd = openSync(this.path, "r");
        } catch {
            return []; // not written yet
        }
        const chunks: Buffer[] = [];
        try {
            const buf = Buffer.alloc(64 * 1024);
            for (let n = readSync(fd, buf, 0, buf.length, this.offset); n > 0; n = readSync(fd, buf, 0, buf.length, this.offset)) {
                chunks.push(Buffer.from(buf.subarray(0, n)));
                this.offset += n;
            }
        } finally {
            closeSync(fd);
        }
        const lines = (this.partial + Buffer.concat(chunks).toString("utf8")).split("\n");
        this.partial = lines.pop() ?? "";
        return lines.filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as EngineEvent);
    }
}

const STACK_TYPE = "pulumi:pulumi:Stack";

/** `v` with every secret value left out: its key dropped from objects, its element from arrays. */
export function withoutSecrets(v: unknown): unknown {
    // An engine event marks a secret as the SDK does (isRpcSecret; its ciphertext is never in the event: `[secret]`).
    if (Array.isArray(v)) return v.filter((x) => !isRpcSecret(x)).map(withoutSecrets);
    if (typeof v === "object" && v !== null) {
        return Object.fromEntries(
            Object.entries(v)
                .filter(([, x]) => !isRpcSecret(x))
                .map(([k, x]) => [k, withoutSecrets(x)]),
        );
    }
    return v;
}

/**
 * Runs `pulumi up --yes --skip-preview` of `stack` as its workspace would
 * (its CLI, directory, environment and PULUMI_HOME), hands each engine event
 * to `onEvent` as it is written (polled every 100 ms), and returns the
 * stack's outputs from the run's events. Throws, when the update fails, an
 * error whose message holds pulumi's stdout and stderr, as the Automation
 * API's CommandError does.
 */
export async function upStack(
    stack: Stack,
    opts: { onEvent?: (e: EngineEvent) => void; onOutput?: (out: string) => void } = {},
): Promise<UpRun> {
    const ws = stack.workspace;
    const dir = mkdtempSync(join(tmpdir(), "cra-up-"));
    const log = new EventLog(join(dir, "events.json"));
    let stackOutputs: Record<string, unknown> | undefined;
    const take = (): void => {
        for (const e of log.read()) {
            const outs = e.resOutputsEvent?.metadata;
            if (outs?.type === STACK_TYPE) stackOutputs = outs.new?.outputs ?? {};
            opts.onEvent?.(e);
        }
    };
    const poll = setInterval(take, 100);
    try {
        const cli = ws.pulumiCommand.command;
        const env = {
            ...process.env,
            ...ws.envVars,
            ...(ws.pulumiHome !== undefined ? { PULUMI_HOME: ws.pulumiHome } : {}),
            // The workspace's CLI first, as the Automation API runs it.
            ...(cli.startsWith("/") ? { PATH: `${dirname(cli)}:${ws.envVars["PATH"] ?? process.env["PATH"] ?? ""}` } : {}),
            PULUMI_AUTOMATION_API: "true",
            // `--event-log` is one of the flags pulumi offers only with this set, as the Automation API sets it.
            PULUMI_DEBUG_COMMANDS: "true",
        };
        const args = [
            "up",
            "--yes",
            "--skip-preview",
            "--non-interactive",
            "--color",
            "never",
            "--event-log",
            log.path,
            "--stack",
            stack.name,
        ];
        const result = await run(cli, args, ws.workDir, env, opts.onOutput);
        // The events written since the last poll, a failed run's too.
        take();
        if (result.code !== 0) throw new Error(`code: ${String(result.code)}\n stdout: ${result.stdout}\n stderr: ${result.stderr}\n`);
        if (stackOutputs === undefined) throw new Error(`pulumi up of stack ${stack.name} wrote no outputs of the stack to its event log`);
        return { stdout: result.stdout, stderr: result.stderr, outputs: withoutSecrets(stackOutputs) as Record<string, unknown> };
    } finally {
        clearInterval(poll);
        rmSync(dir, { recursive: true, force: true });
    }
}

/** One command to its end: exit code, stdout and stderr, stdout handed to `onOutput` as it comes. */
function run(
    cli: string,
    args: string[],
    cwd: string,
    env: NodeJS.ProcessEnv,
    onOutput?: (out: string) => void,
): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(cli, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => {
            stdout += d;
            onOutput?.(d);
        });
        child.stderr.setEncoding("utf8").on("data", (d: string) => {
            stderr += d;
        });
        child.on("error", reject);
        child.on("close", (code) => {
            resolve({ code: code ?? -1, stdout, stderr });
        });
    });
}
