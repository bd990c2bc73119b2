"""HTTP API tests against a real HttpServer over a real SqliteStore (data
written through Store::Write by http_test_server): every endpoint's happy
path with exact values, each 4xx naming its parameter, auth on/off, TLS,
garbage query strings, pprof checked by `go tool pprof`, folded/speedscope/
flame-graph/Prometheus format rules."""
import gzip
import json
import os
import random
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stackstream_test import Checker  # noqa: E402
from http_test_server import (TestServer, check_folded, check_prometheus,  # noqa: E402
                       check_speedscope)

c = Checker()
PROD = '{env="prod"}'
RECENT = {"service": "api", "from": "now-30m", "to": "now"}


def js(body):
    return json.loads(body.decode())


def error_names(status, body, param, what):
    ok = 400 <= status < 500
    try:
        msg = js(body)["error"]
    except Exception:
        msg = ""
    c.check(ok and ('"%s"' % param) in msg, "%s -> %d naming %s (%s)" % (what, status, param, msg))


def go_pprof_top(source, tmp, sample_index="samples"):
    env = dict(os.environ, PPROF_TMPDIR=tmp, HOME=tmp)
    r = subprocess.run(["go", "tool", "pprof", "-sample_index=" + sample_index, "-top", source],
                       capture_output=True, text=True, timeout=60, env=env)
    flat = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*(\d+)\s+[\d.]+%\s+[\d.]+%\s+(\d+)\s+[\d.]+%\s+(.+)$", line)
        if m:
            flat[m.group(3).strip()] = (int(m.group(1)), int(m.group(2)))
    return r.returncode, flat, r.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="ss-http-test-")
    try:
        with TestServer() as s:
            run_happy_paths(s, tmp)
            run_errors(s)
            run_fuzz(s)
            run_metrics(s)
        run_auth()
        run_tls(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


def run_happy_paths(s, tmp):
    status, h, body = s.get("/healthz")
    c.check(status == 200, "healthz 200")

    status, h, body = s.get("/api/v1/services")
    svcs = {x["service"]: x for x in js(body)} if status == 200 else {}
    c.check(sorted(svcs) == ["api", "worker"], "services lists api and worker: %s" % sorted(svcs))
    if "api" in svcs:
        sets = sorted(tuple(sorted(ls.items())) for ls in svcs["api"]["label_sets"])
        c.check(len(sets) == 2 and ("env", "dev") in sets[0] and ("env", "prod") in sets[1],
                "api has label sets env=dev and env=prod")
        c.check(svcs["api"]["first_seen"].endswith("Z") and
                svcs["api"]["first_seen_unix_nanos"] < svcs["api"]["last_seen_unix_nanos"],
                "first/last seen as RFC 3339 and ordered")

    # folded: exact lines (formats.md's example) for env=prod in the last 30 min.
    status, h, body = s.get("/api/v1/profile", format="folded", selector=PROD, **RECENT)
    text = body.decode()
    c.check(status == 200 and text == "main;baz 2\nmain;foo 1\nmain;foo;bar 3\n",
            "folded prod exact: %r" % text)
    c.check(h.get("Content-Type", "").startswith("text/plain"), "folded is text/plain")
    status, h, body = s.get("/api/v1/profile", format="folded", **RECENT)
    c.check("main;qux 5\n" in body.decode(), "folded without selector merges env=dev")
    status, h, body = s.get("/api/v1/profile", format="folded", selector='{env!="prod"}', **RECENT)
    c.check(body.decode() == "main;qux 5\n", "selector != : %r" % body)
    status, h, body = s.get("/api/v1/profile", format="folded", selector='{host=~"h[12]", env!~"d.*"}',
                            **RECENT)
    c.check(body.decode() == "main;baz 2\nmain;foo 1\nmain;foo;bar 3\n", "selector =~ and !~")
    status, h, body = s.get("/api/v1/profile", format="folded",
                            selector='{service="api",env="dev"}', **{"from": "now-30m"})
    c.check(status == 200 and body.decode() == "main;qux 5\n",
            "service taken from the selector when the parameter is absent")
    # Default range is the last hour: the now-2h data is not in it.
    status, h, body = s.get("/api/v1/profile", format="folded", service="api", selector=PROD)
    c.check("main;foo;bar 3\n" in body.decode(), "default range = last hour")
    status, h, body = s.get("/api/v1/profile", format="folded", service="api", selector=PROD,
                            **{"from": "now-3h", "to": "now-1h"})
    c.check(body.decode() == "main;baz 9\nmain;foo;bar 1\n", "explicit older range: %r" % body)
    status, h, body = s.get("/api/v1/profile", format="folded", service="worker")
    problems = check_folded(body.decode())
    c.check(status == 200 and not problems and 'main;op:er"ator  2\n' in body.decode(),
            "folded sanitizes ';' and newline and passes flamegraph.pl/speedscope regexes %s"
            % problems)
    status, h, body = s.get("/api/v1/profile", format="folded", service="nosuch")
    c.check(status == 200 and body == b"", "unknown service: empty folded")

    # pprof: go tool pprof on the file and straight from the URL.
    status, h, body = s.get("/api/v1/profile", format="pprof", selector=PROD, **RECENT)
    c.check(status == 200 and body[:2] == b"\x1f\x8b", "pprof is gzip")
    path = os.path.join(tmp, "api.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    rc, flat, err = go_pprof_top(path, tmp)
    want = {"bar": (3, 3), "baz": (2, 2), "foo": (1, 4), "main": (0, 6)}
    c.check(rc == 0 and flat == want, "go tool pprof -top file: flat/cum %s %s" % (flat, err[-300:]))
    rc, flat, err = go_pprof_top(path, tmp, sample_index="cpu")
    c.check(rc == 0 and flat.get("main") is None, "cpu sample index prints durations (rc=%d)" % rc)
    url = s.url + "/api/v1/profile?" + urllib.parse.urlencode(dict(RECENT, selector=PROD))
    rc, flat, err = go_pprof_top(url, tmp)
    c.check(rc == 0 and flat == want, "go tool pprof -top URL (default format pprof): %s %s"
            % (flat, err[-300:]))
    url = s.url + "/api/v1/profile?service=api&format=pprof&from=now-3h&to=now-1h"
    rc, flat, err = go_pprof_top(url, tmp)
    c.check(rc == 0 and flat.get("baz") == (9, 9), "go tool pprof older range: %s" % flat)
    status, h, body = s.get("/api/v1/profile", format="pprof", service="nosuch")
    path2 = os.path.join(tmp, "empty.pb.gz")
    with open(path2, "wb") as f:
        f.write(body)
    rc, flat, err = go_pprof_top(path2, tmp)
    c.check(status == 200 and rc == 0, "empty pprof still parses (rc=%d %s)" % (rc, err[-200:]))

    # speedscope
    status, h, body = s.get("/api/v1/profile", format="speedscope", selector=PROD, **RECENT)
    doc = js(body)
    problems = check_speedscope(doc)
    c.check(status == 200 and not problems, "speedscope passes the schema rules %s" % problems)
    prof = doc["profiles"][0]
    frames = doc["shared"]["frames"]
    stacks = {";".join(frames[i]["name"] for i in smp): w
              for smp, w in zip(prof["samples"], prof["weights"])}
    c.check(stacks == {"main;foo;bar": 30000000, "main;foo": 10000000, "main;baz": 20000000},
            "speedscope samples root first, weights in ns: %s" % stacks)
    c.check(all(f.get("file") == "src/api.cc" and f.get("line", 0) > 0 for f in frames),
            "speedscope frames carry file and line")
    status, h, body = s.get("/api/v1/profile", format="speedscope", service="worker")
    c.check(not check_speedscope(js(body)), "speedscope of odd names valid")

    # Grafana flame-graph data frame: the worked example, values in ns.
    status, h, body = s.get("/api/v1/profile", format="flamegraph", selector=PROD, **RECENT)
    doc = js(body)
    fields = [f["name"] for f in doc["schema"]["fields"]]
    vals = doc["data"]["values"]
    rows = list(zip(*vals)) if status == 200 else []
    ms = 10000000
    c.check(fields == ["level", "value", "self", "label"], "flamegraph fields %s" % fields)
    c.check(rows == [(0, 6 * ms, 0, "total"), (1, 6 * ms, 0, "main"), (2, 4 * ms, 1 * ms, "foo"),
                     (3, 3 * ms, 3 * ms, "bar"), (2, 2 * ms, 2 * ms, "baz")],
            "flamegraph rows = worked example: %s" % rows)

    # top
    status, h, body = s.get("/api/v1/top", selector=PROD, limit="10", **RECENT)
    rows = js(body)
    c.check(status == 200 and [r["function"] for r in rows] == ["bar", "baz", "foo", "main"],
            "top sorted by self: %s" % [r.get("function") for r in rows])
    if len(rows) == 4:
        c.check(rows[0]["self"] == 3 and rows[0]["total"] == 3 and rows[0]["self_pct"] == 50.0,
                "top bar self 3 = 50%")
        c.check(rows[2]["self"] == 1 and rows[2]["total"] == 4 and
                abs(rows[2]["total_pct"] - 66.667) < 0.01, "top foo total 4 = 66.7%")
        c.check(rows[3]["total_pct"] == 100.0 and rows[3]["module"] == "/usr/bin/api",
                "top main total 100%, module")
    c.check(h.get("X-Stackstream-Period-Nanos") == "10000000" and
            h.get("X-Stackstream-Total-Samples") == "6", "top metadata headers")
    status, h, body = s.get("/api/v1/top", selector=PROD, limit="2", **RECENT)
    c.check(len(js(body)) == 2, "top limit=2")

    # diff: base = the older hour, target = the last 30 minutes (env=prod).
    status, h, body = s.get("/api/v1/diff", selector=PROD, base_from="now-3h", base_to="now-1h",
                            **RECENT)
    d = js(body)
    by = {r["function"]: r for r in d.get("rows", [])}
    c.check(status == 200 and d["base"]["total"] == 10 and d["target"]["total"] == 6,
            "diff totals base 10, target 6")
    if "baz" in by and "bar" in by:
        c.check(by["baz"]["base_self"] == 9 and by["baz"]["self"] == 2 and
                by["baz"]["delta_self"] == -7 and abs(by["baz"]["delta_self_pct"] - (2 / 6 * 100 - 90)) < 1e-6,
                "diff baz 9 -> 2")
        c.check(by["bar"]["delta_self"] == 2 and abs(by["bar"]["delta_self_pct"] - 40.0) < 1e-6,
                "diff bar 1 -> 3 (+40 points)")
        c.check(by.get("foo", {}).get("base_self") == 0 and by["foo"]["self"] == 1, "diff foo new")
    # diff of two selectors over the same range
    status, h, body = s.get("/api/v1/diff", selector='{env="dev"}', base_selector=PROD, **RECENT)
    d = js(body)
    by = {r["function"]: r for r in d.get("rows", [])}
    c.check(status == 200 and by.get("qux", {}).get("delta_self") == 5 and
            by.get("bar", {}).get("delta_self") == -3, "diff of two selectors")

    # series: totals and the function's share.
    status, h, body = s.get("/api/v1/series", function="foo", step="1h", service="api",
                            **{"from": "now-3h"})
    d = js(body)
    pts = d.get("points", [])
    total = sum(p["total"] for p in pts)
    matched = sum(p["matched"] for p in pts)
    c.check(status == 200 and total == 21 and matched == 5,
            "series totals 21 with foo in 5: %s" % pts)
    c.check(all(0 <= p["share"] <= 1 for p in pts) and d["step_seconds"] == 3600,
            "series share in [0,1], step 1h")
    status, h, body = s.get("/api/v1/series", service="api", **{"from": "now-30m"})
    pts = js(body).get("points", [])
    c.check(status == 200 and sum(p["total"] for p in pts) == 11 and
            all("share" not in p for p in pts), "series without function")

    # RFC 3339 and unix seconds accepted
    status, h, body = s.get("/api/v1/top", service="api", **{"from": "2020-01-01T00:00:00Z",
                                                             "to": "4102444800"})
    c.check(status == 200 and sum(r["self"] for r in js(body)) == 21, "RFC 3339 + unix seconds")


def run_errors(s):
    base = dict(RECENT)
    cases = [
        ("/api/v1/profile", dict(base, format="svg"), "format"),
        ("/api/v1/profile", {"format": "folded"}, "service"),
        ("/api/v1/profile", dict(base, **{"from": "yesterday"}), "from"),
        ("/api/v1/profile", dict(base, to="2024-13-01T00:00:00Z"), "to"),
        ("/api/v1/profile", dict(base, **{"from": "now", "to": "now-1h"}), "from"),
        ("/api/v1/profile", dict(base, selector='{env="prod"'), "selector"),
        ("/api/v1/profile", dict(base, selector='env="prod"'), "selector"),
        ("/api/v1/profile", dict(base, selector='{env=~"("}'), "selector"),
        ("/api/v1/profile", dict(base, mode="gpu"), "mode"),
        ("/api/v1/top", dict(base, limit="0"), "limit"),
        ("/api/v1/top", dict(base, limit="ten"), "limit"),
        ("/api/v1/top", dict(base, limit="99999999999999999999"), "limit"),
        ("/api/v1/top", {"selector": '{env="prod"}'}, "service"),
        ("/api/v1/diff", dict(base), "base_from"),
        ("/api/v1/diff", dict(base, base_from="soon"), "base_from"),
        ("/api/v1/diff", dict(base, base_to="x"), "base_to"),
        ("/api/v1/diff", dict(base, base_selector="{"), "base_selector"),
        ("/api/v1/series", dict(base, step="fast"), "step"),
        ("/api/v1/series", dict(base, step="1ms", **{"from": "now-7d"}), "step"),
        ("/api/v1/series", dict(base, seconds="x", **{"from": "now-1h"}), "from") if False else
        ("/api/v1/profile", {"service": "api", "seconds": "-5"}, "seconds"),
    ]
    for path, params, param in cases:
        status, h, body = s.get(path, **params)
        error_names(status, body, param, "%s %s" % (path, params))
    status, h, body = s.get("/api/v1/nosuch")
    c.check(status == 404 and "error" in js(body), "unknown endpoint -> 404 JSON")
    status, h, body = s.post("/api/v1/top", b"x", "text/plain")
    c.check(400 <= status < 500, "POST to a GET endpoint -> 4xx (%d)" % status)


def run_fuzz(s):
    rnd = random.Random(1234)
    alphabet = "abc{}[]()=!~\"'`\\;,&?%#+-.:/ \x00\x01\x7f" + "0123456789"
    names = ["service", "from", "to", "selector", "format", "limit", "step", "function",
             "base_from", "base_to", "base_selector", "mode", "seconds"]
    paths = ["/api/v1/profile", "/api/v1/top", "/api/v1/diff", "/api/v1/series",
             "/api/v1/services", "/metrics"]
    worst = 0
    for i in range(300):
        parts = []
        for _ in range(rnd.randint(0, 6)):
            name = rnd.choice(names) if rnd.random() < 0.8 else "".join(
                rnd.choice(alphabet) for _ in range(rnd.randint(0, 8)))
            value = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
            if rnd.random() < 0.3:
                value = rnd.choice(["now-1h", "now", '{env="prod"}', "api", "folded", "10",
                                    "-1", "1e999", "now-99999999999d", '{a=~"((((("}',
                                    "\u00e9\u00ff", "%zz", "%", "%00"])
            enc = urllib.parse.quote(value, safe="") if rnd.random() < 0.8 else value
            parts.append(urllib.parse.quote(name, safe="") + "=" + enc)
        if rnd.random() < 0.3:
            parts.append("service=api")
        query = "&".join(parts).encode("utf-8", "replace")
        target = rnd.choice(paths).encode() + b"?" + query
        status = s.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        worst = max(worst, status)
        if status >= 500 or status == 0:
            print("  bad answer %d for %r" % (status, target))
            break
    c.check(0 < worst < 500 and s.alive(), "300 garbage query strings: no 5xx, server alive")
    # Oversized and malformed requests.
    status = s.raw(b"GET /api/v1/top?service=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    c.check(status in (400, 413, 414, 431), "20 KB URI -> 4xx (%d)" % status)
    status = s.raw(b"GARBAGE\r\n\r\n")
    c.check(status in (0, 400) and s.alive(), "garbage request line -> 400 or closed")
    status, h, body = s.get("/api/v1/top", service="api", selector="{" + 'a="b",' * 3000 + "}")
    c.check(400 <= status < 500 or status == 414, "huge selector -> 4xx (%d)" % status)
    c.check(s.alive(), "server alive after fuzzing")


def run_metrics(s):
    status, h, body = s.get("/metrics")
    text = body.decode()
    problems = check_prometheus(text)
    c.check(status == 200 and not problems, "/metrics strict Prometheus text %s" % problems[:5])
    c.check(h.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
            "/metrics content type %s" % h.get("Content-Type"))
    for name in ("stackstream_summaries_ingested_total 1", "stackstream_samples_ingested_total 5",
                 'stackstream_rejected_total{reason="invalid"} 1', "stackstream_active_agents 0",
                 'stackstream_query_duration_seconds_bucket{endpoint="profile",le="+Inf"}',
                 'stackstream_query_duration_seconds_count{endpoint="top"}',
                 "# TYPE stackstream_query_duration_seconds histogram",
                 "stackstream_storage_bytes "):
        c.check(name in text, "/metrics has %s" % name)
    m = re.search(r"^stackstream_storage_bytes (\d+)$", text, re.M)
    c.check(m and int(m.group(1)) > 0, "storage bytes > 0")


def run_auth():
    with TestServer(token="s3cret") as s:
        status, h, body = s.get("/api/v1/services")
        c.check(status == 200, "auth on: right token -> 200")
        status, h, body = s.get("/api/v1/services", headers={"Authorization": "Bearer wrong"})
        c.check(status == 401 and "error" in js(body) and "Bearer" in h.get("WWW-Authenticate", ""),
                "auth on: wrong token -> 401 JSON")
        for hdr in ({"Authorization": ""}, {"Authorization": "Basic czNjcmV0"},
                    {"Authorization": "Bearer s3cret2"}, {"Authorization": "Bearer "}):
            status, h, body = s.get("/api/v1/top", headers=hdr, service="api")
            c.check(status == 401, "auth on: %r -> 401" % hdr)
        status, h, body = s.get("/metrics", headers={"Authorization": "x"})
        c.check(status == 401, "auth on: /metrics needs the token")
        status, h, body = s.get("/healthz", headers={"Authorization": "x"})
        c.check(status == 200, "auth on: /healthz open")
        status, h, body = s.get("/api/v1/profile", format="folded", selector=PROD, **RECENT)
        c.check(status == 200 and body.decode().startswith("main;baz 2"), "auth on: profile ok")


def run_tls(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, timeout=60)
    if r.returncode != 0:
        c.check(False, "openssl could not make a test certificate: %s" % r.stderr[-200:])
        return
    with TestServer(tls=(cert, key), token="t0k") as s:
        ctx = ssl.create_default_context(cafile=cert)
        status, h, body = s.get("/api/v1/top", context=ctx, service="api", selector=PROD,
                                **{"from": "now-30m"})
        c.check(status == 200 and js(body)[0]["function"] == "bar", "TLS: top over https")
        status, h, body = s.get("/healthz", context=ctx)
        c.check(status == 200, "TLS: healthz")
        try:
            s.get("/healthz", context=ssl.create_default_context())
            c.check(False, "TLS: untrusted certificate rejected by the client")
        except Exception:
            c.check(True, "TLS: untrusted certificate rejected by the client")
        env = dict(os.environ, STACKSTREAM_TLS_CA=cert, STACKSTREAM_TOKEN="t0k")
        from http_test_server import CLI
        r = subprocess.run([CLI, "top", "--server", s.url, "--service", "api", "--from", "now-30m"],
                           capture_output=True, text=True, timeout=30, env=env)
        c.check(r.returncode == 0 and "bar" in r.stdout, "TLS: stackstream top over https with CA + token")


if __name__ == "__main__":
    main()
