#!/usr/bin/env bash
# Installs dependencies, builds from scratch and runs every test.
#   ./deploy/test.sh            full: release build + ctest, then ASan and TSan
#                               builds of the agent's unit tests
#   STACKSTREAM_SKIP_SANITIZERS=1 ./deploy/test.sh   release build + ctest only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}

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

# The closing line CI reads (ctest entries + sanitizer test binaries).
echo "tests: $((total - failed)) passed, $failed failed" | tee build/test-summary.txt
if [ "$status" != 0 ]; then
  echo "deploy/test.sh: FAILED (status $status)"
  exit "$status"
fi
echo "deploy/test.sh: all tests passed"
