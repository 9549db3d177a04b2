#!/bin/sh
# Runs every built libFuzzer harness for a bounded time on its corpus
# (tests/fuzz/corpus/<name>/, read-only: new inputs go to a scratch dir).
#   tests/fuzz/run.sh BUILD_DIR SECONDS
set -eu
bdir=$1
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
for f in "$bdir"/tests/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus="$here/corpus/${name#fuzz_}"
    scratch=$(mktemp -d)
    mkdir -p "$corpus"
    printf '%-28s %ss ... ' "$name" "$secs"
    if "$f" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$scratch/" "$scratch" "$corpus" >"$scratch/log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/log" | grep -o '[0-9]*$' || echo '?')
        echo "ok ($execs runs)"
        passed=$((passed + 1))
    else
        echo "FAILED"
        tail -40 "$scratch/log"
        ls "$scratch" | grep -E '^(crash|leak|timeout|oom)-' | sed 's/^/  artifact: /' || true
        failed=$((failed + 1))
    fi
    rm -rf "$scratch"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
