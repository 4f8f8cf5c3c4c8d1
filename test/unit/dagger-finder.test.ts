/**
 * Where the sandbox finds the Dagger binaries (sandbox/dagger.ts): what the
 * Dagger tests' "not run: …" names say, and when they run.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { DAGGER_BINARIES, findDagger } from "../../sandbox/dagger";

const dirs: string[] = [];
const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "cra-dagger-finder-"));
    dirs.push(dir);
    return dir;
};
afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("findDagger", () => {
    it("names every missing binary, where it looked, the variable and the build that makes them", () => {
        const dir = tempDir();
        writeFileSync(join(dir, "dagger"), "");
        const found = findDagger({ CI_REGISTRY_AUTH_DAGGER: dir }, {});
        expect(found).toEqual({
            missing: expect.stringMatching(
                new RegExp(
                    `^dagger not found: dagger-engine, dagger-init, dnsname not in ${dir} \\(CI_REGISTRY_AUTH_DAGGER\\)\\. Fix: build them with \\.\\./shared/tools/build-dagger `,
                ),
            ) as unknown,
        });
    });

    it("without the variable looks in the cache's dagger/ and says the variable is not set", () => {
        const cache = tempDir();
        const found = findDagger({ CI_REGISTRY_AUTH_CACHE: cache }, {});
        expect("missing" in found && found.missing).toContain(`not in ${join(cache, "dagger")} (CI_REGISTRY_AUTH_DAGGER is not set)`);
    });

    it("with all four binaries, needs the engine's host tools, naming the package and sandbox/deps", () => {
        const dir = tempDir();
        for (const name of DAGGER_BINARIES) writeFileSync(join(dir, name), "");
        const tool = join(dir, "runc");
        expect(findDagger({ CI_REGISTRY_AUTH_DAGGER: dir }, { [tool]: "runc" })).toEqual({
            missing: `the engine's host tools are missing: ${tool} (runc). Fix: bash sandbox/deps`,
        });
        writeFileSync(tool, "");
        expect(findDagger({ CI_REGISTRY_AUTH_DAGGER: dir }, { [tool]: "runc" })).toEqual({ dir });
    });
});
