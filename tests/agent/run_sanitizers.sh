#!/bin/sh
# Builds the agent's sampling unit tests under ASan+UBSan and TSan and runs
# them. Usage: tests/agent/run_sanitizers.sh [asan|tsan ...]
#   SRC    source tree (default: this repository)
#   OUT    build directory prefix (default: $SRC/build-h1 -> build-h1-asan, build-h1-tsan)
set -eu
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${OUT:-$SRC/build-h1}
JOBS=${JOBS:-2}
kinds=${*:-asan tsan}
status=0
for kind in $kinds; do
  case $kind in
    asan) san=address ;;
    tsan) san=thread ;;
    *) echo "unknown sanitizer $kind" >&2; exit 2 ;;
  esac
  dir=$OUT-$kind
  cmake -S "$SRC" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTACKSTREAM_SANITIZE=$san >/dev/null
  ninja -C "$dir" -j"$JOBS" stackstream_agent_unit_test
  echo "== $kind"
  if ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 TSAN_OPTIONS=halt_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$dir/tests/agent/stackstream_agent_unit_test"; then
    echo "== $kind: clean"
  else
    echo "== $kind: FAILED"; status=1
  fi
done
exit $status
