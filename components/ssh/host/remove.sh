# shellcheck shell=sh
# Delete: removes the env file and restarts a running unit so that it drops
# the variable. Touches nothing else on the host. With its header (and the
# functions loaded before it), this text is the delivery's `delete` and must
# stay byte for byte what the first deliveries were made with: ssh-runner.ts
# replaces the delivery when it changes (components/ssh/host-scripts.ts).
# shellcheck disable=SC2154

if [ -e "$f" ]; then
  rm -f -- "$f"
  if systemctl cat -- "$unit" >/dev/null 2>&1 && ! systemctl try-restart -- "$unit"; then
    echo "ci-registry-auth: removed $f but restarting $unit failed; if the unit needs the file, prefix its EnvironmentFile= path with '-'" >&2
    exit 5
  fi
fi
echo removed=true
