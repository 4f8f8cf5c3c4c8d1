/**
 * Quotes `value` as one POSIX shell word. Single quotes pass every byte
 * through literally; an embedded single quote closes, escapes and reopens.
 * Only ever used for configuration (paths, unit names), never for the key,
 * which travels on stdin.
 */
export function shellQuote(value: string): string {
    if (value.includes("\0")) {
        throw new Error("a shell word cannot contain a NUL byte");
    }
    return `'${value.replace(/'/g, `'\\''`)}'`;
}
