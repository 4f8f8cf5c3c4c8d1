# shellcheck shell=sh
# Removes the installed check. Setting from the header: p.
# shellcheck disable=SC2154

rm -f -- "$p"
echo removed=true
