#!/usr/bin/env bash
# stackstream benchmarks in one command: extra CPU per process start, CPU
# overhead (host and agent process) vs gperftools and perf, fork() loop,
# PostgreSQL under pgbench -C, memory / agent CPU per sample / wire bytes,
# accuracy on fixtures with a known split, handler cost, collector
# ingest/query (ingest_bench). See tests/bench/README.md.
#
#   tests/bench/run.sh [--quick] [--build-dir DIR] [--output FILE] [--only SECTIONS]
#
#   (default)   full mode, ~20-25 minutes on 2 cores; writes BENCHMARKS.md at the repo root
#   --quick     every measurement briefly (< 4 minutes); writes
#               DIR/bench/BENCHMARKS.quick.md; exits non-zero only if a figure
#               could not be produced (never because a goal was missed)
#   --build-dir build directory holding libstackstream.so, stackstream-agent,
#               the collector and the bench workloads (default: build); built
#               with `ninja -C DIR` first
#   --only      comma-separated subset:
#               startup,overhead,fork,pgbench,wire,accuracy,handler,collector,
#               attach (tests/bench/attach_bench.py: `stackstream attach` vs
#               perf record -p), heap (tests/bench/heap_bench.py: heap
#               profiling vs gperftools, heaptrack, jemalloc), labels
#               (tests/bench/thread_labels_bench: the span-label C API's
#               cost); these run after the others
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=build
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD=$2; ARGS+=("$1" "$2"); shift 2 ;;
    --build-dir=*) BUILD=${1#--build-dir=}; ARGS+=("$1"); shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
if [ ! -f "$BUILD/build.ninja" ]; then
  echo "run.sh: $BUILD is not a configured build directory" >&2
  echo "  cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo" >&2
  exit 2
fi
# Make sure what the benchmark runs is up to date (a no-op in CI after the build).
if ! ninja -C "$BUILD" >"$BUILD/bench-ninja.log" 2>&1; then
  echo "run.sh: warning: ninja -C $BUILD failed (see $BUILD/bench-ninja.log); running with what is built" >&2
fi
export PYTHONPATH="$PWD/tests/lib${PYTHONPATH:+:$PYTHONPATH}"
# `stackstream attach` (tests/bench/attach_bench.py) and heap profiling
# (tests/bench/heap_bench.py) write their own sections of BENCHMARKS.md: they
# run after bench.py, in the same mode, unless --only leaves them out.
QUICK=()
ONLY=""
for i in "${!ARGS[@]}"; do
  case "${ARGS[$i]}" in
    --quick) QUICK=(--quick) ;;
    --only) ONLY=",${ARGS[$((i + 1))]:-}," ;;
    --only=*) ONLY=",${ARGS[$i]#--only=}," ;;
  esac
done
wants() { [ -z "$ONLY" ] || [[ "$ONLY" == *,$1,* ]]; }
# bench.py's own sections: --only without them skips it.
BENCH_ARGS=()
own=""
for i in "${!ARGS[@]}"; do
  a=${ARGS[$i]}
  if [ "$a" = --only ] || [[ "$a" == --only=* ]]; then continue; fi
  if [ "$i" -gt 0 ] && [ "${ARGS[$((i - 1))]}" = --only ]; then continue; fi
  BENCH_ARGS+=("$a")
done
if [ -n "$ONLY" ]; then
  own=$(echo "$ONLY" | tr ',' '\n' | { grep -vE '^(attach|heap|labels|)$' || true; } | paste -sd, -)
fi
status=0
if [ -z "$ONLY" ]; then
  python3 tests/bench/bench.py "${BENCH_ARGS[@]}" || status=$?
elif [ -n "$own" ]; then
  python3 tests/bench/bench.py "${BENCH_ARGS[@]}" --only "$own" || status=$?
fi
if wants attach; then
  python3 tests/bench/attach_bench.py "${QUICK[@]}" --build-dir "$BUILD" || status=1
fi
if wants heap; then
  python3 tests/bench/heap_bench.py "${QUICK[@]}" --build-dir "$BUILD" || status=1
fi
# Span profiles: the C API's cost (tests/bench/thread_labels_bench.cc, Google
# Benchmark; its figures go into BENCHMARKS.md by hand, section "Span profiles").
if wants labels && [ -x "$BUILD/tests/bench/thread_labels_bench" ]; then
  mkdir -p "$BUILD/bench"
  MIN_TIME=0.5
  if [ ${#QUICK[@]} -gt 0 ]; then MIN_TIME=0.05; fi
  STACKSTREAM_DISABLE=1 "$BUILD/tests/bench/thread_labels_bench" --benchmark_min_time=$MIN_TIME \
      --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
      | tee "$BUILD/bench/thread_labels${QUICK[*]:+.quick}.txt" || status=1
fi
exit $status
