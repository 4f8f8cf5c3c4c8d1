# shellcheck shell=sh
# Installs the check (on stdin) at $p, root-owned 0755, replaced atomically:
# the forced command of key-health's key. Setting from the header: p.
# shellcheck disable=SC2154

dir=$(dirname -- "$p")
umask 077
mkdir -p -- "$dir"
tmp=$(mktemp -- "$dir/.ci-registry-auth-check.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chown 0:0 -- "$tmp"
chmod 0755 -- "$tmp"
mv -f -- "$tmp" "$p"
echo installed=true
