/**
 * The shell scripts the SSH runner runs on the host, composed from the files
 * in components/ssh/host/ (read once, when this module loads) and a generated
 * header holding the settings (paths, unit, variable name). The env file
 * itself arrives on stdin, so the key is never part of a command line, of
 * Pulumi state in plaintext, or of anything they print. Every script prints
 * `key=value` lines (components/ssh/host-report.ts reads them); values are
 * fingerprints and facts. They use only POSIX sh, coreutils, awk, sed, grep
 * and `systemctl`, which the NixOS host and any systemd distribution have;
 * `npm run lint` runs shellcheck on them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { shellQuote } from "../shell";

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

const HOST = join(__dirname, "host");

/**
 * A script file as the host gets it: without its comment and blank lines,
 * which document the file (and carry shellcheck's directives). No line of
 * these scripts starts with `#` inside a quoted string.
 */
function load(name: string): string {
    return readFileSync(join(HOST, name), "utf8")
        .split("\n")
        .filter((line) => line.trim() !== "" && !line.trimStart().startsWith("#"))
        .join("\n");
}

const LIB = load("lib.sh");
const DELIVER = load("deliver.sh");
const RUNNER_FILES = load("runner-files.sh");
const CHECK = load("check.sh");
const REMOVE = load("remove.sh");
const INSTALL_CHECK = load("install-check.sh");
const REMOVE_CHECK = load("remove-check.sh");

/**
 * lib.sh as the first deliveries had it, for removeScript alone: its
 * unit_reads_file matched the path as a substring. removeScript's text
 * keys the delivery's replacement (ssh-runner.ts), so it keeps these bytes.
 */
const EXACT_MATCH = `grep -qxF -e "$f (ignore_errors=yes)" -e "$f (ignore_errors=no)"`;
const LEGACY_LIB = LIB.replace(EXACT_MATCH, `grep -qF -- "$f ("`);
if (LEGACY_LIB === LIB) {
    throw new Error("components/ssh/host/lib.sh: unit_reads_file's match changed; removeScript's frozen text depends on it");
}

/** The generated header: strict mode, the C locale, and the target's settings. */
function header(t: RemoteTarget): string {
    return ["set -eu", "export LC_ALL=C", `f=${shellQuote(t.envFile)}`, `unit=${shellQuote(t.unit)}`, `var=${shellQuote(t.envVar)}`].join(
        "\n",
    );
}

/** The check's settings and body (after the header and lib.sh). */
function checkPart(t: RemoteTarget): string {
    const blob = t.checkKey?.trim().split(/\s+/)[1] ?? "";
    return [`ck=${shellQuote(blob)}`, `login=${shellQuote(t.user ?? "root")}`, RUNNER_FILES, CHECK].join("\n");
}

/**
 * Create/update (components/ssh/host/deliver.sh). ssh-runner.ts ignores changes
 * to this text in `create` (create runs only when the delivery is first
 * made), so a newer version changes the delivery's `update` in place and
 * never replaces it.
 */
export function deliverScript(t: RemoteTarget): string {
    return [header(t), `our_header=${shellQuote(OUR_HEADER)}`, LIB, DELIVER].join("\n");
}

/**
 * Update (a rotation, or a newer version of these scripts): the delivery,
 * then the read-only check after the restart, in the same session: one SSH
 * session per rotation (docs/performance.md).
 */
export function deliverAndCheckScript(t: RemoteTarget): string {
    return [deliverScript(t), checkPart(t)].join("\n");
}

/**
 * Delete (components/ssh/host/remove.sh). Its text identifies the target (file,
 * unit, variable), and ssh-runner.ts replaces the delivery when it changes:
 * it stays byte for byte what the first deliveries were made with (pinned
 * by a unit test), hence the legacy lib.
 */
export function removeScript(t: RemoteTarget): string {
    return [header(t), LEGACY_LIB, REMOVE].join("\n");
}

/** The read-only check (components/ssh/host/check.sh). */
export function verifyScript(t: RemoteTarget): string {
    return [header(t), LIB, checkPart(t)].join("\n");
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
    return ["set -eu", `p=${shellQuote(path)}`, INSTALL_CHECK].join("\n");
}

/** Removes the installed check. */
export function removeCheckScript(path: string): string {
    return ["set -eu", `p=${shellQuote(path)}`, REMOVE_CHECK].join("\n");
}

/** runner-files.sh's functions with `daemon_config_path` or `runner_file` called on `input`, for the twin test. */
export function runnerFilesProbe(fn: "daemon_config_path" | "runner_file", path?: string): string {
    return [
        "set -eu",
        "export LC_ALL=C",
        RUNNER_FILES,
        fn === "runner_file" ? `runner_file ${shellQuote(path ?? "")}` : "daemon_config_path",
    ].join("\n");
}
