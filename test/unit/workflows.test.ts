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
    uses?: string;
    env?: Record<string, string>;
}
interface Workflow {
    on: Record<string, unknown>;
    permissions?: Record<string, string>;
    jobs: Record<string, { steps: Step[]; permissions?: unknown }>;
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

    it("give the job token the least each needs: read the code, and write PR comments (preview) or issues (key-health)", () => {
        const permissions = Object.fromEntries(workflows.map(({ file, text }) => [file, (parse(text) as Workflow).permissions]));
        expect(permissions).toEqual({
            "preview.yaml": { contents: "read", "pull-requests": "write" },
            "key-health.yaml": { contents: "read", issues: "write" },
        });
        for (const { file, text } of workflows) {
            for (const [job, j] of Object.entries((parse(text) as Workflow).jobs)) expect(j.permissions, `${file} ${job}`).toBeUndefined();
        }
    });

    it("hand the repository's secrets as a whole only to key-health's own step, as the check keys the program keeps; a preview holds no check key", () => {
        const wholesale = workflows.flatMap(({ file, text }) =>
            Object.values((parse(text) as Workflow).jobs).flatMap(({ steps }) =>
                steps.flatMap((s) =>
                    Object.entries(s.env ?? {})
                        .filter(([, v]) => /toJSON\(\s*secrets\s*\)/.test(v))
                        .map(([name]) => `${file} "${s.name ?? ""}" ${name}`),
                ),
            ),
        );
        expect(wholesale).toEqual([
            'key-health.yaml "Preview every stack, re-read each SSH runner, keep the issue in step" CI_REGISTRY_AUTH_CHECK_KEYS',
        ]);
        const preview = workflows.find((w) => w.file === "preview.yaml")?.text ?? "";
        expect(preview).not.toMatch(/CHECK_KEY/);
    });

    it("give each job that holds secrets a HOME of its own before anything else runs, and a PULUMI_HOME of its own (automation/job.ts)", () => {
        for (const { file, text } of workflows) {
            for (const [job, { steps }] of Object.entries((parse(text) as Workflow).jobs)) {
                const holdsSecrets = steps.some((s) => Object.values(s.env ?? {}).some((v) => v.includes("secrets.")));
                if (!holdsSecrets) continue;
                expect(steps[0]?.run, `${file} ${job}`).toMatch(/echo "HOME=\$RUNNER_TEMP\/home" >>"\$GITHUB_ENV"/);
                expect(steps[1]?.uses, `${file} ${job}`).toBe("actions/checkout@v4");
                const env = steps.find((s) => s.env?.["FORGEJO_TOKEN"] !== undefined)?.env ?? {};
                expect(env, `${file} ${job}`).not.toHaveProperty("PULUMI_HOME");
                expect(env, `${file} ${job}`).toMatchObject({ PULUMI_PLUGIN_DIR: "${{ vars.PULUMI_PLUGIN_DIR }}" });
            }
        }
    });
});
