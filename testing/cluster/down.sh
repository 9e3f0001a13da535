#!/bin/sh
# testing/cluster/down.sh — stop every process up.sh started (SIGTERM, then
# SIGKILL after 5 s), delete its namespaces, veths and bridge, and remove
# $OG_CLUSTER_DIR (default /tmp/og-cluster). Safe to run twice. With
# OG_CLUSTER_LOGS=DIR the processes' logs are copied there first (each
# cluster's into a new subdirectory).
set -u
STATE=${OG_CLUSTER_DIR:-/tmp/og-cluster}
[ -d "$STATE" ] || exit 0
for f in "$STATE"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null
done
n=0
for f in "$STATE"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do n=$((n + 1)); sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null
done
if [ -n "${OG_CLUSTER_LOGS:-}" ]; then
    dest=$OG_CLUSTER_LOGS/$(date +%H%M%S)-$$
    mkdir -p "$dest" && cp "$STATE"/*.log "$dest"/ 2>/dev/null
fi
if [ -f "$STATE/netns" ]; then
    while read -r ns; do
        [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null   # its veth ends go with it
    done <"$STATE/netns"
fi
[ -f "$STATE/bridge" ] && ip link del "$(cat "$STATE/bridge")" 2>/dev/null
rm -rf "$STATE"
echo "cluster down"
