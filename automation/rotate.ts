/**
 * `npm run rotate [-- --dry-run] [--stack <name> ...]` (default: every
 * `Pulumi.<stack>.yaml` of the project): the operator's rotation of the zot
 * key in one command (automation/rotation.ts), with the operator's
 * credentials: $OP_CONNECT_TOKEN granted write on the key's vault, the
 * ssh-agent, the kubeconfig. Every stack must name the same item and
 * registry (they share the key). Prints one line per step and per stack as
 * it goes, then one summary; never a key.
 */
import { join } from "node:path";

import { hostname } from "node:os";

import { LocalWorkspace, type EngineEvent } from "@pulumi/pulumi/automation";

import { configFromValues, type StackConfig } from "../components/settings/config";
import { readItem, writeItem } from "../components/onepassword/connect";
import { recordedKeyId, selectField, withRotatedKey } from "../components/onepassword/item";
import { readOutputs } from "../components/outputs";
import { ZotKeys } from "../components/registry/zot-keys";

import { projectStacks } from "./job";
import { upStack, type UpRun } from "./up";
import { describeKey, rotate, RotationError, type RotationWorld } from "./rotation";

const ROOT = join(__dirname, "..");

/** `--dry-run` and `--stack <name>`, each once; the usage error names the argument. */
export function rotateArgs(argv: string[]): { dryRun: boolean; stacks: string[] } {
    let dryRun = false;
    const stacks: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? "";
        if (a === "--dry-run") dryRun = true;
        else if (a === "--stack" && argv[i + 1] !== undefined) stacks.push(argv[++i] ?? "");
        else if (a.startsWith("--stack=")) stacks.push(a.slice("--stack=".length));
        else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: npm run rotate -- [--dry-run] [--stack <name> ...]`);
    }
    return { dryRun, stacks };
}

/**
 * The pid of the run that holds a stack's lock, when pulumi's error says the
 * stack is locked by a run of this machine that no longer runs; else
 * undefined (no lock, another machine's, or a live run: never broken).
 */
export function staleLock(error: string, thisHost: string, running: (pid: number) => boolean): number | undefined {
    if (!/the stack is currently locked/.test(error)) return undefined;
    // The Automation API's error repeats pulumi's output (its stderr, then the error): one lock, named twice.
    const owners = [...new Set([...error.matchAll(/created by \S+@(\S+) \(pid (\d+)\)/g)].map((m) => `${m[1] ?? ""} ${m[2] ?? ""}`))];
    if (owners.length !== 1) return undefined;
    const [host, pid] = (owners[0] ?? "").split(" ");
    return host === thisHost && !running(Number(pid)) ? Number(pid) : undefined;
}

function isRunning(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/** The `error:` lines of pulumi's output in an Automation API error, without the command line and streams around them. */
export function pulumiErrors(text: string): string {
    const lines = text
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l.startsWith("error:"));
    return lines.length > 0 ? [...new Set(lines)].join(" ") : (text.trim().split("\n")[0] ?? text);
}

/** What every stack must agree on, and the first stack that disagrees with the first, by setting. */
export function sharedSettings(configs: [string, StackConfig][]): StackConfig {
    const [first, ...rest] = configs;
    if (first === undefined) throw new RotationError("no stack to rotate: the project has no Pulumi.<stack>.yaml");
    const shared = (c: StackConfig): Record<string, unknown> => ({
        "onepassword:url": c.connect.url,
        vault: c.key.vault,
        item: c.key.item,
        field: c.key.field,
        expiryField: c.key.expiryField,
        keyIdField: c.key.keyIdField,
        keyLifetimeDays: c.key.keyLifetimeDays,
        registryUser: c.registryUser,
        "registry.url": c.registry.url,
    });
    const want = shared(first[1]);
    const problems = rest.flatMap(([stack, c]) =>
        Object.entries(shared(c))
            .filter(([k, v]) => v !== want[k])
            .map(([k]) => `${k} of stack ${stack} is not stack ${first[0]}'s`),
    );
    if (problems.length > 0) {
        throw new RotationError(`the stacks share one key, so they must name the same item and registry: ${problems.join("; ")}`);
    }
    return first[1];
}

async function main(): Promise<void> {
    const args = rotateArgs(process.argv.slice(2));
    const names = args.stacks.length > 0 ? args.stacks : projectStacks(ROOT);
    const stacks = await Promise.all(names.map((stackName) => LocalWorkspace.selectStack({ stackName, workDir: ROOT })));
    const configs = await Promise.all(
        stacks.map(async (s): Promise<[string, StackConfig]> => {
            const values = Object.fromEntries(Object.entries(await s.getAllConfig()).map(([k, v]) => [k, v.value]));
            return [s.name, configFromValues(values, process.env, false)];
        }),
    );
    const c = sharedSettings(configs);
    const where = `item "${c.key.item}" in vault "${c.key.vault}"`;
    const zot = new ZotKeys(c.registry, c.registryUser);
    const item = () => readItem(c.connect.url, c.connect.token, c.key.vault, c.key.item);
    const world: RotationWorld = {
        registry: c.registry.url,
        user: c.registryUser,
        where,
        readKey: async () => {
            const read = await item();
            const value = selectField(read, c.key.field);
            if (value === undefined) throw new RotationError(`${where} has no key in field "${c.key.field}"`);
            const keyId = recordedKeyId(read, c.key.keyIdField);
            return { value, ...(keyId !== undefined ? { keyId } : {}) };
        },
        storeKey: async (key) => {
            const fresh = await item();
            const names = { field: c.key.field, expiryField: c.key.expiryField, keyIdField: c.key.keyIdField };
            await writeItem(
                c.connect.url,
                c.connect.token,
                withRotatedKey(fresh, names, { value: key.value, expiresAt: new Date(key.expirationDate), keyId: key.uuid }),
            );
        },
        zot,
        stacks: stacks.map((s) => s.name),
        deliver: async (name, say) => {
            const stack = stacks.find((s) => s.name === name);
            if (stack === undefined) throw new Error(`no stack ${name}`);
            const onEvent = (e: EngineEvent): void => {
                const pre = e.resourcePreEvent?.metadata;
                if (pre !== undefined && !["same", "read"].includes(pre.op)) say(`${pre.op} ${pre.urn.split("::").pop() ?? ""}`);
            };
            let up: UpRun;
            try {
                up = await upStack(stack, { onEvent });
            } catch (err) {
                const text = err instanceof Error ? err.message : String(err);
                const gone = staleLock(text, hostname(), (pid) => isRunning(pid));
                if (gone === undefined) throw new Error(pulumiErrors(text));
                // A run killed while it held the stack (this command's own, say) left its lock behind.
                say(`the stack is locked by a run that is gone (pid ${String(gone)} on this machine): pulumi cancel, then up again`);
                await stack.cancel();
                up = await upStack(stack, { onEvent });
            }
            const out = readOutputs(up.outputs);
            return {
                canPush: out.canPush === true,
                keyFingerprint: out.keyFingerprint ?? "",
                ...(out.canPush !== true ? { problem: `canPush is false: ${out.registry?.verdict ?? "no registry answer"}` } : {}),
            };
        },
        say: (line) => {
            console.log(line);
        },
        now: () => new Date(),
    };
    const summary = await rotate(world, { dryRun: args.dryRun, lifetimeDays: c.key.keyLifetimeDays });
    if (summary === undefined) return;
    console.log(
        [
            "Rotated.",
            `  key: ${summary.oldFingerprint} -> ${summary.newFingerprint}, expires at zot ${summary.expiresAt}`,
            `  confirmed canPush with it: ${summary.confirmed.join(", ")}`,
            `  revoked: ${summary.revoked.length === 0 ? "none" : summary.revoked.map(describeKey).join("; ")}`,
        ].join("\n"),
    );
}

if (require.main === module) {
    main().catch((err: unknown) => {
        console.error(`rotate: ${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
    });
}
