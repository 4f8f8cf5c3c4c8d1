/**
 * The operator's mise tasks (mise.toml → scripts/operator), run directly
 * (mise itself may not be installed) with stand-ins for 1Password's CLI and
 * the pulumi CLI that record what they were given.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { projectStacks } from "../../automation/job";

const ROOT = join(__dirname, "..", "..");
const TOKEN = "connect-token-from-op-read-7f6e5d4c";
const REF = "op://blumeops/ci-registry-auth-connect/credential";
let dir: string;

beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "cra-tasks-"));
    const stub = (name: string, body: string): void => {
        writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
        chmodSync(join(dir, name), 0o755);
    };
    // op read <ref>: the token; records its arguments.
    stub("op", `echo "op $*" >> "$TASK_LOG"; [ "$1" = read ] && [ "$2" = "${REF}" ] && printf '%s\\n' "${TOKEN}"`);
    // pulumi: records its arguments and whether it got the token in its environment; `stack export` gives a state.
    stub(
        "pulumi",
        [
            'echo "pulumi $* token=$([ "$OP_CONNECT_TOKEN" = "' + TOKEN + '" ] && echo env || echo none)" >> "$TASK_LOG"',
            'if [ "$1 $2" = "stack export" ]; then cat "$STATE"; fi',
        ].join("\n"),
    );
    stub("npm", `echo "npm $* token=$([ "$OP_CONNECT_TOKEN" = "${TOKEN}" ] && echo env || echo none)" >> "$TASK_LOG"`);
});

afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
});

function task(args: string[], state = '{"deployment":{"resources":[]}}'): { code: number; log: string[]; stderr: string } {
    writeFileSync(join(dir, "state.json"), state);
    writeFileSync(join(dir, "log"), "");
    const r = spawnSync("bash", [join(ROOT, "scripts", "operator"), ...args], {
        encoding: "utf8",
        env: {
            PATH: `${dir}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
            TASK_LOG: join(dir, "log"),
            STATE: join(dir, "state.json"),
            CI_REGISTRY_AUTH_CONNECT_TOKEN_REF: REF,
        },
    });
    return { code: r.status ?? -1, log: readFileSync(join(dir, "log"), "utf8").trim().split("\n"), stderr: r.stderr };
}

describe("the operator's tasks", () => {
    it("up reads the Connect token with op and hands it to pulumi in the environment, never on a command line or into the stack", () => {
        const r = task(["up", "indri"]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.log).toEqual([`op read ${REF}`, "pulumi stack select indri token=env", "pulumi up --yes token=env"]);
        expect(r.log.join("\n")).not.toContain(TOKEN);
        expect(r.log.some((l) => l.includes("config set"))).toBe(false);
    });

    it("rotate runs npm run rotate with the token in the environment, passing its arguments, and selects no stack", () => {
        const r = task(["rotate", "--dry-run"]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.log).toEqual([`op read ${REF}`, "npm run --silent rotate -- --dry-run token=env"]);
    });

    it("preview, up and recheck without a stack: the usage, and nothing runs", () => {
        const r = task(["up"]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/scripts\/operator up STACK/);
        expect(r.log).toEqual([""]);
    });

    it("serves a stack the tasks never heard of, as mise passes it: `mise run up builder`", () => {
        const r = task(["up", "builder"]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.log).toEqual([`op read ${REF}`, "pulumi stack select builder token=env", "pulumi up --yes token=env"]);
    });

    it("preview passes its arguments on to pulumi", () => {
        expect(task(["preview", "ringtail", "--diff"]).log).toContain("pulumi preview --diff token=env");
    });

    it("recheck re-runs the host check alone, found in the stack's state", () => {
        const urn = "urn:pulumi:ringtail::ci-registry-auth::ci-registry-auth:ssh:Runner$command:remote:Command::ringtail-verify";
        const state = JSON.stringify({
            deployment: {
                resources: [
                    {
                        urn: "urn:pulumi:ringtail::ci-registry-auth::ci-registry-auth:ssh:Runner$command:remote:Command::ringtail-env-file",
                        type: "command:remote:Command",
                    },
                    { urn, type: "command:remote:Command" },
                ],
            },
        });
        const r = task(["recheck", "ringtail"], state);
        expect(r.code, r.stderr).toBe(0);
        expect(r.log.at(-1)).toBe(`pulumi up --yes --target ${urn} --replace ${urn} token=env`);
    });

    it("recheck of a stack without a host check says so and changes nothing", () => {
        const r = task(["recheck", "indri"]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/stack indri has no host check/);
        expect(r.log.some((l) => l.startsWith("pulumi up"))).toBe(false);
    });

    it("without the token's reference: one error naming the setting, and pulumi never runs", () => {
        const r = spawnSync("bash", [join(ROOT, "scripts", "operator"), "up", "indri"], {
            encoding: "utf8",
            env: { PATH: `${dir}:${process.env["PATH"] ?? ""}`, TASK_LOG: join(dir, "log") },
        });
        expect(r.status).toBe(2);
        expect(r.stderr).toMatch(/CI_REGISTRY_AUTH_CONNECT_TOKEN_REF is not set\. Fix: set it in mise\.toml/);
    });
});

describe("mise.toml", () => {
    const toml = readFileSync(join(ROOT, "mise.toml"), "utf8");
    /** Each task's `run`, by name (the file's only tables besides [env]). */
    const run = new Map<string, string>();
    for (const m of toml.matchAll(/^\[tasks\.([\w-]+)\]\n(?:[^[\n][^\n]*\n)*?run = "([^"]*)"$/gm)) {
        run.set(m[1] ?? "", m[2] ?? "");
    }

    it("has one preview, up and re-check task each, taking the stack as its argument: a new stack file needs no new task", () => {
        expect(run.get("preview")).toBe("bash scripts/operator preview");
        expect(run.get("up")).toBe("bash scripts/operator up");
        expect(run.get("recheck")).toBe("bash scripts/operator recheck");
        // No task names a stack.
        for (const stack of projectStacks(ROOT)) {
            expect([...run.entries()].filter(([name, cmd]) => name.includes(stack) || cmd.includes(stack))).toEqual([]);
        }
    });

    it("has the rotation, and the token's reference as a setting", () => {
        expect(run.get("rotate")).toBe("bash scripts/operator rotate");
        expect(toml).toMatch(/^CI_REGISTRY_AUTH_CONNECT_TOKEN_REF = "op:\/\/[^"]+"$/m);
    });
});
