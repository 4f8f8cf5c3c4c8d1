# The sandbox's parts have fixed names on this machine: the ringtail
# network namespace and its addresses, the cluster's and registry's ports.
# Two runs at once (a developer's `npm test` while CI runs on the same
# machine) would take them from each other midway. So every script that
# starts the sandbox holds one machine-wide lock for as long as it runs;
# a second run waits for the first, and says for whom it waits.
#
#   . sandbox/lock.sh && sandbox_lock WHAT
#
# The lock is an flock on fd 9, so it goes with the process (also through
# `exec`, and when the holder is killed); the side file only says who holds it.
SANDBOX_LOCK=${CI_REGISTRY_AUTH_SANDBOX_LOCK:-/run/lock/ci-registry-auth-sandbox.lock}
SANDBOX_LOCK_WAIT=${CI_REGISTRY_AUTH_SANDBOX_LOCK_WAIT:-2700}

sandbox_lock() {
    local what=$1
    mkdir -p "$(dirname "$SANDBOX_LOCK")"
    exec 9>>"$SANDBOX_LOCK"
    if ! flock -n 9; then
        printf 'sandbox: another run holds the sandbox (%s); waiting for it, at most %d s\n' \
            "$(cat "$SANDBOX_LOCK.holder" 2>/dev/null || echo unknown)" "$SANDBOX_LOCK_WAIT" >&2
        flock -w "$SANDBOX_LOCK_WAIT" 9 || {
            printf 'sandbox: error: the sandbox is still held after %d s by %s.\n' \
                "$SANDBOX_LOCK_WAIT" "$(cat "$SANDBOX_LOCK.holder" 2>/dev/null || echo unknown)" >&2
            printf 'Fix: let that run finish, or stop it (its process group), then run again.\n' >&2
            exit 1
        }
    fi
    printf '%s, pid %d, %s, since %s\n' "$what" "$BASHPID" "$PWD" "$(date -u +%H:%M:%SZ)" >"$SANDBOX_LOCK.holder"
}
