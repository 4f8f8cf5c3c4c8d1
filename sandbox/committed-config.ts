/**
 * Stack configuration as the committed Pulumi.<stack>.yaml
 * give it, with overrides for what the sandbox (or a test) changes: the
 * demo and the tests run the operator's real settings, not copies of them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { parse } from "yaml";

import { parseConfig, type RawConfig, type StackConfig } from "../components/settings/config";

const ROOT = join(__dirname, "..");

/** The committed stack file's `runner` object. */
export function committedRunner(stack: "indri" | "ringtail"): Record<string, unknown> {
    const file = parse(readFileSync(join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
    return file.config["ci-registry-auth:runner"] as Record<string, unknown>;
}

/** RawConfig as loadConfig would build it from the committed files and `overrides`. */
export function rawConfig(stack: "indri" | "ringtail", overrides: Partial<RawConfig> = {}): RawConfig {
    // Top-level settings are absent, as in the committed files: their defaults apply.
    return {
        runner: committedRunner(stack),
        storedSshPrivateKey: false,
        hasSshAgent: true,
        preview: false,
        connectUrl: "http://127.0.0.1:18080",
        connectToken: "connect-token-for-tests",
        storedConnectToken: false,
        ...overrides,
    };
}

export const TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHc1dGVzdGhvc3RrZXlmb3J1bml0dGVzdHNvbmx5MDA";

/** A complete StackConfig for `stack`, as loadConfig returns it. */
export function stackConfig(stack: "indri" | "ringtail", overrides: Partial<RawConfig> = {}): StackConfig {
    const runner =
        stack === "ringtail"
            ? { ...committedRunner("ringtail"), hostKey: TEST_HOST_KEY, ...(overrides.runner as object | undefined) }
            : undefined;
    return parseConfig(rawConfig(stack, { ...overrides, ...(runner ? { runner } : {}) }));
}
