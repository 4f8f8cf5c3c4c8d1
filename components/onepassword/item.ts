/**
 * Pure logic over a 1Password item as Connect returns it (components/onepassword/connect.ts).
 * Kept free of Pulumi and I/O so it is tested directly. Names fields, never values.
 */
import type { ConnectField, ConnectItem } from "./connect";

/** The slice of Connect's item that this program reads. */
export type ItemView = Pick<ConnectItem, "category" | "fields" | "sections">;

/** Fields whose id is `name`, else those whose label is `name`. */
function fieldsNamed(item: ItemView, name: string): ConnectField[] {
    const all = item.fields ?? [];
    const byId = all.filter((f) => f.id === name);
    return byId.length > 0 ? byId : all.filter((f) => f.label === name);
}

/**
 * Finds the key in `item`: the field whose id is `field` (an API
 * Credential's key is the field with id `credential`), else the one
 * labelled so. Returns undefined when there is no such field or it is
 * empty; throws when the label names two fields.
 */
export function selectField(item: ItemView, field: string): string | undefined {
    const matches = fieldsNamed(item, field);
    if (matches.length > 1) {
        throw new Error(`field "${field}" is ambiguous: ${matches.length} fields of the item carry that id or label`);
    }
    const value = matches[0]?.value;
    return value === undefined || value === "" ? undefined : value;
}

/**
 * Finds the expiry date in the field with id (or label) `label`. Accepts
 * what 1Password stores for a DATE field (Unix seconds) and ISO 8601
 * dates. Returns undefined when absent; throws when present but unreadable.
 */
export function findExpiry(item: ItemView, label: string): Date | undefined {
    const raw = fieldsNamed(item, label)[0]?.value?.trim();
    if (raw === undefined || raw === "") {
        return undefined;
    }
    const parsed = parseDate(raw);
    if (parsed === undefined) {
        // Never the value: the setting may name the field that holds the key.
        throw new Error(`field "${label}" does not hold a date (Unix seconds or YYYY-MM-DD; its value is not shown)`);
    }
    return parsed;
}

function parseDate(raw: string): Date | undefined {
    if (/^\d{9,11}$/.test(raw)) {
        return new Date(Number(raw) * 1000);
    }
    if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(raw)) {
        const date = new Date(raw.length === 10 ? `${raw}T00:00:00Z` : raw);
        return Number.isNaN(date.getTime()) ? undefined : date;
    }
    return undefined;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The shortest key delivered. Its fingerprint (64 bits of SHA-256) is
 * published in outputs, comments and issues; a short key could be found
 * from it by trying every value. zot's keys are `zak_` and 32 characters.
 */
export const MIN_KEY_LENGTH = 20;

/** Whole days from `now` until `expires`; negative once it has passed. */
export function daysUntil(expires: Date, now: Date): number {
    return Math.floor((expires.getTime() - now.getTime()) / DAY_MS);
}

/** What to do about a key's expiry. */
export type ExpiryVerdict =
    { state: "unknown" } | { state: "ok"; days: number } | { state: "soon"; days: number } | { state: "expired"; days: number };

/**
 * Within the warning window: whole days left fewer than the window
 * (`expiryWarningDays` 14 warns from 13 days left, not at 14).
 */
export function withinWarning(days: number, warningDays: number): boolean {
    return days < warningDays;
}

/**
 * The one expiry rule, for `up`'s error and warning, the PR comment and
 * key-health's issue alike, from the whole days left ({@link daysUntil}):
 * expired below 0 (the expiry has passed, by any time), soon within the
 * window, else ok. At the very instant of expiry 0 days are left: soon.
 */
export function expiryVerdict(days: number, warningDays: number): Exclude<ExpiryVerdict, { state: "unknown" }> {
    if (days < 0) return { state: "expired", days };
    return withinWarning(days, warningDays) ? { state: "soon", days } : { state: "ok", days };
}

/** Classifies an expiry date at `now` against the warning window ({@link expiryVerdict}). */
export function judgeExpiry(expires: Date | undefined, now: Date, warningDays: number): ExpiryVerdict {
    return expires === undefined ? { state: "unknown" } : expiryVerdict(daysUntil(expires, now), warningDays);
}

/** Why `field` gave no key, and the fix, for an item where {@link selectField} found nothing. Names fields, never values. */
export function missingFieldMessage(item: ItemView, field: string): string {
    if (fieldsNamed(item, field).length > 0) {
        return `field "${field}" is empty. Fix: store the key in it (or set ci-registry-auth:field to the field that holds it).`;
    }
    const labels = [...new Set((item.fields ?? []).map((f) => f.label ?? f.id ?? "").filter((l) => l !== ""))];
    return (
        `the item has no field with id or label "${field}" (${labels.length > 0 ? `it has: ${labels.join(", ")}` : "it has none"}). ` +
        "Fix: set ci-registry-auth:field to the id or label of the field that holds the key (an API Credential's is credential)."
    );
}

/** What a rotation records on the item: the key, zot's expiry of it, and zot's id of it. */
export interface RotatedKey {
    value: string;
    expiresAt: Date;
    keyId: string;
}

/**
 * `item` with the rotated key recorded: the key in `names.field` (which
 * must exist, as the program reads it), the expiry as 1Password stores a
 * date (Unix seconds) in `names.expiryField`, and zot's id of the key in
 * `names.keyIdField`; each of the last two is added (a DATE and a STRING
 * field, outside any section) when the item has none. Every other field,
 * and the item itself, stay as read. Throws (naming fields, never values)
 * when the key's field is missing or a name is ambiguous.
 */
export function withRotatedKey<T extends ItemView>(
    item: T,
    names: { field: string; expiryField: string; keyIdField: string },
    key: RotatedKey,
): T {
    const fields = (item.fields ?? []).map((f) => ({ ...f }));
    const set = (name: string, value: string, type: string | undefined): void => {
        const matches = fieldsNamed({ fields }, name);
        if (matches.length > 1)
            throw new Error(`field "${name}" is ambiguous: ${matches.length} fields of the item carry that id or label`);
        const found = matches[0];
        if (found !== undefined) found.value = value;
        else if (type === undefined) throw new Error(`the item has no field with id or label "${name}"`);
        else fields.push({ label: name, type, value });
    };
    set(names.field, key.value, undefined);
    set(names.expiryField, String(Math.floor(key.expiresAt.getTime() / 1000)), "DATE");
    set(names.keyIdField, key.keyId, "STRING");
    return { ...item, fields };
}

/** zot's id of the item's key, from the field `keyIdField`, when recorded. */
export function recordedKeyId(item: ItemView, keyIdField: string): string | undefined {
    const value = fieldsNamed(item, keyIdField)[0]?.value?.trim();
    return value === undefined || value === "" ? undefined : value;
}
