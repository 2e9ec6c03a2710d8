#!/usr/bin/env bash
# The whole test suite: C unit tests of the pure parts, the fuzz corpus,
# the benchmark's generator and reference broadcaster against each other
# (bench/check.sh), then integration
# tests against a real nginx loading the module and a real redis-server,
# then the TypeScript client's tests (scripts/test-js.sh), then the
# browser console's tests in a headless Chromium (scripts/test-browser.sh).
# The last three run even when one before them fails; the exit status is
# non-zero when any failed.
#
# Extra arguments go to pytest (e.g. -k frames, -x).

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/deps.sh test
scripts/check-style.sh
scripts/build.sh

echo "== unit tests"
make -s -C tests/unit check

echo "== fuzz corpus replay"
make -s -C tests/fuzz check

echo "== the benchmark's generator against its reference broadcaster"
make -s -C bench check

status=0

echo "== integration tests"
(cd tests/integration && /usr/bin/python3 -m pytest -q -p no:cacheprovider \
    --timeout 180 "$@") || status=$?

echo "== TypeScript client tests"
scripts/test-js.sh || status=$?

echo "== browser console tests"
scripts/test-browser.sh || status=$?

exit $status
