#!/usr/bin/env python3
"""Losses are data, not silence: the agents' drop counters travel through the
real ingest path (ingest_load_client -> gRPC -> stackstream-collector ->
SQLite) and come back out exactly:

  * GET /api/v1/counters: every counter summed over the range, filtered by
    service, selector and time range, plus "samples"; a resent (duplicate)
    summary is not counted twice; bad parameters are 4xx naming them;
  * X-Stackstream-Dropped-Samples on /api/v1/top and /api/v1/profile;
  * pprof comments, read back by `go tool pprof -raw` and `-comments`;
  * the note `stackstream top` prints after its table.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from stackstream_test import CLI, Checker, Collector, binary

CLIENT = binary("tests", "collector", "ingest_load_client")
START_UNIX_S = int(time.time()) - 1200  # windows 20 minutes ago
AGENTS, SUMMARIES, STACKS = 2, 5, 3
SAMPLES_PER_SUMMARY = STACKS * (STACKS + 1) // 2  # counts 1..STACKS
# Per summary. Dropped samples = ring_full + spool samples + stacks over limit.
COUNTERS = {"samples_dropped_ring_full": 2, "samples_dropped_spool_full": 7,
            "summaries_dropped_spool_full": 1, "unwind_failures": 3,
            "stacks_dropped_limit": 1, "reentrant_signals": 0}
ALL_NAMES = ["samples_dropped_ring_full", "unwind_failures", "truncated_stacks",
             "timers_failed", "summaries_dropped_spool_full", "samples_dropped_spool_full",
             "reentrant_signals", "stacks_dropped_limit", "summaries_rejected",
             "agent_reconnects", "samples_lost_agent_restart", "messages_dropped",
             "modules_rejected",
             "heap_samples_dropped_ring_full", "heap_samples_untracked_table_full",
             "heap_samples_dropped_no_thread"]
N = AGENTS * SUMMARIES
DROPPED = N * (2 + 7 + 1)

c = Checker()


def run_client(collector, service, run_id, agents, counters=None):
    args = [CLIENT, "--target", collector.grpc_addr, "--agents", str(agents), "--summaries",
            str(SUMMARIES), "--stacks", str(STACKS), "--run-id", run_id, "--service", service,
            "--start-unix-s", str(START_UNIX_S), "--progress", "0"]
    if counters:
        args += ["--counters", ",".join("%s=%d" % kv for kv in counters.items())]
    r = subprocess.run(args, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("load client failed: %s" % r.stderr.decode())
    return json.loads(r.stdout)


def get(collector, path, **params):
    """(status, headers, body) of a GET."""
    url = collector.http_url + path + "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def expected(scale):
    """The /api/v1/counters object for "scale" summaries with COUNTERS."""
    out = {name: 0 for name in ALL_NAMES}
    for name, v in COUNTERS.items():
        out[name] = v * scale
    out["samples"] = SAMPLES_PER_SUMMARY * scale
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="ss-counters-")
    try:
        with Collector() as col:
            first = run_client(col, "lossy", "r1", AGENTS, COUNTERS)
            c.check(all(len(a["acked"]) == SUMMARIES and not a["error"] for a in first["agents"]),
                    "every lossy summary acknowledged")
            run_client(col, "clean", "c1", 1)
            # Resent: the same agents and sequences again are duplicates.
            again = run_client(col, "lossy", "r1", AGENTS, COUNTERS)
            c.check(all(len(a["duplicates"]) == SUMMARIES for a in again["agents"]),
                    "resent summaries acknowledged as duplicates")
            check_counters_endpoint(col)
            check_headers_and_pprof(col, tmp)
            check_cli(col)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


RANGE = {"from": str(START_UNIX_S - 60), "to": str(START_UNIX_S + 60)}


def check_counters_endpoint(col):
    status, h, body = get(col, "/api/v1/counters", service="lossy", **RANGE)
    got = json.loads(body) if status == 200 else None
    c.check(status == 200 and h.get("Content-Type", "").startswith("application/json"),
            "counters 200 JSON")
    c.check(got == expected(N), "lossy totals exact, duplicates not counted twice: %s" % got)

    # Selector: agent 0 only (pid 1000).
    status, h, body = get(col, "/api/v1/counters", service="lossy", selector='{pid="1000"}',
                          **RANGE)
    got = json.loads(body) if status == 200 else None
    c.check(got == expected(SUMMARIES), "selector pid=1000 -> one agent's totals: %s" % got)
    status, h, body = get(col, "/api/v1/counters", selector='{service="lossy",pid="nope"}',
                          **RANGE)
    got = json.loads(body) if status == 200 else None
    c.check(got == expected(0), "selector matching nothing -> all zero: %s" % got)

    # Time range: the windows start at START+1..START+SUMMARIES s.
    status, h, body = get(col, "/api/v1/counters", service="lossy",
                          **{"from": str(START_UNIX_S + 600), "to": "now"})
    got = json.loads(body) if status == 200 else None
    c.check(got == expected(0), "range after the data -> all zero: %s" % got)
    status, h, body = get(col, "/api/v1/counters", service="lossy",
                          **{"from": "now-7d", "to": str(START_UNIX_S - 600)})
    c.check(status == 200 and json.loads(body) == expected(0), "range before the data -> zero")

    # A service that lost nothing.
    status, h, body = get(col, "/api/v1/counters", service="clean", **RANGE)
    got = json.loads(body) if status == 200 else None
    want = {name: 0 for name in ALL_NAMES}
    want["samples"] = SUMMARIES * SAMPLES_PER_SUMMARY
    c.check(got == want, "clean service: zero counters, its samples: %s" % got)

    # Errors name the parameter.
    for params, name in (({"from": "now-1h"}, "service"),
                         ({"service": "lossy", "from": "yesterday"}, "from"),
                         ({"service": "lossy", "to": "soon"}, "to"),
                         ({"service": "lossy", "selector": "{pid="}, "selector")):
        status, h, body = get(col, "/api/v1/counters", **params)
        try:
            msg = json.loads(body)["error"]
        except Exception:
            msg = ""
        c.check(400 <= status < 500 and ('"%s"' % name) in msg,
                "counters %s -> %d naming %s (%s)" % (params, status, name, msg))
    c.check(col.proc.poll() is None, "collector alive after bad requests")


def check_headers_and_pprof(col, tmp):
    status, h, body = get(col, "/api/v1/top", service="lossy", **RANGE)
    c.check(status == 200 and isinstance(json.loads(body), list), "top still a JSON list")
    c.check(h.get("X-Stackstream-Dropped-Samples") == str(DROPPED),
            "top X-Stackstream-Dropped-Samples = %d: %s"
            % (DROPPED, h.get("X-Stackstream-Dropped-Samples")))
    status, h, body = get(col, "/api/v1/top", service="clean", **RANGE)
    c.check(h.get("X-Stackstream-Dropped-Samples") == "0", "clean top header is 0")
    status, h, body = get(col, "/api/v1/profile", service="lossy", format="folded", **RANGE)
    c.check(status == 200 and h.get("X-Stackstream-Dropped-Samples") == str(DROPPED),
            "folded profile carries the header too")

    status, h, body = get(col, "/api/v1/profile", service="lossy", format="pprof", **RANGE)
    c.check(status == 200 and body[:2] == b"\x1f\x8b", "pprof is gzip")
    path = os.path.join(tmp, "lossy.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    want = sorted("stackstream: %s=%d" % (k, v * N) for k, v in COUNTERS.items() if v)
    env = dict(os.environ, HOME=tmp, GOCACHE=os.path.join(tmp, "gocache"), PPROF_TMPDIR=tmp)
    go = shutil.which("go") or "/usr/lib/go/bin/go"
    r = subprocess.run([go, "tool", "pprof", "-comments", path], capture_output=True,
                       text=True, env=env, timeout=120)
    got = [l for l in r.stdout.splitlines() if l]
    c.check(r.returncode == 0 and got == want,
            "go tool pprof -comments: %r (want %r) %s" % (got, want, r.stderr[-300:]))
    r = subprocess.run([go, "tool", "pprof", "-raw", path], capture_output=True, text=True,
                       env=env, timeout=120)
    c.check(r.returncode == 0 and all(w in r.stdout for w in want),
            "go tool pprof -raw prints the counters")
    status, h, body = get(col, "/api/v1/profile", service="clean", format="pprof", **RANGE)
    path = os.path.join(tmp, "clean.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    r = subprocess.run([go, "tool", "pprof", "-comments", path], capture_output=True,
                       text=True, env=env, timeout=120)
    c.check(r.returncode == 0 and "stackstream:" not in r.stdout,
            "clean pprof has no counter comments: %r" % r.stdout)


def check_cli(col):
    base = [CLI, "top", "--server", col.http_url, "--from", RANGE["from"], "--to", RANGE["to"]]
    r = subprocess.run(base + ["--service", "lossy"], capture_output=True, text=True, timeout=60)
    note = ("note: %d samples were lost by the agents in this range (see /api/v1/counters)"
            % DROPPED)
    c.check(r.returncode == 0 and r.stderr.strip().splitlines()[-1:] == [note],
            "top prints the loss note: %r" % r.stderr)
    lines = r.stdout.splitlines()
    c.check(lines and lines[0].split()[:2] == ["SELF%", "TOTAL%"] and "note" not in r.stdout,
            "top table on stdout unchanged (no note in it)")
    r = subprocess.run(base + ["--service", "clean"], capture_output=True, text=True, timeout=60)
    c.check(r.returncode == 0 and "note:" not in r.stderr and r.stdout.split()[:1] == ["SELF%"],
            "top of a service that lost nothing: no note (%r)" % r.stderr)
    r = subprocess.run(base + ["--service", "lossy", "--json"], capture_output=True, text=True,
                       timeout=60)
    c.check(r.returncode == 0 and isinstance(json.loads(r.stdout), list) and not r.stderr,
            "top --json unchanged")


if __name__ == "__main__":
    main()
