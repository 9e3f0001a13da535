#!/bin/sh
# Media delivery: omnigate (micronode, --demo) against nginx (sendfile on)
# serving the same clip bytes from a file, one worker each, same machine,
# same run, alternating. Loads, each with wrk -t1:
#   ranges  64 KiB ranges at seeded random offsets of clip-4 (4 MiB), at
#           each concurrency of CONNS (default "16 64"), against:
#             og_verified    verified ranges (the default: slice proof, BLAKE3
#                            of every group; verified group cache on)
#             og_verified_nc verified, every range from storage and hashed
#                            (--range-cache 0)
#             og_unverified  --verify-ranges false (ranges served as read)
#             og_obj         the default on /v1/o/{addr} (no index hop)
#             nginx
#   stream  whole-object GETs of clip-4, back to back (the first concurrency)
# Servers run on CPU 0 and wrk on CPU 1 (OG_PERF_PIN=0: no pinning).
# Prints one JSON line per run, then per concurrency the ratios to nginx and
# the cost of verification alone (verified / unverified), and RSS.
# Usage: testing/performance/media-vs-nginx.sh [seconds] ["conns..."] [seed]
set -eu
cd "$(dirname "$0")/../.."
DUR=${1:-10}
CONNS=${2:-16 64}
SEED=${3:-42}
OG=${OMNIGATE:-${OG_BUILD:-build}/omnigate}
PERF=testing/performance
export LUA_PATH="$PERF/?.lua;;"
tmp=$(mktemp -d)
pids=
SRV=; CLI=
if [ "${OG_PERF_PIN:-1}" != 0 ] && [ "$(nproc)" -ge 2 ]; then SRV="taskset -c 0"; CLI="taskset -c 1"; fi
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

(umask 077; printf 'k1 = %s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$tmp/root.keys")
TOKEN=$($OG mint --root-keys "$tmp/root.keys" --key-id k1 --tenant demo \
    --scope media.read,object.read --ttl 1h)
AUTH="Authorization: Bearer $TOKEN"

# One omnigate per variant, set up alike. The rate bucket is on but never
# reached (nginx has no limit here): the runs measure ranges, not 429s.
start_og() { # name extra-args...
    name=$1; shift
    p=$(free_port); a=$(free_port)
    $SRV $OG --bind 127.0.0.1:$p --admin 127.0.0.1:$a --workers 1 --log-level warn --demo \
        --rate 1000000/s --rate-burst 1000000 --root-keys "$tmp/root.keys" "$@" >"$tmp/$name.log" 2>&1 &
    pids="$pids $!"
    eval "${name}_port=$p ${name}_admin=$a ${name}_pid=$!"
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
    echo "omnigate ($name) did not start" >&2; cat "$tmp/$name.log" >&2; exit 1
}
start_og og
start_og ognc --range-cache 0
start_og ogoff --verify-ranges false
OGP=$og_port
NGP=$(free_port)

# The same bytes for nginx, fetched once from omnigate.
mkdir -p "$tmp/www"
curl -sf -H "$AUTH" -o "$tmp/www/clip-4" "http://127.0.0.1:$OGP/v1/media/clip-4"
chmod 755 "$tmp" "$tmp/www"; chmod 644 "$tmp/www/clip-4" # nginx workers may run as nobody
SIZE=$(stat -c %s "$tmp/www/clip-4")
ADDR="b3:$(b3sum --no-names "$tmp/www/clip-4")"
ETAG=$(curl -sfI -H "$AUTH" "http://127.0.0.1:$OGP/v1/media/clip-4" | tr -d '\r' |
    awk -F'"' 'tolower($1) ~ /^etag/ {print $2}')
[ "$ETAG" = "$ADDR" ] || { echo "clip-4 bytes do not hash to its ETag ($ETAG vs $ADDR)" >&2; exit 1; }

cat >"$tmp/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # No tcp_nopush: with it, each 64 KiB range waits ~40 ms on a corked
    # last segment (delayed ACK), which would measure that, not nginx.
    sendfile on;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGP reuseport;
        root $tmp/www;
        location / { default_type video/mp4; }
    }
}
NGX
$SRV nginx -c "$tmp/nginx.conf" -p "$tmp" &
pids="$pids $!"
sleep 0.5
curl -sf -o "$tmp/ng.check" "http://127.0.0.1:$NGP/clip-4"
cmp -s "$tmp/ng.check" "$tmp/www/clip-4" || { echo "nginx serves different bytes" >&2; exit 1; }

rss_before=$(rss_kib $og_pid)

run() { # label conns url script [script args]
    label=$1; c=$2; url=$3; script=$4; shift 4
    out=$($CLI wrk -t1 -c"$c" -d"${DUR}s" -H "$AUTH" -s "$PERF/$script" "$url" -- "$@" 2>&1 |
        grep '^{' || true)
    [ -n "$out" ] || { echo "wrk produced no summary for $label" >&2; exit 1; }
    printf '{"run":"%s","conns":%s,%s\n' "$label" "$c" "${out#\{}"
    eval "$(echo "$out" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in ("rps", "mbps", "p50_ms", "p95_ms", "p99_ms"):
    print("%s_%s=%s" % (sys.argv[1], k, d[k]))' "$label")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
ratios() { # label a b
    echo "$1: rps $(ratio "$(eval echo \$${2}_rps)" "$(eval echo \$${3}_rps)")" \
        "MB/s $(ratio "$(eval echo \$${2}_mbps)" "$(eval echo \$${3}_mbps)")" \
        "p50 $(ratio "$(eval echo \$${2}_p50_ms)" "$(eval echo \$${3}_p50_ms)")" \
        "p99 $(ratio "$(eval echo \$${2}_p99_ms)" "$(eval echo \$${3}_p99_ms)")"
}

# Warm every server (page cache, allocator, connections, the group cache),
# then alternate.
for p in $og_port $ognc_port $ogoff_port; do
    $CLI wrk -t1 -c4 -d1s -H "$AUTH" -s "$PERF/media-ranges.lua" \
        "http://127.0.0.1:$p/v1/media/clip-4" -- "$SIZE" "$SEED" >/dev/null 2>&1
done
$CLI wrk -t1 -c4 -d1s "http://127.0.0.1:$NGP/clip-4" >/dev/null 2>&1

for c in $CONNS; do
    r="media-ranges.lua"
    run og_verified "$c" "http://127.0.0.1:$og_port/v1/media/clip-4" $r "$SIZE" "$SEED"
    run nginx "$c" "http://127.0.0.1:$NGP/clip-4" $r "$SIZE" "$SEED"
    run og_verified_nc "$c" "http://127.0.0.1:$ognc_port/v1/media/clip-4" $r "$SIZE" "$SEED"
    run og_unverified "$c" "http://127.0.0.1:$ogoff_port/v1/media/clip-4" $r "$SIZE" "$SEED"
    run og_obj "$c" "http://127.0.0.1:$og_port/v1/o/$ADDR" $r "$SIZE" "$SEED"
    echo "== $c connections"
    ratios "ratio verified/nginx (media)" og_verified nginx
    ratios "ratio verified/nginx (/v1/o)" og_obj nginx
    ratios "ratio verified, no cache/nginx" og_verified_nc nginx
    ratios "ratio unverified/nginx" og_unverified nginx
    ratios "verification alone, no cache (verified/unverified)" og_verified_nc og_unverified
    ratios "verification with the cache (verified/unverified)" og_verified og_unverified
done

c=${CONNS%% *}
run og_stream "$c" "http://127.0.0.1:$og_port/v1/media/clip-4" media-stream.lua
run nginx_stream "$c" "http://127.0.0.1:$NGP/clip-4" media-stream.lua
ratios "ratio omnigate/nginx stream" og_stream nginx_stream

rss_after=$(rss_kib $og_pid)
printf '{"omnigate_rss_kib_before":%s,"omnigate_rss_kib_after":%s}\n' "$rss_before" "$rss_after"
