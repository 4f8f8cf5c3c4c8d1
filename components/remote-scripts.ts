/**
 * The shell scripts the SSH runner runs on the host, and the parser of what
 * they print. They hold configuration only (paths, unit, variable name): the
 * env file itself arrives on stdin, so the key is never part of a command
 * line, of Pulumi state in plaintext, or of anything they print. Every
 * script prints `key=value` lines; values are fingerprints and facts.
 *
 * They use only POSIX sh, coreutils, awk, and `systemctl`, which the NixOS
 * host and any systemd distribution have.
 */
import { judgeJobs, parseRegistration, parseRunnerConfig, type JobsVerdict, type LabelsRead, type RunnerConfigRead } from "./runner-config";
import { shellQuote } from "./shell";

/** What the scripts need to know about the runner. */
export interface RemoteTarget {
    envFile: string;
    unit: string;
    envVar: string;
}

/** Exit code the delivery script uses when the unit does not exist. */
export const EXIT_NO_UNIT = 3;
/** Exit code when stdin did not carry a well-formed env file. */
export const EXIT_BAD_INPUT = 4;
/** Exit code when the unit could not be restarted after a change. */
export const EXIT_RESTART_FAILED = 5;
/** Exit code when the new file could not be written beside the old one (disk full, read-only). */
export const EXIT_WRITE_FAILED = 6;

const preamble = (t: RemoteTarget): string =>
    [
        "set -eu",
        "export LC_ALL=C",
        `f=${shellQuote(t.envFile)}`,
        `unit=${shellQuote(t.unit)}`,
        `var=${shellQuote(t.envVar)}`,
        // Prints the value of $var from an env file in the forms renderEnvFile writes.
        "env_value() {",
        `  awk -v p="$var=" 'index($0, p) == 1 { v = substr($0, length(p) + 1)`,
        `    if (v ~ /^'"'"'.*'"'"'$/) { v = substr(v, 2, length(v) - 2) }`,
        `    else if (v ~ /^".*"$/) { v = substr(v, 2, length(v) - 2); o = ""`,
        `      for (i = 1; i <= length(v); i++) { c = substr(v, i, 1); if (c == "\\\\") { i++; c = substr(v, i, 1) }; o = o c }; v = o }`,
        `    printf "%s", v; exit }' "$1"`,
        "}",
        // Fingerprint of stdin, or "none" when stdin is empty: a key is never empty.
        "fp_stdin() {",
        "  h=$(sha256sum | cut -c1-16)",
        '  if [ "$h" = e3b0c44298fc1c14 ]; then echo none; else echo "sha256:$h"; fi',
        "}",
        // Whether the unit's EnvironmentFiles include the file.
        "unit_reads_file() {",
        '  systemctl show -p EnvironmentFiles --value -- "$unit" 2>/dev/null | grep -qF -- "$f ("',
        "}",
        // Fingerprint of $var in the environment of the unit's running main process, or "none".
        "process_fp() {",
        '  pid=$(systemctl show -p MainPID --value -- "$unit" 2>/dev/null || echo 0)',
        '  if [ "${pid:-0}" -gt 0 ] && [ -r "/proc/$pid/environ" ]; then',
        "    tr '\\0' '\\n' < \"/proc/$pid/environ\" | awk -v p=\"$var=\" 'index($0, p) == 1 { printf \"%s\", substr($0, length(p) + 1); exit }' | fp_stdin",
        "  else",
        "    echo none",
        "  fi",
        "}",
    ].join("\n");

/**
 * Create/update: checks the unit exists, writes stdin to a temp file beside
 * the target (mode 0600, root-owned), renames it over the target only when
 * the bytes differ, and then restarts a running unit. A failure before the
 * rename leaves the old file untouched; the temp file is removed on exit,
 * and a delivery killed before that (SIGKILL, a cut link) leaves one that
 * the next delivery removes first.
 *
 * This text is the delivery's `create`, and ssh-runner.ts replaces the
 * resource when `create` changes (a new file, unit or variable): deleting
 * first, so the file is gone and the unit restarted twice. A change to it
 * does that on every host at the next `up`; new host-side steps belong in
 * deliverAndCheckScript's part where they can.
 */
export function deliverScript(t: RemoteTarget): string {
    return [
        preamble(t),
        'if ! systemctl cat -- "$unit" >/dev/null 2>&1; then',
        '  echo "ci-registry-auth: unit $unit does not exist on $(hostname); nothing was changed. Fix: set runner.unit to the runner\'s unit" >&2',
        `  exit ${EXIT_NO_UNIT}`,
        "fi",
        "umask 077",
        'dir=$(dirname -- "$f")',
        'mkdir -p -- "$dir"',
        // Deliveries of a stack are serialized by its state lock: any temp file here is a killed one's.
        'for leftover in "$dir"/.ci-registry-auth.*; do if [ -f "$leftover" ]; then rm -f -- "$leftover"; fi; done',
        "write_failed() {",
        '  echo "ci-registry-auth: writing the new env file in $dir failed (is the file system full or read-only?); $f was not changed" >&2',
        `  exit ${EXIT_WRITE_FAILED}`,
        "}",
        'tmp=$(mktemp -- "$dir/.ci-registry-auth.XXXXXX" 2>/dev/null) || write_failed',
        "trap 'rm -f -- \"$tmp\"' EXIT",
        'cat > "$tmp" 2>/dev/null || write_failed',
        'if [ "$(grep -c -- "^$var=" "$tmp")" != 1 ]; then',
        '  echo "ci-registry-auth: the env file sent on stdin does not set $var exactly once; nothing was changed" >&2',
        `  exit ${EXIT_BAD_INPUT}`,
        "fi",
        'chown 0:0 -- "$tmp"',
        'chmod 0600 -- "$tmp"',
        'if [ -f "$f" ] && cmp -s -- "$tmp" "$f"; then',
        "  changed=false",
        "else",
        '  sync -- "$tmp" 2>/dev/null || sync',
        '  mv -f -- "$tmp" "$f"',
        "  changed=true",
        "fi",
        'echo "changed=$changed"',
        'file_fp=$(env_value "$f" | fp_stdin)',
        'echo "file_fp=$file_fp"',
        // Also restart when the bytes are the same but the running unit does not
        // hold them: a delivery interrupted after its rename, before its restart.
        "stale=false",
        'if [ "$changed" = false ] && unit_reads_file && [ "$(systemctl is-active -- "$unit" 2>/dev/null || true)" = active ] && [ "$(process_fp)" != "$file_fp" ]; then',
        "  stale=true",
        "fi",
        'if [ "$changed" = true ] || [ "$stale" = true ]; then',
        '  if systemctl try-restart -- "$unit"; then echo restarted=true; else',
        '    echo "ci-registry-auth: wrote $f but restarting $unit failed: see journalctl -u $unit" >&2',
        `    exit ${EXIT_RESTART_FAILED}`,
        "  fi",
        "else",
        "  echo restarted=false",
        "fi",
    ].join("\n");
}

/**
 * Update (a rotation, or a newer version of these scripts): the delivery,
 * then the same read-only check as verifyScript, after the restart, in the
 * same session: one SSH session per rotation, not two (README,
 * "Performance"). Create keeps deliverScript alone (ringtail-verify is
 * created beside it), so that a change to this script updates the resource
 * in place instead of replacing it, which would delete the file first.
 */
export function deliverAndCheckScript(t: RemoteTarget): string {
    return [deliverScript(t), ...checkLines()].join("\n");
}

/**
 * Delete: removes the env file and restarts a running unit so that it drops
 * the variable. Touches nothing else on the host.
 */
export function removeScript(t: RemoteTarget): string {
    return [
        preamble(t),
        'if [ -e "$f" ]; then',
        '  rm -f -- "$f"',
        '  if systemctl cat -- "$unit" >/dev/null 2>&1 && ! systemctl try-restart -- "$unit"; then',
        "    echo \"ci-registry-auth: removed $f but restarting $unit failed; if the unit needs the file, prefix its EnvironmentFile= path with '-'\" >&2",
        `    exit ${EXIT_RESTART_FAILED}`,
        "  fi",
        "fi",
        "echo removed=true",
    ].join("\n");
}

/**
 * Read-only confirmation: the file's owner, mode and key fingerprint, whether
 * the unit reads the file and is active, and the fingerprint of the variable
 * in the environment of the unit's running main process (hashed on the host).
 */
export function verifyScript(t: RemoteTarget): string {
    return [preamble(t), ...checkLines()].join("\n");
}

/**
 * The check's lines (after the preamble), which the delivery also runs.
 * `checked_at` is the host's clock in nanoseconds: of two reports, the
 * later one describes the host as it is ({@link latestReport}).
 */
function checkLines(): string[] {
    return [
        'echo "checked_at=$(date +%s%N)"',
        'if [ -f "$f" ]; then',
        "  echo file=present",
        '  echo "file_owner=$(stat -c %u:%g -- "$f")"',
        '  echo "file_mode=$(stat -c %a -- "$f")"',
        '  echo "file_fp=$(env_value "$f" | fp_stdin)"',
        "else",
        "  echo file=absent",
        "fi",
        'echo "unit_active=$(systemctl is-active -- "$unit" 2>/dev/null || true)"',
        "if unit_reads_file; then",
        "  echo unit_reads_file=true",
        "else",
        "  echo unit_reads_file=false",
        "fi",
        'echo "process_fp=$(process_fp)"',
        ...runnerConfigLines,
    ];
}

/**
 * What the runner's jobs will see: the daemon's `--config` from the unit's
 * ExecStart and that file, and the registration file (`runner.file`,
 * default `.runner`, relative to the unit's working directory) with its
 * token blanked. Both travel base64-encoded in the (secret) report and are
 * parsed by the program, never by a shell.
 */
const runnerConfigLines = [
    "argv=$(systemctl show -p ExecStart --value -- \"$unit\" 2>/dev/null | sed -n 's/.*argv\\[\\]=\\([^;]*\\) ;.*/\\1/p' | head -n 1)",
    "wd=$(systemctl show -p WorkingDirectory --value -- \"$unit\" 2>/dev/null | sed 's/^!//')",
    'echo "working_directory=$wd"',
    // --config X, --config=X, -c X, -cX, -c=X (cobra's forms), after the daemon subcommand.
    'cfg=$(printf \'%s\\n\' "$argv" | awk \'{ for (i = 1; i <= NF; i++) { if (!d) { if ($i == "daemon") d = 1; continue } if ($i == "--config" || $i == "-c") { print $(i + 1); exit } if ($i ~ /^--config=/) { print substr($i, 10); exit } if ($i ~ /^-c./) { s = substr($i, 3); sub(/^=/, "", s); print s; exit } } }\')',
    'if [ -z "$cfg" ]; then',
    "  echo config=none",
    'elif [ -f "$cfg" ] && [ -r "$cfg" ]; then',
    '  echo "config=$cfg"',
    '  echo "config_b64=$(base64 -w0 < "$cfg")"',
    "else",
    '  echo "config=$cfg"',
    "  echo config_b64=absent",
    "fi",
    // runner.file, read from the config's top-level `runner:` block at its first indentation.
    "reg=",
    'if [ -n "$cfg" ] && [ -r "$cfg" ]; then',
    '  reg=$(awk -v q="\'" \'/^runner:[ \\t]*(#.*)?$/ { r = 1; n = -1; next } r && /^[^ \\t#]/ { exit } r && /^[ \\t]+[^ \\t#]/ { match($0, /^[ \\t]+/); if (n < 0) n = RLENGTH; if (RLENGTH == n && $0 ~ /^[ \\t]+file:/) { v = $0; sub(/^[ \\t]+file:[ \\t]*/, "", v); sub(/[ \\t]+#.*$/, "", v); if (substr(v, 1, 1) == q || substr(v, 1, 1) == "\\"") v = substr(v, 2, length(v) - 2); print v; exit } }\' "$cfg")',
    "fi",
    '[ -n "$reg" ] || reg=.runner',
    'case $reg in /*) ;; *) reg="${wd%/}/$reg" ;; esac',
    'echo "registration=$reg"',
    'if [ -f "$reg" ] && [ -r "$reg" ]; then',
    '  echo "registration_b64=$(sed -E \'s/("token"[[:space:]]*:[[:space:]]*)"[^"]*"/\\1"-"/g\' "$reg" | base64 -w0)"',
    "else",
    "  echo registration_b64=absent",
    "fi",
];

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

/**
 * Whether the runner's jobs see `envVar`, from the config and registration
 * files a verify report carries (README, "Jobs"). The report may hold
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
