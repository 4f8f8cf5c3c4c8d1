/**
 * Runs `pulumi preview` of one stack of this project through the Automation
 * API (the `pulumi` on PATH, the backend in PULUMI_BACKEND_URL) and gathers
 * what the PR comment and key-health report: counts and changing resources,
 * the outputs the preview computed live, the outputs of the last `up`,
 * warnings and errors (never debug diagnostics, which can carry secrets:
 * README, "Security notes"), and the diff text.
 *
 */
import { LocalWorkspace, type EngineEvent, type Stack } from "@pulumi/pulumi/automation";

import { readRunnerSettings, type RunnerConfig } from "../components/settings/config";

import { readOutputs } from "../components/outputs";

import type { StackFacts } from "./report";

/** Opens a stack of the project in `workDir`. */
export async function openStack(stackName: string, workDir: string, envVars: Record<string, string> = {}): Promise<Stack> {
    return LocalWorkspace.selectStack({ stackName, workDir }, { envVars });
}

/** A diagnostic's text without the CLI's color codes and trailing newline. */
const clean = (message: string): string =>
    message
        .replace(/\u001b\[[0-9;]*m/g, "")
        .replace(/<\{%[^%]*%\}>/g, "")
        .trim();

/** Previews `stack` (diff on) and gathers its facts; a failed preview gives `ok: false` with the errors. */
export async function previewFacts(stack: Stack): Promise<StackFacts> {
    const last = Object.fromEntries(Object.entries(await stack.outputs()).map(([k, v]) => [k, v.value as unknown]));
    const errors: string[] = [];
    const warnings: string[] = [];
    const changes: StackFacts["changes"] = [];
    let now: Record<string, unknown> = {};
    const onEvent = (e: EngineEvent): void => {
        const d = e.diagnosticEvent;
        if (d !== undefined && !d.ephemeral) {
            if (d.severity === "error") errors.push(clean(d.message));
            if (d.severity === "warning") warnings.push(clean(d.message));
        }
        const pre = e.resourcePreEvent?.metadata;
        if (pre !== undefined && !["same", "read", "refresh"].includes(pre.op) && pre.type !== "pulumi:pulumi:Stack") {
            changes.push({ op: pre.op, type: pre.type, name: pre.urn.split("::").pop() ?? pre.urn });
        }
        const out = e.resOutputsEvent?.metadata;
        if (out?.type === "pulumi:pulumi:Stack") {
            now = out.new?.outputs ?? {};
        }
    };
    let diff = "";
    let counts: Record<string, number> = {};
    let ok = true;
    try {
        const result = await stack.preview({ diff: true, color: "never", onEvent });
        diff = result.stdout;
        counts = Object.fromEntries(Object.entries(result.changeSummary).filter(([op]) => op !== "same" && op !== "read"));
    } catch (err) {
        ok = false;
        // The engine's error diagnostics carry the program's message (setting
        // and fix); the CLI's own text is the fallback.
        if (errors.length === 0)
            errors.push(
                clean(err instanceof Error ? err.message : String(err))
                    .split("\n")
                    .slice(0, 20)
                    .join("\n"),
            );
    }
    return {
        stack: stack.name,
        ok,
        errors: [...new Set(errors)],
        warnings: [...new Set(warnings)],
        counts,
        changes,
        now: readOutputs(now),
        last: Object.keys(last).length > 0 ? readOutputs(last) : undefined,
        diff,
    };
}

/** The stack's `runner` settings as the program reads them (defaults applied), from the stack's config. */
export async function runnerSettings(stack: Stack): Promise<RunnerConfig> {
    const raw = (await stack.getAllConfig())["ci-registry-auth:runner"]?.value;
    return readRunnerSettings(raw === undefined ? undefined : (JSON.parse(raw) as unknown));
}
