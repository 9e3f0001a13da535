#!/bin/sh
# wrk against omnigate's /healthz and against nginx `return 200` with the same
# worker count, same machine, same run. Prints one JSON line per server and
# the ratios. Usage: testing/performance/healthz-vs-nginx.sh [seconds] [conns] [workers]
set -eu
cd "$(dirname "$0")/../.."
DUR=${1:-10}
CONNS=${2:-64}
WORKERS=${3:-1}
OG=${OMNIGATE:-${OG_BUILD:-build}/omnigate}
tmp=$(mktemp -d)
trap 'kill $og_pid $ng_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
OGP=$(free_port); OGA=$(free_port); NGP=$(free_port)

# omnigate, request log lines off (nginx runs with access_log off too).
$OG --bind 127.0.0.1:$OGP --admin 127.0.0.1:$OGA --workers "$WORKERS" --log-level warn >"$tmp/og.log" 2>&1 &
og_pid=$!

cat >"$tmp/nginx.conf" <<NGX
worker_processes $WORKERS;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGP reuseport;
        location = /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
    }
}
NGX
nginx -c "$tmp/nginx.conf" -p "$tmp" &
ng_pid=$!
sleep 0.5

run() { # name url
    wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$2" >"$tmp/$1.wrk" 2>&1
    rps=$(awk '/^Requests\/sec/ {print $2}' "$tmp/$1.wrk")
    p50=$(awk '$1=="50%" {print $2}' "$tmp/$1.wrk")
    p99=$(awk '$1=="99%" {print $2}' "$tmp/$1.wrk")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/$1.wrk" | tr '\n' ' ')
    printf '{"server":"%s","rps":%s,"p50":"%s","p99":"%s","errors":"%s"}\n' "$1" "$rps" "$p50" "$p99" "$errs"
    eval "${1}_rps=$rps"
}
# Warm both, then alternate so neither gets a cooler machine.
wrk -t1 -c8 -d1s "http://127.0.0.1:$OGP/healthz" >/dev/null 2>&1
wrk -t1 -c8 -d1s "http://127.0.0.1:$NGP/healthz" >/dev/null 2>&1
run omnigate "http://127.0.0.1:$OGP/healthz"
run nginx "http://127.0.0.1:$NGP/healthz"
echo "ratio omnigate/nginx rps: $(echo "$omnigate_rps $nginx_rps" | awk '{printf "%.2f", $1/$2}')"
