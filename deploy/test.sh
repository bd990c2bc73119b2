#!/usr/bin/env bash
# Installs dependencies, builds from scratch and runs every test.
#   ./deploy/test.sh            full: release build + ctest, then ASan and TSan
#                               builds of the agent's unit tests
#   STACKSTREAM_SKIP_SANITIZERS=1 ./deploy/test.sh   without the sanitizer builds
#   STACKSTREAM_SKIP_FUZZ=1 ./deploy/test.sh         without the fuzz runs
#   STACKSTREAM_FUZZ_SECONDS=N                       fuzz each target N s (30)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}

# No test may replace the machine's /dev/null (issue 16: the agent's offline
# output once renamed a regular file over STACKSTREAM_OUTPUT=/dev/null).
devnull_was_ok=0
[ -c /dev/null ] && devnull_was_ok=1

./deploy/install-deps.sh

echo "== configure + build (build/)"
rm -rf build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$JOBS"

echo "== ctest"
status=0
set +e
(cd build && ctest --output-on-failure --timeout 900 -j 1) 2>&1 | tee build/ctest.log
status=${PIPESTATUS[0]}
set -e
# "NN% tests passed, F tests failed out of N"
total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' build/ctest.log | tail -1)
failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' build/ctest.log | tail -1)
total=${total:-0} failed=${failed:-0}
if [ "$total" = 0 ]; then echo "deploy/test.sh: ctest ran no test"; status=1; fi

if [ "${STACKSTREAM_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== sanitizer builds (ASan+UBSan, TSan) of the unit tests"
  set +e
  ./tests/sanitizers.sh 2>&1 | tee build/sanitizers.log
  san=${PIPESTATUS[0]}
  set -e
  total=$((total + $(grep -c '^== .*: .* \(clean\|FAILED\|not built\)$' build/sanitizers.log || true)))
  failed=$((failed + $(grep -c '^== .*: .* \(FAILED\|not built\)$' build/sanitizers.log || true)))
  [ "$san" = 0 ] || status=$san
fi

if [ "${STACKSTREAM_SKIP_FUZZ:-0}" != 1 ]; then
  # Every fuzz target for a bounded time (tests/fuzz/run.sh; FUZZING.md).
  echo "== fuzz (libFuzzer + ASan + UBSan, ${STACKSTREAM_FUZZ_SECONDS:-30} s per target)"
  set +e
  ./tests/fuzz/run.sh "${STACKSTREAM_FUZZ_SECONDS:-30}" 2>&1 | tee build/fuzz.log
  fz=${PIPESTATUS[0]}
  set -e
  total=$((total + $(grep -c '^== fuzz: .*: \(clean\|FAILED\)' build/fuzz.log || true)))
  failed=$((failed + $(grep -c '^== fuzz: .*: FAILED' build/fuzz.log || true)))
  if [ "$fz" != 0 ]; then
    status=$fz
    grep -q '^== fuzz: .*: FAILED' build/fuzz.log || { failed=$((failed + 1)); total=$((total + 1)); }
  fi
fi

# Last check: /dev/null is still a character device.
total=$((total + 1))
if [ ! -c /dev/null ]; then
  failed=$((failed + 1)) status=1
  if [ "$devnull_was_ok" = 1 ]; then
    echo "deploy/test.sh: FAILED: /dev/null is no longer a character device; a test replaced it:" >&2
  else
    echo "deploy/test.sh: FAILED: /dev/null was not a character device even before the tests:" >&2
  fi
  ls -l /dev/null >&2 || true
  echo "  restore it (as root): rm -f /dev/null && mknod -m 666 /dev/null c 1 3" >&2
else
  echo "== /dev/null is still a character device"
fi

# The closing line CI reads (ctest entries + sanitizer test binaries + the
# /dev/null check).
echo "tests: $((total - failed)) passed, $failed failed" | tee build/test-summary.txt
if [ "$status" != 0 ]; then
  echo "deploy/test.sh: FAILED (status $status)"
  exit "$status"
fi
echo "deploy/test.sh: all tests passed"
