# shellcheck shell=sh
# The delivery (create and update): the env file arrives on stdin, is written
# beside the target (root, 0600) and renamed over it only when the bytes
# differ; then the unit restarts. The target must be ours: not a symlink, an
# existing file starting with our header, and no directory from / to it that
# anyone but root can write (a sticky world-writable ancestor like /tmp
# excepted; the file's own directory never). A failure before the rename
# leaves the old file untouched; a delivery killed before it leaves a temp
# file that the next one removes first (deliveries are serialized by the
# stack's lock). Exit codes: components/ssh/host-scripts.ts (EXIT_*).
# Settings from the generated header: f, unit, var, our_header.
# shellcheck disable=SC2154

if ! systemctl cat -- "$unit" >/dev/null 2>&1; then
  echo "ci-registry-auth: unit $unit does not exist on $(hostname); nothing was changed. Fix: set runner.unit to the runner's unit" >&2
  exit 3
fi
not_ours() {
  echo "ci-registry-auth: $1; $f was not changed. Fix: point runner.envFile at a path of its own in a root-only directory (e.g. /etc/forgejo-runner/zot-api-key.env)" >&2
  exit 7
}
if [ -L "$f" ]; then not_ours "$f is a symbolic link"; fi
if [ -e "$f" ] && { [ ! -f "$f" ] || [ "$(head -c ${#our_header} -- "$f")" != "$our_header" ]; }; then
  not_ours "$f exists and was not written by ci-registry-auth (its first line is not our header)"
fi
umask 077
dir=$(dirname -- "$f")
mkdir -p -- "$dir"
# From the file's directory up to /: root-owned, and writable by root alone.
# stat's octal mode is read as an octal constant by $(( )).
d=$dir
while :; do
  if [ -L "$d" ]; then not_ours "$d is a symbolic link"; fi
  owner=$(stat -c %u -- "$d") mode=$(stat -c %a -- "$d")
  if [ "$owner" != 0 ]; then not_ours "$d is owned by uid $owner, not root"; fi
  if [ $((0$mode & 022)) != 0 ] && { [ "$d" = "$dir" ] || [ $((0$mode & 01000)) = 0 ]; }; then not_ours "$d (mode $mode) can be written by others than root"; fi
  [ "$d" = / ] && break
  d=$(dirname -- "$d")
done
for leftover in "$dir"/.ci-registry-auth.*; do if [ -f "$leftover" ]; then rm -f -- "$leftover"; fi; done
write_failed() {
  echo "ci-registry-auth: writing the new env file in $dir failed (is the file system full or read-only?); $f was not changed" >&2
  exit 6
}
tmp=$(mktemp -- "$dir/.ci-registry-auth.XXXXXX" 2>/dev/null) || write_failed
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp" 2>/dev/null || write_failed
if [ "$(grep -c -- "^$var=" "$tmp")" != 1 ]; then
  echo "ci-registry-auth: the env file sent on stdin does not set $var exactly once; nothing was changed" >&2
  exit 4
fi
chown 0:0 -- "$tmp"
chmod 0600 -- "$tmp"
if [ -f "$f" ] && cmp -s -- "$tmp" "$f"; then
  changed=false
else
  sync -- "$tmp" 2>/dev/null || sync
  mv -f -- "$tmp" "$f"
  changed=true
fi
echo "changed=$changed"
file_fp=$(env_value "$f" | fp_stdin)
echo "file_fp=$file_fp"
# Also restart when the bytes are the same but the running unit does not
# hold them: a delivery interrupted after its rename, before its restart.
stale=false
if [ "$changed" = false ] && unit_reads_file && [ "$(systemctl is-active -- "$unit" 2>/dev/null || true)" = active ] && [ "$(process_fp)" != "$file_fp" ]; then
  stale=true
fi
if [ "$changed" = true ] || [ "$stale" = true ]; then
  if systemctl try-restart -- "$unit"; then echo restarted=true; else
    echo "ci-registry-auth: wrote $f but restarting $unit failed: see journalctl -u $unit" >&2
    exit 5
  fi
else
  echo restarted=false
fi
