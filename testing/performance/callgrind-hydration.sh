#!/bin/sh
# Instructions (Ir) and allocations per hydration request, under callgrind:
# views, feeds and 64 KiB ranges on micronode --demo with one worker, and the
# hydration mix (0.8 view + 0.2 feed). budgets.py does the measuring (the
# same server, requests and counting as the `budgets` suite of make check).
# Usage: testing/performance/callgrind-hydration.sh [--build DIR] [--base DIR]
#            [--requests N] [--runs N] [--json FILE] [--title TEXT]
#   --base DIR   a second build, reported as "before" with the change
#   --json FILE  both builds' numbers, as docs/perf/*-before-after.json
# Example: testing/performance/callgrind-hydration.sh --base build/before
exec /usr/bin/python3 "$(dirname "$0")/budgets.py" --hydration "$@"
