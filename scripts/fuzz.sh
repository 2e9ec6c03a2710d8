#!/usr/bin/env bash
# Runs the libFuzzer targets, each for a given time, starting from the
# checked-in corpus (copied: new inputs stay under build/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# targets: json ws utf8 schema jschema_compile jschema_validate perm keyfile
#          jwt cred
#
# A crash leaves its input in build/fuzz/crash-<target>-* and fails.
# The executions per target are printed at the end.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${1:-60}
shift || true
targets=${*:-json ws utf8 schema jschema_compile jschema_validate perm keyfile
           jwt cred}

scripts/deps.sh check
scripts/build.sh > /dev/null
make -s -C tests/fuzz fuzz

summary=
status=0

for t in $targets; do
    work="build/fuzz/corpus-$t"
    mkdir -p "$work"
    cp -n tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true

    log="build/fuzz/$t.log"
    echo "== fuzzing $t for ${seconds}s"

    if build/fuzz/fuzz_"$t" -max_total_time="$seconds" -print_final_stats=1 \
           -artifact_prefix="build/fuzz/crash-$t-" -max_len=65536 \
           "$work" > "$log" 2>&1
    then
        result=ok
    else
        result=FAILED
        status=1
        tail -n 40 "$log"
    fi

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    summary="$summary$(printf '%-17s %-7s %12s executions in %ss' \
                      "$t" "$result" "${execs:-?}" "$seconds")\n"
done

printf '\n%b' "$summary"
exit $status
