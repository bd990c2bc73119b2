"""Helpers for end-to-end test drivers: find binaries, start a real collector
on free loopback ports with a temporary SQLite store, query its HTTP API.

    from stackstream_test import Collector, binary
    with Collector() as c:
        c.grpc_addr, c.http_url
        c.get_json("/api/v1/top", service="x", limit=10)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BUILD = os.environ.get("STACKSTREAM_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def binary(*relpath):
    """Path of a build output, e.g. binary("collector", "stackstream-collector")."""
    return os.path.join(BUILD, *relpath)


AGENT = binary("agent", "libstackstream.so")
COLLECTOR = binary("collector", "stackstream-collector")
CLI = binary("collector", "cli", "stackstream")
DEMO = binary("deploy", "demo", "stackstream-demo")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """A real stackstream-collector on free loopback ports."""

    def __init__(self, db_dir=None, extra_args=(), grpc_port=None, http_port=None, storage=None):
        self._own_dir = db_dir is None
        self.storage = storage  # --storage URI; default: SQLite in db_dir
        self.dir = db_dir or tempfile.mkdtemp(prefix="ss-collector-")
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.extra_args = list(extra_args)
        self.proc = None

    @property
    def grpc_addr(self):
        return "127.0.0.1:%d" % self.grpc_port

    @property
    def http_url(self):
        return "http://127.0.0.1:%d" % self.http_port

    def start(self, timeout=20):
        self.log = open(os.path.join(self.dir, "collector.log"), "ab")
        self.proc = subprocess.Popen(
            [COLLECTOR, "--grpc-listen", self.grpc_addr, "--http-listen",
             "127.0.0.1:%d" % self.http_port, "--storage",
             self.storage or "sqlite:" + os.path.join(self.dir, "profiles.db")] + self.extra_args,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("collector exited: " + self.read_log())
            try:
                with urllib.request.urlopen(self.http_url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("collector did not become healthy: " + self.read_log())

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "collector.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self):
        self.kill(signal.SIGTERM)

    def get(self, path, **params):
        url = self.http_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path, **params):
        status, body = self.get(path, **params)
        if status != 200:
            raise RuntimeError("%s -> %d %s" % (path, status, body[:500]))
        return json.loads(body)

    def label_values(self, name, selector="{}", start_ms=None, end_ms=None):
        """Values of label "name" (e.g. "pid": a process label, not in
        /api/v1/services' label sets) through the Pyroscope Connect API's
        LabelValues (JSON), over the last hour by default."""
        now = int(time.time() * 1000)
        body = {"name": name, "matchers": [selector],
                "start": str(start_ms if start_ms is not None else now - 3600 * 1000),
                "end": str(end_ms if end_ms is not None else now + 60 * 1000)}
        req = urllib.request.Request(
            self.http_url + "/querier.v1.QuerierService/LabelValues",
            data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "Connect-Protocol-Version": "1"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read()).get("names", [])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class Checker:
    """Collects named checks; prints each and a closing 'N passed, N failed' line."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if cond:
            self.passed += 1
        else:
            self.failed += 1
        return cond

    def near(self, value, expected, tol, what):
        return self.check(abs(value - expected) <= tol,
                          "%s: %.2f (expected %.2f ± %.2f)" % (what, value, expected, tol))

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        raise SystemExit(1 if self.failed else 0)
