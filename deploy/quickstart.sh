#!/bin/sh
# The README's two commands:
#   deploy/quickstart.sh demo   install what is needed, build, run the demo
#   deploy/quickstart.sh test   install what is needed, build, run every test
set -eu
cd "$(dirname "$0")/.."
mode=${1:-}
jobs=$(nproc 2>/dev/null || echo 2)

build() { # build DIR CMAKE-ARGS...
    dir=$1
    shift
    cmake -S . -B "$dir" -DSR_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs" -- --no-print-directory >"$dir/build.log" 2>&1 ||
        { cat "$dir/build.log"; echo "quickstart: build failed in $dir" >&2; exit 1; }
}

case "$mode" in
demo)
    deploy/install-deps.sh
    echo "== building (build/)"
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    exec deploy/demo.sh build
    ;;
test)
    deploy/install-deps.sh --test
    echo "== building (build/)"
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    echo "== tests"
    (cd build && ctest --output-on-failure -j2)
    echo "== tests again under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)"
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DSR_SANITIZE=ON
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2 -LE 'package|valgrind')
    echo "== fuzzers, a bounded run each (build-fuzz/)"
    build build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DSR_FUZZ=ON
    tests/fuzz/run.sh build-fuzz "${SR_FUZZ_SECONDS:-15}"
    ;;
*)
    echo "usage: deploy/quickstart.sh demo|test" >&2
    exit 2
    ;;
esac
