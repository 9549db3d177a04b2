#!/bin/sh
# Router decision cost benchmark: instructions per decision with
# 10,000 satellites, 100 IDCs and a day of passes, counted by callgrind inside
# sr_router_rank only (stable across runs), and memory per stored pass.
# Targets: <= 50,000 instructions per decision, <= 200 bytes per pass.
#
# usage: tests/bench/router/run.sh [BUILD_DIR] [DECISIONS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
build=${1:-$src/build}
n=${2:-2000}
out=$(mktemp -d /tmp/sr-bench-router.XXXXXX)
trap 'rm -rf "$out"' EXIT
cc -std=c11 -O2 -g -D_DEFAULT_SOURCE -I"$src" "$here/bench_router.c" -o "$out/bench_router" \
    "$build/routing/libsr_routing.a" "$build/linkmodels/libsr_linkmodels.a" \
    "$build/common/libsr_common.a" -ljansson -lm
echo "== native run"
"$out/bench_router" "$n" | tee "$out/native.txt"
echo "== callgrind (instructions inside sr_router_rank only)"
valgrind --tool=callgrind --toggle-collect=sr_router_rank --callgrind-out-file="$out/cg.out" \
    "$out/bench_router" "$n" > /dev/null 2> "$out/cg.log"
ir=$(callgrind_annotate "$out/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
per=$((ir / n))
bytes=$(awk '/memory per stored pass/ {print $5}' "$out/native.txt")
echo
echo "== summary"
printf '%-40s %12s %12s %s\n' "figure" "value" "target" "verdict"
v1=PASS; [ "$per" -le 50000 ] || v1=FAIL
v2=PASS; [ "$bytes" -le 200 ] || v2=FAIL
printf '%-40s %12s %12s %s\n' "instructions per decision (callgrind)" "$per" "<= 50000" "$v1"
printf '%-40s %12s %12s %s\n' "bytes per stored pass" "$bytes" "<= 200" "$v2"
printf '%-40s %12s\n' "decisions measured" "$n"
[ "$v1" = PASS ] && [ "$v2" = PASS ]
