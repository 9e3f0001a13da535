#!/bin/sh
# Instruction count per request of the hydration mix on one micronode worker,
# under callgrind (repeatable whatever else the machine does: this VM has no
# hardware counters). Prints Ir/request and the top inclusive functions.
# Usage: testing/performance/callgrind-hydration.sh [requests]
set -eu
cd "$(dirname "$0")/../.."
N=${1:-500}
B=${OG_BUILD:-build}
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT INT TERM
printf 'cg = %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tmp/keys"
chmod 600 "$tmp/keys"
T=$($B/omnigate mint --root-keys "$tmp/keys" --key-id cg --tenant demo --scope view.read,feed.read --ttl 1h)
P=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" $B/omnigate --demo --root-keys "$tmp/keys" \
    --bind 127.0.0.1:$P --admin 127.0.0.1:$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])') --workers 1 --log-level warn >"$tmp/run.log" 2>&1 &
pid=$!
/usr/bin/python3 - "$T" "$P" "$N" "$pid" <<'PY'
import http.client, subprocess, sys, time
tok, port, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60); c.request("GET", "/healthz"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.1)
def mix(i):
    if i % 5 < 2: return "/v1/view/user-%03d" % (i % 200)
    if i % 5 < 4: return "/v1/view/article-%03d" % (i % 100)
    return "/v1/feed/user-%03d?limit=3" % (i % 200)
for i in range(600):  # warm-up over every name, then zero the counters
    c.request("GET", mix(i), headers={"Authorization": "Bearer " + tok}); c.getresponse().read()
subprocess.run(["callgrind_control", "-z", pid], capture_output=True)
bad = 0
for i in range(n):
    c.request("GET", mix(i), headers={"Authorization": "Bearer " + tok}); r = c.getresponse(); r.read()
    bad += r.status != 200
subprocess.run(["callgrind_control", "-d", pid], capture_output=True)
print("non-200:", bad)
PY
sleep 1
kill $pid; wait $pid 2>/dev/null || true
out=$(ls "$tmp"/cg.out.* 2>/dev/null | head -1)
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
echo "{\"requests\":$N,\"ir_total\":$total,\"ir_per_request\":$((total / N))}"
cp "$out" "${CG_KEEP:-/dev/null}" 2>/dev/null || true
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | grep -v '???:0x' | grep -E '^ *[0-9,]+ +\(' | sed -n '2,25p' | cut -c1-120
