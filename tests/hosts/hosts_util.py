"""Shared helpers for tests/hosts: real servers (and fixtures) run with the
real libstackstream.so preloaded, the private helper / node daemon
`stackstream-agent`, and a real collector (tests/lib Collector).

Everything here is bounded (deadlines on every wait) and scoped to one test:
each test run gets a random TAG that is put in the environment of everything
it starts (an ordinary variable, not STACKSTREAM_*: the library passes it on
to the helper it spawns), so the test can find and clean up the helpers of
its own process trees without touching anybody else's.
"""
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

from stackstream_test import AGENT, BUILD, binary

AGENT_BIN = binary("bin", "stackstream-agent")
FIXTURES = binary("tests", "fixtures")
TAG_VAR = "SS_HOSTS_TEST_TAG"
TAG = uuid.uuid4().hex[:16]


def fixture(name):
    return os.path.join(FIXTURES, name)


def require(paths):
    """Prints FAIL and exits 1 when a build output is missing (or /dev/null
    is broken, see require_dev_null)."""
    require_dev_null()
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        print("FAIL missing build outputs: " + ", ".join(missing))
        print("0 passed, 1 failed")
        raise SystemExit(1)


def require_dev_null():
    """Exits 1 with a FAIL line when /dev/null is not the null device: a
    process running as root that rename()s a file onto it (an atomic writer
    given /dev/null as its output) turns it into a regular file owned by
    root, and unprivileged servers (postgres) then fail in odd places."""
    import stat
    try:
        st = os.stat("/dev/null")
        ok = stat.S_ISCHR(st.st_mode)
    except OSError:
        ok = False
    if not ok:
        print("FAIL /dev/null is not a character device on this machine (something replaced it "
              "with a regular file); restore it: rm /dev/null && mknod -m 666 /dev/null c 1 3")
        print("0 passed, 1 failed")
        raise SystemExit(1)


def require_tools(tools):
    """Exits 1 with a FAIL line when a system tool is not installed."""
    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(t)]
    if missing:
        print("FAIL not installed (deploy/install-deps.sh installs them): " + ", ".join(missing))
        print("0 passed, 1 failed")
        raise SystemExit(1)


def clean_env():
    """os.environ without any STACKSTREAM_* setting or LD_PRELOAD, plus TAG."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("STACKSTREAM_") and k not in ("STACKSTREAM_BUILD_DIR",
                                                      "STACKSTREAM_SOURCE_DIR"):
            del env[k]
    env.pop("LD_PRELOAD", None)
    env[TAG_VAR] = TAG
    return env


def agent_env(collector=None, service=None, no_daemon_dir=None, **kw):
    """clean_env() + the agent preloaded. "no_daemon_dir": a directory in
    which STACKSTREAM_AGENT_SOCKET points at a path nobody listens on, so a
    node daemon that may run on this machine at the default path is not used
    and the private helper is (the behaviour under test). Other keywords
    become STACKSTREAM_<KEY>."""
    env = clean_env()
    env["LD_PRELOAD"] = AGENT
    if collector:
        env["STACKSTREAM_COLLECTOR"] = collector
    if service:
        env["STACKSTREAM_SERVICE"] = service
    if no_daemon_dir:
        env["STACKSTREAM_AGENT_SOCKET"] = os.path.join(no_daemon_dir, "no-daemon.sock")
    for k, v in kw.items():
        env["STACKSTREAM_" + k.upper()] = str(v)
    return env


def mkdtemp_for(user=None, prefix="ss-hosts-"):
    """A fresh temp dir (0755), owned by "user" if given."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    if user:
        pw = pwd.getpwnam(user)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


def wait_until(pred, timeout, interval=0.1):
    """Calls pred() until it returns something truthy or "timeout" passes;
    returns the last value."""
    deadline = time.time() + timeout
    v = pred()
    while not v and time.time() < deadline:
        time.sleep(interval)
        v = pred()
    return v


# ---------------------------------------------------------------- processes

def read_file(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return b"" if "b" in mode else ""


def proc_stat(pid, user_only=False):
    """(ppid, utime+stime seconds (utime only with user_only), start ticks)
    from /proc/PID/stat, or None."""
    s = read_file("/proc/%d/stat" % pid)
    if not s:
        return None
    rest = s[s.rindex(")") + 2:].split()
    hz = os.sysconf("SC_CLK_TCK")
    cpu = int(rest[11]) + (0 if user_only else int(rest[12]))
    return int(rest[1]), cpu / hz, int(rest[19])


def cpu_seconds(pid):
    st = proc_stat(pid)
    return st[1] if st else None


def children_of(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            st = proc_stat(int(p))
            if st and st[0] == pid:
                out.append(int(p))
    return out


def tree_cpu(pid, user_only=False):
    """CPU seconds of process "pid" (all its threads), of its live children
    and of every child it has reaped (cutime + cstime), e.g. a server's
    workers or backends that came and went. With user_only, user time only:
    what the agent's perf task-clock counts for an unprivileged host at
    perf_event_paranoid 2 (kernel samples excluded, as `perf record` does for
    such a user)."""
    s = read_file("/proc/%d/stat" % pid)
    if not s:
        return 0.0
    f = s[s.rindex(")") + 2:].split()
    fields = (11, 13) if user_only else (11, 12, 13, 14)
    total = sum(int(f[i]) for i in fields) / os.sysconf("SC_CLK_TCK")
    for kid in children_of(pid):
        st = proc_stat(kid, user_only)
        if st:
            total += st[1]
    return total


def kernel_time_sampled(as_root):
    """Whether the agent's default clock counts kernel time for a host: root,
    or perf_event_paranoid < 2 (otherwise user time only)."""
    try:
        paranoid = int(read_file("/proc/sys/kernel/perf_event_paranoid").strip())
    except ValueError:
        paranoid = 2
    return as_root or paranoid < 2


def check_sample_ratio(t, label, samples, cpu_s, hz, min_ratio):
    """A Checker line: samples >= min_ratio x CPU seconds x Hz."""
    expected = cpu_s * hz
    ratio = samples / expected if expected > 0 else 0.0
    return t.check(expected > 0 and ratio >= min_ratio,
                   "%s: %d samples = %.0f%% of %.2f CPU s x %d Hz (>= %.0f%%)"
                   % (label, samples, 100 * ratio, cpu_s, hz, 100 * min_ratio))


def pid_alive(pid):
    s = read_file("/proc/%d/stat" % pid)
    if not s:
        return False
    return s[s.rindex(")") + 2:].split()[0] != "Z"


def agent_processes():
    """pids of every stackstream-agent process on the machine (not zombies)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        cmd = read_file("/proc/%s/cmdline" % p, "rb").split(b"\0")
        try:
            exe = os.path.basename(os.readlink("/proc/%s/exe" % p))
        except OSError:
            exe = ""
        if ((cmd and os.path.basename(cmd[0]) == b"stackstream-agent") or
                exe == "stackstream-agent") and pid_alive(int(p)):
            out.append(int(p))
    return out


def our_helpers():
    """stackstream-agent processes started for this test run's trees (they
    inherited TAG), as {pid: cmdline}."""
    out = {}
    needle = ("%s=%s" % (TAG_VAR, TAG)).encode()
    for pid in agent_processes():
        env = read_file("/proc/%d/environ" % pid, "rb").split(b"\0")
        if needle in env:
            out[pid] = read_file("/proc/%d/cmdline" % pid, "rb").replace(b"\0", b" ").decode(
                "utf-8", "replace").strip()
    return out


def helper_sockets():
    """Abstract socket names "@stackstream-helper.UID.PID.START" listening now."""
    names = set()
    for line in read_file("/proc/net/unix").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and parts[7].startswith("@stackstream-helper."):
            names.add(parts[7])
    return names


class HelperWatch:
    """Polls our_helpers() and helper_sockets() every 0.1 s on a thread, so a
    test learns every helper its trees used and when the last one went away
    (measured while the test waits for other things).

        w = HelperWatch().start()
        ...host exits...; t_exit = time.time()
        gone, latency = w.gone_after(t_exit, timeout=20)
        w.stop(); w.seen, w.sockets
    """

    def __init__(self, exclude=()):
        self.seen = set()
        self.sockets = set()
        self.exclude = set(exclude)
        self.last_alive = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._poll()
        self._thread.start()
        return self

    def _poll(self):
        alive = set(our_helpers()) - self.exclude
        self.seen |= alive
        self.sockets |= helper_sockets()
        if alive:
            self.last_alive = time.time()
        return alive

    def _run(self):
        while not self._stop.wait(0.1):
            self._poll()

    def alive(self):
        return set(our_helpers()) - self.exclude

    def gone_after(self, t_exit, timeout=20):
        """Waits until no helper is left; returns (gone, seconds from t_exit
        to the last poll that still saw one, 0 if none was seen after it)."""
        gone = wait_until(lambda: not self.alive(), max(0.0, t_exit + timeout - time.time()), 0.1)
        self._poll()
        return bool(gone), max(0.0, self.last_alive - t_exit)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


def kill_our_helpers(grace=0.0):
    """SIGKILLs this run's helpers still there after "grace" seconds.
    Returns the pids that had to be killed."""
    if grace:
        wait_until(lambda: not our_helpers(), grace, 0.2)
    left = list(our_helpers())
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


def killpg(proc, sig=signal.SIGKILL):
    """Signals the process group of a Popen started with start_new_session."""
    try:
        os.killpg(proc.pid, sig)
    except OSError:
        pass


def stop_group(proc, timeout=10):
    """Kills whatever is left of a session started with start_new_session."""
    if proc is None:
        return
    killpg(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def agent_log_lines(text):
    """Lines an agent would have written into a host's stderr/log."""
    return [l for l in text.splitlines() if "stackstream" in l.lower()]


# ---------------------------------------------------------------- collector

def folded(collector, service, frm="now-1h", to="now+1h"):
    """{stack tuple: count} of the service's merged profile, or None."""
    status, body = collector.get("/api/v1/profile", service=service, format="folded",
                                 **{"from": frm, "to": to})
    if status != 200:
        return None
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        line = line.rstrip()
        if not line or " " not in line:
            continue
        stack, count = line.rsplit(" ", 1)
        try:
            n = int(count)
        except ValueError:
            continue
        key = tuple(stack.split(";"))
        out[key] = out.get(key, 0) + n
    return out


def total_samples(collector, service, frm="now-1h", to="now+1h"):
    f = folded(collector, service, frm, to)
    return sum(f.values()) if f else 0


def frame_names(profile):
    """Every frame name of a folded profile, as a set (frame text up to the
    first space or '(' so that 'f (inlined)' or 'f(int)' match 'f')."""
    names = set()
    for stack in profile or {}:
        for fr in stack:
            names.add(fr)
            names.add(re.split(r"[ (]", fr, 1)[0])
    return names


def samples_with(profile, pred):
    """Samples whose stack has a frame for which pred(name) holds."""
    return sum(n for stack, n in (profile or {}).items()
               if any(pred(fr) or pred(re.split(r"[ (]", fr, 1)[0]) for fr in stack))


def wait_for_profile(collector, service, pred, timeout, min_samples=1):
    """Polls the service's profile until samples_with(pred) >= min_samples.
    Returns (profile, matching samples, seconds waited)."""
    t0 = time.time()
    deadline = t0 + timeout
    prof, n = None, 0
    while True:
        prof = folded(collector, service)
        n = samples_with(prof, pred) if prof else 0
        if n >= min_samples or time.time() >= deadline:
            return prof, n, time.time() - t0
        time.sleep(0.5)


def counters(collector, service, frm="now-1h", to="now+1h"):
    try:
        return collector.get_json("/api/v1/counters", service=service,
                                  **{"from": frm, "to": to})
    except Exception as e:  # noqa: BLE001 - reported by the caller
        return {"error": str(e)}


def services(collector):
    try:
        data = collector.get_json("/api/v1/services")
    except Exception:  # noqa: BLE001
        return set()
    names = set()
    items = data.get("services", data) if isinstance(data, dict) else data
    for s in items or []:
        if isinstance(s, dict):
            names.add(s.get("service") or s.get("name"))
        else:
            names.add(str(s))
    return names


def top_functions(prof, n=8):
    """The n frames with most self samples of a folded profile (for messages)."""
    self_counts = {}
    for stack, c in (prof or {}).items():
        if stack:
            self_counts[stack[-1]] = self_counts.get(stack[-1], 0) + c
    return sorted(self_counts.items(), key=lambda kv: -kv[1])[:n]


def newest_pg_bindir():
    """The newest /usr/lib/postgresql/N/bin that has postgres, or None."""
    dirs = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    if not dirs:
        return None
    dirs.sort(key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(dirs[-1])
