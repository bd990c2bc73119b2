#!/usr/bin/env python3
"""A Python gRPC server and client (Debian's python3-grpcio, which carries
its own gRPC core, abseil and OpenSSL: the symbol-clash case of issue 9),
both run by /usr/bin/python3 with the real agent preloaded.

The server serves one unary method through a generic handler (no generated
stubs): /stackstream.test.Echo/Echo returns b"echo:" + request. The client
makes N RPCs, checks every reply and prints a deterministic summary; the
server prints how many it served after SIGTERM. Run once without the agent,
once with it (services "grpc-server" and "grpc-client").

Checks (with the agent): all N RPCs succeed; client and server stdout and
exit statuses are the same as without the agent; nothing from the agent on
their stderr; each service's profile names the interpreter
(_PyEval_EvalFrameDefault); the helpers are gone after both exited. Prints
how many samples name gRPC core code (grpc_*/grpc_core::*).
"""
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hosts_util import (AGENT, AGENT_BIN, HelperWatch, agent_env, agent_log_lines,  # noqa: E402
                        check_sample_ratio, clean_env,
                        kill_our_helpers, mkdtemp_for, our_helpers, require, require_tools,
                        read_file, samples_with, stop_group, top_functions, wait_for_profile)
from stackstream_test import COLLECTOR, Checker, Collector, free_port  # noqa: E402

PY = "/usr/bin/python3"
HZ = 100
RPCS = 3000

SERVER_PY = r'''
import concurrent.futures, signal, sys, threading
import grpc
port = int(sys.argv[1])
served = [0]
lock = threading.Lock()
def echo(request, context):
    with lock:
        served[0] += 1
    return b"echo:" + request
handler = grpc.method_handlers_generic_handler(
    "stackstream.test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((handler,))
if server.add_insecure_port("127.0.0.1:%d" % port) != port:
    sys.exit(3)
server.start()
print("server listening", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
while not stop.wait(0.2):
    pass
server.stop(grace=2).wait()
print("server served %d" % served[0], flush=True)
'''

CLIENT_PY = r'''
import hashlib, sys
import grpc
addr, n = sys.argv[1], int(sys.argv[2])
with grpc.insecure_channel(addr) as channel:
    grpc.channel_ready_future(channel).result(timeout=20)
    echo = channel.unary_unary("/stackstream.test.Echo/Echo")
    ok, digest = 0, hashlib.sha256()
    for i in range(n):
        msg = b"message-%d-" % i + b"x" * (i % 97)
        reply = echo(msg, timeout=10)
        if reply == b"echo:" + msg:
            ok += 1
        digest.update(reply)
print("client rpcs %d ok %d sha256 %s" % (n, ok, digest.hexdigest()), flush=True)
sys.exit(0 if ok == n else 1)
'''

t = Checker()
require([AGENT, AGENT_BIN, COLLECTOR])
require_tools([PY])
if subprocess.run([PY, "-c", "import grpc"], capture_output=True).returncode != 0:
    require_tools(["python3-grpcio (import grpc in %s)" % PY])
D = mkdtemp_for(prefix="ss-hosts-grpc-")
with open(os.path.join(D, "server.py"), "w") as f:
    f.write(SERVER_PY)
with open(os.path.join(D, "client.py"), "w") as f:
    f.write(CLIENT_PY)


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def scenario(server_env, client_env):
    port = free_port()
    res = {}
    server = None
    watch = HelperWatch().start()
    try:
        server = subprocess.Popen([PY, os.path.join(D, "server.py"), str(port)], env=server_env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  start_new_session=True)
        # "server listening", or EOF if it died; bounded.
        ready, _, _ = select.select([server.stdout], [], [], 30)
        line = server.stdout.readline() if ready else b""
        res["server_up"] = line.strip() == b"server listening"
        if not res["server_up"]:
            server.kill()
            res["server_err"] = server.stderr.read().decode("utf-8", "replace")[-1500:]
            return res
        t0 = time.time()
        ru0 = children_cpu()
        cout, cerr = os.path.join(D, "client.out"), os.path.join(D, "client.err")
        with open(cout, "wb") as of, open(cerr, "wb") as ef:
            client = subprocess.Popen([PY, os.path.join(D, "client.py"), "127.0.0.1:%d" % port,
                                       str(RPCS)], env=client_env, stdout=of, stderr=ef,
                                      start_new_session=True)
        try:
            res["client_rc"] = client.wait(timeout=120)
        finally:
            stop_group(client)
        res["client_s"] = time.time() - t0
        ru1 = children_cpu()
        res["client_cpu"] = ru1 - ru0
        res["client_out"] = read_file(cout, "rb")
        res["client_err"] = read_file(cerr)
        server.send_signal(signal.SIGTERM)
        try:
            res["server_rc"] = server.wait(timeout=20)  # little output: no pipe can fill
            exited = time.time()
            res["server_cpu"] = children_cpu() - ru1
            out, err = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            res["server_rc"] = None
            exited = time.time()
            out, err = b"", b""
        res["server_out"] = line + out
        res["server_err"] = err.decode("utf-8", "replace")
        res["helper_gone"], res["helper_latency"] = watch.gone_after(exited, 20)
        res["helpers"] = watch.seen
    finally:
        watch.stop()
        stop_group(server)
    return res


def check_run(res, label):
    if not t.check(res.get("server_up"), "%s: gRPC server up" % label):
        print(res.get("server_err"))
        return False
    t.check(res["client_rc"] == 0 and
            ("client rpcs %d ok %d " % (RPCS, RPCS)).encode() in res["client_out"],
            "%s: %d/%d RPCs succeeded in %.1f s (client exit %s) %s"
            % (label, RPCS, RPCS, res["client_s"], res["client_rc"],
               res["client_out"][:60] if res["client_rc"] == 0 else res["client_err"][-800:]))
    t.check(res["server_rc"] == 0 and
            ("server served %d" % RPCS).encode() in res["server_out"],
            "%s: server stopped on SIGTERM, exit %s: %r" % (label, res["server_rc"],
                                                          res["server_out"][-60:]))
    return True


try:
    base = scenario(clean_env(), clean_env())
    check_run(base, "without agent")
    with Collector() as c:
        senv = agent_env(collector=c.grpc_addr, service="grpc-server", no_daemon_dir=D,
                         flush_ms=1000, hz=HZ)
        cenv = agent_env(collector=c.grpc_addr, service="grpc-client", no_daemon_dir=D,
                         flush_ms=1000, hz=HZ)
        run = scenario(senv, cenv)
        if check_run(run, "with agent"):
            t.check(run["client_out"] == base.get("client_out") and
                    run["client_rc"] == base.get("client_rc"),
                    "client stdout and exit status unchanged")
            t.check(run["server_out"] == base.get("server_out") and
                    run["server_rc"] == base.get("server_rc"),
                    "server stdout and exit status unchanged")
            noise = agent_log_lines(run["client_err"]) + agent_log_lines(run["server_err"])
            t.check(not noise, "the agent wrote nothing on their stderr%s"
                    % ("" if not noise else ": " + " | ".join(noise[:4])))
            t.check(run["helper_gone"], "helpers gone %.1f s after both exited (limit 20 s; "
                    "left: %s)" % (run["helper_latency"], our_helpers() or "none"))
            t.check(len(run["helpers"]) == 2, "one private helper per process tree (server, "
                    "client): %s" % (sorted(run["helpers"]) or "none seen"))
            for service in ("grpc-server", "grpc-client"):
                prof, n, waited = wait_for_profile(
                    c, service, lambda f: f == "_PyEval_EvalFrameDefault", 10)
                t.check(n > 0, "profile of service %s names the interpreter "
                        "(_PyEval_EvalFrameDefault): %d of %d samples (after %.1f s); top self: %s"
                        % (service, n, sum((prof or {}).values()), waited,
                           top_functions(prof, 6)))
                check_sample_ratio(t, "%s samples" % service, sum((prof or {}).values()),
                                   run.get(service.split("-")[1] + "_cpu", 0), HZ, 0.7)
                core = samples_with(prof, lambda f: f.startswith("grpc_") or "grpc_core::" in f)
                print("info %s: %d samples in gRPC core frames" % (service, core))
        if t.failed:
            print("---- server/client stderr (agent run) ----")
            print(run.get("server_err", "")[-1500:])
            print(run.get("client_err", "")[-1500:])
            print("---- collector log ----")
            print(c.read_log()[-2000:])
finally:
    kill_our_helpers()
    shutil.rmtree(D, ignore_errors=True)
t.finish()
