#!/usr/bin/env bash
# Benchmarks the broker with bench/loomgen, next to the bare reference
# broadcaster bench/refcast, and writes docs/performance.md.
#
#   scripts/bench.sh [--duration S] [--only NAME] [--out FILE]
#                    [--no-reference] [--cluster]
#
#   --duration S     seconds of publishing per workload (default 15)
#   --only NAMES     run these workloads (a comma-separated list, in the
#                    order given): fanout-<rate> (e.g. fanout-1000),
#                    fanout-<rate>x<subscribers> (e.g. fanout-100x100),
#                    topics-100, flood, flood-nohistory, flood-auth,
#                    flood-auth-nohistory, flood-jschema, catch-up,
#                    snapshot, idle or idle-lean
#   --out FILE       the report (default docs/performance.md); the raw JSON
#                    of each workload goes to bench/ next to it
#   --no-reference   skip the reference runs of the fan-out workloads and
#                    of the snapshot burst
#   --cluster        against a Redis Cluster of 3 masters (no replicas)
#                    instead of one redis-server; no reference runs; the
#                    report defaults to docs/performance-cluster.md, and
#                    each workload's JSON has every master's Redis CPU and
#                    calls (INFO cpu, commandstats) before and after
#
# It builds the module (scripts/build.sh), the generator and the reference
# broadcaster (make -C bench), starts its own redis-server (AOF,
# appendfsync everysec) and nginx in a temporary directory on free ports,
# runs each workload against a freshly started nginx on fresh topics, runs
# each fan-out workload and the snapshot burst a second time against
# bench/refcast (a bare C broadcaster, same worker count) right after, and
# stops everything it started when it exits.
# Set LOOM_BENCH_KEEP=1 to keep the temporary directory (logs, configs),
# LOOM_BENCH_LOCATION to add directives to the WebSocket location (to
# measure a setting, e.g. "tcp_nodelay off;"), LOOM_BENCH_PROFILE=DIR to
# profile every pub/sub run, broker and reference alike, from 2 s after
# the generator starts to 1 s before publishing ends: a system-wide
# `perf record -e cpu-clock -g` (DIR/NAME.perf.data), counts of the
# main system calls of each server worker (`perf stat` on syscall
# tracepoints, counted in the kernel: DIR/NAME.syscalls.txt), and every
# entry and exit of epoll_wait() in the workers, to time the event-loop
# passes (DIR/NAME.passes.data, read with bench/passes.py).

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
module="$root/build/default/ngx_http_loom_module.so"
loomgen="$root/bench/loomgen"
refcast="$root/bench/refcast"
nginx_bin=${LOOM_NGINX:-/usr/sbin/nginx}
workers=2
nofile=20000

all_workloads=(fanout-100 fanout-300 fanout-1000 fanout-2000 fanout-3000
               fanout-4000 topics-100 flood flood-nohistory flood-auth
               flood-auth-nohistory flood-jschema catch-up snapshot idle
               idle-lean)

duration=15
only=""
reference=1
cluster=0
out=""

usage() {
    sed -n '2,16s/^# \{0,1\}//p' "$0"
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
        --no-reference) reference=0; shift ;;
        --cluster) cluster=1; reference=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 1 ;;
    esac
done

[[ "$duration" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "invalid duration: $duration"

if [ -z "$out" ]; then
    out="$root/docs/performance.md"
    [ "$cluster" = 0 ] || out="$root/docs/performance-cluster.md"
fi

workloads=("${all_workloads[@]}")

if [ -n "$only" ]; then
    workloads=()
    IFS=, read -r -a names <<< "$only"
    for name in "${names[@]}"; do
        found=0
        for w in "${all_workloads[@]}"; do
            [ "$w" = "$name" ] && found=1
        done
        [[ "$name" =~ ^fanout-[1-9][0-9]*(x[1-9][0-9]*)?$ ]] && found=1
        [ "$found" = 1 ] || die "unknown workload \"$name\"" \
                                "(one of: ${all_workloads[*]})"
        workloads+=("$name")
    done
fi

"$root/scripts/deps.sh" bench
location_extra=
http_extra=

for tool in redis-server redis-cli curl jq ss awk make cc "$nginx_bin"; do
    command -v "$tool" > /dev/null || die "$tool is required"
done

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
json_dir=$(dirname "$out")/bench
[ "$cluster" = 0 ] || json_dir+=/cluster
mkdir -p "$json_dir"


# ---- everything started here is stopped on exit ----------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-bench.XXXXXX")
redis_pid=""
nginx_master=""
refcast_pid=""

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
    local pid pids=${redis_pids:-$redis_pid}
    redis_pid=""
    redis_pids=""
    for pid in $pids; do
        alive "$pid" || continue
        kill -TERM "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    done
}

stop_refcast() {
    local pid=$refcast_pid
    refcast_pid=""
    alive "$pid" || return 0
    kill -TERM "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_refcast
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
redis_ports=""
redis_pids=""
nginx_port=""

redis_ready() {
    alive "$redis_pid" || return 2
    [ "$(redis-cli -p "$redis_port" ping 2> /dev/null)" = PONG ]
}

# --cluster: 3 masters, no replicas (the bench measures their cost)
cluster_ready() {
    local port
    for port in $redis_ports; do
        redis-cli -p "$port" cluster info 2> /dev/null \
            | grep -q '^cluster_state:ok' || return 1
    done
}

start_cluster() {
    local i port addrs=
    for i in 1 2 3; do
        mkdir -p "$tmp/redis$i"
        port=$(free_port)
        redis-server --port "$port" --bind 127.0.0.1 \
            --dir "$tmp/redis$i" --save "" \
            --appendonly yes --appendfsync everysec \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --logfile "$tmp/redis$i/redis.log" > /dev/null 2>&1 &
        redis_pids+="${redis_pids:+ }$!"
        redis_ports+="${redis_ports:+ }$port"
        addrs+=" 127.0.0.1:$port"
        redis_pid=$!
        redis_port=$port
        wait_for 10 "redis-server" redis_ready || die "cannot start redis"
    done
    # shellcheck disable=SC2086
    redis-cli --cluster create $addrs --cluster-replicas 0 --cluster-yes \
        > "$tmp/cluster-create.log" 2>&1 || die "cannot create the cluster"
    wait_for 30 "the cluster" cluster_ready || die "the cluster is not ok"
}

# every master's CPU seconds and calls of the commands that matter, as JSON
cluster_stats() {
    local port first=1
    printf '['
    for port in $redis_ports; do
        [ "$first" = 1 ] || printf ','
        first=0
        redis-cli -p "$port" info all 2> /dev/null | tr -d '\r' \
            | awk -F'[:,=]' -v port="$port" '
                $1 == "used_cpu_sys" { sys = $2 }
                $1 == "used_cpu_user" { user = $2 }
                $1 ~ /^cmdstat_(evalsha|eval|spublish|publish|hget|scan)$/ {
                    sub(/^cmdstat_/, "", $1)
                    calls = calls sprintf("%s\"%s\": %s",
                                          calls == "" ? "" : ", ", $1, $3)
                }
                END { printf "{\"port\": %s, \"cpu_s\": %.3f, " \
                             "\"calls\": {%s}}", port, sys + user, calls }'
    done
    printf ']'
}

start_redis() {
    local attempt rc
    if [ "$cluster" = 1 ]; then
        start_cluster
        return
    fi
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

redis_directive() {
    local port list=
    if [ "$cluster" = 0 ]; then
        echo "loom_redis 127.0.0.1:$redis_port;"
        return
    fi
    for port in $redis_ports; do
        list+=" 127.0.0.1:$port"
    done
    echo "loom_redis_cluster$list;"
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

    $(redis_directive)
    $http_extra

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

# the reference broadcaster: as many workers as nginx, on a free port
ref_port=""

refcast_ready() {
    alive "$refcast_pid" || return 2
    [ -n "$(ss -Htln "sport = :$ref_port")" ]
}

start_refcast() {
    ref_port=$(free_port)
    "$refcast" --port "$ref_port" --workers "$workers" \
        2> "$tmp/refcast.log" &
    refcast_pid=$!
    wait_for 10 "refcast" refcast_ready || die "cannot start refcast"
}

# what each refcast worker counted (it prints them when it stops), as JSON
refcast_counters() {
    sed -n 's/^refcast: worker \([0-9]*\) (pid [0-9]*): //p' \
        "$tmp/refcast.log" \
        | awk -F', ' '{
            printf "%s{", (NR > 1 ? "," : "")
            for (i = 1; i <= NF; i++) {
                n = split($i, f, " ")
                key = f[1]
                for (k = 2; k < n; k++) key = key "_" f[k]
                printf "%s\"%s\": %s", (i > 1 ? ", " : ""), key, f[n]
            }
            printf "}"
          } BEGIN { printf "[" } END { print "]" }'
}

# the nginx workers' connections, polled once a second; the busiest
# sample shows how the connections were spread over the workers
sample_workers() {
    local best=-1 status n
    while sleep 1; do
        status=$(curl -fsS --max-time 1 \
                 "http://127.0.0.1:$nginx_port/status" 2> /dev/null) \
            || continue
        n=$(jq '.connections // 0' <<< "$status" 2> /dev/null) || continue
        if [ "$n" -gt "$best" ]; then
            best=$n
            jq -c '[.redis.workers[] | {pid, connections}]' \
                <<< "$status" > "$1.tmp" 2> /dev/null \
                && mv "$1.tmp" "$1"
        fi
    done
}


# ---- workloads -------------------------------------------------------------

fd_hard=$(ulimit -Hn)
[ "$fd_hard" = unlimited ] && fd_hard=$nofile
idle_conns=$(( (fd_hard < nofile ? fd_hard : nofile) - 500 ))
stamp=$(date -u +%Y%m%d%H%M%S)

# fanout-<rate>[x<subscribers>]: the rate, the subscribers
fanout_rate() {
    local r=${1#fanout-}
    echo "${r%x*}"
}

fanout_subscribers() {
    local r=${1#fanout-}
    [[ "$r" == *x* ]] && echo "${r#*x}" || echo 1000
}

describe() {
    local rate subs
    case "$1" in
        fanout-*) rate=$(fanout_rate "$1") subs=$(fanout_subscribers "$1")
                  echo "1 publisher, 1 topic, $subs subscribers," \
                       "$rate msg/s ($(( rate * subs )) deliveries/s)" ;;
        topics-100) echo "100 topics x 10 subscribers, 100 publishers x" \
                         "50 msg/s (5,000 publishes/s, 50,000" \
                         "deliveries/s)" ;;
        flood) echo "20 topics x 1 subscriber, 20 publishers as fast as" \
                    "flow control allows (window of 64 unacknowledged" \
                    "publishes each)" ;;
        flood-nohistory) echo "the flood with loom_history 0: no" \
                              "history stream, only the revision and the" \
                              "value are stored" ;;
        flood-auth) echo "the flood with credentials: every connection" \
                         "sends a key of the loom_auth_file, and every" \
                         "request is checked against its topic patterns" ;;
        flood-jschema) echo "the same with JSON Schema topics: ten" \
                            "properties, nested types and a pattern" \
                            "(loomgen --json-schema), compiled once and" \
                            "checked on every publish" ;;
        flood-auth-nohistory) echo "flood-auth with loom_history 0, next" \
                                   "to flood-nohistory: where Redis" \
                                   "limits the rate less" ;;
        catch-up) echo "one topic keeping 100,000 revisions gets 100,000" \
                       "publishes; then one subscriber resumes it from" \
                       "revision 0 and receives them from history, then" \
                       "1,000 more live" ;;
        snapshot) echo "1,000 connections subscribe with snapshot at" \
                       "once, in one burst, while 1,000 publishes/s go to" \
                       "the topic" ;;
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
            echo --topics 1 --subscribers "$(fanout_subscribers "$name")" \
                 --publishers 1 --rate "$(fanout_rate "$name")" \
                 --duration "$duration" ;;
        topics-100)
            echo --topics 100 --subscribers 1000 --publishers 100 \
                 --rate 50 --duration "$duration" ;;
        flood*)
            echo --topics 20 --subscribers 20 --publishers 20 \
                 --rate 0 --window 64 --duration "$duration" ;;
        catch-up)
            echo --catch-up 100000 --window 64 --timeout 30 ;;
        snapshot)
            echo --snapshots 1000 --rate 1000 --timeout 20 ;;
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

# write system calls made so far by the workers of master $1
# (/proc/PID/io)
worker_writes() {
    local pid total=0 n
    for pid in $(ps -o pid= --ppid "$1" 2> /dev/null); do
        n=$(awk '/^syscw:/ { print $2 }' "/proc/$pid/io" 2> /dev/null) \
            || continue
        total=$(( total + ${n:-0} ))
    done
    echo "$total"
}

# CPU time (user + system, clock ticks) used so far by process $1 or,
# with --children, by the children of $1
clk_tck=$(getconf CLK_TCK)

cpu_ticks() {
    local pid pids=$1 total=0 t
    if [ "$1" = --children ]; then
        pids=$(ps -o pid= --ppid "$2" 2> /dev/null || true)
    fi
    for pid in $pids; do
        # the fields after "(comm)": utime and stime are the 12th and 13th
        t=$(sed 's/.*) //' "/proc/$pid/stat" 2> /dev/null \
            | awk '{ print $12 + $13 }') || continue
        total=$(( total + ${t:-0} ))
    done
    echo "$total"
}

seconds() {
    awk -v t="$1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }'
}

bad_log='\[(alert|crit|emerg)\]|exited on signal'

# flood-auth: a key file whose one key may do everything on the bench's
# topics, through the pattern matcher as any real key would
bench_key=bench-key-for-the-permission-check

auth_file() {
    local sha
    sha=$(printf %s "$bench_key" | sha256sum | cut -d' ' -f1)
    printf '{"keys": [{"name": "bench", "sha256": "%s",\n' "$sha" \
        > "$tmp/keys.json"
    printf '  "publish": ["bench-*"], "subscribe": ["bench-*"],\n' \
        >> "$tmp/keys.json"
    printf '  "admin": ["bench-*"]}]}\n' >> "$tmp/keys.json"
    echo "loom_auth_file $tmp/keys.json;"
}

run_workload() {
    local name=$1 json=$json_dir/$1.json log_lines rc args cmd
    local raw=$tmp/$name.json

    # a fresh nginx for every workload: no state carried over
    location_extra=${LOOM_BENCH_LOCATION:-}
    [ "$name" = idle-lean ] && location_extra+=" loom_keep_request off;"
    [[ "$name" = flood-auth* ]] && location_extra+=" $(auth_file)"
    http_extra=
    [[ "$name" = *-nohistory ]] && http_extra="loom_history 0;"
    stop_nginx
    start_nginx
    log_lines=$(wc -l < "$tmp/nginx/error.log")

    read -r -a args <<< "$(workload_args "$name")"
    cmd=("$loomgen" --port "$nginx_port" --label "$name"
         --run "$name-$stamp" --json "$raw" "${args[@]}")
    if [[ "$name" = flood-auth* ]]; then
        cmd+=(--header "Authorization: Bearer $bench_key")
    fi
    if [ "$name" = flood-jschema ]; then
        cmd+=(--json-schema)
    fi

    commands[$name]="bench/loomgen ${cmd[*]:1}"
    echo
    echo "bench: $name: $(describe "$name")"
    echo "bench: ${commands[$name]}"

    writes_before=$(worker_writes "$nginx_master")
    cpu_before=$(cpu_ticks --children "$nginx_master")
    redis_before=$(cpu_ticks "${redis_pids:-$redis_pid}")
    masters_before=null
    [ "$cluster" = 0 ] || masters_before=$(cluster_stats)

    rm -f "$tmp/workers.json"
    sample_workers "$tmp/workers.json" &
    sampler=$!
    profiler=
    case "$name" in
        idle*|catch-up|snapshot) ;;
        *) profile_start "$name" "$nginx_master" ;;
    esac

    rc=0
    "${cmd[@]}" || rc=$?

    kill "$sampler" 2> /dev/null || true
    wait "$sampler" 2> /dev/null || true
    [ -z "$profiler" ] || wait "$profiler" 2> /dev/null || true
    writes[$name]=$(( $(worker_writes "$nginx_master") - writes_before ))
    cpu_s=$(seconds $(( $(cpu_ticks --children "$nginx_master") \
                        - cpu_before )))
    redis_s=$(seconds $(( $(cpu_ticks "${redis_pids:-$redis_pid}") \
                          - redis_before )))
    masters_after=null
    [ "$cluster" = 0 ] || masters_after=$(cluster_stats)

    # the generator's JSON, with the server's counters afterwards
    if [ -s "$raw" ]; then
        jq --argjson status "$(server_status)" --argjson rc "$rc" \
           --argjson w "$(cat "$tmp/workers.json" 2> /dev/null || echo null)" \
           --argjson cpu "$cpu_s" --argjson redis "$redis_s" \
           --argjson mb "$masters_before" --argjson ma "$masters_after" \
           '. + {exit_code: $rc, server_status: $status,
                 server_workers_busiest: $w, server_cpu_s: $cpu,
                 redis_cpu_s: $redis}
              + (if $mb == null then {} else
                 {redis_masters_before: $mb, redis_masters_after: $ma}
                 end)' "$raw" > "$json"
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


# LOOM_BENCH_PROFILE: profiles the middle of a run of workload $1 whose
# server master is $2; $profiler is the pid to wait for
profiler=

profile_syscalls() {
    local call list=
    for call in writev write sendto read recvfrom epoll_wait epoll_ctl; do
        list+=${list:+,}syscalls:sys_enter_$call
    done
    echo "$list"
}

profile_start() {
    local name=$1 master=$2 dir=${LOOM_BENCH_PROFILE:-} secs pids
    profiler=
    [ -n "$dir" ] || return 0
    secs=$(awk -v d="$duration" 'BEGIN { s = int(d) - 3;
                                         print (s < 1 ? 1 : s) }')
    mkdir -p "$dir"
    (
        sleep 2
        pids=$(ps -o pid= --ppid "$master" | tr -s ' \n' ',' \
               | sed 's/^,//; s/,$//')
        perf stat --per-thread -p "$pids" -o "$dir/$name.syscalls.txt" \
            -e "$(profile_syscalls)" -- sleep "$secs" > /dev/null 2>&1 &
        perf record -q -p "$pids" -o "$dir/$name.passes.data" \
            -e syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait \
            -- sleep "$secs" > /dev/null 2>&1 &
        perf record -q -e cpu-clock -a -g -o "$dir/$name.perf.data" \
            -- sleep "$secs" > /dev/null 2>&1
        wait
    ) > /dev/null 2>&1 &
    profiler=$!
}

# the same generator command against refcast, right after the broker's run
run_reference() {
    local name=$1 ref=$1-reference rc args cmd
    local json=$json_dir/$1-reference.json raw=$tmp/$1-reference.json

    stop_nginx
    start_refcast

    read -r -a args <<< "$(workload_args "$name")"
    cmd=("$loomgen" --port "$ref_port" --label "$ref"
         --run "$ref-$stamp" --json "$raw" "${args[@]}")

    commands[$ref]="bench/loomgen ${cmd[*]:1}"
    echo
    echo "bench: $ref: the same against bench/refcast"
    echo "bench: ${commands[$ref]}"

    writes_before=$(worker_writes "$refcast_pid")
    cpu_before=$(cpu_ticks --children "$refcast_pid")
    profiler=
    [ "$name" = snapshot ] || profile_start "$ref" "$refcast_pid"

    rc=0
    "${cmd[@]}" || rc=$?

    [ -z "$profiler" ] || wait "$profiler" 2> /dev/null || true

    writes[$ref]=$(( $(worker_writes "$refcast_pid") - writes_before ))
    cpu_s=$(seconds $(( $(cpu_ticks --children "$refcast_pid") \
                        - cpu_before )))
    stop_refcast

    if [ -s "$raw" ]; then
        jq --argjson rc "$rc" --argjson w "$(refcast_counters)" \
           --argjson cpu "$cpu_s" \
           '. + {exit_code: $rc, server: "bench/refcast",
                 refcast_workers: $w, server_cpu_s: $cpu}' "$raw" > "$json"
        results[$ref]=ok
    else
        echo "{\"workload\": \"$ref\", \"exit_code\": $rc}" > "$json"
        results[$ref]=failed
    fi
    if [ "$rc" != 0 ] && [ "${results[$ref]}" = ok ]; then
        results[$ref]="exit $rc"
    fi

    load_after[$ref]=$(cut -d' ' -f1-3 /proc/loadavg)
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
           " \(.cpu_system_s) s system." +
           (if .server_cpu_s then
              " CPU of the nginx workers during the run:" +
              " \(.server_cpu_s) s, of Redis: \(.redis_cpu_s) s" +
              (if .delivered > 0 then
                 " (\((.server_cpu_s + .redis_cpu_s) * 1e6 / .delivered
                     * 100 | round / 100) us per delivery)"
               else "" end) + "."
            else "" end) +
           (if (.server_workers_busiest | type) == "array" then
              " Connections per nginx worker at the busiest sample: " +
              (.server_workers_busiest | map("\(.connections)")
               | join(" / ")) + "."
            else "" end)' "$j"
}

# nchan's memory per idle connection: not measured here, the figure of
# issue 8 (Debian's libnginx-mod-nchan, default configuration, the same
# generator on the same 2-core machine)
nchan_idle_kb=4.8

table_idle() {
    local j=$1
    echo "| requested | held | open time s | nginx RSS before kB |" \
         "nginx RSS after kB | RSS per connection bytes |" \
         "per connection KB | nchan KB (issue 8) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $(num "$j" requested) | $(num "$j" held) | $(num "$j" setup_s)" \
         "| $(num "$j" rss_before_kb) | $(num "$j" rss_after_kb) |" \
         "$(num "$j" rss_per_connection_bytes) |" \
         "$(jq -r '.rss_per_connection_bytes // 0 | . / 1024
                   | (. * 10 | round) / 10' "$j") | $nchan_idle_kb |"
    echo
    jq -r '"Connect failures: \(.connect_failures); given up:" +
           " \(.failed_connections); disconnects: \(.disconnects)." +
           " RSS is the sum of VmRSS over the \(.nginx_workers) workers," +
           " read once every connection had answered a ping" +
           " (1 KB = 1,024 bytes)."' "$j"
    echo
    echo "nchan's $nchan_idle_kb KB is not measured by this script: it is"
    echo "the figure of issue 8, measured with the same generator on the"
    echo "same 2-core machine against Debian's \`libnginx-mod-nchan\` in its"
    echo "default configuration, and is repeated here for comparison."
}

table_catch_up() {
    local j=$1
    echo "| revisions | published in s | replayed | replay s |" \
         "messages/s | live to rev | gaps | ok |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---|"
    echo "| $(num "$j" revisions) | $(num "$j" publish_s) |" \
         "$(num "$j" replayed) | $(num "$j" replay_s) |" \
         "$(num "$j" messages_per_s) | $(num "$j" last_rev) |" \
         "$(num "$j" gaps) | $(num "$j" ok) |"
    echo
    jq -r '"The replay is timed from the resume request to the last" +
           " replayed delivery read; the answer said recovered:" +
           " \(.recovered), code \(.code).  Then \(.live) publishes went" +
           " out and the subscriber had to receive each, in order" +
           " (deliveries before the answer: \(.early); malformed:" +
           " \(.malformed))."' "$j"
}

# the table of one snapshot burst's JSON
table_snapshot_row() {
    local j=$1
    echo "| clients | answered | failed | p50 ms | p90 ms | p99 ms |" \
         "max ms | publishes meanwhile | deliveries after | gaps | ok |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    echo "| $(num "$j" clients) | $(num "$j" answered) |" \
         "$(num "$j" failed) | $(num "$j" p50_ms) | $(num "$j" p90_ms) |" \
         "$(num "$j" p99_ms) | $(num "$j" max_ms) | $(num "$j" published)" \
         "| $(num "$j" delivered) | $(num "$j" gaps) | $(num "$j" ok) |"
}

table_snapshot() {
    local j=$1
    table_snapshot_row "$j"
    echo
    echo "The time of an answer is from the subscribe written (all of them"
    echo "in one burst, one after another, the generator reading what has"
    echo "come after every 8; the burst took $(num "$j" burst_ms) ms to"
    echo "write) to its answer read.  After its answer at revision R, each"
    echo "subscriber must receive R + 1, R + 2, ... with no gap, and nothing"
    echo "before the answer."
}

# the snapshot burst against refcast, which answers from its own position
table_snapshot_reference() {
    local j=$1 r=$2
    echo "Reference, the same command against \`bench/refcast\`, which"
    echo "answers a subscribe with snapshot at once from the last revision"
    echo "its worker handed on (no JSON parsing, no Redis):"
    echo
    table_snapshot_row "$r"
    echo
    jq -r -n --slurpfile a "$j" --slurpfile b "$r" '
        [ "p50_ms", "p99_ms", "max_ms" ]
        | map(. as $k | ($a[0][$k] // 0) as $x | ($b[0][$k] // 0) as $y
              | if $y > 0 then ($x / $y * 100 | round / 100 | tostring)
                else "n/a" end)
        | "Broker / reference, p50 / p99 / max: " + join(" / ") +
          "; the reference wrote its burst in " +
          "\($b[0].burst_ms * 10 | round / 10) ms."'
}

# p50, p99 and max in ms of a run, "p50 / p99 / max"
lat3() {
    echo "$(ms "$1" p50) / $(ms "$1" p99) / $(ms "$1" max)"
}

# broker / reference for the three, "x.x / x.x / x.x"
ratio3() {
    jq -r -n --slurpfile a "$1" --slurpfile b "$2" '
        [ "p50", "p99", "max" ]
        | map(. as $k | ($a[0].latency_us[$k] // 0) as $x
                      | ($b[0].latency_us[$k] // 0) as $y
              | if $y > 0 then ($x / $y * 100 | round / 100 | tostring)
                else "n/a" end)
        | join(" / ")'
}

# server CPU (nginx and Redis, or refcast) per delivery, in us
cpu_per_delivery() {
    jq -r 'if (.server_cpu_s | type) == "number" and .delivered > 0
           then ((.server_cpu_s + (.redis_cpu_s // 0)) * 1e6 / .delivered
                 * 100 | round / 100)
           else "n/a" end' "$1"
}

# the broker next to the reference, every fan-out workload run with both
table_reference_summary() {
    local name j r any=0

    for name in "${workloads[@]}"; do
        [[ "$name" == fanout-* ]] || continue
        j=$json_dir/$name.json
        r=$json_dir/$name-reference.json
        [ "${results[$name]:-failed}" != failed ] || continue
        [ "${results[$name-reference]:-failed}" != failed ] || continue

        if [ "$any" = 0 ]; then
            echo "## Fan-out next to the reference"
            echo
            echo "Each fan-out workload runs twice, back to back: against"
            echo "the broker, then with the same generator command against"
            echo "\`bench/refcast\`, a bare C broadcaster with as many worker"
            echo "processes as nginx (no JSON parsing, no Redis; see"
            echo "\`bench/refcast.c\`).  The ratio is broker / reference:"
            echo "what the broker adds to what the machine costs anyway."
            echo "Server CPU is the user and system time of the server's"
            echo "processes during the run (for the broker, nginx's workers"
            echo "and Redis) over the deliveries: unlike latency, it hardly"
            echo "depends on what else the machine is doing."
            echo
            echo "| workload | broker p50 / p99 / max ms |" \
                 "reference p50 / p99 / max ms |" \
                 "ratio p50 / p99 / max | lost broker / reference |" \
                 "server CPU us per delivery, broker / reference |"
            echo "|---|---:|---:|---:|---:|---:|"
            any=1
        fi

        echo "| $name | $(lat3 "$j") | $(lat3 "$r") | $(ratio3 "$j" "$r") |" \
             "$(num "$j" lost) / $(num "$r" lost) |" \
             "$(cpu_per_delivery "$j") / $(cpu_per_delivery "$r") |"
    done

    if [ "$any" = 1 ]; then
        echo
    fi
}

# the reference run of a fan-out workload, under the broker's table
table_reference() {
    local j=$1 r=$2 name=$3
    echo "Reference, the same command against \`bench/refcast\`:"
    echo
    echo "| sent | delivered | lost | deliveries/s | publishes/s |" \
         "p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $(num "$r" sent) | $(num "$r" delivered) | $(num "$r" lost) |" \
         "$(num "$r" deliveries_per_s) | $(num "$r" publishes_per_s) |" \
         "$(ms "$r" p50) | $(ms "$r" p90) | $(ms "$r" p99) |" \
         "$(ms "$r" p99_9) | $(ms "$r" max) |"
    echo
    jq -r --argjson w "${writes[$name-reference]:-0}" \
          --arg ratio "$(ratio3 "$j" "$r")" '
        (.refcast_workers // []) as $ws
        | ($ws | map(.frames) | add // 0) as $frames
        | "Broker / reference, p50 / p99 / max: \($ratio)." +
          (if $w > 0 then
             " refcast made \($w) write system calls for \($frames)" +
             " frames: \($frames / $w * 10 | round / 10) frames per write."
           else "" end) +
          (if .server_cpu_s then
             " CPU of the refcast workers during the run:" +
             " \(.server_cpu_s) s" +
             (if .delivered > 0 then
                " (\(.server_cpu_s * 1e6 / .delivered * 100 | round / 100)" +
                " us per delivery)"
              else "" end) + "."
           else "" end) +
          (if ($ws | length) > 0 then
             " Connections per refcast worker: " +
             ($ws | map("\(.accepted)") | join(" / ")) + "."
           else "" end)' "$r"
}

# the targets: met or not, from the JSON of the runs
summary() {
    local j r best=0 rate p99 ref99 lost

    echo "## Summary"
    echo
    echo "| target | measured | met |"
    echo "|---|---|---|"

    for name in "${workloads[@]}"; do
        j=$json_dir/$name.json
        [ "${results[$name]:-failed}" = failed ] && continue

        case "$name" in
            fanout-*x*) ;;
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
                    r=$json_dir/$name-reference.json
                    if [ "${results[$name-reference]:-failed}" != failed ]
                    then
                        ref99=$(ms "$r" p99)
                        verdict fanout-ratio "1 -> 1,000 at 1,000 msg/s:
                            p99 within 1.5x of the reference's" \
                            "p99 $p99 ms, reference $ref99 ms" \
                            "$ref99 > 0 and $p99 <= 1.5 * $ref99"
                    fi
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
            flood-nohistory)
                # the ratio of two runs of this invocation only
                rate=$(same_run_rate flood)
                base=$(num "$j" publishes_per_s)
                verdict flood-history "flood with history (the default
                    retention): >= 80% of the rate without history" \
                    "$rate publishes/s, without history $base" \
                    "$base > 0 and $rate >= 0.8 * $base"
                ;;
            flood-auth)
                rate=$(num "$j" publishes_per_s)
                base=$(same_run_rate flood)
                verdict flood-auth "flood with every request's permission
                    checked: >= 98% of the flood's rate" \
                    "$rate publishes/s, flood $base" \
                    "$base > 0 and $rate >= 0.98 * $base"
                ;;
            flood-jschema)
                rate=$(num "$j" publishes_per_s)
                lost=$(num "$j" lost)
                base=$(same_run_rate flood)
                verdict flood-jschema "flood with JSON Schema topics:
                    nothing lost, >= 90% of the flood's rate" \
                    "$lost lost, $rate publishes/s, flood $base" \
                    "$lost == 0 and $base > 0 and $rate >= 0.9 * $base"
                ;;
            flood-auth-nohistory)
                rate=$(num "$j" publishes_per_s)
                base=$(same_run_rate flood-nohistory)
                verdict flood-auth-nohistory "the same without history,
                    where Redis limits the rate less: >= 98% of
                    flood-nohistory's" \
                    "$rate publishes/s, flood-nohistory $base" \
                    "$base > 0 and $rate >= 0.98 * $base"
                ;;
            catch-up)
                rate=$(num "$j" messages_per_s)
                verdict catch-up "catch-up: 100,000 revisions behind,
                    replayed at >= 200,000 messages/s, then live without
                    a gap" \
                    "$rate messages/s, $(num "$j" replayed) replayed, live to
                    rev $(num "$j" last_rev), ok: $(num "$j" ok)" \
                    "$(num "$j" ok) and $rate >= 200000"
                ;;
            snapshot)
                r=$json_dir/snapshot-reference.json
                ref=
                if [ "${results[snapshot-reference]:-failed}" != failed ]
                then
                    ref=" (bench/refcast: p99 $(num "$r" p99_ms) ms)"
                fi
                verdict snapshot "1,000 subscribes with snapshot at once:
                    all answered, p99 <= 5 ms" \
                    "$(num "$j" answered) answered, p99 $(num "$j" \
                    p99_ms) ms$ref, ok: $(num "$j" ok)" \
                    "$(num "$j" ok) and $(num "$j" p99_ms) <= 5"
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

# the publishes/s of workload $1 if it ran in this invocation, else 0
same_run_rate() {
    if [ "${results[$1]:-failed}" = failed ]; then
        echo 0
    else
        num "$json_dir/$1.json" publishes_per_s
    fi
}

verdict() {
    local ok=no
    jq -e -n "$4" > /dev/null 2>&1 && ok=yes
    echo "| $(echo "$2" | tr -s ' \n' ' ') | $(echo "$3" | tr -s ' \n' ' ')" \
         "| $ok |"
}

write_report() {
    local name j cpu mem cmd link
    cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' \
          /proc/meminfo)

    {
        echo "# Performance"
        echo
        echo "Measured with \`scripts/bench.sh\`, which starts its own"
        echo "redis-server and nginx and drives them with \`bench/loomgen\`"
        echo "(an epoll WebSocket client in C, \`bench/loomgen*.c\`)."
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
        if [ "$cluster" = 1 ]; then
            echo "- Redis Cluster: 3 masters, no replicas" \
                 "(loom_redis_cluster), on the same cores"
        fi
        echo "- Module: $module_info"
        echo "- Date: $run_date"
        echo "- Load average when the run started: $load_before"
        echo
        echo "The generator runs on the same machine as nginx and Redis and"
        echo "shares its cores with them, so every number below includes"
        echo "the cost of generating and checking the load."
        echo
        summary
        table_reference_summary
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
        echo "\`loom_keep_request off;\` to the \`/ws\` location,"
        echo "\`flood-auth*\` a \`loom_auth_file\` with one key whose"
        echo "patterns cover the bench's topics, and \`*-nohistory\`"
        echo "\`loom_history 0;\` to \`http\`):"
        echo
        echo '```nginx'
        location_extra=${LOOM_BENCH_LOCATION:-}
        http_extra=
        write_nginx_conf
        sed -e "s|$tmp|<tmp>|g" -e "s|$root/|<repo>/|g" \
            -e '/^ *$/{N;/^ *\n *}/D}' -e 's/^ *$//' "$tmp/nginx/nginx.conf" \
            | cat -s
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
            cmd=${commands[$name-reference]:-}
            if [ -n "$cmd" ]; then
                echo "bench/refcast --port <port> --workers $workers"
                echo "${cmd//$tmp/<tmp>}"
            fi
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
            elif [ "$name" = catch-up ]; then
                table_catch_up "$j"
            elif [ "$name" = snapshot ]; then
                table_snapshot "$j"
            else
                table_pubsub "$j" "$name"
            fi

            if [ "${results[$name-reference]:-failed}" != failed ] \
               && [ "${results[$name]:-failed}" != failed ] \
               && [ "$name" = snapshot ]
            then
                echo
                table_snapshot_reference "$j" \
                    "$json_dir/$name-reference.json"
            elif [ "${results[$name-reference]:-failed}" != failed ] \
               && [ "${results[$name]:-failed}" != failed ]
            then
                echo
                table_reference "$j" "$json_dir/$name-reference.json" \
                    "$name"
            elif [ -n "${commands[$name-reference]:-}" ]; then
                echo
                echo "The reference run produced no result."
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
            if [ -n "${commands[$name-reference]:-}" ]; then
                link="bench/$name-reference.json"
                echo "Reference: [$link]($link); load average after it:" \
                     "${load_after[$name-reference]:-n/a}."
            fi
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
    if [ "$reference" = 1 ] \
       && { [[ "$name" == fanout-* ]] || [ "$name" = snapshot ]; }
    then
        run_reference "$name"
    fi
done

stop_nginx

write_report
echo
echo "bench: wrote $out and $json_dir/"
