#!/usr/bin/env bash
# Tests of the TypeScript client (clients/js) with Node's test runner,
# against a real redis-server and nginx loading build/default's module
# (scripts/build.sh makes it).  npm ci installs exactly the lock file's
# packages, from npm's cache when it has them.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/clients/js"

if [ ! -f "$root/build/default/ngx_http_loom_module.so" ] \
   && [ -z "${LOOM_MODULE:-}" ]
then
    echo "test-js: build the module first (scripts/build.sh)" >&2
    exit 1
fi

npm ci --prefer-offline --no-audit --no-fund --loglevel=error
npm test --silent
