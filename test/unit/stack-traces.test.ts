/**
 * components/stack-traces.ts, in a Node.js process of its own loaded as
 * pulumi's runner loads the program (source-map-support, then ts-node):
 * the program's .ts frames keep their file and line, in an error's stack
 * and in the source position the SDK sends with a resource, and the SDK's
 * own frames are no longer mapped through its shipped source maps.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { lastLineOf, ROOT } from "../support/node-process";
const work = mkdtempSync(join(tmpdir(), "cra-stack-traces-"));
afterAll(() => {
    rmSync(work, { recursive: true, force: true });
});

// Line 6 makes the error, line 7 asks the SDK for the callsites it takes a resource's source position from.
// The SDK by its path: the fixture lives outside the project.
const FIXTURE = [
    `import * as pulumi from ${JSON.stringify(join(ROOT, "node_modules", "@pulumi", "pulumi"))};`,
    "",
    "type Frame = { file?: string; line?: number };",
    "const sdk = pulumi.Resource as unknown as { callsites(): Frame[] };",
    "export function where(): { stack: string; frames: Frame[] } {",
    "    const stack = String(new Error('here').stack);",
    "    const frames = sdk.callsites();",
    "    return { stack, frames };",
    "}",
    "",
].join("\n");

interface Seen {
    prepareStackTrace: string;
    stack: string;
    frames: { file?: string; line?: number }[];
}

/** The fixture's stack and callsites, with `preload` after what pulumi's runner installs and loads. */
function seen(preload: string[]): Seen {
    const fixture = join(work, "fixture.ts");
    writeFileSync(fixture, FIXTURE);
    const script = `const { where } = require(${JSON.stringify(fixture)}); const w = where(); console.log(JSON.stringify({ prepareStackTrace: typeof Error.prepareStackTrace, ...w }));`;
    // The SDK's runner installs source-map-support, registers ts-node and loads its runtime before the program.
    return JSON.parse(lastLineOf(script, ["@pulumi/pulumi", ...preload], ["source-map-support/register"])) as Seen;
}

describe("components/stack-traces.ts", () => {
    // One process each, without and with the module, read by both tests.
    let runs: { before: Seen; after: Seen } | undefined;
    const both = (): { before: Seen; after: Seen } => (runs ??= { before: seen([]), after: seen(["./components/stack-traces.ts"]) });

    it("keeps the program's .ts file and line in error stacks and in the SDK's callsites", () => {
        const { before, after } = both();
        for (const s of [before, after]) {
            expect(s.stack).toMatch(/fixture\.ts:6:\d+\)/);
            // The first frame outside the SDK is the fixture's line 7, as a resource's source position would be.
            const own = s.frames.find((f) => f.file?.endsWith("fixture.ts") === true);
            expect(own).toEqual({ file: join(work, "fixture.ts"), line: 7, column: expect.any(Number) as number });
        }
    });

    it("takes both libraries' hooks away: the SDK's frames name its .js files, unmapped", () => {
        const { before, after } = both();
        expect(before.prepareStackTrace).toBe("function");
        expect(after.prepareStackTrace).toBe("undefined");
        // source-map-support maps the SDK's callsites() through resource.js.map to its .ts source; Node.js leaves it.
        const sdkFrame = (s: Seen): string | undefined =>
            s.frames.map((f) => f.file ?? "").find((f) => f.includes("/node_modules/@pulumi/"));
        expect(sdkFrame(before)).toMatch(/@pulumi\/resource\.ts$/);
        expect(sdkFrame(after)).toMatch(/node_modules\/@pulumi\/pulumi\/resource\.js$/);
    });
});
