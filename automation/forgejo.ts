/**
 * The few routes of Forgejo's REST API (v1) that the PR preview and the
 * key-health check use: issue comments and issues. Gitea serves the same
 * routes with the same `Authorization: token <T>` header (Forgejo forked
 * from it), which is how the sandbox tests this client.
 *
 * Plain `fetch` with typed responses: the maintained clients (e.g. the
 * generated `gitea-js`) wrap hundreds of routes for the six used here, and
 * the runner's token must never reach a log, so errors name the method,
 * route and status only.
 */

/** Where the API is and who calls it: from the job's environment. */
export interface ForgejoTarget {
    /** e.g. `https://forge.ops.eblu.me` (no trailing slash). */
    serverUrl: string;
    /** `owner/name`. */
    repository: string;
    /** The token the runner gives the job (`secrets.GITHUB_TOKEN`). */
    token: string;
}

/** Who wrote a comment or issue. */
export interface Author {
    login: string;
}

export interface Comment {
    id: number;
    body: string;
    user?: Author;
    html_url?: string;
}

export interface Issue {
    number: number;
    title: string;
    body: string;
    state: "open" | "closed";
    user?: Author;
    html_url?: string;
}

/** An API call that did not succeed; never carries the token. */
export class ForgejoError extends Error {
    constructor(
        readonly method: string,
        readonly route: string,
        readonly status: number,
        detail: string,
    ) {
        super(`Forgejo API ${method} ${route}: ${status} ${detail}`.trim());
        this.name = "ForgejoError";
    }
}

/** Largest page Forgejo and Gitea serve by default (`[api] MAX_RESPONSE_ITEMS`). */
const PAGE = 50;
/** Pages read at most when searching (2 500 items). */
const MAX_PAGES = 50;

export class Forgejo {
    private readonly api: string;
    private readonly base: string;
    private me: Promise<string> | undefined;

    constructor(private readonly target: ForgejoTarget) {
        this.api = `${target.serverUrl.replace(/\/+$/, "")}/api/v1`;
        this.base = `/repos/${target.repository}`;
    }

    /**
     * The login the token acts as (for a job's token, the server's actions
     * user): comments and issues are ours only when they carry our marker
     * and this author, so a marker planted by anyone else is never touched.
     */
    whoami(): Promise<string> {
        this.me ??= this.call<Author>("GET", "/user", undefined, false).then((u) => u.login);
        return this.me;
    }

    private async call<T>(method: string, route: string, body?: unknown, inRepo = true): Promise<T> {
        let res: Response;
        try {
            res = await fetch(`${this.api}${inRepo ? this.base : ""}${route}`, {
                method,
                headers: {
                    Authorization: `token ${this.target.token}`,
                    Accept: "application/json",
                    ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
                },
                ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
            });
        } catch (err) {
            throw new ForgejoError(method, route, 0, `unreachable: ${err instanceof Error ? err.message : String(err)}`);
        }
        if (!res.ok) {
            const text = (await res.text()).slice(0, 300).replaceAll(this.target.token, "***");
            throw new ForgejoError(method, route, res.status, text);
        }
        return (res.status === 204 ? undefined : await res.json()) as T;
    }

    /**
     * Every comment of an issue or pull request, oldest first. This route
     * is not paged (it takes only `since` and `before`): one call returns all.
     */
    comments(index: number): Promise<Comment[]> {
        return this.call<Comment[]>("GET", `/issues/${index}/comments`);
    }

    createComment(index: number, body: string): Promise<Comment> {
        return this.call<Comment>("POST", `/issues/${index}/comments`, { body });
    }

    editComment(id: number, body: string): Promise<Comment> {
        return this.call<Comment>("PATCH", `/issues/comments/${id}`, { body });
    }

    /**
     * Edits the one comment of `index` that carries `marker` and is ours
     * (whoami), or creates it. Comments with the marker by anyone else, and
     * extra ones of ours (a race of two runs), are left alone.
     */
    async upsertComment(index: number, marker: string, body: string): Promise<{ comment: Comment; created: boolean }> {
        const me = await this.whoami();
        const mine = (await this.comments(index)).find((c) => c.body.includes(marker) && c.user?.login === me);
        if (mine !== undefined) {
            return { comment: await this.editComment(mine.id, body), created: false };
        }
        return { comment: await this.createComment(index, body), created: true };
    }

    /** The newest issue that carries `marker` and is ours (whoami); issues others wrote are never ours, marker or not. */
    async ownIssue(marker: string): Promise<Issue | undefined> {
        const me = await this.whoami();
        return (await this.issues()).find((i) => i.body.includes(marker) && i.user?.login === me);
    }

    /** Issues (not pull requests), open and closed, newest first. */
    async issues(): Promise<Issue[]> {
        const all: Issue[] = [];
        for (let page = 1; page <= MAX_PAGES; page++) {
            const batch = await this.call<Issue[]>("GET", `/issues?state=all&type=issues&page=${page}&limit=${PAGE}`);
            all.push(...batch);
            if (batch.length < PAGE) break;
        }
        return all;
    }

    createIssue(title: string, body: string): Promise<Issue> {
        return this.call<Issue>("POST", "/issues", { title, body });
    }

    editIssue(index: number, change: { title?: string; body?: string; state?: "open" | "closed" }): Promise<Issue> {
        return this.call<Issue>("PATCH", `/issues/${index}`, change);
    }
}
