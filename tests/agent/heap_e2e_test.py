#!/usr/bin/env python3
"""End-to-end tests of heap profiling (STACKSTREAM_PROFILES=heap): the real
libstackstream.so preloaded into fixtures with known truth
(tests/fixtures/heap_split.cc, heap_churn.cc) and into real programs
(python3, sqlite3, jemalloc hosts); results read from the offline heap pprof
(STACKSTREAM_OUTPUT) and, for `collector`, from a real collector's API.

    heap_e2e_test.py <case>       (one CTest entry per case)
    heap_e2e_test.py all
"""
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_e2e_test as base  # noqa: E402  run(), fixture(), Case, check()
import pprof  # noqa: E402

check = base.check
run = base.run
fixture = base.fixture
Failure = base.Failure
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
HEAP_TYPES = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]


def heap_env(c, extra=None):
    env = {"STACKSTREAM_PROFILES": "heap", "STACKSTREAM_OUTPUT": c.out("heap.%p.pb.gz")}
    env.update(extra or {})
    return env


def heap_profile(c, pid_hint=None):
    """The heap pprof of the fixture process (the one whose file has samples)."""
    files = sorted(f for f in os.listdir(c.dir) if f.startswith("heap.") and f.endswith(".pb.gz"))
    check(files, "a heap profile was written (%s)" % files)
    best = None
    for f in files:
        p = pprof.load(os.path.join(c.dir, f))
        if best is None or p.total(1) > best.total(1):
            best = p
    types = [t[0] for t in best.sample_types]
    check(types == HEAP_TYPES, "sample types %s" % types)
    return best


def by_function(p, index, names):
    out = {n: 0 for n in names}
    for s in p.samples:
        for n in names:
            if base.stack_has(s, n):
                out[n] += s.values[index]
    return out


def test_split(c):
    """50/30/20 alloc_space shares +-3 points, total +-10%; after freeing a, inuse_space has no a, b/c +-5 points."""
    stats = c.out("truth.json")
    rc, _, err = run([fixture("heap_split"), "--scenario=split", "--total-mb=1600", "--free-a=1",
                      "--stats=" + stats], heap_env(c), timeout=120)
    check(rc == 0, "exit code 0 (got %d) %s" % (rc, err[-300:]))
    truth = json.load(open(stats))
    p = heap_profile(c)
    names = ["fixture_alloc_a", "fixture_alloc_b", "fixture_alloc_c"]
    alloc = by_function(p, 1, names)
    total = sum(alloc.values())
    true_total = sum(t["bytes"] for t in truth.values())
    for n, want in zip(names, (50, 30, 20)):
        share = 100.0 * alloc[n] / max(1, total)
        check(abs(share - want) <= 3, "alloc_space %s %.1f%% within %d +- 3" % (n, share, want))
    check(abs(total - true_total) <= 0.10 * true_total,
          "alloc_space total %.1f MiB within 10%% of the true %.1f MiB"
          % (total / 2**20, true_total / 2**20))
    objects = sum(by_function(p, 0, names).values())
    true_objects = sum(t["objects"] for t in truth.values())
    # (Objects of 16 B..1 KiB are seldom sampled at 512 KiB: an unbiased but
    # high-variance estimate with ~4500 objects; only its presence is checked.)
    check(objects > 0, "alloc_objects estimated (%d; true %d)" % (objects, true_objects))
    inuse = by_function(p, 3, names)
    check(inuse["fixture_alloc_a"] == 0, "inuse_space: fixture_alloc_a (all freed) shows %d" % inuse["fixture_alloc_a"])
    live = inuse["fixture_alloc_b"] + inuse["fixture_alloc_c"]
    for n, want in (("fixture_alloc_b", 60), ("fixture_alloc_c", 40)):
        share = 100.0 * inuse[n] / max(1, live)
        check(abs(share - want) <= 5, "inuse_space %s %.1f%% within %d +- 5" % (n, share, want))
    true_live = truth["fixture_alloc_b"]["live"] + truth["fixture_alloc_c"]["live"]
    check(abs(live - true_live) <= 0.10 * true_live,
          "inuse_space of b+c %.1f MiB within 10%% of the true %.1f MiB" % (live / 2**20, true_live / 2**20))
    leaf = {s.stack[0].function for s in p.samples if s.stack}
    check(not any("stackstream" in f or f in ("malloc",) for f in leaf),
          "no stack starts inside the profiler's hook (leaves: %s)" % sorted(leaf)[:6])


def test_leak(c):
    """A function leaking 1 MiB/s for 10 s among churn: first in inuse_space, within 15% of the truth."""
    stats = c.out("truth.json")
    rc, _, err = run([fixture("heap_split"), "--scenario=leak", "--seconds=10",
                      "--stats=" + stats], heap_env(c, {"STACKSTREAM_HEAP_RATE": "65536"}),
                     timeout=120)
    check(rc == 0, "exit code 0 (got %d) %s" % (rc, err[-300:]))
    truth = json.load(open(stats))
    p = heap_profile(c)
    by_self = p.total_by_function(3)
    fixture_fns = [f for f, _ in by_self.most_common() if f.startswith("fixture_")]
    check(fixture_fns and fixture_fns[0] == "fixture_leak",
          "fixture_leak is first in inuse_space (%s)" % fixture_fns[:3])
    leaked = by_self["fixture_leak"]
    want = truth["fixture_leak"]["live"]
    check(abs(leaked - want) <= 0.15 * want,
          "inuse_space of fixture_leak %.2f MiB within 15%% of the true %.2f MiB"
          % (leaked / 2**20, want / 2**20))
    churn = by_function(p, 1, ["fixture_churn_x"])["fixture_churn_x"]
    check(churn > 0, "the churn shows in alloc_space (%d bytes)" % churn)


def same_as_without(c, argv, env=None, timeout=120, what=None, preload_extra=None):
    """Runs argv without and with the heap profiler; output and status must match."""
    plain_env = dict(env or {})
    if preload_extra:
        plain_env["LD_PRELOAD"] = preload_extra
    rc0, out0, err0 = run(argv, plain_env, agent=False, timeout=timeout)
    check(rc0 == 0, "%s without the profiler: exit 0 (got %d) %s" % (what or argv[0], rc0, err0[-200:]))
    e = heap_env(c, env)
    rc1, out1, err1 = run(argv, e, timeout=timeout)
    if preload_extra is not None:
        pass
    check(rc1 == rc0, "%s with the heap profiler: same exit status (%d vs %d) %s"
          % (what or argv[0], rc1, rc0, err1[-300:]))
    check(out1 == out0, "%s: identical stdout (%d bytes)" % (what or argv[0], len(out0)))
    return out1


def test_host_threads(c):
    """8 threads of C++ container churn: output and exit status unchanged, allocations seen;
    everything it allocated is freed by the end, so nothing of it stays in use."""
    # A small rate: thousands of sampled blocks, freed by 8 threads at once
    # while others are sampled in the same pages, so a free the live table
    # or its filter missed would stay in inuse_space.
    same_as_without(c, [fixture("heap_churn"), "--scenario=threads", "--threads=8", "--rounds=150"],
                    env={"STACKSTREAM_HEAP_RATE": "16384"})
    p = heap_profile(c)
    churn = by_function(p, 1, ["fixture_container_churn"])["fixture_container_churn"]
    check(churn > 0, "fixture_container_churn in alloc_space (%d bytes)" % churn)
    sampled = by_function(p, 0, ["fixture_container_churn"])["fixture_container_churn"]
    live = by_function(p, 3, ["fixture_container_churn"])["fixture_container_churn"]
    check(sampled >= 1000 and live == 0,
          "all freed: fixture_container_churn's inuse_space is %d bytes (%d objects estimated "
          "allocated)" % (live, sampled))


def test_host_memalign(c):
    """posix_memalign/aligned_alloc/memalign/valloc/pvalloc up to 64 KiB alignment; realloc chains;
    operator new when the allocator fails."""
    same_as_without(c, [fixture("heap_churn"), "--scenario=memalign", "--repeat=300"],
                    {"STACKSTREAM_HEAP_RATE": "4096"})
    same_as_without(c, [fixture("heap_churn"), "--scenario=realloc"],
                    {"STACKSTREAM_HEAP_RATE": "65536"})
    # C++ operator new when allocation fails: new_handler, bad_alloc, nothrow.
    out = same_as_without(c, [fixture("heap_churn"), "--scenario=new_failure"],
                          {"STACKSTREAM_HEAP_RATE": "4096"})
    check(b"after 1 handler call(s)" in out and b"nothrow new huge: nullptr" in out,
          "operator new failure semantics kept: %r" % out)
    p = heap_profile(c)
    chain = by_function(p, 1, ["fixture_realloc_chain"])["fixture_realloc_chain"]
    check(chain > 0, "fixture_realloc_chain in alloc_space (%d bytes)" % chain)


def split_matches_truth(c, env, alloc, where):
    """heap_split 50/30/20 allocating with malloc or operator new: the
    alloc_space total within 15% of the truth (sampled once, not twice) and
    the three shares within 5 points."""
    for f in os.listdir(c.dir):
        os.unlink(os.path.join(c.dir, f))
    stats = c.out("truth.json")
    env = dict(env, STACKSTREAM_HEAP_RATE="65536")  # ~3,000 samples: shares within ~1 point
    rc, _, err = run([fixture("heap_split"), "--scenario=split", "--total-mb=200", "--rounds=50",
                      "--alloc=" + alloc, "--stats=" + stats], env, agent=False)
    check(rc == 0, "heap_split --alloc=%s %s: exit 0 %s" % (alloc, where, err[-200:]))
    p = heap_profile(c)
    truth = json.load(open(stats))
    true_total = sum(t["bytes"] for t in truth.values())
    check(abs(p.total(1) - true_total) <= 0.15 * true_total,
          "%s %s sampled once: alloc_space %.1f MiB vs true %.1f MiB"
          % (alloc, where, p.total(1) / 2**20, true_total / 2**20))
    got = by_function(p, 1, list(truth))
    total = max(1, sum(got.values()))
    for name, t in truth.items():
        want = 100.0 * t["bytes"] / true_total
        have = 100.0 * got.get(name, 0) / total
        check(abs(have - want) <= 5, "%s %s: %s %.1f%% (truth %.1f%%)" % (alloc, where, name,
                                                                          have, want))


def test_host_cxx_new(c):
    """C++ operator new on glibc: libstdc++'s operators call malloc, sampled there only."""
    env = heap_env(c)
    env["LD_PRELOAD"] = base.AGENT
    split_matches_truth(c, env, "new", "on glibc")


def test_host_jemalloc(c):
    """A host on jemalloc (preloaded after and before the profiler): unchanged; heap samples when ours is first."""
    check(os.path.exists(JEMALLOC), "libjemalloc2 installed (%s)" % JEMALLOC)
    argv = [fixture("heap_churn"), "--scenario=threads", "--threads=8", "--rounds=100"]
    rc0, out0, _ = run(argv, {"LD_PRELOAD": JEMALLOC}, agent=False)
    check(rc0 == 0, "jemalloc alone: exit 0")
    # Ours first: our malloc forwards to jemalloc's (RTLD_NEXT).
    env = heap_env(c)
    env["LD_PRELOAD"] = base.AGENT + ":" + JEMALLOC
    rc1, out1, err1 = run(argv, env, agent=False)
    check(rc1 == 0 and out1 == out0, "profiler then jemalloc: exit 0, same stdout %s" % err1[-200:])
    maps_env = dict(env)
    rc, maps, _ = run(["/bin/sh", "-c", "grep -c jemalloc /proc/self/maps"], maps_env, agent=False)
    check(int(maps.strip() or 0) > 0, "jemalloc is mapped in the host")
    # malloc() calls reach jemalloc through the profiler and are sampled;
    # so do C++ operator new calls, which jemalloc serves itself (its own
    # operators never call malloc): the profiler's operators sample them.
    for alloc in ("malloc", "new"):
        split_matches_truth(c, env, alloc, "on jemalloc")
    # jemalloc first: it owns malloc; the profiler must still be harmless.
    env["LD_PRELOAD"] = JEMALLOC + ":" + base.AGENT
    rc2, out2, err2 = run(argv, env, agent=False)
    check(rc2 == 0 and out2 == out0, "jemalloc then profiler: exit 0, same stdout %s" % err2[-200:])


def test_host_python(c):
    """python3 (json round-trips) and sqlite3 (python's sqlite3 module): unchanged output."""
    code = ("import json, sqlite3\n"
            "d=[{'k': i, 'v': [str(j) for j in range(i % 50)]} for i in range(20000)]\n"
            "for _ in range(5): d=json.loads(json.dumps(d))\n"
            "db=sqlite3.connect(':memory:')\n"
            "db.execute('create table t(k integer primary key, v text)')\n"
            "db.executemany('insert into t values(?,?)', [(x['k'], json.dumps(x['v'])) for x in d])\n"
            "print(len(d), db.execute('select count(*), sum(length(v)) from t').fetchone())\n")
    py = sys.executable
    same_as_without(c, [py, "-c", code], what="python3")
    p = heap_profile(c)
    check(p.total(1) > 0, "python's allocations sampled (alloc_space %d)" % p.total(1))
    fns = set(f.function for s in p.samples for f in s.stack)
    check(any("sqlite3" in f for f in fns) or any(f.startswith("sqlite3") for f in fns),
          "sqlite3 frames in the heap profile")


def test_host_fork(c):
    """fork() in the middle of allocations on 4 threads: every child exits with its code."""
    out = same_as_without(c, [fixture("heap_churn"), "--scenario=fork", "--forks=30"],
                          {"STACKSTREAM_HEAP_RATE": "16384"})
    check(b"fork children ok 30" in out, "all 30 children ok (%s)" % out.strip())


def test_host_cpu1000(c):
    """Heap profiling with 1000 Hz CPU sampling: unchanged; both profiles written."""
    # The default heap rate: at 64 KiB the 8 threads' sampled allocations
    # filled their rings in bursts and the CPU samples behind them were lost
    # (counted as samples_dropped_ring_full: 42-95 of ~180 kept).
    env = {"STACKSTREAM_PROFILES": "cpu,heap", "STACKSTREAM_HZ": "1000"}
    argv = [fixture("heap_churn"), "--scenario=threads", "--threads=8", "--rounds=150"]
    rc0, out0, _ = run(argv, agent=False)
    e = {"STACKSTREAM_OUTPUT": c.out("prof.pb.gz")}
    e.update(env)
    rc1, out1, err1 = run(argv, e)
    check(rc1 == rc0 == 0 and out1 == out0, "exit 0 and same stdout %s" % err1[-200:])
    cpu = pprof.load(c.out("prof.pb.gz"))
    heap = pprof.load(c.out("prof.heap.pb.gz"))
    # ~0.18 s of CPU at 1000 Hz: ~180 samples.
    check(cpu.total(0) > 100, "cpu samples %d (%s)" % (cpu.total(0), cpu.comments))
    check([t[0] for t in heap.sample_types] == HEAP_TYPES and heap.total(1) > 0,
          "heap profile beside it (alloc_space %d)" % heap.total(1))


def test_collector(c):
    """Through a real collector: type=alloc_space/inuse_space (gauge: latest snapshot), pprof type=heap."""
    from stackstream_test import Collector
    with Collector() as col:
        env = {"STACKSTREAM_PROFILES": "heap", "STACKSTREAM_COLLECTOR": col.grpc_addr,
               "STACKSTREAM_SERVICE": "heapsvc", "STACKSTREAM_FLUSH_MS": "300"}
        stats = c.out("truth.json")
        rc, _, err = run([fixture("heap_split"), "--scenario=split", "--total-mb=800", "--rounds=100",
                          "--free-a=1", "--stats=" + stats], env, timeout=120)
        check(rc == 0, "exit 0 %s" % err[-200:])
        truth = json.load(open(stats))
        deadline = time.time() + 20
        top = []
        while time.time() < deadline:
            status, body = col.get("/api/v1/top", service="heapsvc", type="inuse_space",
                                   **{"from": "now-10m"})
            if status == 200 and json.loads(body):
                top = json.loads(body)
                break
            time.sleep(0.3)
        check(top, "inuse_space top has rows")
        total = {r["function"]: r["total"] for r in top}
        true_live = truth["fixture_alloc_b"]["live"] + truth["fixture_alloc_c"]["live"]
        live = total.get("fixture_alloc_b", 0) + total.get("fixture_alloc_c", 0)
        check(total.get("fixture_alloc_a", 0) == 0, "inuse_space: no fixture_alloc_a")
        check(abs(live - true_live) <= 0.10 * true_live,
              "inuse_space (latest snapshot, not a sum of snapshots) %.1f MiB within 10%% of %.1f MiB"
              % (live / 2**20, true_live / 2**20))
        status, body = col.get("/api/v1/top", service="heapsvc", mode="alloc_space",
                               **{"from": "now-10m"})
        rows = json.loads(body) if status == 200 else []
        alloc = {r["function"]: r["total"] for r in rows}
        true_total = sum(t["bytes"] for t in truth.values())
        got = sum(alloc.get(n, 0) for n in truth)
        check(abs(got - true_total) <= 0.10 * true_total,
              "mode=alloc_space (old name) total %.1f MiB within 10%% of %.1f MiB"
              % (got / 2**20, true_total / 2**20))
        status, body = col.get("/api/v1/profile", service="heapsvc", type="heap", format="pprof",
                               **{"from": "now-10m"})
        check(status == 200, "pprof type=heap: 200")
        path = c.out("col_heap.pb.gz")
        open(path, "wb").write(body)
        p = pprof.load(path)
        check([t[0] for t in p.sample_types] == HEAP_TYPES, "pprof type=heap has the four sample types")
        check(abs(p.total(3) - live) <= 0.01 * max(1, live), "its inuse_space equals the top's")
        status, body = col.get("/api/v1/top", service="heapsvc", type="heap")
        check(status == 400 and b"pprof" in body, "type=heap outside pprof: 400 with a reason")
        status, body = col.get("/api/v1/top", service="heapsvc", type="bogus")
        check(status == 400, "type=bogus: 400")
        status, body = col.get("/api/v1/top", service="heapsvc", **{"from": "now-10m"})
        rows = json.loads(body) if status == 200 else [{"function": "?"}]
        check(all(r["total"] < 10**7 for r in rows),
              "no type: heap bytes are not mixed into the clock profile")
        go = "/usr/bin/go"
        if os.path.exists(go):
            r = subprocess.run([go, "tool", "pprof", "-sample_index=inuse_space", "-top", path],
                               capture_output=True, timeout=120)
            check(r.returncode == 0 and b"fixture_alloc_b" in r.stdout,
                  "go tool pprof -sample_index=inuse_space reads it")


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("test_")}


def main():
    names = sys.argv[1:] or ["all"]
    if names == ["all"]:
        names = list(CASES)
    failed = []
    for name in names:
        print("== %s: %s" % (name, CASES[name].__doc__))
        c = base.Case()
        try:
            CASES[name](c)
        except Failure as e:
            print("  FAIL: %s" % e)
            failed.append(name)
        finally:
            c.cleanup()
    print("failed: %s" % failed if failed else "all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
