#!/bin/sh
# testing/cluster/ctl.sh start|stop|kill|pid NAME — one process of the
# cluster up.sh made (og1, storage2, haproxy, ...): start runs it again the
# way up.sh did, in its namespace; stop sends SIGTERM and waits for the exit
# (up to 20 s); kill sends SIGKILL. NAME's log is $OG_CLUSTER_DIR/NAME.log.
set -eu
STATE=${OG_CLUSTER_DIR:-/tmp/og-cluster}
cmd=${1:?usage: ctl.sh start|stop|kill|pid NAME}
name=${2:?usage: ctl.sh start|stop|kill|pid NAME}
pidf=$STATE/$name.pid
# Running: a zombie waiting for whoever adopted it to reap it is not.
running() { kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
alive() { [ -f "$pidf" ] && running "$(cat "$pidf")"; }
case $cmd in
start)
    alive && { echo "ctl: $name is running"; exit 1; }
    ip netns exec "ogc-$name" sh "$STATE/$name.sh" >>"$STATE/$name.log" 2>&1 &
    echo $! >"$pidf"
    ;;
stop|kill)
    alive || exit 0
    pid=$(cat "$pidf")
    if [ "$cmd" = kill ]; then kill -KILL "$pid"; else kill -TERM "$pid"; fi
    n=0
    while running "$pid"; do
        n=$((n + 1)); [ "$n" -lt 400 ] || { kill -KILL "$pid"; break; }
        sleep 0.05
    done
    rm -f "$pidf"
    ;;
pid) cat "$pidf" ;;
*) echo "usage: ctl.sh start|stop|kill|pid NAME"; exit 2 ;;
esac
