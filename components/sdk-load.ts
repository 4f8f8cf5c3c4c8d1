/**
 * Imported first by index.ts, before anything imports the Pulumi SDK. When
 * the SDK loads, its function serialization (runtime/closure: used by
 * `pulumi.runtime.serializeFunction` and dynamic providers, neither of which
 * this program uses) requires npm's Arborist, which loads pacote, sigstore
 * and about 300 modules more: 0.25 s of every preview and up on 2 cores
 * (docs/performance.md, "Loading the SDK"). That one require gets a
 * stand-in that loads the real module the first time anything is taken
 * from it, so a program that does serialize a function still works, and
 * pays then. Nothing else is touched: every other require, and this one
 * from anywhere else, goes to Node's loader as before.
 */
import Module from "node:module";

/** The require this defers, and the SDK directory it is deferred for. */
const DEFERRED = "@npmcli/arborist";
const CLOSURE = /[\\/]node_modules[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]/;

type Load = (this: unknown, request: string, parent: { filename?: string } | null | undefined, isMain: boolean) => unknown;
// Node's CommonJS loader entry point: not in @types/node, stable since Node 0.x, what ts-node and others hook.
const loader = Module as unknown as { _load: Load };

/** Installs the deferral once (a second import of this module finds it installed). */
export function deferSdkClosureModules(): void {
    const load = loader._load;
    if ((load as { deferred?: true }).deferred === true) return;
    const deferring: Load = function (this: unknown, request, parent, isMain) {
        if (request !== DEFERRED || !CLOSURE.test(parent?.filename ?? "")) return load.call(this, request, parent, isMain);
        let real: Record<string | symbol, unknown> | undefined;
        const target = (): Record<string | symbol, unknown> =>
            (real ??= load.call(this, request, parent, isMain) as Record<string | symbol, unknown>);
        // The SDK takes it through `__importStar`, which asks `__esModule` first: answering it keeps the module unloaded.
        return new Proxy({}, { get: (_, key) => (key === "__esModule" ? true : target()[key]) });
    };
    (deferring as { deferred?: true }).deferred = true;
    loader._load = deferring;
}

deferSdkClosureModules();
