#!/usr/bin/python3
"""Captures real ingest traffic as fuzz seeds.

Runs a gRPC server on loopback that speaks stackstream.v1.IngestService
(Push and Stream, acknowledging every request) and stores each request it
receives, byte for byte; then profiles fixtures with the real
libstackstream.so + stackstream-agent pointed at it. Writes
    seeds/fuzz_ingest_request/real_N   (IngestRequest bytes)
    seeds/fuzz_summary/real_N          (the StackSummary inside)

    /usr/bin/python3 tests/fuzz/capture_traffic.py BUILD_DIR
(Debian's python3-grpcio; no generated code: requests are kept as bytes,
read with tests/collector/protowire.py.)
"""
import os
import subprocess
import sys
from concurrent import futures

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "collector"))
import protowire  # noqa: E402  (tests/collector/protowire.py)

HERE = os.path.dirname(os.path.abspath(__file__))
captured = []


def ack(request):
    seq = protowire.decode(request).get(2, [0])[0]
    return protowire.encode([(1, seq)])  # IngestAck.sequence = 1


def push(request, context):
    captured.append(request)
    return ack(request)


def stream(requests, context):
    for r in requests:
        captured.append(r)
        yield ack(r)


def main():
    build = sys.argv[1]
    ident = lambda b: b
    handler = grpc.method_handlers_generic_handler("stackstream.v1.IngestService", {
        "Push": grpc.unary_unary_rpc_method_handler(push, ident, ident),
        "Stream": grpc.stream_stream_rpc_method_handler(stream, ident, ident),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = dict(os.environ, LD_PRELOAD=os.path.join(build, "agent", "libstackstream.so"),
               STACKSTREAM_COLLECTOR="127.0.0.1:%d" % port, STACKSTREAM_FLUSH_MS="500",
               STACKSTREAM_LABELS="env=fuzz,team=profiling")
    fixtures = os.path.join(build, "tests", "fixtures")
    subprocess.run([os.path.join(fixtures, "cpu_split"), "--threads=2", "--seconds=1.5"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(fixtures, "deep_recursion"), "--seconds=1"], env=dict(env, STACKSTREAM_MODE="wall"),
                   check=False, stdout=subprocess.DEVNULL, timeout=60)
    server.stop(1)
    for target in ("fuzz_ingest_request", "fuzz_summary"):
        os.makedirs(os.path.join(HERE, "seeds", target), exist_ok=True)
    kept = 0
    for i, req in enumerate(captured[:6]):
        summary = protowire.decode(req).get(3, [None])[0]
        if summary is None:
            continue
        with open(os.path.join(HERE, "seeds", "fuzz_ingest_request", "real_%d" % i), "wb") as f:
            f.write(req)
        with open(os.path.join(HERE, "seeds", "fuzz_summary", "real_%d" % i), "wb") as f:
            f.write(summary)
        kept += 1
    print("captured %d requests, kept %d as seeds" % (len(captured), kept))
    return 0 if kept else 1


if __name__ == "__main__":
    sys.exit(main())
