#!/usr/bin/env python3
"""redis-server (Debian's redis-server) under the real agent: an event-loop
server with background threads, that fork()s without exec for BGSAVE.

redis-server runs in the foreground on 127.0.0.1:<free port>, its dir,
dump file and log file in a temp dir, no persistence besides the explicit
BGSAVE. The same scenario runs without and with libstackstream.so preloaded
(STACKSTREAM_SERVICE=redis): `redis-benchmark -q -n 20000`, BGSAVE (polled
through `INFO persistence` until rdb_bgsave_in_progress:0), SHUTDOWN NOSAVE.

Checks (with the agent): redis-benchmark exits 0 and reports the same tests
(requests per second for each) as without the agent; BGSAVE completes with
rdb_last_bgsave_status:ok and writes the dump; SHUTDOWN ends the server
with the same exit status and stdout as without the agent; the log shows no
crash and no agent line; the collector's profile of service "redis" names
redis's event loop / command code (aeProcessEvents, processCommand, call,
...); the helper is gone after the server stopped.
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hosts_util import (AGENT, AGENT_BIN, HelperWatch, agent_env, agent_log_lines,  # noqa: E402
                        check_sample_ratio, clean_env, tree_cpu,
                        kill_our_helpers, mkdtemp_for, our_helpers, read_file, require,
                        require_tools, stop_group, top_functions, wait_for_profile, wait_until)
from stackstream_test import COLLECTOR, Checker, Collector, free_port  # noqa: E402

SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
BENCH = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
SERVICE = "redis"
REQUESTS = 20000
HZ = 100
REDIS_FUNCS = ("aeProcessEvents", "processCommand", "call", "processInputBuffer",
               "readQueryFromClient", "beforeSleep", "aeMain", "rdbSaveRio", "rdbSave",
               "rdbSaveBackground")

t = Checker()
require([AGENT, AGENT_BIN, COLLECTOR])
require_tools([SERVER, CLI, BENCH])
D = mkdtemp_for(prefix="ss-hosts-redis-")


def cli(port, *args, timeout=10):
    return subprocess.run([CLI, "-h", "127.0.0.1", "-p", str(port)] + list(args),
                          env=clean_env(), capture_output=True, timeout=timeout)


def info_persistence(port):
    r = cli(port, "INFO", "persistence")
    out = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        if ":" in line:
            k, v = line.strip().split(":", 1)
            out[k] = v
    return out


def bench_tests(text):
    """{test name: rps} from redis-benchmark -q output (\\r progress lines)."""
    tests = {}
    for line in re.split(r"[\r\n]", text):
        m = re.match(r"^\s*([A-Za-z0-9_ ().,\-]+?): ([0-9.]+) requests per second", line)
        if m:
            tests[m.group(1).strip()] = float(m.group(2))
    return tests


def scenario(run, env):
    port = free_port()
    d = os.path.join(D, run)
    os.makedirs(d)
    res = {"run": run}
    out_path, log_path = os.path.join(d, "stdout"), os.path.join(d, "redis.log")
    err_path = os.path.join(d, "stderr")
    proc = None
    watch = HelperWatch().start()
    try:
        with open(out_path, "wb") as of, open(err_path, "wb") as ef:
            proc = subprocess.Popen(
                [SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                 "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--logfile", log_path, "--protected-mode", "yes"],
                env=env, stdout=of, stderr=ef, start_new_session=True)
        up = wait_until(lambda: proc.poll() is not None or cli(port, "PING").stdout.strip() ==
                        b"PONG", 20, 0.1)
        res["started"] = bool(up) and proc.poll() is None
        if not res["started"]:
            res["error"] = read_file(log_path)[-1500:]
            return res
        b = subprocess.run([BENCH, "-q", "-n", str(REQUESTS), "-h", "127.0.0.1", "-p", str(port)],
                           env=clean_env(), capture_output=True, timeout=180)
        res["bench_rc"] = b.returncode
        res["bench_err"] = b.stderr.decode("utf-8", "replace")[-1000:]
        res["bench"] = bench_tests(b.stdout.decode("utf-8", "replace"))
        r = cli(port, "BGSAVE")
        res["bgsave_reply"] = r.stdout.decode("utf-8", "replace").strip()
        info = wait_until(lambda: (lambda i: i if i.get("rdb_bgsave_in_progress") == "0" and
                                   i.get("rdb_last_bgsave_status") else None)(
                                       info_persistence(port)), 30, 0.2)
        res["bgsave_info"] = info or info_persistence(port)
        res["dump"] = os.path.exists(os.path.join(d, "dump.rdb"))
        res["ping_after"] = cli(port, "PING").stdout.strip()
        res["server_cpu"] = tree_cpu(proc.pid)  # all threads + the reaped BGSAVE child
        t0 = time.time()
        cli(port, "SHUTDOWN", "NOSAVE")
        try:
            res["rc"] = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            res["rc"] = None
        res["stop_s"] = time.time() - t0
        res["helper_gone"], res["helper_latency"] = watch.gone_after(time.time(), 20)
        res["helpers"] = watch.seen
        res["stdout"] = read_file(out_path, "rb")
        res["stderr"] = read_file(err_path)
        res["log"] = read_file(log_path)
    finally:
        watch.stop()
        stop_group(proc)
    return res


def check_run(res, label):
    if not t.check(res.get("started"), "%s: redis-server started and answers PING" % label):
        print(res.get("error", ""))
        return False
    t.check(res["bench_rc"] == 0 and res["bench"],
            "%s: redis-benchmark -q -n %d exit %s, %d tests: %s %s"
            % (label, REQUESTS, res["bench_rc"], len(res["bench"]),
               ", ".join("%s %.0f/s" % kv for kv in list(res["bench"].items())[:4]),
               res["bench_err"] if res["bench_rc"] else ""))
    info = res["bgsave_info"]
    t.check("Background saving started" in res["bgsave_reply"] and
            info.get("rdb_bgsave_in_progress") == "0" and
            info.get("rdb_last_bgsave_status") == "ok" and res["dump"],
            "%s: BGSAVE (fork) completed: reply %r, in_progress %s, status %s, dump written %s"
            % (label, res["bgsave_reply"], info.get("rdb_bgsave_in_progress"),
               info.get("rdb_last_bgsave_status"), res["dump"]))
    t.check(res["ping_after"] == b"PONG", "%s: server answers after BGSAVE" % label)
    t.check(res["rc"] is not None, "%s: SHUTDOWN ended the server in %.1f s (exit %s)"
            % (label, res["stop_s"], res["rc"]))
    crash = [l for l in res["log"].splitlines()
             if re.search(r"crashed by signal|Killed by signal|terminated by signal|"
                          r"Background saving error|Guru Meditation", l)]
    t.check(not crash, "%s: no crash / failed save in the log%s"
            % (label, "" if not crash else ": " + " | ".join(crash[:4])))
    return True


try:
    base = scenario("baseline", clean_env())
    check_run(base, "without agent")
    with Collector() as c:
        env = agent_env(collector=c.grpc_addr, service=SERVICE, no_daemon_dir=D, flush_ms=1000,
                        hz=HZ)
        run = scenario("agent", env)
        if check_run(run, "with agent"):
            t.check(set(run["bench"]) == set(base.get("bench") or {}),
                    "redis-benchmark ran the same tests as without the agent (%d vs %d)"
                    % (len(run["bench"]), len(base.get("bench") or {})))
            t.check(run["rc"] == base.get("rc"), "exit status unchanged (%s, without agent %s)"
                    % (run["rc"], base.get("rc")))
            t.check(run["stdout"] == base.get("stdout"), "stdout unchanged (%d vs %d bytes)"
                    % (len(run["stdout"]), len(base.get("stdout") or b"")))
            noise = agent_log_lines(run["stdout"].decode("utf-8", "replace")) + \
                agent_log_lines(run["stderr"]) + agent_log_lines(run["log"])
            t.check(not noise, "the agent wrote nothing into redis's stdout / stderr / log%s"
                    % ("" if not noise else ": " + " | ".join(noise[:4])))
            t.check(len(run["helpers"]) == 1, "one private helper: %s"
                    % (sorted(run["helpers"]) or "none seen"))
            t.check(run["helper_gone"], "helper gone %.1f s after redis stopped (limit 20 s; "
                    "left: %s)" % (run["helper_latency"], our_helpers() or "none"))
            prof, n, waited = wait_for_profile(c, SERVICE, lambda f: f in REDIS_FUNCS, 10)
            t.check(n > 0, "profile of service %s names redis functions (%s): %d samples "
                    "(after %.1f s); top self: %s" % (SERVICE, "/".join(REDIS_FUNCS[:3]), n,
                                                      waited, top_functions(prof)))
            check_sample_ratio(t, "samples of redis-server (threads + BGSAVE child)",
                               sum((prof or {}).values()), run["server_cpu"], HZ, 0.7)
        if t.failed:
            print("---- redis log (agent run) ----")
            print(run.get("log", "")[-3000:])
            print("---- collector log ----")
            print(c.read_log()[-2000:])
finally:
    kill_our_helpers()
    shutil.rmtree(D, ignore_errors=True)
t.finish()
