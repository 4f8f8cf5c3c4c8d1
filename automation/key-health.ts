/**
 * `npm run key-health [-- --stack <name> ...]` (default: every
 * `Pulumi.<stack>.yaml` of the project): the scheduled check. Previews each
 * stack (which reads 1Password and indri's cluster live), re-reads each SSH
 * runner with key-health's restricted key (the host's forced read-only
 * check; nothing is delivered and no state is written), and keeps one issue
 * (found by a hidden marker and its author) in step: opened or edited when
 * a key expires within its `expiryWarningDays`, a runner lacks the key
 * (`hasKey` false), or a preview shows pending changes; closed when all is
 * well again. Each stack is checked on its own (automation/check-stack.ts):
 * one that cannot be opened, parsed, previewed or re-read is a problem in
 * the issue, naming the stack and the fix, and the others are still
 * checked. Fails the job when a stack could not be checked.
 */
import { join } from "node:path";

import { checkStack } from "./check-stack";
import { Forgejo } from "./forgejo";
import { jobContext, prepareJobHome, projectStacks, stackArg } from "./job";
import { HEALTH_MARKER, healthProblems, renderHealthIssue, type StackFacts } from "./report";

const ROOT = join(__dirname, "..");

async function main(): Promise<void> {
    const names = stackArg(process.argv.slice(2));
    const job = jobContext(process.env, false);
    const home = prepareJobHome(process.env, ROOT);
    console.log(
        home.plugins.length > 0
            ? `Provider plugins checked and installed for this job: ${home.plugins.join(", ")}`
            : "No PULUMI_PLUGIN_DIR: pulumi installs its plugins into this job's own PULUMI_HOME",
    );
    const all: StackFacts[] = [];
    try {
        // Each stack on its own: one that cannot be opened, parsed, previewed or re-read is a problem in
        // the issue, and the next is still checked.
        for (const name of names.length > 0 ? names : projectStacks(ROOT)) {
            const facts = await checkStack(name, { root: ROOT, ...home });
            const problems = healthProblems(facts);
            console.log(`${name}: ${problems.length === 0 ? "healthy" : problems.join("; ")}`);
            all.push(facts);
        }
    } finally {
        home.dispose();
    }
    const forgejo = new Forgejo(job);
    const existing = await forgejo.ownIssue(HEALTH_MARKER);
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

if (require.main === module) {
    main().catch((err: unknown) => {
        console.error(err instanceof Error ? err.message : String(err));
        process.exitCode = 1;
    });
}
