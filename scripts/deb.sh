#!/usr/bin/env bash
# Builds the Debian package of the module:
#
#   scripts/deb.sh        (or make deb)
#
# -> build/deb/libnginx-mod-http-loom_<version>_amd64.deb, with the
#    .buildinfo and .changes next to it, and lintian's findings in
#    build/deb/lintian.txt (lintian errors fail the build).
#
# The version is NGX_HTTP_LOOM_VERSION of
# ngx_loom_module/ngx_http_loom_module.h.  The package is built by
# dpkg-buildpackage and dh-sequence-nginx in a copy of the source (tracked
# and untracked, not ignored files) in a temporary directory, so the work
# tree stays clean.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/deps.sh deb

version=$(sed -n 's/^#define NGX_HTTP_LOOM_VERSION  *"\([^"]*\)".*/\1/p' \
          ngx_loom_module/ngx_http_loom_module.h)
if [ -z "$version" ]; then
    echo "deb: no NGX_HTTP_LOOM_VERSION in ngx_http_loom_module.h" >&2
    exit 1
fi

out="$root/build/deb"
tmp=$(mktemp -d /tmp/loom-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

src="$tmp/libnginx-mod-http-loom-$version"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do
              [ -e "$f" ] && printf '%s\0' "$f"
          done \
        | tar --null -T - -cf - | tar -xf - -C "$src"
else
    # an unpacked source without git: all but what builds and runs make
    tar --exclude=./build --exclude=./run --exclude=./.git -cf - . \
        | tar -xf - -C "$src"
fi

# the package carries the module's version: a changelog that names another
# one gets an entry for this one, in the copy only
logged=$(cd "$src" && dpkg-parsechangelog -S Version)
if [ "$logged" != "$version" ]; then
    echo "deb: debian/changelog is at $logged, the module at $version:" \
         "packaging $version (add a changelog entry)" >&2
    {
        echo "libnginx-mod-http-loom ($version) unstable; urgency=medium"
        echo
        echo "  * Version $version of the module."
        echo
        echo " -- $(cd "$src" && dpkg-parsechangelog -S Maintainer)" \
             " $(date -R)"
        echo
        cat "$src/debian/changelog"
    } > "$tmp/changelog"
    mv "$tmp/changelog" "$src/debian/changelog"
fi

(cd "$src" && dpkg-buildpackage -b -uc -us) > "$tmp/build.log" 2>&1 || {
    tail -n 40 "$tmp/build.log" >&2
    echo "deb: dpkg-buildpackage failed" >&2
    exit 1
}

mkdir -p "$out"
rm -f "$out"/libnginx-mod-http-loom_*
cp "$tmp"/libnginx-mod-http-loom_"$version"_* \
   "$tmp"/libnginx-mod-http-loom-dbgsym_"$version"_* "$out/" 2>/dev/null || true
cp "$tmp/build.log" "$out/build.log"

deb="$out/libnginx-mod-http-loom_${version}_amd64.deb"
if [ ! -f "$deb" ]; then
    echo "deb: $deb was not built, see $out/build.log" >&2
    exit 1
fi

if command -v lintian > /dev/null; then
    lintian --info "$out"/libnginx-mod-http-loom_"$version"_amd64.changes \
        > "$out/lintian.txt" 2>&1 || true
    if grep -q '^E: ' "$out/lintian.txt"; then
        grep '^E: ' "$out/lintian.txt" >&2
        echo "deb: lintian found errors, see $out/lintian.txt" >&2
        exit 1
    fi
    grep '^W: ' "$out/lintian.txt" >&2 || true
fi

echo "deb: $deb"
