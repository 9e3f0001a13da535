#!/bin/sh
# Mailbox benchmark: send and receive+ack throughput over HTTP and the
# send-to-delivery latency of a parked long-poll receiver, in micronode and
# in macronode (durable, --fsync always and batch), each against Redis
# Streams (XADD / XREADGROUP / XACK) kept the same way, in the same run with
# the same message size (see mailbox.py for the setup).
# Usage: testing/performance/mailbox.sh [--seconds 4] [--rounds 3] [--publish] ...
set -eu
cd "$(dirname "$0")/../.."
make -s all
exec /usr/bin/python3 testing/performance/mailbox.py "$@"
