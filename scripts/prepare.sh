# Shared by scripts/test, scripts/demo and scripts/bench, sourced from the
# project directory: the cache, the provider plugins, and everything a run
# that starts the sandbox needs first.
#
#   . scripts/prepare.sh
#   use_provider_plugins          # the whole stacks when the command plugin is there
#   prepare_sandbox_run WHAT      # toolchain, sandbox, dependencies, the lock
cache=${CI_REGISTRY_AUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ci-registry-auth}
# shellcheck source=../toolchain/lib.sh
. toolchain/lib.sh

# Exports CI_REGISTRY_AUTH_PROVIDER_PLUGINS when the command provider plugin
# is found (README, "Offline toolchain"), and unsets it otherwise.
use_provider_plugins() {
    local plugins
    plugins=$(provider_plugins)
    if [ -n "$plugins" ]; then export CI_REGISTRY_AUTH_PROVIDER_PLUGINS=$plugins; else unset CI_REGISTRY_AUTH_PROVIDER_PLUGINS; fi
}

# The toolchain's and the sandbox's environment (built or taken from the
# cache), the npm and Debian dependencies, then the machine-wide sandbox
# lock for the rest of the run, held as WHAT (sandbox/lock.sh).
prepare_sandbox_run() {
    eval "$(bash toolchain/build --env)"
    eval "$(bash sandbox/build --env)"
    bash scripts/deps
    bash sandbox/deps
    # shellcheck source=../sandbox/lock.sh
    . sandbox/lock.sh
    sandbox_lock "$1"
}
