#!/usr/bin/env bash
# Runs every libFuzzer driver for a bounded time from a copy of its
# checked-in corpus:  scripts/fuzz.sh BUILD_DIR SECONDS
# Exits non-zero on the first crash, leak or sanitizer report; the failing
# input is left in BUILD_DIR/fuzz-artifacts/.
set -euo pipefail
build=${1:?build dir}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build/fuzz-artifacts"
# An UndefinedBehaviorSanitizer report is a crash, not a line in the log.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
for driver in "$build"/fuzz_*; do
  name=$(basename "$driver")
  corpus_src="$root/tests/fuzz/corpus/${name#fuzz_}"
  corpus="$build/fuzz-corpus/${name#fuzz_}"
  mkdir -p "$corpus"
  cp -n "$corpus_src"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s"
  "$driver" -max_total_time="$seconds" -max_len=16384 -timeout=10 \
    -artifact_prefix="$build/fuzz-artifacts/$name-" "$corpus" 2>&1 | tail -n 3
done
