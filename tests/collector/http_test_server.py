"""Starts http_test_server (a real HttpServer over a real SqliteStore with
a known data set) on a free loopback port, and checks output formats.

    with TestServer(token=None) as s:
        status, headers, body = s.get("/api/v1/top", service="api")
"""
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from stackstream_test import binary

SERVER = binary("tests", "collector", "http_test_server")
CLI = binary("collector", "cli", "stackstream")


class TestServer:
    def __init__(self, token=None, tls=None):
        self.token = token
        self.tls = tls  # (cert, key) or None
        self.dir = tempfile.mkdtemp(prefix="ss-http-")
        self.proc = None
        self.port = None

    @property
    def url(self):
        return ("https" if self.tls else "http") + "://127.0.0.1:%d" % self.port

    def __enter__(self):
        args = [SERVER, "--db", self.dir]
        if self.token:
            args += ["--token", self.token]
        if self.tls:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            err = self.proc.stderr.read().decode()
            raise RuntimeError("test server did not start: %r %s" % (line, err))
        self.port = int(line.split()[1])
        return self

    def alive(self):
        return self.proc.poll() is None

    def __exit__(self, *exc):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def get(self, path, headers=None, raw_query=None, context=None, **params):
        url = self.url + path
        if raw_query is not None:
            url += "?" + raw_query
        elif params:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, headers=headers or {})
        if self.token and (headers is None or "Authorization" not in headers):
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=30, context=context) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def raw(self, request_bytes, timeout=30):
        """Sends raw bytes; returns the status code (0 if the server closed
        without answering)."""
        import socket
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(request_bytes)
            data = b""
            # The server may keep the connection open after an error answer:
            # stop at the end of the headers.
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else 0

    def post(self, path, body, content_type, headers=None):
        req = urllib.request.Request(self.url + path, data=body, method="POST")
        req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), _body(r)
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), _body(e)


def _body(r):
    data = r.read()
    if r.headers.get("Content-Encoding") == "gzip":
        import gzip
        data = gzip.decompress(data)
    return data


FLAMEGRAPH_PL = re.compile(r"^(.*)\s+?(\d+(?:\.\d*)?)$")
SPEEDSCOPE_FOLDED = re.compile(r"^(.*) (\d+)$")


def check_folded(text):
    """Problems with folded text as flamegraph.pl, speedscope and Pyroscope read it."""
    problems = []
    if text and not text.endswith("\n"):
        problems.append("no trailing newline")
    for line in text.splitlines():
        if len(line.encode()) >= 64 * 1024:
            problems.append("line over 64 KiB")
        if not FLAMEGRAPH_PL.match(line):
            problems.append("flamegraph.pl regex rejects %r" % line)
        m = SPEEDSCOPE_FOLDED.match(line)
        if not m:
            problems.append("speedscope regex rejects %r" % line)
            continue
        stack = m.group(1)
        if any(f == "" for f in stack.split(";")):
            problems.append("empty frame in %r" % line)
        if "\r" in line or "\t" in stack:
            problems.append("control character in %r" % line)
    return problems


def check_speedscope(doc):
    """Problems with a speedscope document under the file-format schema's rules."""
    p = []
    if doc.get("$schema") != "https://www.speedscope.app/file-format-schema.json":
        p.append("bad $schema")
    frames = doc.get("shared", {}).get("frames")
    if not isinstance(frames, list):
        return p + ["shared.frames missing"]
    for i, f in enumerate(frames):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            p.append("frame %d has no string name" % i)
            continue
        if "file" in f and not isinstance(f["file"], str):
            p.append("frame %d file not a string" % i)
        for k in ("line", "col"):
            if k in f and not isinstance(f[k], int):
                p.append("frame %d %s not a number" % (i, k))
        extra = set(f) - {"name", "file", "line", "col"}
        if extra:
            p.append("frame %d has unknown keys %s" % (i, extra))
    profiles = doc.get("profiles")
    if not isinstance(profiles, list) or not profiles:
        return p + ["no profiles"]
    if not (isinstance(doc.get("activeProfileIndex"), int) and
            0 <= doc["activeProfileIndex"] < len(profiles)):
        p.append("activeProfileIndex out of range")
    for prof in profiles:
        if prof.get("type") != "sampled":
            p.append("profile type %r" % prof.get("type"))
            continue
        if prof.get("unit") not in ("none", "nanoseconds", "microseconds", "milliseconds",
                                    "seconds", "bytes"):
            p.append("bad unit %r" % prof.get("unit"))
        for k in ("name", ):
            if not isinstance(prof.get(k), str):
                p.append("profile %s missing" % k)
        samples, weights = prof.get("samples"), prof.get("weights")
        if not isinstance(samples, list) or not isinstance(weights, list):
            p.append("samples/weights missing")
            continue
        if len(samples) != len(weights):
            p.append("samples and weights differ in length")
        for s in samples:
            if not isinstance(s, list) or any(
                    not isinstance(i, int) or i < 0 or i >= len(frames) for i in s):
                p.append("sample with an out-of-range frame index: %r" % (s,))
                break
        if any(not isinstance(w, (int, float)) or w < 0 for w in weights):
            p.append("negative or non-numeric weight")
        if prof.get("startValue") != 0 or prof.get("endValue") != sum(weights):
            p.append("startValue/endValue (%r, %r) do not span the weights (sum %r)" %
                     (prof.get("startValue"), prof.get("endValue"), sum(weights)))
    return p


PROM_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})?'
    r' (-?[0-9.]+(?:e[+-]?[0-9]+)?|\+Inf|-Inf|NaN)$')


def check_prometheus(text):
    """Problems with Prometheus text exposition: HELP/TYPE once and before the
    samples, a family's lines contiguous, label escaping, trailing newline,
    histogram buckets cumulative and ending in +Inf == _count."""
    p = []
    if not text.endswith("\n"):
        p.append("no trailing newline")
    types, helps, done = {}, set(), set()
    current = None
    buckets = {}

    def family(name):
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
                return name[:-len(suf)]
        return name

    def enter(fam):
        nonlocal current
        if fam != current:
            if fam in done:
                p.append("family %s not contiguous" % fam)
            if current:
                done.add(current)
            current = fam

    counts = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if name in helps:
                p.append("HELP twice for " + name)
            helps.add(name)
            enter(name)
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary",
                                                   "untyped"):
                p.append("bad TYPE line " + line)
                continue
            if parts[2] in types:
                p.append("TYPE twice for " + parts[2])
            types[parts[2]] = parts[3]
            enter(parts[2])
        elif line.startswith("#") or not line:
            p.append("unexpected line %r" % line)
        else:
            m = PROM_SAMPLE.match(line)
            if not m:
                p.append("bad sample line %r" % line)
                continue
            fam = family(m.group(1))
            if fam not in types:
                p.append("sample before its TYPE: " + line)
            enter(fam)
            if m.group(1).endswith("_bucket"):
                labels = re.sub(r',?le="[^"]*"', "", m.group(2) or "")
                buckets.setdefault((fam, labels), []).append(float(m.group(3)))
            if m.group(1).endswith("_count"):
                counts[(fam, (m.group(2) or "").replace("{}", ""))] = float(m.group(3))
    for (fam, labels), values in buckets.items():
        if values != sorted(values):
            p.append("buckets of %s%s not cumulative" % (fam, labels))
        if counts.get((fam, labels)) != values[-1]:
            p.append("+Inf bucket of %s%s != _count" % (fam, labels))
    return p
