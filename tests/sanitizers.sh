#!/usr/bin/env bash
# Builds the unit tests under ASan+UBSan and TSan and runs them.
#   tests/sanitizers.sh [asan] [tsan]      (default: both)
# Build dirs: build-asan, build-tsan (the CMake presets' directories).
# ASan+UBSan: agent sampling, unwinder, pipeline and schema unit tests.
# TSan: agent sampling and unwinder unit tests (the pipeline's tests run
# gRPC, which is not TSan-instrumented in Debian and would report its own
# internals).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
kinds=${*:-asan tsan}
status=0
for kind in $kinds; do
  case $kind in
    asan) san=address; tests="stackstream_agent_unit_test unwind_test pipeline_unit_tests format_test" ;;
    tsan) san=thread; tests="stackstream_agent_unit_test unwind_test" ;;
    *) echo "unknown sanitizer $kind" >&2; exit 2 ;;
  esac
  dir=build-$kind
  echo "== $kind: build $tests"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTACKSTREAM_SANITIZE=$san >/dev/null || { status=1; continue; }
  # shellcheck disable=SC2086
  ninja -C "$dir" -j"$JOBS" $tests || { status=1; continue; }
  for t in $tests; do
    bin=$(find "$ROOT/$dir/tests" -type f -name "$t" -perm -u+x | head -1)
    echo "== $kind: $t"
    if [ -z "$bin" ]; then echo "== $kind: $t not built"; status=1; continue; fi
    if (cd "$(dirname "$bin")" && ASAN_OPTIONS=detect_leaks=0 \
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        PYTHONPATH="$ROOT/tests/lib" STACKSTREAM_BUILD_DIR="$ROOT/$dir" "$bin" --gtest_brief=1); then
      echo "== $kind: $t clean"
    else
      echo "== $kind: $t FAILED"; status=1
    fi
  done
done
exit $status
