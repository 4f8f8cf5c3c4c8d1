import * as pulumi from "@pulumi/pulumi";

import { readItem, type ConnectItem } from "./connect";
import { fingerprint } from "../fingerprint";
import { ProgramError } from "../errors";
import { findExpiry, judgeExpiry, MIN_KEY_LENGTH, missingFieldMessage, selectField, recordedKeyId } from "./item";

/** Arguments of {@link readKey}. */
export interface OnePasswordKeyArgs {
    /** 1Password Connect URL (`onepassword:url`). */
    connectUrl: string;
    /** 1Password Connect token ($OP_CONNECT_TOKEN): used for the read, kept in no Output. */
    connectToken: string;
    /** Vault name or id. */
    vault: string;
    /** Item title (or id). */
    item: string;
    /** Field id or label that holds the key. */
    field: string;
    /** Id or label of the field with the expiry date. */
    expiryField: string;
    /** Warn when the key expires within this many days. */
    expiryWarningDays: number;
    /** Label of the field recording zot's id of the key (written by the rotation). */
    keyIdField: string;
    /** Clock used for the expiry check. Default: the current time. */
    now?: () => Date;
}

/** The key as 1Password holds it now, checked. Only `value` is secret. */
export interface KeyRead {
    value: string;
    /** `sha256:` and 16 hex digits of the key's SHA-256. */
    fingerprint: string;
    /** The expiry recorded on the item (ISO 8601), or undefined when none is recorded. */
    expiresAt: string | undefined;
    /** Whole days until expiry, or undefined when no expiry is recorded. */
    daysUntilExpiry: number | undefined;
    /** What `up` should say about the key (expiry soon, or not recorded). */
    warnings: string[];
    /** zot's id of the key, as the item records it (`keyIdField`), when it does. */
    keyId?: string;
}

/**
 * Reads the key from its 1Password item through Connect's REST API and
 * checks it, before any resource that uses it exists: an unreadable item, a
 * missing or short key, or an expired one stops the run with one error
 * naming the setting and the fix (a RunError, printed alone: not behind the
 * "error serializing property" chain a failing resource input gets).
 */
export async function readKey(args: OnePasswordKeyArgs): Promise<KeyRead> {
    const where = `item "${args.item}" in vault "${args.vault}"`;
    const fail = (message: string): ProgramError => new ProgramError(`1Password: ${message}`);
    const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));
    let item: ConnectItem;
    try {
        item = await readItem(args.connectUrl, args.connectToken, args.vault, args.item);
    } catch (err) {
        throw fail(`could not read ${where}: ${describe(err)}. ${readFix(err)}`);
    }
    let expires: Date | undefined;
    try {
        expires = findExpiry(item, args.expiryField);
    } catch (err) {
        throw fail(
            `${where}: ${describe(err)}. ` +
                `Fix: store the expiry as a date in the field "${args.expiryField}", or set ci-registry-auth:expiryField to the label of the field that holds it.`,
        );
    }
    const judged = judgeExpiry(expires, (args.now ?? ((): Date => new Date()))(), args.expiryWarningDays);
    const day = expires?.toISOString().slice(0, 10);
    if (judged.state === "expired") {
        throw fail(
            `the key in ${where} expired on ${day}. ` +
                "Fix: create a new API key for the registry user, store it in the item with a new expiry date, then run `pulumi up` again.",
        );
    }
    let value: string | undefined;
    try {
        value = selectField(item, args.field);
    } catch (err) {
        throw fail(`${where}: ${describe(err)}. Fix: set ci-registry-auth:field to the id of the field that holds the key.`);
    }
    if (value === undefined) {
        throw fail(`${where} has no value in field "${args.field}": ${missingFieldMessage(item, args.field)}`);
    }
    if (value.length < MIN_KEY_LENGTH) {
        throw fail(
            `the key in ${where} (field "${args.field}") has ${value.length} characters, fewer than ${MIN_KEY_LENGTH}: ` +
                "its published fingerprint could be reversed by trying every value, so it is not delivered. " +
                "Fix: store the registry's whole API key in the field (zot's are zak_ and 32 characters), or set ci-registry-auth:field to the field that holds it.",
        );
    }
    const keyId = recordedKeyId(item, args.keyIdField);
    const warnings =
        judged.state === "soon"
            ? [`the key in ${where} expires in ${judged.days} day(s), on ${day ?? ""}: rotate it soon.`]
            : judged.state === "unknown"
              ? [`${where} records no expiry in a field labelled "${args.expiryField}", so expiry is not checked.`]
              : [];
    return {
        value,
        fingerprint: fingerprint(value),
        expiresAt: expires?.toISOString(),
        daysUntilExpiry: judged.state === "unknown" ? undefined : judged.days,
        warnings,
        ...(keyId !== undefined ? { keyId } : {}),
    };
}

/**
 * The zot CI API key in the stack: what readKey found, as Outputs. The key
 * is a secret Output from here on; its fingerprint and expiry are plain.
 */
export class OnePasswordKey extends pulumi.ComponentResource {
    /** The key itself: secret. */
    public readonly value: pulumi.Output<string>;
    /** `sha256:` and 16 hex digits of the key's SHA-256. */
    public readonly fingerprint: pulumi.Output<string>;
    /** The expiry recorded on the item (ISO 8601), or undefined when none is recorded. */
    public readonly expiresAt: pulumi.Output<string | undefined>;
    /** Whole days until expiry, or undefined when no expiry is recorded. */
    public readonly daysUntilExpiry: pulumi.Output<number | undefined>;

    constructor(name: string, read: KeyRead, opts?: pulumi.ComponentResourceOptions) {
        super("ci-registry-auth:onepassword:Key", name, {}, opts);
        for (const warning of read.warnings) {
            void pulumi.log.warn(warning, this);
        }
        this.value = pulumi.secret(read.value);
        this.fingerprint = pulumi.output(read.fingerprint);
        this.expiresAt = pulumi.output(read.expiresAt);
        this.daysUntilExpiry = pulumi.output(read.daysUntilExpiry);
        this.registerOutputs({
            fingerprint: this.fingerprint,
            expiresAt: this.expiresAt,
            daysUntilExpiry: this.daysUntilExpiry,
        });
    }
}

/** The fix for a failed read, by what Connect answered (components/onepassword/connect.ts). */
function readFix(err: unknown): string {
    const status = (err as { status?: number }).status;
    if (status === 401) return "Fix: OP_CONNECT_TOKEN is not a token this Connect server accepts; export the right one.";
    if (status === 403)
        return 'Fix: the token may not read this vault; use a token granted it (README, "Trust model"), or set ci-registry-auth:vault.';
    if (status === 0) return "Fix: check onepassword:url (or OP_CONNECT_HOST) names a Connect server this machine reaches.";
    return (
        "Fix: check ci-registry-auth:vault and ci-registry-auth:item name an existing item (titles must be unique in the vault), " +
        "and that onepassword:url and OP_CONNECT_TOKEN reach a Connect server that can read the vault."
    );
}
