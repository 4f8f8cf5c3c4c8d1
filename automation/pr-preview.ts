/**
 * `npm run pr-preview [-- --stack <name> ...]` (default: every
 * `Pulumi.<stack>.yaml` of the project): in a Forgejo Actions job on a pull
 * request, previews each stack (diff on) and creates, or edits in place, the
 * one comment for that stack on the PR (found by a hidden marker and its
 * author): what `up` would change, the key's fingerprint now against what
 * the runner was last given ("rotation pending" when they differ), days
 * until expiry, warnings, the diff, and a link to the run. When the preview
 * fails the comment shows the program's error (which names the setting and
 * the fix) and the job fails. A pull request from a fork gets no secrets:
 * the job says so and stops. Nothing it posts holds a secret.
 */
import { join } from "node:path";

import { checkStack } from "./check-stack";
import { Forgejo } from "./forgejo";
import { jobContext, prepareJobHome, projectStacks, pullRequestFork, stackArg, type JobContext, type JobHome } from "./job";
import { commentMarker, renderComment } from "./report";

const ROOT = join(__dirname, "..");

/**
 * Checks one stack and keeps its comment in step; false when it could not
 * be checked. With the stack's check key (CI_REGISTRY_AUTH_CHECK_KEYS) an SSH runner
 * is re-read as key-health does; without one its comment says its runner
 * facts are the last `up`'s, with that time.
 */
async function previewStack(name: string, job: JobContext, home: JobHome, forgejo: Forgejo): Promise<boolean> {
    const facts = await checkStack(name, { root: ROOT, ...home });
    console.log(facts.diff);
    const { comment, created } = await forgejo.upsertComment(job.pullRequest ?? 0, commentMarker(name), renderComment(facts, job.runUrl));
    console.log(
        `${created ? "Created" : "Edited"} the ${name} comment on PR #${String(job.pullRequest)}: ${comment.html_url ?? String(comment.id)}`,
    );
    if (!facts.ok) console.error(`${name} could not be checked (${facts.failedAt ?? "preview"}):\n${facts.errors.join("\n")}`);
    return facts.ok;
}

async function main(): Promise<void> {
    const names = stackArg(process.argv.slice(2));
    const fork = pullRequestFork(process.env);
    if (fork !== undefined) {
        console.log(
            `Not previewing: this pull request's branch is in ${fork}, a fork. Forgejo gives a fork's pull request no secrets, ` +
                "and previews run only for branches of this repository: push the branch here to get one.",
        );
        return;
    }
    const job = jobContext(process.env, true);
    const home = prepareJobHome(process.env, ROOT);
    console.log(
        home.plugins.length > 0
            ? `Provider plugins checked and installed for this job: ${home.plugins.join(", ")}`
            : "No PULUMI_PLUGIN_DIR: pulumi installs its plugins into this job's own PULUMI_HOME",
    );
    const forgejo = new Forgejo(job);
    try {
        // Every stack of the project (one Pulumi.<stack>.yaml each) unless named: a new stack file gets its comment.
        // Each stack on its own: one that fails gets its comment with the error, and the next is still previewed.
        for (const name of names.length > 0 ? names : projectStacks(ROOT)) {
            const ok = await previewStack(name, job, home, forgejo).catch((err: unknown) => {
                console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
                return false;
            });
            if (!ok) process.exitCode = 1;
        }
    } finally {
        home.dispose();
    }
}

main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
});
