#!/usr/bin/env python3
"""The real agent preloaded into cpu_split streams to the REAL collector.

1. Collector up: the collector's sample total equals the agent's own account
   (its offline file, written from the very same summaries), and the hot
   functions are named.
2. Collector down at start, brought up mid-run: data sent after it came up
   arrives (the spool keeps what was made before), the host's exit code,
   stdout and run time are untouched.
3. Collector SIGKILLed mid-run and restarted on the same store: no
   acknowledged summary lost, none stored twice (collector total == agent's
   offline total).
4. Dead collector address: the host finishes within 1 s of its normal time.
"""
import os
import subprocess
import sys
import time

from pipeline_e2e_util import (CPU_SPLIT, agent_env, collector_total, pprof_total, run_fixture,
                               tmpdir, wait_for_total)
from stackstream_test import AGENT, COLLECTOR, Checker, Collector, free_port

t = Checker()
for path in (AGENT, CPU_SPLIT, COLLECTOR):
    if not os.path.exists(path):
        print("FAIL missing " + path)
        sys.exit(1)
d = tmpdir()

# 1. Collector up.
with Collector() as c:
    out = os.path.join(d, "up.pb.gz")
    env = agent_env(collector=c.grpc_addr, output=out, flush_ms=500, service="pipe-up")
    r, _ = run_fixture(["--threads=2", "--seconds=2"], env)
    t.check(r.returncode == 0, "exit code 0")
    agent_total, _ = pprof_total(out)
    total = wait_for_total(c, "pipe-up", agent_total)
    t.check(total == agent_total and total > 0,
            "collector total %d == agent's own total %d" % (total, agent_total))
    _, by_leaf = collector_total(c, "pipe-up")
    rows = c.get_json("/api/v1/top", service="pipe-up", limit=20, **{"from": "now-1h"})
    names = " ".join(row["function"] for row in rows)
    t.check("fixture_hot_a" in names or "Spin" in names, "collector names the hot functions: " + names[:200])

# 2. Down at start, up mid-run.
port = free_port()
plain_args = ["--threads=2", "--seconds=4", "--exit-code=5", "--stdout-lines=3"]
plain = subprocess.run([CPU_SPLIT] + plain_args, capture_output=True, timeout=60)
c = Collector(grpc_port=port)
out = os.path.join(d, "late.pb.gz")
env = agent_env(collector="127.0.0.1:%d" % port, output=out, flush_ms=300, service="pipe-late")
t0 = time.time()
proc = subprocess.Popen([CPU_SPLIT] + plain_args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
time.sleep(1.5)
c.start()
stdout, _ = proc.communicate(timeout=60)
took = time.time() - t0
t.check(proc.returncode == 5, "exit code kept (%d)" % proc.returncode)
t.check(stdout == plain.stdout, "stdout untouched")
t.check(took < 4 + 1.5, "run time %.1fs (4 s program)" % took)
agent_total, _ = pprof_total(out)
total = wait_for_total(c, "pipe-late", agent_total)
t.check(total == agent_total,
        "collector got everything the spool kept: %d of %d" % (total, agent_total))
c.stop()

# 3. SIGKILL mid-run, restart on the same store and port.
port = free_port()
db = os.path.join(d, "killdb")
os.makedirs(db)
c = Collector(db_dir=db, grpc_port=port).start()
out = os.path.join(d, "kill.pb.gz")
env = agent_env(collector="127.0.0.1:%d" % port, output=out, flush_ms=200, service="pipe-kill")
proc = subprocess.Popen([CPU_SPLIT, "--threads=2", "--seconds=5"], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
time.sleep(1.8)
c.kill()
time.sleep(1.0)
c = Collector(db_dir=db, grpc_port=port, http_port=c.http_port).start()
proc.wait(timeout=60)
t.check(proc.returncode == 0, "exit code 0")
agent_total, _ = pprof_total(out)
total = wait_for_total(c, "pipe-kill", agent_total)
t.check(total == agent_total,
        "after SIGKILL + restart: collector total %d == agent total %d (none lost, none twice)"
        % (total, agent_total))
c.stop()

# 4. Dead collector address: run time unaffected.
t0 = time.time()
subprocess.run([CPU_SPLIT, "--threads=1", "--seconds=1"], capture_output=True, timeout=60)
normal = time.time() - t0
env = agent_env(collector="127.0.0.1:%d" % free_port(), service="pipe-dead", flush_ms=200)
r, took = run_fixture(["--threads=1", "--seconds=1"], env)
t.check(r.returncode == 0 and took < normal + 1.0,
        "dead collector: run took %.2fs (%.2fs without the agent)" % (took, normal))

import shutil
shutil.rmtree(d, ignore_errors=True)
t.finish()
