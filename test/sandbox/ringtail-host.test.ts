/**
 * The host-side scripts against the sandbox ringtail: real systemd (PID 1 of
 * a systemd-nspawn machine), real sshd with a pinned host key, a DynamicUser
 * unit reading the env file with EnvironmentFile=. The scripts travel as the
 * SSH command and the env file on stdin, exactly as the program sends them.
 *
 * What this does not use yet is the Pulumi command provider: it cannot be
 * built here (see README, "Offline toolchain"), so the OpenSSH client
 * carries the same command and stdin.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";

import fc from "fast-check";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { renderEnvFile } from "../../components/ssh/envfile";
import { fingerprint } from "../../components/fingerprint";
import {
    deliverAndCheckScript,
    deliverScript,
    EXIT_NO_UNIT,
    EXIT_RESTART_FAILED,
    EXIT_WRITE_FAILED,
    removeScript,
    verifyScript,
} from "../../components/ssh/host-scripts";
import { jobsFromReport, parseReport } from "../../components/ssh/host-report";
import { Ringtail } from "../../sandbox/ringtail";
import { findLeaks } from "../support/leaks";

const VAR = "ZOT_CI_API_KEY";
const KEY = "zak_4c1f0e9d8b7a6c5d4e3f2a1b0c9d8e7f";

let host: Ringtail;
const ssh = (command: string, stdin = "", knownHosts?: string) => host.ssh(command, stdin, knownHosts);
const target = () => ({ envFile: host.facts.envFile, unit: host.facts.unit, envVar: VAR });
const mainPid = () => ssh(`systemctl show -p MainPID --value ${host.facts.unit}`).stdout.trim();
// systemd's default start limit (5 starts in 10 s) trips at this test's pace
// of restarts, not at an operator's; clear it so each test starts clean.
const resetStartLimit = () => ssh(`systemctl reset-failed ${host.facts.unit}`);

beforeAll(() => {
    host = Ringtail.start();
}, 600_000);

afterAll(() => {
    host.stop();
}, 120_000);

describe("sandbox ringtail (real systemd over SSH)", () => {
    beforeEach(() => {
        resetStartLimit();
    });

    it("boots a runner unit shaped like the NixOS one: DynamicUser, reading the env file", () => {
        const r = ssh(`systemctl show -p DynamicUser -p EnvironmentFiles -p ActiveState ${host.facts.unit}`);
        expect(r.stdout).toContain("DynamicUser=yes");
        expect(r.stdout).toContain(`EnvironmentFiles=${host.facts.envFile} (ignore_errors=yes)`);
        expect(r.stdout).toContain("ActiveState=active");
    });

    it("delivers: file root 0600, unit restarted once, systemd hands the exact key to the process", () => {
        const before = mainPid();
        const r = ssh(deliverAndCheckScript(target()), renderEnvFile(VAR, KEY));
        expect(r.code, r.stderr).toBe(0);
        // The delivery's own check (update's script), after the restart in the same session, sees the new process.
        expect(parseReport(r.stdout)).toMatchObject({
            changed: "true",
            file_fp: fingerprint(KEY),
            restarted: "true",
            file_owner: "0:0",
            file_mode: "600",
            unit_active: "active",
            unit_reads_file: "true",
            process_fp: fingerprint(KEY),
        });
        expect(mainPid()).not.toBe(before);
        const report = parseReport(ssh(verifyScript(target())).stdout);
        expect(report).toMatchObject({
            file: "present",
            file_owner: "0:0",
            file_mode: "600",
            file_fp: fingerprint(KEY),
            unit_active: "active",
            unit_reads_file: "true",
            process_fp: fingerprint(KEY),
            config: host.facts.runnerConfig,
            registration: host.facts.runnerRegistration,
        });
        expect(jobsFromReport(report, VAR, host.facts.unit)).toEqual({
            jobsSeeKey: true,
            jobRoute: "host executor (labels nix-container-builder): jobs inherit the runner's environment",
        });
    });

    it("does not restart when the bytes are unchanged", () => {
        ssh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const pid = mainPid();
        const r = ssh(deliverScript(target()), renderEnvFile(VAR, KEY));
        expect(parseReport(r.stdout)).toMatchObject({ changed: "false", restarted: "false" });
        expect(mainPid()).toBe(pid);
    });

    it("gets every printable key through systemd's own EnvironmentFile parser", () => {
        fc.assert(
            fc.property(
                fc.string({
                    unit: fc.constantFrom(...Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i))),
                    minLength: 1,
                    maxLength: 40,
                }),
                (key) => {
                    resetStartLimit();
                    const r = ssh(deliverScript(target()), renderEnvFile(VAR, key));
                    expect(r.code, r.stderr).toBe(0);
                    expect(parseReport(ssh(verifyScript(target())).stdout)["process_fp"]).toBe(fingerprint(key));
                },
            ),
            { numRuns: 12, examples: [["a'b\"c$d`e\\f"], ["$HOME"], ["%h%n"], ["#x"], [";x"]] },
        );
        resetStartLimit();
        ssh(deliverScript(target()), renderEnvFile(VAR, KEY));
    });

    it("refuses an unknown unit and leaves the file as it was", () => {
        ssh(deliverScript(target()), renderEnvFile(VAR, KEY));
        const r = ssh(deliverScript({ ...target(), unit: "no-such-runner.service" }), renderEnvFile(VAR, "zak_other"));
        expect(r.code).toBe(EXIT_NO_UNIT);
        expect(parseReport(ssh(verifyScript(target())).stdout)["file_fp"]).toBe(fingerprint(KEY));
    });

    it("sends nothing to a host whose key does not match the pinned one", () => {
        const impostor = join(host.state, "impostor_known_hosts");
        writeFileSync(impostor, `${host.facts.host} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`);
        const r = ssh(deliverScript(target()), renderEnvFile(VAR, "zak_must_not_arrive"), impostor);
        expect(r.code).toBe(255);
        expect(r.stderr).toMatch(/host key/i);
        expect(parseReport(ssh(verifyScript(target())).stdout)["file_fp"]).toBe(fingerprint(KEY));
    });

    it("a full /etc/forgejo-runner: the write fails naming the directory, the old file stays whole", () => {
        ssh(deliverScript(target()), renderEnvFile(VAR, KEY));
        // A tiny tmpfs over the directory, holding the current file and nothing more to spare.
        const fill = [
            "set -e",
            `cp ${host.facts.envFile} /root/env.keep`,
            "mount -t tmpfs -o size=12k,mode=0755 tmpfs /etc/forgejo-runner",
            `install -m 0600 /root/env.keep ${host.facts.envFile}`,
            "dd if=/dev/zero of=/etc/forgejo-runner/filler bs=1k count=64 2>/dev/null || true",
        ].join("\n");
        expect(ssh(fill).code).toBe(0);
        try {
            const t0 = Date.now();
            const r = ssh(deliverScript(target()), renderEnvFile(VAR, "zak_does_not_fit_0123456789abcdef"));
            const ms = Date.now() - t0;
            expect(r.code).toBe(EXIT_WRITE_FAILED);
            expect(r.stderr).toBe(
                "ci-registry-auth: writing the new env file in /etc/forgejo-runner failed (is the file system full or read-only?); /etc/forgejo-runner/zot-api-key.env was not changed\n",
            );
            expect(parseReport(ssh(verifyScript(target())).stdout)).toMatchObject({
                file_fp: fingerprint(KEY),
                file_mode: "600",
                process_fp: fingerprint(KEY),
            });
            expect(
                ssh("ls -A /etc/forgejo-runner")
                    .stdout.split("\n")
                    .filter((f) => f.startsWith(".ci-registry-auth.")),
            ).toEqual([]);
            console.log(`disk full: delivery refused in ${ms} ms, the old key whole, no temp file`);
        } finally {
            ssh("umount /etc/forgejo-runner");
        }
    });

    it("a unit at systemd's start limit: the file is in place, the error names the unit and journalctl", () => {
        // One start allowed per minute: the restart after delivery is refused,
        // as when a crash-looping or quickly re-delivered unit hits the default limit.
        const dropIn = `/run/systemd/system/${host.facts.unit}.d`;
        const limit = `mkdir -p ${dropIn} && printf '[Unit]\\nStartLimitIntervalSec=60\\nStartLimitBurst=1\\n' > ${dropIn}/limit.conf`;
        expect(
            ssh(`${limit} && systemctl daemon-reload && systemctl reset-failed ${host.facts.unit} && systemctl restart ${host.facts.unit}`)
                .code,
        ).toBe(0);
        try {
            const r = ssh(deliverScript(target()), renderEnvFile(VAR, "zak_start_limit_0123456789abcdef"));
            expect(r.code).toBe(EXIT_RESTART_FAILED);
            expect(r.stderr).toContain(
                `wrote ${host.facts.envFile} but restarting ${host.facts.unit} failed: see journalctl -u ${host.facts.unit}`,
            );
            expect(parseReport(ssh(verifyScript(target())).stdout)["file_fp"]).toBe(fingerprint("zak_start_limit_0123456789abcdef"));
        } finally {
            ssh(
                `rm -rf ${dropIn} && systemctl daemon-reload && systemctl reset-failed ${host.facts.unit} && systemctl restart ${host.facts.unit}`,
            );
            ssh(deliverScript(target()), renderEnvFile(VAR, KEY));
        }
    });

    it("removes the file and restarts the unit, which then runs without the variable", () => {
        const r = ssh(removeScript(target()));
        expect(r.code, r.stderr).toBe(0);
        expect(parseReport(ssh(verifyScript(target())).stdout)).toMatchObject({
            file: "absent",
            unit_active: "active",
            process_fp: "none",
        });
    });

    describe("what the check reads of the runner's own config and registration", () => {
        const config = () => ssh(`cat ${host.facts.runnerConfig}`).stdout;
        const registration = () => ssh(`cat ${host.facts.runnerRegistration}`).stdout;
        let saved: { config: string; registration: string };
        const jobs = () => jobsFromReport(parseReport(ssh(verifyScript(target())).stdout), VAR, host.facts.unit);
        const write = (path: string, text: string) => {
            expect(ssh(`cat > ${path}`, text).code).toBe(0);
        };

        beforeAll(() => {
            saved = { config: config(), registration: registration() };
        });
        afterEach(() => {
            write(host.facts.runnerConfig, saved.config);
            write(host.facts.runnerRegistration, saved.registration);
        });

        it("never reports the runner's registration token", () => {
            const token = (JSON.parse(saved.registration) as { token: string }).token;
            expect(token.length).toBeGreaterThan(8);
            expect(ssh(verifyScript(target())).stdout).not.toContain(token);
            expect(Buffer.from(parseReport(ssh(verifyScript(target())).stdout)["registration_b64"] ?? "", "base64").toString()).toContain(
                '"token": "-"',
            );
        });

        it("runner.envs defining the variable: an error, without the value", () => {
            // (The report carries the config itself, encrypted in Pulumi state; the verdict never does.)
            const inConfig = "zak_written_into_the_config_7c6b5a4f3e2d";
            write(host.facts.runnerConfig, `${saved.config}  envs:\n    ${VAR}: ${inConfig}\n`);
            const verdict = jobs();
            expect(verdict).toMatchObject({
                jobsSeeKey: false,
                jobRoute: expect.stringMatching(/^error: runner\.envs in \/etc\/gitea-runner\/.* defines ZOT_CI_API_KEY/) as unknown,
            });
            expect(JSON.stringify(verdict)).not.toContain(inConfig);
        });

        it("a docker label without container.options: false, naming the NixOS setting", () => {
            write(
                host.facts.runnerRegistration,
                saved.registration.replace(
                    '"nix-container-builder:host"',
                    '"nix-container-builder:host",\n    "docker:docker://node:22-bookworm"',
                ),
            );
            expect(jobs()).toMatchObject({
                jobsSeeKey: false,
                fix: expect.stringContaining(
                    'set container.options: "-e ZOT_CI_API_KEY" in /etc/gitea-runner/nix_container_builder-config.yaml (NixOS: services.gitea-actions-runner.instances.nix_container_builder.settings',
                ) as unknown,
            });
        });

        it("a missing registration or a config that does not parse: false, with the reason", () => {
            expect(ssh(`rm ${host.facts.runnerRegistration}`).code).toBe(0);
            expect(jobs()).toMatchObject({
                jobsSeeKey: false,
                jobRoute: `cannot tell which executor runs jobs: ${host.facts.runnerRegistration} is missing or unreadable (the runner writes it when it registers)`,
            });
            write(host.facts.runnerConfig, "runner: [\n");
            expect(jobs()).toMatchObject({
                jobsSeeKey: false,
                jobRoute: expect.stringMatching(/^cannot tell: \/etc\/gitea-runner\/.* does not parse as YAML/) as unknown,
            });
        });
    });

    it("never printed the key", () => {
        expect(findLeaks({ "ssh transcript": host.transcript.join("\n") }, { KEY })).toEqual([]);
    });
});
