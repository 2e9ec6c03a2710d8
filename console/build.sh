#!/usr/bin/env bash
# Puts the console together in one directory, ready for an nginx `alias`:
#
#   console/build.sh [DIR]        default DIR: build/console
#
# DIR gets the page (index.html, console.css, the console's modules) and
# dataloom/, the browser part of the compiled client (clients/js/dist:
# its JavaScript modules, not the type declarations nor the Node-only
# dataloom-types command).  The client is compiled first (npm ci and tsc
# in clients/js, from npm's cache when it has the packages).

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/console}

(
    cd "$root/clients/js"
    if [ ! -x node_modules/.bin/tsc ]; then
        npm ci --prefer-offline --no-audit --no-fund --loglevel=error
    fi
    node_modules/.bin/tsc -p .
)

mkdir -p "$out"
rm -rf "$out/dataloom"
mkdir "$out/dataloom"
install -m 644 "$root"/console/index.html "$root"/console/console.css \
    "$root"/console/favicon.svg "$root"/console/*.js "$out/"
for f in client errors index socket types; do
    install -m 644 "$root/clients/js/dist/$f.js" "$out/dataloom/"
done
echo "console: $out"
