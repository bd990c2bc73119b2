#!/usr/bin/env python3
"""nginx (Debian's nginx-light) under the real agent: a master process and 2
worker processes (fork without exec; workers switch to www-data), a reload
(SIGHUP: new workers, old ones drain and exit) and a graceful stop (SIGQUIT).

nginx runs in the foreground (daemon off, master_process on) with a private
prefix, config, pid file, error log and temp paths in a temp dir, listening
on 127.0.0.1:<free port>. The same scenario runs twice, without and with
libstackstream.so preloaded into the master (STACKSTREAM_SERVICE=nginx):
N requests (urllib, 4 client threads), SIGHUP, N more, SIGQUIT.

Checks (with the agent): every response is 200 with the exact body; the
reload replaced both workers; SIGQUIT stops nginx within 20 s; exit status
and stdout are the same as without the agent; the error log has no
[alert]/[emerg]/[crit] line, no worker "exited on signal" and no agent line;
the collector's profile of service "nginx" names nginx functions (any frame
"ngx_*"); the helper is gone after nginx stopped.
"""
import concurrent.futures
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hosts_util import (AGENT, AGENT_BIN, TAG, HelperWatch, agent_env, agent_log_lines,  # noqa: E402,E501
                        check_sample_ratio, children_of, clean_env, kill_our_helpers,
                        mkdtemp_for, our_helpers, tree_cpu,
                        pid_alive, read_file, require, require_tools, samples_with, stop_group,
                        top_functions, wait_for_profile, wait_until)
from stackstream_test import COLLECTOR, Checker, Collector, free_port  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SERVICE = "nginx"
HZ = 500  # nginx uses little CPU per request: a higher rate for enough samples
REQUESTS = 2000  # per phase
BODY = ("stackstream hosts test %s\n" % TAG * 40).encode()

t = Checker()
require([AGENT, AGENT_BIN, COLLECTOR])
require_tools([NGINX])
try:
    pwd.getpwnam("www-data")
    WORKER_USER = "www-data"
except KeyError:
    WORKER_USER = "nobody"

D = mkdtemp_for(prefix="ss-hosts-nginx-")


def write_conf(run, port):
    prefix = os.path.join(D, run)
    for sub in ("www", "tmp", "logs"):
        os.makedirs(os.path.join(prefix, sub), exist_ok=True)
    os.chmod(prefix, 0o755)
    with open(os.path.join(prefix, "www", "index.html"), "wb") as f:
        f.write(BODY)
    conf = os.path.join(prefix, "nginx.conf")
    tmp = os.path.join(prefix, "tmp")
    with open(conf, "w") as f:
        f.write("""
user %(user)s;
worker_processes 2;
master_process on;
daemon off;
pid %(prefix)s/nginx.pid;
error_log %(prefix)s/logs/error.log notice;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path %(tmp)s/body;
    proxy_temp_path %(tmp)s/proxy;
    fastcgi_temp_path %(tmp)s/fastcgi;
    uwsgi_temp_path %(tmp)s/uwsgi;
    scgi_temp_path %(tmp)s/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        root %(prefix)s/www;
        location / { index index.html; }
    }
}
""" % {"user": WORKER_USER, "prefix": prefix, "tmp": tmp, "port": port})
    return prefix, conf


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except Exception as e:  # noqa: BLE001 - any failure is a failed request
        return repr(e), b""


def serve(url, n):
    """n GETs over 4 threads; returns (ok count, first problems)."""
    ok, bad = 0, []
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for status, body in ex.map(fetch, [url] * n):
            if status == 200 and body == BODY:
                ok += 1
            elif len(bad) < 3:
                bad.append((status, body[:80]))
    return ok, bad


def scenario(run, env):
    port = free_port()
    prefix, conf = write_conf(run, port)
    url = "http://127.0.0.1:%d/" % port
    res = {"run": run}
    out_path = os.path.join(prefix, "stdout")
    err_path = os.path.join(prefix, "stderr")
    proc = None
    watch = HelperWatch().start()
    try:
        with open(out_path, "wb") as of, open(err_path, "wb") as ef:
            proc = subprocess.Popen([NGINX, "-p", prefix, "-c", conf,
                                     "-e", os.path.join(prefix, "logs", "error.log")],
                                    env=env, stdout=of, stderr=ef, start_new_session=True)
        up = wait_until(lambda: proc.poll() is not None or fetch(url)[0] == 200, 20, 0.1)
        res["started"] = bool(up) and proc.poll() is None
        if not res["started"]:
            res["error"] = read_file(os.path.join(prefix, "logs", "error.log"))[-1500:]
            return res
        workers = wait_until(lambda: len(children_of(proc.pid)) == 2 and children_of(proc.pid),
                             10)
        res["workers_before"] = sorted(workers or [])
        res["phase1"] = serve(url, REQUESTS)
        os.kill(proc.pid, signal.SIGHUP)
        old = set(res["workers_before"])

        def reloaded():
            kids = set(children_of(proc.pid))
            alive_old = [p for p in old if pid_alive(p)]
            return len(kids) == 2 and not (kids & old) and not alive_old and kids

        new = wait_until(reloaded, 20, 0.1)
        res["workers_after"] = sorted(new or children_of(proc.pid))
        res["reloaded"] = bool(new)
        res["phase2"] = serve(url, REQUESTS)
        res["server_cpu"] = tree_cpu(proc.pid)  # master, workers, reaped old workers
        t0 = time.time()
        os.kill(proc.pid, signal.SIGQUIT)
        try:
            res["rc"] = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            res["rc"] = None
        res["stop_s"] = time.time() - t0
        res["helper_gone"], res["helper_latency"] = watch.gone_after(time.time(), 20)
        res["helpers"] = watch.seen
        res["stdout"] = read_file(out_path, "rb")
        res["stderr"] = read_file(err_path)
        res["error_log"] = read_file(os.path.join(prefix, "logs", "error.log"))
    finally:
        watch.stop()
        stop_group(proc)
    return res


def check_run(res, label):
    if not t.check(res.get("started"), "%s: nginx started and answers" % label):
        print(res.get("error", ""))
        return False
    t.check(len(res["workers_before"]) == 2, "%s: 2 worker processes %s"
            % (label, res["workers_before"]))
    for phase in ("phase1", "phase2"):
        ok, bad = res[phase]
        t.check(ok == REQUESTS, "%s: %s: %d/%d responses 200 with the right body %s"
                % (label, "before reload" if phase == "phase1" else "after reload", ok, REQUESTS,
                   bad or ""))
    t.check(res["reloaded"], "%s: SIGHUP replaced both workers (%s -> %s)"
            % (label, res["workers_before"], res["workers_after"]))
    t.check(res["rc"] is not None, "%s: SIGQUIT stopped nginx in %.1f s (exit status %s)"
            % (label, res["stop_s"], res["rc"]))
    bad_lines = [l for l in res["error_log"].splitlines()
                 if re.search(r"\[(alert|emerg|crit)\]|exited on signal", l)]
    t.check(not bad_lines, "%s: no alert/crash in the error log%s"
            % (label, "" if not bad_lines else ": " + " | ".join(bad_lines[:4])))
    return True


try:
    base = scenario("baseline", clean_env())
    check_run(base, "without agent")
    with Collector() as c:
        env = agent_env(collector=c.grpc_addr, service=SERVICE, no_daemon_dir=D,
                        flush_ms=1000, hz=HZ)
        run = scenario("agent", env)
        if check_run(run, "with agent"):
            t.check(run["rc"] == base.get("rc"), "exit status unchanged (%s, without agent %s)"
                    % (run["rc"], base.get("rc")))
            t.check(run["stdout"] == base.get("stdout"), "stdout unchanged (%d vs %d bytes)"
                    % (len(run["stdout"]), len(base.get("stdout") or b"")))
            noise = agent_log_lines(run["stderr"]) + agent_log_lines(run["error_log"])
            t.check(not noise, "the agent wrote nothing into nginx's stderr / error log%s"
                    % ("" if not noise else ": " + " | ".join(noise[:4])))
            t.check(len(run["helpers"]) == 1, "one private helper for master and workers: %s"
                    % (sorted(run["helpers"]) or "none seen"))
            t.check(run["helper_gone"], "helper gone %.1f s after nginx stopped (limit 20 s; "
                    "left: %s)" % (run["helper_latency"], our_helpers() or "none"))
            prof, n, waited = wait_for_profile(c, SERVICE, lambda f: f.startswith("ngx_"), 10)
            t.check(n > 0, "profile of service %s names nginx functions (ngx_*): %d samples "
                    "(after %.1f s); top self: %s" % (SERVICE, n, waited, top_functions(prof)))
            http = samples_with(prof, lambda f: f.startswith("ngx_http_"))
            print("info samples in ngx_http_* frames: %d of %d" % (http, sum((prof or {}).values())))
            check_sample_ratio(t, "samples of master and workers", sum((prof or {}).values()),
                               run["server_cpu"], HZ, 0.7)
        if t.failed:
            print("---- nginx error log (agent run) ----")
            print(run.get("error_log", "")[-3000:])
            print("---- collector log ----")
            print(c.read_log()[-2000:])
finally:
    kill_our_helpers()
    shutil.rmtree(D, ignore_errors=True)
t.finish()
