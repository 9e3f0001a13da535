#!/bin/sh
# Cost of the capability check: the same view-only mix against one micronode
# process, once with a Bearer macaroon on every request (verification cache
# warm) and once anonymous on a route a test policy opens to class anon.
# Usage: testing/performance/auth-cost.sh [seconds] [connections]
set -eu
cd "$(dirname "$0")/../.."
export LUA_PATH="testing/performance/?.lua;;"
DUR=${1:-10}
CONNS=${2:-32}
B=${OG_BUILD:-build}
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT INT TERM
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
printf 'bench = %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tmp/keys"
chmod 600 "$tmp/keys"
TOK=$($B/omnigate mint --root-keys "$tmp/keys" --key-id bench --tenant demo --scope view.read --ttl 1h)
P=$(port); A=$(port)
$B/omnigate --demo --root-keys "$tmp/keys" --policy testing/policy/bench-anon-views.json \
    --bind 127.0.0.1:$P --admin 127.0.0.1:$A --workers 1 --log-level warn >"$tmp/og.log" 2>&1 &
pid=$!
sleep 0.5
run() { # label token
    TOKEN=$2 MIX=views wrk -t1 -c"$CONNS" -d"${DUR}s" -s testing/performance/hydration.lua \
        "http://127.0.0.1:$P" 2>&1 | grep '^{' | sed "s/^{/{\"run\":\"$1\",/"
}
TOKEN="" MIX=views wrk -t1 -c8 -d1s -s testing/performance/hydration.lua "http://127.0.0.1:$P" >/dev/null 2>&1
TOKEN=$TOK MIX=views wrk -t1 -c8 -d1s -s testing/performance/hydration.lua "http://127.0.0.1:$P" >/dev/null 2>&1
run anonymous "" | tee "$tmp/anon"
run capability "$TOK" | tee "$tmp/cap"
run anonymous-again "" | tee "$tmp/anon2"
rps() { sed 's/.*"rps":\([0-9.]*\).*/\1/' "$1"; }
echo "$(rps $tmp/anon) $(rps $tmp/anon2) $(rps $tmp/cap)" | awk '{a=($1+$2)/2; printf "capability cost: %.1f %% of request time (anonymous %.0f req/s, with capability %.0f req/s; target < 5 %%)\n", (a/$3-1)*100, a, $3}'
