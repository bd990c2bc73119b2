#!/usr/bin/env python3
"""The collector's HTTP server under many clients (a real collector on
loopback, a profile pushed through /ingest):

- 100 idle connections held open (connected, nothing sent): /healthz and a
  profile query each answer within 1 s;
- 32 concurrent profile queries all succeed (and the throughput of 32
  clients querying for a few seconds is printed: "figure ...");
- a request whose header or body stalls gets a 400 within the read timeout
  (3 s) + slack, an oversized body a 413 (within the read timeout), an
  oversized header or request line a 4xx at once; a connection that never sends a byte is closed by the server.
"""
import os
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

from stackstream_test import Checker, Collector

SERVICE = "many-clients"


def folded_profile(nodes=3000):
    """Folded lines of a tree with about "nodes" nodes."""
    lines = []
    for i in range(nodes // 3):
        lines.append("main;handler_%d;work_%d;leaf_%d %d" % (i % 50, i, i, 1 + i % 7))
    return "\n".join(lines) + "\n"


def ingest(c):
    now = int(time.time())
    url = c.http_url + "/ingest?" + urllib.parse.urlencode(
        {"name": SERVICE + ".cpu", "from": now - 10, "until": now, "format": "folded",
         "sampleRate": 100})
    req = urllib.request.Request(url, data=folded_profile().encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status


PROFILE = "/api/v1/profile?" + urllib.parse.urlencode(
    {"service": SERVICE, "from": "now-1h", "to": "now+1m", "format": "flamegraph"})


def timed_get(c, path, timeout=10):
    t0 = time.time()
    try:
        with urllib.request.urlopen(c.http_url + path, timeout=timeout) as r:
            body = r.read()
            return r.status, time.time() - t0, len(body)
    except Exception as e:  # noqa: BLE001 (any failure is a failed check)
        return str(e), time.time() - t0, 0


def idle_connections(c, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", c.http_port), timeout=5)
        socks.append(s)
    return socks


def raw(c, data, read_timeout=15):
    """Sends "data" (a list of byte strings; None = stall until the server
    answers) and returns (first response line, seconds to it)."""
    s = socket.create_connection(("127.0.0.1", c.http_port), timeout=read_timeout)
    t0 = time.time()
    try:
        for chunk in data:
            s.sendall(chunk)
        buf = b""
        while b"\r\n" not in buf:
            got = s.recv(4096)
            if not got:
                break
            buf += got
        return buf.split(b"\r\n", 1)[0].decode("latin-1"), time.time() - t0
    except socket.timeout:
        return "timeout", time.time() - t0
    except OSError as e:
        return "error " + str(e), time.time() - t0
    finally:
        s.close()


def concurrent(c, n, seconds=None):
    """n threads; each does one query (seconds=None) or queries until
    "seconds" pass. Returns (statuses, completed, elapsed)."""
    statuses = []
    lock = threading.Lock()
    stop = time.time() + (seconds or 0)

    def run():
        while True:
            st, _, _ = timed_get(c, PROFILE, timeout=30)
            with lock:
                statuses.append(st)
            if seconds is None or time.time() >= stop:
                return

    t0 = time.time()
    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, len(statuses), time.time() - t0


def main():
    t = Checker()
    with Collector() as c:
        t.check(ingest(c) == 200, "profile pushed through /ingest")
        st, secs, size = timed_get(c, PROFILE)
        t.check(st == 200 and size > 1000, "profile query answers (%s, %d bytes)" % (st, size))

        socks = idle_connections(c, 100)
        time.sleep(0.3)
        st, secs, _ = timed_get(c, "/healthz", timeout=5)
        t.check(st == 200 and secs < 1.0, "/healthz with 100 idle connections: %s in %.3f s" % (st, secs))
        st, secs, _ = timed_get(c, PROFILE, timeout=5)
        t.check(st == 200 and secs < 1.0, "profile query with 100 idle connections: %s in %.3f s" % (st, secs))

        statuses, n, elapsed = concurrent(c, 32)
        ok = sum(1 for s in statuses if s == 200)
        t.check(ok == 32, "32 concurrent profile queries (100 idle connections open): %d succeeded in %.2f s"
                % (ok, elapsed))
        for s in socks:
            s.close()

        statuses, n, elapsed = concurrent(c, 32, seconds=3)
        ok = sum(1 for s in statuses if s == 200)
        t.check(ok == n and n > 0, "32 clients for 3 s: %d of %d queries succeeded" % (ok, n))
        print("figure concurrent_profile_queries_per_second %.1f (32 clients, %d queries in %.2f s)"
              % (n / elapsed, n, elapsed))
        statuses, n1, elapsed1 = concurrent(c, 1, seconds=3)
        print("figure sequential_profile_queries_per_second %.1f (1 client, %d queries in %.2f s)"
              % (n1 / elapsed1, n1, elapsed1))

        # Slow and oversized requests.
        line, secs = raw(c, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n"])
        t.check(line.startswith("HTTP/1.1 400") and secs < 6,
                "stalled header: %r after %.1f s" % (line, secs))
        line, secs = raw(c, [b"POST /ingest?name=x.cpu&format=folded HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 1000\r\n\r\nmain;a 1\n"])
        t.check(line.startswith("HTTP/1.1 4") and secs < 6,
                "stalled body: %r after %.1f s" % (line, secs))
        line, secs = raw(c, [b"POST /ingest?name=x.cpu&format=folded HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 100000000\r\n\r\n"])
        # cpp-httplib reads (discards) what comes of an oversized body before
        # it answers: the 413 comes when the sender stalls (read timeout).
        t.check(line.startswith("HTTP/1.1 413") and secs < 6,
                "oversized body: %r after %.2f s" % (line, secs))
        line, secs = raw(c, [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"])
        t.check(line.startswith("HTTP/1.1 4") and secs < 1,
                "oversized header: %r after %.2f s" % (line, secs))
        line, secs = raw(c, [b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"])
        t.check(line.startswith("HTTP/1.1 4") and secs < 1,
                "oversized request line: %r after %.2f s" % (line, secs))
        line, secs = raw(c, [])
        t.check(line == "" and secs < 10, "a silent connection is closed after %.1f s" % secs)
        st, secs, _ = timed_get(c, "/healthz", timeout=5)
        t.check(st == 200, "still serving: %s" % st)
    t.finish()


if __name__ == "__main__":
    main()
