/**
 * The Forgejo client of the PR preview and key-health scripts against a real
 * Gitea (Forgejo's upstream, the same routes and auth header): one comment
 * per marker edited in place (also past the first page), other comments
 * left alone, the largest comment the renderer makes accepted whole, the
 * key-health issue opened, edited, closed and reopened, and errors that name
 * the route and status but never the token.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Forgejo, ForgejoError } from "../../automation/forgejo";
import { COMMENT_LIMIT, commentMarker, HEALTH_MARKER, renderComment, type StackFacts } from "../../automation/report";
import { Gitea, type GiteaRepo } from "../../sandbox/gitea";

let gitea: Gitea;
let repo: GiteaRepo;
let pr: number;
let forgejo: Forgejo;

beforeAll(async () => {
    gitea = await Gitea.start(13001);
    repo = await gitea.createRepo("api-probe");
    await gitea.api("POST", `/repos/${repo.fullName}/branches`, { new_branch_name: "change", old_branch_name: "main" });
    await gitea.api("POST", `/repos/${repo.fullName}/contents/CHANGE.md`, {
        branch: "change",
        message: "A change",
        content: Buffer.from("change\n").toString("base64"),
    });
    pr = await gitea.openPullRequest(repo, "change", "main", "A change");
    forgejo = new Forgejo({ serverUrl: gitea.url, repository: repo.fullName, token: gitea.token });
}, 120_000);

afterAll(async () => {
    await (gitea as Gitea | undefined)?.stop();
    (gitea as Gitea | undefined)?.remove();
}, 60_000);

describe("comments on a pull request", () => {
    it("creates the stack's comment once, then edits it in place; other comments stay", async () => {
        await forgejo.createComment(pr, "a reviewer's comment");
        const first = await forgejo.upsertComment(pr, commentMarker("indri"), `${commentMarker("indri")}\nfirst`);
        expect(first.created).toBe(true);
        const second = await forgejo.upsertComment(pr, commentMarker("indri"), `${commentMarker("indri")}\nsecond`);
        expect(second).toMatchObject({ created: false, comment: { id: first.comment.id } });
        const ringtail = await forgejo.upsertComment(pr, commentMarker("ringtail"), `${commentMarker("ringtail")}\nringtail`);
        expect(ringtail.created).toBe(true);
        const all = await forgejo.comments(pr);
        expect(all.map((c) => c.body)).toEqual([
            "a reviewer's comment",
            `${commentMarker("indri")}\nsecond`,
            `${commentMarker("ringtail")}\nringtail`,
        ]);
    });

    it("finds its comment in a long discussion (the comments route is not paged: one call returns all, once each)", async () => {
        for (let i = 0; i < 50; i++) await forgejo.createComment(pr, `comment ${i}`);
        const marker = "<!-- ci-registry-auth:pr-preview:late -->";
        const made = await forgejo.upsertComment(pr, marker, `${marker}\nv1`);
        const again = await forgejo.upsertComment(pr, marker, `${marker}\nv2`);
        expect(again).toMatchObject({ created: false, comment: { id: made.comment.id } });
        const all = await forgejo.comments(pr);
        expect(all.filter((c) => c.body.includes(marker))).toHaveLength(1);
        expect(new Set(all.map((c) => c.id)).size).toBe(all.length);
        expect(all.length).toBeGreaterThan(50);
    });

    it("accepts the largest comment the renderer makes, whole", async () => {
        const facts: StackFacts = {
            stack: "big",
            ok: true,
            errors: [],
            warnings: [],
            counts: { update: 1 },
            changes: [],
            now: { keyFingerprint: "sha256:1111111111111111" },
            last: undefined,
            diff: "~ a changed line\n".repeat(10_000),
        };
        const body = renderComment(facts, `${gitea.url}/run`);
        expect(body.length).toBeGreaterThan(COMMENT_LIMIT - 100);
        const { comment } = await forgejo.upsertComment(pr, commentMarker("big"), body);
        const stored = (await forgejo.comments(pr)).find((c) => c.id === comment.id);
        expect(stored?.body).toBe(body);
    });
});

describe("the key-health issue", () => {
    it("is opened, edited, closed and reopened, and found by its marker among other issues", async () => {
        await forgejo.createIssue("Someone else's issue", "unrelated");
        const issue = await forgejo.createIssue(
            "ci-registry-auth: the zot CI key needs attention",
            `${HEALTH_MARKER}\nindri: expires in 3 days`,
        );
        const found = (await forgejo.issues()).filter((i) => i.body.includes(HEALTH_MARKER));
        expect(found.map((i) => i.number)).toEqual([issue.number]);
        expect(await forgejo.editIssue(issue.number, { body: `${HEALTH_MARKER}\nall is well`, state: "closed" })).toMatchObject({
            state: "closed",
        });
        expect(await forgejo.editIssue(issue.number, { state: "open" })).toMatchObject({ state: "open" });
        // Pull requests are not issues here.
        expect((await forgejo.issues()).map((i) => i.number)).not.toContain(pr);
    });
});

describe("errors", () => {
    it("name the method, route and status, and never the token", async () => {
        const stranger = new Forgejo({ serverUrl: gitea.url, repository: repo.fullName, token: "wrong-token-0123456789" });
        const error = await stranger.createComment(pr, "x").catch((err: unknown) => err);
        expect(error).toBeInstanceOf(ForgejoError);
        expect((error as ForgejoError).message).toMatch(/^Forgejo API POST \/issues\/\d+\/comments: 401 /);
        expect((error as ForgejoError).message).not.toContain("wrong-token-0123456789");
        const elsewhere = new Forgejo({ serverUrl: gitea.url, repository: "ops/no-such-repo", token: gitea.token });
        const missing = await elsewhere.comments(1).catch((err: unknown) => err);
        expect((missing as ForgejoError).status).toBe(404);
        const down = new Forgejo({ serverUrl: "http://127.0.0.1:1", repository: repo.fullName, token: gitea.token });
        const unreachable = await down.issues().catch((err: unknown) => err);
        expect((unreachable as ForgejoError).message).toMatch(/^Forgejo API GET \/issues\?.*: 0 unreachable/);
        expect((unreachable as ForgejoError).message).not.toContain(gitea.token);
    });
});
