#!/bin/sh
# Media delivery: omnigate (micronode, --demo) against nginx (sendfile on)
# serving the same clip bytes from a file, one worker each, same machine,
# same run. Two loads, each with wrk -t1:
#   ranges  64 KiB ranges at seeded random offsets of clip-4 (4 MiB)
#   stream  whole-object GETs of clip-4, back to back (sustained streaming)
# omnigate is measured on /v1/media/clip-4 (name resolved per request) and on
# /v1/o/{addr}. Prints one JSON line per run, the omnigate/nginx ratios and
# omnigate's RSS before and after.
# Usage: testing/performance/media-vs-nginx.sh [seconds] [conns] [seed]
set -eu
cd "$(dirname "$0")/../.."
DUR=${1:-10}
CONNS=${2:-16}
SEED=${3:-42}
OG=${OMNIGATE:-${OG_BUILD:-build}/omnigate}
PERF=testing/performance
export LUA_PATH="$PERF/?.lua;;"
tmp=$(mktemp -d)
og_pid=; ng_pid=
cleanup() {
    [ -n "$og_pid" ] && kill "$og_pid" 2>/dev/null || true
    [ -n "$ng_pid" ] && kill "$ng_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
OGP=$(free_port); OGA=$(free_port); NGP=$(free_port)

# A root key and a read token, as a client would hold them.
(umask 077; printf 'k1 = %s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$tmp/root.keys")
TOKEN=$($OG mint --root-keys "$tmp/root.keys" --key-id k1 --tenant demo \
    --scope media.read,object.read --ttl 1h)
AUTH="Authorization: Bearer $TOKEN"

# The rate bucket on but never reached (nginx has no limit here): the run
# measures ranges, not 429s.
$OG --bind 127.0.0.1:$OGP --admin 127.0.0.1:$OGA --workers 1 --log-level warn --demo \
    --rate 1000000/s --rate-burst 1000000 --root-keys "$tmp/root.keys" >"$tmp/og.log" 2>&1 &
og_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$OGP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

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
nginx -c "$tmp/nginx.conf" -p "$tmp" &
ng_pid=$!
sleep 0.5
curl -sf -o "$tmp/ng.check" "http://127.0.0.1:$NGP/clip-4"
cmp -s "$tmp/ng.check" "$tmp/www/clip-4" || { echo "nginx serves different bytes" >&2; exit 1; }

rss_before=$(rss_kib $og_pid)

run() { # label url script [script args]
    label=$1; url=$2; script=$3; shift 3
    out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" -H "$AUTH" -s "$PERF/$script" "$url" -- "$@" 2>&1 |
        grep '^{' || true)
    [ -n "$out" ] || { echo "wrk produced no summary for $label" >&2; exit 1; }
    printf '{"run":"%s",%s\n' "$label" "${out#\{}"
    eval "$(echo "$out" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in ("rps", "mbps", "p50_ms", "p95_ms", "p99_ms"):
    print("%s_%s=%s" % (sys.argv[1], k, d[k]))' "$label")"
}

# Warm both (page cache, allocator, connections), then alternate.
wrk -t1 -c4 -d1s -H "$AUTH" "http://127.0.0.1:$OGP/v1/media/clip-4" >/dev/null 2>&1
wrk -t1 -c4 -d1s "http://127.0.0.1:$NGP/clip-4" >/dev/null 2>&1

run og_media_ranges "http://127.0.0.1:$OGP/v1/media/clip-4" media-ranges.lua "$SIZE" "$SEED"
run og_obj_ranges "http://127.0.0.1:$OGP/v1/o/$ADDR" media-ranges.lua "$SIZE" "$SEED"
run nginx_ranges "http://127.0.0.1:$NGP/clip-4" media-ranges.lua "$SIZE" "$SEED"
run og_media_stream "http://127.0.0.1:$OGP/v1/media/clip-4" media-stream.lua
run nginx_stream "http://127.0.0.1:$NGP/clip-4" media-stream.lua

rss_after=$(rss_kib $og_pid)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "ratio omnigate/nginx ranges (media): rps $(ratio "$og_media_ranges_rps" "$nginx_ranges_rps")" \
    "MB/s $(ratio "$og_media_ranges_mbps" "$nginx_ranges_mbps")" \
    "p50 $(ratio "$og_media_ranges_p50_ms" "$nginx_ranges_p50_ms")" \
    "p99 $(ratio "$og_media_ranges_p99_ms" "$nginx_ranges_p99_ms")"
echo "ratio omnigate/nginx ranges (/v1/o): rps $(ratio "$og_obj_ranges_rps" "$nginx_ranges_rps")" \
    "MB/s $(ratio "$og_obj_ranges_mbps" "$nginx_ranges_mbps")" \
    "p50 $(ratio "$og_obj_ranges_p50_ms" "$nginx_ranges_p50_ms")" \
    "p99 $(ratio "$og_obj_ranges_p99_ms" "$nginx_ranges_p99_ms")"
echo "ratio omnigate/nginx stream: rps $(ratio "$og_media_stream_rps" "$nginx_stream_rps")" \
    "MB/s $(ratio "$og_media_stream_mbps" "$nginx_stream_mbps")" \
    "p50 $(ratio "$og_media_stream_p50_ms" "$nginx_stream_p50_ms")" \
    "p99 $(ratio "$og_media_stream_p99_ms" "$nginx_stream_p99_ms")"
printf '{"omnigate_rss_kib_before":%s,"omnigate_rss_kib_after":%s}\n' "$rss_before" "$rss_after"
