/**
 * The README's quick start, run as written: every `sh` block of "Quick start
 * on the real runners", in order, as one bash script, against the sandbox
 * (Connect emulator, the cluster as indri, the sandbox's ringtail, the S3
 * backend, the registry). So the README cannot drift from what works.
 *
 * What differs from the real first day, and only this (each a literal
 * substitution or a part of the world, listed here):
 * - `op` is a stand-in: `op read` answers the two references from a file;
 *   `op vault create` finds the vault the emulator was seeded with (creating
 *   a vault is an account operation Connect does not serve); `op item move`
 *   moves the item through Connect's API (read, create in the destination,
 *   delete in the source), as the signed-in account would.
 * - Addresses: `https://connect.ops.eblu.me` is the emulator, the MinIO login
 *   URL the sandbox's S3 bucket, `~/.ssh/ci-registry-auth` the sandbox host's
 *   root key, `"ssh-ed25519 AAAA..."` its host key; `npm ci` is skipped (the
 *   checkout's node_modules are linked); `pulumi up`'s prompt is answered
 *   yes (PULUMI_SKIP_CONFIRMATIONS: there is no terminal).
 * - The committed stack files: ringtail's `host` is the sandbox host's
 *   address, and both name the sandbox's registry (as an operator commits
 *   `registry.url`).
 * - What the README says to do in Git: ESO's store reads `blumeops-ci` too,
 *   and indri's runner config forwards the key (container.options).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, appendFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { fingerprint } from "../../components/fingerprint";
import { Cluster, FORWARDING_RUNNER_CONFIG } from "../../sandbox/cluster";
import { spawnEmulator, type EmulatorProcess } from "../../sandbox/connect-emulator";
import { copyProjectTree, pluginHome, PROBE_REPOSITORY, providerPluginDir } from "../../sandbox/project-stack";
import { startRegistry, type Registry } from "../../sandbox/registry";
import { Ringtail } from "../../sandbox/ringtail";
import { S3Server } from "../../sandbox/s3";
import { SshAgent } from "../../sandbox/ssh-agent";
import { findLeaks } from "../support/leaks";

const ROOT = join(__dirname, "..", "..");
const ADMIN = "sandbox-connect-token-account";
const OPERATOR = "sandbox-connect-token-operator-quickstart";
const KEY = "zak_quickstart_4e3d2c1b0a9f8e7d6c5b4a39";
const PASSPHRASE = "quickstart-passphrase-8b7a6c5d";

let emulator: EmulatorProcess;
let cluster: Cluster;
let host: Ringtail;
let s3: S3Server;
let registry: Registry;
let agent: SshAgent;
let work: string;
let project: string;
/** The operator's PULUMI_HOME (the plugins, and the login the quick start made). */
let pulumiHome: string;
let run: { code: number; output: string; script: string };

/** The quick start's `sh` blocks, in order. */
function quickStartScript(readme: string): string {
    const start = readme.indexOf("## Quick start on the real runners");
    const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
    return [...section.matchAll(/^( *)```sh\n([\s\S]*?)^\1```$/gm)]
        .map((m) =>
            (m[2] ?? "")
                .split("\n")
                .map((l) => l.slice((m[1] ?? "").length))
                .join("\n"),
        )
        .join("\n");
}

/** The `op` stand-in (a Node.js script), reading its answers and the account's token from `dataFile`. */
function opStandIn(dataFile: string): string {
    return `#!/usr/bin/env node
const fs = require("fs");
const data = JSON.parse(fs.readFileSync(${JSON.stringify(dataFile)}, "utf8"));
const [cmd, sub, ...rest] = process.argv.slice(2);
const flag = (name) => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1] : undefined; };
const api = async (method, path, body) => {
    const r = await fetch(data.url + path, { method, headers: { Authorization: "Bearer " + data.token, "Content-Type": "application/json" }, body: body && JSON.stringify(body) });
    if (!r.ok) { console.error("op (stand-in): Connect answered " + r.status + " to " + method + " " + path); process.exit(1); }
    return r.status === 204 ? undefined : r.json();
};
const vault = async (name) => { const v = (await api("GET", "/v1/vaults?filter=" + encodeURIComponent('title eq "' + name + '"')))[0]; if (!v) { console.error("op (stand-in): no vault " + name); process.exit(1); } return v; };
(async () => {
    if (cmd === "read") {
        const value = data.refs[sub];
        if (value === undefined) { console.error("op (stand-in): no item at " + sub); process.exit(1); }
        process.stdout.write(value + "\\n");
    } else if (cmd === "vault" && sub === "create") {
        const v = await vault(rest[0]);
        console.log("vault " + v.name + " (" + v.id + ")");
    } else if (cmd === "item" && sub === "move") {
        const from = await vault(flag("--current-vault")), to = await vault(flag("--destination-vault"));
        const found = (await api("GET", "/v1/vaults/" + from.id + "/items?filter=" + encodeURIComponent('title eq "' + rest[0] + '"')))[0];
        if (!found) { console.error("op (stand-in): no item " + rest[0] + " in " + from.name); process.exit(1); }
        const item = await api("GET", "/v1/vaults/" + from.id + "/items/" + found.id);
        const { id, vault: _v, version, createdAt, updatedAt, ...rest2 } = item;
        await api("POST", "/v1/vaults/" + to.id + "/items", { ...rest2, vault: { id: to.id } });
        await api("DELETE", "/v1/vaults/" + from.id + "/items/" + found.id);
        console.log("moved " + rest[0] + " to " + to.name);
    } else {
        console.error("op (stand-in): not served: " + process.argv.slice(2).join(" "));
        process.exit(2);
    }
})();
`;
}

beforeAll(async () => {
    emulator = await spawnEmulator({
        token: ADMIN,
        key: KEY,
        expires: new Date(Date.now() + 80 * 86_400_000),
        // The CI vault as `op vault create` leaves it (empty), and the operator's token on it (read and write).
        otherVaults: [{ name: "blumeops-ci", items: [] }],
        tokens: [{ token: OPERATOR, vaults: ["blumeops-ci"], write: true }],
    });
    cluster = Cluster.start();
    // What the README's step 1 and "On each runner" have the operator change in Git: ESO reads the CI vault, jobs get the key.
    cluster.applyIndriWorld({
        connectUrl: emulator.url,
        connectToken: ADMIN,
        runnerConfig: FORWARDING_RUNNER_CONFIG,
        vaults: { blumeops: 1, "blumeops-ci": 2 },
    });
    host = Ringtail.start();
    s3 = await S3Server.start(17072, { project: "ci-registry-auth" });
    work = mkdtempSync(join(tmpdir(), "cra-quickstart-"));
    registry = await startRegistry(join(work, "registry"), "127.0.0.1", 5006, "zot-ci", KEY);
    agent = await SshAgent.start([]);

    // The operator's checkout, as committed (plus the sandbox's addresses: see the header).
    project = join(work, "project");
    copyProjectTree(project);
    symlinkSync(join(ROOT, "node_modules"), join(project, "node_modules"));
    const ringtailFile = join(project, "Pulumi.ringtail.yaml");
    writeFileSync(ringtailFile, readFileSync(ringtailFile, "utf8").replace(/^ {4}host: ringtail$/m, `    host: ${host.facts.host}`));
    for (const stack of ["indri", "ringtail"]) {
        appendFileSync(
            join(project, `Pulumi.${stack}.yaml`),
            `  ci-registry-auth:registry:\n    url: ${registry.url}\n    repository: ${PROBE_REPOSITORY}\n`,
        );
    }
    const home = join(work, "home");
    mkdirSync(join(home, ".kube"), { recursive: true });
    copyFileSync(cluster.kubeconfig, join(home, ".kube", "config"));

    const bin = join(work, "bin");
    mkdirSync(bin);
    const data = join(work, "op-data.json");
    writeFileSync(
        data,
        JSON.stringify({
            url: emulator.url,
            token: ADMIN,
            refs: {
                "op://blumeops/ci-registry-auth-connect/credential": OPERATOR,
                "op://blumeops/ci-registry-auth-passphrase/password": PASSPHRASE,
            },
        }),
        { mode: 0o600 },
    );
    writeFileSync(join(bin, "op"), opStandIn(data));
    chmodSync(join(bin, "op"), 0o755);

    const substitutions: [string | RegExp, string][] = [
        [/^npm ci$/m, ": npm ci: node_modules linked"],
        ["https://connect.ops.eblu.me", emulator.url],
        ["s3://pulumi-state?endpoint=https://minio.ops.eblu.me&region=us-east-1&use_path_style=true", s3.backendUrl],
        ["~/.ssh/ci-registry-auth ", `${host.facts.privateKeyFile} `],
        ['"ssh-ed25519 AAAA..."', JSON.stringify(host.facts.hostKey)],
    ];
    pulumiHome = pluginHome(work, providerPluginDir(), join(ROOT, "node_modules"));
    let script = quickStartScript(readFileSync(join(ROOT, "README.md"), "utf8"));
    for (const [from, to] of substitutions) {
        const before = script;
        script = script.replace(from, to);
        expect(script, `the quick start no longer holds ${String(from)}`).not.toBe(before);
    }
    const r = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
        cwd: project,
        encoding: "utf8",
        // Not a socket on stdin (Node's pipes are), which bash takes for sshd's and then reads bashrc.
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 600_000,
        env: {
            PATH: `${bin}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
            HOME: home,
            PULUMI_HOME: pulumiHome,
            PULUMI_SKIP_UPDATE_CHECK: "true",
            // The operator's "yes" at `pulumi up`'s prompt (no terminal here).
            PULUMI_SKIP_CONFIRMATIONS: "true",
            SSH_AUTH_SOCK: agent.socket,
            ...s3.env("operator"),
        },
    });
    run = { code: r.status ?? -1, output: `${r.stdout}\n${r.stderr}`, script };
}, 900_000);

afterAll(async () => {
    await (agent as SshAgent | undefined)?.stop();
    await (registry as Registry | undefined)?.stop();
    (host as Ringtail | undefined)?.stop();
    (cluster as Cluster | undefined)?.stop();
    (cluster as Cluster | undefined)?.remove();
    await (s3 as S3Server | undefined)?.stop();
    (s3 as S3Server | undefined)?.remove();
    await (emulator as EmulatorProcess | undefined)?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

/** A stack's outputs, read with the operator's environment as the quick start left it. */
function outputs(stack: string): Record<string, unknown> {
    const r = spawnSync("pulumi", ["stack", "output", "--json", "--stack", stack], {
        cwd: project,
        encoding: "utf8",
        env: {
            ...process.env,
            PULUMI_HOME: pulumiHome,
            PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
            PULUMI_BACKEND_URL: s3.backendUrl,
            ...s3.env("operator"),
        },
    });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe("the README's quick start, run as written against the sandbox", () => {
    it("runs to the end", () => {
        expect(run.code, `${run.output.slice(-6000)}\n--- the script:\n${run.script}`).toBe(0);
    });

    it("leaves both runners holding the key, their jobs seeing it, and the registry accepting it", () => {
        const fp = fingerprint(KEY);
        for (const stack of ["indri", "ringtail"]) {
            expect(outputs(stack), stack).toMatchObject({ keyFingerprint: fp, hasKey: true, canPush: true });
        }
    });

    it("leaves the item in the CI vault only, and stack files to commit: encryptionsalt, the CI vault, ringtail's keys, no URL", async () => {
        const vaults = (await fetch(`${emulator.url}/v1/vaults`, { headers: { Authorization: `Bearer ${ADMIN}` } }).then((r) =>
            r.json(),
        )) as { id: string; name: string }[];
        const titles = async (name: string): Promise<string[]> => {
            const v = vaults.find((x) => x.name === name);
            const items = (await fetch(`${emulator.url}/v1/vaults/${v?.id ?? ""}/items`, {
                headers: { Authorization: `Bearer ${ADMIN}` },
            }).then((r) => r.json())) as { title: string }[];
            return items.map((i) => i.title);
        };
        expect(await titles("blumeops-ci")).toEqual(["zot-ci-apikey"]);
        expect(await titles("blumeops")).not.toContain("zot-ci-apikey");
        for (const stack of ["indri", "ringtail"]) {
            const file = readFileSync(join(project, `Pulumi.${stack}.yaml`), "utf8");
            expect(file, stack).toMatch(/^encryptionsalt: /m);
            expect(file, stack).toMatch(/^ {2}ci-registry-auth:vault: blumeops-ci$/m);
            expect(file, stack).not.toMatch(/onepassword:url:/);
        }
        const ringtail = readFileSync(join(project, "Pulumi.ringtail.yaml"), "utf8");
        expect(ringtail).toContain(`hostKey: ${host.facts.hostKey}`);
        expect(ringtail).toContain(`checkKey: ${readFileSync(join(project, "ringtail-check.pub"), "utf8").trim()}`);
    });

    it("prints no key, token, passphrase or private key", () => {
        expect(
            findLeaks(
                { "the quick start's output": run.output },
                {
                    KEY,
                    ADMIN,
                    OPERATOR,
                    PASSPHRASE,
                    "the root key": readFileSync(host.facts.privateKeyFile, "utf8").split("\n")[1] ?? "",
                    "the check key": readFileSync(join(project, "ringtail-check"), "utf8").split("\n")[1] ?? "",
                },
            ),
        ).toEqual([]);
    });
});
