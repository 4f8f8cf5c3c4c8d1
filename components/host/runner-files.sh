# shellcheck shell=sh
# Where the runner's files are, read from the unit's own settings. Their
# TypeScript twins (daemonConfigPath, parseRunnerConfig's runner.file) must
# give the same answers: test/unit/host-scripts.test.ts runs one fixture
# table through both.

# The daemon's --config in an ExecStart argv line (stdin): --config X,
# --config=X, -c X, -cX, -c=X (cobra's forms), anywhere after the binary:
# it is a persistent flag, so it may come before the daemon subcommand too.
daemon_config_path() {
  awk '{ for (i = 2; i <= NF; i++) {
    if ($i == "--config" || $i == "-c") { print $(i + 1); exit }
    if ($i ~ /^--config=/) { print substr($i, 10); exit }
    if ($i ~ /^-c./) { s = substr($i, 3); sub(/^=/, "", s); print s; exit }
  } }'
}

# runner.file in the config file $1: the `file:` key of the top-level
# `runner:` block at its first indentation, unquoted; nothing when absent.
runner_file() {
  awk -v q="'" '
    /^runner:[ \t]*(#.*)?$/ { r = 1; n = -1; next }
    r && /^[^ \t#]/ { exit }
    r && /^[ \t]+[^ \t#]/ {
      match($0, /^[ \t]+/); if (n < 0) n = RLENGTH
      if (RLENGTH == n && $0 ~ /^[ \t]+file:/) {
        v = $0; sub(/^[ \t]+file:[ \t]*/, "", v); sub(/[ \t]+#.*$/, "", v)
        if (substr(v, 1, 1) == q || substr(v, 1, 1) == "\"") v = substr(v, 2, length(v) - 2)
        print v; exit
      }
    }' "$1"
}
