#!/bin/sh
# testing/cluster/up.sh N_REPLICAS N_PER_SERVICE — omnigate replicas behind
# HAProxy, and N_PER_SERVICE reference substrate nodes per service, each in
# its own network namespace on a private bridge (10.77.0.0/24), seeded with
# the demo data set. Prints where everything is and writes it to
# $OG_CLUSTER_DIR/cluster.env (default /tmp/og-cluster). testing/cluster/down.sh
# removes everything this made. Traffic goes only to those addresses.
#
#   10.77.0.1        the host's end of the bridge (clients, seed)
#   10.77.0.2        HAProxy: :80 service, :8404 stats and /metrics
#   10.77.0.21 ...   replicas: :9080 service, :9090 admin
#   10.77.0.31 ...   index nodes, .41 ... storage, .51 ... mailbox:
#                    :7000 OAP/1, :7100 admin (/metrics, POST /faults)
#
# Environment: OMNIGATE_BUILD (default build/), OG_REPLICA_ARGS (more
# omnigate flags), OG_SUBSTRATE_ARGS (more substrate flags), OG_WORKERS
# (per replica, default 1). Exits 77 when it cannot run here (not root, no
# ip netns, no haproxy).
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${OMNIGATE_BUILD:-$ROOT/build}
STATE=${OG_CLUSTER_DIR:-/tmp/og-cluster}
NREP=${1:?usage: up.sh N_REPLICAS N_PER_SERVICE}
NPER=${2:?usage: up.sh N_REPLICAS N_PER_SERVICE}
NET=10.77.0
BR=ogc-br0

skip() { echo "cluster: SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root for ip netns (run as root, as CI does)"
command -v ip >/dev/null 2>&1 && ip netns list >/dev/null 2>&1 || skip "no ip netns (iproute2)"
[ -x /usr/sbin/haproxy ] || skip "haproxy is not installed (scripts/bootstrap)"
[ -x "$BUILD/omnigate" ] && [ -x "$BUILD/omnigate-substrate" ] || {
    echo "cluster: build first (make)"; exit 1; }
case "$NREP$NPER" in *[!0-9]*) echo "cluster: counts are numbers"; exit 2;; esac
[ "$NREP" -ge 1 ] && [ "$NREP" -le 9 ] && [ "$NPER" -ge 1 ] && [ "$NPER" -le 9 ] || {
    echo "cluster: 1..9 replicas and 1..9 nodes per service"; exit 2; }

# A cluster left over from an interrupted run goes first.
[ ! -e "$STATE/cluster.env" ] || "$ROOT/testing/cluster/down.sh" >/dev/null 2>&1 || true
ip link show "$BR" >/dev/null 2>&1 && { echo "cluster: $BR exists (another cluster?)"; exit 1; }
mkdir -p "$STATE"
: >"$STATE/netns"
trap 'echo "cluster: up failed; cleaning up" >&2; [ -n "${OG_CLUSTER_KEEP:-}" ] || "$ROOT/testing/cluster/down.sh" >&2' EXIT

ip link add "$BR" type bridge
echo "$BR" >"$STATE/bridge"
ip addr add "$NET.1/24" dev "$BR"
ip link set "$BR" up

# node NAME LAST_OCTET: a namespace with one veth on the bridge.
node() {
    ns=ogc-$1
    ip netns add "$ns"
    echo "$ns" >>"$STATE/netns"
    ip link add "ogc-v$2" type veth peer name eth0 netns "$ns"
    ip link set "ogc-v$2" master "$BR" up
    ip -n "$ns" addr add "$NET.$2/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

# proc NAME CMD...: remember how NAME is started (ctl.sh restarts it the
# same way), then start it in its namespace.
proc() {
    name=$1; shift
    {
        echo "#!/bin/sh"
        # Configured by its flags alone: omnigate refuses OMNIGATE_*
        # variables it does not know (such as OMNIGATE_BUILD).
        printf '%s\n' 'for v in $(env | sed -n "s/^\(OMNIGATE_[A-Za-z0-9_]*\)=.*/\1/p"); do unset "$v"; done'
        printf 'exec'
        for a in "$@"; do printf " '%s'" "$a"; done
        echo
    } >"$STATE/$name.sh"
    "$ROOT/testing/cluster/ctl.sh" start "$name"
}

wait_http() { # URL [seconds]
    n=0
    while ! curl -sf -o /dev/null --max-time 1 "$1"; do
        n=$((n + 1))
        [ "$n" -lt $(( ${2:-10} * 20 )) ] || { echo "cluster: $1 never answered" >&2; return 1; }
        sleep 0.05
    done
}

# Substrate nodes.
ROLES="index storage mailbox"
for role in $ROLES; do
    case $role in index) base=30;; storage) base=40;; mailbox) base=50;; esac
    list=""
    i=1
    while [ "$i" -le "$NPER" ]; do
        ip=$NET.$((base + i))
        node "$role$i" $((base + i))
        # shellcheck disable=SC2086
        proc "$role$i" "$BUILD/omnigate-substrate" --role "$role" --listen "$ip:7000" \
            --admin "$ip:7100" ${OG_SUBSTRATE_ARGS:-}
        list="$list${list:+,}oap://$ip:7000"
        i=$((i + 1))
    done
    eval "SET_$role=\$list"
done
for role in $ROLES; do
    case $role in index) base=30;; storage) base=40;; mailbox) base=50;; esac
    i=1
    while [ "$i" -le "$NPER" ]; do
        wait_http "http://$NET.$((base + i)):7100/healthz"
        i=$((i + 1))
    done
done
# shellcheck disable=SC2154
"$BUILD/omnigate" seed --index "$SET_index" --storage "$SET_storage" \
    --mailbox "$SET_mailbox" >"$STATE/seed.json"

# Capability keys and a token for the clients.
secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
( umask 077; echo "k1 = $secret" >"$STATE/keys" )
"$BUILD/omnigate" mint --root-keys "$STATE/keys" --key-id k1 --tenant demo --ttl 24h \
    --scope view.read,index.read,search.read,feed.read,media.read,object.read,object.write \
    >"$STATE/token"

# Replicas.
reps=""
i=1
while [ "$i" -le "$NREP" ]; do
    ip=$NET.$((20 + i))
    node "og$i" $((20 + i))
    # shellcheck disable=SC2086
    proc "og$i" "$BUILD/omnigate" --bind "$ip:9080" --admin "$ip:9090" \
        --workers "${OG_WORKERS:-1}" --index "$SET_index" --storage "$SET_storage" \
        --mailbox "$SET_mailbox" --root-keys "$STATE/keys" --trusted-proxies "$NET.2" \
        --drain-delay 1500ms --rate 0 --health-interval 250ms --health-timeout 250ms \
        ${OG_REPLICA_ARGS:-}
    reps="$reps${reps:+ }$ip"
    i=$((i + 1))
done
for ip in $reps; do wait_http "http://$ip:9090/readyz" 10; done

# HAProxy: the shipped configuration, with this cluster's servers.
node haproxy 2
servers=""
i=1
for ip in $reps; do servers="$servers    server og$i $ip:9080\\n"; i=$((i + 1)); done
sed -e '/^    server og[0-9]* /d' -e "s|^    # servers\$|    # servers\\n$servers|" \
    "$ROOT/deploy/haproxy/omnigate.cfg" >"$STATE/haproxy.cfg"
proc haproxy /usr/sbin/haproxy -db -f "$STATE/haproxy.cfg"
wait_http "http://$NET.2:8404/stats" 10
# Every replica UP in HAProxy (rise 2 x 500 ms) before anyone is told "up".
n=0
while [ "$(curl -s "http://$NET.2:8404/stats;csv" | grep -c '^omnigate,og[0-9]*,.*,UP,')" -lt "$NREP" ]; do
    n=$((n + 1)); [ "$n" -lt 200 ] || { echo "cluster: replicas never UP in HAProxy" >&2; exit 1; }
    sleep 0.05
done

cat >"$STATE/cluster.env" <<ENV
OG_CLUSTER_DIR=$STATE
OG_URL=http://$NET.2:80
OG_HAPROXY_STATS=http://$NET.2:8404
OG_REPLICAS="$reps"
OG_INDEX=$SET_index
OG_STORAGE=$SET_storage
OG_MAILBOX=$SET_mailbox
OG_TOKEN_FILE=$STATE/token
ENV
trap - EXIT
echo "cluster up: $NREP replicas behind HAProxy, $NPER nodes per service"
echo "  client      http://$NET.2/  (token in $STATE/token)"
echo "  haproxy     http://$NET.2:8404/stats  /metrics"
for ip in $reps; do echo "  replica     http://$ip:9080  admin http://$ip:9090"; done
echo "  index       $SET_index"
echo "  storage     $SET_storage"
echo "  mailbox     $SET_mailbox"
echo "  (substrate admin on :7100; logs, pids and start scripts in $STATE)"
echo "  try: curl -s -H \"Authorization: Bearer \$(cat $STATE/token)\" http://$NET.2/v1/view/user-007"
