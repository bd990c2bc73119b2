#!/usr/bin/env python3
"""fork() without exec AFTER the parent's agent has streamed (used gRPC),
with the REAL agent and the REAL collector.

1. Late fork: the parent works for more than one flush interval (so it has
   sent to the collector), then forks a child that burns ~1 s in
   fixture_late_child_work. The child's samples reach the collector under
   the child's own pid label, the parent's under its pid; exit codes and
   stdout are what the program gives without the agent.
2. Fork storm: the parent keeps streaming while it forks 50 short children
   (half leave with _exit(), half with exit()): no hang (timeout), no crash,
   exit code 0, and the collector holds exactly the parent's own account
   (its offline file, written from the same summaries).
"""
import os
import subprocess
import sys
import time

import pprof
from pipeline_e2e_util import agent_env, tmpdir
from stackstream_test import AGENT, BUILD, COLLECTOR, Checker, Collector

LATE_FORKER = os.path.join(BUILD, "tests", "fixtures", "late_forker")


def profile_by_leaf(c, service, pid):
    """Samples stored for service+pid: (total, {function: self samples})."""
    status, folded = c.get("/api/v1/profile", service=service, format="folded",
                           selector='{pid="%d"}' % pid, **{"from": "now-1h", "to": "now+1h"})
    if status != 200:
        return -1, {}
    total, funcs = 0, {}
    for line in folded.decode().splitlines():
        if not line:
            continue
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        for f in set(stack.split(";")):
            funcs[f] = funcs.get(f, 0) + int(count)
    return total, funcs


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


t = Checker()
for path in (AGENT, LATE_FORKER, COLLECTOR):
    if not os.path.exists(path):
        print("FAIL missing " + path)
        sys.exit(1)
d = tmpdir()

with Collector() as c:
    # 1. Late fork.
    args = ["--warmup=1.2", "--seconds=1", "--child-exit=3", "--parent-exit=5", "--stdout-lines=3"]
    plain = subprocess.run([LATE_FORKER] + args, capture_output=True, timeout=60)
    pidfile = os.path.join(d, "child.pid")
    env = agent_env(collector=c.grpc_addr, flush_ms=500, service="late-fork",
                    output=os.path.join(d, "late-%p.pb.gz"))
    r = subprocess.run([LATE_FORKER] + args + ["--child-pid-file=" + pidfile], env=env,
                       capture_output=True, timeout=60)
    t.check(r.returncode == 5, "exit code 5, child's 3 seen by the parent (got %d) %s" %
            (r.returncode, r.stderr[-300:] if r.returncode != 5 else ""))
    t.check(r.stdout == plain.stdout, "stdout untouched")
    child = int(open(pidfile).read())
    parent_files = [f for f in os.listdir(d) if f.startswith("late-") and f != "late-%d.pb.gz" % child]
    parent_pid = int(parent_files[0][len("late-"):-len(".pb.gz")]) if parent_files else -1
    child_offline = pprof.load(os.path.join(d, "late-%d.pb.gz" % child))
    child_offline_total = sum(s.values[0] for s in child_offline.samples)
    wait_for(lambda: profile_by_leaf(c, "late-fork", child)[0] >= child_offline_total > 0)
    ctotal, cfuncs = profile_by_leaf(c, "late-fork", child)
    t.check(ctotal == child_offline_total and ctotal > 0,
            "child (pid %d) streamed: collector %d samples == child's own account %d" %
            (child, ctotal, child_offline_total))
    t.check(cfuncs.get("fixture_late_child_work", 0) >= 50,
            "child's samples name fixture_late_child_work (%d, ~100 expected)" %
            cfuncs.get("fixture_late_child_work", 0))
    t.check(cfuncs.get("fixture_late_parent_work", 0) == 0, "no parent samples under the child's pid")
    ptotal, pfuncs = profile_by_leaf(c, "late-fork", parent_pid)
    t.check(pfuncs.get("fixture_late_parent_work", 0) >= 150,
            "parent (pid %d) streamed fixture_late_parent_work (%d, ~220 expected)" %
            (parent_pid, pfuncs.get("fixture_late_parent_work", 0)))
    t.check(pfuncs.get("fixture_late_child_work", 0) == 0, "no child samples under the parent's pid")
    sets = [s for s in c.get_json("/api/v1/services") if s["service"] == "late-fork"]
    label_sets = [ls for s in sets for ls in s["label_sets"]]
    t.check(len(label_sets) == 1 and "pid" not in label_sets[0],
            "parent and child are one label set (pid is a process label): %s" % label_sets)
    pids = c.label_values("pid", '{service_name="late-fork"}')
    t.check(str(child) in pids and str(parent_pid) in pids, "LabelValues pid lists both pids: %s" % pids)

    # 2. Fork storm.
    env = agent_env(collector=c.grpc_addr, flush_ms=300, service="fork-storm",
                    output=os.path.join(d, "storm-%p.pb.gz"))
    t0 = time.time()
    try:
        p = subprocess.Popen([LATE_FORKER, "--warmup=0.8", "--storm=50", "--storm-gap-ms=20",
                              "--seconds=0.5"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=60)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = "timeout"
    t.check(rc == 0, "storm: exit 0, all 50 children exited with 7 (got %s, %.1f s) %s" %
            (rc, time.time() - t0, err[-300:] if rc != 0 else ""))
    t.check(out == b"", "storm: stdout untouched")
    storm_pid = p.pid
    own = os.path.join(d, "storm-%d.pb.gz" % storm_pid)
    own_total = sum(s.values[0] for s in pprof.load(own).samples) if os.path.exists(own) else -1
    wait_for(lambda: profile_by_leaf(c, "fork-storm", storm_pid)[0] == own_total)
    stotal, sfuncs = profile_by_leaf(c, "fork-storm", storm_pid)
    t.check(stotal == own_total and stotal > 100,
            "storm: parent's data intact (collector %d == parent's own account %d)" %
            (stotal, own_total))
    t.check(sfuncs.get("fixture_late_child_work", 0) == 0, "storm: no child samples under the parent")

t.finish()
