#!/usr/bin/env python3
"""End-to-end tests of span profiles: thread labels set through the C API
(stackstream_set_thread_label, found with dlsym in a preloaded host:
tests/fixtures/span_work.cc) travel with the samples through the real
libstackstream.so, stackstream-agent and stackstream-collector, into pprof
exports (Sample.label), selectors ({span_name="span_a"}) and the Grafana
call SelectMergeSpanProfile (binary Connect protocol, as Grafana sends it).

    span_profiles_e2e_test.py <case>       (one CTest entry per case)
    span_profiles_e2e_test.py all
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "collector"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import agent_e2e_test as base  # noqa: E402  run(), fixture(), Case, check()
import pprof  # noqa: E402
import protowire  # noqa: E402
from stackstream_test import CLI, Collector  # noqa: E402

check = base.check
run = base.run
fixture = base.fixture
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
THREADS = 2
A_IDS = ["aaaa0000000000%x%x" % (t, k) for t in range(THREADS) for k in range(8)]
B_IDS = ["bbbb0000000000%x%x" % (t, k) for t in range(THREADS) for k in range(8)]
WORK = ("fixture_work_a", "fixture_work_b", "fixture_work_common")
TOL = 3.0        # points, the tolerance
LEAK_MAX = 1.0   # percent of a span's samples in the other span's function


def shares(samples):
    """{function: % of the samples' total whose stack holds it}, and the total."""
    total = sum(s.values[0] for s in samples)
    out = {}
    for fn in WORK:
        n = sum(s.values[0] for s in samples if base.stack_has(s, fn))
        out[fn] = 100.0 * n / total if total else 0.0
    return out, total


def check_span(name, sh, total, own, own_pct, other):
    check(total >= 500, "%s: %d samples (>= 500)" % (name, total))
    check(abs(sh[own] - own_pct) <= TOL,
          "%s: %s %.1f%% within %d +- %.0f" % (name, own, sh[own], own_pct, TOL))
    check(abs(sh["fixture_work_common"] - (100 - own_pct)) <= TOL,
          "%s: fixture_work_common %.1f%% within %d +- %.0f"
          % (name, sh["fixture_work_common"], 100 - own_pct, TOL))
    check(sh[other] < LEAK_MAX, "%s: %s leaks %.2f%% (< %.0f%%)" % (name, other, sh[other], LEAK_MAX))


def connect_binary(url, method, fields):
    """One unary Connect call with the binary codec (application/proto), as Grafana makes it."""
    req = urllib.request.Request(url + "/querier.v1.QuerierService/" + method,
                                 data=protowire.encode(fields), method="POST",
                                 headers={"Content-Type": "application/proto",
                                          "Connect-Protocol-Version": "1"})
    with urllib.request.urlopen(req, timeout=60) as r:
        check(r.status == 200 and r.headers.get("Content-Type") == "application/proto",
              "%s: 200 application/proto" % method)
        return protowire.decode(r.read())


def flame_totals(fg):
    """{name: summed node totals} of a FlameGraph message (decoded wire fields)."""
    names = protowire.strings(fg, 1)
    out = {}
    for level in fg.get(2, []):
        vals = protowire.packed_int64(protowire.decode(level).get(1, []))
        for i in range(0, len(vals), 4):
            out[names[vals[i + 3]]] = out.get(names[vals[i + 3]], 0) + vals[i + 1]
    total = fg.get(3, [0])[0]
    return out, total


def stored_total(col, service):
    """Waits until the collector's sample total for "service" stops changing."""
    last, deadline = -1, time.time() + 30
    while time.time() < deadline:
        st, body = col.get("/api/v1/counters", service=service, **{"from": "now-1h", "to": "now"})
        total = json.loads(body).get("samples", 0) if st == 200 else 0
        if total > 0 and total == last:
            return total
        last = total
        time.sleep(0.7)
    return last


def test_collector(c):
    """Two threads alternate spans A (80% work_a) and B (70% work_b) at 1000 Hz: each span's
    profile (pprof labels, selector, SelectMergeSpanProfile) holds its own work within +-3
    points and < 1% of the other's."""
    stats = c.out("stats.json")
    with Collector() as col:
        env = dict(os.environ, STACKSTREAM_HZ="1000", STACKSTREAM_LOG="error",
                   STACKSTREAM_FLUSH_MS="1000")
        env.pop("LD_PRELOAD", None)
        p = subprocess.run([CLI, "run", "--collector", col.grpc_addr, "--service", "span_work",
                            "--", fixture("span_work"), "--threads=%d" % THREADS,
                            "--cpu-seconds=3", "--span-us=2000", "--stats=" + stats],
                           env=env, capture_output=True, timeout=120)
        check(p.returncode == 0, "exit code 0 (got %d) %s" % (p.returncode, p.stderr[-300:]))
        check(json.load(open(stats))["api"] == 1, "the fixture found the C API with dlsym")
        check(stored_total(col, "span_work") > 0, "samples stored")
        rng = {"from": "now-1h", "to": "now"}

        # pprof export: every sample carries its span's labels.
        st, body = col.get("/api/v1/profile", service="span_work", format="pprof", **rng)
        check(st == 200, "pprof export 200")
        prof = pprof.load(body)
        a = [s for s in prof.samples if s.labels.get("span_id") in A_IDS]
        b = [s for s in prof.samples if s.labels.get("span_id") in B_IDS]
        check(all(s.labels.get("span_name") == "span_a" for s in a) and
              all(s.labels.get("span_name") == "span_b" for s in b),
              "pprof: span_name matches span_id on every labelled sample")
        check(all(re.fullmatch(r"[0-9a-f]{32}", s.labels.get("trace_id", "")) for s in a),
              "pprof: span A samples carry a trace_id")
        sh, n = shares(a)
        check_span("pprof span A", sh, n, "fixture_work_a", 80, "fixture_work_b")
        sh, n = shares(b)
        check_span("pprof span B", sh, n, "fixture_work_b", 70, "fixture_work_a")

        # Selector on a sample label.
        st, body = col.get("/api/v1/profile", service="span_work", format="pprof",
                           selector='{span_name="span_a"}', **rng)
        check(st == 200, "selector {span_name=\"span_a\"}: 200")
        sel = pprof.load(body)
        check(all(s.labels.get("span_name") == "span_a" for s in sel.samples),
              "selector: only span A samples")
        sh, n = shares(sel.samples)
        check_span("selector span A", sh, n, "fixture_work_a", 80, "fixture_work_b")

        # Grafana: SelectMergeSpanProfile with span A's ids.
        now = int(time.time() * 1000)
        fields = [(1, CPU), (2, '{service_name="span_work"}')] + [(3, i) for i in A_IDS] + \
                 [(4, now - 3600 * 1000), (5, now + 60 * 1000)]
        resp = connect_binary(col.http_url, "SelectMergeSpanProfile", fields)
        fg = protowire.decode(resp[1][0]) if 1 in resp else {}
        totals, total = flame_totals(fg)
        check(total > 0, "SelectMergeSpanProfile: total %d > 0" % total)
        pa = 100.0 * totals.get("fixture_work_a", 0) / max(1, total)
        pb = 100.0 * totals.get("fixture_work_b", 0) / max(1, total)
        check(abs(pa - 80) <= TOL, "SelectMergeSpanProfile A: fixture_work_a %.1f%% within 80 +- 3" % pa)
        check(pb < LEAK_MAX, "SelectMergeSpanProfile A: fixture_work_b leaks %.2f%% (< 1%%)" % pb)
        # One span id of B only.
        fields = [(1, CPU), (2, "{}"), (3, B_IDS[0]), (4, now - 3600 * 1000), (5, now + 60 * 1000)]
        resp = connect_binary(col.http_url, "SelectMergeSpanProfile", fields)
        totals, total = flame_totals(protowire.decode(resp[1][0]) if 1 in resp else {})
        check(total > 0 and totals.get("fixture_work_a", 0) == 0,
              "SelectMergeSpanProfile B[0]: %d ns, no fixture_work_a" % total)
        # SelectSeries with span exemplars (exemplar_type SPAN = 3): points carry span ids.
        fields = [(1, CPU), (2, '{service_name="span_work"}'), (3, now - 3600 * 1000),
                  (4, now + 60 * 1000), (6, ("double", 10.0)), (10, 3)]
        resp = connect_binary(col.http_url, "SelectSeries", fields)
        spans = []
        for series in resp.get(1, []):
            for point in protowire.decode(series).get(2, []):
                for ex in protowire.decode(point).get(4, []):
                    e = protowire.decode(ex)
                    spans.append((protowire.strings(e, 3), protowire.strings(e, 6)))
        check(spans and all(sid and sid[0] in A_IDS + B_IDS and tid and
                            re.fullmatch(r"[0-9a-f]{32}", tid[0]) for sid, tid in spans),
              "SelectSeries SPAN exemplars carry span_id and trace_id (%d: %s)"
              % (len(spans), spans[:2]))
        # SelectSeries grouped by a sample label: one series per span name.
        fields = [(1, CPU), (2, '{service_name="span_work"}'), (3, now - 3600 * 1000),
                  (4, now + 60 * 1000), (5, "span_name"), (6, ("double", 3600.0))]
        resp = connect_binary(col.http_url, "SelectSeries", fields)
        totals = {}
        for series in resp.get(1, []):
            msg = protowire.decode(series)
            name = [protowire.strings(protowire.decode(l), 2)[0] for l in msg.get(1, [])]
            totals[tuple(name)] = sum(protowire.decode(pt).get(1, [0])[0] for pt in msg.get(2, []))
        a_ns, b_ns = totals.get(("span_a",), 0), totals.get(("span_b",), 0)
        check(set(totals) == {("span_a",), ("span_b",)} and a_ns > 0 and
              abs(a_ns - b_ns) <= 0.10 * max(a_ns, b_ns),
              "SelectSeries group_by span_name: span_a %.2fs, span_b %.2fs (equal CPU +-10%%)"
              % (a_ns / 1e9, b_ns / 1e9))
        # No span: empty.
        resp = connect_binary(col.http_url, "SelectMergeSpanProfile", [(1, CPU), (2, "{}")])
        totals, total = flame_totals(protowire.decode(resp[1][0]) if 1 in resp else {})
        check(total == 0, "SelectMergeSpanProfile without span ids: empty")


LABEL_PATTERNS = {
    "span_id": re.compile(r"([0-9a-f]{8})\1"),
    "trace_id": re.compile(r"([0-9a-f]{16})\1"),
    "span_name": re.compile(r"n(\d+)-\1"),
}


def test_torn(c):
    """4 threads set and clear labels >= 100k times a second at 1000 Hz: no sample carries a
    torn label, no crash."""
    stats = c.out("stats.json")
    rc, _, err = run([fixture("span_work"), "--scenario=torture", "--threads=4", "--seconds=3",
                      "--stats=" + stats],
                     {"STACKSTREAM_OUTPUT": c.out(), "STACKSTREAM_HZ": "1000"}, timeout=90)
    check(rc == 0, "exit code 0 (got %d) %s" % (rc, err[-300:] if rc != 0 else ""))
    st = json.load(open(stats))
    rate = st["switches"] / st["seconds"]
    check(rate >= 100000, "%.0f label switches a second (>= 100000)" % rate)
    p = pprof.load(c.out())
    labelled = torn = 0
    for s in p.samples:
        labels = {k: v for k, v in s.labels.items() if k != "truncated"}
        if labels:
            labelled += s.values[0]
        for k, v in labels.items():
            if k not in LABEL_PATTERNS or not LABEL_PATTERNS[k].fullmatch(v):
                torn += s.values[0]
                print("  torn: %s=%r" % (k, v))
    check(labelled >= 1000, "%d labelled samples (>= 1000)" % labelled)
    check(torn == 0, "no torn label (%d)" % torn)


def test_host(c):
    """The host's stdout and exit status are the same with and without the library."""
    argv = [fixture("span_work"), "--threads=2", "--cpu-seconds=0.3", "--stdout-lines=50",
            "--exit-code=3"]
    rc0, out0, _ = run(argv, agent=False)
    rc1, out1, _ = run(argv, {"STACKSTREAM_OUTPUT": c.out(), "STACKSTREAM_HZ": "1000"})
    check(rc0 == 3 and rc1 == 3, "exit status 3 with and without (%d, %d)" % (rc0, rc1))
    check(out0 == out1 and len(out0) > 0, "stdout identical (%d bytes)" % len(out1))
    p = pprof.load(c.out())
    check(any("span_id" in s.labels for s in p.samples), "the profiled run has span labels")


def test_otel(c):
    """A host that publishes its spans as OpenTelemetry thread context (OTEP #4947, the record
    laid out by the fixture) gets span profiles without the C API: span A within +-3 points."""
    rc, _, err = run([fixture("span_work"), "--scenario=otel", "--threads=%d" % THREADS,
                      "--cpu-seconds=2"],
                     {"STACKSTREAM_OUTPUT": c.out(), "STACKSTREAM_HZ": "1000"}, timeout=90)
    check(rc == 0, "exit code 0 (got %d) %s" % (rc, err[-300:] if rc != 0 else ""))
    p = pprof.load(c.out())
    a = [s for s in p.samples if s.labels.get("span_id", "").startswith("aaaaaaaa0000")]
    b = [s for s in p.samples if s.labels.get("span_id", "").startswith("bbbbbbbb0000")]
    check(all(re.fullmatch(r"[0-9a-f]{32}", s.labels.get("trace_id", "")) for s in a + b),
          "every span sample has a 32-hex trace_id")
    check(all(re.fullmatch(r"(aaaaaaaa|bbbbbbbb)0000[0-9a-f]{4}", s.labels["span_id"])
              for s in a + b), "span ids are the records' bytes in hex")
    sh, n = shares(a)
    check_span("otel span A", sh, n, "fixture_work_a", 80, "fixture_work_b")
    sh, n = shares(b)
    check_span("otel span B", sh, n, "fixture_work_b", 70, "fixture_work_a")


CASES = {"collector": test_collector, "torn": test_torn, "host": test_host, "otel": test_otel}
base.CASES = CASES

if __name__ == "__main__":
    sys.exit(base.main())
