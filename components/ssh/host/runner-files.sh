# shellcheck shell=sh
# Where the runner's files are, read from the unit's own settings. Their
# TypeScript twins (daemonConfigPath, parseRunnerConfig's runner.file) must
# give the same answers: test/unit/host-scripts.test.ts runs one fixture
# table through both.

# The daemon's --config in an ExecStart argv line (stdin), as systemd shows
# it (`argv[]=` elements joined by spaces): the first runner binary
# (forgejo-runner, act_runner, act-runner, gitea-runner, by basename) with
# `daemon` after it, then --config X, --config=X, -c X, -cX, -c=X (cobra's
# forms; a persistent flag, so before `daemon` too). A shell wrapper
# (`/bin/sh -c "cd /x && forgejo-runner daemon --config '/etc/r.yaml'"`) is
# read as its commands: split at `;`, `&&` and `||`, each word without its
# quote characters. A path with spaces is beyond this reader
# (systemd's line has lost the quoting). daemonConfigPath is its twin.
daemon_config_path() {
  awk '
    # Shell quote removal for a word without spaces: every quote character goes.
    function unquote(w) { gsub(/["\047]/, "", w); return w }
    # The segment words[1..n]: 1 when it holds the daemon (its --config printed, if any), else 0.
    function segment(n,  i, j, k, w, s, parts) {
      for (i = 1; i <= n; i++) {
        k = split(words[i], parts, "/")
        if (parts[k] ~ /^(forgejo-runner|act_runner|act-runner|gitea-runner)$/) break
      }
      if (i > n) return 0
      for (j = i + 1; j <= n; j++) if (words[j] == "daemon") break
      if (j > n) return 0
      for (j = i + 1; j <= n; j++) {
        w = words[j]
        if (w == "--config" || w == "-c") { print words[j + 1]; return 1 }
        if (w ~ /^--config=./) { print substr(w, 10); return 1 }
        if (w ~ /^-c./) { s = substr(w, 3); if (s ~ /^=./) s = substr(s, 2); print s; return 1 }
      }
      return 1
    }
    {
      n = 0
      for (f = 1; f <= NF; f++) {
        w = $f
        if (w == ";" || w == "&&" || w == "||") { if (segment(n)) exit; n = 0; continue }
        end = (w ~ /;$/)
        if (end) w = substr(w, 1, length(w) - 1)
        words[++n] = unquote(w)
        if (end) { if (segment(n)) exit; n = 0 }
      }
      if (segment(n)) exit
    }'
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
