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
  libsqlite3-dev libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libssl-dev libre2-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev golang-go google-perftools libgoogle-perftools-dev
  sqlite3 curl procps psmisc openssl
  # deploy-file checks: YAML parsing, systemd-analyze verify
  python3-yaml systemd
  # fuzzing: clang's libFuzzer + ASan/UBSan runtimes (tests/fuzz/run.sh), and
  # FuzzedDataProvider.h for the replay build
  clang libclang-rt-14-dev libclang-common-14-dev
  # a real Prometheus server scrapes /metrics in a test
  prometheus
  # the web UI's tests drive a headless Chromium (playwright-core from npm)
  chromium
  # heap profiling: a jemalloc host in the tests; heaptrack as a benchmark peer
  libjemalloc2 heaptrack
)
# Real servers that tests/hosts runs under the agent (private instances on
# free loopback ports): PostgreSQL 15 (postgres, initdb, pg_ctl, pgbench,
# pg_isready), nginx, redis-server + redis-cli/redis-benchmark, and Python
# gRPC for /usr/bin/python3; clickhouse-server + clickhouse-client for the
# ClickHouse storage engine's tests (one- and two-shard servers on loopback).
# Installed without starting their system services.
SERVER_PACKAGES=(postgresql nginx-light redis-server redis-tools python3-grpcio
                 clickhouse-server clickhouse-client)
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
missing_servers=()
for p in "${SERVER_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_servers+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_servers[@]} -eq 0 ]; then
  echo "install-deps: all $(( ${#PACKAGES[@]} + ${#SERVER_PACKAGES[@]} )) packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]} ${missing_servers[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ${#missing_servers[@]} -gt 0 ]; then
  # Their packages would start postgresql/nginx/redis/clickhouse on the default ports;
  # the tests start their own. A policy-rc.d that denies service starts
  # (exit 101) keeps them off during this install (an existing one is kept).
  POLICY=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    added_policy=1
  fi
  rc=0
  $SUDO apt-get install -y -qq --no-install-recommends "${missing_servers[@]}" || rc=$?
  if [ "$added_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi
  [ "$rc" = 0 ] || exit "$rc"
fi
# linux-perf is optional (benchmarks compare against perf where it works).
$SUDO apt-get install -y -qq --no-install-recommends linux-perf >/dev/null 2>&1 || \
  echo "install-deps: linux-perf not available; perf comparisons will be skipped"
