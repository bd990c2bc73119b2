#!/usr/bin/env python3
"""Measures the pipeline's cost (not a pass/fail test): the real agent in
cpu_split with 8 busy threads at 100 Hz, streaming to the real collector.
Reads the agent's debug "pipeline stats" lines: gzip bytes per sample of each
summary (what gRPC's gzip message compression sends) and the drain thread's
CPU milliseconds per second.

    STACKSTREAM_BUILD_DIR=build PYTHONPATH=tests/lib:tests/pipeline \
        python3 tests/pipeline/measure_pipeline.py [seconds] [flush_ms]
"""
import os
import re
import sys

from pipeline_e2e_util import agent_env, run_fixture, tmpdir
from stackstream_test import Collector

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 22
flush_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
d = tmpdir()
log = os.path.join(d, "agent.log")
with Collector() as c:
    env = agent_env(collector=c.grpc_addr, log="debug", log_file=log, flush_ms=flush_ms,
                    service="measure", hz=100)
    r, took = run_fixture(["--threads=8", "--seconds=%g" % seconds], env, timeout=600)
stats = []
for line in open(log):
    m = re.search(r"pipeline stats: (.*)", line)
    if m:
        stats.append(dict(kv.split("=") for kv in m.group(1).split()))
for s in stats:
    print("window: samples=%s stacks=%s summary_bytes=%s gzip_bytes=%s bytes/sample=%s "
          "drain_cpu_ms_per_s=%s" % (s["samples"], s["stacks"], s["summary_bytes"],
                                     s["gzip_bytes"], s["bytes_per_sample"],
                                     s["drain_cpu_ms_per_s"]))
full = [s for s in stats[1:-1]] or stats
if full:
    samples = sum(int(s["samples"]) for s in full)
    gz = sum(int(s["gzip_bytes"]) for s in full)
    cpu = [float(s["drain_cpu_ms_per_s"]) for s in full]
    print("steady state (%d full windows): %.3f bytes/sample (gzip), drain thread %.2f ms CPU/s"
          % (len(full), gz / max(samples, 1), sum(cpu) / len(cpu)))
