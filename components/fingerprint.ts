import { createHash } from "node:crypto";

/** Prefix that marks a value as a fingerprint, never as key material. */
export const FINGERPRINT_PREFIX = "sha256:";

/** Number of hex digits kept from the SHA-256 digest (64 bits). */
export const FINGERPRINT_HEX_DIGITS = 16;

/**
 * Fingerprint of a secret: `sha256:` and the first 16 hex digits of its
 * SHA-256 digest over the UTF-8 bytes. The same value is computed on every
 * runner (`sha256sum`, sprig `sha256sum`), so fingerprints compare across
 * systems. Safe to publish for high-entropy API keys: 64 bits of a digest
 * of a random key reveal nothing usable about it.
 */
export function fingerprint(secret: string): string {
    const digest = createHash("sha256").update(secret, "utf8").digest("hex");
    return FINGERPRINT_PREFIX + digest.slice(0, FINGERPRINT_HEX_DIGITS);
}

/** True when `value` has the exact shape `fingerprint()` produces. */
export function isFingerprint(value: string): boolean {
    return new RegExp(`^${FINGERPRINT_PREFIX}[0-9a-f]{${FINGERPRINT_HEX_DIGITS}}$`).test(value);
}
