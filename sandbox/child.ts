import { spawnSync, type ChildProcess } from "node:child_process";

/** Undoes what a run started: the last first, each whether or not the one before failed (failures are printed). */
export async function stopAll(stops: (() => Promise<void> | void)[]): Promise<void> {
    for (const stop of [...stops].reverse()) {
        try {
            await stop();
        } catch (err) {
            console.error(`cleanup: ${(err as Error).message}`);
        }
    }
}

/** Sends SIGTERM to a child that is still running and waits for it to exit. */
export async function stopChild(child: ChildProcess): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
    }
}

/** Lazily unmounts whatever is still mounted under `dir` (deepest first), so that `dir` can be removed. */
export function unmountUnder(dir: string): void {
    spawnSync("sh", ["-c", `grep -o ' ${dir}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
}
