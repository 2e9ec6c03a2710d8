#!/usr/bin/env bash
# Memory and undefined-behaviour checks:
#
#   1. the unit tests under valgrind (errors and leaks fail);
#   2. the module built with AddressSanitizer and UndefinedBehaviorSanitizer,
#      preloaded into Debian's nginx, under the whole integration suite: any
#      report lands in the error log, which every test checks.
#
# Arguments go to pytest.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/deps.sh check
scripts/build.sh > /dev/null

echo "== unit tests under valgrind"
make -s -C tests/unit all
for t in build/unit/test_*; do
    printf '%-28s ' "$(basename "$t")"
    valgrind -q --error-exitcode=9 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect "$t" > /dev/null
    echo clean
done

echo "== module with ASan and UBSan"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

LOOM_FLAVOR=asan \
LOOM_CC_OPT="-O1 -fno-omit-frame-pointer $san" \
LOOM_LD_OPT="$san" \
    scripts/build.sh

asan=$(gcc -print-file-name=libasan.so)

export LOOM_MODULE="$root/build/asan/ngx_http_loom_module.so"
export LOOM_NGINX_ENV="{\"LD_PRELOAD\": \"$asan\",
    \"ASAN_OPTIONS\": \"detect_leaks=1:fast_unwind_on_malloc=0\"}"

echo "== integration tests against it"
cd tests/integration
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider --timeout 300 "$@"
