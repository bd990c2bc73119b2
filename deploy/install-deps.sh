#!/usr/bin/env bash
# Installs every Debian package the build, the tests, the benchmarks and the
# quickstart need. Idempotent; Debian 12 (bookworm); needs root (or sudo).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git python3 binutils
  # agent
  libunwind-dev libdw-dev libelf-dev
  # shared: schema, transport, logging, compression
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libspdlog-dev zlib1g-dev
  # collector
  libsqlite3-dev libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libssl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev golang-go google-perftools libgoogle-perftools-dev
  sqlite3 curl procps psmisc openssl
  # a real Prometheus server scrapes /metrics in a test
  prometheus
)
# Node.js + npm for the @connectrpc/connect-node client test: only when the
# machine has none (an existing Node.js, e.g. with its own npm, is kept).
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# linux-perf is optional (benchmarks compare against perf where it works).
$SUDO apt-get install -y -qq --no-install-recommends linux-perf >/dev/null 2>&1 || \
  echo "install-deps: linux-perf not available; perf comparisons will be skipped"
