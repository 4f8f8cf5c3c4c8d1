/**
 * One stack, judged on its own, for the PR comment and key-health alike:
 * opened, previewed, and (an SSH runner, when the job holds a check key)
 * re-read with the host's read-only check. Whatever fails at any step
 * becomes the stack's facts (`ok: false`, the step, the error naming the
 * fix), never an exception: one broken stack file cannot silence the
 * others. Each stack's facts say where its runner facts were read and
 * when ({@link RunnerRead}).
 */
import type { Stack } from "@pulumi/pulumi/automation";

import type { JobHome } from "./job";
import { openStack, previewFacts, runnerSettings } from "./preview";
import { rereadSshRunner } from "./reread";
import type { StackFacts } from "./report";

/** How a job reaches the stacks: the project, and from its HOME pulumi's extra environment and the check keys' files. */
export type CheckJob = { root: string } & Pick<JobHome, "env" | "checkKeys">;

/** The repository secret that holds a stack's check key: the stack's name in capitals, `-` and `.` as `_`, then `_CHECK_KEY`. */
export function checkKeySecret(stack: string): string {
    return `${stack.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_CHECK_KEY`;
}

/** An error as one short line of text: pulumi's own `error:` line when the CLI gave one, never a stack trace. */
export function errorText(err: unknown): string {
    const text = (err instanceof Error ? err.message : String(err)).replace(/\u001b\[[0-9;]*m/g, "");
    const line = /(?:^|\s)(error: .+)$/m.exec(text)?.[1];
    return (line ?? text.split("\n").find((l) => l.trim() !== "") ?? "no reason given").trim();
}

/** An error's own message, whole (the program's errors list every setting and its fix). */
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err)).trim() || "no reason given";

/** The facts of a stack that could not be checked at `step`, with the error and its fix. */
export function failedFacts(stack: string, step: NonNullable<StackFacts["failedAt"]>, error: string): StackFacts {
    return { stack, ok: false, failedAt: step, errors: [error], warnings: [], counts: {}, changes: [], now: {}, last: undefined, diff: "" };
}

/** Opens the stack, or says why not and what the operator runs. */
async function open(name: string, job: CheckJob): Promise<Stack | StackFacts> {
    try {
        return await openStack(name, job.root, job.env);
    } catch (err) {
        return failedFacts(
            name,
            "open",
            `${errorText(err)}. Fix: a new Pulumi.${name}.yaml needs its stack made and deployed once by the ` +
                `operator (pulumi stack init ${name}, then pulumi up --stack ${name}: README, "Add a runner"); ` +
                "otherwise check PULUMI_BACKEND_URL and the backend key CI reads it with.",
        );
    }
}

/**
 * When the stack's last update was written, from its current checkpoint
 * (the manifest's time): CI's backend key reads no history, so not from
 * `pulumi stack history`. Undefined when it cannot say.
 */
async function lastUpAt(stack: Stack): Promise<string | undefined> {
    try {
        const time = ((await stack.exportStack()).deployment as { manifest?: { time?: string } } | undefined)?.manifest?.time;
        return time === undefined ? undefined : new Date(time).toISOString();
    } catch {
        return undefined;
    }
}

/**
 * Checks one stack, and never throws: what fails at any step is the
 * stack's facts. A Kubernetes runner is read live by the preview itself. An
 * SSH runner is re-read with the check key when the job holds one; without
 * it, or when the re-read fails, its facts are the last `up`'s, and say so
 * with that `up`'s time.
 */
export function checkStack(name: string, job: CheckJob, now: () => Date = () => new Date()): Promise<StackFacts> {
    return checkSteps(name, job, now).catch((err: unknown) => failedFacts(name, "preview", message(err)));
}

async function checkSteps(name: string, job: CheckJob, now: () => Date): Promise<StackFacts> {
    const stack = await open(name, job);
    if (!("preview" in stack)) return stack;
    let facts: StackFacts;
    try {
        facts = await previewFacts(stack);
    } catch (err) {
        return failedFacts(name, "preview", errorText(err));
    }
    const readAt = now().toISOString();
    if (!facts.ok) return { ...facts, failedAt: "preview" };
    if (facts.now.runnerKind !== "ssh") return { ...facts, runnerRead: { how: "live", at: readAt } };
    const asOfLastUp = async (why: string): Promise<StackFacts> => {
        const at = await lastUpAt(stack);
        return { ...facts, runnerRead: { how: "last-up", ...(at !== undefined ? { at } : {}), why } };
    };
    const secret = checkKeySecret(name);
    const keyFile = job.checkKeys[secret];
    if (keyFile === undefined) return asOfLastUp(`the job holds no check key (secret ${secret})`);
    try {
        const runner = await runnerSettings(stack);
        if (runner.kind !== "ssh") return await asOfLastUp("the stack's runner settings are not an SSH runner's");
        const reread = rereadSshRunner(runner, facts.now.envVar ?? "ZOT_CI_API_KEY", facts.now.keyFingerprint ?? "", keyFile);
        console.log(`${name}: re-read ${runner.user}@${runner.host} with the check key`);
        const delivered = { changed: facts.now.delivered?.changed ?? false, ...reread.delivered };
        return {
            ...facts,
            now: {
                ...facts.now,
                hasKey: reread.hasKey,
                delivered,
                canPush: reread.hasKey && facts.now.registry?.acceptsKey === true,
            },
            runnerRead: { how: "reread", at: now().toISOString() },
        };
    } catch (err) {
        const last = await asOfLastUp("the re-read failed");
        return { ...last, ok: false, failedAt: "reread", errors: [message(err)] };
    }
}
