#!/usr/bin/env python3
"""Whole system: `stackstream run` preloads the real agent into the demo
workload, which streams to a real collector (SQLite); `stackstream top` and
the HTTP API then show what the program did.

The demo's known shape: every request spends ~50% of its CPU in
parse_request, ~30% in compress_response, ~20% in checksum (self time) (iteration
counts 5:3:2 of the same loop). Tolerance: ±5 points. Total CPU samples must
match the process's CPU time × 400 Hz within ±10% (400 Hz so that
the shares rest on thousands of samples: ±5 points is then > 5 sigma).
"""
import os
import resource
import subprocess
import time

from stackstream_test import CLI, DEMO, Checker, Collector

t = Checker()
with Collector() as c:
    service = "e2e-demo"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([CLI, "run", "--collector", c.grpc_addr, "--service", service,
                        "--hz", "400", "--label", "env=test", "--", DEMO, "3", "2"],
                       capture_output=True, text=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    t.check(r.returncode == 0, "demo exit code kept (%d)" % r.returncode)
    t.check(r.stdout == "", "nothing on the host's stdout")

    rows = []
    for _ in range(50):  # the final flush is acknowledged at exit; allow for slow CI
        rows = c.get_json("/api/v1/top", service=service, **{"from": "now-10m"}, limit=50)
        if rows:
            break
        time.sleep(0.2)
    t.check(len(rows) > 0, "collector has rows for the service")
    for fn, share in (("parse_request", 50), ("compress_response", 30), ("checksum", 20)):
        row = next((r for r in rows if fn in r["function"]), None)
        t.near(row["self_pct"] if row else 0.0, share, 5, "self %% in %s" % fn)
        t.check(row is not None and row["self_pct"] <= row["total_pct"], "self <= total for " + fn)
    handle = next((r for r in rows if "handle_request" in r["function"]), None)
    t.near(handle["total_pct"] if handle else 0.0, 100, 3, "total % under handle_request")

    # total samples vs CPU time
    status, folded = c.get("/api/v1/profile", service=service, format="folded",
                           **{"from": "now-10m"})
    t.check(status == 200, "folded export 200")
    samples = sum(int(line.rsplit(" ", 1)[1]) for line in folded.decode().splitlines() if line)
    t.near(samples / 400.0, cpu_s, 0.10 * cpu_s, "samples / 400 Hz vs process CPU seconds")

    services = c.get_json("/api/v1/services")
    svc = [s for s in services if s.get("service") == service]
    t.check(len(svc) == 1, "service listed")
    t.check(svc and any(ls.get("env") == "test" for ls in svc[0].get("label_sets", [])),
            "static label env=test kept")

    # the CLI's table
    r = subprocess.run([CLI, "top", "--server", c.http_url, "--service", service,
                        "--from", "now-10m", "--limit", "10"], capture_output=True, text=True,
                       timeout=30)
    t.check(r.returncode == 0 and "parse_request" in r.stdout.splitlines()[1],
            "stackstream top prints the hottest function first")
    print(r.stdout)
t.finish()
