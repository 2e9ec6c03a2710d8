#!/usr/bin/env bash
# Runs Data Loom locally: redis-server (AOF on) on 127.0.0.1:6380 and nginx
# with the module on 127.0.0.1:8080, in the foreground.  Ctrl-C stops both.
# Data and logs stay under run/ in the checkout.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/deps.sh run
scripts/build.sh

mkdir -p run/redis run/nginx/logs run/nginx/tmp

redis_pid=
nginx_pid=

stop() {
    trap - EXIT INT TERM
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

(cd run/redis && exec redis-server "$root/conf/redis.conf") &
redis_pid=$!

for _ in $(seq 100); do
    redis-cli -p 6380 ping > /dev/null 2>&1 && break
    if ! kill -0 "$redis_pid" 2>/dev/null; then
        echo "run: redis-server did not start, see run/redis/redis.log" >&2
        exit 1
    fi
    sleep 0.1
done

/usr/sbin/nginx -p "$root/run/nginx/" -c "$root/conf/nginx.conf" -t -q

/usr/sbin/nginx -p "$root/run/nginx/" -c "$root/conf/nginx.conf" \
    -g "daemon off;" &
nginx_pid=$!

cat <<MSG
Data Loom is running:
    WebSocket  ws://127.0.0.1:8080/ws
    status     http://127.0.0.1:8080/status
    logs       run/nginx/logs/, run/redis/redis.log
Ctrl-C stops nginx and redis-server.
MSG

wait "$nginx_pid"
