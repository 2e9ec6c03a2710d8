#!/usr/bin/env bash
# Mechanical checks of the nginx code style on the module and test C code:
# 80 columns, no tabs, no trailing spaces, no // comments, no CRLF.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

files=$(ls ngx_loom_module/*.[ch] tests/unit/*.c tests/fuzz/*.c tests/common/*.h)
status=0

report() {
    if [ -n "$2" ]; then
        echo "$1:"
        echo "$2"
        status=1
    fi
}

# shellcheck disable=SC2086
report "longer than 80 columns" "$(awk 'length > 80 {
    print FILENAME ":" FNR }' $files)"
# shellcheck disable=SC2086
report "tabs" "$(grep -n "$(printf '\t')" $files || true)"
# shellcheck disable=SC2086
report "trailing spaces" "$(grep -n ' $' $files || true)"
# shellcheck disable=SC2086
report "// comments" "$(grep -n '^\s*//\|[;{}]\s*//' $files || true)"
# shellcheck disable=SC2086
report "CRLF" "$(grep -ln "$(printf '\r')" $files || true)"

exit $status
