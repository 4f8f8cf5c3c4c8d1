import * as pulumi from "@pulumi/pulumi";

import { readItem, type ConnectItem } from "./connect";
import { fingerprint } from "./fingerprint";
import { findExpiry, judgeExpiry, MIN_KEY_LENGTH, missingFieldMessage, selectField } from "./item";

/** Arguments of {@link OnePasswordKey}. */
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
    /** Clock used for the expiry check. Default: the current time. */
    now?: () => Date;
}

/**
 * The zot CI API key, read from a 1Password item through Connect's REST API
 * on every preview and up. The key is a secret Output from the moment it
 * is read; only its fingerprint and its expiry are plain. An expired key
 * stops the deployment before anything reaches a runner.
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

    constructor(name: string, args: OnePasswordKeyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ci-registry-auth:onepassword:Key", name, {}, opts);

        const where = `item "${args.item}" in vault "${args.vault}"`;
        // One error naming the setting and the fix, without a JavaScript stack
        // trace (RunError; a ResourceError would carry this whole component).
        const fail = (message: string): pulumi.RunError => new pulumi.RunError(`1Password: ${message}`);
        // The whole item stays inside this chain, registered nowhere; only the
        // chosen field leaves it, as a secret.
        const item: pulumi.Output<ConnectItem> = pulumi.output(
            readItem(args.connectUrl, args.connectToken, args.vault, args.item).catch((err: unknown) => {
                throw fail(`could not read ${where}: ${err instanceof Error ? err.message : String(err)}. ${readFix(err)}`);
            }),
        );

        const now = args.now ?? ((): Date => new Date());
        const verdict = item.apply((i) => {
            let expires: Date | undefined;
            try {
                expires = findExpiry(i, args.expiryField);
            } catch (err) {
                throw fail(
                    `${where}: ${err instanceof Error ? err.message : String(err)}. ` +
                        `Fix: store the expiry as a date in the field "${args.expiryField}", or set ci-registry-auth:expiryField to the label of the field that holds it.`,
                );
            }
            const judged = judgeExpiry(expires, now(), args.expiryWarningDays);
            switch (judged.state) {
                case "expired":
                    throw fail(
                        `the key in ${where} expired on ${expires?.toISOString().slice(0, 10)}. ` +
                            "Fix: create a new API key for the registry user, store it in the item with a new expiry date, then run `pulumi up` again.",
                    );
                case "soon":
                    void pulumi.log.warn(
                        `the key in ${where} expires in ${judged.days} day(s), on ${expires?.toISOString().slice(0, 10)}: rotate it soon.`,
                        this,
                    );
                    break;
                case "unknown":
                    void pulumi.log.warn(
                        `${where} records no expiry in a field labelled "${args.expiryField}", so expiry is not checked.`,
                        this,
                    );
                    break;
                case "ok":
                    break;
            }
            return { expires, judged };
        });
        // The key resolves only after the expiry check passed, so an expired
        // key never reaches a runner.
        this.value = pulumi.secret(
            pulumi.all([item, verdict]).apply(([i]) => {
                let value: string | undefined;
                try {
                    value = selectField(i, args.field);
                } catch (err) {
                    throw fail(
                        `${where}: ${err instanceof Error ? err.message : String(err)}. Fix: set ci-registry-auth:field to the id of the field that holds the key.`,
                    );
                }
                if (value === undefined) {
                    throw fail(`${where} has no value in field "${args.field}": ${missingFieldMessage(i, args.field)}`);
                }
                if (value.length < MIN_KEY_LENGTH) {
                    throw fail(
                        `the key in ${where} (field "${args.field}") has ${value.length} characters, fewer than ${MIN_KEY_LENGTH}: ` +
                            "its published fingerprint could be reversed by trying every value, so it is not delivered. " +
                            "Fix: store the registry's whole API key in the field (zot's are zak_ and 32 characters), or set ci-registry-auth:field to the field that holds it.",
                    );
                }
                return value;
            }),
        );
        this.fingerprint = pulumi.unsecret(this.value.apply(fingerprint));
        this.expiresAt = verdict.apply((v) => v.expires?.toISOString());
        this.daysUntilExpiry = verdict.apply((v) => (v.judged.state === "unknown" ? undefined : v.judged.days));

        this.registerOutputs({
            fingerprint: this.fingerprint,
            expiresAt: this.expiresAt,
            daysUntilExpiry: this.daysUntilExpiry,
        });
    }
}

/** The fix for a failed read, by what Connect answered (components/connect.ts). */
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
