/**
 * Stack configuration as the committed Pulumi.yaml and Pulumi.<stack>.yaml
 * give it, with overrides for what the sandbox (or a test) changes: the
 * demo and the tests run the operator's real settings, not copies of them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { parse } from "yaml";

import { parseConfig, type RawConfig, type StackConfig } from "../components/config";

const ROOT = join(__dirname, "..");

interface ProjectFile {
    config: Record<string, { default?: unknown }>;
}

/** The project's declared defaults, keyed without the project prefix. */
export function projectDefaults(): Record<string, unknown> {
    const project = parse(readFileSync(join(ROOT, "Pulumi.yaml"), "utf8")) as ProjectFile;
    return Object.fromEntries(Object.entries(project.config).map(([k, v]) => [k, v.default]));
}

/** The committed stack file's `runner` object. */
export function committedRunner(stack: "indri" | "ringtail"): Record<string, unknown> {
    const file = parse(readFileSync(join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
    return file.config["ci-registry-auth:runner"] as Record<string, unknown>;
}

/** RawConfig as loadConfig would build it from the committed files and `overrides`. */
export function rawConfig(stack: "indri" | "ringtail", overrides: Partial<RawConfig> = {}): RawConfig {
    const d = projectDefaults();
    return {
        vault: d["vault"] as string,
        item: d["item"] as string,
        field: d["field"] as string,
        expiryField: d["expiryField"] as string,
        expiryWarningDays: d["expiryWarningDays"] as number,
        envVar: d["envVar"] as string,
        registryUser: d["registryUser"] as string,
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
