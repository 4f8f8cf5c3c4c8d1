/**
 * The host-side scripts, run by a real POSIX shell with real coreutils and
 * awk. Only `systemctl` is a stand-in here (a script that logs its calls);
 * the sandbox end-to-end tests run them against real systemd over SSH.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
    chmodSync,
    chownSync,
    existsSync,
    lstatSync,
    mkdirSync,
    mkdtempSync,
    readdirSync,
    readFileSync,
    rmSync,
    statSync,
    symlinkSync,
    writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import fc from "fast-check";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";

import { renderEnvFile } from "../../components/ssh/envfile";
import { fingerprint } from "../../components/fingerprint";
import {
    checkCommandFile,
    deliverAndCheckScript,
    deliverScript,
    EXIT_BAD_INPUT,
    EXIT_NO_UNIT,
    EXIT_NOT_OURS,
    EXIT_RESTART_FAILED,
    installCheckScript,
    removeCheckScript,
    removeScript,
    runnerFilesProbe,
    verifyScript,
} from "../../components/ssh/host-scripts";
import { daemonConfigPath } from "../../components/runner-config";
import { parseRunnerConfig } from "../../components/runner-config";
import { jobsFromReport, judgeCheckKey, latestReport, parseReport, reportHasKey } from "../../components/ssh/host-report";

const UNIT = "gitea-runner-nix_container_builder.service";
/** The systemctl stand-in the unit harness uses too. */
const FAKE_SYSTEMCTL = join(__dirname, "..", "support", "fake-systemctl.sh");
const VAR = "ZOT_CI_API_KEY";
const KEY = "zak_5b0e9d7c3a1f4e2d8c6b4a2f0e9d8c7b";
/** The check's report on a host that holds KEY whole and runs the unit with it. */
const HEALTHY_REPORT = {
    file: "present",
    file_owner: "0:0",
    file_mode: "600",
    file_fp: fingerprint(KEY),
    unit_active: "active",
    unit_reads_file: "true",
    process_fp: fingerprint(KEY),
};

let dir: string;
let envFile: string;
let log: string;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "cra-scripts-"));
    envFile = join(dir, "etc", "forgejo-runner", "zot-api-key.env");
    log = join(dir, "systemctl.log");
    writeFileSync(log, "");
    const bin = join(dir, "bin");
    execFileSync("mkdir", ["-p", bin]);
    symlinkSync(FAKE_SYSTEMCTL, join(bin, "systemctl"));
    env = {
        PATH: `${bin}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
        FAKE_LOG: log,
        FAKE_UNIT: UNIT,
        FAKE_ENVFILES: `${envFile} (ignore_errors=no)`,
        FAKE_FLAGS: `--config ${join(dir, "config.yaml")}`,
        // systemctl shows WorkingDirectory=-/path as !/path.
        FAKE_WD: `!${join(dir, "state")}`,
    };
});

afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
});

afterAll(() => {
    for (const c of children) c.kill();
});

function sh(script: string, stdin = "", extra: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
    const r = spawnSync("sh", ["-c", script], { input: stdin, env: { ...env, ...extra }, encoding: "utf8" });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const target = () => ({ envFile, unit: UNIT, envVar: VAR });
const restarts = () =>
    readFileSync(log, "utf8")
        .split("\n")
        .filter((l) => l.startsWith("try-restart")).length;
const leftovers = () => readdirSync(join(dir, "etc", "forgejo-runner")).filter((f) => f !== "zot-api-key.env");

describe("deliver", () => {
    it("writes the file root-owned 0600, restarts once, and reports the key's fingerprint", () => {
        const r = sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(parseReport(r.stdout)).toEqual({ changed: "true", file_fp: fingerprint(KEY), restarted: "true" });
        expect(readFileSync(envFile, "utf8")).toBe(renderEnvFile(VAR, KEY));
        const st = statSync(envFile);
        expect(st.mode & 0o777).toBe(0o600);
        expect([st.uid, st.gid]).toEqual([0, 0]);
        expect(restarts()).toBe(1);
        expect(leftovers()).toEqual([]);
        expect(r.stdout).not.toContain(KEY);
    });

    /** A stand-in for the unit's running main process, holding `value` in its environment. */
    async function unitProcess(value: string): Promise<string> {
        const child = spawn("sleep", ["60"], { env: { [VAR]: value, PATH: process.env["PATH"] }, stdio: "ignore" });
        children.push(child);
        await new Promise((resolve) => setTimeout(resolve, 100));
        return String(child.pid);
    }

    it("changes nothing and does not restart when the bytes are the same and the unit holds them", async () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const before = statSync(envFile).mtimeMs;
        const r = sh(deliverScript(target()), renderEnvFile(VAR, KEY), { FAKE_PID: await unitProcess(KEY) });
        expect(parseReport(r.stdout)).toMatchObject({ changed: "false", restarted: "false" });
        expect(statSync(envFile).mtimeMs).toBe(before);
        expect(restarts()).toBe(1);
    });

    it("restarts once when the bytes are the same but the running unit holds another key (killed after its rename)", async () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const r = sh(deliverScript(target()), renderEnvFile(VAR, KEY), { FAKE_PID: await unitProcess("zak_the_old_key_0123456789") });
        expect(parseReport(r.stdout)).toMatchObject({ changed: "false", restarted: "true" });
        expect(restarts()).toBe(2);
        // A unit that does not read the file is not restarted for it on every run.
        const other = sh(deliverScript(target()), renderEnvFile(VAR, KEY), {
            FAKE_PID: await unitProcess("zak_the_old_key_0123456789"),
            FAKE_ENVFILES: "/etc/other.env (ignore_errors=no)",
        });
        expect(parseReport(other.stdout)).toMatchObject({ changed: "false", restarted: "false" });
        expect(restarts()).toBe(2);
    });

    it("leaves the old file untouched when the unit does not exist", () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const r = sh(deliverScript({ ...target(), unit: "nope.service" }), renderEnvFile(VAR, "zak_other"));
        expect(r.code).toBe(EXIT_NO_UNIT);
        expect(r.stderr).toMatch(/unit nope\.service does not exist .*nothing was changed.*runner\.unit/);
        expect(readFileSync(envFile, "utf8")).toBe(renderEnvFile(VAR, KEY));
    });

    it("refuses stdin that does not set the variable exactly once, leaving no temp file", () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        for (const bad of ["", "OTHER=x\n", `${VAR}=a\n${VAR}=b\n`]) {
            const r = sh(deliverScript(target()), bad);
            expect(r.code).toBe(EXIT_BAD_INPUT);
            expect(readFileSync(envFile, "utf8")).toBe(renderEnvFile(VAR, KEY));
            expect(leftovers()).toEqual([]);
            expect(r.stderr).not.toContain(KEY);
        }
    });

    it("removes a temp file a killed delivery left behind, and writes the new file whole", () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        writeFileSync(join(dir, "etc", "forgejo-runner", ".ci-registry-auth.Xk3q9Z"), "ZOT_CI_API_KEY=half");
        const r = sh(deliverScript(target()), renderEnvFile(VAR, "zak_next_0123456789"));
        expect(r.code, r.stderr).toBe(0);
        expect(leftovers()).toEqual([]);
        expect(readFileSync(envFile, "utf8")).toBe(renderEnvFile(VAR, "zak_next_0123456789"));
    });

    it("fails clearly when the restart fails, after the complete file is in place", () => {
        const r = sh(deliverScript(target()), renderEnvFile(VAR, KEY), { FAKE_RESTART_EXIT: "1" });
        expect(r.code).toBe(EXIT_RESTART_FAILED);
        expect(r.stderr).toMatch(/restarting gitea-runner-nix_container_builder\.service failed: see journalctl/);
        expect(readFileSync(envFile, "utf8")).toBe(renderEnvFile(VAR, KEY));
    });

    it("reads back the fingerprint of any printable key, whichever quoting it needed", () => {
        fc.assert(
            fc.property(
                fc.string({
                    unit: fc.constantFrom(...Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i))),
                    minLength: 1,
                    maxLength: 48,
                }),
                (key) => {
                    const r = sh(deliverScript(target()), renderEnvFile(VAR, key));
                    expect(r.code).toBe(0);
                    expect(parseReport(r.stdout)["file_fp"]).toBe(fingerprint(key));
                },
            ),
            { numRuns: 40 },
        );
    });
});

describe("deliver and check (update)", () => {
    it("delivers as create does, then reports the check's facts after the restart, in the same session", () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const r = sh(deliverAndCheckScript(target()), renderEnvFile(VAR, "zak_next_0123456789"));
        expect(r.code, r.stderr).toBe(0);
        expect(parseReport(r.stdout)).toMatchObject({
            changed: "true",
            restarted: "true",
            file: "present",
            file_owner: "0:0",
            file_mode: "600",
            file_fp: fingerprint("zak_next_0123456789"),
            unit_active: "active",
            unit_reads_file: "true",
        });
        expect(parseReport(r.stdout)["checked_at"]).toMatch(/^\d{19}$/);
        expect(restarts()).toBe(2);
        expect(r.stdout).not.toContain("zak_next_0123456789");
    });

    it("begins with create's script byte for byte, so a newer check changes update only (no replacement)", () => {
        expect(deliverAndCheckScript(target()).startsWith(`${deliverScript(target())}\n`)).toBe(true);
    });
});

describe("remove", () => {
    it("removes the file and restarts the unit; a second run is a no-op", () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const r = sh(removeScript(target()));
        expect(r.code).toBe(0);
        expect(existsSync(envFile)).toBe(false);
        expect(restarts()).toBe(2);
        expect(sh(removeScript(target())).code).toBe(0);
        expect(restarts()).toBe(2);
    });
});

describe("verify", () => {
    it("reports file facts and the fingerprint of the variable in the running process", async () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const child = spawn("sleep", ["60"], { env: { [VAR]: KEY, PATH: process.env["PATH"] }, stdio: "ignore" });
        children.push(child);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const r = sh(verifyScript(target()), "", { FAKE_PID: String(child.pid) });
        expect(r.code).toBe(0);
        expect(parseReport(r.stdout)).toMatchObject(HEALTHY_REPORT);
        expect(r.stdout).not.toContain(KEY);
        child.kill();
    });

    it("reports absence honestly: no file, unit not reading it, no process", () => {
        const r = sh(verifyScript(target()), "", { FAKE_ENVFILES: "/etc/other.env (ignore_errors=no)" });
        expect(parseReport(r.stdout)).toMatchObject({ file: "absent", unit_reads_file: "false", process_fp: "none" });
    });

    it("says none when the process lacks the variable", async () => {
        const child = spawn("sleep", ["60"], { env: { PATH: process.env["PATH"] }, stdio: "ignore" });
        children.push(child);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const r = sh(verifyScript(target()), "", { FAKE_PID: String(child.pid) });
        expect(parseReport(r.stdout)["process_fp"]).toBe("none");
        child.kill();
    });
});

describe("verify: the runner's config and registration, for the jobs check", () => {
    const TOKEN = "runner-token-0123456789abcdef";
    const registration = (labels: string[]) =>
        JSON.stringify(
            { WARNING: "do not edit", id: 3, uuid: "u-1", name: "ringtail-nix-builder", token: TOKEN, address: "https://forge", labels },
            null,
            2,
        ) + "\n";
    const decoded = (report: Record<string, string>, key: string) => Buffer.from(report[key] ?? "", "base64").toString("utf8");
    const write = (rel: string, text: string) => {
        execFileSync("mkdir", ["-p", join(dir, rel, "..")]);
        writeFileSync(join(dir, rel), text);
    };
    const verify = (extra: NodeJS.ProcessEnv = {}) => {
        const r = sh(verifyScript(target()), "", extra);
        expect(r.code, r.stderr).toBe(0);
        return parseReport(r.stdout);
    };

    it("reads the --config file of ExecStart and the registration in the working directory, its token blanked", () => {
        write("config.yaml", "log:\n  level: info\nrunner:\n  capacity: 1\n");
        write("state/.runner", registration(["nix-container-builder:host"]));
        const report = verify();
        expect(report).toMatchObject({
            working_directory: join(dir, "state"),
            config: join(dir, "config.yaml"),
            registration: join(dir, "state", ".runner"),
        });
        expect(decoded(report, "config_b64")).toBe("log:\n  level: info\nrunner:\n  capacity: 1\n");
        const reg = JSON.parse(decoded(report, "registration_b64")) as Record<string, unknown>;
        expect(reg).toMatchObject({ token: "-", labels: ["nix-container-builder:host"], name: "ringtail-nix-builder" });
        expect(JSON.stringify(report)).not.toContain(TOKEN);
        expect(jobsFromReport(report, VAR, UNIT)).toEqual({
            jobsSeeKey: true,
            jobRoute: "host executor (labels nix-container-builder): jobs inherit the runner's environment",
        });
    });

    it.each([["--config=PATH"], ["-c PATH"], ["-cPATH"], ["-c=PATH"], ["--config PATH --log-level info"]])(
        "finds the config given as %s",
        (form) => {
            write("other.yaml", "runner: {}\n");
            const report = verify({ FAKE_FLAGS: form.replace("PATH", join(dir, "other.yaml")) });
            expect(report["config"]).toBe(join(dir, "other.yaml"));
            expect(decoded(report, "config_b64")).toBe("runner: {}\n");
        },
    );

    it("follows runner.file, relative to the working directory or absolute, ignoring deeper `file:` keys", () => {
        write("config.yaml", "runner:\n  envs:\n    file: not-this\n  file: 'reg/.runner' # registered here\n");
        write("state/reg/.runner", registration(["a:docker://img"]));
        expect(verify()["registration"]).toBe(join(dir, "state", "reg", ".runner"));
        write("config.yaml", `runner:\n  file: "${join(dir, "abs.runner")}"\n`);
        expect(verify()["registration"]).toBe(join(dir, "abs.runner"));
    });

    it("says none without --config, and absent for files that are not there", () => {
        const report = verify({ FAKE_FLAGS: "" });
        expect(report).toMatchObject({ config: "none", registration: join(dir, "state", ".runner"), registration_b64: "absent" });
        expect(verify()).toMatchObject({ config: join(dir, "config.yaml"), config_b64: "absent" });
        expect(jobsFromReport(verify(), VAR, UNIT)).toMatchObject({
            jobsSeeKey: false,
            jobRoute: `cannot tell: ${join(dir, "config.yaml")} is missing or unreadable`,
        });
    });
});

describe("reportHasKey", () => {
    it("holds only when every fact agrees", () => {
        expect(reportHasKey(HEALTHY_REPORT, fingerprint(KEY))).toBe(true);
        expect(reportHasKey(HEALTHY_REPORT, fingerprint("other"))).toBe(false);
        for (const [k, bad] of Object.entries({
            file_owner: "1000:0",
            file_mode: "644",
            unit_active: "failed",
            unit_reads_file: "false",
            process_fp: "none",
            file_fp: "none",
        })) {
            expect(reportHasKey({ ...HEALTHY_REPORT, [k]: bad }, fingerprint(KEY)), k).toBe(false);
        }
    });
});

describe("latestReport", () => {
    it("takes the report checked later on the host, and never one without checked_at", () => {
        const delivery = { checked_at: "1790000000000000002", process_fp: "sha256:new" };
        const check = { checked_at: "1790000000000000001", process_fp: "sha256:old" };
        expect(latestReport(delivery, check)).toBe(delivery);
        expect(latestReport(delivery, { ...check, checked_at: "1790000000000000003" })["process_fp"]).toBe("sha256:old");
        // A delivery from before the delivery ran the check, or a garbled clock.
        expect(latestReport({ changed: "true" }, check)).toBe(check);
        expect(latestReport({ ...delivery, checked_at: "soon" }, check)).toBe(check);
        expect(latestReport({ changed: "true" }, { process_fp: "none" })).toEqual({ process_fp: "none" });
    });

    it("picks the delivery after a rotation on a real shell: its check ran after the separate one", () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const check = parseReport(sh(verifyScript(target())).stdout);
        const delivery = parseReport(sh(deliverAndCheckScript(target()), renderEnvFile(VAR, "zak_next_0123456789")).stdout);
        expect(latestReport(delivery, check)["file_fp"]).toBe(fingerprint("zak_next_0123456789"));
        const recheck = parseReport(sh(verifyScript(target())).stdout);
        expect(latestReport(delivery, recheck)).toBe(recheck);
    });
});

describe("deliver: only into a target that is ours", () => {
    const refused = (r: { code: number; stderr: string }, why: RegExp) => {
        expect(r.code).toBe(EXIT_NOT_OURS);
        expect(r.stderr).toMatch(why);
        expect(r.stderr).toMatch(/was not changed\. Fix: point runner\.envFile/);
        expect(restarts()).toBe(0);
    };

    it("refuses a symbolic link, leaving it and what it points to as they were", () => {
        mkdirSync(join(dir, "etc", "forgejo-runner"), { recursive: true });
        const elsewhere = join(dir, "shadow");
        writeFileSync(elsewhere, "root:x:0:0::/root:/bin/sh\n");
        symlinkSync(elsewhere, envFile);
        refused(sh(deliverScript(target()), renderEnvFile(VAR, KEY)), /is a symbolic link/);
        expect(lstatSync(envFile).isSymbolicLink()).toBe(true);
        expect(readFileSync(elsewhere, "utf8")).toBe("root:x:0:0::/root:/bin/sh\n");
    });

    it("refuses an existing file it did not write (no header), leaving it untouched", () => {
        mkdirSync(join(dir, "etc", "forgejo-runner"), { recursive: true });
        writeFileSync(envFile, "TOKEN=the-runner-registration-token\n");
        refused(sh(deliverScript(target()), renderEnvFile(VAR, KEY)), /exists and was not written by ci-registry-auth/);
        expect(readFileSync(envFile, "utf8")).toBe("TOKEN=the-runner-registration-token\n");
        expect(leftovers()).toEqual([]);
    });

    it("refuses a directory that others than root can write, and an ancestor that is not root's", () => {
        mkdirSync(join(dir, "etc", "forgejo-runner"), { recursive: true });
        chmodSync(join(dir, "etc", "forgejo-runner"), 0o777);
        refused(sh(deliverScript(target()), renderEnvFile(VAR, KEY)), /forgejo-runner \(mode 777\) can be written by others than root/);
        chmodSync(join(dir, "etc", "forgejo-runner"), 0o1777);
        refused(sh(deliverScript(target()), renderEnvFile(VAR, KEY)), /mode 1777/);
        chmodSync(join(dir, "etc", "forgejo-runner"), 0o755);
        chownSync(join(dir, "etc"), 1000, 1000);
        refused(sh(deliverScript(target()), renderEnvFile(VAR, KEY)), /\/etc is owned by uid 1000, not root/);
        chownSync(join(dir, "etc"), 0, 0);
        expect(existsSync(envFile)).toBe(false);
        // The same tree made root's alone takes the key; /tmp above it is world-writable but sticky.
        const ok = sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        expect(ok.code, ok.stderr).toBe(0);
        expect(readFileSync(envFile, "utf8")).toBe(renderEnvFile(VAR, KEY));
    });

    it("overwrites its own file, with the header it writes", () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const r = sh(deliverAndCheckScript(target()), renderEnvFile(VAR, "zak_next_0123456789abcdef"));
        expect(r.code, r.stderr).toBe(0);
        expect(readFileSync(envFile, "utf8")).toBe(renderEnvFile(VAR, "zak_next_0123456789abcdef"));
    });
});

describe("the unit reads the file: the exact path, not a substring", () => {
    it.each([
        ["the path itself", (f: string) => `${f} (ignore_errors=no)`, "true"],
        ["the path, optional", (f: string) => `/etc/forgejo-runner/token.env (ignore_errors=no)\n${f} (ignore_errors=yes)`, "true"],
        ["a longer path ending in it", (f: string) => `/srv${f} (ignore_errors=no)`, "false"],
        ["a path it is the start of", (f: string) => `${f}.bak (ignore_errors=no)`, "false"],
        ["another file", () => "/etc/other.env (ignore_errors=no)", "false"],
    ])("%s", (_label, files, expected) => {
        const r = sh(verifyScript(target()), "", { FAKE_ENVFILES: files(envFile) });
        expect(parseReport(r.stdout)["unit_reads_file"]).toBe(expected);
    });
});

describe("remove: its text names the target and nothing else changes it", () => {
    it("is byte for byte the script the first deliveries were made with (a change would replace every delivery)", () => {
        const t = { envFile: "/etc/forgejo-runner/zot-api-key.env", unit: UNIT, envVar: VAR };
        expect(createHash("sha256").update(removeScript(t)).digest("hex")).toBe(
            "92390a06f463bcc9e4e2044abc10a0b5835cf21d8e69f3c388b9ec4deff5f03a",
        );
        // Settings outside the target (check key, login) do not reach it.
        expect(removeScript({ ...t, user: "ops", checkKey: CHECK_KEY })).toBe(removeScript(t));
    });
});

const CHECK_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC2ZkN0NlY2sta2V5LWZvci11bml0LXRlc3RzLW9ubHk ci-registry-auth-check";

describe("the check key: restricted to the installed check", () => {
    const path = "/etc/forgejo-runner/ci-registry-auth-check";
    const blob = CHECK_KEY.split(" ")[1]!;
    const report = (lines: string) => ({ check_key_lines_b64: Buffer.from(lines).toString("base64") });

    it("restricted: restrict and the forced command on every line that carries it", () => {
        expect(judgeCheckKey(report(`restrict,command="${path}" ssh-ed25519 ${blob} ci`), CHECK_KEY, path)).toBe("restricted");
        expect(judgeCheckKey(report(`command="${path}",restrict ssh-ed25519 ${blob}`), CHECK_KEY, path)).toBe("restricted");
    });

    it.each([
        ["no options", `ssh-ed25519 ${blob}`, /^unrestricted: .*lacks `restrict`/],
        ["forced command without restrict", `command="${path}" ssh-ed25519 ${blob}`, /lacks `restrict`/],
        ["restrict without forced command", `restrict ssh-ed25519 ${blob}`, /does not force command=/],
        ["another command", `restrict,command="/bin/sh" ssh-ed25519 ${blob}`, /can run any command/],
        ["a second, open line", `restrict,command="${path}" ssh-ed25519 ${blob}\nssh-ed25519 ${blob} again`, /lacks `restrict`/],
        ["a quoted comma", `restrict,command="${path},x" ssh-ed25519 ${blob}`, /does not force/],
    ])("unrestricted: %s", (_label, lines, why) => {
        expect(judgeCheckKey(report(lines), CHECK_KEY, path)).toMatch(why);
    });

    it("absent, not configured, and a commented line that does not count", () => {
        expect(judgeCheckKey(report(""), CHECK_KEY, path)).toMatch(/^absent: /);
        expect(judgeCheckKey(report(`# restrict,command="${path}" ssh-ed25519 ${blob}`), CHECK_KEY, path)).toMatch(/^absent/);
        expect(judgeCheckKey({ check_key: "none" }, undefined, path)).toBe("not configured (runner.checkKey is not set)");
    });

    it("the host check finds the lines in the files sshd -T names, expanding %h and %u", () => {
        const keys = join(dir, "authorized_keys.d");
        mkdirSync(keys);
        writeFileSync(join(keys, "root"), `ssh-ed25519 AAAAother operator\nrestrict,command="${path}" ${CHECK_KEY}\n`);
        const sshd = join(dir, "bin", "sshd");
        writeFileSync(sshd, `#!/bin/sh\necho "port 22"\necho "authorizedkeysfile %h/.ssh/nonexistent ${keys}/%u"\n`);
        chmodSync(sshd, 0o755);
        const r = sh(verifyScript({ ...target(), checkKey: CHECK_KEY }));
        expect(r.code, r.stderr).toBe(0);
        const found = parseReport(r.stdout);
        expect(Buffer.from(found["check_key_lines_b64"] ?? "", "base64").toString()).toBe(`restrict,command="${path}" ${CHECK_KEY}`);
        expect(judgeCheckKey(found, CHECK_KEY, path)).toBe("restricted");
        expect(parseReport(sh(verifyScript(target())).stdout)["check_key"]).toBe("none");
    });

    it("the installed check is the verify script as an executable that ignores what the client asks", () => {
        sh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const installed = join(dir, "etc", "forgejo-runner", "ci-registry-auth-check");
        const r = sh(installCheckScript(installed), checkCommandFile(target()));
        expect(r.code, r.stderr).toBe(0);
        expect(statSync(installed).mode & 0o7777).toBe(0o755);
        // sshd runs the forced command with the client's request in SSH_ORIGINAL_COMMAND, never as the command.
        const run = spawnSync(installed, [], { env: { ...env, SSH_ORIGINAL_COMMAND: "id; cat /etc/shadow" }, encoding: "utf8" });
        expect(run.status).toBe(0);
        expect(parseReport(run.stdout)).toMatchObject({ file: "present", file_fp: fingerprint(KEY) });
        expect(run.stdout).not.toMatch(/uid=/);
        expect(sh(removeCheckScript(installed)).code).toBe(0);
        expect(existsSync(installed)).toBe(false);
    });
});

describe("the shell readers and their TypeScript twins give the same answers", () => {
    // Where the runner's files are: the host reads them with runner-files.sh's
    // awk, the program (indri, and judging ringtail's report) with TypeScript.
    // One table for both: each ExecStart as an argv (what the program reads from a container and
    // judges); the host's awk reads the same argv as systemd shows it, its elements joined by spaces.
    const argvs: [string, string[], string | undefined][] = [
        [
            "NixOS's unit",
            ["/nix/store/r-forgejo-runner/bin/act_runner", "daemon", "--config", "/nix/store/c-config.yaml"],
            "/nix/store/c-config.yaml",
        ],
        ["--config=", ["/usr/bin/forgejo-runner", "daemon", "--config=/etc/runner/config.yaml"], "/etc/runner/config.yaml"],
        ["-c X", ["/usr/bin/forgejo-runner", "daemon", "-c", "/etc/runner/config.yaml"], "/etc/runner/config.yaml"],
        ["-cX", ["/usr/bin/forgejo-runner", "daemon", "-c/etc/runner/config.yaml"], "/etc/runner/config.yaml"],
        ["-c=X", ["/usr/bin/forgejo-runner", "daemon", "-c=/etc/runner/config.yaml"], "/etc/runner/config.yaml"],
        [
            "the flag before daemon",
            ["/usr/bin/forgejo-runner", "--config", "/etc/runner/before-daemon.yaml", "daemon"],
            "/etc/runner/before-daemon.yaml",
        ],
        ["no --config", ["/usr/bin/forgejo-runner", "daemon"], undefined],
        ["not the daemon", ["/usr/bin/forgejo-runner", "register", "--config", "/etc/r.yaml"], undefined],
        ["env before the binary", ["/usr/bin/env", "FOO=1", "/usr/bin/forgejo-runner", "daemon", "--config=/etc/c.yaml"], "/etc/c.yaml"],
        ["a shell wrapper", ["/bin/sh", "-c", "forgejo-runner daemon --config /etc/r.yaml"], "/etc/r.yaml"],
        ["a shell wrapper, quoted path", ["/bin/sh", "-c", "forgejo-runner daemon --config '/etc/r.yaml'"], "/etc/r.yaml"],
        ["a shell wrapper, double quotes", ["/bin/sh", "-c", 'exec forgejo-runner daemon --config="/etc/r.yaml"'], "/etc/r.yaml"],
        ["a shell wrapper with cd &&", ["/bin/sh", "-c", "cd /var/lib/r && /usr/bin/forgejo-runner -c /etc/r.yaml daemon"], "/etc/r.yaml"],
        [
            "a binary named earlier, run later",
            ["/bin/sh", "-c", "echo forgejo-runner; forgejo-runner daemon -c=/etc/x.yaml"],
            "/etc/x.yaml",
        ],
        ["a wrapper without --config", ["/bin/bash", "-c", "forgejo-runner daemon"], undefined],
    ];
    it.each(argvs)("--config with %s", (_label, argv, path) => {
        const shell = spawnSync("sh", ["-c", runnerFilesProbe("daemon_config_path")], { input: `${argv.join(" ")}\n`, encoding: "utf8" });
        expect(shell.status).toBe(0);
        expect(shell.stdout.trim() || undefined).toBe(path);
        expect(daemonConfigPath(argv)?.path).toBe(path);
    });

    const configs: [string, string, string | undefined][] = [
        ["no runner block", "log:\n  level: info\n", undefined],
        ["runner.file", "runner:\n  capacity: 1\n  file: /data/.runner\n", "/data/.runner"],
        ["quoted, with a comment", "runner:\n  file: 'state/.runner' # registration\n", "state/.runner"],
        ["double-quoted", 'runner:\n    file: "reg.json"\n', "reg.json"],
        ["a deeper file key is not it", "runner:\n  envs:\n    file: nope\n  capacity: 1\n", undefined],
        ["another block's file", "container:\n  file: nope\nrunner:\n  capacity: 2\n", undefined],
    ];
    it.each(configs)("runner.file with %s", (_label, text, file) => {
        const path = join(dir, "config.yaml");
        writeFileSync(path, text);
        const shell = spawnSync("sh", ["-c", runnerFilesProbe("runner_file", path)], { encoding: "utf8" });
        expect(shell.status).toBe(0);
        expect(shell.stdout.trim() || undefined).toBe(file);
        const parsed = parseRunnerConfig(text);
        expect("config" in parsed ? parsed.config.registrationFile : "does not parse").toBe(file);
    });
});
