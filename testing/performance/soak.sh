#!/bin/sh
# soak.sh [DURATION] [soak.py options] — omnigate under a steady load below
# capacity for DURATION (seconds or 10m/1h; default 10m, at most 2h), then
# 10 000 idle keep-alive connections. Exits 1 if RSS or FDs grow after
# warm-up, any error appears, or an idle connection costs over 1 KiB of RSS.
# Writes build/perf/soak.{csv,json,svg}; --publish copies the plot and the
# summary to docs/perf/. Details: testing/performance/soak.py --help.
exec /usr/bin/python3 "$(dirname "$0")/soak.py" "$@"
