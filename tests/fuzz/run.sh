#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer + ASan + UBSan (build-fuzz/)
# and runs each for SECONDS (default 30), starting from its seeds
# (tests/fuzz/seeds/<target>, the golden summaries, the committed regression
# inputs) and from the corpus of earlier runs (build-fuzz/corpus/<target>).
# Fails on any crash, leak, timeout or out-of-memory; the input that did it
# is left in build-fuzz/artifacts/<target>/ (commit it under
# tests/fuzz/regressions/<target>/ with the fix: ctest replays it).
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
# FUZZ_SEED=N picks libFuzzer's random seed (default 1, so CI runs repeat;
# FUZZ_SEED=0: a new seed each run).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SECONDS_EACH=${1:-30}
shift || true
DIR=build-fuzz
JOBS=${JOBS:-$(nproc)}
TARGETS="fuzz_summary fuzz_ingest_request fuzz_folded_ingest fuzz_selector fuzz_time
         fuzz_pprof_roundtrip fuzz_connect fuzz_agent_messages fuzz_ring_records
         fuzz_attach_request"
[ $# -gt 0 ] && TARGETS="$*"

echo "== fuzz: build ($DIR, clang, libFuzzer + ASan + UBSan)"
mkdir -p "$DIR"
CC=clang CXX=clang++ cmake -S . -B "$DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTACKSTREAM_FUZZ=ON >"$DIR/configure.log" 2>&1 || { cat "$DIR/configure.log"; exit 1; }
# shellcheck disable=SC2086
ninja -C "$DIR" -j"$JOBS" $TARGETS || exit 1

status=0
for t in $TARGETS; do
  corpus=$DIR/corpus/$t artifacts=$DIR/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  inputs=("$corpus" "tests/fuzz/seeds/$t")
  [ "$t" = fuzz_summary ] && inputs+=(tests/golden)
  [ -d "tests/fuzz/regressions/$t" ] && inputs+=("tests/fuzz/regressions/$t")
  log=$DIR/$t.log
  # New inputs go into the first directory (the corpus), never into the
  # committed seeds.
  (cd "$ROOT" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$DIR/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2560 \
       -max_len=16384 -seed="${FUZZ_SEED:-1}" -print_final_stats=1 -artifact_prefix="$artifacts/" "${inputs[@]}") \
     >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  edges=$(grep -a -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ $rc = 0 ]; then
    echo "== fuzz: $t: clean (${SECONDS_EACH}s, ${execs:-?} execs, ${speed:-?}/s, ${edges:-?} edges)"
  else
    echo "== fuzz: $t: FAILED (exit $rc; log $log; inputs in $artifacts/)"
    grep -E 'ERROR|SUMMARY|invariant broken|Test unit written' "$log" | head -10
    status=1
  fi
done
exit $status
