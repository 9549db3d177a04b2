#!/bin/sh
# SGP4 benchmark: a 10,000-satellite Walker catalogue (100 planes x 100,
# 550 km, 53 deg) propagated over one day at 60-s steps by our C code, by
# satellite.js (npm, JIT-compiled JavaScript) and by Debian's python3-sgp4
# (C++ core), all in this run on one core each; then a day of pass
# prediction for all 10,000 satellites over one station.
#
# usage: tests/bench/sgp4/run.sh [SATS_PER_PLANE]   (default 100: 10,000 satellites)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PER=${1:-100}
PLANES=100
START=2026-11-22T00:00:00Z
STEPS=1440
STEP_S=60
STATION=52.0,4.37,10
MASK=10
PY=/usr/bin/python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

say() { printf '%s\n' "$*" >&2; }

say "[1/5] compiling linkmodels + the C benchmark (cc -O2, no CMake needed)"
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I"$ROOT" $(pkg-config --cflags jansson) \
    "$HERE/bench_sgp4.c" "$ROOT"/linkmodels/*.c "$ROOT"/common/error.c "$ROOT"/common/timefmt.c \
    "$ROOT"/common/buf.c $(pkg-config --libs jansson) -lm -o "$WORK/bench_sgp4"

say "[2/5] synthesising the Walker catalogue ($PLANES planes x $PER, 550 km, 53 deg, F=1)"
"$WORK/bench_sgp4" synth $PLANES $PER $START > "$WORK/catalogue.tle"
NSATS=$(grep -c '^1 ' "$WORK/catalogue.tle")
say "  $NSATS satellites, $STEPS steps of $STEP_S s"

say "[3/5] C (sr_propagate, one core)"
"$WORK/bench_sgp4" "$WORK/catalogue.tle" $START $STEPS $STEP_S $STATION $MASK > "$WORK/c.out"

say "[4/5] satellite.js"
JS_OK=1
if [ ! -d "$HERE/node_modules/satellite.js" ]; then
    (cd "$HERE" && npm install --no-save --no-audit --no-fund satellite.js >/dev/null 2>&1) || JS_OK=0
fi
if [ $JS_OK = 1 ]; then
    (cd "$HERE" && node bench_satjs.mjs "$WORK/catalogue.tle" $START $STEPS $STEP_S) > "$WORK/js.out"
else
    say "  npm install satellite.js failed; skipped"
    : > "$WORK/js.out"
fi

say "[5/5] python3-sgp4"
# Debian's python3-sgp4 may lack its C++ extension (pure Python, ~60k/s):
# then time a 500-satellite subset; the rate is per propagation either way.
PY_MAX=$($PY -c 'from sgp4.api import accelerated; print(0 if accelerated else 500)')
if [ "$PY_MAX" = 0 ]; then PY_MAX=$NSATS; fi
say "  ($PY_MAX satellites)"
$PY "$HERE/bench_pysgp4.py" "$WORK/catalogue.tle" $START $STEPS $STEP_S $PY_MAX > "$WORK/py.out"

field() { awk -v k="$2" -v f="$3" '$1 == k { for (i = 1; i <= NF; i++) if ($i == f) print $(i + 1) }' "$1"; }
C_RATE=$(field "$WORK/c.out" props rate)
C_SECS=$(field "$WORK/c.out" props seconds)
P_SECS=$(field "$WORK/c.out" passes seconds)
P_N=$(field "$WORK/c.out" passes passes)
JS_RATE=$(field "$WORK/js.out" sgp4 rate)
JSP_RATE=$(field "$WORK/js.out" propagate rate)
PY_RATE=$(field "$WORK/py.out" sgp4_array rate)
PYA_RATE=$(field "$WORK/py.out" SatrecArray rate)

echo
echo "SGP4 benchmark: $NSATS satellites x $STEPS steps ($STEP_S s) = $((NSATS * STEPS)) propagations"
echo "------------------------------------------------------------------------------"
printf '%-40s %14s %10s\n' "implementation" "props/s" "C / it"
ratio() { if [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; else echo "-"; fi; }
printf '%-40s %14.0f %10s\n' "skyroute C (sr_propagate)" "$C_RATE" "1.00x"
[ -n "$JS_RATE" ] && printf '%-40s %14.0f %10s\n' "satellite.js sgp4()" "$JS_RATE" "$(ratio "$C_RATE" "$JS_RATE")"
[ -n "$JSP_RATE" ] && printf '%-40s %14.0f %10s\n' "satellite.js propagate(Date)" "$JSP_RATE" "$(ratio "$C_RATE" "$JSP_RATE")"
PY_ACC=$(field "$WORK/py.out" accelerated accelerated)
[ "$PY_ACC" = True ] && PY_KIND="C++" || PY_KIND="pure Python"
printf '%-40s %14.0f %10s\n' "python3-sgp4 sgp4_array ($PY_KIND)" "$PY_RATE" "$(ratio "$C_RATE" "$PY_RATE")"
printf '%-40s %14.0f %10s\n' "python3-sgp4 SatrecArray.sgp4" "$PYA_RATE" "$(ratio "$C_RATE" "$PYA_RATE")"
echo "------------------------------------------------------------------------------"
printf 'propagating every 60-s step (C):           %8.3f s\n' "$C_SECS"
printf 'pass prediction, 1 day, station %s, mask %s deg: %8.3f s (%s passes)\n' \
    "$STATION" "$MASK" "$P_SECS" "$P_N"
awk -v a="$C_SECS" -v b="$P_SECS" 'BEGIN { printf "pass prediction / propagating every step: %.2f\n", b / a }'
S_SECS=$(field "$WORK/c.out" slots seconds)
S_N=$(field "$WORK/c.out" slots slots)
S_COV=$(field "$WORK/c.out" slots covered)
printf 'handover: best satellite in each of %s 15-s slots: %8.3f s (%s slots covered)\n' \
    "$S_N" "$S_SECS" "$S_COV"
