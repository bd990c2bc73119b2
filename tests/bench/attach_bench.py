#!/usr/bin/env python3
"""`stackstream attach` benchmark: the 2-thread CPU workload (bench_cpu_work,
a fixed amount of work) profiled from outside at 100 Hz, next to
`perf record -p PID -F 99 --call-graph dwarf` on the same workload in the
same run (rounds interleaved: none, attach, perf; rotated each round).

Figures:
  - the target's CPU with the profiler attached / without, - 1 (median of
    paired rounds; the goal is <= 1%);
  - the attaching process's CPU per sample: stackstream-agent --attach
    (perf rings read, stacks unwound, symbolized, summarized, written) vs
    perf record (copying the rings to perf.data) and perf record + perf
    report (perf unwinds the DWARF stacks at report time; stackstream does
    it online, so this is the like-for-like figure).

    tests/bench/attach_bench.py [--quick] [--build-dir DIR] [--output FILE]

Writes a Markdown section to DIR/bench/attach[.quick].md (or --output) and
prints it; in full mode without --output it also replaces (or appends) its
section of the repository's BENCHMARKS.md. --quick: 2 short rounds, every
figure still produced. Exit status non-zero only if a figure could not be
produced.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bench_md  # noqa: E402

THREADS = 2
HZ = 100


def proc_cpu(pid):
    """CPU seconds (user + system) of a live process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def run_round(config, work, agent, mega, tmp, stats):
    """One run of the workload under "config"; returns a dict of CPU seconds."""
    target = subprocess.Popen([work, str(THREADS), str(mega)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    prof = None
    rec_start = None
    first_line = [""]
    out = os.path.join(tmp, "%s.out" % config)
    if config == "attach":
        env = {k: v for k, v in os.environ.items() if not k.startswith("STACKSTREAM_")}
        env["STACKSTREAM_AGENT_SOCKET"] = os.path.join(tmp, "none.sock")
        prof = subprocess.Popen([agent, "--attach", str(target.pid), "--hz", str(HZ), "--no-daemon",
                                 "--output", out + ".pb.gz"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first_line[0] = prof.stderr.readline()  # "profiling ...": attached
        # Past the one-off costs (first symbolization of each module):
        # the profiler's CPU and the target's from here to the end.
        time.sleep(0.5)
        rec_start = (proc_cpu(prof.pid), proc_cpu(target.pid))
    elif config == "perf":
        prof = subprocess.Popen(["perf", "record", "-q", "-F", "99", "--call-graph", "dwarf",
                                 "-p", str(target.pid), "-o", out + ".data"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(target.pid, 0)
    target.returncode = status
    rec = {"config": config, "target_cpu": ru.ru_utime + ru.ru_stime, "status": status}
    if prof is not None:
        _, pstatus, pru = os.wait4(prof.pid, 0)
        err = first_line[0] + prof.stderr.read()
        rec["prof_cpu"] = pru.ru_utime + pru.ru_stime
        if rec_start is not None and None not in rec_start:
            rec["prof_cpu_steady"] = rec["prof_cpu"] - rec_start[0]
            rec["target_share_steady"] = max(0.0, 1 - rec_start[1] / rec["target_cpu"])
        if config == "attach":
            m = re.search(r"(\d+) samples? from", err)
            rec["samples"] = int(m.group(1)) if m else None
            if pstatus != 0 or m is None:
                print("attach failed: %s" % err.strip(), file=sys.stderr)
        else:
            t0 = os.times()
            r = subprocess.run(["perf", "report", "-i", out + ".data", "--stdio", "-q",
                                "--no-children", "--sort", "symbol"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t1 = os.times()
            rec["report_cpu"] = (t1.children_user - t0.children_user) + (
                t1.children_system - t0.children_system)
            s = subprocess.run(["perf", "script", "-i", out + ".data", "-F", "tid"],
                               capture_output=True, text=True)
            rec["samples"] = len(s.stdout.splitlines()) if s.returncode == 0 else None
            rec["data_bytes"] = os.path.getsize(out + ".data") if os.path.exists(
                out + ".data") else None
    stats.append(rec)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--output")
    a = ap.parse_args()
    build = os.path.abspath(a.build_dir)
    work = os.path.join(build, "tests", "bench", "bench_cpu_work")
    agent = os.path.join(build, "bin", "stackstream-agent")
    for p in (work, agent):
        if not os.path.exists(p):
            print("attach_bench: %s is not built" % p, file=sys.stderr)
            return 1
    have_perf = shutil.which("perf") is not None
    configs = ["none", "attach"] + (["perf"] if have_perf else [])
    reps = 2 if a.quick else 8
    mega = 1000 if a.quick else 3000
    tmp = tempfile.mkdtemp(prefix="ss-attach-bench-")
    stats = []
    started = time.time()
    try:
        for rep in range(-1, reps):  # -1: warm-up
            order = configs[rep % len(configs):] + configs[:rep % len(configs)]
            for c in order:
                rec = run_round(c, work, agent, mega, tmp, stats)
                rec["rep"] = rep
                print("attach_bench rep %d %-6s target %.3f s%s" % (
                    rep, c, rec["target_cpu"], "" if c == "none" else
                    ", profiler %.3f s, %s samples" % (rec["prof_cpu"], rec.get("samples"))),
                    file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    runs = [r for r in stats if r["rep"] >= 0 and r["status"] == 0]
    base = {r["rep"]: r["target_cpu"] for r in runs if r["config"] == "none"}
    fig = {}
    for c in configs[1:]:
        rs = [r for r in runs if r["config"] == c and r["rep"] in base and r.get("samples")]
        if not rs:
            continue
        over = [r["target_cpu"] / base[r["rep"]] - 1 for r in rs]
        n = sum(r["samples"] for r in rs)
        fig[c] = {"over": statistics.median(over), "over_min": min(over), "over_max": max(over),
                  "per_sample_us": 1e6 * sum(r["prof_cpu"] for r in rs) / n,
                  "samples": n / len(rs), "prof_cpu": statistics.median(r["prof_cpu"] for r in rs),
                  "n": len(rs)}
        if c == "attach":
            # Samples after the mark: in proportion to the target's CPU after it.
            st = [r for r in rs if r.get("target_share_steady")]
            if st:
                fig[c]["steady_us"] = 1e6 * sum(r["prof_cpu_steady"] for r in st) / sum(
                    r["samples"] * r["target_share_steady"] for r in st)
        if c == "perf":
            fig[c]["with_report_us"] = 1e6 * sum(r["prof_cpu"] + r["report_cpu"] for r in rs) / n
            fig[c]["data_kib"] = statistics.median(r["data_bytes"] or 0 for r in rs) / 1024
    base_cpu = statistics.median(base.values()) if base else 0
    lines = [
        "## `stackstream attach` (profiling a running process from outside)",
        "",
        "`bench_cpu_work %d %d` (2 threads, fixed work, %.2f s of CPU without a profiler), "
        "%d paired rounds (+1 warm-up), interleaved; the profiler is attached right after "
        "the workload starts and ends with it.%s" % (
            THREADS, mega, base_cpu, reps, " **Quick mode: indicative only.**" if a.quick else ""),
        "",
        "| | target CPU vs no profiler (median, [min, max]) | profiler process CPU per sample | samples per run |",
        "|---|---|---|---|",
    ]
    if "attach" in fig:
        f = fig["attach"]
        lines.append("| `stackstream-agent --attach PID --hz 100` (unwinds, symbolizes, writes pprof "
                     "online) | %+.2f%% [%+.2f, %+.2f] | %.1f µs | %.0f |" % (
                         100 * f["over"], 100 * f["over_min"], 100 * f["over_max"],
                         f["per_sample_us"], f["samples"]))
        if "steady_us" in f:
            lines.append("| same, steady state (from 0.5 s after it attached: process start "
                         "and first symbolization of each module excluded) | | %.1f µs | |" % f["steady_us"])
    if "perf" in fig:
        f = fig["perf"]
        lines.append("| `perf record -p PID -F 99 --call-graph dwarf` (record only; %.0f KiB "
                     "perf.data) | %+.2f%% [%+.2f, %+.2f] | %.1f µs | %.0f |" % (
                         f["data_kib"], 100 * f["over"], 100 * f["over_min"],
                         100 * f["over_max"], f["per_sample_us"], f["samples"]))
        lines.append("| same + `perf report` (perf unwinds DWARF stacks at report time) | | "
                     "%.1f µs | |" % f["with_report_us"])
    elif not have_perf:
        lines.append("| perf | not installed (linux-perf) | | |")
    lines += [
        "",
        "Goal: target overhead ≤ 1%%; the attaching side cheaper per sample than perf's "
        "dwarf mode. Command: `python3 tests/bench/attach_bench.py --build-dir build%s` "
        "(%.0f s).%s" % (" --quick" if a.quick else "", time.time() - started, ""),
        "",
    ]
    text = "\n".join(lines)
    out = a.output or os.path.join(build, "bench", "attach%s.md" % (".quick" if a.quick else ""))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    if not a.quick and not a.output:
        # Full mode: also this section of the repository's BENCHMARKS.md
        # (bench.py rewrites the rest of that file; run.sh runs us after it).
        bench_md.replace_section("## `stackstream attach`", text)
    print(text)
    return 0 if "attach" in fig and (not have_perf or "perf" in fig) else 1


if __name__ == "__main__":
    sys.exit(main())
