#!/bin/sh
# Soak: gateway + IDC node at the highest rate the machine sustains, sampled
# every 10 s (success ratio, latency, RSS and open descriptors of each
# daemon), with a verdict. See tests/bench/soak.py for what is checked.
#
# usage: tests/bench/soak.sh [--minutes N] [--build DIR] [--markdown FILE]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$HERE/soak.py" "$@"
