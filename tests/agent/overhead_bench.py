#!/usr/bin/env python3
"""CPU-time overhead of the agent on a fixed 2-thread CPU-bound program
(tests/fixtures/fixed_work), side by side with gperftools' libprofiler at
the same rate; median of N runs; plus the agent's added RSS (max RSS with
minus without) and RSS over a longer run. Not a test: prints numbers.

    overhead_bench.py [--runs 5] [--millions 1500] [--hz 100] [--rss-seconds 20]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("STACKSTREAM_BUILD_DIR",
                       os.path.join(os.path.dirname(__file__), "..", "..", "build"))
AGENT = os.path.join(BUILD, "agent", "libstackstream.so")
FIXED = os.path.join(BUILD, "tests", "fixtures", "fixed_work")
CPU_SPLIT = os.path.join(BUILD, "tests", "fixtures", "cpu_split")
PROFILER = "/usr/lib/x86_64-linux-gnu/libprofiler.so"


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STACKSTREAM_") and k not in ("LD_PRELOAD", "CPUPROFILE")}
    return env


def run(kind, args, tmp, hz):
    env = clean_env()
    if kind == "agent":
        env.update(LD_PRELOAD=AGENT, STACKSTREAM_HZ=str(hz), STACKSTREAM_LOG="error",
                   STACKSTREAM_COLLECTOR="127.0.0.1:9",
                   STACKSTREAM_OUTPUT=os.path.join(tmp, "agent.pb.gz"))
    elif kind == "gperftools":
        env.update(LD_PRELOAD=PROFILER, CPUPROFILE=os.path.join(tmp, "gperf.prof"),
                   CPUPROFILE_FREQUENCY=str(hz))
    t0 = time.monotonic()
    p = subprocess.Popen([FIXED] + args, env=env, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit("%s run failed: %d" % (kind, status))
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss, time.monotonic() - t0


def rss_over_time(seconds, hz, tmp):
    env = clean_env()
    env.update(LD_PRELOAD=AGENT, STACKSTREAM_HZ=str(hz), STACKSTREAM_LOG="error",
               STACKSTREAM_COLLECTOR="127.0.0.1:9", STACKSTREAM_FLUSH_MS="1000",
               STACKSTREAM_OUTPUT=os.path.join(tmp, "rss.pb.gz"))
    p = subprocess.Popen([CPU_SPLIT, "--threads=2", "--seconds=%d" % seconds], env=env)
    samples = []
    try:
        while p.poll() is None:
            time.sleep(1)
            try:
                for line in open("/proc/%d/status" % p.pid):
                    if line.startswith("VmRSS:"):
                        samples.append(int(line.split()[1]))
            except OSError:
                pass
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    return samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--millions", type=int, default=1500)
    ap.add_argument("--hz", type=int, default=100)
    ap.add_argument("--rss-seconds", type=int, default=20)
    a = ap.parse_args()
    args = ["--threads=2", "--millions=%d" % a.millions]
    kinds = ["none", "agent"] + (["gperftools"] if os.path.exists(PROFILER) else [])
    res = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.runs):
            for k in kinds:  # interleaved, so load changes hit all alike
                res[k].append(run(k, args, tmp, a.hz))
    base = statistics.median(r[0] for r in res["none"])
    base_rss = statistics.median(r[1] for r in res["none"])
    print("fixed_work %s, %d Hz, median of %d runs (CPU = user + sys of the process):"
          % (" ".join(args), a.hz, a.runs))
    for k in kinds:
        cpu = statistics.median(r[0] for r in res[k])
        rss = statistics.median(r[1] for r in res[k])
        print("  %-10s cpu %.3f s  overhead %+.2f%%  maxrss %d KiB (%+d KiB)  runs %s"
              % (k, cpu, 100.0 * (cpu - base) / base, rss, rss - base_rss,
                 ["%.3f" % r[0] for r in res[k]]))
    if a.rss_seconds > 0:
        with tempfile.TemporaryDirectory() as tmp:
            s = rss_over_time(a.rss_seconds, a.hz, tmp)
        if s:
            print("agent RSS over a %d s run (KiB, every 1 s): first %d, max %d, last %d"
                  % (a.rss_seconds, s[0], max(s), s[-1]))


if __name__ == "__main__":
    sys.exit(main())
