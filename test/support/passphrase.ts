/**
 * Decrypts what a Pulumi checkpoint keeps as secrets with the stack's
 * passphrase, as the pulumi CLI does (sdk/go/common/resource/config/crypt.go,
 * pkg/secrets/passphrase): the key is PBKDF2-SHA256 of the passphrase and
 * the salt in the checkpoint's `secrets_providers` state (1 000 000 rounds,
 * 32 bytes), each secret `v1:<nonce>:<ciphertext>` in AES-256-GCM (the tag at
 * the ciphertext's end). For the tests that ask what someone holding the
 * passphrase gets from a checkpoint they could read, whichever it is.
 */
import { createDecipheriv, pbkdf2Sync } from "node:crypto";

const keys = new Map<string, Buffer>();

function keyFor(passphrase: string, salt: string): Buffer {
    const id = `${salt}\0${passphrase}`;
    let key = keys.get(id);
    if (key === undefined) {
        key = pbkdf2Sync(passphrase, Buffer.from(salt, "base64"), 1_000_000, 32, "sha256");
        keys.set(id, key);
    }
    return key;
}

function decrypt(key: Buffer, value: string): string | undefined {
    const [version, nonce, data] = value.split(":");
    if (version !== "v1" || nonce === undefined || data === undefined) return undefined;
    const bytes = Buffer.from(data, "base64");
    try {
        const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(nonce, "base64"));
        decipher.setAuthTag(bytes.subarray(bytes.length - 16));
        return Buffer.concat([decipher.update(bytes.subarray(0, bytes.length - 16)), decipher.final()]).toString("utf8");
    } catch {
        return undefined;
    }
}

/** Every secret of a checkpoint's text decrypted with `passphrase` (none when it is not the stack's, or there is no salt). */
export function decryptedSecrets(checkpoint: string, passphrase: string): string[] {
    const salt = /"salt":\s*"v1:([A-Za-z0-9+/=]+):/.exec(checkpoint)?.[1];
    if (salt === undefined) return [];
    const key = keyFor(passphrase, salt);
    return [...checkpoint.matchAll(/"ciphertext":\s*"(v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+)"/g)]
        .map((m) => decrypt(key, m[1] ?? ""))
        .filter((v): v is string => v !== undefined);
}
