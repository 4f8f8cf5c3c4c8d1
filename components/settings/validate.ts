/** Validators for names that end up in Kubernetes objects and on a host. */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SYSTEMD_SERVICE = /^[A-Za-z0-9:_.\\@-]+\.service$/;
const SSH_PUBLIC_KEY =
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n\r]*)?$/;
const SSH_USER = /^[a-z_][a-z0-9_-]*\$?$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$/;

/** Namespaces and container names: an RFC 1123 label of at most 63 characters. */
export function isDns1123Label(value: string): boolean {
    return value.length <= 63 && DNS1123_LABEL.test(value);
}

/** Object names (Deployment, Secret, ExternalSecret, ClusterSecretStore). */
export function isDns1123Subdomain(value: string): boolean {
    return value.length <= 253 && DNS1123_SUBDOMAIN.test(value);
}

/** A `.service` unit name as systemd accepts it (escaped, at most 255 bytes). */
export function isSystemdServiceName(value: string): boolean {
    return value.length <= 255 && SYSTEMD_SERVICE.test(value);
}

/** One public host key in `authorized_keys` form: `<type> <base64> [comment]`. */
export function isSshPublicKey(value: string): boolean {
    return SSH_PUBLIC_KEY.test(value.trim());
}

/** A POSIX login name. */
export function isSshUser(value: string): boolean {
    return value.length <= 32 && SSH_USER.test(value);
}

/** A DNS name or an IPv4/IPv6 literal: no spaces, no scheme, no port. */
export function isHost(value: string): boolean {
    return value.length <= 253 && HOSTNAME.test(value);
}

/**
 * Why `path` cannot be the env file on the host, or undefined when it can:
 * absolute, normalised, one line, and naming a file rather than a directory.
 */
export function envFilePathProblem(path: string): string | undefined {
    if (/[\0\n\r]/.test(path)) {
        return "it contains a newline or NUL byte";
    }
    if (!path.startsWith("/")) {
        return "it is not absolute";
    }
    if (path.endsWith("/")) {
        return "it names a directory";
    }
    if (path.split("/").some((part) => part === "." || part === "..")) {
        return "it contains '.' or '..' segments";
    }
    if (path.includes("//")) {
        return "it contains an empty segment ('//')";
    }
    if (path.split("/").length < 3) {
        return "the file must live in a directory below / (e.g. /etc/forgejo-runner/zot-api-key.env)";
    }
    return undefined;
}
