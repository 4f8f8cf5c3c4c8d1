/**
 * The project's Forgejo workflows as text (README, "CI and trust"): what an
 * attacker's event can put into a shell, and which events run them.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const DIR = join(__dirname, "..", "..", ".forgejo", "workflows");

interface Step {
    name?: string;
    run?: string;
    env?: Record<string, string>;
}
interface Workflow {
    on: Record<string, unknown>;
    jobs: Record<string, { steps: Step[] }>;
}

const workflows = readdirSync(DIR)
    .filter((f) => f.endsWith(".yaml"))
    .map((file) => ({ file, text: readFileSync(join(DIR, file), "utf8") }));

/** Every `run:` script of every job, named for the failure message. */
const scripts = workflows.flatMap(({ file, text }) =>
    Object.entries((parse(text) as Workflow).jobs).flatMap(([job, { steps }]) =>
        steps.filter((s) => s.run !== undefined).map((s) => ({ where: `${file} ${job} "${s.name ?? ""}"`, run: s.run ?? "" })),
    ),
);

describe("the workflows", () => {
    it("are the two the README names", () => {
        expect(workflows.map((w) => w.file).sort()).toEqual(["key-health.yaml", "preview.yaml"]);
    });

    it("splice no expression into a shell script: event fields reach it through env:", () => {
        expect(scripts.length).toBeGreaterThan(0);
        for (const { where, run } of scripts) expect(run, where).not.toContain("${{");
    });

    it("never run on pull_request_target, which would hand a fork's code this repository's secrets", () => {
        for (const { file, text } of workflows) {
            expect(Object.keys((parse(text) as Workflow).on), file).not.toContain("pull_request_target");
        }
    });
});
