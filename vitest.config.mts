import { defineConfig } from "vitest/config";

/**
 * When a component's output fails (the unit tests of bad input), the Pulumi
 * SDK also rejects the registrations that wait on it (dependsOn, a late
 * registerOutputs), which nothing awaits under mocks; the real CLI reports
 * the one error once. Those echoes carry our own error text ("Fix: ..."):
 * a ProgramError (components/errors.ts), or an error the SDK prefixed with
 * "error serializing property". The test itself asserts that text by
 * awaiting the failing output. Every other unhandled error still fails the
 * run.
 */
function isEchoOfAssertedFailure(error: Error): boolean {
    if (!error.message.includes("Fix:")) return false;
    return error.name === "ProgramError" || /^error serializing property/.test(error.message);
}

export default defineConfig({
    test: {
        onUnhandledError: (error: Error) => !isEchoOfAssertedFailure(error),
        projects: [
            {
                test: {
                    name: "unit",
                    include: ["test/unit/**/*.test.ts"],
                    // Pulumi mocks are module-global: one process per test file.
                    pool: "forks",
                    testTimeout: 30_000,
                },
            },
            {
                test: {
                    name: "sandbox",
                    include: ["test/sandbox/**/*.test.ts"],
                    // One machine, one network namespace: files run one after another.
                    fileParallelism: false,
                    testTimeout: 300_000,
                    hookTimeout: 600_000,
                },
            },
            {
                // The whole stacks through the pulumi CLI. `npm test` runs them when
                // the command and onepassword provider plugins are present (this
                // project cannot build them: README, "Offline toolchain").
                test: {
                    name: "full-stack",
                    include: ["test/full-stack/**/*.test.ts"],
                    fileParallelism: false,
                    testTimeout: 300_000,
                    hookTimeout: 900_000,
                },
            },
            {
                test: {
                    name: "toolchain",
                    include: ["test/toolchain/**/*.test.ts"],
                    testTimeout: 120_000,
                },
            },
        ],
    },
});
