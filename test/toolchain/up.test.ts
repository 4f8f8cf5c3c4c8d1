/**
 * automation/up.ts against the real CLI and language host: one `pulumi up`
 * gives the same outputs as the Automation API's `stack.up()` (which asks
 * `pulumi stack output` for them afterwards), without the secret ones, hands
 * the engine events over as they come, and fails with pulumi's own error.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { LocalWorkspace, type EngineEvent, type Stack } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { pulumiErrors } from "../../automation/rotate";
import { upStack } from "../../automation/up";

const ROOT = join(__dirname, "..", "..");
const SECRET = "up-test-secret-4f1c9a";

describe("upStack (automation/up.ts)", () => {
    let work: string;
    let stack: Stack;

    const project = (index: string): string => {
        const dir = mkdtempSync(join(work, "project-"));
        symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
        writeFileSync(join(dir, "Pulumi.yaml"), "name: up-test\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n");
        writeFileSync(join(dir, "index.ts"), index);
        return dir;
    };
    const open = (dir: string, stackName = "up"): Promise<Stack> =>
        LocalWorkspace.createOrSelectStack(
            { stackName, workDir: dir },
            {
                envVars: { PULUMI_CONFIG_PASSPHRASE: "up-test", PULUMI_BACKEND_URL: `file://${join(work, "state")}` },
                secretsProvider: "passphrase",
            },
        );

    beforeAll(async () => {
        work = mkdtempSync(join(tmpdir(), "cra-up-test-"));
        mkdirSync(join(work, "state"));
        stack = await open(
            project(
                [
                    'import * as pulumi from "@pulumi/pulumi";',
                    "export const count = pulumi.output(2);",
                    'export const nested = { name: "probe", list: [1, "two"], flag: true };',
                    `export const hidden = pulumi.secret(${JSON.stringify(SECRET)});`,
                    `export const mixed = { shown: "yes", hidden: pulumi.secret(${JSON.stringify(SECRET)}) };`,
                    "",
                ].join("\n"),
            ),
        );
    }, 120_000);

    afterAll(() => {
        rmSync(work, { recursive: true, force: true });
    });

    it("returns the outputs `pulumi stack output` has, secret values left out, from one command", async () => {
        const events: EngineEvent[] = [];
        let stdout = "";
        const up = await upStack(stack, { onEvent: (e) => events.push(e), onOutput: (o) => (stdout += o) });
        const recorded = await stack.outputs();
        expect(up.outputs).toEqual({
            count: recorded["count"]?.value as unknown,
            nested: recorded["nested"]?.value as unknown,
            mixed: { shown: "yes" },
        });
        expect(recorded["hidden"]?.secret).toBe(true);
        expect(up.outputs).not.toHaveProperty("hidden");
        // Events came over as the run wrote them, its summary last.
        expect(events.some((e) => e.resourcePreEvent?.metadata.type === "pulumi:pulumi:Stack")).toBe(true);
        expect(events.some((e) => e.summaryEvent !== undefined)).toBe(true);
        expect(stdout).toBe(up.stdout);
        for (const text of [stdout, up.stderr, JSON.stringify(events), JSON.stringify(up.outputs)]) expect(text).not.toContain(SECRET);
    }, 180_000);

    it("gives the same outputs on a no-op up", async () => {
        const first = await upStack(stack);
        const again = await upStack(stack);
        expect(again.outputs).toEqual(first.outputs);
        expect(again.outputs["count"]).toBe(2);
    }, 180_000);

    it("fails with pulumi's error when the program fails", async () => {
        const failing = await open(project('throw new Error("the program refused: up-test");\n'), "failing");
        const err = await upStack(failing).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(Error);
        const message = (err as Error).message;
        expect(message).toContain("the program refused: up-test");
        expect(pulumiErrors(message)).toMatch(/^error: Running program .* failed with an unhandled exception/);
    }, 180_000);
});
