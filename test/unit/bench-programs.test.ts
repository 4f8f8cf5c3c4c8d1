import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { partOf, partsOf, profileLines, type CpuProfile } from "../bench/cpu-profile";
import { EMPTY_PROGRAM, floorPrograms, indriComponentProgram } from "../bench/programs";

const ROOT = join(__dirname, "..", "..");

/**
 * `npm run bench` writes these programs beside copies of components/ and
 * sandbox/; nothing else compiles them, and the floors once failed for a
 * whole release after readKey changed. Each is type-checked here as the
 * bench lays it out, with this project's compiler options.
 */
describe("the bench's programs", () => {
    const dir = mkdtempSync(join(ROOT, ".bench-programs-"));
    afterAll(() => {
        rmSync(dir, { recursive: true, force: true });
    });

    it("type-check against this checkout's components", () => {
        const programs: Record<string, string> = {
            empty: EMPTY_PROGRAM,
            "indri-component": indriComponentProgram("/nonexistent/kubeconfig", "sha256:0123456789abcdef"),
            ...floorPrograms({
                key: {
                    connectUrl: "http://127.0.0.1:1",
                    connectToken: "t",
                    vault: "blumeops",
                    item: "zot-ci-apikey",
                    field: "credential",
                    expiryField: "expires",
                    expiryWarningDays: 14,
                    keyIdField: "zot-key-id",
                },
                registry: { settings: { url: "http://127.0.0.1:1", repository: "blumeops/runner-job-image" }, user: "zot-ci" },
                cluster: { kubeconfig: "/nonexistent/kubeconfig", context: "minikube", enableServerSideApply: true },
                runner: {
                    namespace: "forgejo-runner",
                    deployment: "forgejo-runner",
                    secretName: "zot-ci-api-key",
                    clusterSecretStore: "onepassword-blumeops",
                },
            }),
        };
        for (const [name, text] of Object.entries(programs)) {
            mkdirSync(join(dir, name));
            writeFileSync(join(dir, name, "index.ts"), text);
            symlinkSync(join(ROOT, "components"), join(dir, name, "components"));
            symlinkSync(join(ROOT, "sandbox"), join(dir, name, "sandbox"));
        }
        writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ extends: "../tsconfig.json", include: ["*/index.ts"] }));
        const tsc = spawnSync(join(ROOT, "node_modules", ".bin", "tsc"), ["--noEmit", "-p", join(dir, "tsconfig.json")], {
            cwd: ROOT,
            encoding: "utf8",
        });
        expect(tsc.stdout + tsc.stderr).toBe("");
        expect(tsc.status).toBe(0);
    }, 120_000);
});

/** The bench's CPU profile reader (test/bench/cpu-profile.ts) on a real profile of a small Node.js program. */
describe("the bench's CPU profile by part", () => {
    it("puts each sample's time in the part of its script, and the parts add up to the samples", () => {
        const dir = mkdtempSync(join(ROOT, ".cpu-profile-"));
        try {
            // A loop in a script of the project's own (not under node_modules), and one in a package's.
            const busy = "const t = Date.now(); while (Date.now() - t < 150) Math.sqrt(Math.random());";
            writeFileSync(join(dir, "own.js"), busy);
            mkdirSync(join(dir, "node_modules", "some-package"), { recursive: true });
            writeFileSync(join(dir, "node_modules", "some-package", "index.js"), busy);
            const run = spawnSync(
                process.execPath,
                ["--cpu-prof", `--cpu-prof-dir=${join(dir, "prof")}`, "-e", 'require("./own.js"); require("some-package");'],
                {
                    cwd: dir,
                    encoding: "utf8",
                },
            );
            expect(run.status, run.stderr).toBe(0);
            const [file] = readdirSync(join(dir, "prof"));
            const profile = JSON.parse(readFileSync(join(dir, "prof", file ?? ""), "utf8")) as CpuProfile;
            const { total, parts } = partsOf(profile);
            expect(parts.get("the program (components, index.ts)")).toBeGreaterThan(100);
            expect(parts.get("other packages")).toBeGreaterThan(100);
            const sum = [...parts.values()].reduce((a, b) => a + b, 0);
            expect(sum).toBeGreaterThan(0.5 * total);
            expect(sum).toBeLessThanOrEqual(total + 1);
            expect(profileLines("probe", join(dir, "prof"))[0]).toMatch(
                /^probe: \d+ ms of Node\.js: the program \(components, index\.ts\) \d+/,
            );
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("names Node's own, the transpiler's and pulumi's scripts", () => {
        expect(partOf("node:internal/modules/cjs/loader", "Module._load")).toBe("Node.js (module loader, built-ins)");
        expect(partOf("file:///p/node_modules/@swc/core/index.js", "transformSync")).toBe("TypeScript transpile (ts-node, swc)");
        expect(partOf("/p/node_modules/@pulumi/pulumi/runtime/rpc.js", "serializeProperty")).toBe("@pulumi/pulumi");
        expect(partOf("/p/node_modules/@grpc/grpc-js/build/src/channel.js", "x")).toBe("gRPC and protobuf");
        expect(partOf("", "(garbage collector)")).toBe("V8 (compile, native) and GC");
        expect(partOf("", "(idle)")).toBe("idle (waiting for the engine, plugins, network)");
        expect(partOf("/tmp/project/components/stack.ts", "defineStack")).toBe("the program (components, index.ts)");
    });
});
