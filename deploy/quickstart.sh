#!/usr/bin/env bash
# Quickstart: install, build, start the collector on its embedded SQLite
# store, profile a demo program under the agent, print its hot functions,
# write a pprof and a speedscope file, and end with the web UI's URL opened
# on the demo's profile. The collector keeps running in the background;
#   ./deploy/quickstart.sh --stop
# stops it. A second run stops the collector the first one left and starts
# the freshly built one on the same data.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREFIX=$ROOT/.stackstream            # installed binaries (bin/, lib/, share/)
OUT=$ROOT/quickstart-out             # exported profiles, the collector's log
DATA=$ROOT/stackstream-data          # the collector's SQLite database
PIDFILE=$OUT/collector.pid           # the background collector's pid
GRPC_PORT=${GRPC_PORT:-7433}
HTTP_PORT=${HTTP_PORT:-7434}
SERVICE=quickstart-demo

# The collector a previous run left running, if any (its pid file names a
# live stackstream-collector).
running_collector() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = stackstream-col ] || return 1
  echo "$pid"
}
stop_collector() {
  local pid
  if pid=$(running_collector); then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "quickstart: stopped the collector (pid $pid)"
  fi
  rm -f "$PIDFILE"
}
if [ "${1:-}" = --stop ]; then
  running_collector >/dev/null || echo "quickstart: no collector of the quickstart is running"
  stop_collector
  exit 0
fi

./deploy/install-deps.sh

echo "== build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target stackstream stackstream-collector stackstream_cli stackstream-demo stackstream_ui
cmake --install build --prefix "$PREFIX" >/dev/null

# A collector left by an earlier run is restarted on the new binaries.
stop_collector

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_busy "$HTTP_PORT" || port_busy "$GRPC_PORT"; then
  echo "ports $GRPC_PORT/$HTTP_PORT are taken; using 17433/17434"
  GRPC_PORT=17433 HTTP_PORT=17434
fi
SERVER=http://127.0.0.1:$HTTP_PORT

echo "== start the collector in the background (SQLite at $DATA/profiles.db)"
mkdir -p "$DATA" "$OUT"
setsid "$PREFIX/bin/stackstream-collector" --grpc-listen "127.0.0.1:$GRPC_PORT" \
  --http-listen "127.0.0.1:$HTTP_PORT" --storage "sqlite:$DATA/profiles.db" \
  --log-level warn </dev/null >/dev/null 2>"$OUT/collector.log" &
COLLECTOR=$!
echo "$COLLECTOR" >"$PIDFILE"
# Until the demo is profiled, a failure stops the collector again.
trap 'stop_collector' EXIT
for _ in $(seq 100); do
  curl -fsS "$SERVER/healthz" >/dev/null 2>&1 && break
  kill -0 $COLLECTOR 2>/dev/null || { cat "$OUT/collector.log"; exit 1; }
  sleep 0.1
done

echo "== profile the demo for 5 s: stackstream run -- stackstream-demo 5 2"
START=$(date +%s)
"$PREFIX/bin/stackstream" run --collector "127.0.0.1:$GRPC_PORT" --service "$SERVICE" \
  --output "$OUT/demo-offline.pb.gz" -- "$PREFIX/bin/stackstream-demo" 5 2

# The agent's final flush is acknowledged before the demo exits; wait for it
# to be queryable all the same.
for _ in $(seq 50); do
  "$PREFIX/bin/stackstream" services --server "$SERVER" 2>/dev/null | grep -q "$SERVICE" && break
  sleep 0.2
done

echo
echo "== hot functions: stackstream top --service $SERVICE"
"$PREFIX/bin/stackstream" top --server "$SERVER" --service "$SERVICE" --from "$START" --limit 10
"$PREFIX/bin/stackstream" export --server "$SERVER" --service "$SERVICE" --from "$START" \
  --format pprof -o "$OUT/demo.pb.gz"
"$PREFIX/bin/stackstream" export --server "$SERVER" --service "$SERVICE" --from "$START" \
  --format speedscope -o "$OUT/demo.speedscope.json"

trap - EXIT
UI="$SERVER/ui/?service=$SERVICE&from=$((START - 60))&to=now"

cat <<MSG

== where to look further
  pprof file:       $OUT/demo.pb.gz
                    go tool pprof -top $OUT/demo.pb.gz
                    go tool pprof -http=127.0.0.1:8080 $OUT/demo.pb.gz
  speedscope file:  $OUT/demo.speedscope.json   (or "open in speedscope" in the web UI)
  offline profile:  $OUT/demo-offline.pb.gz      (written by the agent itself, no collector needed)
  collector API:
                    $SERVER/api/v1/services
                    $SERVER/api/v1/top?service=$SERVICE&from=now-1h
                    $SERVER/api/v1/profile?service=$SERVICE&from=now-1h&format=folded
                    go tool pprof -top '$SERVER/api/v1/profile?service=$SERVICE&from=now-1h&format=pprof'
  profile your own program:
                    $PREFIX/bin/stackstream run -- ./your-program args...
                    LD_PRELOAD=$PREFIX/lib/libstackstream.so ./your-program args...

== the web UI, on the demo's profile (the collector keeps running, pid $COLLECTOR):

  $UI

  stop the collector:  ./deploy/quickstart.sh --stop
MSG
