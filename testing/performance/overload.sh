#!/bin/sh
# Overload benchmark: goodput, shed share and latency per class at 1x, 2x
# and 4x the sustainable rate (see overload.py for the setup and targets).
# Usage: testing/performance/overload.sh [--seconds N] [--levels 1,2,4]
set -eu
cd "$(dirname "$0")/../.."
make -s all
exec /usr/bin/python3 testing/performance/overload.py "$@"
