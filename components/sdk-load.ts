/**
 * Imported first by index.ts, before anything imports the Pulumi SDK. When
 * the SDK loads, it loads two parts this program never uses:
 * - its function serialization (runtime/closure: used by
 *   `pulumi.runtime.serializeFunction` and dynamic providers) requires npm's
 *   Arborist, which loads pacote, sigstore and about 300 modules more: 0.25 s
 *   of every preview and up on 2 cores (docs/performance.md, "Loading the
 *   SDK"), and normalize-package-data with the SPDX license lists;
 * - its index requires the Automation API (`pulumi.automation`: workspaces,
 *   stacks, the CLI wrapper): about 30 ms of CPU, normalize-package-data
 *   about 20 ms more (docs/performance.md, "More of the SDK on first use").
 * Each of those requires gets a stand-in that loads the real module the
 * first time anything is taken from it, so a program that does use one
 * still works, and pays then. Nothing else is touched: every other require,
 * and these from anywhere else, go to Node's loader as before.
 */
import Module from "node:module";

const CLOSURE = /[\\/]node_modules[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]/;

/**
 * The requires this defers: the request, the SDK module it is deferred for,
 * and how that module takes it (TypeScript's `__importStar`, or
 * `__importDefault` of a CommonJS module whose exports are one function).
 */
const DEFERRED: readonly { request: string; from: RegExp; as: "namespace" | "default" }[] = [
    { request: "@npmcli/arborist", from: CLOSURE, as: "namespace" },
    { request: "normalize-package-data", from: CLOSURE, as: "default" },
    { request: "./automation", from: /[\\/]node_modules[\\/]@pulumi[\\/]pulumi[\\/]index\.js$/, as: "namespace" },
];

type Load = (this: unknown, request: string, parent: { filename?: string } | null | undefined, isMain: boolean) => unknown;
// Node's CommonJS loader entry point: not in @types/node, stable since Node 0.x, what ts-node and others hook.
const loader = Module as unknown as { _load: Load };

/** Installs the deferral once (a second import of this module finds it installed). */
export function deferSdkUnusedModules(): void {
    const load = loader._load;
    if ((load as { deferred?: true }).deferred === true) return;
    const deferring: Load = function (this: unknown, request, parent, isMain) {
        const from = parent?.filename ?? "";
        const deferred = DEFERRED.find((d) => d.request === request && d.from.test(from));
        if (deferred === undefined) return load.call(this, request, parent, isMain);
        let real: Record<string | symbol, unknown> | undefined;
        const target = (): Record<string | symbol, unknown> =>
            (real ??= load.call(this, request, parent, isMain) as Record<string | symbol, unknown>);
        // `__importStar` and `__importDefault` ask `__esModule` first: answering it keeps the module unloaded,
        // and has them take the stand-in as it is (the default import: its `default` is the module's one function).
        // Anything else, a property, its keys or whether it has one, loads the real module and answers from it.
        return new Proxy(
            {},
            {
                get: (_, key) => (key === "__esModule" ? true : key === "default" && deferred.as === "default" ? target() : target()[key]),
                has: (_, key) => key in target(),
                ownKeys: () => Reflect.ownKeys(target()),
                getOwnPropertyDescriptor: (_, key) => {
                    const d = Reflect.getOwnPropertyDescriptor(target(), key);
                    // A proxy may only report a property as its target has it: the stand-in's is configurable.
                    return d === undefined ? undefined : { ...d, configurable: true };
                },
            },
        );
    };
    (deferring as { deferred?: true }).deferred = true;
    loader._load = deferring;
}

deferSdkUnusedModules();
