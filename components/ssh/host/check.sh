# shellcheck shell=sh
# The read-only check (ringtail-verify, the end of every update, and the
# forced command of key-health's key): prints key=value facts, fingerprints
# and metadata only. `checked_at` is the host's clock in nanoseconds: of two
# reports, the later describes the host as it is. The runner's config and
# registration (its token blanked) travel base64 in the (secret) report and
# their contents are parsed by the program, never here; the host finds only
# their paths (runner-files.sh, whose TypeScript twins pass one fixture
# table: test/unit/host-scripts.test.ts).
# Settings from the generated header: f, unit, var, ck (key-health's public
# key blob, "" when not configured), login (runner.user).
# shellcheck disable=SC2154

echo "checked_at=$(date +%s%N)"
if [ -f "$f" ]; then
  echo file=present
  echo "file_owner=$(stat -c %u:%g -- "$f")"
  echo "file_mode=$(stat -c %a -- "$f")"
  echo "file_fp=$(env_value "$f" | fp_stdin)"
else
  echo file=absent
fi
echo "unit_active=$(systemctl is-active -- "$unit" 2>/dev/null || true)"
if unit_reads_file; then
  echo unit_reads_file=true
else
  echo unit_reads_file=false
fi
echo "process_fp=$(process_fp)"

# What the runner's jobs will see: the daemon's --config and the registration
# file (runner.file, default .runner, relative to the working directory).
argv=$(systemctl show -p ExecStart --value -- "$unit" 2>/dev/null | sed -n 's/.*argv\[\]=\([^;]*\) ;.*/\1/p' | head -n 1)
wd=$(systemctl show -p WorkingDirectory --value -- "$unit" 2>/dev/null | sed 's/^!//')
echo "working_directory=$wd"
cfg=$(printf '%s\n' "$argv" | daemon_config_path)
if [ -z "$cfg" ]; then
  echo config=none
elif [ -f "$cfg" ] && [ -r "$cfg" ]; then
  echo "config=$cfg"
  echo "config_b64=$(base64 -w0 < "$cfg")"
else
  echo "config=$cfg"
  echo config_b64=absent
fi
reg=
if [ -n "$cfg" ] && [ -r "$cfg" ]; then
  reg=$(runner_file "$cfg")
fi
[ -n "$reg" ] || reg=.runner
case $reg in /*) ;; *) reg="${wd%/}/$reg" ;; esac
echo "registration=$reg"
if [ -f "$reg" ] && [ -r "$reg" ]; then
  echo "registration_b64=$(sed -E 's/("token"[[:space:]]*:[[:space:]]*)"[^"]*"/\1"-"/g' "$reg" | base64 -w0)"
else
  echo registration_b64=absent
fi

# Whether key-health's key is restricted to this check: every line of the
# login user's authorized keys files (as sshd -T names them, else OpenSSH's
# default) that carries it, base64, for the program to judge. Public keys
# and options only.
if [ -z "$ck" ]; then
  echo check_key=none
else
  home=$(getent passwd "$login" 2>/dev/null | cut -d: -f6 || true)
  sshd_bin=$(command -v sshd 2>/dev/null || true)
  for p in /usr/sbin/sshd /run/current-system/sw/bin/sshd; do [ -n "$sshd_bin" ] || { [ -x "$p" ] && sshd_bin=$p; }; done
  files=
  if [ -n "$sshd_bin" ]; then files=$("$sshd_bin" -T -C "user=$login,host=localhost,addr=127.0.0.1" 2>/dev/null | awk '$1 == "authorizedkeysfile" { $1 = ""; print }' || true); fi
  [ -n "$files" ] || files=".ssh/authorized_keys .ssh/authorized_keys2"
  lines=$(for kf in $files; do
    kf=$(printf "%s" "$kf" | sed -e "s|%h|$home|g" -e "s|%u|$login|g" -e "s|%%|%|g")
    case $kf in /*) ;; *) kf="$home/$kf" ;; esac
    if [ -r "$kf" ]; then grep -F -- "$ck" "$kf" || true; fi
  done)
  echo "check_key_lines_b64=$(printf "%s" "$lines" | base64 -w0)"
fi
