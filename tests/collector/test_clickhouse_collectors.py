#!/usr/bin/env python3
"""Stateless collectors on one ClickHouse database (a real clickhouse-server
on loopback, real collectors, the real agent preloaded into cpu_split).

1. Two collectors, each fed by its own profiled fixture: each returns both
   programs' profiles, equal to the agents' own accounts (their offline
   pprof files, written from the very same summaries), and equal to each
   other.
2. Fail-over: an agent configured with "A,B" streams to A; A is SIGKILLed
   while summaries are in flight (sent, not yet acknowledged); the agent
   re-sends its spool to B. The stored total equals the agent's own total:
   nothing lost, nothing doubled.
3. ClickHouse SIGKILLed under ingest (ingest_load_client, 4 agents): ingest
   answers UNAVAILABLE, /healthz is 503 "storage not ready", /metrics counts
   storage errors; after the restart /healthz is 200 again, a re-send of
   everything stores every summary exactly once and every summary that was
   acknowledged before the kill is there (as a duplicate of the re-send).
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pipeline"))
from clickhouse_servers import ClickHouseServers  # noqa: E402
from pipeline_e2e_util import (CPU_SPLIT, agent_env, collector_total, pprof_total,  # noqa: E402
                               tmpdir, wait_for_total)
from stackstream_test import Checker, Collector, binary  # noqa: E402

CLIENT = binary("tests", "collector", "ingest_load_client")
t = Checker()
d = tmpdir()


def metric(collector, name):
    status, body = collector.get("/metrics")
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    return int(m.group(1)) if m else -1


def folded(collector, service):
    status, body = collector.get("/api/v1/profile", service=service, format="folded",
                                 **{"from": "now-1h", "to": "now+1h"})
    return sorted(body.decode().splitlines()) if status == 200 else None


def run_agent(service, collectors, seconds, threads=2):
    out = os.path.join(d, service + ".pb.gz")
    env = agent_env(collector=collectors, output=out, flush_ms=300, service=service)
    proc = subprocess.Popen([CPU_SPLIT, "--threads=%d" % threads, "--seconds=%d" % seconds],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, out


ch = ClickHouseServers(1)
collectors = []
try:
    ch.__enter__()
    uri = ch.uri(0, "e2e")
    a = Collector(storage=uri).start()
    b = Collector(storage=uri).start()
    collectors += [a, b]

    # 1. Two collectors, two programs.
    p1, out1 = run_agent("ch-one", a.grpc_addr, 2)
    p2, out2 = run_agent("ch-two", b.grpc_addr, 2)
    for p in (p1, p2):
        p.communicate(timeout=60)
        t.check(p.returncode == 0, "fixture exit code 0")
    want = {"ch-one": pprof_total(out1)[0], "ch-two": pprof_total(out2)[0]}
    for c, name in ((a, "A"), (b, "B")):
        for service, total in want.items():
            got = wait_for_total(c, service, total, timeout=15)
            t.check(got == total and total > 0,
                    "collector %s: %s total %d == agent's own %d" % (name, service, got, total))
    for service in want:
        fa, fb = folded(a, service), folded(b, service)
        t.check(fa is not None and fa == fb,
                "%s: A and B return the same folded profile (%d stacks)" % (service, len(fa or [])))
    services = {s["service"] for s in a.get_json("/api/v1/services")}
    t.check({"ch-one", "ch-two"} <= services, "A lists both services: %s" % sorted(services))

    # 2. Fail-over from A to B with summaries in flight.
    before_dups = metric(b, "stackstream_summaries_duplicate_total")
    p3, out3 = run_agent("ch-fail", "%s,%s" % (a.grpc_addr, b.grpc_addr), 4)
    deadline = time.time() + 20
    while time.time() < deadline and metric(a, "stackstream_summaries_ingested_total") < 3 + 6:
        time.sleep(0.05)
    # Freeze A (what the agent sends now is neither stored nor acknowledged),
    # let the agent send into it, then kill it.
    a.proc.send_signal(signal.SIGSTOP)
    time.sleep(0.8)
    a.kill()
    p3.communicate(timeout=60)
    t.check(p3.returncode == 0, "fail-over fixture exit code 0")
    agent_total = pprof_total(out3)[0]
    got = wait_for_total(b, "ch-fail", agent_total, timeout=30)
    t.check(got == agent_total and agent_total > 0,
            "after fail-over B holds the agent's total exactly: %d == %d" % (got, agent_total))
    print("     (B saw %d re-sent duplicates)" %
          (metric(b, "stackstream_summaries_duplicate_total") - before_dups))
    a = Collector(storage=uri).start()  # a new stateless collector sees it too
    collectors.append(a)
    t.check(collector_total(a, "ch-fail")[0] == agent_total,
            "a new collector returns the same total")

    # 3. ClickHouse killed under ingest.
    client = subprocess.Popen(
        [CLIENT, "--target", b.grpc_addr, "--agents", "4", "--summaries", "150", "--stacks", "3",
         "--run-id", "chkill", "--service", "load", "--start-unix-s",
         str(int(time.time()) - 600), "--progress", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in iter(client.stderr.readline, b""):
        if line.startswith(b"acked ") and int(line.split()[1]) >= 100:
            ch.kill(0)
            break
    out, _ = client.communicate(timeout=120)
    res = json.loads(out)
    acked = {(x["agent"], s) for x in res["agents"] for s in x["acked"] + x["duplicates"]}
    t.check(0 < len(acked) < 600, "ClickHouse killed mid-ingest (%d of 600 acknowledged)"
            % len(acked))
    errors = [x["error"] for x in res["agents"]]
    t.check(all("UNAVAILABLE" in e or "14" in e or "not stored" in e for e in errors),
            "every stream ended with UNAVAILABLE: %s" % [e[:80] for e in errors])
    status, body = b.get("/healthz")
    t.check(status == 503 and b"storage not ready" in body,
            "/healthz 503 while ClickHouse is down: %d %s" % (status, body[:80]))
    t.check(metric(b, "stackstream_storage_errors_total") >= 4,
            "/metrics counts storage errors (%d)" % metric(b, "stackstream_storage_errors_total"))
    ch.start(0)
    status, _ = b.get("/healthz")
    t.check(status == 200, "/healthz 200 once ClickHouse is back")
    client = subprocess.run(
        [CLIENT, "--target", b.grpc_addr, "--agents", "4", "--summaries", "150", "--stacks", "3",
         "--run-id", "chkill", "--service", "load", "--start-unix-s",
         str(int(time.time()) - 600)], capture_output=True, timeout=300)
    res = json.loads(client.stdout)
    dups = {(x["agent"], s) for x in res["agents"] for s in x["duplicates"]}
    t.check(res["acked_summaries"] == 600, "re-send: all 600 acknowledged (%d)"
            % res["acked_summaries"])
    t.check(acked <= dups, "every summary acknowledged before the kill is stored "
            "(%d of %d come back as duplicates)" % (len(acked & dups), len(acked)))
    total, _ = collector_total(a, "load")
    t.check(total == res["acked_samples"],
            "stored samples %d == samples of 600 summaries %d (none doubled)"
            % (total, res["acked_samples"]))
finally:
    for c in collectors:
        c.kill()
    if t.failed:
        for c in collectors:
            print("collector log:\n" + c.read_log())
        print("clickhouse:\n" + ch.tail(0))
    ch.stop()
t.finish()
