#!/bin/sh
# cluster.sh [--publish] [--quick] — the scale-out scenarios of
# testing/cluster/ measured at length (a benchmark, not a timed test): for
# the rolling restart, the loss of a storage node and a slow index node,
# requests, errors, partial views and p50/p99 before, during and after the
# event; then the same paced load through HAProxy with 1, 2 and 4 replicas,
# reporting the replicas' CPU seconds per request (on a 2-core machine a
# speed-up cannot be shown; what must hold is that the cost per request
# does not grow with replicas). Needs root and ip netns like make
# cluster-test. Writes build/perf/cluster.json; --publish copies it to
# docs/perf/cluster.json, which testing/performance/render-docs.py puts in
# docs/PERFORMANCE.md. Details: testing/performance/cluster.py --help.
exec /usr/bin/python3 "$(dirname "$0")/cluster.py" "$@"
