#!/bin/sh
# Hydration mix (80 % views, 20 % feeds) against micronode and macronode,
# next to omnigate's own /healthz with the same workers and connections, in
# one run. Prints one JSON line per run and the ratios the targets use.
# Usage: testing/performance/hydration.sh [seconds] [connections] [workers]
set -eu
cd "$(dirname "$0")/../.."
export LUA_PATH="testing/performance/?.lua;;"
DUR=${1:-10}
CONNS=${2:-32}
WORKERS=${3:-1}
B=${OG_BUILD:-build}
tmp=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { /usr/bin/python3 -c '
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close(); sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)' "$1"; }

printf 'bench = %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tmp/keys"
chmod 600 "$tmp/keys"
TOKEN=$($B/omnigate mint --root-keys "$tmp/keys" --key-id bench --tenant demo \
        --scope view.read,feed.read,index.read,search.read --ttl 1h)
export TOKEN

run() { # label url mix
    MIX=$3 wrk -t1 -c"$CONNS" -d"${DUR}s" -s testing/performance/hydration.lua "$2" 2>&1 |
        grep '^{' | sed "s/^{/{\"run\":\"$1\",/"
}

# micronode
P=$(port); A=$(port)
$B/omnigate --demo --root-keys "$tmp/keys" --bind 127.0.0.1:$P --admin 127.0.0.1:$A \
    --workers "$WORKERS" --log-level warn >"$tmp/micro.log" 2>&1 &
pids="$pids $!"; wait_port $P
wrk -t1 -c8 -d1s -s testing/performance/hydration.lua "http://127.0.0.1:$P" >/dev/null 2>&1
run micronode-healthz "http://127.0.0.1:$P" healthz | tee "$tmp/mh"
run micronode-hydration "http://127.0.0.1:$P" hydration | tee "$tmp/mv"
echo "{\"run\":\"micronode\",\"rss_kib\":$(awk '/VmRSS/ {print $2}' /proc/$(echo $pids | awk '{print $NF}')/status)}"

# macronode: three reference services on loopback
IP=$(port); SP=$(port); MP=$(port)
for r in "index $IP" "storage $SP" "mailbox $MP"; do
    set -- $r
    $B/omnigate-substrate --role $1 --listen 127.0.0.1:$2 --admin 127.0.0.1:$(port) >"$tmp/$1.log" 2>&1 &
    pids="$pids $!"; wait_port $2
done
$B/omnigate seed --index oap://127.0.0.1:$IP --storage oap://127.0.0.1:$SP --mailbox oap://127.0.0.1:$MP >/dev/null
P2=$(port); A2=$(port)
$B/omnigate --index oap://127.0.0.1:$IP --storage oap://127.0.0.1:$SP --mailbox oap://127.0.0.1:$MP \
    --root-keys "$tmp/keys" --bind 127.0.0.1:$P2 --admin 127.0.0.1:$A2 --workers "$WORKERS" \
    --log-level warn >"$tmp/macro.log" 2>&1 &
pids="$pids $!"; wait_port $P2; sleep 0.3
wrk -t1 -c8 -d1s -s testing/performance/hydration.lua "http://127.0.0.1:$P2" >/dev/null 2>&1
run macronode-hydration "http://127.0.0.1:$P2" hydration | tee "$tmp/xv"

rps() { sed 's/.*"rps":\([0-9.]*\).*/\1/' "$1"; }
echo "ratio micronode-view/healthz: $(echo "$(rps $tmp/mv) $(rps $tmp/mh)" | awk '{printf "%.2f", $1/$2}') (target >= 0.5)"
echo "ratio macronode-view/healthz: $(echo "$(rps $tmp/xv) $(rps $tmp/mh)" | awk '{printf "%.2f", $1/$2}') (target >= 0.25)"
