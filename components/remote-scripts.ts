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
    /** The login user whose authorized keys restrict key-health's key (runner.user). Default: root. */
    user?: string;
    /** The public key of key-health's key (runner.checkKey), whose restriction the check reports. */
    checkKey?: string;
}

/** Exit code the delivery script uses when the unit does not exist. */
export const EXIT_NO_UNIT = 3;
/** Exit code when stdin did not carry a well-formed env file. */
export const EXIT_BAD_INPUT = 4;
/** Exit code when the unit could not be restarted after a change. */
export const EXIT_RESTART_FAILED = 5;
/** Exit code when the new file could not be written beside the old one (disk full, read-only). */
export const EXIT_WRITE_FAILED = 6;
/** Exit code when the target is not ours to write: a symlink, a file without our header, or a directory others can write. */
export const EXIT_NOT_OURS = 7;

/** The first line of every env file this program writes (renderEnvFile). */
const OUR_HEADER = "# Managed by ci-registry-auth";

/**
 * The shell functions and settings every script starts with. `exactUnitMatch`
 * false keeps the text removeScript was first written with, byte for byte:
 * ssh-runner.ts replaces the delivery when its delete script changes (that
 * is how a new file, unit or variable is detected), so that text must not
 * change for any other reason. Every other script matches EnvironmentFiles
 * by the whole path.
 */
const preamble = (t: RemoteTarget, exactUnitMatch = true): string =>
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
        // Whether the unit's EnvironmentFiles include the file: systemctl shows one
        // `<path> (ignore_errors=yes|no)` per line; the whole path must match.
        "unit_reads_file() {",
        exactUnitMatch
            ? '  systemctl show -p EnvironmentFiles --value -- "$unit" 2>/dev/null | grep -qxF -e "$f (ignore_errors=yes)" -e "$f (ignore_errors=no)"'
            : '  systemctl show -p EnvironmentFiles --value -- "$unit" 2>/dev/null | grep -qF -- "$f ("',
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
 * Create/update: checks the unit exists and that the target is ours to
 * write, writes stdin to a temp file beside the target (mode 0600,
 * root-owned), renames it over the target only when the bytes differ, and
 * then restarts a running unit. A failure before the rename leaves the old
 * file untouched; the temp file is removed on exit, and a delivery killed
 * before that (SIGKILL, a cut link) leaves one that the next delivery
 * removes first.
 *
 * Ours to write: the target is not a symlink, an existing file starts with
 * our header (so a path that names someone else's file is refused, not
 * overwritten), and no directory from / to the file can be written by
 * anyone but root (a sticky world-writable ancestor like /tmp excepted;
 * the file's own directory never), so nobody else can swap the file or
 * its directory under the unit.
 *
 * ssh-runner.ts ignores changes to this text in `create` (create runs only
 * when the delivery is first made), so a newer version changes the
 * delivery's `update` in place and never replaces it.
 */
export function deliverScript(t: RemoteTarget): string {
    return [
        preamble(t),
        'if ! systemctl cat -- "$unit" >/dev/null 2>&1; then',
        '  echo "ci-registry-auth: unit $unit does not exist on $(hostname); nothing was changed. Fix: set runner.unit to the runner\'s unit" >&2',
        `  exit ${EXIT_NO_UNIT}`,
        "fi",
        "not_ours() {",
        '  echo "ci-registry-auth: $1; $f was not changed. Fix: point runner.envFile at a path of its own in a root-only directory (e.g. /etc/forgejo-runner/zot-api-key.env)" >&2',
        `  exit ${EXIT_NOT_OURS}`,
        "}",
        'if [ -L "$f" ]; then not_ours "$f is a symbolic link"; fi',
        'if [ -e "$f" ] && { [ ! -f "$f" ] || [ "$(head -c ' +
            String(OUR_HEADER.length) +
            ' -- "$f")" != ' +
            `'${OUR_HEADER}'` +
            " ]; }; then",
        '  not_ours "$f exists and was not written by ci-registry-auth (its first line is not our header)"',
        "fi",
        "umask 077",
        'dir=$(dirname -- "$f")',
        'mkdir -p -- "$dir"',
        // From the file's directory up to /: root-owned, and writable by root alone.
        "d=$dir",
        "while :; do",
        '  if [ -L "$d" ]; then not_ours "$d is a symbolic link"; fi',
        // stat's octal mode read as an octal constant by $(( )): group/other write bits, sticky bit.
        '  owner=$(stat -c %u -- "$d") mode=$(stat -c %a -- "$d")',
        '  if [ "$owner" != 0 ]; then not_ours "$d is owned by uid $owner, not root"; fi',
        '  if [ $((0$mode & 022)) != 0 ] && { [ "$d" = "$dir" ] || [ $((0$mode & 01000)) = 0 ]; }; then not_ours "$d (mode $mode) can be written by others than root"; fi',
        '  [ "$d" = / ] && break',
        '  d=$(dirname -- "$d")',
        "done",
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
    return [deliverScript(t), ...checkLines(t)].join("\n");
}

/**
 * Delete: removes the env file and restarts a running unit so that it drops
 * the variable. Touches nothing else on the host. Its text identifies the
 * target (file, unit, variable), and ssh-runner.ts replaces the delivery
 * when it changes: keep it byte for byte (preamble's `exactUnitMatch`).
 */
export function removeScript(t: RemoteTarget): string {
    return [
        preamble({ envFile: t.envFile, unit: t.unit, envVar: t.envVar }, false),
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
    return [preamble(t), ...checkLines(t)].join("\n");
}

/**
 * Where the check is installed on the host, as the forced command of
 * key-health's restricted key: beside the env file, in its root-only
 * directory.
 */
export function checkCommandPath(envFile: string): string {
    return `${envFile.slice(0, envFile.lastIndexOf("/"))}/ci-registry-auth-check`;
}

/** The installed check: verifyScript as an executable file (what key-health's key runs, whatever it asks). */
export function checkCommandFile(t: RemoteTarget): string {
    return [
        "#!/bin/sh",
        "# Installed by ci-registry-auth (Pulumi): the read-only check of this runner, the forced",
        "# command of key-health's SSH key. It reads the env file's fingerprint, the unit and the",
        "# runner's config; it changes nothing and ignores what the client asked to run.",
        verifyScript(t),
        "",
    ].join("\n");
}

/** Installs the check (sent on stdin) at `path`, root-owned 0755, replaced atomically. */
export function installCheckScript(path: string): string {
    return [
        "set -eu",
        `p=${shellQuote(path)}`,
        'dir=$(dirname -- "$p")',
        "umask 077",
        'mkdir -p -- "$dir"',
        'tmp=$(mktemp -- "$dir/.ci-registry-auth-check.XXXXXX")',
        "trap 'rm -f -- \"$tmp\"' EXIT",
        'cat > "$tmp"',
        'chown 0:0 -- "$tmp"',
        'chmod 0755 -- "$tmp"',
        'mv -f -- "$tmp" "$p"',
        "echo installed=true",
    ].join("\n");
}

/** Removes the installed check. */
export function removeCheckScript(path: string): string {
    return ["set -eu", `rm -f -- ${shellQuote(path)}`, "echo removed=true"].join("\n");
}

/**
 * The check's lines (after the preamble), which the delivery also runs.
 * `checked_at` is the host's clock in nanoseconds: of two reports, the
 * later one describes the host as it is ({@link latestReport}).
 */
function checkLines(t: RemoteTarget): string[] {
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
        ...checkKeyLines(t),
    ];
}

/**
 * Whether key-health's key is restricted to the check: every line of the
 * login user's authorized keys files (as sshd -T names them, else OpenSSH's
 * default) that carries the key is sent back, base64, for the program to
 * judge (judgeCheckKey). Public keys and options only.
 */
function checkKeyLines(t: RemoteTarget): string[] {
    const blob = t.checkKey?.trim().split(/\s+/)[1];
    if (blob === undefined) return ["echo check_key=none"];
    return [
        `ck=${shellQuote(blob)}`,
        `login=${shellQuote(t.user ?? "root")}`,
        'home=$(getent passwd "$login" 2>/dev/null | cut -d: -f6 || true)',
        "sshd_bin=$(command -v sshd 2>/dev/null || true)",
        'for p in /usr/sbin/sshd /run/current-system/sw/bin/sshd; do [ -n "$sshd_bin" ] || { [ -x "$p" ] && sshd_bin=$p; }; done',
        "files=",
        'if [ -n "$sshd_bin" ]; then files=$("$sshd_bin" -T -C "user=$login,host=localhost,addr=127.0.0.1" 2>/dev/null | awk \'$1 == "authorizedkeysfile" { $1 = ""; print }\' || true); fi',
        '[ -n "$files" ] || files=".ssh/authorized_keys .ssh/authorized_keys2"',
        "lines=$(for kf in $files; do",
        '  kf=$(printf "%s" "$kf" | sed -e "s|%h|$home|g" -e "s|%u|$login|g" -e "s|%%|%|g")',
        '  case $kf in /*) ;; *) kf="$home/$kf" ;; esac',
        '  if [ -r "$kf" ]; then grep -F -- "$ck" "$kf" || true; fi',
        "done)",
        'echo "check_key_lines_b64=$(printf "%s" "$lines" | base64 -w0)"',
    ];
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
