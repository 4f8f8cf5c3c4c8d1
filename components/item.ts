/**
 * Pure logic over the 1Password item as the onepassword provider returns it
 * (`onepassword:index/getItem:getItem`). Kept free of Pulumi so it is tested
 * directly.
 */

/** The slice of the provider's GetItemResult that this program reads. */
export interface ItemView {
    category?: string;
    credential?: string;
    password?: string;
    username?: string;
    sections?: {
        id?: string;
        label?: string;
        fields?: { id?: string; label?: string; value?: string; type?: string }[];
    }[];
}

/**
 * Finds the key in `item`. The provider maps the API Credential field with id
 * `credential` (and `password`, `username`) to top-level attributes; any other
 * field is only visible inside a section, matched here by id, then by label.
 * Returns undefined when there is no such field or it is empty.
 */
export function selectField(item: ItemView, field: string): string | undefined {
    const top: Record<string, string | undefined> = {
        credential: item.credential,
        password: item.password,
        username: item.username,
    };
    const direct = top[field];
    if (direct !== undefined && direct !== "") {
        return direct;
    }
    const all = (item.sections ?? []).flatMap((s) => s.fields ?? []);
    const byId = all.filter((f) => f.id === field);
    const matches = byId.length > 0 ? byId : all.filter((f) => f.label === field);
    if (matches.length > 1) {
        throw new Error(`field "${field}" is ambiguous: ${matches.length} fields in the item's sections carry that id or label`);
    }
    const value = matches[0]?.value;
    return value === undefined || value === "" ? undefined : value;
}

/**
 * Finds the expiry date in a section field labelled (or with id) `label`.
 * Accepts what 1Password stores for a DATE field (Unix seconds) and ISO 8601
 * dates. Returns undefined when absent; throws when present but unreadable.
 */
export function findExpiry(item: ItemView, label: string): Date | undefined {
    const all = (item.sections ?? []).flatMap((s) => s.fields ?? []);
    const found = all.find((f) => f.id === label) ?? all.find((f) => f.label === label);
    const raw = found?.value?.trim();
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

/** Classifies an expiry against the warning window. */
export function judgeExpiry(expires: Date | undefined, now: Date, warningDays: number): ExpiryVerdict {
    if (expires === undefined) {
        return { state: "unknown" };
    }
    const days = daysUntil(expires, now);
    if (expires.getTime() <= now.getTime()) {
        return { state: "expired", days };
    }
    return days < warningDays ? { state: "soon", days } : { state: "ok", days };
}

/**
 * Why `field` gave no key, and the fix, for an item where
 * {@link selectField} found nothing. Names fields, never values. The
 * onepassword provider returns the standard fields of an item and the
 * fields inside its sections only: a custom field added outside any section
 * (as 1Password's apps allow) never reaches the program.
 */
export function missingFieldMessage(item: ItemView, field: string): string {
    const standard = ["credential", "password", "username"];
    const sectioned = (item.sections ?? []).flatMap((s) => s.fields ?? []);
    const labels = [...new Set(sectioned.map((f) => f.label ?? f.id ?? "").filter((l) => l !== ""))];
    if (standard.includes(field) || sectioned.some((f) => f.id === field || f.label === field)) {
        return `field "${field}" is empty. Fix: store the key in it (or set ci-registry-auth:field to the field that holds it).`;
    }
    return (
        `no field "${field}" among the item's standard fields (${standard.join(", ")}) or in its sections` +
        ` (${labels.length > 0 ? `they hold: ${labels.join(", ")}` : "it has none"}). ` +
        "1Password's provider sees only those: a custom field outside any section is invisible to it. " +
        "Fix: move the field into a section of the item (or keep the key in an API Credential item's 'credential' field), " +
        "then set ci-registry-auth:field to its label."
    );
}
