/**
 * components/stack.ts loads a runner kind's modules only for a stack of
 * that kind (docs/performance.md, "Loading the runner kind"): checked in a
 * Node.js process of its own, by what its require cache holds.
 */
import { describe, expect, it } from "vitest";

import { lastLineOf } from "../support/node-process";

/** The modules of each runner kind: the SDK it delivers with, and its components. */
const KINDS = {
    kubernetes: ["/node_modules/@pulumi/kubernetes/", "/components/kubernetes/"],
    ssh: ["/node_modules/@pulumi/command/", "/components/ssh/runner.ts"],
};

/** Requires `modules` in a fresh Node.js process of this project; the runner kinds whose modules it then holds. */
function kindsLoadedBy(modules: string[]): string[] {
    const script = [
        ...modules.map((m) => `require(${JSON.stringify(m)});`),
        `const kinds = ${JSON.stringify(KINDS)};`,
        "const files = Object.keys(require.cache);",
        "console.log(JSON.stringify(Object.keys(kinds).filter((k) => kinds[k].some((part) => files.some((f) => f.includes(part))))));",
    ].join("\n");
    return JSON.parse(lastLineOf(script)) as string[];
}

describe("loading components/stack.ts", () => {
    it("loads neither runner kind until a stack asks for its own, and each kind's runner loads its own", () => {
        expect(kindsLoadedBy(["./components/stack.ts"])).toEqual([]);
        // The check sees each kind: a runner module loads its own kind's modules, and only those.
        expect(kindsLoadedBy(["./components/kubernetes/runner.ts"])).toEqual(["kubernetes"]);
        expect(kindsLoadedBy(["./components/ssh/runner.ts"])).toEqual(["ssh"]);
    });
});
