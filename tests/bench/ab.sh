#!/bin/sh
# A/B of two skyroute builds (or two batch settings of one) on loopback:
# alternated h2load rounds, medians, per-round ratios and a sign test.
# See tests/bench/ab.py.
#
# usage: tests/bench/ab.sh --base DIR --new DIR [--loads 1024x100,...] [--rounds N]
#                          [--base-batch N] [--new-batch N] [--markdown FILE]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$HERE/ab.py" "$@"
