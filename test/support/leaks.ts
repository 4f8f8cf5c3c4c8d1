/**
 * Leak scans that, when they find a key, say where without printing it: a
 * failing `expect(text).not.toContain(key)` would print the whole text,
 * key included, into the test log.
 */

/** The forms a key may leak in: as is, base64, and as the basic-auth token for `user`. */
export function keyForms(key: string, user = "zot-ci"): { form: string; value: string }[] {
    return [
        { form: "plain", value: key },
        { form: "base64", value: Buffer.from(key).toString("base64") },
        { form: "basic-auth", value: Buffer.from(`${user}:${key}`).toString("base64") },
    ];
}

/**
 * Every place (source name, line number, form, which key) where one of
 * `keys` appears in `sources`; the key itself is never part of the answer.
 */
export function findLeaks(sources: Record<string, string>, keys: Record<string, string>): string[] {
    const all = Object.entries(keys).flatMap(([name, key]) => keyForms(key).map((f) => ({ ...f, label: `<${name}:${f.form}>` })));
    const mask = (text: string): string => all.reduce((t, f) => t.split(f.value).join(f.label), text);
    const found: string[] = [];
    for (const [source, text] of Object.entries(sources)) {
        const lines = text.split("\n");
        for (const [name, key] of Object.entries(keys)) {
            for (const { form, value } of keyForms(key)) {
                lines.forEach((line, i) => {
                    if (line.includes(value)) {
                        const at = line.indexOf(value);
                        const around = line.slice(Math.max(0, at - 80), at + value.length + 80);
                        found.push(`${source}:${i + 1}: ${name} (${form}) in …${mask(around)}…`);
                    }
                });
            }
        }
    }
    return found;
}
