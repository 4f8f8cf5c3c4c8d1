/**
 * Imported by index.ts right after sdk-load.ts, before any component. The
 * SDK records a stack trace for almost every promise it makes
 * (`debuggablePromise` in runtime/debuggable.js, on each resource's
 * properties, each log line, each RPC) and one for each resource's source
 * position. Under `pulumi`, two libraries map every frame of every one of
 * those traces through source maps: the SDK's runner installs
 * source-map-support, and ts-node installs its own copy on top. Both read
 * the SDK's shipped `.js.map` files and parse them. That was 0.2-0.3 s of
 * Node.js CPU on each preview and up of indri (docs/performance.md, "Stack
 * traces").
 *
 * Node.js maps stack traces itself (`process.setSourceMapsEnabled`), for
 * the modules compiled after this point: the program's own .ts files (from
 * the inline maps ts-node writes) and what they load. So the program's
 * frames still name the .ts file and line, in error stacks and in the
 * source positions the SDK sends with each resource; the SDK's runtime,
 * which pulumi's runner loads before the program, names its .js files as
 * they are on disk (test/unit/stack-traces.test.ts). Nothing else changes.
 */

/** Hands stack traces to Node.js's own source maps, once (a second import finds them there). */
export function useNodeSourceMaps(): void {
    process.setSourceMapsEnabled(true);
    // Both libraries' hooks sit here; without one, Node.js formats the trace and maps it.
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
}

useNodeSourceMaps();
