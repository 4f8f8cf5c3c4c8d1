import type { ChildProcess } from "node:child_process";

/** Sends SIGTERM to a child that is still running and waits for it to exit. */
export async function stopChild(child: ChildProcess): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
    }
}
