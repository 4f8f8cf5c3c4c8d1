/**
 * A fresh Node.js process of this project, for tests of how the program
 * loads (what a require pulls in, which hooks are installed): what one test
 * process has already loaded cannot tell.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

import { expect } from "vitest";

/** The project's root, the process's working directory. */
export const ROOT = join(__dirname, "..", "..");

/**
 * Runs `script` (`node -e`) after requiring each of `before`, then ts-node
 * (transpile only, as pulumi registers it), then each of `after`. Fails the
 * test, with its stderr, unless it exits 0; returns its last line of stdout.
 */
export function lastLineOf(script: string, after: string[] = [], before: string[] = []): string {
    const preload = [...before, "ts-node/register/transpile-only", ...after].flatMap((p) => ["-r", p]);
    const r = spawnSync(process.execPath, [...preload, "-e", script], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.trim().split("\n").pop() ?? "";
}
