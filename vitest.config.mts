import { defineConfig } from "vitest/config";

/**
 * When a component's output fails (the unit tests of bad input), the Pulumi
 * SDK also rejects that component's late registerOutputs call, which nothing
 * awaits under mocks. Those echoes carry our own error text ("Fix: ..."),
 * which the test itself asserts by awaiting the failing output. Every other
 * unhandled error still fails the run.
 */
function isEchoOfAssertedFailure(error: Error): boolean {
    return /^error serializing property/.test(error.message) && error.message.includes("Fix:");
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
