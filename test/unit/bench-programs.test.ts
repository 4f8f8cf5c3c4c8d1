import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

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
