#!/usr/bin/env bash
# The whole test suite: C unit tests of the pure parts, then integration
# tests against a real nginx loading the module and a real redis-server.
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

echo "== integration tests"
cd tests/integration
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider \
    --timeout 180 "$@"
