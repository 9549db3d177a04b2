#!/bin/sh
# The skyroute benchmark: gateway vs nghttpx, the crypto bound, SGP4 vs
# satellite.js, routing instructions, resident memory; one command, one table.
# See tests/bench/bench.py for what each part measures.
#
# usage: tests/bench/run.sh [--build DIR] [--quick] [--only proxy,crypto,sgp4,route,memory]
#                           [--markdown FILE] [--json FILE]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$HERE/bench.py" "$@"
