/** The README's tables against the one place each is written: outputs (components/outputs.ts), settings (components/settings.ts). */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { OUTPUT_NAMES } from "../../components/outputs";
import { settingsTable } from "../../components/settings";

const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
const outputsSection = readme.slice(readme.indexOf("## Outputs"), readme.indexOf("\n## ", readme.indexOf("## Outputs") + 1));

describe("the README's Outputs table", () => {
    it.each(Object.entries(OUTPUT_NAMES))("names every %s output", (_where, names) => {
        const missing = names.filter((n) => !outputsSection.includes(`\`${n}\``));
        expect(missing).toEqual([]);
    });

    it("names no output the program does not export", () => {
        const all = new Set<string>(Object.values(OUTPUT_NAMES).flat());
        const rows = outputsSection.split("\n").filter((l) => l.startsWith("| `"));
        const named = rows.flatMap((r) => [...(r.split(" | ")[0] ?? "").matchAll(/`(\w+)`/g)].map((m) => m[1] ?? ""));
        expect(named.filter((n) => !all.has(n))).toEqual([]);
    });
});

describe("the README's Configuration table", () => {
    it("is the one components/settings.ts makes from its tables (defaults and meanings are written there only)", () => {
        const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## Outputs"));
        const table = section
            .split("\n")
            .filter((l) => l.startsWith("|"))
            .join("\n");
        // On a difference, paste: node -r ts-node/register/transpile-only -e 'console.log(require("./components/settings").settingsTable())'
        expect(table).toBe(settingsTable());
    });
});
