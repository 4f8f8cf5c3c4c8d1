/**
 * `npm run key-health [-- --stack <name> ...]` (default: indri and ringtail):
 * the scheduled check. Re-reads each runner without delivering (ringtail's
 * read-only host check is run again; indri's cluster is read by every
 * preview), previews each stack, and keeps one issue (found by a hidden
 * marker) in step: opened or edited when a key expires within its
 * `expiryWarningDays`, a runner lacks the key (`hasKey` false), or a preview
 * shows pending changes; closed when all is well again. Fails the job when
 * a stack could not be checked.
 */
import { join } from "node:path";

import { Forgejo } from "./forgejo";
import { applyJobSettings, jobContext } from "./job";
import { openStack, previewFacts, recheckRunner } from "./preview";
import { stackArg } from "./pr-preview";
import { HEALTH_MARKER, healthProblems, renderHealthIssue, type StackFacts } from "./report";

const ROOT = join(__dirname, "..");

async function checkStack(name: string): Promise<StackFacts> {
    const env = applyJobSettings(ROOT, name, process.env);
    const stack = await openStack(name, ROOT, env);
    try {
        const urn = await recheckRunner(stack);
        if (urn !== undefined) console.log(`${name}: re-read the runner (${urn})`);
    } catch (err) {
        return {
            stack: name,
            ok: false,
            errors: [
                `re-reading the runner failed: ${(err instanceof Error ? err.message : String(err)).split("\n").slice(0, 12).join("\n")}`,
            ],
            warnings: [],
            counts: {},
            changes: [],
            now: {},
            last: undefined,
            diff: "",
        };
    }
    return previewFacts(stack);
}

async function main(): Promise<void> {
    const names = stackArg(process.argv.slice(2));
    const job = jobContext(process.env, false);
    const all: StackFacts[] = [];
    for (const name of names.length > 0 ? names : ["indri", "ringtail"]) {
        const facts = await checkStack(name);
        const problems = healthProblems(facts);
        console.log(`${name}: ${problems.length === 0 ? "healthy" : problems.join("; ")}`);
        all.push(facts);
    }
    const forgejo = new Forgejo(job);
    const existing = (await forgejo.issues()).find((i) => i.body.includes(HEALTH_MARKER));
    const unhealthy = all.some((f) => healthProblems(f).length > 0);
    const { title, body } = renderHealthIssue(all, job.runUrl);
    if (unhealthy) {
        if (existing === undefined) {
            const issue = await forgejo.createIssue(title, body);
            console.log(`Opened issue #${issue.number}: ${issue.html_url ?? ""}`);
        } else {
            await forgejo.editIssue(existing.number, { title, body, state: "open" });
            console.log(`Updated issue #${existing.number}`);
        }
    } else if (existing?.state === "open") {
        await forgejo.editIssue(existing.number, { body, state: "closed" });
        console.log(`All is well: closed issue #${existing.number}`);
    } else {
        console.log("All is well.");
    }
    if (all.some((f) => !f.ok)) process.exitCode = 1;
}

main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
});
