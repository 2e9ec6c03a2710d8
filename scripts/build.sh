#!/usr/bin/env bash
# Build ngx_http_loom_module.so as a dynamic nginx module.
#
#   scripts/build.sh                  against Debian's nginx-dev tree, with the
#                                     compiler and linker options of Debian's
#                                     /usr/sbin/nginx (as `nginx -V` shows them)
#   NGINX_SRC=/path/to/nginx-1.x scripts/build.sh
#                                     against an upstream nginx source tree
#
# Extra compiler or linker options (sanitizers, -O0) come from LOOM_CC_OPT and
# LOOM_LD_OPT; a build with extra options goes to its own directory, named by
# LOOM_FLAVOR (default "default").  nginx's own configure adds -Werror, so every
# warning stops the build.
#
# The result is build/<flavor>/ngx_http_loom_module.so.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
flavor=${LOOM_FLAVOR:-default}
out="$root/build/$flavor"
mkdir -p "$out"

extra_cc=${LOOM_CC_OPT:-}
extra_ld=${LOOM_LD_OPT:-}

if [ -n "${NGINX_SRC:-}" ]; then
    src=$(cd "$NGINX_SRC" && pwd)
    tree="$out/nginx"
    rm -rf "$tree"
    cp -a "$src" "$tree"
    flags=(--with-compat)
    cc_opt="-g -O2 $extra_cc"
    ld_opt="$extra_ld"

else
    src=/usr/share/nginx/src
    if [ ! -f "$src/configure" ]; then
        echo "build: $src/configure is missing: install nginx-dev" >&2
        exit 1
    fi

    tree="$out/nginx"

    # nginx -V prints: configure arguments: --with-cc-opt='...' --with-ld-opt='...'
    nginx_v=$(/usr/sbin/nginx -V 2>&1)
    cc_opt=$(printf '%s\n' "$nginx_v" | sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p")
    ld_opt=$(printf '%s\n' "$nginx_v" | sed -n "s/.*--with-ld-opt='\([^']*\)'.*/\1/p")
    cc_opt="$cc_opt $extra_cc"
    ld_opt="$ld_opt $extra_ld"

    # shellcheck disable=SC1091
    . "$src/conf_flags"
    flags=("${NGX_CONF_FLAGS[@]}")

    if [ ! -f "$tree/configure" ] || [ "$src/configure" -nt "$tree/configure" ]
    then
        rm -rf "$tree"
        mkdir -p "$tree"
        cp -a "$src/." "$tree/"
    fi
fi

# configure again only when the add-on script, its version script, the
# Redis scripts (made into a header by configure) or the options changed
stamp="$tree/.loom-configure"
want=$(printf '%s\n' "${flags[@]}" "$cc_opt" "$ld_opt" "$root" \
       | cat - "$root/config" "$root/ngx_http_loom_module.map" \
             "$root"/ngx_loom_module/lua/*.lua \
       | sha1sum | cut -d' ' -f1)

if [ ! -f "$tree/objs/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]
then
    (cd "$tree" && ./configure "${flags[@]}" \
        --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
        --add-dynamic-module="$root") > "$out/configure.log" 2>&1 || {
        tail -n 30 "$out/configure.log" >&2
        echo "build: configure failed, see $out/configure.log" >&2
        exit 1
    }
    echo "$want" > "$stamp"
fi

make -s -C "$tree" -f objs/Makefile modules \
    -j"$(nproc 2>/dev/null || echo 2)"

# a new file, renamed into place: an nginx running the old one keeps its copy
cp "$tree/objs/ngx_http_loom_module.so" "$out/.ngx_http_loom_module.so.$$"
mv -f "$out/.ngx_http_loom_module.so.$$" "$out/ngx_http_loom_module.so"
echo "build: $out/ngx_http_loom_module.so"
