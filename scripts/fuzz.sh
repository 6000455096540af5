#!/usr/bin/env bash
# Build every fuzz target and run each for SECONDS (default 20).
#   scripts/fuzz.sh            # the short, bounded run the test command does
#   scripts/fuzz.sh 3600       # an hour each
#   scripts/fuzz.sh 600 bundle_verify   # one target
# Findings land in fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/<target>/ (both
# git-ignored). Reproduce a crash with: cargo +nightly fuzz run <target> <artifact-file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
seed_dir() {
    # Seed each corpus with the repository's own inputs so the fuzzer starts from valid ones.
    local t=$1 dir=fuzz/corpus/$1
    mkdir -p "$dir"
    case $t in
        policy_yaml) find policies -name '*.yaml' -exec cp -t "$dir" {} + ;;
    esac
}
for t in "${targets[@]}"; do
    seed_dir "$t"
    echo "fuzz: $t for ${seconds}s"
    cargo +nightly fuzz run --fuzz-dir fuzz "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -E '^(stat::number_of_executed_runs|stat::peak_rss_mb|==|SUMMARY|Done)' || true
    if [ -n "$(ls -A "fuzz/artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz: FAILED: $t found crashes in fuzz/artifacts/$t" >&2
        exit 1
    fi
done
echo "fuzz: ${#targets[@]} target(s) ran ${seconds}s each without a crash"
