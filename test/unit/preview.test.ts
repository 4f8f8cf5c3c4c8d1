/** `pulumi preview` of each stack under mocks: fingerprints, no key. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { fingerprint } from "../../components/fingerprint";
import { defineStack } from "../../components/stack";
import { Harness, healthyWorld, plainStrings } from "../support/harness";
import { valueOf } from "../support/outputs";
import { stackConfig } from "../support/stack-config";

const KEY = "zak_preview_0123456789abcdef0123456789";
const harness = new Harness();
beforeAll(() => harness.install(true));
afterAll(() => harness.dispose());

describe.each(["ringtail", "indri"] as const)("preview of %s", (stack) => {
    it("computes the key's fingerprint and puts the key in no plaintext input", async () => {
        harness.reset(healthyWorld(KEY));
        const outputs = await defineStack(stackConfig(stack));
        expect(await valueOf(outputs.keyFingerprint)).toBe(fingerprint(KEY));
        // Everything a preview registers, once what it reports has resolved.
        await valueOf(outputs.hasKey);
        expect(harness.resources.map((r) => r.type)).toEqual(
            expect.arrayContaining([
                "ci-registry-auth:onepassword:Key",
                `ci-registry-auth:${stack === "indri" ? "kubernetes" : "ssh"}:Runner`,
            ]),
        );
        for (const r of harness.resources) {
            expect(plainStrings(r.inputs).filter((s) => s.text.includes(KEY))).toEqual([]);
        }
    });
});
