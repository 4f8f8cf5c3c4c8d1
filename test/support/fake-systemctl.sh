#!/bin/sh
# A stand-in for systemctl, for the unit tests of the host scripts and the
# unit harness (test/support/harness.ts): one unit ($FAKE_UNIT), every call
# logged to $FAKE_LOG. The sandbox tests run the same scripts against real
# systemd.
#
# With $FAKE_STATE, it also keeps the unit's main process: try-restart starts
# a new one (a `sleep`) with the variables of $FAKE_ENVFILE when the unit
# reads that file, as systemd's EnvironmentFile= would, and MainPID is its
# pid. Without it, MainPID is $FAKE_PID.
# shellcheck disable=SC2153
echo "$*" >> "$FAKE_LOG"
cmd=$1; shift
prop=
while [ "$1" = "-p" ] || [ "$1" = "--value" ] || [ "$1" = "--" ]; do
  case "$1" in -p) prop=$2; shift 2;; *) shift;; esac
done
unit=$1
[ "$unit" = "$FAKE_UNIT" ] || { [ "$cmd" = show ] && exit 0; exit 1; }
case "$cmd" in
  cat) echo "[Service]";;
  try-restart)
    code=${FAKE_RESTART_EXIT:-0}
    if [ "$code" = 0 ] && [ -n "${FAKE_STATE:-}" ]; then
      old=$(cat "$FAKE_STATE/pid" 2>/dev/null || true)
      if [ -n "$old" ]; then kill "$old" 2>/dev/null || true; fi
      # shellcheck disable=SC1090
      (set -a; if [ -n "${FAKE_ENVFILE:-}" ] && [ -r "$FAKE_ENVFILE" ]; then . "$FAKE_ENVFILE"; fi; exec sleep 600) </dev/null >/dev/null 2>&1 &
      echo $! > "$FAKE_STATE/pid"
    fi
    exit "$code";;
  is-active) echo active;;
  show) case "$prop" in
    EnvironmentFiles) echo "$FAKE_ENVFILES";;
    MainPID) if [ -n "${FAKE_STATE:-}" ]; then cat "$FAKE_STATE/pid" 2>/dev/null || echo 0; else echo "${FAKE_PID:-0}"; fi;;
    ExecStart) echo "{ path=/nix/store/r-forgejo-runner/bin/act_runner ; argv[]=/nix/store/r-forgejo-runner/bin/act_runner daemon $FAKE_FLAGS ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }";;
    WorkingDirectory) echo "$FAKE_WD";;
  esac;;
esac
