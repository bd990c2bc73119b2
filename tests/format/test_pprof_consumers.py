#!/usr/bin/env python3
"""The pprof encoder's output, read by tests/lib/pprof.py and by the real
consumer, `go tool pprof` (Debian golang-go)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pprof

build = os.environ["STACKSTREAM_BUILD_DIR"]
writer = os.path.join(build, "tests", "format", "pprof_fixture_writer")

failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures += 1


with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "fixture.pb.gz")
    subprocess.run([writer, path], check=True)
    p = pprof.load(path)
    check(p.sample_types == [("samples", "count"), ("cpu", "nanoseconds")], "sample types")
    check(p.period == 10000000 and p.period_type == ("cpu", "nanoseconds"), "period")
    check(p.total(0) == 105 and p.total(1) == 105 * 10000000, "totals")
    self_ = p.self_by_function()
    check(self_["hot_inner"] == 70 and self_["idle"] == 30 and self_["deep"] == 5, "self counts")
    hot = [s for s in p.samples if s.stack[0].function == "hot_inner"][0]
    check([f.function for f in hot.stack] == ["hot_inner", "hot", "work(int)", "main"],
          "inline frames leaf first")
    check(hot.stack[0].line == 33 and hot.stack[0].file == "demo.cc", "file:line")
    deep = [s for s in p.samples if s.stack[0].function == "deep"][0]
    check(deep.labels.get("truncated") == "true", "truncated label")
    check(any(m["build_id"] == "abcd" and m["filename"] == "/usr/bin/demo" for m in p.mappings),
          "mapping with build id")
    comments = ["stackstream: samples_dropped_ring_full=12", "stackstream: unwind_failures=3"]
    check(p.comments == comments, "comments (field 13) in order: %r" % p.comments)

    go = shutil.which("go") or "/usr/lib/go/bin/go"
    env = dict(os.environ, HOME=tmp, GOCACHE=os.path.join(tmp, "gocache"), PPROF_TMPDIR=tmp)
    r = subprocess.run([go, "tool", "pprof", "-top", "-nodecount=20", path],
                       capture_output=True, text=True, env=env, timeout=120)
    print(r.stdout, r.stderr)
    check(r.returncode == 0, "go tool pprof -top exits 0")
    # flat column of hot_inner: 700ms = 66.67% of 1.05s
    m = re.search(r"^\s*([\d.]+)(m?s)\s+([\d.]+)%.*\bhot_inner\b", r.stdout, re.M)
    check(m is not None and abs(float(m.group(3)) - 66.67) < 0.1, "go pprof flat% of hot_inner")
    r = subprocess.run([go, "tool", "pprof", "-top", "-lines", path],
                       capture_output=True, text=True, env=env, timeout=120)
    check(r.returncode == 0 and "demo.cc:33" in r.stdout, "go pprof -lines names demo.cc:33")
    r = subprocess.run([go, "tool", "pprof", "-raw", path], capture_output=True, text=True,
                       env=env, timeout=120)
    check(r.returncode == 0 and "abcd" in r.stdout, "go pprof -raw shows build id")
    check(all(c in r.stdout for c in comments), "go pprof -raw prints the comments")
    r = subprocess.run([go, "tool", "pprof", "-comments", path], capture_output=True, text=True,
                       env=env, timeout=120)
    check(r.returncode == 0 and r.stdout.split("\n")[:2] == comments,
          "go pprof -comments prints them: %r" % r.stdout)

print("%d failed" % failures)
sys.exit(1 if failures else 0)
