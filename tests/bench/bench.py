#!/usr/bin/env python3
"""stackstream benchmarks: overhead, accuracy, handler cost, wire/storage cost,
collector ingest/query. Called by tests/bench/run.sh; writes BENCHMARKS.md.

    bench.py [--quick] [--build-dir DIR] [--output FILE] [--only SECTION,...]

Every measured figure is recorded with the goal it is compared against. In
--quick mode every section runs briefly and the exit status says only whether
every figure was produced (1 if one was not); a missed goal never fails the run.
Python 3 standard library only, plus tests/lib (pprof.py, stackstream_test.py).
"""
import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

LIBPROFILER = "/usr/lib/x86_64-linux-gnu/libprofiler.so"
HZ = 100
PERF_HZ = 99
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Figures: every number the report must contain, with its goal.
# ---------------------------------------------------------------------------
class Figures:
    """Registry of expected figures. A figure that was never set (or set to
    None) is 'not produced'; the quick mode fails on those only."""

    def __init__(self):
        self.expected = []   # (key, description)
        self.values = {}
        self.notes = {}

    def expect(self, key, what):
        self.expected.append((key, what))

    def set(self, key, value):
        self.values[key] = value

    def note(self, key, text):
        self.notes[key] = text

    def missing(self):
        return [(k, w) for k, w in self.expected
                if self.values.get(k) is None and k not in self.notes]

    def skipped(self):
        return [(k, w, self.notes[k]) for k, w in self.expected
                if self.values.get(k) is None and k in self.notes]


FIG = Figures()


# ---------------------------------------------------------------------------
# Running a child and measuring it with wait4.
# ---------------------------------------------------------------------------
class Run:
    def __init__(self):
        self.status = None
        self.wall = 0.0
        self.utime = 0.0
        self.stime = 0.0
        self.maxrss_kb = 0
        self.stdout = ""
        self.stderr = ""
        self.timed_out = False

    @property
    def cpu(self):
        return self.utime + self.stime

    @property
    def ok(self):
        return self.status == 0 and not self.timed_out


def run_measured(argv, env_extra=None, timeout=600, on_start=None):
    """Runs argv with os.posix_spawn and reaps it with os.wait4, so the CPU
    time (user+sys) and max RSS are exactly the child's (and its waited-for
    descendants', e.g. perf's workload). on_start(pid) runs in a thread."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("STACKSTREAM_") or k in ("LD_PRELOAD", "CPUPROFILE", "CPUPROFILE_FREQUENCY"):
            del env[k]
    for k, v in (env_extra or {}).items():
        env[k] = v
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    r = Run()
    fa = [(os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
    exe = argv[0] if os.path.sep in argv[0] else shutil.which(argv[0])
    t0 = time.monotonic()
    pid = os.posix_spawn(exe, argv, env, file_actions=fa)
    timer = threading.Timer(timeout, lambda: _kill_timeout(pid, r))
    timer.start()
    side = None
    if on_start:
        side = threading.Thread(target=on_start, args=(pid,), daemon=True)
        side.start()
    _, status, ru = os.wait4(pid, 0)
    r.wall = time.monotonic() - t0
    timer.cancel()
    if side:
        side.join(timeout=5)
    r.status = os.waitstatus_to_exitcode(status)
    r.utime, r.stime, r.maxrss_kb = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
    out.seek(0)
    err.seek(0)
    r.stdout = out.read().decode("utf-8", "replace")
    r.stderr = err.read().decode("utf-8", "replace")
    out.close()
    err.close()
    return r


def _kill_timeout(pid, r):
    r.timed_out = True
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def proc_cpu_seconds(pid):
    """utime+stime of a live process from /proc (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def thread_cpu(pid):
    """{tid: (comm, cpu seconds)} of a live process: schedstat (ns) where the
    kernel has it, else utime+stime from stat (clock ticks)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    out[int(tid)] = (comm, int(f.read().split()[0]) / 1e9)
                continue
            except (OSError, IndexError, ValueError):
                pass
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / CLK_TCK)
        except (OSError, IndexError, ValueError):
            pass
    return out


def proc_status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def http_get(url, timeout=30):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class CountingProxy:
    """A loopback TCP proxy that counts the bytes each way: put between the
    agent and the collector, it measures what really crosses the wire (gRPC
    over HTTP/2, gzip-compressed messages, framing and headers included)."""

    def __init__(self, target_port):
        import socket
        self.target_port = target_port
        self.up = 0    # client -> server
        self.down = 0  # server -> client
        self.conns = 0
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        import socket
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                c.close()
                continue
            with self._lock:
                self.conns += 1
            threading.Thread(target=self._pump, args=(c, u, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, "down"), daemon=True).start()

    def _pump(self, src, dst, direction):
        import socket
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                with self._lock:
                    setattr(self, direction, getattr(self, direction) + len(b))
                dst.sendall(b)
        except OSError:
            pass
        finally:
            for x in (src, dst):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._stop = True
        self.sock.close()


def parse_metrics(text):
    """Prometheus text -> {name: summed value over all label sets}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + v
    return out


def metric(metrics, *names, contains=None):
    for n in names:
        if n in metrics:
            return metrics[n], n
    if contains:
        for n, v in sorted(metrics.items()):
            if all(c in n for c in contains) and not n.endswith(("_bucket", "_count", "_sum")):
                return v, n
    return None, None


def med(xs):
    return statistics.median(xs) if xs else None


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def fmt(v, spec="%.2f", none="—"):
    return none if v is None else spec % v


# ---------------------------------------------------------------------------
# The environment: binaries, profilers available.
# ---------------------------------------------------------------------------
class Env:
    def __init__(self, build, quick, work):
        self.build = build
        self.quick = quick
        self.work = work
        import stackstream_test as st  # after STACKSTREAM_BUILD_DIR is set
        self.st = st
        self.agent = st.AGENT
        self.collector_bin = st.COLLECTOR
        self.cpu_work = os.path.join(build, "tests", "bench", "bench_cpu_work")
        self.accuracy = os.path.join(build, "tests", "bench", "bench_accuracy")
        self.have_agent = os.path.exists(self.agent)
        self.have_collector = os.path.exists(self.collector_bin)
        self.have_gperf = os.path.exists(LIBPROFILER)
        self.perf_note = None
        self.have_perf = self._probe_perf()
        self.go = shutil.which("go")
        self.google_pprof = shutil.which("google-pprof")

    def _probe_perf(self):
        if not shutil.which("perf"):
            self.perf_note = "perf is not installed"
            return False
        data = os.path.join(self.work, "probe.perf")
        try:
            r = subprocess.run(["perf", "record", "-q", "-F", str(PERF_HZ), "-g", "-o", data,
                                "--", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.perf_note = "perf record failed: %s" % e
            return False
        if r.returncode != 0 or not os.path.exists(data):
            self.perf_note = "perf record failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
            return False
        return True

    def agent_env(self, collector_addr=None, service="bench", output=None, clock=None,
                  extra=None):
        e = {"LD_PRELOAD": self.agent, "STACKSTREAM_HZ": str(HZ), "STACKSTREAM_SERVICE": service,
             "STACKSTREAM_LOG": "warn"}
        if collector_addr:
            e["STACKSTREAM_COLLECTOR"] = collector_addr
        if output:
            e["STACKSTREAM_OUTPUT"] = output
        if clock:
            e["STACKSTREAM_CPU_CLOCK"] = clock
        e.update(extra or {})
        return e

    @staticmethod
    def gperf_env(prof):
        return {"LD_PRELOAD": LIBPROFILER, "CPUPROFILE": prof, "CPUPROFILE_FREQUENCY": str(HZ)}

    @staticmethod
    def perf_argv(data, argv):
        return ["perf", "record", "-q", "-F", str(PERF_HZ), "-g", "-o", data, "--"] + argv


def machine_description(build):
    d = {}
    d["nproc"] = os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    d["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    d["kernel"] = platform.release()
    d["glibc"] = " ".join(platform.libc_ver())
    try:
        d["compiler"] = subprocess.run(["g++", "--version"], capture_output=True,
                                       text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        d["compiler"] = "?"
    d["config_hz"] = config_hz()
    try:
        d["load"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        d["load"] = ["?"]
    try:
        with open("/proc/meminfo") as f:
            d["mem"] = f.readline().split(":")[1].strip()
    except OSError:
        pass
    try:
        d["perf_event_paranoid"] = open("/proc/sys/kernel/perf_event_paranoid").read().strip()
    except OSError:
        pass
    for tool, args in (("perf", ["perf", "--version"]), ("go", ["go", "version"])):
        try:
            d[tool] = subprocess.run(args, capture_output=True, text=True,
                                     timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            d[tool] = None
    d["gperftools"] = os.path.realpath(LIBPROFILER) if os.path.exists(LIBPROFILER) else None
    try:
        d["git"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
    except OSError:
        d["git"] = "?"
    try:
        cache = open(os.path.join(build, "CMakeCache.txt")).read()
        m = re.search(r"CMAKE_BUILD_TYPE:STRING=(\S*)", cache)
        d["build_type"] = m.group(1) if m else "?"
    except OSError:
        d["build_type"] = "?"
    return d


def config_hz():
    """CONFIG_HZ from the kernel config, or inferred from jiffies."""
    import gzip
    for path in ("/proc/config.gz", "/boot/config-" + platform.release()):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                for line in f:
                    if line.startswith("CONFIG_HZ="):
                        return "%s (from %s)" % (line.split("=")[1].strip(), path)
        except OSError:
            continue
    # Fall back: jiffies advance in /proc/timer_list
    try:
        def jiffies():
            with open("/proc/timer_list") as f:
                for line in f:
                    if line.startswith("jiffies:"):
                        return int(line.split()[1])
        j0, t0 = jiffies(), time.monotonic()
        time.sleep(1)
        j1, t1 = jiffies(), time.monotonic()
        return "~%d (inferred from jiffies)" % round((j1 - j0) / (t1 - t0))
    except (OSError, TypeError):
        return "unknown"


# ---------------------------------------------------------------------------
# Reading profiles: agent pprof, gperftools, perf.
# ---------------------------------------------------------------------------
def _match(name, fn):
    if not name:
        return False
    if name == fn:
        return True
    base = name.split("(")[0]
    return base == fn or base.endswith("::" + fn)


def counts_from_pprof_file(path, functions):
    """{function: samples whose stack contains it} + total samples."""
    import pprof
    p = pprof.load(path)
    counts = {f: 0 for f in functions}
    total = 0
    for s in p.samples:
        v = s.values[0] if s.values else 0
        total += v
        names = set(fr.function for fr in s.stack)
        for f in functions:
            if any(_match(n, f) for n in names):
                counts[f] += v
    return counts, total


def gperf_to_pprof(binary, prof, out):
    """Converts a gperftools CPU profile to gzip pprof with go tool pprof."""
    with open(out, "wb") as f:
        r = subprocess.run(["go", "tool", "pprof", "-proto", binary, prof], stdout=f,
                           stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("go tool pprof -proto failed: " + r.stderr.decode()[-500:])
    return out


def counts_from_perf(data, functions):
    r = subprocess.run(["perf", "script", "-i", data, "-F", "tid,period,ip,sym"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("perf script failed: " + r.stderr[-500:])
    counts = {f: 0 for f in functions}
    total = 0
    stack = None

    def flush(stack):
        nonlocal total
        if stack is None:
            return
        total += 1
        for f in functions:
            if any(_match(n, f) for n in stack):
                counts[f] += 1

    header = re.compile(r"^\s*\d+\s+\d+\s*$")  # "TID PERIOD" (TID may be right-aligned)
    for line in r.stdout.splitlines():
        if not line.strip():
            flush(stack)
            stack = None
            continue
        if header.match(line):
            flush(stack)
            stack = []
            continue
        parts = line.split(None, 1)  # "ADDR SYMBOL+OFF"
        if stack is not None and len(parts) == 2:
            stack.append(parts[1].split("+")[0].strip())
    flush(stack)
    return counts, total


# ---------------------------------------------------------------------------
# 1. Overhead
# ---------------------------------------------------------------------------
def section_overhead(env, res):
    cfgs = ["none"]
    if env.have_agent and env.have_collector:
        cfgs.append("agent")
    if env.have_gperf:
        cfgs.append("gperftools")
    if env.have_perf:
        cfgs.append("perf")
    threads_list = [1, 2, 8]
    mega = 150 if env.quick else 1500
    reps = 3 if env.quick else 7
    for t in threads_list:
        for c in ("agent", "gperftools", "perf"):
            FIG.expect("overhead.%s.%d" % (c, t), "CPU-time ratio %s vs none, %d threads" % (c, t))
    if "perf" not in cfgs:
        for t in threads_list:
            FIG.note("overhead.perf.%d" % t, "skipped: " + (env.perf_note or "perf unavailable"))
    if not os.path.exists(env.cpu_work):
        log("overhead: %s missing" % env.cpu_work)
        return
    res["overhead"] = out = {"mega_iters": mega, "reps": reps, "configs": cfgs, "runs": [],
                             "collector_cpu_s": None}
    collector = None
    if "agent" in cfgs:
        collector = env.st.Collector().start()
    coll_cpu0 = proc_cpu_seconds(collector.proc.pid) if collector else None
    agent_runs = 0
    try:
        for rep in range(reps):
            # threads 0 = the small run: 2 threads, a tenth of the work (fixed-cost fit)
            for t in threads_list + [0]:
                order = cfgs[rep % len(cfgs):] + cfgs[:rep % len(cfgs)]  # rotate each round
                for c in order:
                    argv = [env.cpu_work, str(t or 2), str(mega if t else mega / 10.0)]
                    e = {}
                    data = os.path.join(env.work, "ovh.%s.%d" % (c, t))
                    if c == "agent":
                        e = env.agent_env(collector.grpc_addr, service="bench-overhead-%d" % t,
                                          extra={"STACKSTREAM_FLUSH_MS": "1000"})
                        agent_runs += 1
                    elif c == "gperftools":
                        e = env.gperf_env(data + ".prof")
                    elif c == "perf":
                        argv = env.perf_argv(data + ".perf", argv)
                    r = run_measured(argv, e, timeout=600)
                    out["runs"].append({"rep": rep, "threads": t, "config": c, "cpu": r.cpu,
                                        "wall": r.wall, "status": r.status,
                                        "maxrss_kb": r.maxrss_kb})
                    log("overhead rep %d t=%d %-10s cpu %.3f s wall %.3f s%s" %
                        (rep, t, c, r.cpu, r.wall, "" if r.ok else " FAILED %s" % r.status))
    finally:
        if collector:
            coll_cpu1 = proc_cpu_seconds(collector.proc.pid)
            if coll_cpu0 is not None and coll_cpu1 is not None and agent_runs:
                out["collector_cpu_s"] = (coll_cpu1 - coll_cpu0) / agent_runs
            collector.stop()
            shutil.rmtree(collector.dir, ignore_errors=True)
    # paired ratios: the config's run vs the no-profiler run of the same round
    summary = {}
    # Fixed per-process cost F and per-CPU-second rate r of each profiler, from
    # the 2-thread runs at two sizes: delta(size) = F + r * cpu_none(size).
    fixed = {}

    def paired_delta(t, c):
        base = {x["rep"]: x for x in out["runs"] if x["threads"] == t and x["config"] == "none"
                and x["status"] == 0}
        ds = [x["cpu"] - base[x["rep"]]["cpu"] for x in out["runs"]
              if x["threads"] == t and x["config"] == c and x["status"] == 0 and x["rep"] in base]
        return med(ds), med([b["cpu"] for b in base.values()])

    for c in cfgs:
        d_small, c_small = paired_delta(0, c)
        d_big, c_big = paired_delta(2, c)
        if None in (d_small, c_small, d_big, c_big) or c_big <= c_small:
            fixed[c] = None
            continue
        r = (d_big - d_small) / (c_big - c_small)
        fixed[c] = d_small - r * c_small
    out["fixed_cpu_s"] = fixed
    for t in threads_list:
        base = {x["rep"]: x for x in out["runs"] if x["threads"] == t and x["config"] == "none"
                and x["status"] == 0}
        for c in cfgs:
            runs = [x for x in out["runs"] if x["threads"] == t and x["config"] == c
                    and x["status"] == 0]
            cr = [x["cpu"] / base[x["rep"]]["cpu"] for x in runs if x["rep"] in base]
            wr = [x["wall"] / base[x["rep"]]["wall"] for x in runs if x["rep"] in base]
            # steady state: the per-process fixed cost (startup + exit of the same
            # program with no work) subtracted from the difference
            fc = fixed.get(c) or 0.0
            sr = [1 + (x["cpu"] - base[x["rep"]]["cpu"] - fc) / base[x["rep"]]["cpu"]
                  for x in runs if x["rep"] in base]
            s = {"n": len(runs), "cpu_med": med([x["cpu"] for x in runs]),
                 "wall_med": med([x["wall"] for x in runs]),
                 "cpu_ratio": med(cr), "cpu_ratio_min": min(cr) if cr else None,
                 "cpu_ratio_max": max(cr) if cr else None,
                 "wall_ratio": med(wr), "wall_ratio_min": min(wr) if wr else None,
                 "wall_ratio_max": max(wr) if wr else None,
                 "steady_ratio": med(sr), "steady_ratio_min": min(sr) if sr else None,
                 "steady_ratio_max": max(sr) if sr else None,
                 "maxrss_kb_med": med([x["maxrss_kb"] for x in runs])}
            summary["%s.%d" % (c, t)] = s
            if c != "none" and s["cpu_ratio"] is not None:
                FIG.set("overhead.%s.%d" % (c, t), s["cpu_ratio"])
    for t in threads_list:
        for c in cfgs:
            if c != "none":
                FIG.expect("overhead.steady.%s.%d" % (c, t),
                           "steady-state CPU ratio %s vs none, %d threads" % (c, t))
                FIG.set("overhead.steady.%s.%d" % (c, t),
                        summary["%s.%d" % (c, t)]["steady_ratio"])
    out["summary"] = summary


# ---------------------------------------------------------------------------
# 2. Accuracy
# ---------------------------------------------------------------------------
def accuracy_fixtures(quick):
    cpu = 1.2 if quick else 10.0
    return [
        ("split 70/30, 2 threads", "split", ["split", "70", "2", str(cpu)], False),
        ("4 equal threads", "threads4", ["threads", "1,1,1,1", str(cpu)], True),
        ("3 threads, work 1:2:3", "threads123", ["threads", "1,2,3", str(cpu)], True),
        ("tick: 1 ms / 3 ms phases", "tick", ["tick", "1", "3", str(cpu)], False),
    ]


def section_accuracy(env, res):
    profilers = []
    if env.have_agent:
        profilers += ["agent-perf", "agent-timer"]
    if env.have_gperf and env.go:
        profilers.append("gperftools")
    if env.have_perf:
        profilers.append("perf")
    fixtures = accuracy_fixtures(env.quick)
    reps = 1 if env.quick else 3
    for _, key, _, _ in fixtures:
        for p in ("agent-perf", "agent-timer", "gperftools", "perf"):
            FIG.expect("accuracy.%s.%s" % (key, p), "accuracy error %s on %s" % (p, key))
            if p == "perf" and not env.have_perf:
                FIG.note("accuracy.%s.%s" % (key, p), "skipped: " + (env.perf_note or "no perf"))
    if not os.path.exists(env.accuracy):
        log("accuracy: %s missing" % env.accuracy)
        return
    res["accuracy"] = out = {"reps": reps, "runs": [], "profilers": profilers,
                             "fixtures": [(n, k, a, m) for n, k, a, m in fixtures]}
    # The agent also streams (to a private collector), as it would in production;
    # the figures come from its STACKSTREAM_OUTPUT file.
    collector = env.st.Collector().start() if env.have_collector and env.have_agent else None
    try:
        _accuracy_runs(env, out, fixtures, profilers, reps, collector)
    finally:
        if collector:
            collector.stop()
            shutil.rmtree(collector.dir, ignore_errors=True)
    _accuracy_summary(out, fixtures, profilers)


def _accuracy_runs(env, out, fixtures, profilers, reps, collector):
    for rep in range(reps):
        for name, key, args, multi in fixtures:
            order = profilers[rep % len(profilers):] + profilers[:rep % len(profilers)]
            for p in order:
                argv = [env.accuracy] + args
                base = os.path.join(env.work, "acc.%s.%s.%d" % (key, p, rep))
                e = {}
                if p.startswith("agent"):
                    e = env.agent_env(collector.grpc_addr if collector else "127.0.0.1:9",
                                      service="bench-acc-%s" % key, output=base + ".pb.gz",
                                      clock=p.split("-")[1])
                elif p == "gperftools":
                    e = env.gperf_env(base + ".prof")
                elif p == "perf":
                    argv = env.perf_argv(base + ".perf", argv)
                r = run_measured(argv, e, timeout=600)
                rec = {"rep": rep, "fixture": key, "profiler": p, "status": r.status,
                       "cpu": r.cpu, "wall": r.wall}
                out["runs"].append(rec)
                try:
                    truth = json.loads(r.stdout.strip().splitlines()[-1])["truth_cpu_ns"]
                    fns = sorted(truth)
                    if p.startswith("agent"):
                        counts, total = counts_from_pprof_file(base + ".pb.gz", fns)
                    elif p == "gperftools":
                        counts, total = counts_from_pprof_file(
                            gperf_to_pprof(env.accuracy, base + ".prof", base + ".pb.gz"), fns)
                    else:
                        counts, total = counts_from_perf(base + ".perf", fns)
                    tsum = float(sum(truth.values()))
                    csum = float(sum(counts.values()))
                    rate = PERF_HZ if p == "perf" else HZ
                    rec["truth_pct"] = {f: 100.0 * truth[f] / tsum for f in fns}
                    rec["measured_pct"] = {f: (100.0 * counts[f] / csum if csum else None)
                                           for f in fns}
                    rec["counts"] = counts
                    rec["truth_ns"] = truth
                    rec["samples_hot"] = csum
                    rec["samples_total"] = total
                    rec["samples_expected"] = tsum / 1e9 * rate
                    if csum:
                        rec["error_pts"] = max(abs(rec["measured_pct"][f] - rec["truth_pct"][f])
                                               for f in fns)
                    log("accuracy %-12s %-11s err %s pts, %d/%d samples in hot fns (expected %.0f)"
                        % (key, p, fmt(rec.get("error_pts")), csum, total,
                           rec["samples_expected"]))
                except Exception as ex:  # noqa: BLE001 - a failed figure is reported, not fatal
                    rec["error"] = "%s: %s" % (type(ex).__name__, ex)
                    log("accuracy %s %s FAILED: %s (status %s) %s" %
                        (key, p, rec["error"], r.status, r.stderr[-300:]))


def _accuracy_summary(out, fixtures, profilers):
    summary = {}
    for _, key, _, _ in fixtures:
        for p in profilers:
            runs = [x for x in out["runs"] if x["fixture"] == key and x["profiler"] == p
                    and x.get("error_pts") is not None]
            if not runs:
                continue
            errs = [x["error_pts"] for x in runs]
            deliv = [100.0 * x["samples_hot"] / x["samples_expected"] for x in runs
                     if x["samples_expected"]]
            summary["%s.%s" % (key, p)] = {
                "err_med": med(errs), "err_max": max(errs), "n": len(errs),
                "delivered_pct_med": med(deliv),
                "measured_med": {f: med([x["measured_pct"][f] for x in runs])
                                 for f in runs[0]["truth_pct"]},
                "truth_med": {f: med([x["truth_pct"][f] for x in runs])
                              for f in runs[0]["truth_pct"]}}
            # pooled over the runs (= one run as long as all of them together)
            fns = sorted(runs[0]["truth_pct"])
            pc = {f: sum(x["counts"][f] for x in runs) for f in fns}
            pt = {f: sum(x["truth_ns"][f] for x in runs) for f in fns}
            n = float(sum(pc.values()))
            tt = float(sum(pt.values()))
            pooled = max(abs(100.0 * pc[f] / n - 100.0 * pt[f] / tt) for f in fns)
            sigma = max(100.0 * ((pt[f] / tt) * (1 - pt[f] / tt) / n) ** 0.5 for f in fns)
            summary["%s.%s" % (key, p)].update({"err_pooled": pooled, "sigma_pooled": sigma,
                                                "samples_pooled": n})
            FIG.set("accuracy.%s.%s" % (key, p), med(errs))
    out["summary"] = summary


# ---------------------------------------------------------------------------
# 3. Handler cost
# ---------------------------------------------------------------------------
def find_handler_bench(build):
    cands = []
    for sub in ("tests/agent", "tests/bench", "agent", "tests"):
        d = os.path.join(build, sub)
        for dirpath, _, files in os.walk(d):
            if "CMakeFiles" in dirpath:
                continue
            for f in files:
                p = os.path.join(dirpath, f)
                if "handler" in f and "bench" in f and os.access(p, os.X_OK) and \
                        not f.endswith((".so", ".a", ".o")):
                    cands.append(p)
    return sorted(set(cands))


def section_handler(env, res):
    for d in (10, 30, 100):
        FIG.expect("handler.%d.median" % d, "handler median ns at %d frames" % d)
        FIG.expect("handler.%d.p99" % d, "handler p99 ns at %d frames" % d)
    out = res["handler"] = {"bench": None, "runs": []}
    cands = find_handler_bench(env.build)
    if not cands:
        log("handler: no handler benchmark binary found under %s" % env.build)
        out["error"] = "no handler benchmark found (looked for *handler*bench* under " \
                       "tests/agent, tests/bench, agent in the build dir)"
        return
    exe = cands[0]
    out["bench"] = os.path.relpath(exe, env.build)
    iters = 2000 if env.quick else 50000
    parsed = {}
    for d in (10, 30, 100):
        argv = [exe, "--depth=%d" % d, "--iterations=%d" % iters]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            text, status = r.stdout, r.returncode
        except (OSError, subprocess.TimeoutExpired) as ex:
            text, status = "", str(ex)
        out["runs"].append({"argv": [out["bench"]] + argv[1:], "status": status,
                            "stdout": text[-4000:]})
        m = re.search(r"median\s+([\d.]+)\s*ns.*?p99\s+([\d.]+)\s*ns", text)
        if status == 0 and m:
            parsed[d] = {"median": float(m.group(1)), "p99": float(m.group(2))}
        else:
            parsed.update({k: v for k, v in parse_handler_output(text).items() if k == d})
    out["parsed"] = parsed
    out["argv"] = [out["bench"], "--depth=D", "--iterations=%d" % iters]
    out["stdout"] = "".join(x["stdout"] for x in out["runs"])
    for d in (10, 30, 100):
        v = parsed.get(d, {})
        FIG.set("handler.%d.median" % d, v.get("median"))
        FIG.set("handler.%d.p99" % d, v.get("p99"))
    log("handler: %s -> %s" % (out["bench"], parsed))


def parse_handler_output(text):
    """Extracts {depth: {"median": ns, "p99": ns}} from the handler benchmark's
    output: google-benchmark JSON (counters or aggregates) or text lines that
    mention the depth and median/p99."""
    parsed = {}
    try:
        j = json.loads(text[text.index("{"):])
        for b in j.get("benchmarks", []):
            name = b.get("name", "")
            m = re.search(r"(?:depth|frames?)[:=/_]?(\d+)|/(\d+)(?:/|$)", name)
            if not m:
                continue
            d = int(m.group(1) or m.group(2))
            ent = parsed.setdefault(d, {})
            unit = {"ns": 1, "us": 1e3, "ms": 1e6}.get(b.get("time_unit", "ns"), 1)
            for k, v in b.items():
                lk = k.lower()
                if not isinstance(v, (int, float)):
                    continue
                if "p99" in lk:
                    ent["p99"] = float(v) * (1 if "ns" in lk else 1)
                elif "median" in lk or lk in ("p50", "p50_ns"):
                    ent["median"] = float(v)
            if b.get("aggregate_name") == "median" and "median" not in ent:
                ent["median"] = b.get("real_time", 0) * unit
        if parsed:
            return parsed
    except (ValueError, AttributeError):
        pass
    for line in text.splitlines():
        m = re.search(r"(\d+)[- ]?frames?|depth[ =:]*(\d+)", line, re.I)
        if not m:
            continue
        d = int(m.group(1) or m.group(2))
        ent = parsed.setdefault(d, {})
        for key, pat in (("median", r"(?:median|p50)[ =:]*([\d.]+)\s*(ns|us|µs)?"),
                         ("p99", r"p99[ =:]*([\d.]+)\s*(ns|us|µs)?")):
            mm = re.search(pat, line, re.I)
            if mm:
                v = float(mm.group(1))
                if mm.group(2) in ("us", "µs"):
                    v *= 1000
                ent[key] = v
    return {d: v for d, v in parsed.items() if v}


# ---------------------------------------------------------------------------
# 4. Wire and storage cost (+ RSS, drain thread CPU)
# ---------------------------------------------------------------------------
def section_wire(env, res):
    for k, w in (("wire.bytes_per_sample", "wire bytes/sample"),
                 ("wire.storage_bytes_per_sample", "SQLite bytes/sample"),
                 ("wire.pprof_export_bytes_per_sample", "pprof export bytes/sample"),
                 ("wire.agent_output_bytes_per_sample", "agent STACKSTREAM_OUTPUT bytes/sample"),
                 ("rss.added_kb", "agent RSS added"),
                 ("agent.thread_cpu", "agent threads' CPU")):
        FIG.expect(k, w)
    if not (env.have_agent and env.have_collector and os.path.exists(env.cpu_work)):
        log("wire: agent, collector or workload missing")
        return
    dur = 10.0 if env.quick else 60.0
    threads = 8
    out = res["wire"] = {"seconds": dur, "threads": threads}
    service = "bench-wire"
    output = os.path.join(env.work, "wire-agent.pb.gz")
    argv = [env.cpu_work, str(threads), "--seconds", str(dur)]

    # Baseline RSS without the agent (same workload, shorter).
    base_dur = min(dur, 10.0)
    base_samples = []

    # ru_maxrss is useless here: Linux keeps the high-water mark across exec,
    # so a child spawned from this Python process inherits Python's. VmHWM in
    # /proc/PID/status belongs to the new image; sample it while it runs.
    hwm0 = {}

    def sample_rss(pid):
        time.sleep(0.3)  # past exec
        while True:
            v = proc_status_kb(pid, "VmHWM")
            if v is None:
                return
            hwm0["kb"] = v
            base_samples.append(proc_status_kb(pid, "VmRSS"))
            time.sleep(0.5)

    r0 = run_measured([env.cpu_work, str(threads), "--seconds", str(base_dur)], {},
                      timeout=base_dur + 120, on_start=sample_rss)
    out["baseline"] = {"hwm_kb": hwm0.get("kb"), "rss_kb": base_samples,
                       "cpu": r0.cpu, "wall": r0.wall}

    with env.st.Collector() as c:
        _, m0 = http_get(c.http_url + "/metrics")
        m0 = parse_metrics(m0.decode())
        rss = []
        tcpu = {}
        hwm = {}

        def watcher(pid):
            # VmRSS every 0.5 s; per-thread CPU at t = 2 s and t = dur - 1.5 s
            t0 = time.monotonic()
            time.sleep(0.3)  # past exec
            while True:
                el = time.monotonic() - t0
                v = proc_status_kb(pid, "VmRSS")
                h = proc_status_kb(pid, "VmHWM")
                if v is None or h is None:
                    return
                rss.append((round(el, 1), v))
                hwm["kb"] = h
                if "a" not in tcpu and el >= 2.0:
                    tcpu["a"] = (time.monotonic(), thread_cpu(pid))
                if "b" not in tcpu and el >= dur - 1.5:
                    tcpu["b"] = (time.monotonic(), thread_cpu(pid))
                time.sleep(0.5)

        proxy = CountingProxy(c.grpc_port)
        e = env.agent_env(proxy.addr, service=service, output=output)
        r = run_measured(argv, e, timeout=dur + 120, on_start=watcher)
        out["agent_run"] = {"status": r.status, "cpu": r.cpu, "wall": r.wall,
                            "hwm_kb": hwm.get("kb"), "stderr": r.stderr[-2000:]}
        rss = [x for x in rss if x[1] is not None]
        out["rss_timeline_kb"] = rss
        # added RSS: VmHWM with the agent minus without; flatness: RSS at 25% vs end
        if hwm.get("kb") and hwm0.get("kb"):
            out["rss_added_kb"] = hwm["kb"] - hwm0["kb"]
        FIG.set("rss.added_kb", out.get("rss_added_kb") if r.ok and r0.ok else None)
        if rss:
            q = [v for t, v in rss if t >= dur * 0.25]
            out["rss_after_25pct_kb"] = q[0] if q else None
            out["rss_last_kb"] = rss[-1][1]
        # agent thread CPU (threads not named bench-worker and not the main thread)
        if "a" in tcpu and "b" in tcpu:
            (ta, a), (tb, b) = tcpu["a"], tcpu["b"]
            per = []
            for tid, (comm, cb) in b.items():
                if comm == "bench-worker" or tid == r_pid_guess(b):
                    continue
                ca = a.get(tid, (comm, 0.0))[1]
                per.append({"tid": tid, "comm": comm, "cpu_s_per_s": (cb - ca) / (tb - ta)})
            out["agent_threads"] = per
            out["agent_threads_window_s"] = tb - ta
            if r.cpu:
                out["agent_threads_share_pct"] = 100.0 * sum(
                    x["cpu_s_per_s"] for x in per) * r.wall / r.cpu
            FIG.set("agent.thread_cpu", sum(x["cpu_s_per_s"] for x in per))

        # wait for the last summary to be stored
        samples_name = None
        last = None
        for _ in range(60):
            _, mt = http_get(c.http_url + "/metrics")
            m1 = parse_metrics(mt.decode())
            v, samples_name = metric(m1, "stackstream_samples_ingested_total",
                                     contains=("samples", "ingested"))
            if v is not None and v == last and v > 0:
                break
            last = v
            time.sleep(0.5)
        out["metrics_before"] = {k: v for k, v in m0.items() if k.startswith("stackstream_")}
        out["metrics_after"] = {k: v for k, v in m1.items() if k.startswith("stackstream_")}
        br1, bname = metric(m1, "stackstream_bytes_received_total")
        br0, _ = metric(m0, "stackstream_bytes_received_total")
        sb1, sname = metric(m1, "stackstream_storage_bytes")
        sb0, _ = metric(m0, "stackstream_storage_bytes")
        s1, _ = metric(m1, samples_name) if samples_name else (None, None)
        s0, _ = metric(m0, samples_name) if samples_name else (None, None)
        samples_metric = (s1 - (s0 or 0)) if s1 is not None else None
        su1, _ = metric(m1, "stackstream_summaries_ingested_total")
        su0, _ = metric(m0, "stackstream_summaries_ingested_total")
        out["summaries"] = (su1 - (su0 or 0)) if su1 is not None else None
        # samples as stored, from the folded export
        st_, folded = c.get("/api/v1/profile", service=service, format="folded",
                            **{"from": "now-1h", "to": "now"})
        samples_folded = None
        if st_ == 200:
            samples_folded = sum(int(l.rsplit(" ", 1)[1]) for l in folded.decode().splitlines()
                                 if l.strip())
        st2, pp = c.get("/api/v1/profile", service=service, format="pprof",
                        **{"from": "now-1h", "to": "now"})
        if st_ == 200:
            out["export_stacks"] = sum(1 for l in folded.decode().splitlines() if l.strip())
        samples = samples_metric if samples_metric else samples_folded
        time.sleep(0.5)
        out["tcp_up_bytes"], out["tcp_down_bytes"], out["tcp_conns"] = \
            proxy.up, proxy.down, proxy.conns
        proxy.close()
        out.update({"samples_metric": samples_metric, "samples_metric_name": samples_name,
                    "samples_folded": samples_folded,
                    "bytes_received": (br1 - (br0 or 0)) if br1 is not None else None,
                    "storage_bytes_before": sb0, "storage_bytes_after": sb1,
                    "pprof_export_bytes": len(pp) if st2 == 200 else None})
        db = os.path.join(c.dir, "profiles.db")
        out["db_files_bytes_live"] = sum(os.path.getsize(db + s) for s in ("", "-wal", "-shm")
                                         if os.path.exists(db + s))
        c.stop()
        out["db_file_bytes_after_close"] = sum(os.path.getsize(db + s) for s in ("", "-wal")
                                               if os.path.exists(db + s))
        if samples:
            if out.get("tcp_up_bytes"):
                FIG.set("wire.bytes_per_sample", out["tcp_up_bytes"] / samples)
            if out["bytes_received"] is not None:
                FIG.set("wire.metric_bytes_per_sample", out["bytes_received"] / samples)
            if sb1 is not None:
                FIG.set("wire.storage_bytes_per_sample", (sb1 - (sb0 or 0)) / samples)
            if out["pprof_export_bytes"]:
                FIG.set("wire.pprof_export_bytes_per_sample", out["pprof_export_bytes"] / samples)
        if os.path.exists(output):
            try:
                _, total = counts_from_pprof_file(output, [])
                out["agent_output_bytes"] = os.path.getsize(output)
                out["agent_output_samples"] = total
                if total:
                    FIG.set("wire.agent_output_bytes_per_sample",
                            out["agent_output_bytes"] / total)
            except Exception as ex:  # noqa: BLE001
                out["agent_output_error"] = str(ex)
    log("wire: %s" % {k: v for k, v in out.items() if not isinstance(v, (list, dict))})


def r_pid_guess(threads):
    """The main thread's tid is the pid = the smallest tid."""
    return min(threads) if threads else None


# ---------------------------------------------------------------------------
# 5. Collector (H3's ingest_bench)
# ---------------------------------------------------------------------------
def section_collector(env, res):
    FIG.expect("collector.ingest_bench", "ingest throughput + query latency (ingest_bench)")
    out = res["collector"] = {}
    exe = None
    for cand in ("tests/bench/ingest_bench", "tests/bench/stackstream_ingest_bench",
                 "collector/ingest_bench"):
        p = os.path.join(env.build, cand)
        if os.path.exists(p):
            exe = p
            break
    if not exe:
        out["error"] = "ingest_bench not built (expected <build>/tests/bench/ingest_bench)"
        log("collector: " + out["error"])
        return
    out["bench"] = os.path.relpath(exe, env.build)
    help_text = ""
    try:
        h = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
        help_text = h.stdout + h.stderr
    except (OSError, subprocess.TimeoutExpired):
        pass
    argv = [exe]
    if env.quick:
        if "--quick" in help_text:
            argv.append("--quick")
        else:  # shrink H3's defaults to a few seconds, where the flags exist
            for flag, val in (("--summaries", "40"), ("--services", "5"), ("--flush-s", "600"),
                              ("--queries", "10")):
                if flag in help_text:
                    argv += [flag, val]
    out["argv"] = [out["bench"]] + argv[1:]
    out["help"] = help_text[-3000:]
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=env.work)
        out["status"] = r.returncode
        out["stdout"] = r.stdout[-30000:]
        out["stderr"] = r.stderr[-3000:]
    except subprocess.TimeoutExpired as ex:
        out["status"] = "timeout"
        out["stdout"] = (ex.stdout or b"").decode("utf-8", "replace")[-30000:]
        out["stderr"] = ""
    out["wall"] = time.monotonic() - t0
    FIG.set("collector.ingest_bench",
            "ok" if out["status"] == 0 and out["stdout"].strip() else None)
    log("collector: ingest_bench status %s, %.1f s" % (out["status"], out["wall"]))


# ---------------------------------------------------------------------------
# BENCHMARKS.md
# ---------------------------------------------------------------------------
def goal_mark(ok):
    return "**met**" if ok else "**missed**"


def render_summary(a, env, res):
    """The goals from the issues, each with the figure that judges it."""
    a("## Summary against the goals")
    a("")
    a("| goal | measured | verdict |")
    a("|---|---|---|")
    ov = res.get("overhead") or {}
    sm = ov.get("summary") or {}
    w = res.get("wire") or {}
    noise = []
    for t in (1, 2, 8):
        xs = [x["cpu"] for x in ov.get("runs", []) if x["threads"] == t and
              x["config"] == "none" and x["status"] == 0]
        if len(xs) > 1:
            noise.append(100 * (max(xs) - min(xs)) / med(xs))
    nz = max(noise) if noise else None
    cells = []
    for t in (1, 2, 8):
        s = sm.get("agent.%d" % t)
        if s and s.get("cpu_ratio") is not None:
            cells.append("%d thr %+.2f%% (steady %+.2f%%)" % (
                t, (s["cpu_ratio"] - 1) * 100, (s["steady_ratio"] - 1) * 100))
    share = w.get("agent_threads_share_pct")
    verdict = "—"
    if share is not None:
        verdict = "%s by the in-process measure (agent threads %.2f%% of process CPU, + ~0.03%% " \
                  "in the handler)" % (goal_mark(share + 0.03 <= 0.5), share)
        if nz is not None:
            verdict += "; the wait4 ratios are within this machine's noise (±%.0f%%)" % (nz / 2)
    a("| agent CPU overhead ≤ 0.5%% at 100 Hz (issue 6) | wait4 CPU ratio vs none: %s; agent "
      "threads' own CPU: %s | %s |" % ("; ".join(cells) or "not produced",
                                       fmt(share, "%.2f%%"), verdict))
    cells = []
    below = []
    for t in (1, 2, 8):
        s, g = sm.get("agent.%d" % t), sm.get("gperftools.%d" % t)
        if s and g and s.get("cpu_ratio") and g.get("cpu_ratio"):
            cells.append("%d thr %+.2f%% vs %+.2f%%" % (t, (s["cpu_ratio"] - 1) * 100,
                                                        (g["cpu_ratio"] - 1) * 100))
            below.append(s["cpu_ratio"] < g["cpu_ratio"])
    a("| agent overhead below gperftools' (issue 6) | agent vs gperftools, total: %s | %s |" % (
        "; ".join(cells) or "not produced",
        ("below in %d of %d thread counts; differences are within the noise (±%.0f%%), so "
         "not resolved" % (sum(below), len(below), (nz or 0) / 2)) if cells else "—"))
    ac = (res.get("accuracy") or {}).get("summary") or {}
    for clock, label in (("agent-perf", "agent, perf clock (default where permitted)"),
                         ("agent-timer", "agent, timer clock (fallback)")):
        errs = [(k.split(".")[0], v["err_pooled"]) for k, v in ac.items()
                if k.endswith("." + clock)]
        if errs:
            worst = max(errs, key=lambda x: x[1])
            a("| accuracy error ≤ 2 points on every fixture (issue 6), %s | %s | %s |" % (
                label, ", ".join("%s %.2f" % e for e in errs),
                "%s (worst: %s %.2f)" % (goal_mark(worst[1] <= 2), worst[0], worst[1])))
    cells = []
    better = []
    for key in ("threads4", "threads123"):
        g = ac.get("%s.gperftools" % key)
        for clock in ("agent-perf", "agent-timer"):
            s = ac.get("%s.%s" % (key, clock))
            if s and g:
                cells.append("%s %s %.2f vs %.2f" % (key, clock, s["err_pooled"],
                                                     g["err_pooled"]))
                better.append(s["err_pooled"] < g["err_pooled"])
    if cells:
        a("| better than gperftools on the multithreaded fixtures (issue 6) | pooled error, "
          "agent vs gperftools: %s | %s |" % ("; ".join(cells), goal_mark(all(better))))
    hp = ((res.get("handler") or {}).get("parsed") or {}).get(30)
    if hp:
        a("| handler median ≤ 1 µs at 30 frames (issue 6) | median %.0f ns, p99 %.0f ns "
          "(handler body, called directly) | %s |" % (hp["median"], hp["p99"],
                                                        goal_mark(hp["median"] <= 1000)))
    bps = FIG.values.get("wire.bytes_per_sample")
    if bps is not None:
        a("| ≤ 4 bytes/sample on the wire (issue 6) | %.2f bytes/sample (TCP bytes agent → "
          "collector, %.0f samples/s, 10 s flushes); gzip pprof of the same data: %s | %s |" % (
              bps, (w.get("samples_metric") or w.get("samples_folded") or 0) / w["seconds"],
              fmt(FIG.values.get("wire.pprof_export_bytes_per_sample"), "%.2f"),
              goal_mark(bps <= 4)))
    added = w.get("rss_added_kb")
    if added is not None:
        a("| agent RSS added ≤ 16 MiB, flat (issue 3) | %.1f MiB; %+d KiB from 25%% of the "
          "run to the end | %s |" % (added / 1024.0,
                                     (w.get("rss_last_kb") or 0) -
                                     (w.get("rss_after_25pct_kb") or 0),
                                     goal_mark(added <= 16 * 1024)))
    txt = (res.get("collector") or {}).get("stdout", "")
    m_sql = re.search(r"^\s*sqlite\s.*?(\d+)% of noop", txt, re.M)
    if m_sql:
        a("| collector ingest ≥ 50%% of the no-op rate (issue 5) | %s%% | %s |" % (
            m_sql.group(1), goal_mark(int(m_sql.group(1)) >= 50)))
    mq = re.search(r"over\s+1 h:\s+p50 ([\d.]+) ms\s+p99 ([\d.]+) ms", txt)
    if mq:
        a("| 1 h merged-profile query < 100 ms (issue 5) | p50 %s ms, p99 %s ms | %s |" % (
            mq.group(1), mq.group(2), goal_mark(float(mq.group(1)) < 100)))
    a("")


def render(env, res, machine, args, started, elapsed):
    L = []
    a = L.append
    quick = env.quick
    a("# stackstream benchmarks")
    a("")
    if quick:
        a("> **Quick mode** (`--quick`): every measurement ran briefly, to check that each "
          "figure is produced. These numbers are NOT meaningful; see BENCHMARKS.md at the "
          "repository root for a full run.")
        a("")
    a("Generated by `tests/bench/run.sh%s --build-dir %s` on %s (%.0f s). Raw data: "
      "`%s`." % (" --quick" if quick else "", os.path.relpath(env.build, ROOT),
                 started.strftime("%Y-%m-%d %H:%M UTC"), elapsed,
                 os.path.relpath(args.json, ROOT) if args.json.startswith(ROOT) else args.json))
    a("")
    render_summary(a, env, res)
    a("## Machine")
    a("")
    a("| | |")
    a("|---|---|")
    for k, label in (("cpu", "CPU"), ("nproc", "nproc"), ("mem", "memory"), ("kernel", "kernel"),
                     ("config_hz", "scheduler tick (CONFIG_HZ)"), ("glibc", "glibc"),
                     ("compiler", "compiler"), ("build_type", "build type"),
                     ("perf", "perf"), ("perf_event_paranoid", "perf_event_paranoid"),
                     ("gperftools", "gperftools libprofiler"), ("go", "go (pprof)"),
                     ("git", "stackstream commit")):
        a("| %s | %s |" % (label, machine.get(k)))
    a("| load average at start / end | %s / %s |" % (" ".join(machine["load"]),
                                                      " ".join(res.get("load_end", ["?"]))))
    a("")
    a("The machine is a shared 2-vCPU VM: other work running at the same time shows up as "
      "noise, which is why every comparison below is interleaved (round-robin over the "
      "configurations, rotating the order each round) and reported as a median with min/max.")
    a("")

    # ---------------- overhead
    a("## 1. Overhead")
    a("")
    ov = res.get("overhead")
    if not ov:
        a("Not produced: the workload `bench_cpu_work` was not built.")
    else:
        a("Workload: `tests/bench/workloads/cpu_work.cc`, a fixed amount of CPU-bound work "
          "(%d M iterations of a multiply/xor-shift chain, split evenly over the threads, "
          "in ~14-frame-deep call chains ending in 4 leaf functions), so CPU time and wall "
          "time are the measure. %d interleaved rounds; in each round every configuration "
          "runs once per thread count. A ratio is the configuration's run divided by the "
          "no-profiler run of the same round; the table gives the median and [min, max] of "
          "those ratios, and the median absolute times." % (ov["mega_iters"], ov["reps"]))
        a("")
        a("Configurations:")
        a("")
        a("- **none**: `bench_cpu_work T %d`" % ov["mega_iters"])
        a("- **agent**: `LD_PRELOAD=libstackstream.so STACKSTREAM_HZ=100 "
          "STACKSTREAM_COLLECTOR=127.0.0.1:PORT STACKSTREAM_FLUSH_MS=1000` (cpu mode, default "
          "clock), streaming to a real `stackstream-collector` (SQLite) on loopback. The flush "
          "interval is 1 s instead of the default 10 s so the sender's cost is included even "
          "in short runs. The collector's own CPU is not in the ratio (separate process): %s "
          "CPU-seconds per agent run." % fmt(ov.get("collector_cpu_s"), "%.3f"))
        a("- **gperftools**: `LD_PRELOAD=%s CPUPROFILE=FILE CPUPROFILE_FREQUENCY=100`" %
          LIBPROFILER)
        if env.have_perf:
            a("- **perf**: `perf record -q -F 99 -g -o FILE -- bench_cpu_work ...`; the CPU "
              "time is perf's plus the workload's (wait4 on perf includes its child), i.e. the "
              "whole cost of profiling this way on this machine.")
        else:
            a("- **perf**: skipped: %s" % env.perf_note)
        a("")
        a("Goal (issue 6): agent CPU overhead ≤ 0.5% at 100 Hz and below gperftools'.")
        a("")
        st_ = ov.get("fixed_cpu_s", {})
        a("Each profiler's cost is split into a fixed per-process part F (start-up, first "
          "symbolization, final flush/write at exit) and a per-CPU-second rate, fitted from "
          "the 2-thread runs at two sizes (`bench_cpu_work 2 %g` and `bench_cpu_work 2 %g`, "
          "also interleaved): extra CPU = F + rate × CPU. F in CPU seconds: %s. "
          "**Steady** below is the overhead with F taken out, i.e. what a long-running process "
          "pays per CPU-second; **total** is what this %.1f-CPU-second program paid." % (
              ov["mega_iters"] / 10.0, ov["mega_iters"],
              ", ".join("%s %s" % (c, fmt(st_.get(c), "%.3f")) for c in ov["configs"]
                        if c != "none"),
              (ov["summary"].get("none.1") or {}).get("cpu_med") or 0))
        a("")
        a("| threads | profiler | CPU ratio (total) median [min, max] | total CPU overhead | "
          "steady CPU overhead median [min, max] | wall ratio median [min, max] | "
          "median CPU s | median wall s | goal (agent) |")
        a("|---:|---|---|---:|---|---|---:|---:|---|")
        sm = ov["summary"]
        for t in (1, 2, 8):
            for c in ov["configs"]:
                s = sm.get("%s.%d" % (c, t))
                if not s or s["n"] == 0:
                    a("| %d | %s | not produced | | | | | | |" % (t, c))
                    continue
                if c == "none":
                    a("| %d | none | 1 | — | — | 1 | %.3f | %.3f | |" % (t, s["cpu_med"],
                                                                        s["wall_med"]))
                    continue
                over = (s["cpu_ratio"] - 1) * 100
                steady = (s["steady_ratio"] - 1) * 100
                goal = ""
                if c == "agent":
                    g = sm.get("gperftools.%d" % t)
                    below = g is None or g["cpu_ratio"] is None or s["cpu_ratio"] < g["cpu_ratio"]
                    goal = "≤ 0.5%%: total %s, steady %s; below gperftools: %s" % (
                        goal_mark(over <= 0.5), goal_mark(steady <= 0.5), goal_mark(below))
                a("| %d | %s | %.4f [%.4f, %.4f] | %+.2f%% | %+.2f%% [%+.2f%%, %+.2f%%] | "
                  "%.4f [%.4f, %.4f] | %.3f | %.3f | %s |"
                  % (t, c, s["cpu_ratio"], s["cpu_ratio_min"], s["cpu_ratio_max"], over,
                     steady, (s["steady_ratio_min"] - 1) * 100,
                     (s["steady_ratio_max"] - 1) * 100,
                     s["wall_ratio"], s["wall_ratio_min"], s["wall_ratio_max"], s["cpu_med"],
                     s["wall_med"], goal))
        a("")
        # noise floor: spread of the none runs
        noise = []
        for t in (1, 2, 8):
            xs = [x["cpu"] for x in ov["runs"] if x["threads"] == t and x["config"] == "none"
                  and x["status"] == 0]
            if len(xs) > 1:
                noise.append("%d threads: %.1f%%" % (t, 100 * (max(xs) - min(xs)) / med(xs)))
        if noise:
            a("Noise floor: spread (max − min) / median of the no-profiler CPU times: " +
              ", ".join(noise) + ". Overheads of a percent or two are below this spread: the "
              "medians above do not resolve them, and a ±1% difference between two "
              "profilers here is not a ranking.")
            a("")
        share = (res.get("wire") or {}).get("agent_threads_share_pct")
        hb = ((res.get("handler") or {}).get("parsed") or {}).get(30, {}).get("median")
        if share is not None:
            a("A finer measure of the agent's steady cost, from inside the process (section 4): "
              "its own threads (drain/unwind/symbolize, sender) used **%.2f%%** of the "
              "process's CPU at 100 Hz, which alone %s the 0.5%% goal; the in-thread part is "
              "100 Hz × (signal delivery ~2.6 µs + handler body %s ns) ≈ %.2f%% per busy "
              "thread." % (share, "misses" if share > 0.5 else "meets",
                           fmt(hb, "%.0f"), 100 * 100 * (2.6e-6 + (hb or 0) * 1e-9)))
            a("")
        fails = [x for x in ov["runs"] if x["status"] != 0]
        if fails:
            a("Failed runs (excluded): " + ", ".join("%s/%d threads/round %d: status %s" %
                                                      (x["config"], x["threads"], x["rep"],
                                                       x["status"]) for x in fails))
            a("")

    # ---------------- accuracy
    a("## 2. Accuracy")
    a("")
    ac = res.get("accuracy")
    if not ac:
        a("Not produced: the fixture `bench_accuracy` was not built.")
    else:
        a("Fixtures: `tests/bench/workloads/accuracy.cc` (H1's `tests/fixtures/cpu_split` "
          "spins on `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, a system call, inside its hot "
          "functions and is built with frame pointers; these fixtures keep the hot loop free "
          "of calls, are built without frame-pointer flags, and measure their own ground "
          "truth). Each fixture times every call of its hot functions with the thread's "
          "CPU clock and prints the true CPU split at exit; a profiler's share for a function "
          "is its samples whose stack contains that function divided by the samples in all "
          "of the fixture's hot functions. **Error** = the largest |measured − true| share "
          "over the fixture's functions, in percentage points; median [max] over %d run(s). "
          "\"Delivered\" = samples in the hot functions ÷ (their true CPU seconds × rate). "
          "The split and threads fixtures use pseudo-random chunk lengths (0.2–2 ms), so no "
          "sampling period can alias with them; the tick fixture does the opposite on "
          "purpose: its 1 ms + 3 ms phases follow an absolute TSC schedule with a 4 ms period, "
          "equal to the scheduler tick (CONFIG_HZ=250) and never drifting against it, so a "
          "clock that fires only on ticks keeps seeing the same phase." % ac["reps"])
        a("")
        a("| fixture | command | functions (truth) |")
        a("|---|---|---|")
        for name, key, args, _ in ac["fixtures"]:
            truth = None
            for p in ac["profilers"]:
                s = ac["summary"].get("%s.%s" % (key, p))
                if s:
                    truth = s["truth_med"]
                    break
            a("| %s | `bench_accuracy %s` | %s |" % (
                name, " ".join(args),
                ", ".join("%s %.1f%%" % (f, v) for f, v in sorted(truth.items()))
                if truth else "—"))
        a("")
        a("Profilers: **agent-perf** / **agent-timer**: the agent at 100 Hz with "
          "`STACKSTREAM_CPU_CLOCK=perf` (perf_event task-clock) or `=timer` (per-thread "
          "`timer_create` CPU-clock timers), offline output `STACKSTREAM_OUTPUT=FILE` decoded "
          "with tests/lib/pprof.py; **gperftools**: `CPUPROFILE_FREQUENCY=100`, converted with "
          "`go tool pprof -proto BINARY PROFILE`; **perf**: `perf record -F 99 -g`, read with "
          "`perf script -F tid,period,ip,sym`.")
        a("")
        a("Goal (issue 6): error ≤ 2 points on every fixture, and better than gperftools on "
          "the multithreaded ones.")
        a("")
        a("**Pooled** = the error of all runs' samples added together (as one run %d× as "
          "long); **σ** = the binomial standard deviation of a share for that many randomly "
          "placed samples (pooled), the error expected from sampling alone when samples "
          "land independently of the program's phases. An error within ~2σ is "
          "indistinguishable from sampling noise; an error far above it is bias. The goal "
          "columns judge the pooled error." % ac["reps"])
        a("")
        a("| fixture | profiler | error pts median [max] | pooled error (σ, samples) | "
          "measured shares (median) | delivered | goal (agent) |")
        a("|---|---|---|---|---|---:|---|")
        for name, key, args, multi in ac["fixtures"]:
            for p in ("agent-perf", "agent-timer", "gperftools", "perf"):
                s = ac["summary"].get("%s.%s" % (key, p))
                if not s:
                    why = FIG.notes.get("accuracy.%s.%s" % (key, p), "not produced")
                    a("| %s | %s | %s | | | | |" % (name, p, why))
                    continue
                goal = ""
                if p.startswith("agent"):
                    ok = s["err_pooled"] <= 2.0
                    goal = "≤ 2: %s" % goal_mark(ok)
                    g = ac["summary"].get("%s.gperftools" % key)
                    if multi and g:
                        goal += "; better than gperftools: %s" % goal_mark(
                            s["err_pooled"] < g["err_pooled"])
                a("| %s | %s | %.2f [%.2f] | %.2f (σ %.2f, %d) | %s | %s | %s |" % (
                    name, p, s["err_med"], s["err_max"], s["err_pooled"], s["sigma_pooled"],
                    s["samples_pooled"],
                    ", ".join("%s %.1f" % (f, v) for f, v in sorted(s["measured_med"].items())
                              if v is not None),
                    fmt(s["delivered_pct_med"], "%.0f%%"), goal))
        a("")
        if res.get("note_reparsed"):
            a("Note: %s (a `perf script` parser bug — right-aligned TIDs once pids wrapped "
              "below 10000 — was fixed after the run; the numbers come from that run's own "
              "data files)." % res["note_reparsed"])
            a("")
        errs = [x for x in ac["runs"] if x.get("error")]
        if errs:
            a("Runs that produced no profile: " + "; ".join(
                "%s/%s: %s" % (x["fixture"], x["profiler"], x["error"][:200]) for x in errs))
            a("")

    # ---------------- handler
    a("## 3. Handler cost")
    a("")
    h = res.get("handler", {})
    a("Goal (issue 6): handler median ≤ 1 µs at 30 frames.")
    a("")
    if not h.get("bench"):
        a("Not produced: %s." % h.get("error", "no handler benchmark"))
    else:
        a("Method: H1's handler benchmark `%s` (command: `%s` for D = 10, 30, 100). It calls "
          "the agent's signal handler function (`SampleSignalHandler`) directly, from a "
          "`getcontext` ucontext captured D frames deep, and times each call with "
          "`clock_gettime(CLOCK_MONOTONIC)` (the cost of the clock pair, ~20–40 ns, is not "
          "subtracted). The kernel's signal delivery and `sigreturn` (~2.6 µs round trip on "
          "this machine, architecture.md) are not included; they are in the overhead figures "
          "of section 1. The agent's handler copies registers and up to 32 KiB of stack and "
          "unwinds later on the drain thread, so its cost depends on the stack bytes copied "
          "more than on the frame count." % (h["bench"], " ".join(h["argv"])))
        a("")
        a("| frames | median ns | p99 ns | goal |")
        a("|---:|---:|---:|---|")
        for d in (10, 30, 100):
            v = h.get("parsed", {}).get(d, {}) if h.get("parsed") else {}
            goal = ""
            if d == 30 and v.get("median") is not None:
                goal = "≤ 1000 ns: %s" % goal_mark(v["median"] <= 1000)
            a("| %d | %s | %s | %s |" % (d, fmt(v.get("median"), "%.0f"),
                                         fmt(v.get("p99"), "%.0f"), goal))
        a("")
        a("<details><summary>handler benchmark output</summary>")
        a("")
        a("```")
        a(h.get("stdout", "").strip()[-8000:])
        a("```")
        a("</details>")
    a("")

    # ---------------- wire
    a("## 4. Wire and storage cost")
    a("")
    w = res.get("wire")
    if not w:
        a("Not produced: agent, collector or workload missing.")
    else:
        samples = w.get("samples_metric") or w.get("samples_folded")
        a("Workload: `bench_cpu_work 8 --seconds %g` (8 busy threads on %s cores, 4 distinct "
          "leaf stacks ~14 frames deep) under the agent at 100 Hz with the default flush "
          "interval (10 s), streaming to a fresh collector (`--storage sqlite:...`) and "
          "writing `STACKSTREAM_OUTPUT` at the same time." % (w["seconds"], machine["nproc"]))
        a("")
        a("Samples stored: %s (metric `%s`: %s; sum of the folded export: %s), i.e. %.0f "
          "samples/s: the workload got %.2f CPUs on average (%.1f CPU-s in %.0f s)." % (
            fmt(samples, "%d"), w.get("samples_metric_name"), fmt(w.get("samples_metric"), "%d"),
            fmt(w.get("samples_folded"), "%d"), (samples or 0) / w["seconds"],
            w["agent_run"]["cpu"] / w["agent_run"]["wall"], w["agent_run"]["cpu"],
            w["agent_run"]["wall"]))
        a("")
        a("A summary carries each distinct stack once per flush window with its count, plus "
          "the window's labels, strings and mappings, so the bytes per sample fall as the "
          "samples per window grow: they depend on the CPUs the workload gets and on the "
          "number of distinct stacks (here %s in the export)." % w.get("export_stacks", "?"))
        a("")
        a("| what | bytes | bytes / sample | goal |")
        a("|---|---:|---:|---|")
        bps = FIG.values.get("wire.bytes_per_sample")
        a("| **on the wire**, agent → collector: TCP payload through a counting loopback "
          "proxy (gRPC/HTTP2, gzip messages, framing, headers, connection set-up; %s "
          "connection(s); %s bytes came back) | %s | %s | %s |" % (
              w.get("tcp_conns"), fmt(w.get("tcp_down_bytes"), "%d"),
              fmt(w.get("tcp_up_bytes"), "%d"), fmt(bps),
              ("≤ 4: " + goal_mark(bps <= 4)) if bps is not None else ""))
        a("| summaries as the collector counts them (`stackstream_bytes_received_total` "
          "delta: the protobuf size, before gRPC's gzip) | %s | %s | |" % (
              fmt(w.get("bytes_received"), "%d"),
              fmt(FIG.values.get("wire.metric_bytes_per_sample"))))
        if w.get("summaries") and w.get("tcp_up_bytes"):
            a("| on the wire per summary (%d summaries: one per 10 s flush + the final one) | "
              "%.0f | | |" % (w["summaries"], w["tcp_up_bytes"] / w["summaries"]))
        sb = None
        if w.get("storage_bytes_after") is not None:
            sb = w["storage_bytes_after"] - (w.get("storage_bytes_before") or 0)
        a("| SQLite (`stackstream_storage_bytes` growth) | %s | %s | |" % (
            fmt(sb, "%d"), fmt(FIG.values.get("wire.storage_bytes_per_sample"))))
        if samples:
            a("| SQLite files after the collector stopped (incl. schema) | %d | %.2f | |" % (
                w["db_file_bytes_after_close"], w["db_file_bytes_after_close"] / samples))
        a("| gzip pprof export of the same data (`/api/v1/profile?format=pprof`) | %s | %s | |"
          % (fmt(w.get("pprof_export_bytes"), "%d"),
             fmt(FIG.values.get("wire.pprof_export_bytes_per_sample"))))
        a("| the agent's own `STACKSTREAM_OUTPUT` gzip pprof (%s samples) | %s | %s | |" % (
            fmt(w.get("agent_output_samples"), "%d"), fmt(w.get("agent_output_bytes"), "%d"),
            fmt(FIG.values.get("wire.agent_output_bytes_per_sample"))))
        a("")
        a("### Agent memory and threads")
        a("")
        a("| what | value | goal |")
        a("|---|---:|---|")
        added = w.get("rss_added_kb")
        a("| peak RSS (VmHWM) without / with the agent | %s KiB / %s KiB | |" % (
            w["baseline"].get("hwm_kb"), w["agent_run"].get("hwm_kb")))
        a("| RSS added by the agent | %s | ≤ 16 MiB (issue 3): %s |" % (
            fmt(added / 1024.0 if added is not None else None, "%.1f MiB"),
            goal_mark(added is not None and added <= 16 * 1024)))
        if w.get("rss_after_25pct_kb") is not None:
            grow = w["rss_last_kb"] - w["rss_after_25pct_kb"]
            a("| VmRSS at 25%% of the run → end | %d → %d KiB (%+d KiB) | flat |" % (
                w["rss_after_25pct_kb"], w["rss_last_kb"], grow))
        ths = sorted(w.get("agent_threads", []), key=lambda t: -t["cpu_s_per_s"])
        for t in ths[:2]:
            a("| CPU of agent thread `%s` (tid %d), 100 Hz × 8 threads | %.4f CPU-s/s (%.2f%% "
              "of a core) | |" % (t["comm"], t["tid"], t["cpu_s_per_s"],
                                  100 * t["cpu_s_per_s"]))
        if len(ths) > 2:
            rest = ths[2:]
            a("| CPU of the %d other agent threads (%s) | %.4f CPU-s/s | |" % (
                len(rest), ", ".join(sorted(set("`%s`" % t["comm"] for t in rest))),
                sum(t["cpu_s_per_s"] for t in rest)))
        if not w.get("agent_threads"):
            a("| agent threads' CPU | not measured | |")
        elif samples:
            tot = sum(t["cpu_s_per_s"] for t in w["agent_threads"])
            rate = samples / w["seconds"]
            a("| agent threads' CPU per sample (all agent threads ÷ the run's average "
              "%.0f samples/s) | %.1f µs | |" % (rate, 1e6 * tot / rate))
            wc = w["agent_run"]["cpu"]
            a("| agent threads' CPU as a share of the process's CPU (%.1f CPU-s in %.0f s) | "
              "%.2f%% | ≤ 0.5%% (issue 6): %s |" % (
                  wc, w["agent_run"]["wall"], 100 * tot * w["agent_run"]["wall"] / wc,
                  goal_mark(100 * tot * w["agent_run"]["wall"] / wc <= 0.5)))
        a("")
        a("Thread CPU is from /proc/PID/task/TID/schedstat (run time in ns) between t = 2 s "
          "and t = %g s; every thread not named `bench-worker` except the main thread is "
          "counted as the agent's (the agent's threads keep the process's name)." %
          (w["seconds"] - 1.5))
        a("")

    # ---------------- collector
    a("## 5. Collector")
    a("")
    co = res.get("collector", {})
    a("Goals (issue 5): ingest into SQLite ≥ 50% of the no-op handler's rate; merged-profile "
      "query over 1 h under 100 ms (p50/p99 reported for 1 h and 24 h).")
    a("")
    if not co.get("bench"):
        a("Not produced: %s." % co.get("error", "ingest_bench missing"))
    else:
        txt = co.get("stdout", "")
        m_sql = re.search(r"^\s*sqlite\s+(\d+) summaries/s\s+(\d+) samples/s.*?(\d+)% of noop",
                          txt, re.M)
        m_noop = re.search(r"^\s*noop\s+(\d+) summaries/s\s+(\d+) samples/s", txt, re.M)
        rows = []
        if m_noop and m_sql:
            pctv = int(m_sql.group(3))
            rows.append("| ingest into SQLite vs no-op handler | %s vs %s samples/s (%s vs %s "
                        "summaries/s) | %d%% | ≥ 50%%: %s |" % (
                            m_sql.group(2), m_noop.group(2), m_sql.group(1), m_noop.group(1),
                            pctv, goal_mark(pctv >= 50)))
        for span in ("1 h", "24 h"):
            mq = re.search(r"over\s+%s:\s+p50 ([\d.]+) ms\s+p99 ([\d.]+) ms" % span, txt)
            if mq:
                goal = ("< 100 ms: %s" % goal_mark(float(mq.group(1)) < 100)) if span == "1 h" \
                    else ""
                rows.append("| merged-profile query over %s | p50 %s ms, p99 %s ms | | %s |" % (
                    span, mq.group(1), mq.group(2), goal))
        if rows:
            a("| what | measured | ratio | goal |")
            a("|---|---|---:|---|")
            for row in rows:
                a(row)
            a("")
        a("H3's `%s` (command: `%s`, exit status %s, %.0f s). Its output, verbatim:" % (
            co["bench"], " ".join(co["argv"]), co.get("status"), co.get("wall", 0)))
        a("")
        a("```")
        a(co.get("stdout", "").strip())
        a("```")
    a("")

    # ---------------- summary of figures
    a("## Figures not produced")
    a("")
    miss = FIG.missing()
    skip = FIG.skipped()
    if not miss and not skip:
        a("None: every figure was produced.")
    for k, wdesc in miss:
        a("- %s (`%s`): NOT PRODUCED" % (wdesc, k))
    for k, wdesc, why in skip:
        a("- %s (`%s`): %s" % (wdesc, k, why))
    a("")
    a("## Reproduce")
    a("")
    a("```")
    a("cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && ninja -C build")
    a("tests/bench/run.sh --build-dir build            # full: ~20-25 min, writes BENCHMARKS.md")
    a("tests/bench/run.sh --quick --build-dir build    # CI: ~2 min, checks every figure exists")
    a("```")
    a("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--output", help="markdown file (default: BENCHMARKS.md at the repo root; "
                    "in --quick mode BUILD/bench/BENCHMARKS.quick.md)")
    ap.add_argument("--json", help="raw results (default: next to the build's bench dir)")
    ap.add_argument("--only", default="overhead,accuracy,handler,wire,collector")
    ap.add_argument("--render-from", metavar="JSON",
                    help="only re-render the report from a results JSON of an earlier run")
    args = ap.parse_args()
    if args.render_from:
        return rerender(args)
    build = os.path.abspath(args.build_dir)
    os.environ["STACKSTREAM_BUILD_DIR"] = build
    outdir = os.path.join(build, "bench")
    os.makedirs(outdir, exist_ok=True)
    if not args.output:
        args.output = (os.path.join(outdir, "BENCHMARKS.quick.md") if args.quick
                       else os.path.join(ROOT, "BENCHMARKS.md"))
    if not args.json:
        args.json = os.path.join(outdir, "results%s.json" % (".quick" if args.quick else ""))
    work = tempfile.mkdtemp(prefix="ss-bench-")
    started = datetime.datetime.utcnow()
    t0 = time.monotonic()
    machine = machine_description(build)
    env = Env(build, args.quick, work)
    log("build %s, agent %s, collector %s, gperftools %s, perf %s" % (
        build, env.have_agent, env.have_collector, env.have_gperf, env.have_perf))
    res = {"machine": machine, "quick": args.quick, "started": started.isoformat(),
           "env": {"have_perf": env.have_perf, "perf_note": env.perf_note, "build": build}}
    sections = {"overhead": section_overhead, "accuracy": section_accuracy,
                "handler": section_handler, "wire": section_wire,
                "collector": section_collector}
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    try:
        for name in only:
            log("== %s" % name)
            try:
                sections[name](env, res)
            except Exception as ex:  # noqa: BLE001 - one section failing must not hide the rest
                import traceback
                traceback.print_exc()
                res.setdefault("errors", {})[name] = "%s: %s" % (type(ex).__name__, ex)
        res["load_end"] = open("/proc/loadavg").read().split()[:3]
        elapsed = time.monotonic() - t0
        res["elapsed"] = elapsed
        res["figures"] = {"values": FIG.values, "missing": FIG.missing(), "skipped": FIG.skipped()}
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
        md = render(env, res, machine, args, started, elapsed)
        with open(args.output, "w") as f:
            f.write(md)
        log("wrote %s and %s (%.0f s)" % (args.output, args.json, elapsed))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    miss = FIG.missing()
    for k, w in miss:
        log("figure NOT PRODUCED: %s (%s)" % (w, k))
    for name, e in res.get("errors", {}).items():
        log("section %s raised: %s" % (name, e))
    return 1 if miss or res.get("errors") else 0


def rerender(args):
    """Writes the report again from a results JSON (same numbers, current layout)."""
    import types
    with open(args.render_from) as f:
        res = json.load(f)
    figs = res.get("figures", {})
    FIG.values.update(figs.get("values", {}))
    for k, w, why in figs.get("skipped", []):
        FIG.expect(k, w)
        FIG.note(k, why)
    for k, w in figs.get("missing", []):
        FIG.expect(k, w)
    h = res.get("handler") or {}
    if h.get("parsed"):
        h["parsed"] = {int(k): v for k, v in h["parsed"].items()}
    e = res.get("env") or {}
    ov = res.get("overhead") or {}
    env = types.SimpleNamespace(
        quick=res.get("quick", False),
        build=e.get("build") or os.path.abspath(args.build_dir),
        have_perf=e.get("have_perf", "perf" in ov.get("configs", [])),
        perf_note=e.get("perf_note"))
    if "started" in res:
        started = datetime.datetime.fromisoformat(res["started"])
    else:
        started = datetime.datetime.utcfromtimestamp(os.path.getmtime(args.render_from))
    args.json = os.path.abspath(args.render_from)
    if not args.output:
        args.output = os.path.join(ROOT, "BENCHMARKS.md")
    md = render(env, res, res["machine"], args, started, res.get("elapsed", 0))
    with open(args.output, "w") as f:
        f.write(md)
    log("re-rendered %s from %s" % (args.output, args.render_from))
    return 0


if __name__ == "__main__":
    sys.exit(main())
