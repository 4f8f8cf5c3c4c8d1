/**
 * The whole-stack harness refuses to run without the two provider plugins
 * this project cannot build, naming what is missing and the fix, both from
 * code (providerPluginDir) and from `npm run test:full-stack`, before any
 * toolchain work.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { providerPluginDir } from "../../sandbox/project-stack";

const saved = process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"];
const dirs: string[] = [];

function pluginDir(...binaries: string[]): string {
    const dir = mkdtempSync(join(tmpdir(), "cra-plugins-"));
    dirs.push(dir);
    for (const b of binaries) {
        writeFileSync(join(dir, b), "#!/bin/sh\n");
        chmodSync(join(dir, b), 0o755);
    }
    return dir;
}

afterEach(() => {
    if (saved === undefined) delete process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"];
    else process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"] = saved;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("providerPluginDir", () => {
    it("without the variable names the plugin, the variable and the fix", () => {
        delete process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"];
        expect(() => providerPluginDir()).toThrow(
            /the pulumi-resource-command provider plugin[\s\S]*Fix:[\s\S]*CI_REGISTRY_AUTH_PROVIDER_PLUGINS/,
        );
    });

    it("refuses a directory without it", () => {
        process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"] = pluginDir("pulumi-resource-onepassword");
        expect(() => providerPluginDir()).toThrow(/the pulumi-resource-command provider plugin/);
    });

    it("returns the directory when it is there", () => {
        const dir = pluginDir("pulumi-resource-command");
        process.env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"] = dir;
        expect(providerPluginDir()).toBe(dir);
    });
});

describe("npm run test:full-stack without the plugins", () => {
    it("is refused also when only the cache's provider-plugins directory lacks them", () => {
        const cache = mkdtempSync(join(tmpdir(), "cra-cache-"));
        dirs.push(cache);
        const env: NodeJS.ProcessEnv = { ...process.env, CI_REGISTRY_AUTH_CACHE: cache };
        delete env["CI_REGISTRY_AUTH_PROVIDER_PLUGINS"];
        const r = spawnSync("bash", [join(__dirname, "..", "..", "scripts", "test"), "--full-stack"], { env, encoding: "utf8" });
        expect(r.status).toBe(2);
        expect(r.stderr).toContain(`pulumi-resource-command is not in ${cache}/provider-plugins`);
        expect(r.stdout).not.toContain("== tests");
    });

    it("exits 2 at once with the fix, and runs nothing", () => {
        const env = { ...process.env, CI_REGISTRY_AUTH_PROVIDER_PLUGINS: pluginDir("pulumi-resource-onepassword") };
        const r = spawnSync("bash", [join(__dirname, "..", "..", "scripts", "test"), "--full-stack"], { env, encoding: "utf8" });
        expect(r.status).toBe(2);
        expect(r.stderr).toMatch(/pulumi-resource-command is not in \/tmp\/cra-plugins-[\s\S]*Fix:/);
        expect(r.stdout).not.toContain("== tests");
    });
});
