/** The README's tables against the one place each is written: outputs (components/outputs.ts), settings (components/settings/settings.ts). */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { OUTPUT_NAMES } from "../../components/outputs";
import { settingsTable } from "../../components/settings/settings";

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
    it("is the one components/settings/settings.ts makes from its tables (defaults and meanings are written there only)", () => {
        const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## Outputs"));
        const table = section
            .split("\n")
            .filter((l) => l.startsWith("|"))
            .join("\n");
        // On a difference, paste: node -r ts-node/register/transpile-only -e 'console.log(require("./components/settings/settings").settingsTable())'
        expect(table).toBe(settingsTable());
    });
});

describe("the README's quick start", () => {
    const quick = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("\n## ", readme.indexOf("## Quick start") + 1));
    const mise = readFileSync(join(__dirname, "..", "..", "mise.toml"), "utf8");

    it("names the operator's Connect token by the one reference mise.toml reads", () => {
        const ref = /^CI_REGISTRY_AUTH_CONNECT_TOKEN_REF = "([^"]+)"$/m.exec(mise)?.[1];
        expect(ref).toBeDefined();
        const tokenRefs = [...quick.matchAll(/op read '([^']+)'\)"$/gm)]
            .filter((m) => quick.slice(quick.lastIndexOf("\n", m.index), m.index).includes("OP_CONNECT_TOKEN"))
            .map((m) => m[1]);
        expect(tokenRefs).toEqual([ref]);
        expect(readme.match(/op:\/\/[^\s'`"]*connect[^\s'`"]*/g)?.filter((r) => r !== ref) ?? []).toEqual([]);
    });

    it("sets the Connect URL per machine, never in the committed stack file, and commits each stack's encryptionsalt", () => {
        expect(quick).toContain("export OP_CONNECT_HOST=");
        expect(quick).not.toMatch(/^\s*pulumi config set onepassword:url/m);
        for (const stack of ["indri", "ringtail"]) {
            expect(quick).toMatch(new RegExp(`pulumi stack init ${stack} .*encryptionsalt.*commit it`));
            const file = readFileSync(join(__dirname, "..", "..", `Pulumi.${stack}.yaml`), "utf8");
            expect(file).not.toMatch(/pulumi config set onepassword:url/);
            expect(file).not.toMatch(/^\s+onepassword:url:/m);
        }
    });

    it("sets the CI vault on every stack, and sets up the check key with its secret", () => {
        expect(quick.match(/pulumi config set ci-registry-auth:vault blumeops-ci --stack (\w+)/g)).toHaveLength(2);
        expect(quick).toMatch(/ssh-keygen .* -f ringtail-check/);
        expect(quick).toMatch(/pulumi config set --path ci-registry-auth:runner\.checkKey "\$\(cat ringtail-check\.pub\)"/);
        expect(quick).toContain("`RINGTAIL_CHECK_KEY`");
        expect(quick).toMatch(/PULUMI_CONFIG_PASSPHRASE=/);
    });
});
