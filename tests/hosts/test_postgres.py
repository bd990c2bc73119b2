#!/usr/bin/env python3
"""PostgreSQL (Debian's postgresql package) under the real agent, the case
that broke the in-host design (issue 9): `pgbench -C` opens a new connection
per transaction, so the postmaster fork()s a backend (no exec) for each.

One private cluster (initdb into a temp dir owned by the postgres user;
PostgreSQL refuses to run as root), started twice on a free loopback port:
first without the agent (baseline), then with libstackstream.so preloaded
into the postmaster (STACKSTREAM_SERVICE=postgres, the private helper
stackstream-agent). Each run: `pgbench -i`, then `pgbench -C -c 4 -S -T 10`,
then `pg_ctl stop -m fast`.

Checks (with the agent): pgbench exits 0 and reports its tps, with no failed
transactions; the server log shows no backend crash ("terminated by signal",
"was terminated", "exited with exit code N>0", "database system was
interrupted", "crash recovery", PANIC) and no agent line; `pg_ctl stop -m
fast` returns within 10 s and the postmaster exits 0 (as without the agent)
with the same (empty) stdout; the collector's profile of service "postgres"
has backend code (PostgresMain); the helper is gone after the server stopped.
Prints the tps ratio agent/baseline (no assertion on timing: BENCHMARKS.md).
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hosts_util import (AGENT, AGENT_BIN, HelperWatch, agent_env, agent_log_lines,  # noqa: E402
                        clean_env, kill_our_helpers, mkdtemp_for, newest_pg_bindir, our_helpers,
                        check_sample_ratio, read_file, require, require_tools, stop_group,
                        top_functions, tree_cpu, kernel_time_sampled, counters,
                        wait_for_profile, wait_until)
from stackstream_test import COLLECTOR, Checker, Collector, free_port  # noqa: E402

PG_USER = "postgres"
SERVICE = "postgres"
HZ = 100
BENCH_SECONDS = 10
CRASH_PATTERNS = [r"terminated by signal", r"was terminated", r"exited with exit code [1-9]",
                  r"database system was interrupted", r"crash recovery", r"\bPANIC\b",
                  r"server process .* exited with exit code [1-9]"]

t = Checker()
require([AGENT, AGENT_BIN, COLLECTOR])
BIN = newest_pg_bindir()
if BIN is None:
    require_tools(["/usr/lib/postgresql/N/bin/postgres (package postgresql)"])
require_tools([os.path.join(BIN, x) for x in ("postgres", "initdb", "pg_ctl", "pgbench",
                                                 "pg_isready")])
try:
    import pwd
    pwd.getpwnam(PG_USER)
except KeyError:
    require_tools(["user " + PG_USER + " (created by the postgresql package)"])

D = mkdtemp_for(PG_USER, prefix="ss-hosts-pg-")
DATA = os.path.join(D, "data")
PORT = free_port()


def agent_for_pg_user():
    """The library path the postgres user can load. When the build tree is
    not readable by that user (e.g. a checkout under /root), the library and
    stackstream-agent are copied into the same layout (agent/, bin/) in the
    test's dir, so the library still finds ../bin/stackstream-agent."""
    ok = all(subprocess.run(["test", flag, path], user=PG_USER, group=PG_USER, cwd="/",
                            capture_output=True).returncode == 0
             for flag, path in (("-r", AGENT), ("-x", AGENT_BIN)))
    if ok:
        return AGENT
    base = os.path.join(D, "agent-copy")
    for src, sub in ((AGENT, "agent"), (AGENT_BIN, "bin")):
        os.makedirs(os.path.join(base, sub), mode=0o755, exist_ok=True)
        shutil.copy2(src, os.path.join(base, sub))
    os.chmod(base, 0o755)
    print("info the build tree is not readable by %s: using a copy in %s" % (PG_USER, base))
    return os.path.join(base, "agent", os.path.basename(AGENT))


def as_pg(argv, env=None, timeout=60, **kw):
    """Runs argv as the postgres user (no agent unless env says so)."""
    return subprocess.run(argv, env=env or clean_env(), user=PG_USER, group=PG_USER, cwd=D,
                          capture_output=True, timeout=timeout, **kw)


def pgbench(args, timeout):
    """pgbench as a plain client (never profiled) against our server."""
    env = clean_env()
    env.update(PGHOST="127.0.0.1", PGPORT=str(PORT), PGUSER=PG_USER, PGDATABASE="postgres")
    return subprocess.run([os.path.join(BIN, "pgbench")] + args, env=env, capture_output=True,
                          timeout=timeout)


def start_server(env, name):
    """Starts the postmaster in the foreground (its own session); returns
    (Popen, log path, stdout path)."""
    log = os.path.join(D, name + ".log")
    out = os.path.join(D, name + ".stdout")
    with open(log, "wb") as lf, open(out, "wb") as of:
        proc = subprocess.Popen(
            [os.path.join(BIN, "postgres"), "-D", DATA, "-p", str(PORT),
             "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + D,
             "-c", "fsync=off", "-c", "logging_collector=off", "-c", "max_connections=50"],
            env=env, user=PG_USER, group=PG_USER, cwd=D, stdout=of, stderr=lf,
            start_new_session=True)
    ready = wait_until(lambda: proc.poll() is not None or subprocess.run(
        [os.path.join(BIN, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(PORT), "-U", PG_USER,
         "-d", "postgres"], env=clean_env(), capture_output=True, timeout=10).returncode == 0,
        30, 0.2)
    if not ready or proc.poll() is not None:
        raise RuntimeError("postgres did not start (%s): %s" % (name, read_file(log)[-2000:]))
    return proc, log, out


def stop_server(proc):
    """pg_ctl stop -m fast; returns (pg_ctl returncode, seconds, postmaster rc)."""
    t0 = time.time()
    try:
        r = as_pg([os.path.join(BIN, "pg_ctl"), "stop", "-D", DATA, "-m", "fast", "-w",
                   "-t", "20"], timeout=30)
        rc = r.returncode
    except subprocess.TimeoutExpired:
        rc = -1
    took = time.time() - t0
    try:
        prc = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        prc = None
    return rc, took, prc


def bench_run(env, name):
    """One server run: start, pgbench -i, pgbench -C; returns a dict."""
    res = {"name": name}
    proc = None
    watch = HelperWatch().start()
    try:
        proc, res["log"], res["stdout_path"] = start_server(env, name)
        res["pid"] = proc.pid
        r = pgbench(["-i", "-q"], timeout=120)
        res["init_rc"] = r.returncode
        res["init_err"] = r.stderr.decode("utf-8", "replace")[-1500:]
        bench = subprocess.Popen(
            [os.path.join(BIN, "pgbench"), "-C", "-c", "4", "-S", "-T", str(BENCH_SECONDS)],
            env=dict(clean_env(), PGHOST="127.0.0.1", PGPORT=str(PORT), PGUSER=PG_USER,
                     PGDATABASE="postgres"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + BENCH_SECONDS + 60
        while bench.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        if bench.poll() is None:
            bench.kill()
        out, err = bench.communicate(timeout=30)
        res["bench_rc"] = bench.returncode
        res["bench_out"] = out.decode("utf-8", "replace")
        res["bench_err"] = err.decode("utf-8", "replace")[-1500:]
        m = re.search(r"^tps = ([0-9.]+)", res["bench_out"], re.M)
        res["tps"] = float(m.group(1)) if m else None
        m = re.search(r"number of failed transactions: (\d+)", res["bench_out"])
        res["failed_tx"] = int(m.group(1)) if m else None
        m = re.search(r"number of transactions actually processed: (\d+)", res["bench_out"])
        res["tx"] = int(m.group(1)) if m else None
        # The postmaster runs as the postgres user: at perf_event_paranoid 2
        # its perf clock counts user time only (backends of pgbench -C spend
        # most of theirs in the kernel: fork, exit, page faults).
        res["server_cpu"] = tree_cpu(proc.pid, user_only=not kernel_time_sampled(False))
        res["stop_rc"], res["stop_s"], res["postmaster_rc"] = stop_server(proc)
        res["helper_gone"], res["helper_latency"] = watch.gone_after(time.time(), 20)
        res["helpers"] = watch.seen
        res["stdout"] = read_file(res["stdout_path"], "rb")
        res["log_text"] = read_file(res["log"])
    finally:
        watch.stop()
        stop_group(proc)
    return res




try:
    r = as_pg([os.path.join(BIN, "initdb"), "-D", DATA, "-U", PG_USER, "--auth=trust",
               "-E", "UTF8", "--no-sync"], timeout=120)
    if not t.check(r.returncode == 0, "initdb of a private cluster in %s" % DATA):
        print(r.stdout.decode()[-1000:], r.stderr.decode()[-2000:])
        t.finish()

    base = bench_run(clean_env(), "baseline")
    t.check(base["bench_rc"] == 0 and base["tps"],
            "baseline (no agent): pgbench -C exit %s, tps %s" % (base["bench_rc"], base["tps"]))

    with Collector() as c:
        env = agent_env(collector=c.grpc_addr, service=SERVICE, no_daemon_dir=D,
                        flush_ms=1000, hz=HZ)
        env["LD_PRELOAD"] = agent_for_pg_user()
        run = bench_run(env, "agent")
        t.check(run["init_rc"] == 0, "with agent: pgbench -i exit 0 (%s) %s"
                % (run["init_rc"], run["init_err"] if run["init_rc"] else ""))
        t.check(run["bench_rc"] == 0, "with agent: pgbench -C -c 4 -S -T %d exit 0 (%s) %s"
                % (BENCH_SECONDS, run["bench_rc"], run["bench_err"] if run["bench_rc"] else ""))
        t.check(run["tps"] is not None and run["tps"] > 0,
                "with agent: pgbench reports tps (%s, %s transactions)" % (run["tps"], run["tx"]))
        t.check(run["failed_tx"] in (None, 0),
                "with agent: no failed transactions (%s)" % run["failed_tx"])
        # (The logical replication launcher exits with code 1 at every
        # shutdown: PostgreSQL's normal behaviour, not a crash.)
        crashes = [l for l in run["log_text"].splitlines()
                   if any(re.search(p, l) for p in CRASH_PATTERNS) and
                   "logical replication launcher" not in l]
        t.check(not crashes, "with agent: no backend crash in the server log%s"
                % ("" if not crashes else ": " + " | ".join(crashes[:5])))
        noise = agent_log_lines(run["log_text"])
        t.check(not noise, "with agent: the agent wrote nothing into the server's stderr%s"
                % ("" if not noise else ": " + " | ".join(noise[:5])))
        t.check(run["stop_rc"] == 0 and run["stop_s"] <= 10.0,
                "with agent: pg_ctl stop -m fast returned %s in %.1f s (<= 10 s)"
                % (run["stop_rc"], run["stop_s"]))
        t.check(run["postmaster_rc"] == base["postmaster_rc"] == 0,
                "postmaster exit status %s with agent, %s without"
                % (run["postmaster_rc"], base["postmaster_rc"]))
        t.check(run["stdout"] == base["stdout"],
                "server stdout unchanged (%d vs %d bytes)" % (len(run["stdout"]),
                                                             len(base["stdout"])))
        t.check(len(run["helpers"]) == 1,
                "one private helper served the postmaster and all its backends: %s"
                % (sorted(run["helpers"]) or "none seen"))

        t.check(run["helper_gone"], "helper gone %.1f s after the server stopped (limit 20 s; "
                "left: %s)" % (run["helper_latency"], our_helpers() or "none"))
        # Everything was delivered when the helper left; a short poll only.
        prof, n, waited = wait_for_profile(c, SERVICE, lambda f: f == "PostgresMain", 10)
        t.check(n > 0, "profile of service %s has PostgresMain: %d samples (after %.1f s); "
                "top self: %s" % (SERVICE, n, waited, top_functions(prof)))
        # The server's CPU: postmaster, live children and every reaped
        # backend (cutime). With persistent connections (no -C) the agent
        # delivers ~98% of CPU s x Hz; backends living a few ms each must
        # not lose most of theirs.
        total = sum(prof.values()) if prof else 0
        print("info agent counters for %s: %s" % (SERVICE, counters(c, SERVICE)))
        check_sample_ratio(t, "samples of the postmaster and its short-lived backends", total,
                           run["server_cpu"], HZ, 0.5)
        # Label cardinality: pgbench -C makes one backend process per
        # transaction; pid is a process label (kept per write), so the
        # service stays one label set while every backend stays queryable.
        sets = [ls for s in c.get_json("/api/v1/services") if s["service"] == SERVICE
                for ls in s["label_sets"]]
        pids = c.label_values("pid", '{service_name="%s"}' % SERVICE)
        t.check(1 <= len(sets) <= 10 and all("pid" not in ls for ls in sets),
                "%d profiled processes (LabelValues pid), %d label set(s) in /api/v1/services "
                "(<= 10, none with pid)" % (len(pids), len(sets)))
        t.check(len(pids) >= 50, "LabelValues pid lists the backends (%d >= 50; %s transactions)"
                % (len(pids), run["tx"]))
        one = next((p for p in pids if p != str(run["pid"])), None)
        if one is not None:
            status, body = c.get("/api/v1/profile", service=SERVICE, selector='{pid="%s"}' % one,
                                 format="folded", **{"from": "now-1h", "to": "now+1h"})
            t.check(status == 200 and body.strip(), "profile of one backend ({pid=\"%s\"}): HTTP %d, "
                    "%d bytes" % (one, status, len(body)))
        if base["tps"] and run["tps"]:
            print("info pgbench -C -c 4 -S -T %d: %.1f tps without agent, %.1f with: ratio %.3f"
                  % (BENCH_SECONDS, base["tps"], run["tps"], run["tps"] / base["tps"]))
        if t.failed:
            print("---- server log (agent run), last lines ----")
            print(run["log_text"][-3000:])
            print("---- collector log ----")
            print(c.read_log()[-2000:])
finally:
    kill_our_helpers()
    shutil.rmtree(D, ignore_errors=True)
t.finish()
