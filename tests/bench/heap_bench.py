#!/usr/bin/env python3
"""Heap profiling benchmark: stackstream (STACKSTREAM_PROFILES=heap, default
rate) against no profiler, gperftools' heap profiler (libtcmalloc +
HEAPPROFILE), heaptrack and jemalloc's prof:true, on

  - a malloc-heavy workload: tests/fixtures/heap_churn (8 threads of
    std::map / unordered_map / string churn) and python3 json round-trips;
  - the 50/30/20 fixture (tests/fixtures/heap_split): accuracy of the
    alloc_space shares each profiler reports (max |share - truth| in points)
    and of its total.

    heap_bench.py [--quick] [--build-dir DIR] [--runs N]

Prints a Markdown section (wall and CPU ratios vs no profiler, peak RSS added,
accuracy). Wall/CPU are medians over --runs; CPU is the host's user+sys
(children of the benchmark; stackstream-agent's own CPU is reported apart).
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import bench_md  # noqa: E402
import pprof  # noqa: E402

LIB = "/usr/lib/x86_64-linux-gnu"
TCMALLOC = LIB + "/libtcmalloc.so.4"
JEMALLOC = LIB + "/libjemalloc.so.2"
NAMES = ["fixture_alloc_a", "fixture_alloc_b", "fixture_alloc_c"]
TRUTH = [50, 30, 20]


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STACKSTREAM_") and k not in ("LD_PRELOAD", "HEAPPROFILE", "MALLOC_CONF")}
    return env


def measure(argv, env, cwd):
    """(wall s, cpu s, peak RSS KiB) of one run (wait4: this process and the
    children it waited for; heaptrack's runs count its own process too)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d)" % (argv[0], p.returncode))
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


class Profiler:
    def __init__(self, name, build, work):
        self.name, self.build, self.work = name, build, work

    def prepare(self, argv, tag):
        """(argv, env) to run "argv" under this profiler."""
        env = clean_env()
        out = os.path.join(self.work, "%s-%s" % (self.name, tag))
        if self.name == "stackstream":
            env["LD_PRELOAD"] = os.path.join(self.build, "agent", "libstackstream.so")
            env["STACKSTREAM_PROFILES"] = "heap"
            env["STACKSTREAM_COLLECTOR"] = "127.0.0.1:9"
            env["STACKSTREAM_LOG"] = "error"
            # The file only for the accuracy run: with STACKSTREAM_OUTPUT
            # the host's exit waits for the agent to have written it.
            if tag == "split":
                env["STACKSTREAM_OUTPUT"] = out + ".%p.pb.gz"
        elif self.name == "gperftools":
            env["LD_PRELOAD"] = TCMALLOC
            env["HEAPPROFILE"] = out
            env["HEAP_PROFILE_INUSE_INTERVAL"] = str(1 << 40)
            env["HEAP_PROFILE_ALLOCATION_INTERVAL"] = str(1 << 40)
        elif self.name == "heaptrack":
            argv = ["heaptrack", "-o", out] + argv
        elif self.name == "jemalloc-prof":
            env["LD_PRELOAD"] = JEMALLOC
            env["MALLOC_CONF"] = "prof:true,prof_final:true,prof_prefix:" + out
        return argv, env

    def split_shares(self, tag, binary):
        """alloc_space per fixture function as this profiler reports it."""
        out = os.path.join(self.work, "%s-%s" % (self.name, tag))
        if self.name == "stackstream":
            best = None
            for f in os.listdir(self.work):
                if f.startswith(os.path.basename(out) + ".") and f.endswith(".pb.gz"):
                    p = pprof.load(os.path.join(self.work, f))
                    if best is None or p.total(1) > best.total(1):
                        best = p
            return {n: sum(s.values[1] for s in best.samples
                           if any(fr.function == n for fr in s.stack)) for n in NAMES}
        if self.name in ("gperftools", "jemalloc-prof"):
            files = sorted(f for f in os.listdir(self.work)
                           if f.startswith(os.path.basename(out) + ".") and f.endswith(".heap"))
            if not files:
                return None
            r = subprocess.run(["google-pprof", "--text", "--alloc_space", binary,
                                os.path.join(self.work, files[-1])],
                               capture_output=True, text=True)
            got = {}
            for line in r.stdout.splitlines():
                f = line.split()
                if len(f) >= 6 and f[5] in NAMES:
                    got[f[5]] = float(f[3].rstrip("MB")) * 2**20  # cum MB
            return got if got else None
        if self.name == "heaptrack":
            files = [f for f in os.listdir(self.work) if f.startswith(os.path.basename(out))]
            if not files:
                return None
            # Every block of the split fixture stays live: leaked = allocated.
            subprocess.run(["heaptrack_print", "-f", os.path.join(self.work, files[0]),
                            "--print-allocators", "0", "--print-peaks", "0",
                            "--print-leaks", "0", "--print-temporary", "0",
                            "--print-flamegraph", os.path.join(self.work, "ht.folded"),
                            "--flamegraph-cost-type", "leaked"],
                           capture_output=True, text=True)
            got = {n: 0 for n in NAMES}
            with open(os.path.join(self.work, "ht.folded")) as fh:
                for line in fh:
                    stack, _, v = line.rstrip().rpartition(" ")
                    frames = {f.split(" (")[0] for f in stack.split(";")}
                    for n in NAMES:
                        if n in frames:
                            got[n] += int(v)
            return got
        return None


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--runs", type=int, default=0)
    args = ap.parse_args()
    build = os.path.abspath(args.build_dir)
    fix = os.path.join(build, "tests", "fixtures")
    runs = args.runs or (1 if args.quick else 2)
    rounds = "60" if args.quick else "300"
    py_n = "3" if args.quick else "15"
    workloads = {
        "map churn (8 threads)": [os.path.join(fix, "heap_churn"), "--scenario=threads",
                                  "--threads=8", "--rounds=" + rounds],
        "python3 json": ["/usr/bin/python3", "-c",
                         "import json\nd=[{'k': i, 'v': [str(j) for j in range(i %% 40)]} "
                         "for i in range(30000)]\nfor _ in range(%s): d=json.loads(json.dumps(d))\n" % py_n],
    }
    split = [os.path.join(fix, "heap_split"), "--scenario=split",
             "--total-mb=" + ("400" if args.quick else "1600")]
    work = tempfile.mkdtemp(prefix="ss-heap-bench-")
    names = ["none", "stackstream", "gperftools", "heaptrack", "jemalloc-prof"]
    avail = {"none": True, "stackstream": True, "gperftools": os.path.exists(TCMALLOC),
             "heaptrack": shutil.which("heaptrack") is not None,
             "jemalloc-prof": os.path.exists(JEMALLOC)}
    results = {}
    # stackstream's overhead: paired runs (none, stackstream; order
    # alternating) of a longer map churn and the json round-trips, the ratio
    # of each pair's CPU times, median over the pairs. The peers' table
    # below runs the short workload once or twice each (gperftools takes
    # ~100x as long).
    pairs = 2 if args.quick else 7
    long_workloads = dict(workloads)
    long_workloads["map churn (8 threads)"] = workloads["map churn (8 threads)"][:-1] + [
        "--rounds=" + ("200" if args.quick else "1500")]
    overhead = {}
    try:
        ours = Profiler("stackstream", build, work)
        for wname, argv in long_workloads.items():
            ratios, walls = [], []
            for i in range(pairs):
                order = ["none", "stackstream"] if i % 2 == 0 else ["stackstream", "none"]
                got = {}
                for name in order:
                    a, env = (argv, clean_env()) if name == "none" else ours.prepare(argv, "p%d" % i)
                    got[name] = measure(a, env, work)
                ratios.append(got["stackstream"][1] / got["none"][1])
                walls.append(got["stackstream"][0] / got["none"][0])
            overhead[wname] = (median(ratios), min(ratios), max(ratios), median(walls),
                               " ".join(argv[-1:] if argv[0].endswith("heap_churn") else []))
            print("%-22s paired CPU ratios %s" % (wname, " ".join("%.3f" % r for r in ratios)),
                  file=sys.stderr)
        for wname, argv in workloads.items():
            for name in names:
                if not avail[name]:
                    continue
                prof = Profiler(name, build, work)
                walls, cpus, rss = [], [], 0
                for i in range(runs):
                    a, env = (argv, clean_env()) if name == "none" else prof.prepare(argv, "w%d" % i)
                    w, c, m = measure(a, env, work)
                    walls.append(w)
                    cpus.append(c)
                    rss = max(rss, m)
                results[(wname, name)] = (median(walls), median(cpus), rss)
                print("%-22s %-14s wall %.2fs cpu %.2fs maxrss %d KiB" %
                      (wname, name, median(walls), median(cpus), rss), file=sys.stderr)
        acc = {}
        for name in names[1:]:
            if not avail[name]:
                continue
            prof = Profiler(name, build, work)
            a, env = prof.prepare(split, "split")
            stats = os.path.join(work, "truth.json")
            measure(a + ["--stats=" + stats], env, work)
            truth = json.load(open(stats))
            got = prof.split_shares("split", split[0])
            if not got:
                acc[name] = None
                continue
            total = sum(got.get(n, 0) for n in NAMES)
            err = max(abs(100.0 * got.get(n, 0) / max(1, total) - t) for n, t in zip(NAMES, TRUTH))
            true_total = sum(v["bytes"] for v in truth.values())
            acc[name] = (err, 100.0 * (total - true_total) / true_total)
            print("accuracy %-14s %s" % (name, {k: round(v / 2**20, 1) for k, v in got.items()}),
                  file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "## Heap profiling",
        "",
        "Command: `python3 tests/bench/heap_bench.py --build-dir build%s` (%d run(s) per cell, "
        "medians), %s UTC, load average at the end %s. The CPU ratio (the host's user+sys "
        "from `wait4`) is the better figure on a shared machine; stackstream's agent "
        "process is not a child of the host, so its CPU is not in these numbers. Peak RSS "
        "is `wait4`'s `ru_maxrss` of the host (for heaptrack, of the `heaptrack` wrapper and "
        "what it waited for). stackstream: `STACKSTREAM_PROFILES=heap`, default rate "
        "(512 KiB), no collector reachable. gperftools: `LD_PRELOAD=libtcmalloc.so.4 "
        "HEAPPROFILE=FILE`. heaptrack: `heaptrack -o FILE`. jemalloc: "
        "`LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=prof:true,prof_final:true`; its ratios mix "
        "in the allocator change (jemalloc vs glibc malloc), so they are not an overhead.%s"
        % (" --quick" if args.quick else "", runs, time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
           " ".join(open("/proc/loadavg").read().split()[:3]),
           " **Quick mode: indicative only.**" if args.quick else ""),
        "",
        "Overhead of stackstream's heap profiling, %d paired runs per workload (no profiler, "
        "then stackstream, alternating which goes first), ratio of each pair's host CPU "
        "times, median (min-max):" % pairs,
        "",
        "| workload | CPU ratio, median (min-max) | wall ratio, median |",
        "|---|---|---|",
    ]
    for wname, (med, lo, hi, wall, extra) in overhead.items():
        lines.append("| %s%s | %.3f (%.3f-%.3f) | %.3f |" % (
            wname, " `%s`" % extra if extra else "", med, lo, hi, wall))
    lines += [
        "",
        "Against the peers (the short workload, %d run(s) per cell, medians):" % runs,
        "",
        "| workload | profiler | wall ratio | CPU ratio | peak RSS added |",
        "|---|---|---|---|---|",
    ]
    for (wname, name), (w, c, m) in results.items():
        w0, c0, m0 = results[(wname, "none")]
        lines.append("| %s | %s | %.3f | %.3f | %+.1f MiB |" %
                     (wname, name, w / w0, c / c0, (m - m0) / 1024.0))
    lines += [
        "",
        "Accuracy, the 50/30/20 fixture (`%s`, sizes log-uniform 16 B-1 MiB, exact budgets): "
        "largest error of the three alloc_space shares, and the total against the fixture's "
        "own count. gperftools and heaptrack record every allocation." % " ".join(
            [os.path.basename(split[0])] + split[1:]),
        "",
        "| profiler | 50/30/20 alloc_space: max share error | total vs truth |",
        "|---|---|---|",
    ]
    for name, v in acc.items():
        if v is None:
            lines.append("| %s | not produced | |" % name)
        else:
            lines.append("| %s | %.1f points | %+.1f%% |" % (name, v[0], v[1]))
    ours = [v[0] for v in overhead.values()]
    if ours:
        lines += ["", "Goal: ≤ 3%% slowdown at the default rate; measured paired CPU ratios "
                  "(median) %s." % ", ".join("%.3f" % r for r in ours)]
    text = "\n".join(lines) + "\n"
    out = os.path.join(build, "bench", "heap%s.md" % (".quick" if args.quick else ""))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    if not args.quick:
        bench_md.replace_section("## Heap profiling", text)
    print(text)
    produced = ours and acc.get("stackstream") is not None
    return 0 if produced else 1


if __name__ == "__main__":
    sys.exit(main())
