#!/usr/bin/python3
"""Captures real ingest traffic as fuzz seeds.

Runs a gRPC server on loopback that speaks stackstream.v1.IngestService
(Push and Stream, acknowledging every request) and stores each request it
receives, byte for byte; then profiles fixtures with the real
libstackstream.so + stackstream-agent pointed at it. Writes
    seeds/fuzz_ingest_request/real_N   (IngestRequest bytes)
    seeds/fuzz_summary/real_N          (the StackSummary inside)

    /usr/bin/python3 tests/fuzz/capture_traffic.py BUILD_DIR
(Debian's python3-grpcio; no generated code: requests are kept as bytes.)
"""
import os
import subprocess
import sys
from concurrent import futures

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
captured = []


def fields(buf):
    """(number, wire type, value) of a protobuf message's top-level fields."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = varint(buf, pos)
        elif wt == 2:
            n, pos = varint(buf, pos)
            v, pos = buf[pos:pos + n], pos + n
        elif wt == 1:
            v, pos = buf[pos:pos + 8], pos + 8
        elif wt == 5:
            v, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


def varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def enc_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def ack(request):
    seq = next((v for n, wt, v in fields(request) if n == 2 and wt == 0), 0)
    return b"\x08" + enc_varint(seq)  # IngestAck.sequence = 1


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
        summary = next((v for n, wt, v in fields(req) if n == 3 and wt == 2), None)
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
