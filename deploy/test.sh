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
(cd build && ctest --output-on-failure --timeout 900 -j 1) || status=$?

if [ "${STACKSTREAM_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== sanitizer builds (ASan+UBSan, TSan) of the unit tests"
  ./tests/sanitizers.sh || status=$?
fi

if [ "$status" != 0 ]; then
  echo "deploy/test.sh: FAILED (status $status)"
  exit "$status"
fi
echo "deploy/test.sh: all tests passed"
