#!/bin/sh
# Turns the module's Redis scripts into a C header, at configure time:
#
#   scripts/lua2c.sh DIR NAME... > ngx_http_loom_scripts.h
#
# Each DIR/NAME.lua becomes one entry of ngx_http_loom_scripts[], in the
# order given, with NGX_HTTP_LOOM_SCRIPT_<NAME> as its index.  Comment
# lines ("--") are left out: the scripts travel to Redis with every EVAL.

set -eu

dir=$1
shift

echo "/* generated from $dir by scripts/lua2c.sh: do not edit */"
echo
echo "#ifndef _NGX_HTTP_LOOM_SCRIPTS_H_INCLUDED_"
echo "#define _NGX_HTTP_LOOM_SCRIPTS_H_INCLUDED_"
echo

i=0
for name in "$@"; do
    upper=$(echo "$name" | tr 'a-z' 'A-Z')
    echo "#define NGX_HTTP_LOOM_SCRIPT_$upper  $i"
    i=$((i + 1))
done

echo "#define NGX_HTTP_LOOM_SCRIPTS  $i"
echo
echo "#ifdef NGX_HTTP_LOOM_SCRIPTS_BODIES"
echo
echo "static ngx_str_t  ngx_http_loom_scripts[NGX_HTTP_LOOM_SCRIPTS] = {"

for name in "$@"; do
    echo
    echo "    /* $name.lua */"
    echo "    ngx_string("
    grep -v '^[[:space:]]*--' "$dir/$name.lua" \
        | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/'
    echo "    ),"
done

echo "};"
echo
echo "#endif"
echo
echo "#endif /* _NGX_HTTP_LOOM_SCRIPTS_H_INCLUDED_ */"
