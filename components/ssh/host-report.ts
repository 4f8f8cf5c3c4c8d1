/**
 * What the host scripts (components/ssh/host/) report, read by the program: the
 * `key=value` report, which of two reports is current, whether it proves the
 * host holds the key, what the runner's jobs see (from the config and
 * registration files the report carries), and whether key-health's key is
 * restricted. Pure: tested without a host.
 */
import { checkCommandPath, type RemoteTarget } from "./host-scripts";
import {
    judgeJobs,
    parseRegistration,
    parseRunnerConfig,
    type JobsVerdict,
    type LabelsRead,
    type RunnerConfigRead,
} from "../runner-config";

/** Parses `key=value` lines; later keys win, other lines are ignored. */
export function parseReport(stdout: string): Record<string, string> {
    const report: Record<string, string> = {};
    for (const line of stdout.split("\n")) {
        const match = /^([a-z][a-z0-9_]*)=(.*)$/.exec(line.trim());
        if (match?.[1] !== undefined && match[2] !== undefined) {
            report[match[1]] = match[2];
        }
    }
    return report;
}

/**
 * Of the delivery's report and the separate check's, the one taken later
 * on the host: after a rotation the delivery's (it checked after its
 * restart), after `pulumi up --replace` of the check the check's. A report
 * without `checked_at` (a delivery from before the two shared the check)
 * never wins.
 */
export function latestReport(delivery: Record<string, string>, check: Record<string, string>): Record<string, string> {
    const at = (r: Record<string, string>): bigint => (/^\d+$/.test(r["checked_at"] ?? "") ? BigInt(r["checked_at"] ?? "0") : -1n);
    return at(delivery) > at(check) ? delivery : check;
}

/**
 * Whether a verify report proves the host holds the key with fingerprint
 * `fp`: in the file (root-owned, 0600) and in the running unit, which is
 * active and reads the file.
 */
export function reportHasKey(report: Record<string, string>, fp: string): boolean {
    return (
        report["file_fp"] === fp &&
        report["process_fp"] === fp &&
        report["file_owner"] === "0:0" &&
        report["file_mode"] === "600" &&
        report["unit_reads_file"] === "true" &&
        report["unit_active"] === "active"
    );
}

/** What a check report says, as the stack's ssh outputs name it: fingerprints, file metadata, unit state, jobs and the check key. */
export interface ReportFacts {
    fileFingerprint: string;
    fileOwner: string;
    fileMode: string;
    unitReadsFile: boolean;
    unitActive: string;
    processFingerprint: string;
    holdsKey: boolean;
    jobs: JobsVerdict;
    checkKey: string;
}

/** The facts of a check report for the key with fingerprint `fp` (the program's and key-health's one reading of it). */
export function reportFacts(report: Record<string, string>, fp: string, t: RemoteTarget): ReportFacts {
    return {
        fileFingerprint: report["file_fp"] ?? "none",
        fileOwner: report["file_owner"] ?? "none",
        fileMode: report["file_mode"] ?? "none",
        unitReadsFile: report["unit_reads_file"] === "true",
        unitActive: report["unit_active"] ?? "unknown",
        processFingerprint: report["process_fp"] ?? "none",
        holdsKey: reportHasKey(report, fp),
        jobs: jobsFromReport(report, t.envVar, t.unit),
        checkKey: judgeCheckKey(report, t.checkKey, checkCommandPath(t.envFile)),
    };
}

/**
 * Whether the runner's jobs see `envVar`, from the config and registration
 * files a verify report carries (docs/jobs.md). The report may hold
 * secrets in those files; the verdict names settings and paths only.
 */
export function jobsFromReport(report: Record<string, string>, envVar: string, unit: string): JobsVerdict {
    const instance = /^gitea-runner-(.+)\.service$/.exec(unit)?.[1];
    const nixos = instance !== undefined ? `services.gitea-actions-runner.instances.${instance}.settings` : "the runner's settings";
    const howToEdit = `NixOS: ${nixos}, then nixos-rebuild switch`;
    const path = report["config"];
    let config: RunnerConfigRead;
    if (path === undefined) {
        config = { kind: "problem", problem: "was not reported by the host check" };
    } else if (path === "none") {
        config = { kind: "defaults", why: `${unit} starts the runner without --config` };
    } else {
        const origin = { where: path, howToEdit };
        const b64 = report["config_b64"];
        const parsed = b64 === undefined || b64 === "absent" ? { problem: "is missing or unreadable" } : parseRunnerConfig(decode(b64));
        config =
            "config" in parsed ? { kind: "file", origin, config: parsed.config } : { kind: "problem", origin, problem: parsed.problem };
    }

    const where = report["registration"] ?? "the registration file";
    let labels: LabelsRead;
    const wanted = config.kind === "file" ? config.config.registrationFile : undefined;
    const wd = (report["working_directory"] ?? "").replace(/\/$/, "");
    const expected = wanted === undefined ? `${wd}/.runner` : wanted.startsWith("/") ? wanted : `${wd}/${wanted}`;
    const b64 = report["registration_b64"];
    if (report["registration"] !== expected) {
        labels = { kind: "problem", where, problem: `is not the config's runner.file (${expected})` };
    } else if (b64 === undefined || b64 === "absent") {
        labels = { kind: "problem", where, problem: "is missing or unreadable (the runner writes it when it registers)" };
    } else {
        const parsed = parseRegistration(decode(b64));
        labels =
            "labels" in parsed ? { kind: "labels", where, labels: parsed.labels } : { kind: "problem", where, problem: parsed.problem };
    }
    return judgeJobs({ envVar, config, labels, addConfig: `in ${nixos}` });
}

function decode(b64: string): string {
    return Buffer.from(b64, "base64").toString("utf8");
}

/**
 * What the host's authorized keys say of key-health's key (`runner.checkKey`):
 * `restricted` when every line that carries it has `restrict` and the
 * forced command `commandPath` (so it can run the check and nothing else:
 * no shell, no other command, no forwarding, no pty); otherwise why not.
 */
export function judgeCheckKey(report: Record<string, string>, checkKey: string | undefined, commandPath: string): string {
    if (checkKey === undefined || report["check_key"] === "none") {
        return "not configured (runner.checkKey is not set)";
    }
    const b64 = report["check_key_lines_b64"];
    if (b64 === undefined) return "unknown (the host check did not report it)";
    const blob = checkKey.trim().split(/\s+/)[1] ?? "";
    const lines = decode(b64)
        .split("\n")
        .filter((l) => l.trim() !== "" && !l.trim().startsWith("#") && l.split(/\s+/).includes(blob));
    if (lines.length === 0) {
        return "absent: the key is in none of the login user's authorized keys, so key-health cannot re-read the host";
    }
    for (const line of lines) {
        const options = authorizedKeyOptions(line);
        if (!options.includes("restrict")) {
            return "unrestricted: a line carrying the key lacks `restrict`, so it may forward ports or agents and get a pty";
        }
        const command = options.find((o) => o.startsWith("command="));
        if (command !== `command="${commandPath}"`) {
            return `unrestricted: a line carrying the key does not force command="${commandPath}", so it can run any command as the login user`;
        }
    }
    return "restricted";
}

/** The options field of an authorized_keys line (split at commas outside double quotes), or none. */
export function authorizedKeyOptions(line: string): string[] {
    const text = line.trim();
    if (/^(ssh-|ecdsa-|sk-)/.test(text)) return [];
    const options: string[] = [];
    let current = "";
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
        const c = text[i] ?? "";
        if (!quoted && /\s/.test(c)) break;
        if (c === "\\" && quoted) {
            current += c + (text[i + 1] ?? "");
            i++;
            continue;
        }
        if (c === '"') quoted = !quoted;
        if (c === "," && !quoted) {
            options.push(current);
            current = "";
            continue;
        }
        current += c;
    }
    if (current !== "") options.push(current);
    return options.map((o) => o.replace(/^([A-Za-z-]+)/, (name) => name.toLowerCase()));
}
