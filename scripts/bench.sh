#!/usr/bin/env bash
# Benchmarks the broker with bench/loomgen and writes docs/performance.md.
#
#   scripts/bench.sh [--duration S] [--only NAME] [--out FILE]
#
#   --duration S   seconds of publishing per workload (default 15)
#   --only NAME    run one workload: fanout-<rate> (e.g. fanout-1000),
#                  topics-100, flood, idle or idle-lean
#   --out FILE     the report (default docs/performance.md); the raw JSON
#                  of each workload goes to bench/ next to it
#
# It builds the module (scripts/build.sh) and the generator, starts its own
# redis-server (AOF, appendfsync everysec) and nginx in a temporary
# directory on free ports, runs each workload against a freshly started
# nginx on fresh topics, and stops everything it started when it exits.
# Set LOOM_BENCH_KEEP=1 to keep the temporary directory (logs, configs),
# LOOM_BENCH_LOCATION to add directives to the WebSocket location (to
# measure a setting, e.g. "tcp_nodelay off;").

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
module="$root/build/default/ngx_http_loom_module.so"
loomgen="$root/bench/loomgen"
nginx_bin=${LOOM_NGINX:-/usr/sbin/nginx}
workers=2
nofile=20000

all_workloads=(fanout-100 fanout-300 fanout-1000 fanout-2000 fanout-3000
               fanout-4000 topics-100 flood idle idle-lean)

duration=15
only=""
out="$root/docs/performance.md"

usage() {
    sed -n '2,11s/^# \{0,1\}//p' "$0"
}

die() {
    echo "bench: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) [ $# -ge 2 ] || die "--duration needs a value"
                    duration=$2; shift 2 ;;
        --duration=*) duration=${1#*=}; shift ;;
        --only) [ $# -ge 2 ] || die "--only needs a value"
                only=$2; shift 2 ;;
        --only=*) only=${1#*=}; shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a value"
               out=$2; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 1 ;;
    esac
done

[[ "$duration" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "invalid duration: $duration"

workloads=("${all_workloads[@]}")

if [ -n "$only" ]; then
    found=0
    for w in "${all_workloads[@]}"; do
        [ "$w" = "$only" ] && found=1
    done
    [[ "$only" =~ ^fanout-[0-9]+$ ]] && found=1
    [ "$found" = 1 ] || die "unknown workload \"$only\"" \
                            "(one of: ${all_workloads[*]})"
    workloads=("$only")
fi

"$root/scripts/deps.sh" bench
location_extra=

for tool in redis-server redis-cli curl jq ss make cc "$nginx_bin"; do
    command -v "$tool" > /dev/null || die "$tool is required"
done

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
json_dir=$(dirname "$out")/bench
mkdir -p "$json_dir"


# ---- everything started here is stopped on exit ----------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-bench.XXXXXX")
redis_pid=""
nginx_master=""

# the master daemonizes: its pid comes from the pid file
nginx_pid() {
    cat "$tmp/nginx/nginx.pid" 2> /dev/null || true
}

alive() {
    [ -n "$1" ] && kill -0 "$1" 2> /dev/null
}

# polls "$@" until it succeeds, for $timeout seconds at most; a status
# of 2 means it never will
wait_for() {
    local timeout=$1 what=$2 deadline rc
    shift 2
    deadline=$((SECONDS + timeout))
    while :; do
        rc=0
        "$@" || rc=$?
        case "$rc" in
            0) return 0 ;;
            2) echo "bench: $what is gone" >&2; return 1 ;;
        esac
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "bench: timed out waiting for $what" >&2
            return 1
        fi
        sleep 0.05
    done
}

not_alive() {
    ! alive "$1"
}

stop_nginx() {
    local pid children
    pid=${nginx_master:-$(nginx_pid)}
    nginx_master=""
    alive "$pid" || return 0
    kill -QUIT "$pid" 2> /dev/null || true
    if ! wait_for 20 "nginx to quit" not_alive "$pid"; then
        children=$(ps -o pid= --ppid "$pid" 2> /dev/null || true)
        # shellcheck disable=SC2086
        kill -KILL "$pid" $children 2> /dev/null || true
    fi
    rm -f "$tmp/nginx/nginx.pid"
}

stop_redis() {
    local pid=$redis_pid
    redis_pid=""
    alive "$pid" || return 0
    kill -TERM "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_nginx
    stop_redis
    if [ -n "${LOOM_BENCH_KEEP:-}" ]; then
        echo "bench: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---- build -----------------------------------------------------------------

echo "bench: building the module and the generator"
"$root/scripts/build.sh"
make -s -C "$root/bench"

# nginx loads a private copy: a rebuild during the run rewrites the .so in
# place, which would crash a running nginx that maps it
cp "$module" "$tmp/ngx_http_loom_module.so"

# what was measured: the commit, local changes, the module's checksum
module_info="build/default/ngx_http_loom_module.so, sha1 $(sha1sum \
    "$tmp/ngx_http_loom_module.so" | cut -c1-12)"
if commit=$(git -C "$root" rev-parse --short HEAD 2> /dev/null); then
    changed=$(git -C "$root" status --porcelain -- ngx_loom_module config \
              | wc -l)
    module_info="$module_info, built from commit $commit"
    if [ "$changed" != 0 ]; then
        module_info="$module_info with uncommitted changes to $changed"
        module_info="$module_info file(s) of the module"
    fi
fi


# ---- servers ---------------------------------------------------------------

# a port nobody listens on, below the ephemeral range the generator uses
free_port() {
    local port
    while :; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        if [ -z "$(ss -Htln "sport = :$port")" ]; then
            echo "$port"
            return
        fi
    done
}

redis_port=""
nginx_port=""

redis_ready() {
    alive "$redis_pid" || return 2
    [ "$(redis-cli -p "$redis_port" ping 2> /dev/null)" = PONG ]
}

start_redis() {
    local attempt rc
    mkdir -p "$tmp/redis"
    for attempt in 1 2 3; do
        redis_port=$(free_port)
        redis-server --port "$redis_port" --bind 127.0.0.1 \
            --dir "$tmp/redis" --save "" \
            --appendonly yes --appendfsync everysec \
            --logfile "$tmp/redis/redis.log" > /dev/null 2>&1 &
        redis_pid=$!
        rc=0
        wait_for 10 "redis-server" redis_ready || rc=$?
        [ "$rc" = 0 ] && return 0
        stop_redis
        echo "bench: redis-server did not start (attempt $attempt)" >&2
    done
    tail -n 20 "$tmp/redis/redis.log" >&2 || true
    die "cannot start redis-server"
}

write_nginx_conf() {
    local d=$tmp/nginx
    mkdir -p "$d/tmp"
    cat > "$d/nginx.conf" <<EOF
load_module $tmp/ngx_http_loom_module.so;
worker_processes $workers;
worker_rlimit_nofile $nofile;
error_log $d/error.log notice;
pid $d/nginx.pid;

events {
    worker_connections $nofile;
}

http {
    access_log off;

    # paths only, so that nginx needs no system directory
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;

    loom_redis 127.0.0.1:$redis_port;

    server {
        listen 127.0.0.1:$nginx_port;

        location = /ws {
            loom;
            $location_extra
        }

        location = /status {
            loom_status;
        }
    }
}
EOF
}

# every worker is up with both of its Redis links
nginx_ready() {
    local status pid
    pid=$(nginx_pid)
    [ -n "$pid" ] || return 1
    alive "$pid" || return 2
    status=$(curl -fsS --max-time 2 "http://127.0.0.1:$nginx_port/status" \
             2> /dev/null) || return 1
    jq -e --argjson n "$workers" '.redis.workers as $w
        | ($w | length) == $n
          and ($w | all(.redis_command == "up"
                        and .redis_subscriber == "up"))' \
        <<< "$status" > /dev/null 2>&1
}

start_nginx() {
    local attempt d=$tmp/nginx
    for attempt in 1 2 3; do
        [ -n "$nginx_port" ] || nginx_port=$(free_port)
        write_nginx_conf
        if "$nginx_bin" -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" \
                2> "$d/start.err"
        then
            if wait_for 20 "nginx" nginx_ready; then
                nginx_master=$(nginx_pid)
                return 0
            fi
            stop_nginx
        fi
        cat "$d/start.err" >&2
        nginx_port=""
        echo "bench: nginx did not start (attempt $attempt)" >&2
    done
    die "cannot start nginx"
}

server_status() {
    curl -fsS --max-time 5 "http://127.0.0.1:$nginx_port/status" \
        2> /dev/null || echo null
}


# ---- workloads -------------------------------------------------------------

fd_hard=$(ulimit -Hn)
[ "$fd_hard" = unlimited ] && fd_hard=$nofile
idle_conns=$(( (fd_hard < nofile ? fd_hard : nofile) - 500 ))
stamp=$(date -u +%Y%m%d%H%M%S)

describe() {
    case "$1" in
        fanout-*) echo "1 publisher, 1 topic, 1,000 subscribers," \
                       "${1#fanout-} msg/s ($(( ${1#fanout-} * 1000 ))" \
                       "deliveries/s)" ;;
        topics-100) echo "100 topics x 10 subscribers, 100 publishers x" \
                         "50 msg/s (5,000 publishes/s, 50,000" \
                         "deliveries/s)" ;;
        flood) echo "20 topics x 1 subscriber, 20 publishers as fast as" \
                    "flow control allows (window of 64 unacknowledged" \
                    "publishes each)" ;;
        idle) echo "$idle_conns idle connections (the descriptor limit" \
                   "allows $fd_hard), each checked with a ping" ;;
        idle-lean) echo "the same with loom_keep_request off: the HTTP" \
                        "request is freed after the handshake" ;;
    esac
}

workload_args() {
    local name=$1
    case "$name" in
        fanout-*)
            echo --topics 1 --subscribers 1000 --publishers 1 \
                 --rate "${name#fanout-}" --duration "$duration" ;;
        topics-100)
            echo --topics 100 --subscribers 1000 --publishers 100 \
                 --rate 50 --duration "$duration" ;;
        flood)
            echo --topics 20 --subscribers 20 --publishers 20 \
                 --rate 0 --window 64 --duration "$duration" ;;
        idle|idle-lean)
            echo --connections-only "$idle_conns" \
                 --nginx-master "$nginx_master" ;;
    esac
}

declare -A commands=()
declare -A results=()
declare -A server_log=()
declare -A load_after=()
declare -A writes=()

# write system calls made by the nginx workers so far (/proc/PID/io)
worker_writes() {
    local pid total=0 n
    for pid in $(ps -o pid= --ppid "$nginx_master" 2> /dev/null); do
        n=$(awk '/^syscw:/ { print $2 }' "/proc/$pid/io" 2> /dev/null) \
            || continue
        total=$(( total + ${n:-0} ))
    done
    echo "$total"
}

bad_log='\[(alert|crit|emerg)\]|exited on signal'

run_workload() {
    local name=$1 json=$json_dir/$1.json log_lines rc args cmd
    local raw=$tmp/$name.json

    # a fresh nginx for every workload: no state carried over
    location_extra=${LOOM_BENCH_LOCATION:-}
    [ "$name" = idle-lean ] && location_extra+=" loom_keep_request off;"
    stop_nginx
    start_nginx
    log_lines=$(wc -l < "$tmp/nginx/error.log")

    read -r -a args <<< "$(workload_args "$name")"
    cmd=("$loomgen" --port "$nginx_port" --label "$name"
         --run "$name-$stamp" --json "$raw" "${args[@]}")

    commands[$name]="bench/loomgen ${cmd[*]:1}"
    echo
    echo "bench: $name: $(describe "$name")"
    echo "bench: ${commands[$name]}"

    writes_before=$(worker_writes)

    rc=0
    "${cmd[@]}" || rc=$?

    writes[$name]=$(( $(worker_writes) - writes_before ))

    # the generator's JSON, with the server's counters afterwards
    if [ -s "$raw" ]; then
        jq --argjson status "$(server_status)" --argjson rc "$rc" \
           '. + {exit_code: $rc, server_status: $status}' "$raw" > "$json"
        results[$name]=ok
    else
        echo "{\"workload\": \"$name\", \"exit_code\": $rc}" > "$json"
        results[$name]=failed
    fi
    if [ "$rc" != 0 ] && [ "${results[$name]}" = ok ]; then
        results[$name]="exit $rc"
    fi

    load_after[$name]=$(cut -d' ' -f1-3 /proc/loadavg)
    server_log[$name]=$(tail -n "+$((log_lines + 1))" \
                        "$tmp/nginx/error.log" | grep -E "$bad_log" \
                        | head -n 20 || true)

    if [ -n "${server_log[$name]}" ]; then
        echo "bench: $name: the nginx error log says:" >&2
        echo "${server_log[$name]}" >&2
    fi
}


# ---- the report ------------------------------------------------------------

ms() {
    jq -r --arg k "$2" '.latency_us[$k] // 0 | . / 1000
                        | (. * 100 | round) / 100' "$1"
}

num() {
    jq -r --arg k "$2" '.[$k] // "n/a"
        | if type == "number" and . != floor
          then (. * 10 | round) / 10 else . end' "$1"
}

table_pubsub() {
    local j=$1 name=$2
    echo "| sent | delivered | lost | deliveries/s | publishes/s |" \
         "p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $(num "$j" sent) | $(num "$j" delivered) | $(num "$j" lost) |" \
         "$(num "$j" deliveries_per_s) | $(num "$j" publishes_per_s) |" \
         "$(ms "$j" p50) | $(ms "$j" p90) | $(ms "$j" p99) |" \
         "$(ms "$j" p99_9) | $(ms "$j" max) |"
    echo
    if [ "${writes[$name]:-0}" -gt 0 ]; then
        jq -r --argjson w "${writes[$name]}" '
            ((.server_status.deliveries + .acked) / $w * 10 | round / 10)
            as $per
            | "nginx made \($w) write system calls for" +
              " \(.server_status.deliveries) deliveries and \(.acked)" +
              " acknowledgements: \($per) frames per write."' "$j"
        echo
    fi
    jq -r '"Publish errors: \(.errors); duplicates: \(.duplicates);" +
           " out of order: \(.out_of_order); subscribers disconnected" +
           " during the run: \(.subscribers_lost); close frames from the" +
           " server: " + (if (.close_codes | length) == 0 then "none"
                          else (.close_codes | to_entries
                                | map("\(.key) x\(.value)")
                                | join(", ")) end) +
           "; publishes late on schedule (> 1 ms): \(.late)" +
           " (max \(.lag_max_ms | . * 10 | round / 10) ms);" +
           " acknowledgement p50/p99: " +
           "\(.ack_latency_us.p50 / 1000 | . * 100 | round / 100)/" +
           "\(.ack_latency_us.p99 / 1000 | . * 100 | round / 100) ms;" +
           " server slow-consumer closes: " +
           "\(.server_status.slow_consumers // "n/a");" +
           " generator CPU: \(.cpu_user_s) s user," +
           " \(.cpu_system_s) s system."' "$j"
}

table_idle() {
    local j=$1
    echo "| requested | held | open time s | nginx RSS before kB |" \
         "nginx RSS after kB | RSS per connection bytes |"
    echo "|---:|---:|---:|---:|---:|---:|"
    echo "| $(num "$j" requested) | $(num "$j" held) | $(num "$j" setup_s)" \
         "| $(num "$j" rss_before_kb) | $(num "$j" rss_after_kb) |" \
         "$(num "$j" rss_per_connection_bytes) |"
    echo
    jq -r '"Connect failures: \(.connect_failures); given up:" +
           " \(.failed_connections); disconnects: \(.disconnects)." +
           " RSS is the sum of VmRSS over the \(.nginx_workers) workers," +
           " read once every connection had answered a ping."' "$j"
}

# the targets: met or not, from the JSON of the runs
summary() {
    local j best=0 rate p99 lost

    echo "## Summary"
    echo
    echo "| target | measured | met |"
    echo "|---|---|---|"

    for name in "${workloads[@]}"; do
        j=$json_dir/$name.json
        [ "${results[$name]:-failed}" = failed ] && continue

        case "$name" in
            fanout-*)
                rate=${name#fanout-}
                p99=$(ms "$j" p99)
                lost=$(num "$j" lost)
                if [ "$lost" = 0 ] && jq -e --argjson p "$p99" \
                       -n '$p <= 25' > /dev/null && [ "$rate" -gt "$best" ]
                then
                    best=$rate
                fi
                if [ "$rate" = 1000 ]; then
                    verdict fanout "1 -> 1,000 at 1,000 msg/s: all delivered,
                        p99 <= 25 ms" "$lost lost, p99 $p99 ms" \
                        "$lost == 0 and $p99 <= 25"
                fi
                ;;
            topics-100)
                p99=$(ms "$j" p99)
                lost=$(num "$j" lost)
                verdict topics "100 topics: nothing lost, p99 <= 1 ms" \
                    "$lost lost, p99 $p99 ms" "$lost == 0 and $p99 <= 1"
                ;;
            flood)
                lost=$(num "$j" lost)
                rate=$(num "$j" publishes_per_s)
                verdict flood "flood: nothing lost, >= 100,000 validated and
                    stored publishes/s through to subscribers" \
                    "$lost lost, $rate publishes/s, p99 $(ms "$j" p99) ms" \
                    "$lost == 0 and $rate >= 100000"
                ;;
            idle|idle-lean)
                verdict "$name" "$name: >= 19,000 held, <= 4 KB each" \
                    "$(num "$j" held) held, $(num "$j" \
                    rss_per_connection_bytes) bytes each" \
                    "$(num "$j" held) >= 19000 and $(num "$j" \
                    rss_per_connection_bytes) <= 4096"
                ;;
        esac
    done

    if [ "$best" -gt 0 ]; then
        echo "| highest fan-out rate run with nothing lost and p99 <= 25 ms" \
             "| $best msg/s ($(( best * 1000 )) deliveries/s) | — |"
    fi
    echo
}

verdict() {
    local ok=no
    jq -e -n "$4" > /dev/null 2>&1 && ok=yes
    echo "| $(echo "$2" | tr -s ' \n' ' ') | $3 | $ok |"
}

write_report() {
    local name j cpu mem cmd
    cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' \
          /proc/meminfo)

    {
        echo "# Performance"
        echo
        echo "Measured with \`scripts/bench.sh\`, which starts its own"
        echo "redis-server and nginx and drives them with \`bench/loomgen\`"
        echo "(an epoll WebSocket client in C, \`bench/loomgen.c\`)."
        echo "This file is generated: run the script again to refresh it."
        echo
        echo "## Machine"
        echo
        echo "- CPU: ${cpu:-unknown}, $(nproc) cores"
        echo "- RAM: $mem"
        echo "- Kernel: $(uname -sr)"
        echo "- nginx: $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')," \
             "$workers workers"
        echo "- Redis: $(redis-server --version | awk '{ print $3 }' \
                         | sed 's/^v=//'), AOF on, appendfsync everysec"
        echo "- Module: $module_info"
        echo "- Date: $run_date"
        echo "- Load average when the run started: $load_before"
        echo
        echo "The generator runs on the same machine as nginx and Redis and"
        echo "shares its cores with them, so every number below includes"
        echo "the cost of generating and checking the load."
        echo
        summary
        echo "## Method"
        echo
        echo "Each workload runs against a freshly started nginx (same"
        echo "configuration, same Redis) on topics of its own."
        echo "The generator registers the topics (schema \`seq\`, \`ts\`,"
        echo "\`pad\`), opens the subscribers (2,000 connections/s at most),"
        echo "waits for every subscription to be acknowledged, opens the"
        echo "publishers and publishes for $duration s with"
        echo "\`requireAck\`; each publisher keeps at most 64 publishes"
        echo "unacknowledged.  Every message carries its send time"
        echo "(CLOCK_MONOTONIC) and a per-publisher sequence number;"
        echo "latency is the time a subscriber read the delivery minus that"
        echo "send time, over every delivery, in a log-linear histogram"
        echo "(under 1% error).  After publishing, the generator waits up"
        echo "to 10 s for deliveries still in flight; *lost* is expected"
        echo "deliveries (messages sent times subscribers of the topic)"
        echo "minus deliveries received.  Rates are counted from the start"
        echo "of publishing to the last acknowledgement or delivery."
        echo "Deliveries are 200 bytes of JSON.  The generator's sockets"
        echo "use TCP_NODELAY and the kernel's default (delayed) ACKs, as"
        echo "ordinary clients do."
        echo
        echo "nginx configuration (ports vary from run to run; the module"
        echo "is a copy of \`build/default/ngx_http_loom_module.so\` taken"
        echo "right after the build; \`idle-lean\` adds"
        echo "\`loom_keep_request off;\` to the \`/ws\` location):"
        echo
        echo '```nginx'
        location_extra=${LOOM_BENCH_LOCATION:-}
        write_nginx_conf
        sed -e "s|$tmp|<tmp>|g" -e "s|$root/|<repo>/|g" \
            -e '/^ *$/{N;/^ *\n *}/D}' "$tmp/nginx/nginx.conf"
        echo '```'
        echo
        echo "Redis: \`redis-server --port <port> --bind 127.0.0.1 --dir <tmp>"
        echo "--save \"\" --appendonly yes --appendfsync everysec\`"
        echo
        echo "## Commands"
        echo
        echo '```sh'
        echo "scripts/bench.sh --duration $duration${only:+ --only $only}"
        for name in "${workloads[@]}"; do
            cmd=${commands[$name]:-# $name: not run}
            echo "${cmd//$tmp/<tmp>}"
        done
        echo '```'
        echo
        echo "## Results"

        for name in "${workloads[@]}"; do
            j=$json_dir/$name.json
            echo
            echo "### $name"
            echo
            echo "$(describe "$name")."
            echo

            if [ "${results[$name]:-failed}" = failed ]; then
                echo "The generator produced no result (see the command's"
                echo "output)."
            elif [ "$name" = idle ] || [ "$name" = idle-lean ]; then
                table_idle "$j"
            else
                table_pubsub "$j" "$name"
            fi

            if [ "${results[$name]}" != ok ] \
               && [ "${results[$name]}" != failed ]
            then
                echo
                echo "The generator ended with ${results[$name]}."
            fi

            if [ -n "${server_log[$name]:-}" ]; then
                echo
                echo "The nginx error log during this workload:"
                echo
                echo '```'
                echo "${server_log[$name]}"
                echo '```'
            fi

            echo
            echo "Load average after the workload: ${load_after[$name]:-n/a}."
            echo "Raw results: [bench/$name.json](bench/$name.json)."
        done
        echo
        cat "$root/bench/notes.md"
    } > "$out"
}


# ---- main ------------------------------------------------------------------

run_date=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

start_redis
echo "bench: redis-server on 127.0.0.1:$redis_port"

for name in "${workloads[@]}"; do
    run_workload "$name"
done

stop_nginx

write_report
echo
echo "bench: wrote $out and $json_dir/"
