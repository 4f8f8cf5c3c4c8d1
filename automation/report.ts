/**
 * What a preview of one stack tells a reviewer, and the Markdown of the PR
 * comment and the key-health issue. Pure: tested without Forgejo or Pulumi.
 * Everything here is a fingerprint, a count, a name or a message the
 * program already printed; the key never passes through.
 */

import { expiryVerdict, judgeExpiry } from "../components/onepassword/item";
import { deliveredFingerprints, type StackOutputValues } from "../components/outputs";
import type { OtherKey } from "../components/registry/probe";

/** The stack's outputs, from a preview or from the last `up`, without what a preview does not know yet. */
export type KeyOutputs = Partial<StackOutputValues>;

/** The registry line of a comment: what it answered with the key and without. */
function registryLine(o: KeyOutputs): string | undefined {
    const r = o.registry;
    if (r === undefined) return undefined;
    const withKey = r.acceptsKey ? `accepts the key (${r.keyStatus})` : `**does not accept the key** (${r.keyStatus || "no answer"})`;
    const anonymous =
        r.anonymousStatus >= 200 && r.anonymousStatus < 300
            ? `**accepts uploads without credentials (${r.anonymousStatus}): its authentication is off**`
            : `refuses uploads without credentials (${r.anonymousStatus || "no answer"})`;
    return `- Registry ${code(r.url)} (${code(r.repository)}): ${withKey}; ${anonymous}. canPush: ${String(o.canPush)}`;
}

/** One key of another, as the comment and the issue name it: label, creation, last use; never a value. */
const otherKey = (k: OtherKey): string =>
    `"${k.label}" (${k.uuid}, created ${k.createdAt.slice(0, 10)}, last used ${k.lastUsed.startsWith("0001-") || k.lastUsed === "" ? "never" : k.lastUsed})`;

/** The keys line of a comment: the key's id and zot's expiry of it, and the user's other keys (what rotate revokes). */
function keysLine(o: KeyOutputs, user: string): string | undefined {
    const r = o.registry;
    if (r === undefined) return undefined;
    if (r.keysRead !== "ok") return `- Keys at zot: not read (${r.keysRead}).`;
    const others = r.otherKeys ?? [];
    return (
        `- Keys at zot: this key ${code(r.keyId ?? "unknown")}, expires at zot ${r.keyExpiresAt ?? "unknown"}; ` +
        (others.length === 0
            ? `${user} holds no other key.`
            : `**${user} holds ${others.length} other key(s)**: ${others.map(otherKey).join(", ")}: run \`mise run rotate\` to revoke them.`)
    );
}

/**
 * Where a stack's runner facts (hasKey, delivered) come from, and when:
 * read live by the preview (indri's cluster), re-read with the check key
 * (an SSH runner), or the last `up`'s (an SSH runner the job could not
 * re-read), with that `up`'s time when the backend records it.
 */
export type RunnerRead = { how: "live"; at: string } | { how: "reread"; at: string } | { how: "last-up"; at?: string; why: string };

/** The step at which a stack could not be checked. */
export type FailedStep = "open" | "preview" | "reread";

/** One stack's check, as the engine and the runner reported it. */
export interface StackFacts {
    stack: string;
    /** Every step ran to the end. */
    ok: boolean;
    /** Where it stopped, when it did not (automation/check-stack.ts). */
    failedAt?: FailedStep;
    /** Where the runner facts were read, and when. */
    runnerRead?: RunnerRead;
    /** Error diagnostics (the program's errors name the setting and the fix). */
    errors: string[];
    /** Warning diagnostics. */
    warnings: string[];
    /** Steps by operation, without `same` and `read`. */
    counts: Record<string, number>;
    /** The resources that would change. */
    changes: { op: string; type: string; name: string }[];
    /** Outputs as the preview computed them, read live (1Password; indri's cluster). */
    now: KeyOutputs;
    /** Outputs of the last `up`: what the runner was last given; undefined before the first. */
    last: KeyOutputs | undefined;
    /** The preview's own text, with the diff. */
    diff: string;
}

/** The fingerprints the last `up` delivered, by output name; none before the first. */
function lastDelivered(o: KeyOutputs): Record<string, string> {
    if (o.runnerKind === "kubernetes" && o.delivered !== undefined)
        return deliveredFingerprints({ runnerKind: o.runnerKind, delivered: o.delivered });
    if (o.runnerKind === "ssh" && o.delivered !== undefined)
        return deliveredFingerprints({ runnerKind: o.runnerKind, delivered: o.delivered });
    return {};
}

/** The delivered fingerprints that differ from the key now in 1Password; empty when the runner is current. */
export function rotationPending(facts: StackFacts): string[] {
    const now = facts.now.keyFingerprint;
    if (now === undefined || facts.last === undefined) return [];
    return Object.entries(lastDelivered(facts.last))
        .filter(([, fp]) => fp !== now)
        .map(([name]) => name);
}

/** Hidden marker of the one comment per stack on a PR. */
export const commentMarker = (stack: string): string => `<!-- ci-registry-auth:pr-preview:${stack} -->`;

/** Hidden marker of the one key-health issue. */
export const HEALTH_MARKER = "<!-- ci-registry-auth:key-health -->";

/** Forgejo's and Gitea's comment column is TEXT; stay well below GitHub's 65 536 characters too. */
export const COMMENT_LIMIT = 60_000;

const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;

/** The expiry line, judged by the program's one rule (components/onepassword/item.ts: expiryVerdict), naming the item's field. */
function expiryLine(o: KeyOutputs): string {
    const field = o.keyExpiryField ?? "expires";
    if (o.keyDaysUntilExpiry === undefined) {
        return `- Expiry: not recorded on the item (no field \`${field}\`, the \`expiryField\` setting), so not checked.`;
    }
    const window = o.keyExpiryWarningDays ?? 0;
    const verdict = expiryVerdict(o.keyDaysUntilExpiry, window);
    const when = o.keyExpiresAt !== undefined ? ` (${o.keyExpiresAt.slice(0, 10)}, field \`${field}\`)` : "";
    if (verdict.state === "expired") return `- Expiry: **expired**${when}: rotate now (README, "Operations").`;
    const warn = verdict.state === "soon" ? ` — **expires within ${window} days: rotate soon**` : "";
    return `- Expiry: ${verdict.days} day(s) left${when}${warn}.`;
}

/** The headline of a stack that could not be checked, by the step that failed. */
const FAILED: Record<FailedStep, string> = {
    open: "The stack could not be opened.",
    preview: "`pulumi preview` failed.",
    reread: "Re-reading the runner with the check key failed.",
};

/** Where the runner facts came from and when, as the comment and the issue say it. */
export function runnerReadText(read: RunnerRead | undefined): string {
    if (read === undefined) return "as the preview computed them (where they were read is not recorded)";
    if (read.how === "live") return `read from the runner by this preview, ${read.at}`;
    if (read.how === "reread") return `re-read from the runner with the check key, ${read.at}`;
    return `as of the last \`up\` (${read.at ?? "its time is not recorded"}), not read now: ${read.why}`;
}

/** The hasKey line: what was read, where, and when; never a value from the last `up` passed off as now. */
function hasKeyLine(facts: StackFacts, last: KeyOutputs): string {
    const read = facts.runnerRead;
    if (read?.how === "last-up") return `- hasKey ${runnerReadText(read)}: ${String(last.hasKey)}`;
    const now = facts.now.hasKey === undefined ? "known after `up`" : String(facts.now.hasKey);
    return `- hasKey ${runnerReadText(read)}: ${now}; at the last \`up\`: ${String(last.hasKey)}`;
}

/** The Markdown of a stack's PR comment, cut to `limit` characters by shortening the diff. */
export function renderComment(facts: StackFacts, runUrl: string | undefined, limit = COMMENT_LIMIT): string {
    const head: string[] = [commentMarker(facts.stack), `### ci-registry-auth · \`${facts.stack}\``, ""];
    if (!facts.ok) {
        head.push(`**${FAILED[facts.failedAt ?? "preview"]}**`, "");
        for (const e of facts.errors.length > 0 ? facts.errors : ["(no error message; see the run's log)"]) {
            head.push("```", e.trim(), "```");
        }
        head.push("");
    } else {
        const counts = Object.entries(facts.counts).filter(([, n]) => n > 0);
        head.push(counts.length === 0 ? "**No changes.**" : `**Changes:** ${counts.map(([op, n]) => `${n} to ${op}`).join(", ")}`);
        for (const c of facts.changes) head.push(`- ${c.op} ${code(c.type)} ${code(c.name)}`);
        head.push("");
        const now = facts.now.keyFingerprint ?? "unknown";
        head.push(`- Key in 1Password now: ${code(now)}`);
        if (facts.last === undefined) {
            head.push(`- Delivered: nothing yet: run \`pulumi up --stack ${facts.stack}\`.`);
        } else {
            const delivered = Object.entries(lastDelivered(facts.last));
            head.push(`- Last delivered: ${delivered.map(([n, fp]) => `${n} ${code(fp)}`).join(", ") || "none"}`);
            const pending = rotationPending(facts);
            if (pending.length > 0) {
                head.push(
                    `- **Rotation pending: run \`pulumi up --stack ${facts.stack}\`** (${pending.join(", ")} differ from 1Password).`,
                );
            }
            head.push(hasKeyLine(facts, facts.last));
        }
        head.push(expiryLine(facts.now));
        const registry = registryLine(facts.now);
        if (registry !== undefined) head.push(registry);
        const keys = keysLine(facts.now, facts.now.registryUser ?? "the registry user");
        if (keys !== undefined) head.push(keys);
        head.push("");
    }
    if (facts.warnings.length > 0) {
        head.push("**Warnings**", "");
        for (const w of facts.warnings) head.push(`- ${w.trim().replace(/\n+/g, " ")}`);
        head.push("");
    }
    const tail = runUrl !== undefined ? ["", "", `[The run](${runUrl})`] : [];
    const open = "\n<details><summary>Full preview</summary>\n\n```diff\n";
    const close = "\n```\n</details>";
    const fixed = head.join("\n") + open + close + tail.join("\n");
    const room = limit - fixed.length;
    let diff = facts.diff.replace(/```/g, "'''").trimEnd();
    if (diff.length > room) {
        const note = "\n… (cut to fit the comment; the run's log has it all)";
        diff = diff.slice(0, Math.max(0, room - note.length)) + note;
    }
    return head.join("\n") + open + diff + close + tail.join("\n");
}

/** What key-health reports for one stack, if anything is wrong. */
export function healthProblems(facts: StackFacts): string[] {
    if (!facts.ok) {
        const what = { open: "the stack could not be opened", preview: "the preview failed", reread: "re-reading the runner failed" }[
            facts.failedAt ?? "preview"
        ];
        return [`${what}: ${facts.errors.map((e) => e.trim().replace(/\n+/g, " ")).join(" / ") || "see the run's log"}`];
    }
    const problems: string[] = [];
    const { keyDaysUntilExpiry: days, keyExpiryWarningDays: window } = facts.now;
    const item = days !== undefined && window !== undefined ? expiryVerdict(days, window) : undefined;
    if (item?.state === "expired") {
        problems.push(
            `the key has expired (1Password's field \`${facts.now.keyExpiryField ?? "expires"}\`): rotate it now (README, "Operations")`,
        );
    } else if (item?.state === "soon") {
        problems.push(`the key expires in ${item.days} day(s) (warning window ${String(window)}): rotate it (README, "Operations")`);
    }
    if (facts.now.hasKey !== true) {
        const route = facts.now.delivered?.jobRoute;
        problems.push(
            `the runner lacks the key (hasKey ${String(facts.now.hasKey)}${typeof route === "string" ? `; jobs: ${route}` : ""})`,
        );
    }
    const registry = facts.now.registry;
    if (registry !== undefined && !registry.acceptsKey) {
        problems.push(`the registry does not accept the key, so no job can push: ${registry.verdict}`);
    }
    const others = registry?.otherKeys ?? [];
    if (others.length > 0) {
        const user = facts.now.registryUser ?? "the registry user";
        problems.push(
            `${user} holds ${others.length} key(s) besides the delivered one, each able to push: ${others.map(otherKey).join(", ")}; ` +
                "run `mise run rotate`, which revokes every other key",
        );
    }
    const zotExpiry = registry?.keyExpiresAt;
    if (registry !== undefined && zotExpiry !== undefined && zotExpiry !== "never" && zotExpiry !== "unknown" && window !== undefined) {
        // The same rule as the item's expiry, against zot's own date, as of the probe.
        const zot = judgeExpiry(new Date(zotExpiry), new Date(registry.checkedAt), window);
        if (zot.state === "soon" || zot.state === "expired") {
            problems.push(
                `zot expires the key ${zot.state === "expired" ? "now" : `in ${zot.days} day(s)`}, on ${zotExpiry.slice(0, 10)} ` +
                    `(warning window ${window}), whatever 1Password records: run \`mise run rotate\``,
            );
        }
    }
    if (registry !== undefined && registry.anonymousStatus >= 200 && registry.anonymousStatus < 300) {
        problems.push(
            `**alarm**: ${registry.url} accepts an upload to ${registry.repository} without credentials (${registry.anonymousStatus}): anyone can push`,
        );
    }
    const checkKey = facts.now.runnerKind === "ssh" ? facts.now.delivered?.checkKey : undefined;
    if (typeof checkKey === "string" && checkKey.startsWith("unrestricted")) {
        problems.push(`key-health's SSH key is ${checkKey}: restrict it on the host (README, "Trust model")`);
    }
    const pending = rotationPending(facts);
    if (pending.length > 0) problems.push(`rotation pending: run \`pulumi up --stack ${facts.stack}\``);
    const counts = Object.entries(facts.counts).filter(([, n]) => n > 0);
    if (counts.length > 0) {
        problems.push(
            `pending changes: ${counts.map(([op, n]) => `${n} to ${op}`).join(", ")} (run \`pulumi preview --stack ${facts.stack}\`)`,
        );
    }
    return problems;
}

/** The key-health issue's title and body. */
export function renderHealthIssue(all: StackFacts[], runUrl: string | undefined): { title: string; body: string } {
    const lines = [HEALTH_MARKER, "ci-registry-auth's scheduled check found:", ""];
    for (const facts of all) {
        const problems = healthProblems(facts);
        lines.push(`**${facts.stack}**: ${problems.length === 0 ? "healthy" : ""}`);
        for (const p of problems) lines.push(`- ${p}`);
        if (facts.ok) lines.push(`_The runner's facts: ${runnerReadText(facts.runnerRead)}._`);
        lines.push("");
    }
    if (runUrl !== undefined) lines.push(`[The run](${runUrl})`, "");
    lines.push("This issue is edited by each check and closed when all is well again.");
    return { title: "ci-registry-auth: the zot CI key needs attention", body: lines.join("\n") };
}
