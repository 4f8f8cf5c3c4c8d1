/**
 * Where a program's Node.js process spends its CPU, from the profile
 * `node --cpu-prof` writes at exit (the bench runs a preview with
 * NODE_OPTIONS="--cpu-prof --cpu-prof-dir=DIR"): each sample's time goes to
 * the part of the code it was taken in, by the script's path. Self time
 * only: a sample in @pulumi/pulumi called by our code is @pulumi/pulumi's.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The fields of a `.cpuprofile` this reads (V8's Profiler.Profile). */
export interface CpuProfile {
    nodes: { id: number; callFrame: { url: string; functionName: string } }[];
    startTime: number;
    endTime: number;
    samples: number[];
    timeDeltas: number[];
}

/** The parts, in the order they are printed. */
export const PARTS = [
    "the program (components, index.ts)",
    "TypeScript transpile (ts-node, swc)",
    "@pulumi/pulumi",
    "gRPC and protobuf",
    "@pulumi/kubernetes, @pulumi/command",
    "other packages",
    "Node.js (module loader, built-ins)",
    "V8 (compile, native) and GC",
    "idle (waiting for the engine, plugins, network)",
] as const;
export type Part = (typeof PARTS)[number];

/** The part a sample belongs to, by its script's URL and function name. */
export function partOf(url: string, functionName: string): Part {
    if (url === "") {
        if (functionName === "(idle)") return "idle (waiting for the engine, plugins, network)";
        return "V8 (compile, native) and GC";
    }
    if (url.startsWith("node:")) return "Node.js (module loader, built-ins)";
    if (/\/node_modules\/(ts-node|@swc|typescript)\//.test(url)) return "TypeScript transpile (ts-node, swc)";
    if (/\/node_modules\/@pulumi\/pulumi\//.test(url)) return "@pulumi/pulumi";
    if (/\/node_modules\/(@grpc|google-protobuf|protobufjs|@protobufjs)\//.test(url)) return "gRPC and protobuf";
    if (/\/node_modules\/@pulumi\/(kubernetes|command)\//.test(url)) return "@pulumi/kubernetes, @pulumi/command";
    if (url.includes("/node_modules/")) return "other packages";
    return "the program (components, index.ts)";
}

/** Milliseconds of the profile by part, and its whole length. */
export function partsOf(profile: CpuProfile): { total: number; parts: Map<Part, number> } {
    const byId = new Map(profile.nodes.map((n) => [n.id, partOf(n.callFrame.url, n.callFrame.functionName)]));
    const parts = new Map<Part, number>(PARTS.map((p) => [p, 0]));
    profile.samples.forEach((id, i) => {
        const part = byId.get(id) ?? "V8 (compile, native) and GC";
        parts.set(part, (parts.get(part) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    });
    return { total: (profile.endTime - profile.startTime) / 1000, parts };
}

/**
 * One line per program of `dir`'s profiles (a run may start more than one
 * Node.js process: each is its own line), each part in ms.
 */
export function profileLines(label: string, dir: string): string[] {
    const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
    if (files.length === 0) return [`${label}: no CPU profile written (did the program's Node.js see NODE_OPTIONS?)`];
    return files.map((f) => {
        const { total, parts } = partsOf(JSON.parse(readFileSync(join(dir, f), "utf8")) as CpuProfile);
        const cells = PARTS.map((p) => `${p} ${Math.round(parts.get(p) ?? 0)}`).join(", ");
        return `${label}: ${Math.round(total)} ms of Node.js: ${cells}`;
    });
}
