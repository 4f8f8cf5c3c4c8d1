# shellcheck shell=sh
# The functions every host script starts with, after its generated header
# (set -eu, LC_ALL=C, and the settings f, unit and var: components/ssh/host-scripts.ts).
# Comment and blank lines are dropped when the scripts are loaded.
# shellcheck disable=SC2154

# Prints the value of $var from an env file in the forms renderEnvFile writes
# (bare, single-quoted, or double-quoted with backslash escapes).
env_value() {
  awk -v p="$var=" 'index($0, p) == 1 { v = substr($0, length(p) + 1)
    if (v ~ /^'"'"'.*'"'"'$/) { v = substr(v, 2, length(v) - 2) }
    else if (v ~ /^".*"$/) { v = substr(v, 2, length(v) - 2); o = ""
      for (i = 1; i <= length(v); i++) { c = substr(v, i, 1); if (c == "\\") { i++; c = substr(v, i, 1) }; o = o c }; v = o }
    printf "%s", v; exit }' "$1"
}

# Fingerprint of stdin, or "none" when stdin is empty: a key is never empty.
fp_stdin() {
  h=$(sha256sum | cut -c1-16)
  if [ "$h" = e3b0c44298fc1c14 ]; then echo none; else echo "sha256:$h"; fi
}

# Whether the unit's EnvironmentFiles include the file: systemctl shows one
# `<path> (ignore_errors=yes|no)` per line; the whole path must match.
unit_reads_file() {
  systemctl show -p EnvironmentFiles --value -- "$unit" 2>/dev/null | grep -qxF -e "$f (ignore_errors=yes)" -e "$f (ignore_errors=no)"
}

# Fingerprint of $var in the environment of the unit's running main process, or "none".
process_fp() {
  pid=$(systemctl show -p MainPID --value -- "$unit" 2>/dev/null || echo 0)
  if [ "${pid:-0}" -gt 0 ] && [ -r "/proc/$pid/environ" ]; then
    tr '\0' '\n' < "/proc/$pid/environ" | awk -v p="$var=" 'index($0, p) == 1 { printf "%s", substr($0, length(p) + 1); exit }' | fp_stdin
  else
    echo none
  fi
}
