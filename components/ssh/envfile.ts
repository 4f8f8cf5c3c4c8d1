/**
 * Rendering of a systemd `EnvironmentFile=` holding one variable.
 *
 * systemd parses these files itself (PID 1 reads them, which is why a
 * DynamicUser service can use a root-only file). The rendering below picks,
 * per value, the simplest of systemd's three forms that keeps every byte:
 * bare, single-quoted (literal up to the next quote) or double-quoted
 * (backslash escapes `"`, `\`, `` ` `` and `$`).
 */

const ENV_VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BARE_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;
const PRINTABLE_NO_SPACE = /^[\x21-\x7e]+$/;

/** True when `name` is a portable environment variable name. */
export function isValidEnvVarName(name: string): boolean {
    return ENV_VAR_NAME.test(name);
}

/**
 * Why `value` cannot be an API key we deliver, or undefined when it can.
 * The message never contains the value.
 */
export function envValueProblem(value: string): string | undefined {
    if (value.length === 0) {
        return "it is empty";
    }
    if (!PRINTABLE_NO_SPACE.test(value)) {
        return "it contains whitespace, control or non-ASCII characters (a pasted newline or space?)";
    }
    return undefined;
}

/** Renders `value` in the simplest systemd EnvironmentFile form. */
export function quoteEnvValue(value: string): string {
    if (BARE_SAFE.test(value)) {
        return value;
    }
    if (!value.includes("'")) {
        return `'${value}'`;
    }
    return `"${value.replace(/["\\`$]/g, (c) => `\\${c}`)}"`;
}

/**
 * The whole env file: a header comment and `NAME=value`. Throws, without
 * echoing the value, when the name or value cannot be written safely.
 */
export function renderEnvFile(name: string, value: string): string {
    if (!isValidEnvVarName(name)) {
        throw new Error(`invalid environment variable name ${JSON.stringify(name)}`);
    }
    const problem = envValueProblem(value);
    if (problem !== undefined) {
        throw new Error(`the value for ${name} cannot be written to an EnvironmentFile: ${problem}`);
    }
    return `# Managed by ci-registry-auth (Pulumi). Do not edit: the next \`pulumi up\` rewrites it.\n${name}=${quoteEnvValue(value)}\n`;
}
