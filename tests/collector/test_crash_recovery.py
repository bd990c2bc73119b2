#!/usr/bin/env python3
"""Collector SIGKILLed during ingest and restarted on the same database:
every acknowledged sample is there, exactly once.

Drives the real stackstream-collector and ingest_load_client (N agents x M
summaries, each summary findable by its own stacks). Rounds:
  1..2  start the client, SIGKILL the collector once acks are flowing, restart
        it on the same database, read the folded profile over HTTP and check
        that every acknowledged summary is stored with its exact counts;
  3     rerun the client to completion: summaries stored before the crash are
        acknowledged as duplicates, and in the end every summary of every
        agent is stored exactly once.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from stackstream_test import Checker, Collector, binary

CLIENT = binary("tests", "collector", "ingest_load_client")
AGENTS, SUMMARIES, STACKS = 4, 1500, 4
START_UNIX_S = int(time.time()) - 1800  # windows within the last hour


def folded_counts(collector):
    """{(agent, seq): {k: count}} from /api/v1/profile?format=folded."""
    status, body = collector.get("/api/v1/profile", service="load", format="folded",
                                 **{"from": "now-2h", "to": "now"})
    if status != 200:
        raise RuntimeError("profile -> %d %s" % (status, body[:300]))
    out = {}
    for line in body.decode().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        # main;a<i>;s<j>;f<k>
        if len(frames) != 4 or frames[0] != "main":
            raise RuntimeError("unexpected folded line %r" % line)
        key = (int(frames[1][1:]), int(frames[2][1:]))
        out.setdefault(key, {})[int(frames[3][1:])] = int(count)
    return out


def run_client(addr, kill_after_acks=None, collector=None):
    """Runs the load client; with kill_after_acks, SIGKILLs the collector as
    soon as that many acks were reported. Returns the parsed JSON."""
    proc = subprocess.Popen(
        [CLIENT, "--target", addr, "--agents", str(AGENTS), "--summaries", str(SUMMARIES),
         "--stacks", str(STACKS), "--run-id", "crash", "--service", "load",
         "--start-unix-s", str(START_UNIX_S), "--progress", "25"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed_at = None
    if kill_after_acks is not None:
        for line in iter(proc.stderr.readline, b""):
            if line.startswith(b"acked ") and int(line.split()[1]) >= kill_after_acks:
                collector.kill()  # SIGKILL
                killed_at = int(line.split()[1])
                break
    out, err = proc.communicate(timeout=120)
    result = json.loads(out)
    result["killed_at"] = killed_at
    return result


def expected_counts():
    return {k: k + 1 for k in range(STACKS)}


def main():
    c = Checker()
    tmp = tempfile.mkdtemp(prefix="ss-crash-")
    collector = None
    try:
        acked_ever = set()
        for rnd, kill_after in ((1, 100), (2, 1200)):
            collector = Collector(db_dir=tmp).start()
            res = run_client(collector.grpc_addr, kill_after_acks=kill_after, collector=collector)
            acked = {(a["agent"], s) for a in res["agents"] for s in a["acked"] + a["duplicates"]}
            acked_ever |= acked
            c.check(res["killed_at"] is not None,
                    "round %d: collector SIGKILLed after %s acks" % (rnd, res["killed_at"]))
            c.check(len(acked) < AGENTS * SUMMARIES,
                    "round %d: the kill interrupted ingest (%d of %d acknowledged)"
                    % (rnd, len(acked), AGENTS * SUMMARIES))
            c.check(all(a["error"] for a in res["agents"]),
                    "round %d: every agent saw its stream fail" % rnd)

            collector = Collector(db_dir=tmp).start()  # same database
            stored = folded_counts(collector)
            missing = [k for k in acked_ever if k not in stored]
            wrong = [k for k in acked_ever if k in stored and stored[k] != expected_counts()]
            c.check(not missing, "round %d: all %d acknowledged summaries stored after restart"
                    " (missing %d, e.g. %s)" % (rnd, len(acked_ever), len(missing), missing[:3]))
            c.check(not wrong, "round %d: acknowledged summaries have exact counts (wrong: %s)"
                    % (rnd, wrong[:3]))
            extra = [k for k, v in stored.items() if v != expected_counts()]
            c.check(not extra, "round %d: nothing stored twice or partially (bad: %s)"
                    % (rnd, extra[:3]))
            collector.stop()
            c.check(collector.proc.returncode == 0,
                    "round %d: SIGTERM stops the restarted collector cleanly (exit %s)"
                    % (rnd, collector.proc.returncode))

        # Round 3: resend everything (as agents do after reconnecting).
        collector = Collector(db_dir=tmp).start()
        res = run_client(collector.grpc_addr)
        dups = {(a["agent"], s) for a in res["agents"] for s in a["duplicates"]}
        c.check(all(not a["error"] for a in res["agents"]),
                "round 3: all streams completed (%s)" % [a["error"] for a in res["agents"]])
        c.check(res["acked_summaries"] == AGENTS * SUMMARIES,
                "round 3: every summary acknowledged (%d)" % res["acked_summaries"])
        c.check(acked_ever <= dups,
                "round 3: summaries acknowledged before the crashes come back as duplicates "
                "(%d of %d)" % (len(acked_ever & dups), len(acked_ever)))
        stored = folded_counts(collector)
        c.check(len(stored) == AGENTS * SUMMARIES and
                all(v == expected_counts() for v in stored.values()),
                "round 3: every summary stored exactly once (%d stored)" % len(stored))
        total = sum(sum(v.values()) for v in stored.values())
        c.check(total == res["acked_samples"],
                "round 3: stored samples %d == acknowledged samples %d"
                % (total, res["acked_samples"]))
        collector.stop()
    finally:
        if collector:
            collector.kill()
        if c.failed:
            print("collector log:\n" + (collector.read_log() if collector else ""))
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
