#!/usr/bin/env python3
"""The capture library and the agent process (issue 9), through the real
binaries: build/agent/libstackstream.so, build/bin/stackstream-agent, the
fixtures and a real collector.

  elf      `readelf -d`: NEEDED only libc.so.6 / libm.so.6 / ld-linux-x86-64.so.2;
           `nm -D --defined-only`: only stackstream_* plus the interposed
           functions that agent/capture/exports.map names, each of which libc
           defines too (an interposer), nothing else (no C++ runtime).
  maps     a profiled cpu_split maps none of gRPC, protobuf, abseil, elfutils,
           libunwind, spdlog, fmt, OpenSSL; the agent adds exactly one mapped
           library (libstackstream.so) to what the program maps without it.
  sigkill  cpu_split with one busy thread, SIGKILLed once it used 3 s of CPU
           (read from /proc/PID/stat right before the kill), default flush
           interval (10 s): within 10 s the collector has >= 90% of CPU s x Hz.
  daemon   `stackstream-agent --listen unix:TMP/agent.sock --collector C`;
           three cpu_split programs started separately (services lc-daemon-a,
           -b, -c; STACKSTREAM_AGENT_SOCKET set, no STACKSTREAM_COLLECTOR: the
           daemon's --collector is used), no private helper is started; all
           three arrive under their own service. The daemon is SIGKILLed while
           they run and a new one is started on the same socket path: the
           programs finish normally (exit 0, on time), samples taken after the
           restart arrive, /api/v1/counters shows agent_reconnects >= 1 for
           each, and the total is >= expected - in-flight allowance, where
           expected = CPU seconds (fixture's own account) x Hz and the
           allowance = the program's CPU share x Hz x (flush interval 0.5 s +
           the time without a daemon + 1 s): what the killed daemon held
           unacknowledged plus what was taken while none listened. Also
           total + samples_lost_agent_restart >= 90% of expected (losses are
           counted, not silent).
  helper   only LD_PRELOAD (no daemon): a /bin/sh script (itself profiled) runs
           cpu_split, fixed_work, deep_recursion and forker (fork without exec)
           in sequence: its stdout and exit status equal a run without the
           agent; exactly one private helper serves the whole tree, listening
           on the abstract socket named after the shell's pid; every program
           and the forked child (fixture_child_work) arrive under their
           services; the helper is gone within 20 s after the script exited,
           and the script's pipes reach EOF within 2 s of its exit.
  dead     a collector address nobody listens on: the host's run time, exit
           status and stdout are unchanged, its pipes reach EOF within 2 s,
           and its helper gives up and exits within 30 s.

    test_lifecycle.py [elf|maps|sigkill|daemon|helper|dead ...]   (default: all)
"""
import fnmatch
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hosts_util import (AGENT, AGENT_BIN, HelperWatch, agent_env, clean_env,  # noqa: E402
                        counters, cpu_seconds, fixture, kill_our_helpers, mkdtemp_for,
                        our_helpers, pid_alive, read_file, require, stop_group, top_functions,
                        total_samples, wait_for_profile, wait_until)
from stackstream_test import COLLECTOR, Checker, Collector, free_port  # noqa: E402

SOURCE = os.environ.get("STACKSTREAM_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXPORTS_MAP = os.path.join(SOURCE, "agent", "capture", "exports.map")
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2"}
# Libraries the host must not map (basename prefixes), by project.
FORBIDDEN = {
    "gRPC": ("libgrpc", "libgpr", "libupb", "libaddress_sorting"),
    "protobuf": ("libprotobuf",),
    "abseil": ("libabsl_",),
    "elfutils": ("libdw.", "libdw-", "libelf.", "libelf-"),
    "libunwind": ("libunwind",),
    "spdlog": ("libspdlog",),
    "fmt": ("libfmt",),
    "OpenSSL": ("libssl", "libcrypto"),
}
HZ = 100

t = Checker()
CPU_SPLIT = fixture("cpu_split")
require([AGENT, AGENT_BIN, COLLECTOR, CPU_SPLIT, fixture("forker"), fixture("fixed_work"),
         fixture("deep_recursion")])
D = mkdtemp_for(prefix="ss-hosts-life-")


def tool(name, *args):
    r = subprocess.run([name] + list(args), capture_output=True, timeout=60)
    return r.stdout.decode("utf-8", "replace")


def dyn_defined(path):
    """Names of the dynamic symbols "path" defines (version suffix removed)."""
    names = set()
    for line in tool("nm", "-D", "--defined-only", path).splitlines():
        parts = line.split()
        if len(parts) >= 3:
            names.add(parts[2].split("@")[0])
    return names


def exports_map_globals():
    """The global: entries of the version script (patterns and names)."""
    text = re.sub(r"/\*.*?\*/", "", read_file(EXPORTS_MAP), flags=re.S)
    text = re.sub(r"#[^\n]*", "", text)
    m = re.search(r"global\s*:(.*?)(local\s*:|\})", text, re.S)
    if not m:
        return []
    return [e.strip() for e in m.group(1).split(";") if e.strip()]


def libstdcxx_path():
    out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    m = re.search(r"libstdc\+\+\.so\.6 \(libc6,x86-64\) => (\S+)", out)
    return m.group(1) if m else "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"


def test_elf():
    needed = re.findall(r"\(NEEDED\).*\[(.+?)\]", tool("readelf", "-d", AGENT))
    t.check(needed and set(needed) <= ALLOWED_NEEDED,
            "readelf -d: NEEDED %s (allowed: any of %s)" % (needed, sorted(ALLOWED_NEEDED)))
    entries = exports_map_globals()
    t.check(bool(entries), "exports.map has a global: list (%s)" % entries)
    libc = dyn_defined("/lib/x86_64-linux-gnu/libc.so.6") | \
        dyn_defined("/lib/x86_64-linux-gnu/libm.so.6")
    # C++ operator new/delete are interposed too (forwarded to the host's, for
    # heap profiling): they are the host C++ runtime's, not ours to define.
    libc |= {sym for sym in dyn_defined(libstdcxx_path()) if re.match(r"_Z(nw|na|dl|da)", sym)}
    exported = dyn_defined(AGENT)
    bad = []
    interposed = []
    for sym in sorted(exported):
        if sym.startswith("stackstream_"):
            continue
        in_map = any(fnmatch.fnmatchcase(sym, e) for e in entries if e != "*")
        if in_map and sym in libc:
            interposed.append(sym)
        else:
            bad.append(sym + ("" if in_map else " (not in exports.map)") +
                       ("" if sym in libc else " (not a libc function)"))
    api = sorted(s for s in exported if s.startswith("stackstream_"))
    t.check(not bad, "nm -D: exports only stackstream_* (%d) and libc interposers %s%s"
            % (len(api), interposed, "" if not bad else "; unexpected: %s" % bad[:20]))
    t.check(len(api) > 0, "the C API is exported: %s" % api[:8])


def mapped_libs(pid):
    libs = set()
    for line in read_file("/proc/%d/maps" % pid).splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
            libs.add(parts[5].strip())
    return libs


def maps_of_running(argv, env, at=1.0):
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        time.sleep(at)
        libs = mapped_libs(p.pid)
        threads = len(os.listdir("/proc/%d/task" % p.pid)) if pid_alive(p.pid) else -1
        _, err = p.communicate(timeout=60)
        return libs, threads, p.returncode, err.decode("utf-8", "replace")
    finally:
        stop_group(p)


def test_maps(c):
    argv = [CPU_SPLIT, "--threads=1", "--seconds=2"]
    plain, plain_threads, _, _ = maps_of_running(argv, clean_env())
    env = agent_env(collector=c.grpc_addr, service="lc-maps", no_daemon_dir=D)
    libs, threads, rc, err = maps_of_running(argv, env)
    t.check(rc == 0, "maps: profiled cpu_split exit 0 (%s) %s" % (rc, err[-300:]))
    found = []
    for project, prefixes in FORBIDDEN.items():
        for lib in libs:
            if os.path.basename(lib).startswith(prefixes):
                found.append("%s: %s" % (project, lib))
    t.check(not found, "maps: the profiled process maps none of gRPC, protobuf, abseil, "
            "elfutils, libunwind, spdlog, fmt, OpenSSL%s" % ("" if not found else ": %s" % found))
    extra = sorted(os.path.basename(x) for x in libs - plain)
    t.check(extra == ["libstackstream.so"],
            "maps: the agent adds exactly libstackstream.so to the %d libraries the program "
            "maps alone (added: %s)" % (len(plain), extra))
    print("info maps: threads %d without agent, %d with" % (plain_threads, threads))
    wait_until(lambda: not our_helpers(), 20, 0.2)  # its data is delivered then
    prof, n, _ = wait_for_profile(c, "lc-maps", lambda f: f.startswith("fixture_hot_"), 5)
    t.check(n > 0, "maps: its samples arrive, symbolized (%d of %d in fixture_hot_*; top: %s)"
            % (n, sum((prof or {}).values()), top_functions(prof, 3)))


def test_sigkill(c):
    env = agent_env(collector=c.grpc_addr, service="lc-kill", no_daemon_dir=D, hz=HZ)
    p = subprocess.Popen([CPU_SPLIT, "--threads=1", "--seconds=60"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    watch = HelperWatch().start()
    try:
        reached = wait_until(lambda: (cpu_seconds(p.pid) or 0) >= 3.0 or p.poll() is not None,
                             40, 0.02)
        cpu = cpu_seconds(p.pid) or 0
        os.kill(p.pid, signal.SIGKILL)
        killed_at = time.time()
        p.wait(timeout=10)
    finally:
        stop_group(p)
    if not t.check(reached and cpu >= 3.0, "sigkill: host used %.2f s of CPU before SIGKILL" % cpu):
        return
    expected = cpu * HZ
    got = wait_until(lambda: (lambda n: n if n >= 0.9 * expected else 0)(
        total_samples(c, "lc-kill")), 10, 0.2)
    took = time.time() - killed_at
    got = got or total_samples(c, "lc-kill")
    t.check(got >= 0.9 * expected,
            "sigkill: %d samples in the collector %.1f s after SIGKILL, >= 90%% of %.2f CPU s x "
            "%d Hz = %.0f (%.0f%%)" % (got, took, cpu, HZ, expected, 100.0 * got / expected))
    gone, latency = watch.gone_after(killed_at, 20)
    watch.stop()
    t.check(gone, "sigkill: the helper exits %.1f s after its host was killed (left: %s)"
            % (latency, our_helpers() or "none"))
    kill_our_helpers()


def start_daemon(c, sock, log):
    p = subprocess.Popen([AGENT_BIN, "--listen", "unix:" + sock, "--collector", c.grpc_addr,
                          "--log-file", log], env=clean_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)

    def answers():
        if p.poll() is not None:
            return True
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(1)
                s.connect(sock)
                return True
        except OSError:
            return False
    wait_until(answers, 10, 0.05)
    ok = p.poll() is None and answers()
    return p, ok


def test_daemon(c):
    sock = os.path.join(D, "agent.sock")
    logs = [os.path.join(D, "daemon%d.log" % i) for i in (1, 2, 3)]
    daemon, ok = start_daemon(c, sock, logs[0])
    daemons = [daemon]
    progs = {}
    try:
        if not t.check(ok, "daemon: stackstream-agent --listen unix:%s started" % sock):
            print(read_file(logs[0])[-1500:], daemon.stderr.read().decode()[-1500:]
                  if daemon.poll() is not None else "")
            return
        seconds, flush_ms = 10.0, 500
        t_start = time.time()
        for name in ("a", "b", "c"):
            env = agent_env(service="lc-daemon-" + name, agent_socket=sock, flush_ms=flush_ms,
                            hz=HZ)
            stats = os.path.join(D, "stats-%s.json" % name)
            progs[name] = (subprocess.Popen(
                [CPU_SPLIT, "--threads=1", "--seconds=%g" % seconds, "--stats=" + stats],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True), stats)
        services = ["lc-daemon-" + n for n in progs]
        arrived = wait_until(lambda: all(total_samples(c, s) > 0 for s in services), 6, 0.25)
        t.check(arrived, "daemon: all three programs arrive under their own services "
                "(%s) within %.1f s" % (", ".join("%s=%d" % (s, total_samples(c, s))
                                                   for s in services), time.time() - t_start))
        helpers = set(our_helpers()) - {daemon.pid}
        t.check(not helpers, "daemon: no private helper was started (%s)" % (helpers or "none"))
        watch = HelperWatch(exclude={daemon.pid}).start()
        time.sleep(max(0.0, t_start + 3.0 - time.time()))  # kill 3 s into the run
        before = {s: total_samples(c, s) for s in services}
        # Kill the daemon under them, start a new one on the same path.
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        t_kill = time.time()
        time.sleep(0.5)
        daemon2, ok2 = start_daemon(c, sock, logs[1])
        daemons.append(daemon2)
        stale = os.path.exists(sock)
        if not t.check(ok2, "daemon: a new daemon starts on the same socket path after SIGKILL "
                       "(stale socket file present: %s)" % stale):
            print(read_file(logs[1])[-1000:],
                  daemon2.stderr.read().decode()[-1000:] if daemon2.poll() is not None else "")
            try:
                os.unlink(sock)
            except OSError:
                pass
            daemon2, ok2 = start_daemon(c, sock, logs[2])
            daemons.append(daemon2)
            t.check(ok2, "daemon: ... after removing the stale socket file it starts")
        t_restart = time.time()
        gap = t_restart - t_kill
        watch.exclude |= {d.pid for d in daemons}
        results = {}
        for name, (p, stats) in progs.items():
            try:
                out, err = p.communicate(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                stop_group(p)
                out, err = p.communicate()
            try:
                cpu = json.load(open(stats))["cpu_seconds"]
            except (OSError, ValueError):
                cpu = 0.0
            results[name] = (p.returncode, out, err.decode("utf-8", "replace"), cpu)
        wall = time.time() - t_start
        t_end = time.time()
        watch.stop()
        helpers = watch.seen - {d.pid for d in daemons}
        t.check(not helpers, "daemon: no private helper was started around the restart (%s)"
                % (sorted(helpers) or "none"))
        for name, (rc, out, err, cpu) in sorted(results.items()):
            t.check(rc == 0 and out == b"",
                    "daemon: program %s unharmed by the restart: exit %s, stdout %r, %.2f CPU s%s"
                    % (name, rc, out[:60], cpu, "" if rc == 0 else " stderr: " + err[-300:]))
        t.check(wall <= seconds + 4, "daemon: programs finished on time (%.1f s for %g s "
                "programs)" % (wall, seconds))
        deadline = time.time() + 15  # for all three: data still on its way
        for name, (rc, out, err, cpu) in sorted(results.items()):
            s = "lc-daemon-" + name
            expected = cpu * HZ
            share = cpu / seconds
            allowance = share * HZ * (flush_ms / 1000.0 + gap + 1.0)
            total = total_samples(c, s)
            while total < expected - allowance and time.time() < deadline:
                time.sleep(0.3)
                total = total_samples(c, s)
            cnt = wait_until(lambda: (lambda k: k if k.get("agent_reconnects", 0) >= 1 else None)(
                counters(c, s)), max(0.5, deadline - time.time()), 0.3) or counters(c, s)
            lost = int(cnt.get("samples_lost_agent_restart", 0) or 0)
            # Samples taken after the restart: what arrived beyond the total
            # seen before the kill, against the CPU the program used after it.
            after_expected = share * HZ * (t_end - t_restart)
            t.check(total - before[s] >= 0.8 * after_expected,
                    "daemon: %s: samples taken after the restart arrive: %d more than before "
                    "the kill, >= 80%% of %.0f (%.1f s x share %.2f x %d Hz)"
                    % (s, total - before[s], after_expected, t_end - t_restart, share, HZ))
            t.check(int(cnt.get("agent_reconnects", 0) or 0) >= 1,
                    "daemon: %s: counters show agent_reconnects >= 1 (%s)"
                    % (s, {k: v for k, v in cnt.items() if k in (
                        "agent_reconnects", "samples_lost_agent_restart", "messages_dropped",
                        "samples", "error")}))
            t.check(total >= expected - allowance,
                    "daemon: %s: %d samples >= expected %.0f (%.2f CPU s x %d Hz) - in-flight "
                    "allowance %.0f (share %.2f x %d Hz x (%.1f s flush + %.1f s without daemon "
                    "+ 1 s)); %d before the kill, %d counted lost"
                    % (s, total, expected, cpu, HZ, allowance, share, HZ, flush_ms / 1000.0, gap,
                       before[s], lost))
            t.check(total + lost >= 0.9 * expected,
                    "daemon: %s: delivered + counted lost = %d + %d >= 90%% of %.0f"
                    % (s, total, lost, expected))
        # A long-lived daemon keeps no descriptor of a host that has gone
        # (its memfds, its connection):
        # after a first batch of short hosts (the daemon's channel to the
        # collector and the like exist from then on), 40 more leave its
        # descriptor count where it was.
        live = daemons[-1].pid

        def short_hosts(n):
            for _ in range(n):
                subprocess.run([CPU_SPLIT, "--threads=1", "--seconds=0.05"],
                               env=agent_env(service="lc-daemon-short", agent_socket=sock, hz=HZ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

        def fd_count():  # a host's: its memfds and its connection (module files are cached)
            n = 0
            for fd in os.listdir("/proc/%d/fd" % live):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (live, fd))
                except OSError:
                    continue
                n += target.startswith(("/memfd:", "socket:"))
            return n
        short_hosts(10)
        wait_until(lambda: False, 2, 0.5)  # sessions finish delivering
        fds_before = fd_count()
        short_hosts(40)
        settled = wait_until(lambda: fd_count() <= fds_before + 2, 10, 0.25)  # leaking: +40
        t.check(settled, "daemon: memfds + sockets after 40 more short hosts: %d (before: %d)"
                % (fd_count(), fds_before))
        # SIGTERM the running daemon so that its log is complete.
        daemons[-1].send_signal(signal.SIGTERM)
        try:
            daemons[-1].wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if t.failed:
            for i, log in enumerate(logs):
                if os.path.exists(log):
                    print("---- daemon %d log ----" % (i + 1))
                    print(read_file(log)[-1500:])
    finally:
        for p, _ in progs.values():
            stop_group(p)
        for d in daemons:
            stop_group(d)


def test_dead(c):
    """A collector nobody listens on: the host's run time and exit are
    untouched, and its helper gives up and exits within a bounded time."""
    argv = [CPU_SPLIT, "--threads=1", "--seconds=1", "--exit-code=3"]
    t0 = time.time()
    base = subprocess.run(argv, env=clean_env(), capture_output=True, timeout=60)
    normal = time.time() - t0
    env = agent_env(collector="127.0.0.1:%d" % free_port(), service="lc-dead", no_daemon_dir=D)
    watch = HelperWatch().start()
    t0 = time.time()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        rc = p.wait(timeout=60)
        took = time.time() - t0
        exited = time.time()
        out, err = p.communicate(timeout=60)
        eof_delay = time.time() - exited
    finally:
        stop_group(p)
    gone, latency = watch.gone_after(exited, 30)
    watch.stop()
    t.check(rc == base.returncode == 3 and out == base.stdout,
            "dead collector: exit status and stdout unchanged (%s vs %s)" % (rc, base.returncode))
    t.check(took <= normal + 1.0, "dead collector: the host took %.2f s (%.2f s without the "
            "agent)" % (took, normal))
    t.check(eof_delay <= 2.0, "dead collector: the host's pipes reach EOF %.2f s after it exited"
            % eof_delay)
    t.check(len(watch.seen) == 1 and gone, "dead collector: its helper gave up and exited "
            "%.1f s after the host (limit 30 s; seen %s, left: %s)"
            % (latency, sorted(watch.seen), our_helpers() or "none"))
    lines = [l for l in err.decode("utf-8", "replace").splitlines() if l.strip()]
    print("info dead collector: the host's stderr got %d line(s) from the agent: %s"
          % (len(lines), lines[:2]))


SCRIPT = r'''#!/bin/sh
FIX="$1"
STACKSTREAM_SERVICE=lc-h-split "$FIX/cpu_split" --threads=1 --seconds=1
echo "cpu_split exit $?"
STACKSTREAM_SERVICE=lc-h-fixed "$FIX/fixed_work" --threads=1 --millions=300
echo "fixed_work exit $?"
STACKSTREAM_SERVICE=lc-h-deep "$FIX/deep_recursion" --depth=50 --seconds=1
echo "deep_recursion exit $?"
STACKSTREAM_SERVICE=lc-h-forker "$FIX/forker" --seconds=1
echo "forker exit $?"
exit 7
'''


def run_script(env):
    script = os.path.join(D, "tree.sh")
    with open(script, "w") as f:
        f.write(SCRIPT)
    os.chmod(script, 0o755)
    p = subprocess.Popen(["/bin/sh", script, os.path.dirname(CPU_SPLIT)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # The script writes a few lines (far below a pipe's buffer): wait for
        # its exit first, then for EOF on its pipes, which anything that
        # inherited them (a helper holding the host's stderr) delays.
        p.wait(timeout=60)
        exited = time.time()
        out, err = p.communicate(timeout=30)
        eof = time.time()
    finally:
        stop_group(p)
    return p.pid, p.returncode, out, err.decode("utf-8", "replace"), exited, eof - exited


def test_helper(c):
    _, base_rc, base_out, _, _, _ = run_script(clean_env())
    env = agent_env(collector=c.grpc_addr, service="lc-h-sh", no_daemon_dir=D, hz=HZ)
    watch = HelperWatch().start()
    pid, rc, out, err, exited, eof_delay = run_script(env)
    gone, latency = watch.gone_after(exited, 20)
    t.check(eof_delay <= 2.0, "helper: the script's stdout/stderr pipes reach EOF %.2f s after "
            "it exited (<= 2 s: nothing keeps a caller's $(...) waiting)" % eof_delay)
    watch.stop()
    seen, sockets = watch.seen, watch.sockets
    t.check(rc == base_rc == 7 and out == base_out,
            "helper: script stdout and exit status unchanged (exit %s vs %s; %r)"
            % (rc, base_rc, out.decode()[-120:]))
    t.check(len(seen) == 1, "helper: exactly one private helper served the whole tree: %s"
            % (sorted(seen) or "none seen"))
    mine = [s for s in sockets if re.match(r"@stackstream-helper\.\d+\.%d\.\d+$" % pid, s)]
    t.check(bool(mine), "helper: it listened on the abstract socket named after the shell "
            "(pid %d): %s" % (pid, mine or sorted(sockets)[:4]))
    want = [("lc-h-split", "fixture_hot_a"), ("lc-h-fixed", "fixture_fixed_leaf"),
            ("lc-h-deep", "fixture_recurse"), ("lc-h-forker", "fixture_parent_work"),
            ("lc-h-forker", "fixture_child_work")]
    for service, fn in want:
        prof, n, waited = wait_for_profile(c, service, lambda f, fn=fn: f == fn, 5)
        t.check(n > 0, "helper: %s arrives with %s (%d samples, after %.1f s)%s"
                % (service, fn, n, waited, "" if n else "; top: %s" % top_functions(prof, 4)))
    t.check(gone, "helper: gone %.1f s after the script exited (limit 20 s; left: %s)"
            % (latency, our_helpers() or "none"))
    agent_lines = [l for l in err.splitlines() if "stackstream" in l.lower()]
    t.check(not agent_lines, "helper: nothing from the agent on the script's stderr%s"
            % ("" if not agent_lines else ": " + " | ".join(agent_lines[:3])))


CASES = ["elf", "maps", "sigkill", "daemon", "helper", "dead"]
unknown = [a for a in sys.argv[1:] if a not in CASES]
if unknown:
    print("usage: test_lifecycle.py [%s ...] (unknown: %s)" % ("|".join(CASES), unknown))
    raise SystemExit(2)
selected = sys.argv[1:] or CASES
try:
    if "elf" in selected:
        test_elf()
    if any(case != "elf" for case in selected):
        with Collector() as col:
            for case in selected:
                if case == "elf":
                    continue
                print("---- %s" % case, flush=True)
                globals()["test_" + case](col)
                kill_our_helpers()
            if t.failed:
                print("---- collector log ----")
                print(col.read_log()[-2000:])
finally:
    kill_our_helpers()
    shutil.rmtree(D, ignore_errors=True)
t.finish()
