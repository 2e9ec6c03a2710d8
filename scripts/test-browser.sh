#!/usr/bin/env bash
# The browser tests (tests/browser): the console (console/, put together
# by console/build.sh) in Debian's headless Chromium, driven by
# puppeteer-core, against a real redis-server and nginx loading
# build/default's module (scripts/build.sh makes it).  Screenshots go to
# build/browser/ (LOOM_ARTEFACTS), which is printed.
#
# npm ci installs exactly the lock file's packages; no browser is
# downloaded (puppeteer-core has no download step, and
# PUPPETEER_SKIP_DOWNLOAD says so to anything that would).  The run is
# bounded: LOOM_BROWSER_TIMEOUT seconds (default 180).
#
# Extra arguments go to node --test (e.g. --test-name-pattern=history).

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
export PUPPETEER_SKIP_DOWNLOAD=1

if [ ! -f "$root/build/default/ngx_http_loom_module.so" ] \
   && [ -z "${LOOM_MODULE:-}" ]
then
    echo "test-browser: build the module first (scripts/build.sh)" >&2
    exit 1
fi
chromium=${LOOM_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "test-browser: $chromium is missing (scripts/deps.sh test)" >&2
    exit 1
fi

"$root/console/build.sh" "${LOOM_CONSOLE_DIR:-$root/build/console}"

cd "$root/tests/browser"
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
timeout --kill-after=10 "${LOOM_BROWSER_TIMEOUT:-180}" \
    node --test --test-reporter=spec --test-concurrency=1 "$@" \
    ./*.test.mjs
