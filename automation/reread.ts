/**
 * key-health's re-read of an SSH runner without pulumi and without writing
 * state: one SSH session with key-health's own key, which the host restricts
 * to the installed read-only check (`restrict,command=…`; README, "Trust
 * model"). Whatever this asks to run, sshd runs the check; its report is
 * judged by the program's own functions, as an `up` judges it.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { SshRunnerConfig } from "../components/settings/config";
import type { SshDelivered } from "../components/outputs";
import { parseReport, reportFacts } from "../components/ssh/host-report";

/** What the re-read found, in the shape of the stack's outputs (all but `changed`, which only a delivery knows). */
export interface SshReread {
    hasKey: boolean;
    delivered: Omit<SshDelivered, "changed">;
}

/**
 * Runs the check on `runner` as key-health's key (`keyFile`), the host key
 * pinned from the stack's `runner.hostKey`, and judges the report against
 * `keyFingerprint` (1Password now). Throws with ssh's own message, never a
 * value, when the session fails.
 */
export function rereadSshRunner(runner: SshRunnerConfig, envVar: string, keyFingerprint: string, keyFile: string): SshReread {
    if (runner.hostKey === undefined) {
        throw new Error("runner.hostKey is not pinned in the stack file, so key-health does not connect (it would trust any host)");
    }
    const dir = mkdtempSync(join(tmpdir(), "cra-reread-"));
    try {
        const knownHosts = join(dir, "known_hosts");
        const name = runner.port === 22 ? runner.host : `[${runner.host}]:${runner.port}`;
        writeFileSync(knownHosts, `${name} ${runner.hostKey}\n`);
        const r = spawnSync(
            "ssh",
            [
                // No ssh_config of the runner's user or machine (a fork's job on a shared runner could have
                // written a ProxyCommand there): every option that matters is given here.
                ...["-F", "/dev/null", "-o", "GlobalKnownHostsFile=/dev/null"],
                ...["-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"],
                ...["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"],
                ...["-i", keyFile, "-p", String(runner.port), "-T", `${runner.user}@${runner.host}`, "check"],
            ],
            { encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] },
        );
        if (r.status !== 0) {
            throw new Error(
                `ssh to ${runner.user}@${runner.host}:${runner.port} with the check key failed (${String(r.status)}): ${r.stderr.trim()}`,
            );
        }
        const { holdsKey, jobs, ...facts } = reportFacts(parseReport(r.stdout), keyFingerprint, {
            envFile: runner.envFile,
            unit: runner.unit,
            envVar,
            ...(runner.checkKey !== undefined ? { checkKey: runner.checkKey } : {}),
        });
        return { hasKey: holdsKey && jobs.jobsSeeKey, delivered: { ...facts, jobsSeeKey: jobs.jobsSeeKey, jobRoute: jobs.jobRoute } };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}
