#!/usr/bin/env bash
# Checks the generator and the reference broadcaster against each other:
#
#   bench/check.sh        (or: make -C bench check)
#
# Starts bench/refcast with two workers on a free port, runs a small
# pub/sub workload (2 topics, 40 subscribers, 2 publishers), a small
# connections-only one and a small snapshot burst (50 subscribes with
# snapshot while 200 publishes/s go out) through bench/loomgen, and fails
# unless every expected delivery arrived exactly once, from the right
# publisher, with no error, every idle connection answered its ping, and
# every snapshot was answered and followed by the next revisions with no
# gap and nothing before its answer.

set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-bench-check.XXXXXX")
pid=""

cleanup() {
    [ -z "$pid" ] || kill -TERM "$pid" 2> /dev/null || true
    [ -z "$pid" ] || wait "$pid" 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "check: $*" >&2
    exit 1
}

for tool in jq ss; do
    command -v "$tool" > /dev/null || fail "$tool is required"
done

while :; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    [ -n "$(ss -Htln "sport = :$port")" ] || break
done

"$dir/refcast" --port "$port" --workers 2 2> "$tmp/refcast.log" &
pid=$!

for _ in $(seq 100); do
    [ -z "$(ss -Htln "sport = :$port")" ] || break
    kill -0 "$pid" 2> /dev/null || fail "refcast did not start"
    sleep 0.05
done

"$dir/loomgen" --port "$port" --topics 2 --subscribers 40 --publishers 2 \
    --rate 100 --duration 1 --drain 5 --quiet --json "$tmp/pubsub.json" \
    > "$tmp/pubsub.txt" 2>&1 \
    || fail "loomgen (pub/sub) failed: $(cat "$tmp/pubsub.txt")"

jq -e '.expected > 0 and .delivered == .expected and .lost == 0
       and .sent == .acked and .errors == 0 and .duplicates == 0
       and .out_of_order == 0 and .misrouted == 0 and .malformed == 0
       and .unexpected == 0 and .subscribed == 40
       and .closed_cleanly == 43' "$tmp/pubsub.json" > /dev/null \
    || fail "pub/sub results: $(cat "$tmp/pubsub.json")"

"$dir/loomgen" --port "$port" --connections-only 200 --quiet \
    --json "$tmp/idle.json" > "$tmp/idle.txt" 2>&1 \
    || fail "loomgen (connections) failed: $(cat "$tmp/idle.txt")"

jq -e '.held == 200 and .connect_failures == 0 and .disconnects == 0
       and .closed_cleanly == 200' "$tmp/idle.json" > /dev/null \
    || fail "connections results: $(cat "$tmp/idle.json")"

"$dir/loomgen" --port "$port" --snapshots 50 --rate 200 --timeout 10 \
    --json "$tmp/snapshot.json" > "$tmp/snapshot.txt" 2>&1 \
    || fail "loomgen (snapshots) failed: $(cat "$tmp/snapshot.txt")"

jq -e '.clients == 50 and .answered == 50 and .failed == 0 and .gaps == 0
       and .early == 0 and .malformed == 0 and .delivered > 0 and .ok' \
    "$tmp/snapshot.json" > /dev/null \
    || fail "snapshot results: $(cat "$tmp/snapshot.json")"

echo "check: loomgen and refcast agree (pub/sub, idle connections and" \
     "snapshots)"
