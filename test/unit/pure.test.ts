/** Pure helpers, tested directly (fast-check where the input space is wide). */
import * as pulumi from "@pulumi/pulumi";
import { execFileSync } from "node:child_process";

import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { renderEnvFile, envValueProblem, isValidEnvVarName, quoteEnvValue } from "../../components/ssh/envfile";
import { ProgramError } from "../../components/errors";
import { fingerprint, isFingerprint } from "../../components/fingerprint";
import { daysUntil, findExpiry, judgeExpiry, missingFieldMessage, selectField } from "../../components/onepassword/item";
import { shellQuote } from "../../components/shell";
import { envFilePathProblem, isSshPublicKey } from "../../components/settings/validate";
import { readEnvFile } from "../support/systemd-env";

/** Printable ASCII without space: what an API key may contain. */
const keyChars = fc.string({
    unit: fc.constantFrom(...Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i))),
    minLength: 1,
    maxLength: 80,
});

describe("fingerprint", () => {
    it("is sha256: and the first 16 hex digits of SHA-256", () => {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        expect(fingerprint("abc")).toBe("sha256:ba7816bf8f01cfea");
        expect(fingerprint("")).toBe("sha256:e3b0c44298fc1c14");
    });

    it("has the published shape and never contains the value", () => {
        fc.assert(
            fc.property(
                keyChars.filter((k) => k.length >= 8),
                (k) => {
                    const fp = fingerprint(k);
                    return isFingerprint(fp) && !fp.includes(k);
                },
            ),
        );
    });

    it("distinguishes keys that differ in one character", () => {
        expect(fingerprint("zak_aaaa")).not.toBe(fingerprint("zak_aaab"));
    });
});

describe("env file", () => {
    it("round-trips every printable key through systemd's quoting rules", () => {
        fc.assert(
            fc.property(keyChars, (key) => {
                const content = renderEnvFile("ZOT_CI_API_KEY", key);
                expect(readEnvFile(content, "ZOT_CI_API_KEY")).toBe(key);
                expect(content.split("\n").filter((l) => l.startsWith("ZOT_CI_API_KEY="))).toHaveLength(1);
            }),
            { numRuns: 500 },
        );
    });

    it("writes plain keys bare and quotes only when needed", () => {
        expect(quoteEnvValue("zak_abc123")).toBe("zak_abc123");
        expect(quoteEnvValue("a$b")).toBe("'a$b'");
        expect(quoteEnvValue(`a'b"c$d`)).toBe(`"a'b\\"c\\$d"`);
    });

    it("rejects empty, whitespace, control and non-ASCII values without echoing them", () => {
        for (const bad of ["", "zak abc", "zak\nabc", "zak_abc\n", "zak\tabc", "zäk"]) {
            expect(envValueProblem(bad)).toBeDefined();
            let message = "";
            try {
                renderEnvFile("ZOT_CI_API_KEY", bad);
            } catch (err) {
                message = (err as Error).message;
            }
            expect(message).toMatch(/cannot be written to an EnvironmentFile/);
            if (bad.length > 3) {
                expect(message).not.toContain(bad.trim());
            }
        }
    });

    it("rejects invalid variable names", () => {
        expect(isValidEnvVarName("ZOT_CI_API_KEY")).toBe(true);
        for (const bad of ["", "1A", "A-B", "A B", "A=B"]) {
            expect(isValidEnvVarName(bad)).toBe(false);
            expect(() => renderEnvFile(bad, "x")).toThrow(/invalid environment variable name/);
        }
    });
});

describe("shell quoting", () => {
    it("makes any string one literal word for a real POSIX shell", () => {
        fc.assert(
            fc.property(
                fc.string({ unit: "binary", maxLength: 40 }).filter((s) => !s.includes("\0")),
                (s) => {
                    const out = execFileSync("sh", ["-c", `printf '%s' ${shellQuote(s)}`]);
                    expect(out.toString("utf8")).toBe(s);
                },
            ),
            { numRuns: 60 },
        );
    });

    it("refuses NUL bytes", () => {
        expect(() => shellQuote("a\0b")).toThrow(/NUL/);
    });
});

describe("1Password item", () => {
    const field = (id: string, label: string, value: string, section?: string) => ({
        id,
        label,
        value,
        ...(section ? { section: { id: section } } : {}),
    });

    it("finds the field by id first (an API Credential's key is `credential`), then by label", () => {
        expect(selectField({ fields: [field("credential", "credential", "k1")] }, "credential")).toBe("k1");
        const item = { fields: [field("abc", "token", "k2", "s1"), field("token", "other", "k3", "s2"), field("xyz", "outside", "k4")] };
        expect(selectField(item, "token")).toBe("k3");
        expect(selectField(item, "abc")).toBe("k2");
        // A custom field outside any section is read too: Connect returns every field.
        expect(selectField(item, "outside")).toBe("k4");
        expect(selectField(item, "missing")).toBeUndefined();
        expect(selectField({ fields: [field("credential", "credential", "")] }, "credential")).toBeUndefined();
    });

    it("refuses a label that matches two fields", () => {
        const item = { fields: [field("a", "key", "a"), field("b", "key", "b")] };
        expect(() => selectField(item, "key")).toThrow(/ambiguous: 2 fields/);
    });

    it("reads expiry as Unix seconds or an ISO date, and rejects anything else without showing it", () => {
        const at = (value: string) => findExpiry({ fields: [field("e1", "expires", value, "rotation")] }, "expires");
        expect(at("1767225600")?.toISOString()).toBe("2026-01-01T00:00:00.000Z");
        expect(at("2026-02-24")?.toISOString()).toBe("2026-02-24T00:00:00.000Z");
        expect(at("")).toBeUndefined();
        expect(() => at("next tuesday")).toThrow(/does not hold a date/);
        expect(() => at("next tuesday")).not.toThrow(/tuesday/);
        expect(findExpiry({}, "expires")).toBeUndefined();
    });

    it("judges expiry against the warning window", () => {
        const now = new Date("2026-11-26T12:00:00Z");
        const inDays = (d: number) => new Date(now.getTime() + d * 86_400_000);
        expect(judgeExpiry(undefined, now, 14)).toEqual({ state: "unknown" });
        expect(judgeExpiry(inDays(30), now, 14)).toEqual({ state: "ok", days: 30 });
        expect(judgeExpiry(inDays(13.5), now, 14)).toEqual({ state: "soon", days: 13 });
        expect(judgeExpiry(inDays(-1), now, 14)).toEqual({ state: "expired", days: -1 });
        // The boundary: at the instant of expiry 0 days are left (soon); a millisecond later it has expired.
        expect(judgeExpiry(now, now, 14)).toEqual({ state: "soon", days: 0 });
        expect(judgeExpiry(new Date(now.getTime() - 1), now, 14)).toEqual({ state: "expired", days: -1 });
        expect(judgeExpiry(inDays(14), now, 14)).toEqual({ state: "ok", days: 14 });
        expect(judgeExpiry(new Date(now.getTime() + 14 * 86_400_000 - 1), now, 14)).toEqual({ state: "soon", days: 13 });
        expect(daysUntil(inDays(90), now)).toBe(90);
    });
});

describe("validators", () => {
    it("accepts authorized_keys host keys only", () => {
        expect(isSshPublicKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")).toBe(true);
        expect(isSshPublicKey("ecdsa-sha2-nistp256 AAAAE2VjZHNh root@host")).toBe(true);
        expect(isSshPublicKey("ringtail ssh-ed25519 AAAA")).toBe(false);
        expect(isSshPublicKey("ssh-ed25519")).toBe(false);
    });

    it("accepts only absolute, normalised, one-line file paths", () => {
        expect(envFilePathProblem("/etc/forgejo-runner/zot-api-key.env")).toBeUndefined();
        for (const bad of ["etc/x.env", "/etc/x/", "/etc/../x.env", "/etc//x.env", "/x.env", "/etc/a\nb.env"]) {
            expect(envFilePathProblem(bad)).toBeDefined();
        }
    });
});

describe("missingFieldMessage", () => {
    it("names the fields the item has, never a value, and the setting to fix", () => {
        const item = {
            fields: [
                { id: "credential", label: "credential", value: "" },
                { id: "e", label: "expires", value: "1767225600", section: { id: "r" } },
            ],
        };
        const message = missingFieldMessage(item, "zot-ci-api");
        expect(message).toBe(
            'the item has no field with id or label "zot-ci-api" (it has: credential, expires). ' +
                "Fix: set ci-registry-auth:field to the id or label of the field that holds the key (an API Credential's is credential).",
        );
        expect(message).not.toContain("1767225600");
        expect(missingFieldMessage({}, "x")).toContain("(it has none)");
    });

    it("says a field that exists is empty", () => {
        expect(missingFieldMessage({ fields: [{ id: "credential", label: "credential", value: "" }] }, "credential")).toBe(
            'field "credential" is empty. Fix: store the key in it (or set ci-registry-auth:field to the field that holds it).',
        );
    });
});

describe("ProgramError", () => {
    it("is a RunError (printed without a stack) whose message the SDK's serialization cannot prefix", () => {
        const err = new ProgramError("Deployment x has no container y. Fix: …");
        expect(pulumi.RunError.isInstance(err)).toBe(true);
        // What @pulumi/pulumi runtime/rpc.js does to an error that rejects a serialized output.
        err.message = `error serializing property "metadata": ${err.message}`;
        expect(err.message).toBe("Deployment x has no container y. Fix: …");
        expect(String(err)).toBe("ProgramError: Deployment x has no container y. Fix: …");
    });
});
