# Shared by toolchain/build and sandbox/build: progress, cache keys and
# atomic Go builds. Callers set $cache and source this file.

say() { printf '%s: %s\n' "${LOG_PREFIX:-build}" "$*" >&2; }
elapsed() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
die() { say "error: $*"; exit 1; }

# key NAME FILES...: a cache key over a binary's inputs and the Go version.
key() {
    local name=$1
    shift
    { go version; printf '%s\n' "$name"; cat "$@"; } | sha256sum | cut -c1-16
}

# cached NAME KEY: the directory that holds (or will hold) that build.
cached() { printf '%s/build/%s-%s' "$cache" "$1" "$2"; }

# Prints progress for long builds until killed.
ticker() {
    local what=$1 start=$2
    while sleep 60; do say "… still building $what ($(elapsed "$start"))"; done
}

# go_build NAME OUTDIR WORKDIR PACKAGE LDFLAGS: go build in WORKDIR into
# OUTDIR/NAME, through a temp name so an interrupted build leaves nothing
# that looks finished. On failure: which binary, the last lines, the log.
# GO_TAGS and GO_CGO (default osusergo,grpcnotrace and 0) change the build
# tags and cgo for one call.
go_build() {
    local name=$1 out=$2 work=$3 pkg=$4 ldflags=$5 start log tick
    start=$(date +%s)
    log=$cache/logs/$name.log
    mkdir -p "$out" "$cache/logs"
    say "building $name"
    ticker "$name" "$start" &
    tick=$!
    if ! (cd "$work" && CGO_ENABLED=${GO_CGO:-0} go build -trimpath -tags "${GO_TAGS:-osusergo,grpcnotrace}" \
        -ldflags "-s -w $ldflags" -o "$out/$name.partial" "$pkg") >"$log" 2>&1; then
        kill "$tick" 2>/dev/null || true
        say "building $name failed after $(elapsed "$start"); last lines:"
        tail -n 30 "$log" >&2
        die "full log: $log"
    fi
    kill "$tick" 2>/dev/null || true
    mv -f "$out/$name.partial" "$out/$name"
    say "built $name in $(elapsed "$start")"
}

# provider_plugins: the directory that holds the command provider plugin,
# which this project cannot build (README, "Offline toolchain"):
# CI_REGISTRY_AUTH_PROVIDER_PLUGINS when set, else the cache's
# provider-plugins directory. Prints nothing when either plugin is missing.
provider_plugins() {
    local dir=${CI_REGISTRY_AUTH_PROVIDER_PLUGINS:-$cache/provider-plugins}
    if [ -x "$dir/pulumi-resource-command" ]; then
        printf '%s\n' "$dir"
    fi
}
