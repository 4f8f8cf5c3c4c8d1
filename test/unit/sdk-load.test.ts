/**
 * components/sdk-load.ts, in a Node.js process of its own as pulumi starts
 * the program: the SDK loads without npm's Arborist, normalize-package-data
 * and its Automation API, and what uses one still gets the real module.
 */
import { describe, expect, it } from "vitest";

import { lastLineOf } from "../support/node-process";

/** Defines `loaded()`: which of Arborist and normalize-package-data the process holds, by name, "none" when neither. */
const LOADED =
    'const loaded = () => ["@npmcli/arborist", "normalize-package-data"].filter((m) => Object.keys(require.cache).some((k) => k.includes(`/node_modules/${m}/`))).join(",") || "none";';
const AUTOMATION_LOADED =
    'const loaded = () => Object.keys(require.cache).some((k) => k.includes("/node_modules/@pulumi/pulumi/automation/"));';

describe("components/sdk-load.ts", () => {
    it("loads the SDK without Arborist and normalize-package-data, which the SDK alone loads", () => {
        const script = `${LOADED} require("@pulumi/pulumi"); console.log(loaded());`;
        expect(lastLineOf(script, [])).toBe("@npmcli/arborist,normalize-package-data");
        expect(lastLineOf(script, ["./components/sdk-load.ts"])).toBe("none");
    });

    it("gives the SDK the real modules when it uses them (computeCodePaths: Arborist's tree, package.json normalized)", () => {
        const script = `${LOADED} const pulumi = require("@pulumi/pulumi"); pulumi.runtime.computeCodePaths().then((m) => console.log(\`\${String(m.size > 0)} \${loaded()}\`), (e) => { console.log(String(e)); process.exit(1); });`;
        expect(lastLineOf(script, ["./components/sdk-load.ts"])).toBe("true @npmcli/arborist,normalize-package-data");
    });

    it("loads the SDK without its Automation API, which the SDK alone loads", () => {
        const script = `${AUTOMATION_LOADED} require("@pulumi/pulumi"); console.log(String(loaded()));`;
        expect(lastLineOf(script, [])).toBe("true");
        expect(lastLineOf(script, ["./components/sdk-load.ts"])).toBe("false");
    });

    it("gives pulumi.automation the real module when it is used: its classes, its keys, `in`", () => {
        const script =
            `${AUTOMATION_LOADED} const { automation } = require("@pulumi/pulumi"); const before = loaded(); ` +
            'console.log([before, typeof automation.LocalWorkspace, Object.keys(automation).includes("LocalWorkspace"), "Stack" in automation, loaded()].join(" "));';
        expect(lastLineOf(script, ["./components/sdk-load.ts"])).toBe("false function true true true");
    });
});
