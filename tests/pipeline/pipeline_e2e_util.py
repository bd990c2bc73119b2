"""Shared helpers for the pipeline's end-to-end drivers: run a fixture with
the real agent preloaded, read totals from pprof files and the collector."""
import os
import subprocess
import tempfile
import time
import urllib.parse

import pprof
from stackstream_test import AGENT, BUILD

CPU_SPLIT = os.path.join(BUILD, "tests", "fixtures", "cpu_split")


def agent_env(**kw):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("STACKSTREAM_") and k not in ("STACKSTREAM_BUILD_DIR", "STACKSTREAM_SOURCE_DIR"):
            del env[k]
    env["LD_PRELOAD"] = AGENT
    for k, v in kw.items():
        env["STACKSTREAM_" + k.upper()] = str(v)
    return env


def run_fixture(args, env, timeout=120):
    t0 = time.time()
    r = subprocess.run([CPU_SPLIT] + args, env=env, capture_output=True, timeout=timeout)
    return r, time.time() - t0


def pprof_total(path):
    p = pprof.load(path)
    return sum(s.values[0] for s in p.samples), p


def collector_total(collector, service):
    status, folded = collector.get("/api/v1/profile", service=service, format="folded",
                                   **{"from": "now-1h", "to": "now+1h"})
    if status != 200:
        return -1, {}
    total = 0
    by_leaf = {}
    for line in folded.decode().splitlines():
        if not line:
            continue
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        leaf = stack.split(";")[-1]
        by_leaf[leaf] = by_leaf.get(leaf, 0) + int(count)
    return total, by_leaf


def wait_for_total(collector, service, expected, timeout=10):
    deadline = time.time() + timeout
    total = -1
    while time.time() < deadline:
        total, _ = collector_total(collector, service)
        if total == expected:
            return total
        time.sleep(0.2)
    return total


def tmpdir():
    return tempfile.mkdtemp(prefix="ss-pipeline-")
