#!/bin/sh
# Profiles of one load scenario (perf.py's names): a perf flamegraph and
# callgrind's top functions in build/perf/profile-SCENARIO/.
# Usage: testing/performance/profile.sh SCENARIO [--seconds N] [--publish] ...
#        (testing/performance/profile.py --help lists every option)
exec /usr/bin/python3 "$(dirname "$0")/profile.py" "$@"
