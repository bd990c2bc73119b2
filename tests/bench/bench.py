#!/usr/bin/env python3
"""stackstream benchmarks: process start, CPU overhead, fork(), PostgreSQL
under pgbench -C, memory / agent CPU per sample / wire cost, accuracy,
handler cost, collector ingest/query. Called by tests/bench/run.sh; writes
BENCHMARKS.md.

    bench.py [--quick] [--build-dir DIR] [--output FILE] [--only SECTION,...]

The profiler runs in two processes: libstackstream.so in the host (capture
only: clocks, signal handler, shared-memory rings, one thread "ss-capture")
and stackstream-agent (unwind, symbolize, send). The agent process is not a
child of the host, so its CPU is not in the host's rusage: every section that
runs stackstream starts its own node daemon (`stackstream-agent --listen
unix:TMP/agent.sock`, hosts pointed at it with STACKSTREAM_AGENT_SOCKET) and
reads that process's CPU clock before and after each host run. The process
start section also measures the default without a daemon (the private helper
the first profiled process starts), reaped by this script as a child
subreaper so its whole CPU time is known.

Every measured figure is recorded with the goal it is compared against. In
--quick mode every section runs briefly and the exit status says only whether
every figure was produced (1 if one was not); a missed goal never fails the run.
Python 3 standard library only, plus tests/lib (pprof.py, stackstream_test.py).
"""
import argparse
import ctypes
import datetime
import glob
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import bench_md  # noqa: E402

LIBPROFILER = "/usr/lib/x86_64-linux-gnu/libprofiler.so"
HZ = 100
PERF_HZ = 99
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Put in the environment of everything the benchmark starts (an ordinary
# variable: the capture library passes it on to a helper it spawns), so that
# stackstream-agent helpers of our own process trees can be told apart.
TAG_VAR = "SS_BENCH_TAG"
TAG = uuid.uuid4().hex[:16]
AGENT_COMM = "stackstream-age"  # /proc/PID/comm is cut at 15 characters

# What each configuration is, for the report (full name once, short in tables).
NAMES = {
    "none": "no profiler",
    "stackstream": "libstackstream.so preloaded into the host, its samples handed to "
                   "a stackstream-agent node daemon (`stackstream-agent --listen unix:PATH`, "
                   "hosts pointed at it with STACKSTREAM_AGENT_SOCKET)",
    "stackstream-helper": "the same without a daemon: the first profiled process starts a "
                          "private helper (`stackstream-agent --helper`) that serves its whole "
                          "process tree and exits after the last host",
    "disabled": "libstackstream.so preloaded with STACKSTREAM_DISABLE=1 (loaded, does nothing)",
    "gperftools": "gperftools CPU profiler (libprofiler.so preloaded, CPUPROFILE=FILE, "
                  "CPUPROFILE_FREQUENCY=100)",
    "perf": "Linux perf (`perf record -e cpu-clock -F 99 -g`), the workload run under it",
}
SHORT = {"none": "none", "stackstream": "stackstream", "stackstream-helper": "stackstream (helper)",
         "disabled": "stackstream, STACKSTREAM_DISABLE=1", "gperftools": "gperftools",
         "perf": "perf record",
         "stackstream-perf": "stackstream, perf clock", "stackstream-timer": "stackstream, timer clock"}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Figures: every number the report must contain, with its goal.
# ---------------------------------------------------------------------------
class Figures:
    """Registry of expected figures. A figure that was never set (or set to
    None) is 'not produced'; the quick mode fails on those only. A figure
    with a note (e.g. "skipped: pgbench is not installed") is reported as
    skipped, not as missing."""

    def __init__(self):
        self.expected = []   # (key, description)
        self.values = {}
        self.notes = {}
        self.reasons = {}

    def expect(self, key, what):
        if key not in [k for k, _ in self.expected]:
            self.expected.append((key, what))

    def set(self, key, value):
        self.values[key] = value

    def note(self, key, text):
        """The figure was skipped for a reason that is not a failure (a tool
        that is not installed): reported, does not fail the quick mode."""
        self.notes[key] = text

    def why(self, key, text):
        """Why a figure could not be produced (it still counts as missing)."""
        self.reasons[key] = text

    def why_unset(self, prefix, text):
        """A reason for every expected figure under "prefix" not produced yet."""
        for k, _ in self.expected:
            if k.startswith(prefix) and k not in self.reasons and k not in self.notes:
                self.reasons[k] = text

    def missing(self):
        return [(k, w) for k, w in self.expected
                if self.values.get(k) is None and k not in self.notes]

    def skipped(self):
        return [(k, w, self.notes[k]) for k, w in self.expected
                if self.values.get(k) is None and k in self.notes]


FIG = Figures()


# ---------------------------------------------------------------------------
# Running a child and measuring it with wait4; reading other processes.
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
        self.pid = None

    @property
    def cpu(self):
        return self.utime + self.stime

    @property
    def ok(self):
        return self.status == 0 and not self.timed_out


def clean_env():
    """os.environ without profiler settings, plus our tag."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("STACKSTREAM_") or k in ("LD_PRELOAD", "CPUPROFILE", "CPUPROFILE_FREQUENCY"):
            del env[k]
    env[TAG_VAR] = TAG
    return env


def run_measured(argv, env_extra=None, timeout=600, on_start=None):
    """Runs argv with os.posix_spawn and reaps it with os.wait4, so the CPU
    time (user+sys) and max RSS are exactly the child's (and its waited-for
    descendants', e.g. perf's workload or a shell's commands). on_start(pid)
    runs in a thread."""
    env = clean_env()
    for k, v in (env_extra or {}).items():
        env[k] = v
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    r = Run()
    fa = [(os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
    exe = argv[0] if os.path.sep in argv[0] else shutil.which(argv[0])
    t0 = time.monotonic()
    pid = os.posix_spawn(exe, argv, env, file_actions=fa)
    r.pid = pid
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
    """CPU time (user+sys, all threads, dead ones included) of a live
    process, in ns resolution: the kernel's per-process CPU clock
    (clock_getcpuclockid), read from outside. None if the process is gone."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | 2) / 1e9
    except OSError:
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


def proc_status(pid):
    """The kB fields of /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile,
    RssShmem, ...) and Threads, as ints; {} if the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if parts and parts[0].isdigit() and (len(parts) == 1 or parts[1] == "kB"):
                    out[k] = int(parts[0])
    except OSError:
        pass
    return out


def proc_pss_kb(pid):
    """Pss (and its anon/file/shmem parts) from /proc/PID/smaps_rollup: the
    process's RSS with every shared page divided among the processes that map
    it (the rings are mapped by the host and the agent)."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.startswith("Pss") or k == "Rss":
                    out[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def proc_stat_fields(pid):
    """(comm, state, ppid) of a process (zombies too), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, rest[0], int(rest[1])


def machine_busy_seconds():
    """Busy CPU time of the whole machine so far (user+nice+system+irq+softirq
    over all CPUs, /proc/stat; clock-tick resolution)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK


def set_child_subreaper(on):
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants (a helper started
    by a double fork) become our children, so wait4 gives their CPU time."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(36, 1 if on else 0, 0, 0, 0) == 0


def reap_helpers(timeout):
    """Waits for the stackstream-agent processes that became our children
    (through the subreaper) to exit and reaps them. Returns (CPU seconds of
    those reaped, their pids, pids that had to be killed after timeout)."""
    me = os.getpid()
    cpu = 0.0
    reaped, killed = [], []
    deadline = time.monotonic() + timeout
    while True:
        kids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            st = proc_stat_fields(int(p))
            if st and st[2] == me and st[0] == AGENT_COMM and int(p) not in AgentDaemon.PIDS:
                kids.append(int(p))
        if not kids:
            break
        for pid in kids:
            try:
                wpid, _, ru = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if wpid == pid:
                cpu += ru.ru_utime + ru.ru_stime
                reaped.append(pid)
        if time.monotonic() > deadline:
            for pid in kids:
                if pid not in reaped:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        _, _, ru = os.wait4(pid, 0)
                        cpu += ru.ru_utime + ru.ru_stime
                        killed.append(pid)
                    except OSError:
                        pass
            break
        time.sleep(0.02)
    return cpu, reaped, killed


def our_helpers():
    """Live stackstream-agent --helper processes started for this benchmark's
    process trees (they carry our tag in their environment)."""
    out = []
    needle = ("%s=%s" % (TAG_VAR, TAG)).encode()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().split(b"\0")
            if not cmd or os.path.basename(cmd[0]) != b"stackstream-agent" or \
                    b"--helper" not in cmd:
                continue
            with open("/proc/%s/environ" % p, "rb") as f:
                if needle in f.read().split(b"\0"):
                    out.append(int(p))
        except OSError:
            pass
    return out


def http_get(url, timeout=30):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return None, str(e).encode()


def collector_samples(collector):
    """stackstream_samples_ingested_total of a collector (None if unreadable)."""
    st, body = http_get(collector.http_url + "/metrics")
    if st != 200:
        return None
    v, _ = metric(parse_metrics(body.decode("utf-8", "replace")),
                  "stackstream_samples_ingested_total", contains=("samples", "ingested"))
    return v


class AgentDaemon:
    """A stackstream-agent node daemon owned by the benchmark:
    `stackstream-agent --listen unix:DIR/agent.sock [--collector ADDR]`, in a
    fresh directory (mode 0755, so hosts of other users reach the socket).
    Hosts find it through STACKSTREAM_AGENT_SOCKET=self.sock. cpu() reads its
    process CPU clock; settle() waits until it has finished the hosts that
    left (final summary sent)."""

    GOODBYE = re.compile(r"\]: (said goodbye|gone) \((\d+) samples\)")
    PIDS = set()  # our daemons (children too, but not helpers to reap)

    def __init__(self, binary, collector_addr=None):
        self.binary = binary
        self.collector_addr = collector_addr
        self.dir = tempfile.mkdtemp(prefix="ss-bench-agentd-")
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "agent.sock")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.proc = None
        self.idle_cpu_per_s = None
        self.idle_status = {}
        self.idle_pss = {}
        self._log_off = 0
        self._goodbyes = 0
        self._goodbye_samples = 0

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=30):
        argv = [self.binary, "--listen", "unix:" + self.sock, "--log-level", "info",
                "--log-file", self.log_path]
        if self.collector_addr:
            argv += ["--collector", self.collector_addr]
        self.argv = argv
        env = clean_env()
        self._stderr = open(os.path.join(self.dir, "agent.stderr"), "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr, cwd=self.dir)
        AgentDaemon.PIDS.add(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("stackstream-agent exited %s: %s" % (
                    self.proc.returncode, self.read_log()[-2000:]))
            if "serving" in self.read_log():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("stackstream-agent did not start serving: " +
                               self.read_log()[-2000:])
        # Idle cost (it polls its sessions every 20 ms) and memory before any host.
        c0 = self.cpu()
        time.sleep(1.0)
        self.idle_cpu_per_s = (self.cpu() - c0) / 1.0
        self.idle_status = proc_status(self.pid)
        self.idle_pss = proc_pss_kb(self.pid)
        return self

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def cpu(self):
        """Its CPU seconds so far; raises if the daemon is gone (a figure
        without the agent's CPU would be wrong, not just missing)."""
        v = proc_cpu_seconds(self.pid) if self.proc.poll() is None else None
        if v is None:
            raise RuntimeError("the stackstream-agent daemon exited (status %s); its log ends: %s"
                               % (self.proc.poll(), self.read_log()[-1500:]))
        return v

    def goodbyes(self):
        """(sessions ended so far, samples they had) from the daemon's log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_off)
                chunk = f.read()
        except OSError:
            return self._goodbyes, self._goodbye_samples
        cut = chunk.rfind(b"\n") + 1
        self._log_off += cut
        for m in self.GOODBYE.finditer(chunk[:cut].decode("utf-8", "replace")):
            self._goodbyes += 1
            self._goodbye_samples += int(m.group(2))
        return self._goodbyes, self._goodbye_samples

    def settle(self, hosts_since=None, hosts=0, timeout=15.0):
        """Returns once the daemon is quiet: (if "hosts" > 0) that many more
        sessions ended than "hosts_since", then its CPU clock advanced no
        more than idle for 3 × 100 ms in a row (the final summaries are sent
        and acknowledged on threads that run after a session ends)."""
        deadline = time.monotonic() + timeout
        if hosts:
            while self.goodbyes()[0] < (hosts_since or 0) + hosts and \
                    time.monotonic() < deadline:
                time.sleep(0.02)
        quiet = 0
        last = self.cpu()
        limit = max(0.0005, 3 * (self.idle_cpu_per_s or 0) * 0.1)
        while time.monotonic() < deadline and last is not None:
            time.sleep(0.1)
            now = self.cpu()
            if now is None:
                break
            quiet = quiet + 1 if now - last <= limit else 0
            last = now
            if quiet >= 3:
                return True
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            self._stderr.close()
        except AttributeError:
            pass

    def cleanup(self, keep_log=None):
        """Stops the daemon, keeps its log (as "keep_log") and returns what
        the report says about it."""
        died = self.proc.poll() if self.proc else None
        info = {"argv": getattr(self, "argv", None), "idle_cpu_per_s": self.idle_cpu_per_s,
                "sessions_ended": self.goodbyes()[0] if self.proc else 0,
                "exited_early": died}
        self.stop()
        info["exit_status"] = self.proc.returncode if self.proc else None
        log_text = self.read_log()
        info["warnings"] = [l for l in log_text.splitlines()
                            if "[warning]" in l or "[error]" in l][:20]
        if keep_log:
            try:
                os.makedirs(os.path.dirname(keep_log), exist_ok=True)
                shutil.copyfile(self.log_path, keep_log)
                info["log"] = keep_log
            except OSError:
                pass
        AgentDaemon.PIDS.discard(self.pid)
        shutil.rmtree(self.dir, ignore_errors=True)
        return info


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


class CountingProxy:
    """A loopback TCP proxy that counts the bytes each way: put between the
    agent and the collector, it measures what really crosses the wire (gRPC
    over HTTP/2, gzip-compressed messages, framing and headers included)."""

    def __init__(self, target_port):
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


def med(xs):
    xs = [x for x in xs if x is not None]
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


def rotate(xs, k):
    k %= len(xs)
    return xs[k:] + xs[:k]


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
        self.agent_bin = os.path.join(build, "bin", "stackstream-agent")
        self.collector_bin = st.COLLECTOR
        self.cpu_work = os.path.join(build, "tests", "bench", "bench_cpu_work")
        self.accuracy = os.path.join(build, "tests", "bench", "bench_accuracy")
        self.fork_loop = os.path.join(build, "tests", "bench", "bench_fork_loop")
        self.have_lib = os.path.exists(self.agent)
        self.have_agent_bin = os.path.exists(self.agent_bin)
        self.have_agent = self.have_lib and self.have_agent_bin
        self.have_collector = os.path.exists(self.collector_bin)
        self.have_gperf = os.path.exists(LIBPROFILER)
        self.perf_note = None
        self.have_perf = self._probe_perf()
        self.go = shutil.which("go")
        self.no_daemon_sock = os.path.join(work, "no-daemon.sock")  # nobody listens here

    def log_path(self, name):
        """Where a section keeps a log: BUILD/bench/logs[-quick]/NAME."""
        return os.path.join(self.build, "bench", "logs-quick" if self.quick else "logs", name)

    def agent_missing(self):
        miss = [p for p, ok in ((self.agent, self.have_lib), (self.agent_bin, self.have_agent_bin),
                                (self.collector_bin, self.have_collector)) if not ok]
        return "not built: " + ", ".join(os.path.relpath(p, self.build) for p in miss)

    def _probe_perf(self):
        if not shutil.which("perf"):
            self.perf_note = "perf is not installed"
            return False
        data = os.path.join(self.work, "probe.perf")
        try:
            r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ),
                                "-g", "-o", data, "--", "sh", "-c",
                                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.perf_note = "perf record failed: %s" % e
            return False
        if r.returncode != 0 or not os.path.exists(data):
            self.perf_note = "perf record failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
            return False
        return True

    def start_daemon(self, collector_addr=None):
        return AgentDaemon(self.agent_bin, collector_addr).start()

    def agent_env(self, collector_addr=None, service="bench", output=None, clock=None,
                  socket_path=None, extra=None):
        """The host's environment for stackstream. socket_path: the daemon's
        socket (None: a path nobody serves, so the host starts a helper)."""
        e = {"LD_PRELOAD": self.agent, "STACKSTREAM_HZ": str(HZ), "STACKSTREAM_SERVICE": service,
             "STACKSTREAM_LOG": "warn",
             "STACKSTREAM_AGENT_SOCKET": socket_path or self.no_daemon_sock}
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
        return ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ), "-g", "-o", data,
                "--"] + argv


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
    pg = newest_pg_bindir()
    if pg:
        try:
            d["postgres"] = subprocess.run([os.path.join(pg, "postgres"), "--version"],
                                           capture_output=True, text=True,
                                           timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            d["postgres"] = None
    try:
        d["git"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            d["git"] += " (with uncommitted changes)"
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


def newest_pg_bindir():
    """The newest /usr/lib/postgresql/N/bin that has postgres, or None."""
    dirs = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    if not dirs:
        return None
    dirs.sort(key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(dirs[-1])


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
# 1. Process start: 200 × /bin/true from a shell
# ---------------------------------------------------------------------------
START_N = 200
START_SCRIPT = "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done"
START_CFGS = ["stackstream", "stackstream-helper", "disabled", "gperftools"]


def section_startup(env, res):
    """Extra CPU per process start: a shell runs /bin/true N times; the
    configuration is set on the shell, so the shell and every /bin/true are
    profiled (each connects to the agent and says goodbye). CPU = the shell's
    wait4 rusage (it waits for every /bin/true) + the agent process's CPU
    over the run (daemon: its CPU clock until it is quiet; helper: reaped as
    our child). Also the machine's busy time (/proc/stat) over the run."""
    for c in START_CFGS:
        FIG.expect("startup.%s" % c, "extra CPU per process start, %s" % SHORT[c])
    cfgs = ["none"]
    if env.have_agent and env.have_collector:
        cfgs += ["stackstream", "stackstream-helper"]
    else:
        for c in ("stackstream", "stackstream-helper"):
            FIG.why("startup.%s" % c, env.agent_missing())
    if env.have_lib:
        cfgs.append("disabled")
    else:
        FIG.why("startup.disabled", env.agent_missing())
    if env.have_gperf:
        cfgs.append("gperftools")
    else:
        FIG.note("startup.gperftools", "skipped: %s not installed" % LIBPROFILER)
    reps = 2 if env.quick else 7
    n = START_N
    out = res["startup"] = {"n": n, "reps": reps, "configs": cfgs, "runs": [],
                            "argv": ["/bin/sh", "-c", START_SCRIPT % n]}
    collector = daemon = None
    if "stackstream" in cfgs:
        collector = env.st.Collector().start()
        daemon = env.start_daemon(collector.grpc_addr)
        out["daemon_idle_cpu_per_s"] = daemon.idle_cpu_per_s
    gp_prefix = os.path.join(env.work, "start.prof")
    try:
        for rep in range(-1, reps):  # round -1: warm-up (page cache, daemon caches), not counted
            for c in rotate(cfgs, rep):
                e = {}
                if c == "stackstream":
                    e = env.agent_env(collector.grpc_addr, service="bench-start",
                                      socket_path=daemon.sock)
                elif c == "stackstream-helper":
                    e = env.agent_env(collector.grpc_addr, service="bench-start-helper")
                elif c == "disabled":
                    e = {"LD_PRELOAD": env.agent, "STACKSTREAM_DISABLE": "1"}
                elif c == "gperftools":
                    # gperftools names the first process's file CPUPROFILE and
                    # its exec'd descendants' CPUPROFILE_PID.
                    e = env.gperf_env(gp_prefix)
                rec = {"rep": rep, "config": c, "agent_cpu": 0.0}
                if c == "stackstream-helper":
                    set_child_subreaper(True)
                m0 = machine_busy_seconds()
                a0 = daemon.cpu() if c == "stackstream" else None
                g0 = daemon.goodbyes()[0] if c == "stackstream" else None
                r = run_measured(out["argv"], e, timeout=300)
                if c == "stackstream":
                    # every process (the shell + n × /bin/true) ends a session
                    rec["settled"] = daemon.settle(g0, n + 1, timeout=20)
                    rec["agent_cpu"] = daemon.cpu() - a0
                    rec["sessions"] = daemon.goodbyes()[0] - g0
                elif c == "stackstream-helper":
                    cpu, reaped, killed = reap_helpers(timeout=20)
                    set_child_subreaper(False)
                    rec.update(agent_cpu=cpu, helpers=len(reaped), helpers_killed=len(killed))
                rec["machine_cpu"] = machine_busy_seconds() - m0
                rec.update(status=r.status, shell_cpu=r.cpu, wall=r.wall)
                rec["total_cpu"] = r.cpu + rec["agent_cpu"]
                if c == "gperftools":
                    rec["profiles_written"] = len(glob.glob(gp_prefix + "*"))
                    for p in glob.glob(gp_prefix + "*"):
                        os.unlink(p)
                if rep >= 0:
                    out["runs"].append(rec)
                log("startup rep %d %-18s shell %.3f s + agent %.3f s, machine %.2f s, wall "
                    "%.2f s%s" % (rep, c, r.cpu, rec["agent_cpu"], rec["machine_cpu"], r.wall,
                                  "" if r.ok else " FAILED %s %s" % (r.status, r.stderr[-300:])))
    finally:
        set_child_subreaper(False)
        if daemon:
            out["daemon"] = daemon.cleanup(env.log_path("startup-agent.log"))
        if collector:
            collector.stop()
            shutil.rmtree(collector.dir, ignore_errors=True)
    out["summary"] = summary = {}
    base = {x["rep"]: x for x in out["runs"] if x["config"] == "none" and x["status"] == 0}
    for c in cfgs:
        runs = [x for x in out["runs"] if x["config"] == c and x["status"] == 0
                and x["rep"] in base]
        s = {"n": len(runs), "total_cpu_med": med([x["total_cpu"] for x in runs]),
             "shell_cpu_med": med([x["shell_cpu"] for x in runs]),
             "agent_cpu_med": med([x["agent_cpu"] for x in runs]),
             "machine_cpu_med": med([x["machine_cpu"] for x in runs]),
             "wall_med": med([x["wall"] for x in runs])}
        if c != "none":
            per = [1000.0 * (x["total_cpu"] - base[x["rep"]]["total_cpu"]) / n for x in runs]
            host = [1000.0 * (x["shell_cpu"] - base[x["rep"]]["shell_cpu"]) / n for x in runs]
            mach = [1000.0 * (x["machine_cpu"] - base[x["rep"]]["machine_cpu"]) / n
                    for x in runs]
            s.update({"ms": med(per), "ms_min": min(per) if per else None,
                      "ms_max": max(per) if per else None, "host_ms": med(host),
                      "agent_ms": med([1000.0 * x["agent_cpu"] / n for x in runs]),
                      "machine_ms": med(mach)})
            FIG.set("startup.%s" % c, s["ms"])
        summary[c] = s


# ---------------------------------------------------------------------------
# 2. CPU overhead: 2 threads of fixed work at 100 Hz, paired runs
# ---------------------------------------------------------------------------
OVH_THREADS = 2


def section_overhead(env, res):
    for k, w in (("overhead.host", "CPU overhead, host process"),
                 ("overhead.host_agent", "CPU overhead, host + agent process"),
                 ("overhead.gperftools", "CPU overhead, gperftools"),
                 ("overhead.perf", "CPU overhead, perf record"),
                 ("agent.cpu_per_sample_runs", "agent process CPU per sample (overhead runs)")):
        FIG.expect(k, w)
    cfgs = ["none"]
    if env.have_agent and env.have_collector:
        cfgs.append("stackstream")
    else:
        for k in ("overhead.host", "overhead.host_agent", "agent.cpu_per_sample_runs"):
            FIG.why(k, env.agent_missing())
    if env.have_gperf:
        cfgs.append("gperftools")
    else:
        FIG.note("overhead.gperftools", "skipped: %s not installed" % LIBPROFILER)
    if env.have_perf:
        cfgs.append("perf")
    else:
        FIG.note("overhead.perf", "skipped: " + (env.perf_note or "perf unavailable"))
    if not os.path.exists(env.cpu_work):
        log("overhead: %s missing" % env.cpu_work)
        FIG.why_unset("overhead.", "bench_cpu_work not built")
        return
    mega = 150 if env.quick else 1500
    reps = 3 if env.quick else 20
    t = OVH_THREADS
    out = res["overhead"] = {"threads": t, "mega_iters": mega, "reps": reps, "configs": cfgs,
                             "runs": [], "collector_cpu_s": None}
    collector = daemon = None
    if "stackstream" in cfgs:
        collector = env.st.Collector().start()
        daemon = env.start_daemon(collector.grpc_addr)
        out["daemon_idle_cpu_per_s"] = daemon.idle_cpu_per_s
    coll_cpu0 = proc_cpu_seconds(collector.proc.pid) if collector else None
    ss_runs = 0
    try:
        for rep in range(-1, reps):  # round -1: warm-up, not counted
            for c in rotate(cfgs, rep):
                argv = [env.cpu_work, str(t), str(mega)]
                e = {}
                data = os.path.join(env.work, "ovh.%s" % c)
                rec = {"rep": rep, "config": c}
                watch = None
                if c == "stackstream":
                    e = env.agent_env(collector.grpc_addr, service="bench-overhead",
                                      socket_path=daemon.sock)
                    ss_runs += 1
                    capture = {}

                    def watch(pid, capture=capture):
                        # the host's own capture thread, as late as possible
                        time.sleep(0.2)
                        while True:
                            th = thread_cpu(pid)
                            if not th:
                                return
                            v = [cpu for comm, cpu in th.values() if comm == "ss-capture"]
                            if v:
                                capture["cpu"] = sum(v)
                            time.sleep(0.25)
                    s0 = collector_samples(collector)
                    g0 = daemon.goodbyes()[0]
                    a0 = daemon.cpu()
                elif c == "gperftools":
                    e = env.gperf_env(data + ".prof")
                elif c == "perf":
                    argv = env.perf_argv(data + ".perf", argv)
                r = run_measured(argv, e, timeout=600, on_start=watch)
                rec.update(cpu=r.cpu, wall=r.wall, status=r.status)
                if c == "stackstream":
                    rec["settled"] = daemon.settle(g0, 1)
                    rec["agent_cpu"] = daemon.cpu() - a0
                    s1 = collector_samples(collector)
                    rec["samples"] = (s1 - s0) if None not in (s0, s1) else None
                    rec["capture_thread_cpu"] = capture.get("cpu")
                if rep >= 0:
                    out["runs"].append(rec)
                log("overhead rep %d %-11s cpu %.3f s%s wall %.3f s%s" % (
                    rep, c, r.cpu, " + agent %.4f s (%s samples)" % (
                        rec["agent_cpu"], rec["samples"]) if c == "stackstream" else "",
                    r.wall, "" if r.ok else " FAILED %s %s" % (r.status, r.stderr[-300:])))
    finally:
        if daemon:
            out["daemon"] = daemon.cleanup(env.log_path("overhead-agent.log"))
        if collector:
            coll_cpu1 = proc_cpu_seconds(collector.proc.pid)
            if coll_cpu0 is not None and coll_cpu1 is not None and ss_runs:
                out["collector_cpu_s"] = (coll_cpu1 - coll_cpu0) / ss_runs
            collector.stop()
            shutil.rmtree(collector.dir, ignore_errors=True)
    summary = out["summary"] = {}
    base = {x["rep"]: x for x in out["runs"] if x["config"] == "none" and x["status"] == 0}
    for c in cfgs:
        runs = [x for x in out["runs"] if x["config"] == c and x["status"] == 0
                and x["rep"] in base]
        s = {"n": len(runs), "cpu_med": med([x["cpu"] for x in runs]),
             "wall_med": med([x["wall"] for x in runs])}
        if c != "none":
            host = [x["cpu"] / base[x["rep"]]["cpu"] - 1 for x in runs]
            wall = [x["wall"] / base[x["rep"]]["wall"] - 1 for x in runs]
            s.update(over=med(host), over_min=min(host) if host else None,
                     over_max=max(host) if host else None, wall_over=med(wall))
            key = "overhead.host" if c == "stackstream" else "overhead.%s" % c
            FIG.set(key, s["over"])
        if c == "stackstream":
            both = [(x["cpu"] + x["agent_cpu"]) / base[x["rep"]]["cpu"] - 1 for x in runs]
            s.update(over_agent=med(both), over_agent_min=min(both) if both else None,
                     over_agent_max=max(both) if both else None,
                     agent_cpu_med=med([x["agent_cpu"] for x in runs]),
                     agent_share=med([x["agent_cpu"] / base[x["rep"]]["cpu"] for x in runs]),
                     samples_med=med([x["samples"] for x in runs]),
                     capture_cpu_med=med([x.get("capture_thread_cpu") for x in runs]))
            FIG.set("overhead.host_agent", s["over_agent"])
            tot_s = sum(x["samples"] or 0 for x in runs)
            if tot_s:
                s["agent_cpu_per_sample_us"] = 1e6 * sum(x["agent_cpu"] for x in runs) / tot_s
                FIG.set("agent.cpu_per_sample_runs", s["agent_cpu_per_sample_us"])
        summary[c] = s
    xs = [x["cpu"] for x in base.values()]
    if len(xs) > 1:
        out["noise_pct"] = 100 * (max(xs) - min(xs)) / med(xs)
        # spread of the paired ratio of two no-profiler runs is not measured;
        # the quartiles of the stackstream ratio say how well the median is known
        ss = [x["cpu"] / base[x["rep"]]["cpu"] - 1 for x in out["runs"]
              if x["config"] == "stackstream" and x["status"] == 0 and x["rep"] in base]
        if len(ss) >= 4:
            out["stackstream_iqr"] = [pct(ss, 25), pct(ss, 75)]


# ---------------------------------------------------------------------------
# 3. fork() + exit in a loop
# ---------------------------------------------------------------------------
def section_fork(env, res):
    modes = ["_exit", "exit"]
    for m in modes:
        FIG.expect("fork.%s" % m, "fork()+%s loop throughput, stackstream vs none" % m)
    FIG.expect("fork.gperftools", "fork()+_exit loop throughput, gperftools vs none")
    cfgs = ["none"]
    if env.have_agent and env.have_collector:
        cfgs.append("stackstream")
    else:
        for m in modes:
            FIG.why("fork.%s" % m, env.agent_missing())
    if env.have_gperf:
        cfgs.append("gperftools")
    else:
        FIG.note("fork.gperftools", "skipped: %s not installed" % LIBPROFILER)
    if not os.path.exists(env.fork_loop):
        log("fork: %s missing" % env.fork_loop)
        FIG.why_unset("fork.", "bench_fork_loop not built")
        return
    n = 1000 if env.quick else 5000
    reps = 2 if env.quick else 7
    out = res["fork"] = {"n": n, "reps": reps, "modes": modes, "configs": cfgs, "runs": []}
    collector = daemon = None
    if "stackstream" in cfgs:
        collector = env.st.Collector().start()
        daemon = env.start_daemon(collector.grpc_addr)
    try:
        for rep in range(-1, reps):
            for mode in modes:
                # gperftools in a child that exit()s writes the parent's whole
                # profile again (its destructor): only the _exit mode for it.
                mc = [c for c in cfgs if not (c == "gperftools" and mode == "exit")]
                for c in rotate(mc, rep):
                    e = {}
                    if c == "stackstream":
                        e = env.agent_env(collector.grpc_addr, service="bench-fork",
                                          socket_path=daemon.sock)
                        a0 = daemon.cpu()
                        g0 = daemon.goodbyes()[0]
                    elif c == "gperftools":
                        e = env.gperf_env(os.path.join(env.work, "fork.prof"))
                    r = run_measured([env.fork_loop, str(n), mode], e, timeout=600)
                    rec = {"rep": rep, "mode": mode, "config": c, "status": r.status,
                           "cpu": r.cpu, "wall": r.wall}
                    try:
                        j = json.loads(r.stdout.strip().splitlines()[-1])
                        rec["elapsed"] = j["elapsed_s"]
                        rec["us_per_fork"] = j["us_per_fork"]
                    except (ValueError, IndexError, KeyError):
                        rec["elapsed"] = None
                    if c == "stackstream":
                        daemon.settle()
                        rec["agent_cpu"] = daemon.cpu() - a0
                        rec["sessions"] = daemon.goodbyes()[0] - g0
                    if rep >= 0:
                        out["runs"].append(rec)
                    log("fork rep %d %-5s %-11s %s µs/fork, cpu %.3f s%s%s" % (
                        rep, mode, c, fmt(rec.get("us_per_fork"), "%.1f"), r.cpu,
                        " + agent %.3f s, %d sessions" % (rec["agent_cpu"], rec["sessions"])
                        if c == "stackstream" else "",
                        "" if r.ok else " FAILED %s %s" % (r.status, r.stderr[-300:])))
    finally:
        if daemon:
            out["daemon"] = daemon.cleanup(env.log_path("fork-agent.log"))
        if collector:
            collector.stop()
            shutil.rmtree(collector.dir, ignore_errors=True)
    summary = out["summary"] = {}
    for mode in modes:
        base = {x["rep"]: x for x in out["runs"] if x["mode"] == mode and x["config"] == "none"
                and x["status"] == 0 and x.get("elapsed")}
        for c in cfgs:
            runs = [x for x in out["runs"] if x["mode"] == mode and x["config"] == c
                    and x["status"] == 0 and x.get("elapsed") and x["rep"] in base]
            if not runs:
                continue
            s = {"n": len(runs), "us_med": med([x["us_per_fork"] for x in runs]),
                 "cpu_med": med([x["cpu"] for x in runs])}
            if c != "none":
                ratio = [base[x["rep"]]["elapsed"] / x["elapsed"] for x in runs]
                s.update(ratio=med(ratio), ratio_min=min(ratio), ratio_max=max(ratio))
                if c == "stackstream":
                    s["agent_cpu_med"] = med([x["agent_cpu"] for x in runs])
                    s["sessions_med"] = med([x["sessions"] for x in runs])
                    FIG.set("fork.%s" % mode, s["ratio"])
                elif c == "gperftools" and mode == "_exit":
                    FIG.set("fork.gperftools", s["ratio"])
            summary["%s.%s" % (mode, c)] = s


# ---------------------------------------------------------------------------
# 4. PostgreSQL under pgbench -C
# ---------------------------------------------------------------------------
PG_USER = "postgres"
PG_CRASH = [r"terminated by signal", r"was terminated", r"exited with exit code [1-9]",
            r"database system was interrupted", r"crash recovery", r"\bPANIC\b"]


def dev_null_broken():
    """A reason if /dev/null is not the null device (a root process that
    renamed a file over it), else None: every shell redirect to it fails then."""
    import stat
    try:
        st = os.stat("/dev/null")
    except OSError as e:
        return "/dev/null: %s" % e
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != 1 or os.minor(st.st_rdev) != 3:
        return ("/dev/null is not the null device (mode %o): something running as root replaced "
                "it, e.g. a file renamed over it; restore it with "
                "`rm /dev/null && mknod -m 666 /dev/null c 1 3`" % st.st_mode)
    return None


def pg_unavailable():
    bindir = newest_pg_bindir()
    if bindir is None:
        return None, "PostgreSQL is not installed (no /usr/lib/postgresql/N/bin/postgres)"
    for x in ("postgres", "initdb", "pg_ctl", "pgbench", "pg_isready"):
        if not os.path.exists(os.path.join(bindir, x)):
            return None, "%s is not installed (%s)" % (x, bindir)
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return None, "no user %s (created by the postgresql package)" % PG_USER
    return bindir, None


class PgCluster:
    """A private PostgreSQL cluster in a temp dir, run as the postgres user
    (PostgreSQL refuses root) on a free loopback port."""

    def __init__(self, bindir):
        self.bin = bindir
        self.dir = tempfile.mkdtemp(prefix="ss-bench-pg-")
        os.chmod(self.dir, 0o755)
        pw = pwd.getpwnam(PG_USER)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = self._free_port()
        self.proc = None
        self.log = None

    @staticmethod
    def _free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def as_pg(self, argv, env=None, timeout=120):
        return subprocess.run(argv, env=env or clean_env(), user=PG_USER, group=PG_USER,
                              cwd=self.dir, capture_output=True, timeout=timeout)

    def initdb(self):
        r = self.as_pg([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", PG_USER,
                        "--auth=trust", "-E", "UTF8", "--no-sync"])
        if r.returncode != 0:
            raise RuntimeError("initdb failed: " + r.stderr.decode("utf-8", "replace")[-1500:])

    def client_env(self):
        e = clean_env()
        e.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=PG_USER,
                 PGDATABASE="postgres")
        return e

    def start(self, env, name, timeout=60):
        """The postmaster in the foreground (own session); env is its whole
        environment (LD_PRELOAD set there profiles it and every backend)."""
        self.log = os.path.join(self.dir, name + ".log")
        with open(self.log, "wb") as lf:
            self.proc = subprocess.Popen(
                [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + self.dir,
                 "-c", "fsync=off", "-c", "logging_collector=off", "-c", "max_connections=50"],
                env=env, user=PG_USER, group=PG_USER, cwd=self.dir, stdout=lf,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port)], env=clean_env(), capture_output=True,
                               timeout=10)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not start (%s): %s" % (name, self.read_log()[-1500:]))

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def stop(self):
        """pg_ctl stop -m fast; returns seconds it took (None: failed)."""
        if not self.proc:
            return None
        t0 = time.monotonic()
        ok = False
        try:
            r = self.as_pg([os.path.join(self.bin, "pg_ctl"), "stop", "-D", self.data, "-m",
                            "fast", "-w", "-t", "30"], timeout=40)
            ok = r.returncode == 0
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            ok = False
        took = time.monotonic() - t0
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        self.proc = None
        return took if ok else None

    def pgbench(self, args, timeout):
        return subprocess.run([os.path.join(self.bin, "pgbench")] + args, env=self.client_env(),
                              capture_output=True, timeout=timeout)

    def cleanup(self):
        if self.proc:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def section_pgbench(env, res):
    FIG.expect("pgbench.ratio", "pgbench -C tps, stackstream vs none")
    bindir, why = pg_unavailable()
    if not why and not (env.have_agent and env.have_collector):
        res["pgbench"] = {"error": env.agent_missing()}
        FIG.why("pgbench.ratio", env.agent_missing())
        return
    if why:
        res["pgbench"] = {"skipped": why}
        FIG.note("pgbench.ratio", "skipped: " + why)
        log("pgbench: skipped: " + why)
        return
    broken = dev_null_broken()
    if broken:  # initdb and pg_ctl redirect to /dev/null: they would fail
        res["pgbench"] = {"error": broken}
        FIG.why("pgbench.ratio", broken)
        log("pgbench: " + broken)
        return
    reps = 1 if env.quick else 5
    secs = 3 if env.quick else 10
    clients = 4
    args = ["-C", "-c", str(clients), "-S", "-T", str(secs)]
    out = res["pgbench"] = {"reps": reps, "seconds": secs, "args": args, "runs": [],
                            "bindir": bindir}
    pg = PgCluster(bindir)
    collector = daemon = None
    try:
        pg.initdb()
        pg.start(clean_env(), "init")
        r = pg.pgbench(["-i", "-s", "1", "-q"], timeout=300)
        pg.stop()
        if r.returncode != 0:
            raise RuntimeError("pgbench -i failed: " + r.stderr.decode("utf-8", "replace")[-1500:])
        collector = env.st.Collector().start()
        daemon = env.start_daemon(collector.grpc_addr)
        lib = env.agent
        if subprocess.run(["test", "-r", lib], user=PG_USER, timeout=30).returncode != 0:
            # the build tree is not readable by the postgres user: a copy it can read
            lib = os.path.join(pg.dir, "libstackstream.so")
            shutil.copyfile(env.agent, lib)
            os.chmod(lib, 0o755)
            out["library_copied"] = lib
        for rep in range(reps):
            for c in rotate(["none", "stackstream"], rep):
                if c == "stackstream":
                    e = clean_env()
                    e.update(env.agent_env(collector.grpc_addr, service="bench-postgres",
                                           socket_path=daemon.sock))
                    e["LD_PRELOAD"] = lib
                else:
                    e = clean_env()
                pg.start(e, "%s.%d" % (c, rep))
                a0 = daemon.cpu()
                g0 = daemon.goodbyes()[0]
                r = pg.pgbench(args, timeout=secs + 120)
                a1 = daemon.cpu()
                text = r.stdout.decode("utf-8", "replace")
                m = re.search(r"^tps = ([0-9.]+)", text, re.M)
                mt = re.search(r"number of transactions actually processed: (\d+)", text)
                mf = re.search(r"number of failed transactions: (\d+)", text)
                stop_s = pg.stop()
                logtext = pg.read_log()
                # (PostgreSQL 15 logs its logical replication launcher's exit
                # code 1 at every fast shutdown: not a crash)
                crashes = [l for l in logtext.splitlines()
                           if any(re.search(p, l) for p in PG_CRASH)
                           and "logical replication launcher" not in l]
                rec = {"rep": rep, "config": c, "status": r.returncode,
                       "tps": float(m.group(1)) if m else None,
                       "transactions": int(mt.group(1)) if mt else None,
                       "failed": int(mf.group(1)) if mf else None,
                       "stop_s": stop_s, "crash_lines": crashes[:5],
                       "stderr": r.stderr.decode("utf-8", "replace")[-500:]}
                if c == "stackstream":
                    daemon.settle(timeout=30)
                    rec["agent_cpu_during"] = a1 - a0
                    rec["agent_cpu"] = daemon.cpu() - a0
                    rec["sessions"] = daemon.goodbyes()[0] - g0
                out["runs"].append(rec)
                log("pgbench rep %d %-11s tps %s, pg_ctl stop %s s%s%s" % (
                    rep, c, fmt(rec["tps"], "%.1f"), fmt(stop_s, "%.1f"),
                    " agent %.2f s CPU, %d sessions" % (rec["agent_cpu"], rec["sessions"])
                    if c == "stackstream" else "",
                    " CRASH: %s" % crashes[:2] if crashes else ""))
    except Exception as ex:  # noqa: BLE001 - reported as a figure not produced
        out["error"] = "%s: %s" % (type(ex).__name__, ex)
        log("pgbench: " + out["error"])
    finally:
        pg.cleanup()
        if daemon:
            out["daemon"] = daemon.cleanup(env.log_path("pgbench-agent.log"))
        if collector:
            collector.stop()
            shutil.rmtree(collector.dir, ignore_errors=True)
    base = {x["rep"]: x for x in out["runs"] if x["config"] == "none" and x["tps"]}
    runs = [x for x in out["runs"] if x["config"] == "stackstream" and x["tps"]
            and x["rep"] in base]
    ratios = [x["tps"] / base[x["rep"]]["tps"] for x in runs]
    out["summary"] = {
        "tps_none": med([x["tps"] for x in base.values()]),
        "tps_stackstream": med([x["tps"] for x in runs]),
        "ratio": med(ratios), "ratio_min": min(ratios) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "agent_cpu_med": med([x["agent_cpu"] for x in runs]),
        "agent_cpu_during_med": med([x["agent_cpu_during"] for x in runs]),
        "sessions_med": med([x["sessions"] for x in runs]),
        "transactions_med": med([x["transactions"] for x in runs]),
        "crashes": sum(len(x["crash_lines"]) for x in out["runs"]),
        "stop_max_s": max([x["stop_s"] for x in out["runs"] if x["stop_s"] is not None],
                          default=None),
        "stop_failed": sum(1 for x in out["runs"] if x["stop_s"] is None)}
    FIG.set("pgbench.ratio", out["summary"]["ratio"])


# ---------------------------------------------------------------------------
# 5. Memory, agent CPU per sample, wire and storage cost (one 8-thread run)
# ---------------------------------------------------------------------------
def _mem_sample(pid):
    st = proc_status(pid)
    if not st or "VmRSS" not in st:
        return None
    ps = proc_pss_kb(pid)
    return {k: st.get(k) for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")} | \
        {k: ps.get(k) for k in ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")}


def _mem_median(samples, key, t_from):
    return med([m[key] for t, m in samples if t >= t_from and m.get(key) is not None])


def section_wire(env, res):
    for k, w in (("wire.bytes_per_sample", "wire bytes/sample"),
                 ("wire.storage_bytes_per_sample", "SQLite bytes/sample"),
                 ("wire.pprof_export_bytes_per_sample", "pprof export bytes/sample"),
                 ("wire.agent_output_bytes_per_sample", "agent STACKSTREAM_OUTPUT bytes/sample"),
                 ("rss.added_kb", "host RSS added"),
                 ("rss.agent_kb", "agent process RSS"),
                 ("agent.cpu_per_sample", "agent process CPU per sample (steady)"),
                 ("capture.thread_cpu", "host capture thread CPU")):
        FIG.expect(k, w)
    if not (env.have_agent and env.have_collector and os.path.exists(env.cpu_work)):
        why = env.agent_missing() if not (env.have_agent and env.have_collector) else \
            "bench_cpu_work not built"
        for k in ("wire.bytes_per_sample", "wire.storage_bytes_per_sample",
                  "wire.pprof_export_bytes_per_sample", "wire.agent_output_bytes_per_sample",
                  "rss.added_kb", "rss.agent_kb", "agent.cpu_per_sample", "capture.thread_cpu"):
            FIG.why(k, why)
        log("wire: " + why)
        return
    dur = 10.0 if env.quick else 60.0
    threads = 8
    out = res["wire"] = {"seconds": dur, "threads": threads}
    service = "bench-wire"
    output = os.path.join(env.work, "wire-agent.pb.gz")
    argv = [env.cpu_work, str(threads), "--seconds", str(dur)]

    # Baseline memory without any profiler: the same workload, shorter.
    # (ru_maxrss is useless here: Linux keeps the high-water mark across exec,
    # so a child spawned from this Python process inherits Python's. Sample
    # /proc/PID/status of the new image while it runs.)
    base_dur = min(dur, 10.0)
    base_mem = []

    def sample_base(pid):
        t0 = time.monotonic()
        time.sleep(0.3)  # past exec
        while True:
            m = _mem_sample(pid)
            if m is None:
                return
            base_mem.append((round(time.monotonic() - t0, 1), m))
            time.sleep(0.5)

    r0 = run_measured([env.cpu_work, str(threads), "--seconds", str(base_dur)], {},
                      timeout=base_dur + 120, on_start=sample_base)
    out["baseline"] = {"mem": base_mem, "cpu": r0.cpu, "wall": r0.wall, "seconds": base_dur}

    with env.st.Collector() as c:
        daemon = env.start_daemon(c.grpc_addr)
        try:
            _wire_agent_run(env, out, c, daemon, argv, dur, service, output)
        finally:
            out["daemon"] = daemon.cleanup(env.log_path("wire-agent.log"))
    # memory: medians over the steady part (after 2 s)
    t_from = 2.0
    for key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Pss", "VmHWM"):
        out.setdefault("host_mem", {})[key] = _mem_median(out.get("host_mem_samples", []), key,
                                                          t_from)
        out.setdefault("base_mem", {})[key] = _mem_median(base_mem, key, t_from)
        out.setdefault("agent_mem", {})[key] = _mem_median(out.get("agent_mem_samples", []), key,
                                                           t_from)
    hm, bm = out["host_mem"], out["base_mem"]
    if hm.get("VmRSS") and bm.get("VmRSS") and r0.ok and out["agent_run"]["status"] == 0:
        out["rss_added_kb"] = hm["VmRSS"] - bm["VmRSS"]
        FIG.set("rss.added_kb", out["rss_added_kb"])
    if out["agent_mem"].get("VmRSS"):
        FIG.set("rss.agent_kb", out["agent_mem"]["VmRSS"])
    hs = out.get("host_mem_samples", [])
    if hs:
        q = [m["VmRSS"] for t, m in hs if t >= dur * 0.25]
        out["rss_after_25pct_kb"] = q[0] if q else None
        out["rss_last_kb"] = hs[-1][1]["VmRSS"]
    log("wire: %s" % {k: v for k, v in out.items() if not isinstance(v, (list, dict))})


def _wire_agent_run(env, out, c, daemon, argv, dur, service, output):
    out["daemon_idle"] = {"cpu_per_s": daemon.idle_cpu_per_s, "status": daemon.idle_status,
                          "pss": daemon.idle_pss}
    _, m0 = http_get(c.http_url + "/metrics")
    m0 = parse_metrics(m0.decode())
    host_mem, agent_mem = [], []
    win = {}

    def watcher(pid):
        # memory of both processes every 0.5 s; CPU of the host's capture
        # thread and of the agent process at t = 2 s and t = dur - 1.5 s
        t0 = time.monotonic()
        win["pid"] = pid
        time.sleep(0.3)  # past exec
        while True:
            el = time.monotonic() - t0
            m = _mem_sample(pid)
            if m is None:
                return
            host_mem.append((round(el, 1), m))
            am = _mem_sample(daemon.pid)
            if am:
                agent_mem.append((round(el, 1), am))
            for mark, at in (("a", 2.0), ("b", dur - 1.5)):
                if mark not in win and el >= at:
                    win[mark] = (time.monotonic(), thread_cpu(pid), daemon.cpu(),
                                 collector_samples(c))
            time.sleep(0.5)

    proxy = CountingProxy(c.grpc_port)
    e = env.agent_env(proxy.addr, service=service, output=output, socket_path=daemon.sock)
    a0 = daemon.cpu()
    g0 = daemon.goodbyes()[0]
    r = run_measured(argv, e, timeout=dur + 120, on_start=watcher)
    daemon.settle(g0, 1, timeout=30)
    out["agent_cpu_run"] = daemon.cpu() - a0
    out["agent_run"] = {"status": r.status, "cpu": r.cpu, "wall": r.wall,
                        "stderr": r.stderr[-2000:]}
    out["host_mem_samples"] = host_mem
    out["agent_mem_samples"] = agent_mem
    if "a" in win and "b" in win:
        (ta, tha, aa, sa), (tb, thb, ab, sb) = win["a"], win["b"]
        span = tb - ta
        cap = [(tid, comm, cb - tha.get(tid, (comm, 0.0))[1]) for tid, (comm, cb) in thb.items()
               if comm == "ss-capture"]
        others = sorted(set(comm for tid, (comm, _) in thb.items() if tid != win["pid"])
                        - {"bench-worker", "ss-capture"})
        out["window_s"] = span
        out["host_threads"] = others
        out["capture_thread_cpu_per_s"] = sum(x[2] for x in cap) / span if cap else None
        out["agent_cpu_per_s"] = (ab - aa) / span
        if sa is not None and sb is not None and sb > sa:
            # samples the collector stored in the window (they arrive in 10 s
            # flushes, so this is coarse): the run's average rate is used below
            out["window_samples"] = sb - sa
        FIG.set("capture.thread_cpu", out["capture_thread_cpu_per_s"])

    # wait for the last summary to be stored
    samples_name = None
    last = None
    m1 = m0
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
    br1, _ = metric(m1, "stackstream_bytes_received_total")
    br0, _ = metric(m0, "stackstream_bytes_received_total")
    sb1, _ = metric(m1, "stackstream_storage_bytes")
    sb0, _ = metric(m0, "stackstream_storage_bytes")
    s1, _ = metric(m1, samples_name) if samples_name else (None, None)
    s0, _ = metric(m0, samples_name) if samples_name else (None, None)
    samples_metric = (s1 - (s0 or 0)) if s1 is not None else None
    su1, _ = metric(m1, "stackstream_summaries_ingested_total")
    su0, _ = metric(m0, "stackstream_summaries_ingested_total")
    out["summaries"] = (su1 - (su0 or 0)) if su1 is not None else None
    st_, folded = c.get("/api/v1/profile", service=service, format="folded",
                        **{"from": "now-1h", "to": "now"})
    samples_folded = None
    if st_ == 200:
        samples_folded = sum(int(l.rsplit(" ", 1)[1]) for l in folded.decode().splitlines()
                             if l.strip())
        out["export_stacks"] = sum(1 for l in folded.decode().splitlines() if l.strip())
    st2, pp = c.get("/api/v1/profile", service=service, format="pprof",
                    **{"from": "now-1h", "to": "now"})
    try:
        out["counters"] = c.get_json("/api/v1/counters", service=service,
                                     **{"from": "now-1h", "to": "now"})
    except Exception as ex:  # noqa: BLE001
        out["counters"] = {"error": str(ex)}
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
    if samples and out.get("agent_cpu_per_s") is not None:
        rate = samples / r.wall
        out["agent_cpu_per_sample_us"] = 1e6 * out["agent_cpu_per_s"] / rate
        idle = daemon.idle_cpu_per_s or 0.0
        out["agent_cpu_per_sample_busy_us"] = 1e6 * max(0.0, out["agent_cpu_per_s"] - idle) / rate
        out["agent_cpu_per_sample_run_us"] = 1e6 * out["agent_cpu_run"] / samples
        FIG.set("agent.cpu_per_sample", out["agent_cpu_per_sample_us"])
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
                FIG.set("wire.agent_output_bytes_per_sample", out["agent_output_bytes"] / total)
        except Exception as ex:  # noqa: BLE001
            out["agent_output_error"] = str(ex)


# ---------------------------------------------------------------------------
# 6. Accuracy
# ---------------------------------------------------------------------------
def accuracy_fixtures(quick):
    cpu = 1.2 if quick else 10.0
    return [
        ("split 70/30, 2 threads", "split", ["split", "70", "2", str(cpu)], False),
        ("4 equal threads", "threads4", ["threads", "1,1,1,1", str(cpu)], True),
        ("3 threads, work 1:2:3", "threads123", ["threads", "1,2,3", str(cpu)], True),
        ("tick: 1 ms / 3 ms phases", "tick", ["tick", "1", "3", str(cpu)], False),
    ]


ACC_PROFILERS = ("stackstream-perf", "stackstream-timer", "gperftools", "perf")


def section_accuracy(env, res):
    profilers = []
    if env.have_agent and env.have_collector:
        profilers += ["stackstream-perf", "stackstream-timer"]
    if env.have_gperf and env.go:
        profilers.append("gperftools")
    if env.have_perf:
        profilers.append("perf")
    fixtures = accuracy_fixtures(env.quick)
    reps = 1 if env.quick else 3
    for _, key, _, _ in fixtures:
        for p in ACC_PROFILERS:
            FIG.expect("accuracy.%s.%s" % (key, p), "accuracy error %s on %s" % (SHORT[p], key))
            if p == "perf" and not env.have_perf:
                FIG.note("accuracy.%s.%s" % (key, p), "skipped: " + (env.perf_note or "no perf"))
            if p.startswith("stackstream") and p not in profilers:
                FIG.why("accuracy.%s.%s" % (key, p), env.agent_missing())
            if p == "gperftools" and p not in profilers:
                FIG.note("accuracy.%s.%s" % (key, p),
                         "skipped: gperftools or go (pprof, to read its profiles) missing")
    if not os.path.exists(env.accuracy):
        log("accuracy: %s missing" % env.accuracy)
        FIG.why_unset("accuracy.", "bench_accuracy not built")
        return
    res["accuracy"] = out = {"reps": reps, "runs": [], "profilers": profilers,
                             "fixtures": [(n, k, a, m) for n, k, a, m in fixtures]}
    # stackstream also streams (to a private collector), as it would in
    # production; the figures come from its STACKSTREAM_OUTPUT file, which
    # the agent process writes.
    collector = daemon = None
    if any(p.startswith("stackstream") for p in profilers):
        collector = env.st.Collector().start()
        daemon = env.start_daemon(collector.grpc_addr)
    try:
        _accuracy_runs(env, out, fixtures, profilers, reps, collector, daemon)
    finally:
        if daemon:
            out["daemon"] = daemon.cleanup(env.log_path("accuracy-agent.log"))
        if collector:
            collector.stop()
            shutil.rmtree(collector.dir, ignore_errors=True)
    _accuracy_summary(out, fixtures, profilers)


def _accuracy_runs(env, out, fixtures, profilers, reps, collector, daemon):
    for rep in range(reps):
        for name, key, args, multi in fixtures:
            order = profilers[rep % len(profilers):] + profilers[:rep % len(profilers)]
            for p in order:
                argv = [env.accuracy] + args
                base = os.path.join(env.work, "acc.%s.%s.%d" % (key, p, rep))
                e = {}
                if p.startswith("stackstream"):
                    e = env.agent_env(collector.grpc_addr, service="bench-acc-%s" % key,
                                      output=base + ".pb.gz", clock=p.split("-")[1],
                                      socket_path=daemon.sock)
                    g0 = daemon.goodbyes()[0]
                elif p == "gperftools":
                    e = env.gperf_env(base + ".prof")
                elif p == "perf":
                    argv = env.perf_argv(base + ".perf", argv)
                r = run_measured(argv, e, timeout=600)
                if p.startswith("stackstream"):
                    daemon.settle(g0, 1)  # the output file is complete
                rec = {"rep": rep, "fixture": key, "profiler": p, "status": r.status,
                       "cpu": r.cpu, "wall": r.wall}
                out["runs"].append(rec)
                try:
                    truth = json.loads(r.stdout.strip().splitlines()[-1])["truth_cpu_ns"]
                    fns = sorted(truth)
                    if p.startswith("stackstream"):
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
                    else:
                        rec["error"] = ("none of the profile's %d samples has %s in its stack "
                                        "(frames not symbolized?)" % (total, "/".join(fns)))
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
# 7. Handler cost
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
# 8. Collector (tests/bench/ingest_bench)
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
        else:  # shrink ingest_bench's defaults to a few seconds, where the flags exist
            for flag, val in (("--summaries", "40"), ("--services", "5"), ("--flush-s", "600"),
                              ("--queries", "10")):
                if flag in help_text:
                    argv += [flag, val]
    # ClickHouse side by side (ingest 1 and 2 collectors, query, bytes per
    # sample) when clickhouse-server is installed: a private server on loopback.
    ch = None
    if "--clickhouse" in help_text and (shutil.which("clickhouse-server") or
                                        os.path.exists("/usr/sbin/clickhouse-server")):
        sys.path.insert(0, os.path.join(ROOT, "tests", "collector"))
        try:
            from clickhouse_servers import ClickHouseServers
            ch = ClickHouseServers(1)
            ch.__enter__()
            argv += ["--clickhouse", ch.uri(0, "bench")]
            if "--clickhouse-pid" in help_text:
                argv += ["--clickhouse-pid", str(ch.procs[0].pid)]
        except Exception as ex:  # reported, the SQLite figures still run
            out["clickhouse_error"] = str(ex)
            log("collector: clickhouse-server did not start: %s" % ex)
            ch = None
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
    if ch is not None:
        ch.stop()
    FIG.set("collector.ingest_bench",
            "ok" if out["status"] == 0 and out["stdout"].strip() else None)
    log("collector: ingest_bench status %s, %.1f s" % (out["status"], out["wall"]))


# ---------------------------------------------------------------------------
# The committed accuracy figures (to compare this run's against)
# ---------------------------------------------------------------------------
PREV_PROFILER_KEYS = {"agent-perf": "stackstream-perf", "agent-timer": "stackstream-timer",
                      "stackstream, perf clock": "stackstream-perf",
                      "stackstream, timer clock": "stackstream-timer",
                      "gperftools": "gperftools", "perf": "perf", "perf record": "perf"}


def previous_accuracy():
    """The accuracy table of the committed BENCHMARKS.md (HEAD), as
    {"fixture.profiler": {"err_med", "err_pooled"}} plus the commit that last
    changed it. Reads both this script's table layout and the one before."""
    try:
        text = subprocess.run(["git", "-C", ROOT, "show", "HEAD:BENCHMARKS.md"],
                              capture_output=True, text=True, timeout=30).stdout
        commit = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h", "--",
                                 "BENCHMARKS.md"], capture_output=True, text=True,
                                timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = {n: k for n, k, _, _ in accuracy_fixtures(False)}
    figs = {}
    for line in text.splitlines():
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] not in names or cells[1] not in PREV_PROFILER_KEYS:
            continue
        m1 = re.match(r"([\d.]+) \[([\d.]+)\]", cells[2])
        m2 = re.match(r"([\d.]+) \(σ", cells[3])
        if m1 and m2:
            figs["%s.%s" % (names[cells[0]], PREV_PROFILER_KEYS[cells[1]])] = {
                "err_med": float(m1.group(1)), "err_max": float(m1.group(2)),
                "err_pooled": float(m2.group(1))}
    return {"commit": commit, "figures": figs} if figs else None


# ---------------------------------------------------------------------------
# BENCHMARKS.md
# ---------------------------------------------------------------------------
def goal_mark(ok):
    return "**met**" if ok else "**missed**"


def pctf(x, spec="%+.2f%%"):
    return fmt(None if x is None else 100 * x, spec)


def mib(kb, spec="%.1f MiB"):
    return fmt(None if kb is None else kb / 1024.0, spec)


def accuracy_vs_previous(res):
    """[(fixture.profiler, now pooled, then pooled, delta)] for stackstream."""
    prev = (res.get("previous_accuracy") or {}).get("figures") or {}
    ac = (res.get("accuracy") or {}).get("summary") or {}
    rows = []
    for k, s in sorted(ac.items()):
        if not k.split(".")[1].startswith("stackstream") or k not in prev:
            continue
        rows.append((k, s["err_pooled"], prev[k]["err_pooled"],
                     s["err_pooled"] - prev[k]["err_pooled"]))
    return rows


def render_summary(a, env, res):
    """The goals from the issues, each with the figure that judges it."""
    a("## Summary against the goals")
    a("")
    a("| goal | measured | verdict |")
    a("|---|---|---|")
    su = (res.get("startup") or {}).get("summary") or {}
    cells, verdicts = [], []
    for c in ("stackstream", "stackstream-helper", "disabled", "gperftools"):
        s = su.get(c)
        if not s or s.get("ms") is None:
            continue
        label = {"stackstream": "node daemon", "stackstream-helper": "private helper",
                 "disabled": "STACKSTREAM_DISABLE=1", "gperftools": "gperftools"}[c]
        extra = ""
        if c.startswith("stackstream"):
            extra = " (host %.2f + agent process %.2f)" % (s["host_ms"], s["agent_ms"])
            verdicts.append("%s %s" % (label, goal_mark(s["ms"] <= 1.0)))
        cells.append("%s %.2f ms%s" % (label, s["ms"], extra))
    if cells:
        a("| extra CPU per process start ≤ 1 ms (issue 9): %d × `/bin/true` from a profiled "
          "shell, host + agent process | %s | %s |" % (
              res["startup"]["n"], "; ".join(cells), ", ".join(verdicts) or "—"))
    w = res.get("wire") or {}
    added = w.get("rss_added_kb")
    if added is not None:
        hm, bm, am = w.get("host_mem", {}), w.get("base_mem", {}), w.get("agent_mem", {})
        a("| RSS added to an 8-thread host ≤ 4 MiB (issue 9) | host VmRSS +%s (%s → %s; of "
          "which the shared-memory rings the host touched, RssShmem, %s); the agent process "
          "separately: VmRSS %s, Pss %s | %s |" % (
              mib(added), mib(bm.get("VmRSS")), mib(hm.get("VmRSS")),
              mib((hm.get("RssShmem") or 0) - (bm.get("RssShmem") or 0)),
              mib(am.get("VmRSS")), mib(am.get("Pss")), goal_mark(added <= 4 * 1024)))
    pg = res.get("pgbench") or {}
    ps = pg.get("summary") or {}
    if pg.get("skipped"):
        a("| `pgbench -C` tps ≥ 0.9 × no agent (issue 9) | skipped: %s | — |" % pg["skipped"])
    elif ps.get("ratio") is not None:
        a("| `pgbench -C` tps ≥ 0.9 × no agent (issue 9) | %.3f [%.3f, %.3f] over %d round(s): "
          "%.0f vs %.0f tps; backend crashes in the server log: %d | %s |" % (
              ps["ratio"], ps["ratio_min"], ps["ratio_max"], pg["reps"], ps["tps_stackstream"],
              ps["tps_none"], ps["crashes"], goal_mark(ps["ratio"] >= 0.9)))
    fk = (res.get("fork") or {}).get("summary") or {}
    cells, verdicts = [], []
    for mode in ("_exit", "exit"):
        s = fk.get("%s.stackstream" % mode)
        if s:
            cells.append("child `%s(0)`: %.3f [%.3f, %.3f] (%.0f vs %.0f µs per fork)" % (
                mode, s["ratio"], s["ratio_min"], s["ratio_max"], s["us_med"],
                fk["%s.none" % mode]["us_med"]))
            verdicts.append("%s %s" % (mode, goal_mark(s["ratio"] >= 0.9)))
    g = fk.get("_exit.gperftools")
    if g:
        cells.append("gperftools, `_exit`: %.3f" % g["ratio"])
    if cells:
        a("| fork()+exit in a loop ≥ 0.9 × no agent (issue 9), throughput ratio | %s | %s |" % (
            "; ".join(cells), ", ".join(verdicts)))
    ov = res.get("overhead") or {}
    sm = ov.get("summary") or {}
    s, g, p = sm.get("stackstream"), sm.get("gperftools"), sm.get("perf")
    if s and s.get("over") is not None:
        cells = ["host process %s [%s, %s]" % (pctf(s["over"]), pctf(s["over_min"]),
                                               pctf(s["over_max"])),
                 "host + agent process %s" % pctf(s["over_agent"])]
        if g and g.get("over") is not None:
            cells.append("gperftools %s" % pctf(g["over"]))
        if p and p.get("over") is not None:
            cells.append("perf record %s" % pctf(p["over"]))
        v = ["host ≤ 0.5%%: %s" % goal_mark(s["over"] <= 0.005),
             "host + agent ≤ 1%%: %s" % goal_mark(s["over_agent"] <= 0.01)]
        if g and g.get("over") is not None:
            v.append("below gperftools: %s" % goal_mark(s["over_agent"] < g["over"]))
        nz = ov.get("noise_pct")
        a("| CPU overhead at 100 Hz, %d threads of fixed work, paired runs: host ≤ 0.5%%, "
          "host + agent ≤ 1%%, below gperftools (issue 9) | median of %d pairs: %s | %s%s |" % (
              ov["threads"], s["n"], "; ".join(cells), "; ".join(v),
              (" (no-profiler runs spread %.1f%% here: see section 2)" % nz) if nz else ""))
    cps, cpr = w.get("agent_cpu_per_sample_us"), (sm.get("stackstream") or {}).get(
        "agent_cpu_per_sample_us")
    if cps is not None or cpr is not None:
        a("| the agent process's CPU per sample, reported separately (issue 9) | %s µs steady "
          "(8 busy threads, %.0f s, 10 s flushes); %s µs in the %d-thread overhead runs (a new "
          "process each: set-up, first symbolization and the final summary included) | — |" % (
              fmt(cps, "%.1f"), w.get("seconds", 0), fmt(cpr, "%.1f"),
              ov.get("threads", OVH_THREADS)))
    rows = accuracy_vs_previous(res)
    if rows:
        off = [k for k, _, _, d in rows if abs(d) > 2]
        a("| every accuracy figure within 2 points of the committed run (issue 9) | pooled error, "
          "change from the committed run (%s): %s | %s%s |" % (
              (res.get("previous_accuracy") or {}).get("commit") or "?",
              ", ".join("%s %+.2f (%.2f → %.2f)" % (k, d, then, now)
                        for k, now, then, d in rows),
              goal_mark(not off), (" (beyond 2: %s%s)" % (", ".join(off), "; the timer clock on "
                                                           "the tick fixture aliases, see "
                                                           "section 6" if
                                                           "tick.stackstream-timer" in off else ""))
              if off else ""))
    ac = (res.get("accuracy") or {}).get("summary") or {}
    for prof in ("stackstream-perf", "stackstream-timer"):
        errs = [(k.split(".")[0], v["err_pooled"]) for k, v in ac.items()
                if k.endswith("." + prof)]
        if errs:
            worst = max(errs, key=lambda x: x[1])
            a("| accuracy error ≤ 2 points on every fixture (issue 6), %s%s | %s | %s |" % (
                SHORT[prof], " (default where perf events are allowed)"
                if prof.endswith("perf") else " (fallback)",
                ", ".join("%s %.2f" % e for e in errs),
                "%s (worst: %s %.2f)" % (goal_mark(worst[1] <= 2), worst[0], worst[1])))
    cells = []
    better = []
    for key in ("threads4", "threads123"):
        gg = ac.get("%s.gperftools" % key)
        for prof in ("stackstream-perf", "stackstream-timer"):
            ss = ac.get("%s.%s" % (key, prof))
            if ss and gg:
                cells.append("%s %s %.2f vs %.2f" % (key, SHORT[prof], ss["err_pooled"],
                                                     gg["err_pooled"]))
                better.append(ss["err_pooled"] < gg["err_pooled"])
    if cells:
        a("| better than gperftools on the multithreaded fixtures (issue 6) | pooled error, "
          "stackstream vs gperftools: %s | %s |" % ("; ".join(cells), goal_mark(all(better))))
    hp = ((res.get("handler") or {}).get("parsed") or {}).get(30)
    if hp:
        a("| handler median ≤ 1 µs at 30 frames (issue 6) | median %.0f ns, p99 %.0f ns "
          "(handler body, called directly) | %s |" % (hp["median"], hp["p99"],
                                                        goal_mark(hp["median"] <= 1000)))
    bps = FIG.values.get("wire.bytes_per_sample")
    if bps is not None:
        a("| ≤ 4 bytes/sample on the wire (issue 6) | %.2f bytes/sample (TCP bytes agent "
          "process → collector, %.0f samples/s, 10 s flushes); gzip pprof of the same data: %s "
          "| %s |" % (bps, (w.get("samples_metric") or w.get("samples_folded") or 0) /
                      w["seconds"], fmt(FIG.values.get("wire.pprof_export_bytes_per_sample")),
                      goal_mark(bps <= 4)))
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


def render_tools(a, env, res):
    a("## Tools compared")
    a("")
    for c in ("stackstream", "stackstream-helper", "disabled", "gperftools", "perf"):
        a("- **%s**: %s." % (SHORT[c], NAMES[c]))
    a("")
    a("stackstream runs in two processes: `libstackstream.so` in the host (the clocks, the "
      "signal handler, per-thread rings in shared memory and one thread, `ss-capture`, that "
      "hands the rings and module records over; libc only) and `stackstream-agent`, which "
      "unwinds, symbolizes, builds the summaries and streams them to `stackstream-collector`. "
      "The agent process is not a child of the host, so its CPU time is not in the host's "
      "rusage: every section measures it separately, from a node daemon this benchmark starts "
      "for the section (`stackstream-agent --listen unix:TMP/agent.sock --collector ADDR`) and "
      "whose CPU clock it reads before each host run and after the daemon has finished with "
      "the host (its final summary sent and acknowledged). Its idle cost (it polls every 20 ms) "
      "is inside those windows: %s CPU-s/s measured before the first host." % fmt(
          (res.get("overhead") or res.get("startup") or {}).get("daemon_idle_cpu_per_s"),
          "%.5f"))
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
    mark = len(L)
    try:
        render_summary(a, env, res)
    except Exception as ex:  # noqa: BLE001
        del L[mark:]
        a("## Summary against the goals")
        a("")
        a("Not rendered: %s: %s." % (type(ex).__name__, ex))
        a("")
    render_tools(a, env, res)
    a("## Machine")
    a("")
    a("| | |")
    a("|---|---|")
    for k, label in (("cpu", "CPU"), ("nproc", "nproc"), ("mem", "memory"), ("kernel", "kernel"),
                     ("config_hz", "scheduler tick (CONFIG_HZ)"), ("glibc", "glibc"),
                     ("compiler", "compiler"), ("build_type", "build type"),
                     ("perf", "perf"), ("perf_event_paranoid", "perf_event_paranoid"),
                     ("gperftools", "gperftools libprofiler"), ("go", "go (pprof)"),
                     ("postgres", "PostgreSQL"), ("git", "stackstream commit")):
        a("| %s | %s |" % (label, machine.get(k)))
    a("| load average at start / end | %s / %s |" % (" ".join(machine["load"]),
                                                      " ".join(res.get("load_end", ["?"]))))
    a("")
    a("The machine is a shared 2-vCPU VM: other work running at the same time shows up as "
      "noise, which is why every comparison below is interleaved (round-robin over the "
      "configurations, rotating the order each round, after one warm-up round that is not "
      "counted) and reported as the median of paired ratios or differences (each "
      "configuration's run against the no-profiler run of the same round) with min/max.")
    a("")
    only = res.get("only") or SECTIONS
    for name, title, fn in (("startup", "1. Process start", render_startup),
                            ("overhead", "2. CPU overhead", render_overhead),
                            ("fork", "3. fork() in a loop", render_fork),
                            ("pgbench", "4. PostgreSQL under `pgbench -C`", render_pgbench),
                            ("wire", "5. Memory, agent CPU per sample, wire and storage cost",
                             lambda a_, e_, r_: render_wire(a_, e_, r_, machine)),
                            ("accuracy", "6. Accuracy", render_accuracy),
                            ("handler", "7. Handler cost", render_handler),
                            ("collector", "8. Collector", render_collector)):
        if name in only:
            mark = len(L)
            try:
                fn(a, env, res)
            except Exception as ex:  # noqa: BLE001 - a broken section must not hide the rest
                del L[mark:]
                a("## " + title)
                a("")
                a("Not rendered: %s: %s (see the results JSON)." % (type(ex).__name__, ex))
                a("")
        else:
            a("## " + title)
            a("")
            a("Not run in this invocation (`--only %s`)." % ",".join(only))
            a("")
    a("## Figures not produced")
    a("")
    miss = FIG.missing()
    skip = FIG.skipped()
    if not miss and not skip:
        a("None: every figure was produced.")
    for k, wdesc in miss:
        a("- %s (`%s`): NOT PRODUCED%s" % (wdesc, k, (": " + FIG.reasons[k]) if k in FIG.reasons
                                           else ""))
    for k, wdesc, why in skip:
        a("- %s (`%s`): %s" % (wdesc, k, why))
    for name, e in sorted((res.get("errors") or {}).items()):
        a("- section `%s` raised: %s" % (name, e))
    for when in ("start", "end"):
        if res.get("dev_null_" + when):
            a("- at the %s of the run: %s" % (when, res["dev_null_" + when]))
    if res.get("helpers_left"):
        a("- stackstream-agent helpers of this run's process trees were still running at the "
          "end (pids %s; killed)" % res["helpers_left"])
    a("")
    a("## Reproduce")
    a("")
    a("```")
    a("cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && ninja -C build")
    a("tests/bench/run.sh --build-dir build            # full: ~20-25 min, writes BENCHMARKS.md")
    a("tests/bench/run.sh --quick --build-dir build    # CI: ~3 min, checks every figure exists")
    a("tests/bench/run.sh --quick --only startup,fork  # some sections only")
    a("```")
    a("")
    return "\n".join(L)


def render_startup(a, env, res):
    a("## 1. Process start")
    a("")
    st = res.get("startup")
    if not st:
        a("Not produced.")
        a("")
        return
    a("Goal (issue 9): ≤ 1 ms of extra CPU per process start, machine-wide, agent included.")
    a("")
    a("Workload: `%s` (dash), run %d time(s) per configuration, interleaved. The "
      "configuration is set in the shell's environment, so the shell and every `/bin/true` "
      "load the profiler: with stackstream each of the %d processes maps the library, sets up "
      "its clock and rings, connects to the agent, hands over its module records and says "
      "goodbye at exit, and the agent process opens (and closes) a session for it. **CPU** = "
      "the shell's wait4 rusage (user + system; it includes every `/bin/true`, which the shell "
      "waits for) + the agent process's CPU over the run: the node daemon's CPU clock from "
      "before the shell starts until the daemon is quiet again, or, for the private helper, "
      "its whole life (this script is a child subreaper while it runs, so the helper, "
      "orphaned by its double fork, is reaped here with its rusage). **Extra per start** = "
      "(CPU − CPU of the no-profiler run of the same round) ÷ %d. That is everything the "
      "profiler adds on the machine except the collector (usually elsewhere); the busy time "
      "of all CPUs from /proc/stat is recorded too (results JSON, `machine_cpu`) but not "
      "used: on this shared machine other people's builds add seconds to it." % (
          " ".join(st["argv"][:2]) + " '" + st["argv"][2] + "'", st["reps"], st["n"], st["n"]))
    a("")
    a("| configuration | extra CPU per start, median [min, max] | host part | agent process "
      "part | median CPU s (shell + agent) | median wall s | goal |")
    a("|---|---|---:|---:|---:|---:|---|")
    for c in st["configs"]:
        s = st["summary"].get(c)
        if not s or not s["n"]:
            a("| %s | not produced | | | | | |" % SHORT[c])
            continue
        if c == "none":
            a("| none | — | — | — | %.3f | %.3f | |" % (s["total_cpu_med"], s["wall_med"]))
            continue
        goal = ("≤ 1 ms: %s" % goal_mark(s["ms"] <= 1.0)) if c.startswith("stackstream") else ""
        a("| %s | %.2f ms [%.2f, %.2f] | %.2f ms | %s | %.3f | %.3f | %s |" % (
            SHORT[c], s["ms"], s["ms_min"], s["ms_max"], s["host_ms"],
            ("%.2f ms" % s["agent_ms"]) if c.startswith("stackstream") else "—",
            s["total_cpu_med"], s["wall_med"], goal))
    a("")
    dl = [x for x in st["runs"] if x["config"] == "stackstream"]
    if dl:
        a("Node daemon: %s agent sessions ended per run (the shell + %d × `/bin/true` = %d "
          "expected)%s." % ("/".join(sorted(set(str(x.get("sessions")) for x in dl))), st["n"],
                            st["n"] + 1, "" if all(x.get("settled") for x in dl) else
                            "; the daemon did not go quiet within 20 s in some runs"))
        a("")
    hl = [x for x in st["runs"] if x["config"] == "stackstream-helper"]
    if hl:
        a("Private helper: %s helper process(es) per run were reaped%s." % (
            "/".join(sorted(set(str(x.get("helpers")) for x in hl))),
            "" if not any(x.get("helpers_killed") for x in hl) else
            "; some had to be killed after 20 s: %s" % [x.get("helpers_killed") for x in hl]))
        a("")
    gl = [x.get("profiles_written") for x in st["runs"] if x["config"] == "gperftools"]
    if gl:
        a("gperftools wrote %s profile file(s) per run (the shell's `CPUPROFILE` and "
          "`CPUPROFILE_<pid>` for each child)." % "/".join(sorted(set(str(x) for x in gl))))
        a("")


def render_overhead(a, env, res):
    a("## 2. CPU overhead")
    a("")
    ov = res.get("overhead")
    if not ov:
        a("Not produced: the workload `bench_cpu_work` was not built.")
        a("")
        return
    a("Goal (issue 9): at 100 Hz, 2 threads of fixed work, paired runs: ≤ 0.5% for the host "
      "process, ≤ 1% for the host + agent process, and below gperftools.")
    a("")
    a("Workload: `tests/bench/workloads/cpu_work.cc`: `bench_cpu_work %d %d`, a fixed amount "
      "of CPU-bound work (%d M iterations of a multiply/xor-shift chain, split evenly over %d "
      "threads, in ~14-frame-deep call chains ending in 4 leaf functions), so its CPU time is "
      "the measure. %d interleaved rounds (plus one warm-up round); in each round every "
      "configuration runs once. **Host** = the workload's own CPU time (wait4 rusage) ÷ that "
      "of the no-profiler run of the same round − 1; **host + agent** adds the agent "
      "process's CPU over the run (the node daemon's CPU clock from the host's start until "
      "the daemon is quiet after the host's exit: unwinding, symbolizing, the session's "
      "set-up and its final summary, sent to a real `stackstream-collector` on loopback). The "
      "collector's own CPU is not in the ratio: %s CPU-s per run. gperftools works inside "
      "the process, so its host figure is its whole cost; perf's is perf's CPU + the "
      "workload's (wait4 on perf includes its child)." % (
          ov["threads"], ov["mega_iters"], ov["mega_iters"], ov["threads"], ov["reps"],
          fmt(ov.get("collector_cpu_s"), "%.3f")))
    a("")
    a("| profiler | host CPU overhead, median [min, max] | host + agent process | agent "
      "process CPU per run | wall time change | median host CPU s | median wall s | goal |")
    a("|---|---|---|---:|---:|---:|---:|---|")
    sm = ov["summary"]
    for c in ov["configs"]:
        s = sm.get(c)
        if not s or not s["n"]:
            a("| %s | not produced | | | | | | |" % SHORT[c])
            continue
        if c == "none":
            a("| none | — | — | — | — | %.3f | %.3f | |" % (s["cpu_med"], s["wall_med"]))
            continue
        goal = ""
        if c == "stackstream":
            g = sm.get("gperftools")
            goal = "host ≤ 0.5%%: %s; host + agent ≤ 1%%: %s" % (
                goal_mark(s["over"] <= 0.005), goal_mark(s["over_agent"] <= 0.01))
            if g and g.get("over") is not None:
                goal += "; below gperftools: %s" % goal_mark(s["over_agent"] < g["over"])
            both = "%s [%s, %s]" % (pctf(s["over_agent"]), pctf(s["over_agent_min"]),
                                    pctf(s["over_agent_max"]))
            agent = "%.4f s" % s["agent_cpu_med"]
        else:
            both, agent = "(same)", "—"
        a("| %s | %s [%s, %s] | %s | %s | %s | %.3f | %.3f | %s |" % (
            SHORT[c], pctf(s["over"]), pctf(s["over_min"]), pctf(s["over_max"]), both, agent,
            pctf(s["wall_over"]), s["cpu_med"], s["wall_med"], goal))
    a("")
    s = sm.get("stackstream")
    nz = ov.get("noise_pct")
    if nz is not None:
        a("Noise: the no-profiler runs' CPU times spread %.1f%% (max − min over median)%s. A "
          "median over %d pairs resolves a fraction of that, not 0.1%%: differences of a few "
          "tenths of a percent between profilers here are not a ranking." % (
              nz, ("; the stackstream host ratios' interquartile range is [%s, %s]" % (
                  pctf(ov["stackstream_iqr"][0]), pctf(ov["stackstream_iqr"][1])))
              if ov.get("stackstream_iqr") else "", ov["reps"]))
        a("")
    if s and s.get("samples_med"):
        a("Where stackstream's cost goes, per run (medians): %s samples reached the collector; "
          "the host's capture thread (`ss-capture`: hands over new rings and module changes, "
          "rescans threads every few hundred ms) used %s CPU-s; the agent process %s CPU-s, "
          "i.e. %s µs per sample including the per-process set-up and the final summary (the "
          "steady figure is in section 5); the rest of the host's extra CPU is the signal "
          "delivery and the handler in the sampled threads (100 Hz × ~2.6 µs delivery and "
          "return + the handler body, section 7 ≈ 0.03%% of a busy thread)." % (
              fmt(s["samples_med"], "%.0f"), fmt(s.get("capture_cpu_med"), "%.4f"),
              fmt(s["agent_cpu_med"], "%.4f"), fmt(s.get("agent_cpu_per_sample_us"), "%.1f")))
        a("")
    fails = [x for x in ov["runs"] if x["status"] != 0]
    if fails:
        a("Failed runs (excluded): " + ", ".join("%s/round %d: status %s" % (
            x["config"], x["rep"], x["status"]) for x in fails))
        a("")


def render_fork(a, env, res):
    a("## 3. fork() in a loop")
    a("")
    fk = res.get("fork")
    if not fk:
        a("Not produced: `bench_fork_loop` was not built.")
        a("")
        return
    a("Goal (issue 9): fork()+exit in a loop at ≥ 0.9 × the throughput without the agent.")
    a("")
    a("Workload: `tests/bench/workloads/fork_loop.cc`: `bench_fork_loop %d MODE` does %d × "
      "(fork(); the child ends at once with `_exit(0)` or `exit(0)`; the parent waitpid()s "
      "for it) and times the loop only (CLOCK_MONOTONIC). The parent is profiled; a forked "
      "child of a profiled process gets fresh capture state in the atfork handler "
      "(async-signal-safe work only) and connects to the agent later, on a capture thread of "
      "its own, so that fork() returns at once; a child that `_exit`s right away may end "
      "before that thread connected; `exit(0)` also runs the library's exit hook (goodbye to "
      "the agent). **Ratio** "
      "= loop time without a profiler ÷ with it, same round (throughput ratio). %d rounds "
      "(plus one warm-up). gperftools only with `_exit`: a child that calls `exit(0)` runs "
      "its destructor, which writes the parent's whole profile again." % (
          fk["n"], fk["n"], fk["reps"]))
    a("")
    a("| child ends with | profiler | µs per fork, median | throughput ratio vs none, median "
      "[min, max] | agent process CPU per run | agent sessions per run | goal |")
    a("|---|---|---:|---|---:|---:|---|")
    for mode in fk["modes"]:
        for c in fk["configs"]:
            s = fk["summary"].get("%s.%s" % (mode, c))
            if not s:
                continue
            if c == "none":
                a("| `%s(0)` | none | %.1f | 1 | | | |" % (mode, s["us_med"]))
                continue
            goal = ("≥ 0.9: %s" % goal_mark(s["ratio"] >= 0.9)) if c == "stackstream" else ""
            a("| `%s(0)` | %s | %.1f | %.3f [%.3f, %.3f] | %s | %s | %s |" % (
                mode, SHORT[c], s["us_med"], s["ratio"], s["ratio_min"], s["ratio_max"],
                fmt(s.get("agent_cpu_med"), "%.3f s"), fmt(s.get("sessions_med"), "%.0f"),
                goal))
    a("")
    a("Agent sessions = hosts the agent process saw end during the run (the parent and the "
      "children that got as far as connecting before they ended).")
    a("")


def render_pgbench(a, env, res):
    a("## 4. PostgreSQL under `pgbench -C`")
    a("")
    pg = res.get("pgbench")
    if not pg:
        a("Not produced.")
        a("")
        return
    a("Goal (issue 9): `pgbench -C` tps ≥ 0.9 × without the agent.")
    a("")
    if pg.get("skipped"):
        a("Skipped: %s." % pg["skipped"])
        a("")
        return
    if "args" not in pg:
        a("Not produced: %s." % pg.get("error"))
        a("")
        return
    a("A private PostgreSQL cluster (`initdb` into a temp dir as the postgres user, "
      "`-c fsync=off`, loopback on a free port; `%s`), initialized with `pgbench -i -s 1`. "
      "Each round starts the postmaster twice, once without and once with "
      "`LD_PRELOAD=libstackstream.so` in its environment (so the postmaster and every backend "
      "it forks are profiled, served by the node daemon), runs `pgbench %s` from an "
      "unprofiled client (a new connection per transaction: the postmaster forks a backend, "
      "without exec, for each) and stops the server with `pg_ctl stop -m fast`; the order "
      "alternates between rounds. %d round(s). **Ratio** = tps with ÷ tps without, same "
      "round." % (pg.get("bindir"), " ".join(pg["args"]), pg["reps"]))
    a("")
    if pg.get("error"):
        a("Error: %s" % pg["error"])
        a("")
    s = pg.get("summary") or {}
    if s.get("ratio") is not None:
        a("| what | value | goal |")
        a("|---|---:|---|")
        a("| tps without / with stackstream (medians) | %.1f / %.1f | |" % (
            s["tps_none"], s["tps_stackstream"]))
        a("| tps ratio, median [min, max] | %.3f [%.3f, %.3f] | ≥ 0.9: %s |" % (
            s["ratio"], s["ratio_min"], s["ratio_max"], goal_mark(s["ratio"] >= 0.9)))
        a("| transactions (= backends) per profiled run | %s | |" % fmt(
            s.get("transactions_med"), "%.0f"))
        a("| agent sessions ended per profiled run (postmaster + backends that connected) | "
          "%s | |" % fmt(s.get("sessions_med"), "%.0f"))
        a("| agent process CPU per profiled run (during pgbench / until quiet) | %s / %s | |"
          % (fmt(s.get("agent_cpu_during_med"), "%.2f s"), fmt(s.get("agent_cpu_med"),
                                                                "%.2f s")))
        a("| backend crashes in the server logs (all runs) | %d | 0 |" % s["crashes"])
        a("| `pg_ctl stop -m fast`: slowest / failed | %s / %d | |" % (
            fmt(s.get("stop_max_s"), "%.1f s"), s.get("stop_failed", 0)))
        a("")
    a("| round | configuration | tps | transactions | agent CPU s | sessions |")
    a("|---:|---|---:|---:|---:|---:|")
    for x in pg.get("runs", []):
        a("| %d | %s | %s | %s | %s | %s |" % (
            x["rep"], SHORT[x["config"]], fmt(x["tps"], "%.1f"), fmt(x["transactions"], "%d"),
            fmt(x.get("agent_cpu"), "%.2f"), fmt(x.get("sessions"), "%d")))
    a("")
    cr = [l for x in pg.get("runs", []) for l in x.get("crash_lines", [])]
    if cr:
        a("Crash lines: " + " | ".join("`%s`" % l for l in cr[:5]))
        a("")


def render_wire(a, env, res, machine):
    a("## 5. Memory, agent CPU per sample, wire and storage cost")
    a("")
    w = res.get("wire")
    if not w:
        a("Not produced: agent, collector or workload missing.")
        a("")
        return
    samples = w.get("samples_metric") or w.get("samples_folded")
    ar = w.get("agent_run", {})
    a("Workload: `bench_cpu_work 8 --seconds %g` (8 busy threads on %s cores, 4 distinct leaf "
      "stacks ~14 frames deep) under stackstream at 100 Hz with the default flush interval "
      "(10 s), served by a node daemon, streaming through a byte-counting proxy to a fresh "
      "collector and writing `STACKSTREAM_OUTPUT` at the same time; before it, the same "
      "workload for %g s without a profiler (memory baseline)." % (
          w["seconds"], machine["nproc"], w["baseline"]["seconds"]))
    a("")
    if ar.get("wall"):
        a("Samples stored: %s (metric `%s`: %s; sum of the folded export: %s), i.e. %.0f "
          "samples/s: the workload got %.2f CPUs on average (%.1f CPU-s in %.0f s)." % (
              fmt(samples, "%d"), w.get("samples_metric_name"),
              fmt(w.get("samples_metric"), "%d"), fmt(w.get("samples_folded"), "%d"),
              (samples or 0) / ar["wall"], ar["cpu"] / ar["wall"], ar["cpu"], ar["wall"]))
        a("")
    a("### Memory")
    a("")
    a("Goal (issue 9): ≤ 4 MiB RSS added to an 8-thread host.")
    a("")
    a("Medians of samples every 0.5 s after the first 2 s, from /proc/PID/status (VmRSS and "
      "its parts) and /proc/PID/smaps_rollup (Pss). The host's VmRSS includes the pages of "
      "the shared-memory rings (memfd) it has written samples into (RssShmem); the agent "
      "process maps the same pages to read them, so they appear in both processes' RSS. Pss "
      "divides every shared page among the processes that map it, so host Pss + agent Pss "
      "counts them once.")
    a("")
    hm, bm, am = w.get("host_mem", {}), w.get("base_mem", {}), w.get("agent_mem", {})
    ai = (w.get("daemon_idle") or {})
    a("| process | VmRSS | RssAnon | RssFile | RssShmem | Pss | VmHWM | goal |")
    a("|---|---:|---:|---:|---:|---:|---:|---|")
    a("| host without a profiler | %s | %s | %s | %s | %s | %s | |" % tuple(
        mib(bm.get(k)) for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Pss", "VmHWM")))
    added = w.get("rss_added_kb")
    a("| host with stackstream | %s | %s | %s | %s | %s | %s | added %s: ≤ 4 MiB %s |" % (
        tuple(mib(hm.get(k)) for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Pss",
                                       "VmHWM")) +
        (mib(added), goal_mark(added is not None and added <= 4 * 1024))))
    ist, ips = ai.get("status") or {}, ai.get("pss") or {}
    a("| agent process (node daemon), idle before the host | %s | %s | %s | %s | %s | | |" % (
        mib(ist.get("VmRSS")), mib(ist.get("RssAnon")), mib(ist.get("RssFile")),
        mib(ist.get("RssShmem")), mib(ips.get("Pss"))))
    a("| agent process serving the host | %s | %s | %s | %s | %s | | reported |" % tuple(
        mib(am.get(k)) for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Pss")))
    a("")
    if w.get("rss_after_25pct_kb") is not None:
        a("Host VmRSS at 25%% of the run → end: %d → %d KiB (%+d KiB)." % (
            w["rss_after_25pct_kb"], w["rss_last_kb"],
            w["rss_last_kb"] - w["rss_after_25pct_kb"]))
        a("")
    a("### CPU")
    a("")
    a("Between t = 2 s and t = %g s of the run: the host's thread CPU from "
      "/proc/PID/task/TID/schedstat, the agent process's from its CPU clock." % (
          w["seconds"] - 1.5))
    a("")
    a("| what | value |")
    a("|---|---:|")
    cap = w.get("capture_thread_cpu_per_s")
    a("| host: the capture thread `ss-capture` | %s CPU-s/s (%s of the host's CPU) |" % (
        fmt(cap, "%.5f"), fmt(100 * cap * ar["wall"] / ar["cpu"] if cap is not None and
                              ar.get("cpu") else None, "%.3f%%")))
    a("| host: threads other than the main thread, `bench-worker` and `ss-capture` | %s |" % (
        ", ".join("`%s`" % t for t in w.get("host_threads", [])) or "none"))
    aps = w.get("agent_cpu_per_s")
    a("| agent process | %s CPU-s/s (%s of the host's CPU) |" % (
        fmt(aps, "%.5f"), fmt(100 * aps * ar["wall"] / ar["cpu"] if aps is not None and
                              ar.get("cpu") else None, "%.3f%%")))
    a("| agent process idle (polling, before the host) | %s CPU-s/s |" % fmt(
        (w.get("daemon_idle") or {}).get("cpu_per_s"), "%.5f"))
    a("| **agent process CPU per sample** (its CPU-s/s ÷ the run's %s samples/s) | **%s µs** |"
      % (fmt((samples or 0) / ar["wall"] if ar.get("wall") else None, "%.0f"),
         fmt(w.get("agent_cpu_per_sample_us"), "%.1f")))
    a("| the same without its idle polling (CPU-s/s − idle CPU-s/s) ÷ samples/s | %s µs |" %
      fmt(w.get("agent_cpu_per_sample_busy_us"), "%.1f"))
    a("| agent process CPU over the whole run until quiet ÷ samples | %s µs |" % fmt(
        w.get("agent_cpu_per_sample_run_us"), "%.1f"))
    a("")
    a("### Wire and storage")
    a("")
    a("A summary carries each distinct stack once per flush window with its count, plus the "
      "window's labels, strings and mappings, so the bytes per sample fall as the samples per "
      "window grow: they depend on the CPUs the workload gets and on the number of distinct "
      "stacks (here %s in the export)." % w.get("export_stacks", "?"))
    a("")
    a("| what | bytes | bytes / sample | goal |")
    a("|---|---:|---:|---|")
    bps = FIG.values.get("wire.bytes_per_sample")
    a("| **on the wire**, agent process → collector: TCP payload through a counting loopback "
      "proxy (gRPC/HTTP2, gzip messages, framing, headers, connection set-up; %s "
      "connection(s); %s bytes came back) | %s | %s | %s |" % (
          w.get("tcp_conns"), fmt(w.get("tcp_down_bytes"), "%d"),
          fmt(w.get("tcp_up_bytes"), "%d"), fmt(bps),
          ("≤ 4 (issue 6): " + goal_mark(bps <= 4)) if bps is not None else ""))
    a("| summaries as the collector counts them (`stackstream_bytes_received_total` delta: "
      "the protobuf size, before gRPC's gzip) | %s | %s | |" % (
          fmt(w.get("bytes_received"), "%d"),
          fmt(FIG.values.get("wire.metric_bytes_per_sample"))))
    if w.get("summaries") and w.get("tcp_up_bytes"):
        a("| on the wire per summary (%d summaries: one per 10 s flush + the final one) | %.0f "
          "| | |" % (w["summaries"], w["tcp_up_bytes"] / w["summaries"]))
    sb = None
    if w.get("storage_bytes_after") is not None:
        sb = w["storage_bytes_after"] - (w.get("storage_bytes_before") or 0)
    a("| SQLite (`stackstream_storage_bytes` growth) | %s | %s | |" % (
        fmt(sb, "%d"), fmt(FIG.values.get("wire.storage_bytes_per_sample"))))
    if samples and w.get("db_file_bytes_after_close") is not None:
        a("| SQLite files after the collector stopped (incl. schema) | %d | %.2f | |" % (
            w["db_file_bytes_after_close"], w["db_file_bytes_after_close"] / samples))
    a("| gzip pprof export of the same data (`/api/v1/profile?format=pprof`) | %s | %s | |" % (
        fmt(w.get("pprof_export_bytes"), "%d"),
        fmt(FIG.values.get("wire.pprof_export_bytes_per_sample"))))
    a("| the agent's `STACKSTREAM_OUTPUT` gzip pprof (%s samples) | %s | %s | |" % (
        fmt(w.get("agent_output_samples"), "%d"), fmt(w.get("agent_output_bytes"), "%d"),
        fmt(FIG.values.get("wire.agent_output_bytes_per_sample"))))
    a("")
    cn = w.get("counters") or {}
    lost = {k: v for k, v in cn.items() if k != "samples" and isinstance(v, (int, float)) and v}
    a("Losses the agent reported for the run (`/api/v1/counters`): %s." % (
        ", ".join("%s %s" % kv for kv in sorted(lost.items())) if lost else "none"))
    a("")


def render_accuracy(a, env, res):
    a("## 6. Accuracy")
    a("")
    ac = res.get("accuracy")
    if not ac:
        a("Not produced: the fixture `bench_accuracy` was not built.")
        a("")
        return
    a("Fixtures: `tests/bench/workloads/accuracy.cc`. Their hot loops contain no calls, they "
      "are built without frame-pointer flags, and they measure their own ground truth: each "
      "times every call of its hot functions with the thread's CPU clock and prints the true "
      "CPU split at exit. A profiler's share for a function is its samples whose stack "
      "contains that function divided by the samples in all of the fixture's hot functions. "
      "**Error** = the largest |measured − true| share over the fixture's functions, in "
      "percentage points; median [max] over %d run(s). \"Delivered\" = samples in the hot "
      "functions ÷ (their true CPU seconds × rate). The split and threads fixtures use "
      "pseudo-random chunk lengths (0.2–2 ms), so no sampling period can alias with them; the "
      "tick fixture does the opposite on purpose: its 1 ms + 3 ms phases follow an absolute "
      "TSC schedule with a 4 ms period, equal to the scheduler tick (CONFIG_HZ=250) and never "
      "drifting against it, so a clock that fires only on ticks keeps seeing the same "
      "phase." % ac["reps"])
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
            ", ".join("%s %.1f%%" % (f, v) for f, v in sorted(truth.items())) if truth else "—"))
    a("")
    a("Profilers: **stackstream, perf clock** / **stackstream, timer clock**: stackstream at "
      "100 Hz with `STACKSTREAM_CPU_CLOCK=perf` (a per-thread perf_event task-clock, the "
      "default where perf events are allowed) or `=timer` (per-thread `timer_create` "
      "CPU-clock timers, the fallback), offline output `STACKSTREAM_OUTPUT=FILE` (written by "
      "the agent process) decoded with tests/lib/pprof.py; **gperftools**: the gperftools CPU "
      "profiler, `CPUPROFILE_FREQUENCY=100`, converted with `go tool pprof -proto BINARY "
      "PROFILE`; **perf record**: `perf record -e cpu-clock -F 99 -g`, read with "
      "`perf script -F tid,period,ip,sym`.")
    a("")
    a("Goals: error ≤ 2 points on every fixture, and better than gperftools on the "
      "multithreaded ones (issue 6); every figure within 2 points of the committed run "
      "(issue 9: the capture/agent split must not change what is measured).")
    a("")
    tt = ((res.get("previous_accuracy") or {}).get("figures") or {}).get(
        "tick.stackstream-timer")
    a("The timer clock on the tick fixture is the aliasing case: its error is a bias that "
      "depends on the phase a run happens to lock into, so it moves by tens of points from "
      "run to run%s; comparing it with the committed figure within 2 points tests luck, not "
      "the capture/agent split." % (
          " (the committed run: median %.1f, max %.1f)" % (tt["err_med"], tt["err_max"])
          if tt and "err_max" in tt else ""))
    a("")
    a("**Pooled** = the error of all runs' samples added together (as one run %d× as long); "
      "**σ** = the binomial standard deviation of a share for that many randomly placed "
      "samples (pooled), the error expected from sampling alone when samples land "
      "independently of the program's phases. An error within ~2σ is indistinguishable from "
      "sampling noise; an error far above it is bias. The goal columns judge the pooled "
      "error." % ac["reps"])
    a("")
    prev = (res.get("previous_accuracy") or {})
    pf = prev.get("figures") or {}
    a("| fixture | profiler | error pts median [max] | pooled error (σ, samples) | "
      "measured shares (median) | delivered | committed run (%s): pooled | goal |" % (
          prev.get("commit") or "—"))
    a("|---|---|---|---|---|---:|---:|---|")
    for name, key, args, multi in ac["fixtures"]:
        for p in ACC_PROFILERS:
            s = ac["summary"].get("%s.%s" % (key, p))
            if not s:
                k = "accuracy.%s.%s" % (key, p)
                why = FIG.notes.get(k) or ("not produced" + (
                    ": " + FIG.reasons[k] if k in FIG.reasons else ""))
                a("| %s | %s | %s | | | | | |" % (name, SHORT[p], why))
                continue
            goal = ""
            pv = pf.get("%s.%s" % (key, p))
            if p.startswith("stackstream"):
                goal = "≤ 2: %s" % goal_mark(s["err_pooled"] <= 2.0)
                g = ac["summary"].get("%s.gperftools" % key)
                if multi and g:
                    goal += "; better than gperftools: %s" % goal_mark(
                        s["err_pooled"] < g["err_pooled"])
                if pv:
                    goal += "; within 2 of committed: %s" % goal_mark(
                        abs(s["err_pooled"] - pv["err_pooled"]) <= 2)
            a("| %s | %s | %.2f [%.2f] | %.2f (σ %.2f, %d) | %s | %s | %s | %s |" % (
                name, SHORT[p], s["err_med"], s["err_max"], s["err_pooled"], s["sigma_pooled"],
                s["samples_pooled"],
                ", ".join("%s %.1f" % (f, v) for f, v in sorted(s["measured_med"].items())
                          if v is not None),
                fmt(s["delivered_pct_med"], "%.0f%%"),
                fmt(pv["err_pooled"] if pv else None, "%.2f"), goal))
    a("")
    errs = [x for x in ac["runs"] if x.get("error")]
    if errs:
        a("Runs that produced no profile: " + "; ".join(
            "%s/%s: %s" % (x["fixture"], x["profiler"], x["error"][:200]) for x in errs))
        a("")


def render_handler(a, env, res):
    a("## 7. Handler cost")
    a("")
    h = res.get("handler", {})
    a("Goal (issue 6): handler median ≤ 1 µs at 30 frames.")
    a("")
    if not h.get("bench"):
        a("Not produced: %s." % h.get("error", "no handler benchmark"))
        a("")
        return
    a("Method: the signal-handler microbenchmark `%s` (command: `%s` for D = 10, 30, 100). It "
      "calls the capture library's signal handler function (`SampleSignalHandler`) directly, "
      "from a `getcontext` ucontext captured D frames deep, and times each call with "
      "`clock_gettime(CLOCK_MONOTONIC)` (the cost of the clock pair, ~20–40 ns, is not "
      "subtracted). The kernel's signal delivery and `sigreturn` (~2.6 µs round trip on this "
      "machine) are not included; they are in the overhead figures of section 2. The handler "
      "copies registers and up to 32 KiB of stack into the thread's shared-memory ring; "
      "stackstream-agent unwinds the copy later, in its own process, so the handler's cost "
      "depends on the stack bytes copied more than on the frame count." % (
          h["bench"], " ".join(h["argv"])))
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


def render_collector(a, env, res):
    a("## 8. Collector")
    a("")
    co = res.get("collector", {})
    a("Goals (issue 5): ingest into SQLite ≥ 50% of the no-op handler's rate; merged-profile "
      "query over 1 h under 100 ms (p50/p99 reported for 1 h and 24 h).")
    a("")
    if not co.get("bench"):
        a("Not produced: %s." % co.get("error", "ingest_bench missing"))
        a("")
        return
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
    a("The collector benchmark `%s` (real gRPC ingest into SQLite next to a no-op handler; "
      "merged-profile queries over 50 services; command: `%s`, exit status %s, %.0f s). Its "
      "output, verbatim:" % (co["bench"], " ".join(co["argv"]), co.get("status"),
                              co.get("wall", 0)))
    a("")
    a("```")
    a(co.get("stdout", "").strip())
    a("```")
    a("")


SECTIONS = ["startup", "overhead", "fork", "pgbench", "wire", "accuracy", "handler", "collector"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--output", help="markdown file (default: BENCHMARKS.md at the repo root; "
                    "in --quick mode BUILD/bench/BENCHMARKS.quick.md)")
    ap.add_argument("--json", help="raw results (default: next to the build's bench dir)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help="comma-separated subset of: " + ",".join(SECTIONS))
    ap.add_argument("--render-from", metavar="JSON",
                    help="only re-render the report from a results JSON of an earlier run")
    args = ap.parse_args()
    if args.render_from:
        return rerender(args)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error("unknown section(s) %s; known: %s" % (", ".join(bad), ", ".join(SECTIONS)))
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
    log("build %s, libstackstream.so %s, stackstream-agent %s, collector %s, gperftools %s, "
        "perf %s" % (build, env.have_lib, env.have_agent_bin, env.have_collector,
                     env.have_gperf, env.have_perf))
    res = {"machine": machine, "quick": args.quick, "started": started.isoformat(),
           "only": only, "previous_accuracy": previous_accuracy(),
           "dev_null_start": dev_null_broken(),
           "env": {"have_perf": env.have_perf, "perf_note": env.perf_note, "build": build}}
    sections = {"startup": section_startup, "overhead": section_overhead, "fork": section_fork,
                "pgbench": section_pgbench, "accuracy": section_accuracy,
                "handler": section_handler, "wire": section_wire,
                "collector": section_collector}
    try:
        for name in only:
            log("== %s" % name)
            t1 = time.monotonic()
            try:
                sections[name](env, res)
            except Exception as ex:  # noqa: BLE001 - one section failing must not hide the rest
                import traceback
                traceback.print_exc()
                res.setdefault("errors", {})[name] = "%s: %s" % (type(ex).__name__, ex)
            res.setdefault("section_seconds", {})[name] = time.monotonic() - t1
        left = our_helpers()
        if left:  # a host of ours started a helper that is still there: a bug to report
            res["helpers_left"] = left
            log("stackstream-agent helpers still running after the run: %s (killed)" % left)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        res["load_end"] = open("/proc/loadavg").read().split()[:3]
        res["dev_null_end"] = dev_null_broken()
        elapsed = time.monotonic() - t0
        res["elapsed"] = elapsed
        res["figures"] = {"values": FIG.values, "missing": FIG.missing(), "skipped": FIG.skipped(),
                          "reasons": FIG.reasons}
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
        md = render(env, res, machine, args, started, elapsed)
        if os.path.abspath(args.output) == bench_md.PATH:
            # The sections other drivers wrote (attach, heap, web UI) stay.
            md = bench_md.keep_foreign_sections(md)
        with open(args.output, "w") as f:
            f.write(md)
        log("wrote %s and %s (%.0f s)" % (args.output, args.json, elapsed))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    miss = FIG.missing()
    for k, w in miss:
        log("figure NOT PRODUCED: %s (%s)%s" % (w, k, (": " + FIG.reasons[k])
                                                 if k in FIG.reasons else ""))
    for k, w, why in FIG.skipped():
        log("figure %s: %s" % (k, why))
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
    FIG.reasons.update(figs.get("reasons", {}))
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
