/**
 * The machine's cache of what this project builds or takes from outside
 * (docs/developing.md): `CI_REGISTRY_AUTH_CACHE`, else
 * `$XDG_CACHE_HOME/ci-registry-auth`, else `~/.cache/ci-registry-auth`, as
 * sandbox/build and toolchain/build find it.
 */
import { homedir } from "node:os";
import { join } from "node:path";

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
    return env["CI_REGISTRY_AUTH_CACHE"] ?? join(env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "ci-registry-auth");
}
