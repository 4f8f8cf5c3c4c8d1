/**
 * `npm run bench`: speed and memory targets, kept out of the timed tests.
 * Evaluates each stack under Pulumi mocks (our code and the SDK, not the
 * network) and the per-deployment helpers, reports mean and p95, and exits
 * non-zero when a target is missed. Targets: a stack evaluates in < 100 ms
 * (p95), and the live heap after all evaluations and a GC stays < 64 MiB
 * above where it started (Pulumi's mock monitor keeps every resource it saw,
 * so this bounds that too).
 */
import { renderEnvFile } from "../../components/ssh/envfile";
import { fingerprint } from "../../components/fingerprint";
import { defineStack } from "../../components/stack";
import { Harness, healthyWorld } from "../support/harness";
import { valueOf } from "../support/outputs";
import { stackConfig } from "../support/stack-config";

const KEY = "zak_bench_0123456789abcdef0123456789abcdef";
const EXPIRES = String(Math.floor(Date.now() / 1000) + 60 * 86400);
const world = () => ({
    ...healthyWorld(KEY),
    item: { credential: KEY, sections: [{ label: "rotation", fields: [{ label: "expires", value: EXPIRES }] }] },
});
const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);
const RUNS = 200;

async function measure(name: string, fn: () => Promise<void> | void, targetP95Ms: number): Promise<boolean> {
    for (let i = 0; i < 10; i++) await fn();
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
        const t = performance.now();
        await fn();
        times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const p95 = times[Math.floor(times.length * 0.95)] ?? Number.NaN;
    const ok = p95 < targetP95Ms;
    console.log(
        `${ok ? "ok  " : "MISS"} ${name.padEnd(28)} mean ${mean.toFixed(3)} ms  p95 ${p95.toFixed(3)} ms  (target p95 < ${targetP95Ms} ms)`,
    );
    return ok;
}

async function main(): Promise<void> {
    // Remote scripts run once for real, then replay: the evaluations measure the program.
    const harness = new Harness({ replay: true });
    await harness.install();
    const results: boolean[] = [];
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    for (const stack of ["ringtail", "indri"] as const) {
        results.push(
            await measure(
                `evaluate ${stack}`,
                async () => {
                    harness.reset(world());
                    await valueOf((await defineStack(stackConfig(stack))).hasKey);
                },
                100,
            ),
        );
    }
    gc();
    const grownMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    const heapOk = grownMiB < 64;
    console.log(
        `${heapOk ? "ok  " : "MISS"} heap growth over ${2 * (RUNS + 10)} evaluations: ${grownMiB.toFixed(1)} MiB (target < 64 MiB)`,
    );
    results.push(heapOk);
    results.push(await measure("fingerprint", () => void fingerprint(KEY), 1));
    results.push(await measure("renderEnvFile", () => void renderEnvFile("ZOT_CI_API_KEY", KEY), 1));
    await harness.dispose();
    if (results.includes(false)) {
        process.exitCode = 1;
    }
}

void main();
