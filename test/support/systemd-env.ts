/**
 * A reference reader of systemd EnvironmentFile lines, written from
 * systemd.exec(5): bare values end at whitespace and take `\x` as `x`;
 * single quotes are literal; double quotes take `\` before `"`, `\`, `` ` ``
 * and `$`, and keep it before anything else. Used only to check the
 * renderer; the sandbox tests read the file with real systemd.
 */
export function readEnvAssignment(line: string): { name: string; value: string } | undefined {
    const eq = line.indexOf("=");
    if (line.startsWith("#") || eq <= 0) {
        return undefined;
    }
    const name = line.slice(0, eq).trim();
    const raw = line.slice(eq + 1);
    let value = "";
    let i = 0;
    while (i < raw.length) {
        const c = raw.charAt(i);
        if (c === "'") {
            const end = raw.indexOf("'", i + 1);
            if (end < 0) throw new Error("unterminated single quote");
            value += raw.slice(i + 1, end);
            i = end + 1;
        } else if (c === '"') {
            i++;
            while (i < raw.length && raw.charAt(i) !== '"') {
                if (raw.charAt(i) === "\\" && i + 1 < raw.length) {
                    const next = raw.charAt(i + 1);
                    value += '"\\`$'.includes(next) ? next : `\\${next}`;
                    i += 2;
                } else {
                    value += raw.charAt(i);
                    i++;
                }
            }
            if (i >= raw.length) throw new Error("unterminated double quote");
            i++;
        } else if (c === "\\" && i + 1 < raw.length) {
            value += raw.charAt(i + 1);
            i += 2;
        } else if (/\s/.test(c)) {
            break;
        } else {
            value += c;
            i++;
        }
    }
    return { name, value };
}

/** Reads the one variable an env file written by renderEnvFile sets. */
export function readEnvFile(content: string, name: string): string | undefined {
    for (const line of content.split("\n")) {
        const assignment = readEnvAssignment(line);
        if (assignment?.name === name) {
            return assignment.value;
        }
    }
    return undefined;
}
