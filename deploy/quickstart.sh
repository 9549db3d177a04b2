#!/bin/sh
# The README's two commands:
#   deploy/quickstart.sh demo   install what is needed, build, run the demo
#   deploy/quickstart.sh test   install what is needed, build, run every test
# The test command runs all its phases even when one fails, and lists every
# failed phase at the end (exit 1 if any failed):
#   build, tests, the demo in a fresh Debian chroot (beside the tests),
#   sanitizer build and tests, fuzzer build and runs.
set -eu
cd "$(dirname "$0")/.."
mode=${1:-}
jobs=$(nproc 2>/dev/null || echo 2)

build() { # build DIR CMAKE-ARGS...: 0 when it built, else 1 after showing why
    dir=$1
    shift
    mkdir -p "$dir"
    if ! cmake -S . -B "$dir" -DSR_WERROR=ON "$@" >"$dir/configure.log" 2>&1; then
        cat "$dir/configure.log"
        echo "quickstart: configuring $dir failed" >&2
        return 1
    fi
    if ! cmake --build "$dir" -j"$jobs" -- --no-print-directory >"$dir/build.log" 2>&1; then
        cat "$dir/build.log"
        echo "quickstart: build failed in $dir" >&2
        return 1
    fi
}

failed=""
fail() { failed="$failed
  - $*"; }

case "$mode" in
demo)
    deploy/install-deps.sh
    echo "== building (build/)"
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo || exit 1
    exec deploy/demo.sh build
    ;;
test)
    deploy/install-deps.sh --test
    mkdir -p build
    # The demo on a fresh Debian 12 machine, so that a package missing from
    # install-deps.sh cannot hide behind this machine's: a chroot made now,
    # mostly waiting on the network, so it runs beside the tests (niced).
    echo "== the demo command in a fresh Debian 12 chroot: started in the background (build/fresh-demo.log)"
    .ci/fresh-demo.sh "${SR_FRESH_SECONDS:-1500}" >build/fresh-demo.log 2>&1 &
    fresh_pid=$!

    echo "== building (build/)"
    if build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSR_TESTS=ON; then
        echo "== tests"
        (cd build && ctest --output-on-failure -j2) || fail "tests (build/: ctest --output-on-failure)"
    else
        fail "build (build/build.log)"
    fi

    echo "== tests again under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)"
    if build build-asan -DCMAKE_BUILD_TYPE=Debug -DSR_SANITIZE=ON -DSR_TESTS=ON; then
        (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2 -LE 'package|valgrind') ||
            fail "sanitizer tests (build-asan/)"
    else
        fail "sanitizer build (build-asan/build.log)"
    fi

    echo "== fuzzers, a bounded run each (build-fuzz/)"
    if build build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DSR_FUZZ=ON; then
        tests/fuzz/run.sh build-fuzz "${SR_FUZZ_SECONDS:-15}" || fail "fuzzers (tests/fuzz/run.sh build-fuzz)"
    else
        fail "fuzzer build (build-fuzz/build.log)"
    fi

    echo "== the demo command in a fresh Debian 12 chroot"
    rc=0
    wait "$fresh_pid" || rc=$?
    cat build/fresh-demo.log
    case $rc in
    0) ;;
    77) echo "   (skipped: it cannot run on this machine; under CI=true it must)" ;;
    *) fail "the demo command in a fresh Debian 12 chroot (build/fresh-demo.log)" ;;
    esac

    if [ -n "$failed" ]; then
        echo "== FAILED:$failed"
        exit 1
    fi
    echo "== all passed"
    ;;
*)
    echo "usage: deploy/quickstart.sh demo|test" >&2
    exit 2
    ;;
esac
