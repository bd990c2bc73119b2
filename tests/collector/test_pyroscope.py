"""Pyroscope compatibility: the Connect query API Grafana's Pyroscope data
source calls (raw protobuf-encoded POSTs, and Connect JSON), decoded and
checked against the known data set; and the legacy POST /ingest."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stackstream_test import Checker  # noqa: E402
from http_test_server import TestServer  # noqa: E402
from protowire import decode, encode, packed_int64, strings  # noqa: E402

c = Checker()
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
MS = 10_000_000  # one sample at 100 Hz in ns
CONNECT = {"Connect-Protocol-Version": "1", "Accept-Encoding": "gzip"}


def call(s, method, fields, content_type="application/proto"):
    body = encode(fields) if content_type == "application/proto" else fields
    return s.post("/querier.v1.QuerierService/" + method, body, content_type, CONNECT)


def flamegraph_nodes(fg):
    """[(level, start, total, self, name)] from a FlameGraph message."""
    names = strings(fg, 1)
    out = []
    for level, raw in enumerate(fg.get(2, [])):
        values = packed_int64(decode(raw).get(1, []))
        x = 0
        for i in range(0, len(values), 4):
            x += values[i]
            out.append((level, x, values[i + 1], values[i + 2], names[values[i + 3]]))
            x += values[i + 1]
    return names, out


def main():
    now_ms = int(time.time() * 1000)
    start, end = now_ms - 30 * 60 * 1000, now_ms
    with TestServer() as s:
        status, h, body = call(s, "ProfileTypes", [(1, start), (2, end)])
        types = [strings(decode(t), 1)[0] for t in decode(body).get(1, [])] if status == 200 else []
        c.check(status == 200 and h.get("Content-Type") == "application/proto" and CPU in types,
                "ProfileTypes lists %s: %s" % (CPU, types))

        status, h, body = call(s, "LabelNames", [(1, '{service_name="api"}'), (2, start), (3, end)])
        names = strings(decode(body), 1)
        c.check(status == 200 and {"service_name", "env", "host", "__profile_type__"} <= set(names) and
                "service" not in names, "LabelNames: %s" % names)

        status, h, body = call(s, "LabelValues", [(1, "service_name"), (3, start), (4, end)])
        c.check(strings(decode(body), 1) == ["api", "worker"], "LabelValues service_name")
        status, h, body = call(s, "LabelValues", [(1, "env"), (2, '{service_name="api"}'),
                                                  (3, start), (4, end)])
        c.check(strings(decode(body), 1) == ["dev", "prod"], "LabelValues env for api: %r" % body)

        status, h, body = call(s, "SelectMergeStacktraces", [
            (1, CPU), (2, '{service_name="api", env="prod"}'), (3, start), (4, end)])
        fg = decode(decode(body)[1][0]) if status == 200 else {}
        names, nodes = flamegraph_nodes(fg)
        c.check(names[:1] == ["total"] and fg.get(3) == [6 * MS], "flamegraph total 60ms")
        c.check(fg.get(4) == [3 * MS], "flamegraph max_self = bar's 30ms")
        want = {(0, "total", 6 * MS, 0), (1, "main", 6 * MS, 0), (2, "foo", 4 * MS, 1 * MS),
                (3, "bar", 3 * MS, 3 * MS), (2, "baz", 2 * MS, 2 * MS)}
        got = {(n[0], n[4], n[2], n[3]) for n in nodes}
        c.check(got == want, "flamegraph nodes: %s" % sorted(got))
        inside = all(any(p[0] == n[0] - 1 and p[1] <= n[1] and n[1] + n[2] <= p[1] + p[2]
                         for p in nodes) for n in nodes if n[0] > 0)
        c.check(inside, "every node lies inside a parent's range")

        status, h, body = call(s, "SelectMergeStacktraces", [
            (1, CPU), (2, '{}'), (3, start), (4, end), (5, 3)])
        names, nodes = flamegraph_nodes(decode(decode(body)[1][0]))
        c.check(status == 200 and len(nodes) <= 5, "max_nodes bounds the tree (%d nodes)" % len(nodes))
        tot = decode(decode(body)[1][0]).get(3, [0])[0]
        c.check(tot == (6 + 5 + 12) * MS, "no selector merges every service: %d" % tot)

        status, h, body = call(s, "SelectSeries", [
            (1, CPU), (2, '{service_name="api"}'), (3, now_ms - 3 * 3600 * 1000), (4, end),
            (5, "env"), (6, ("double", 60.0))])
        series = decode(body).get(1, []) if status == 200 else []
        by = {}
        for sr in series:
            m = decode(sr)
            labels = {strings(decode(l), 1)[0]: strings(decode(l), 2)[0] for l in m.get(1, [])}
            pts = [decode(p) for p in m.get(2, [])]
            by[labels.get("env")] = (sum(p.get(1, [0])[0] for p in pts),
                                     [p.get(2, [0])[0] for p in pts])
        c.check(set(by) == {"dev", "prod"}, "SelectSeries grouped by env: %s" % list(by))
        if set(by) == {"dev", "prod"}:
            c.check(by["dev"][0] == 5 * MS and by["prod"][0] == (6 + 10) * MS,
                    "SelectSeries sums: dev %s prod %s" % (by["dev"][0], by["prod"][0]))
            ts = by["prod"][1]
            c.check(ts == sorted(ts) and all(now_ms - 4 * 3600 * 1000 < t <= now_ms for t in ts),
                    "timestamps in ms, sorted")
        status, h, body = call(s, "SelectSeries", [
            (1, CPU), (2, '{service_name="api"}'), (3, start), (4, end), (6, ("double", 15.0)),
            (8, [(1, [(1, "main")]), (1, [(1, "foo")])])])
        total = sum(decode(p).get(1, [0])[0] for sr in decode(body).get(1, [])
                    for p in decode(sr).get(2, []))
        c.check(status == 200 and total == 4 * MS, "stack_trace_selector main>foo: %s" % total)

        status, h, body = call(s, "SelectSeries", [
            (1, CPU), (2, '{service_name="api"}'), (3, start), (4, end), (5, "env"),
            (6, ("double", 60.0)), (9, 1)])
        labels = [strings(decode(l), 2)[0] for sr in decode(body).get(1, [])
                  for l in decode(sr).get(1, [])]
        c.check(status == 200 and labels == ["prod"], "SelectSeries limit 1 keeps the largest: %s" % labels)

        # aggregation: SUM adds the two api streams (prod 6, dev 5 samples at
        # now-10m); AVERAGE is the mean over the streams with data in the step.
        for agg, want in ((0, 11 * MS), (1, 11 * MS / 2)):
            status, h, body = call(s, "SelectSeries", [
                (1, CPU), (2, '{service_name="api"}'), (3, start), (4, end),
                (6, ("double", 3600.0)), (7, agg)])
            total = sum(decode(p).get(1, [0])[0] for sr in decode(body).get(1, [])
                        for p in decode(sr).get(2, []))
            c.check(status == 200 and total == want, "SelectSeries aggregation %d: %s" % (agg, total))

        # Connect JSON
        status, h, body = s.post("/querier.v1.QuerierService/LabelValues",
                                 json.dumps({"name": "service_name"}).encode(), "application/json",
                                 CONNECT)
        c.check(status == 200 and json.loads(body) == {"names": ["api", "worker"]},
                "Connect JSON LabelValues: %r" % body)

        # Errors
        status, h, body = call(s, "SelectMergeStacktraces", [(1, CPU), (2, '{service_name=')])
        err = json.loads(body) if h.get("Content-Type", "").startswith("application/json") else {}
        c.check(status == 400 and err.get("code") == "invalid_argument" and
                "label_selector" in err.get("message", ""), "bad selector -> invalid_argument")
        status, h, body = call(s, "SelectMergeStacktraces", [(1, "bogus:type"), (2, "{}")])
        c.check(status == 400 and json.loads(body)["code"] == "invalid_argument",
                "unknown profile type -> invalid_argument")
        status, h, body = call(s, "SelectHeatmap", [])
        c.check(status == 501 and json.loads(body)["code"] == "unimplemented", "unknown method -> 501")
        status, h, body = s.post("/querier.v1.QuerierService/ProfileTypes", b"\xff\xff\xff",
                                 "application/proto", CONNECT)
        c.check(status == 400 and json.loads(body)["code"] == "invalid_argument", "garbage body -> 400")
        status, h, body = s.post("/querier.v1.QuerierService/ProfileTypes", b"", "text/plain", CONNECT)
        c.check(status == 400, "wrong content type -> 400")
        # Bad input on every method and on render: a clear 4xx, never a crash.
        for method in ("Series", "SelectMergeProfile", "SelectMergeSpanProfile", "Diff",
                       "GetProfileStats", "SelectSeries", "LabelNames"):
            status, h, body = s.post("/querier.v1.QuerierService/" + method, b"\x0a\xff\xff\xff",
                                     "application/proto", CONNECT)
            c.check(status == 400 and json.loads(body)["code"] == "invalid_argument",
                    method + ": truncated protobuf -> 400 invalid_argument")
            status, h, body = s.post("/querier.v1.QuerierService/" + method, b'{"start": "soon"',
                                     "application/json", CONNECT)
            c.check(status == 400 and json.loads(body)["code"] == "invalid_argument",
                    method + ": broken JSON -> 400 invalid_argument")
        status, h, body = call(s, "Diff", [(1, [(1, CPU), (2, "{}")])])
        c.check(status == 400 and "right" in json.loads(body)["message"], "Diff without right -> 400")
        status, h, body = call(s, "SelectMergeStacktraces", [(1, CPU), (2, "{}"), (8, "not-an-id")])
        c.check(status == 400 and "profile_id_selector" in json.loads(body)["message"],
                "foreign profile id -> 400")
        for qs, param in [("query=bogus%7B%7D", "query"), ("", "query"),
                          ("query=" + CPU + "%7B&from=now-1h", "query"),
                          ("query=" + CPU + "%7B%7D&from=soon", "from"),
                          ("query=" + CPU + "%7B%7D&max-nodes=-3", "max-nodes"),
                          ("query=" + CPU + "%7B%7D&format=svg", "format")]:
            status, h, body = s.get("/pyroscope/render", raw_query=qs)
            c.check(status == 400 and param in json.loads(body).get("error", ""),
                    "render %s -> 400 naming %s (%s)" % (qs, param, body[:100]))
        status, h, body = s.get("/pyroscope/render-diff", raw_query="leftQuery=" + CPU + "%7B%7D")
        c.check(status == 400 and "rightQuery" in json.loads(body).get("error", ""),
                "render-diff without rightQuery -> 400")
        # Legacy "app.cpu{...}" render query and the fixture's numbers.
        status, h, body = s.get("/pyroscope/render", raw_query="query=api.cpu%7Benv%3D%22prod%22%7D&from=now-30m")
        doc = json.loads(body) if status == 200 else {}
        c.check(doc.get("flamebearer", {}).get("numTicks") == 6 * MS and
                doc["flamebearer"]["levels"][0] == [0, 6 * MS, 0, 0],
                "render api.cpu{env=prod}: numTicks 60ms, root level")
        c.check(s.alive(), "server alive")

        legacy_ingest(s)
    with TestServer(token="tk") as s:
        s.token = None
        status, h, body = call(s, "ProfileTypes", [])
        c.check(status == 401 and json.loads(body)["code"] == "unauthenticated",
                "auth on: Connect call without token -> 401 unauthenticated")
    c.finish()


def legacy_ingest(s):
    until = int(time.time()) - 60
    q = "/ingest?name=legacy.cpu%7Benv%3Dstaging%2Cregion%3Dus%7D&from={}&until={}&format=folded&sampleRate=100".format(
        until - 10, until)
    body = b"main;work;hot 7\nmain;work 2\r\nmain;idle 1\n\n"
    status, h, resp = s.post(q, body, "text/plain")
    c.check(status == 200, "legacy ingest 200 (%d %r)" % (status, resp))
    status, h, resp = s.post(q, body, "text/plain")
    c.check(status == 200, "legacy ingest resend 200")
    status, h, out = s.get("/api/v1/profile", service="legacy", format="folded",
                           selector='{env="staging",region="us"}', **{"from": "now-10m"})
    c.check(out.decode() == "main;idle 1\nmain;work 2\nmain;work;hot 7\n",
            "ingested folded comes back once (resend deduplicated): %r" % out)
    status, h, out = s.get("/api/v1/top", service="legacy", **{"from": "now-10m"})
    c.check(status == 200 and json.loads(out)[0]["function"] == "hot", "top of ingested data")
    for qs, body, param, code in [
        ("/ingest?from=1&until=2", b"a 1\n", "name", 400),
        ("/ingest?name=x.alloc_objects", b"a 1\n", "name", 400),
        ("/ingest?name=x.cpu%7Bbad%7D", b"a 1\n", "name", 400),
        ("/ingest?name=x.cpu&format=pprof", b"\x1f\x8b", "format", 415),
        ("/ingest?name=x.cpu&sampleRate=0", b"a 1\n", "sampleRate", 400),
        ("/ingest?name=x.cpu&from=soon", b"a 1\n", "from", 400),
        ("/ingest?name=x.cpu", b"a;b notanumber\n", None, 400),
        ("/ingest?name=x.cpu", b"nospace\n", None, 400),
    ]:
        status, h, resp = s.post(qs, body, "text/plain")
        msg = json.loads(resp).get("error", "") if resp else ""
        c.check(status == code and (param is None or '"%s"' % param in msg),
                "legacy ingest %s -> %d %s" % (qs, status, msg))


if __name__ == "__main__":
    main()
