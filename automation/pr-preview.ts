/**
 * `npm run pr-preview -- --stack <name>`: in a Forgejo Actions job on a pull
 * request, previews the stack (diff on) and creates, or edits in place, the
 * one comment for that stack on the PR (found by a hidden marker): what `up`
 * would change, the key's fingerprint now against what the runner was last
 * given ("rotation pending" when they differ), days until expiry, warnings,
 * the diff, and a link to the run. When the preview fails the comment shows
 * the program's error (which names the setting and the fix) and the job
 * fails. Nothing it posts holds a secret.
 */
import { join } from "node:path";

import { Forgejo } from "./forgejo";
import { applyJobSettings, jobContext } from "./job";
import { openStack, previewFacts } from "./preview";
import { commentMarker, renderComment } from "./report";

const ROOT = join(__dirname, "..");

/** `--stack <name>` (once). */
export function stackArg(argv: string[]): string[] {
    const stacks: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "--stack" && argv[i + 1] !== undefined) stacks.push(argv[++i] ?? "");
        else if (a.startsWith("--stack=")) stacks.push(a.slice("--stack=".length));
        else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: --stack <name>`);
    }
    return stacks;
}

async function main(): Promise<void> {
    const [name, ...more] = stackArg(process.argv.slice(2));
    if (name === undefined || more.length > 0) throw new Error("usage: npm run pr-preview -- --stack <name> (one stack per job)");
    const job = jobContext(process.env, true);
    const env = applyJobSettings(ROOT, name, process.env);
    const stack = await openStack(name, ROOT, env);
    const facts = await previewFacts(stack);
    console.log(facts.diff);
    const forgejo = new Forgejo(job);
    const { comment, created } = await forgejo.upsertComment(job.pullRequest ?? 0, commentMarker(name), renderComment(facts, job.runUrl));
    console.log(
        `${created ? "Created" : "Edited"} the ${name} comment on PR #${String(job.pullRequest)}: ${comment.html_url ?? String(comment.id)}`,
    );
    if (!facts.ok) {
        console.error(`pulumi preview of ${name} failed:\n${facts.errors.join("\n")}`);
        process.exitCode = 1;
    }
}

if (require.main === module) {
    main().catch((err: unknown) => {
        console.error(err instanceof Error ? err.message : String(err));
        process.exitCode = 1;
    });
}
