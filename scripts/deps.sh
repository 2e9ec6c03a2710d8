#!/usr/bin/env bash
# Installs the Debian packages a step needs, only those missing.
#
#   scripts/deps.sh build|run|test|check|bench|deb ...
#
# check is what fuzzing and the sanitizer run need on top of the tests; deb
# is what `make deb` needs (the package build needs no fakeroot: it declares
# Rules-Requires-Root: no).  The tests build the package too.
#
# apt-get update runs once, and only when something has to be installed.

set -euo pipefail

build="nginx nginx-dev build-essential libhiredis-dev libjansson-dev
       libjwt-dev libssl-dev libpcre2-dev zlib1g-dev"
run="redis-server curl procps"
test="python3 python3-pytest python3-pytest-timeout python3-websockets
      python3-cryptography python3-redis libcmocka-dev openssl libtest-json-schema-acceptance-perl
      libnginx-mod-nchan prometheus python3-prometheus-client
      nodejs npm chromium jq iproute2"
check="clang valgrind"
bench="$run jq iproute2"
deb="debhelper dpkg-dev lintian"

want=
for step in "$@"; do
    case $step in
        build) want="$want $build" ;;
        run)   want="$want $build $run" ;;
        test)  want="$want $build $run $test $deb" ;;
        check) want="$want $build $run $test $deb $check" ;;
        bench) want="$want $build $bench" ;;
        deb)   want="$want $build $deb" ;;
        *) echo "deps: unknown step \"$step\"" >&2; exit 2 ;;
    esac
done

missing=
for p in $want; do
    # nodejs from NodeSource carries its own npm, which Debian's npm
    # package conflicts with: an npm on the PATH is enough
    if [ "$p" = npm ] && command -v npm > /dev/null; then
        continue
    fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q "install ok installed"
    then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

sudo=
if [ "$(id -u)" != 0 ]; then
    sudo=sudo
fi

echo "deps: installing$missing"
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 \
    install -y -qq \
    --no-install-recommends $missing > /dev/null
