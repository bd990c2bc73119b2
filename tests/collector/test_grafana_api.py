"""What an unmodified Grafana 12 calls, end to end: the real agent preloaded
into cpu_split streams to a real collector, and every call of Grafana's
Pyroscope data source (binary proto through @connectrpc/connect-node, as its
Go backend) and of Profiles Drilldown (JSON with mixed field-name styles,
enum names and unknown fields, through plain HTTP as the data source proxy
forwards it) is made and checked on the data:

- "Save & test": ProfileTypes(start=1000, end=4000) succeeds on an empty store;
- the service appears in Series (service_name + __profile_type__), LabelValues;
- GetProfileStats says data_ingested;
- run 1 spends 70/30 of its CPU in fixture_hot_a/fixture_hot_b: the flame graph
  reads 70/30 within 3 points through SelectMergeStacktraces (both codecs and
  Drilldown's JSON), /pyroscope/render and SelectMergeProfile (pprof);
- run 2 is 30/70: Diff and /pyroscope/render-diff show fixture_hot_b grew;
- SelectSeries groups by run, returns exemplars whose profile id reads back
  that stream; SelectMergeSpanProfile answers an empty flame graph;
  settings.v1 Get answers no settings.
Skipped (77) without node/npm/registry."""
import json
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stackstream_test import AGENT, Checker, Collector, binary  # noqa: E402
from connect_node import connect_calls, setup  # noqa: E402

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
CPU_SPLIT = binary("tests", "fixtures", "cpu_split")
SERVICE = "grafana-fix"
TOL = 3.0  # share points
c = Checker()


def run_fixture(col, run, a_us, b_us):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STACKSTREAM_") or k in ("STACKSTREAM_BUILD_DIR",
                                                       "STACKSTREAM_SOURCE_DIR")}
    env.update({"LD_PRELOAD": AGENT, "STACKSTREAM_COLLECTOR": col.grpc_addr,
                "STACKSTREAM_SERVICE": SERVICE, "STACKSTREAM_LABELS": "run=%d" % run,
                "STACKSTREAM_HZ": "500", "STACKSTREAM_FLUSH_MS": "500"})
    r = subprocess.run([CPU_SPLIT, "--threads=2", "--cpu-seconds=2.5", "--a-us=%d" % a_us,
                        "--b-us=%d" % b_us], env=env, capture_output=True, timeout=120)
    c.check(r.returncode == 0, "run %d: cpu_split exit 0 (%r)" % (run, r.stderr[-300:]))


def folded_total(col, run):
    status, body = col.get("/api/v1/profile", service=SERVICE, format="folded",
                           selector='{run="%d"}' % run, **{"from": "now-1h", "to": "now+1h"})
    return sum(int(l.rsplit(" ", 1)[1]) for l in body.decode().splitlines() if l) if status == 200 else 0


def wait_stable(col, run):
    """The run's sample total once it stops changing (the agent's last flush is in)."""
    last, deadline = -1, time.time() + 20
    while time.time() < deadline:
        total = folded_total(col, run)
        if total > 0 and total == last:
            return total
        last = total
        time.sleep(0.7)
    return last


def share_levels(names, levels, width=4, offset=0):
    """{name: summed total} over a flame graph's nodes (quadruples or 7-tuples)."""
    out = {}
    for level in levels:
        vals = [int(v) for v in (level.get("values", []) if isinstance(level, dict) else level)]
        for i in range(0, len(vals), width):
            name = names[vals[i + width - 1]]
            out[name] = out.get(name, 0) + vals[i + offset + 1]
    return out


def a_share(by_name):
    a, b = by_name.get("fixture_hot_a", 0), by_name.get("fixture_hot_b", 0)
    return 100.0 * a / (a + b) if a + b else -1.0


def pprof_share(p):
    strings = p.get("stringTable", [])
    fn_name = {f["id"]: strings[int(f.get("name", 0))] for f in p.get("function", [])}
    loc_fns = {l["id"]: [fn_name.get(x.get("functionId")) for x in l.get("line", [])]
               for l in p.get("location", [])}
    by = {}
    for s in p.get("sample", []):
        names = set(n for lid in s.get("locationId", []) for n in loc_fns.get(lid, []))
        for n in ("fixture_hot_a", "fixture_hot_b"):
            if n in names:
                by[n] = by.get(n, 0) + int(s["value"][0])
    return a_share(by)


def post_json(col, path, doc):
    import urllib.request
    req = urllib.request.Request(col.http_url + path, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Connect-Protocol-Version": "1"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main():
    desc = setup()
    for path in (AGENT, CPU_SPLIT):
        if not os.path.exists(path):
            print("FAIL missing " + path)
            sys.exit(1)
    with Collector() as col:
        # "Save & test" on an empty store.
        out = connect_calls(desc, col.http_url, [("ProfileTypes", {"start": "1000", "end": "4000"})])
        for codec in ("proto", "json"):
            c.check("response" in out[codec][0],
                    codec + ": health check ProfileTypes(1000, 4000) on an empty store: %s" % out[codec][0])

        run_fixture(col, 1, 7000, 3000)
        run_fixture(col, 2, 3000, 7000)
        totals = {run: wait_stable(col, run) for run in (1, 2)}
        c.check(all(t > 500 for t in totals.values()), "both runs stored: %s samples" % totals)

        now = int(time.time() * 1000)
        start, end = str(now - 10 * 60 * 1000), str(now + 60 * 1000)
        sel1 = '{service_name="%s",run="1"}' % SERVICE
        sel2 = '{service_name="%s",run="2"}' % SERVICE
        merge1 = {"profileTypeID": CPU, "labelSelector": sel1, "start": start, "end": end,
                  "maxNodes": "16384"}
        calls = [
            ("Series", {"matchers": ["{}"], "labelNames": ["service_name", "__profile_type__"],
                        "start": start, "end": end}),
            ("GetProfileStats", {}),
            ("SelectMergeStacktraces", merge1),
            ("SelectMergeProfile", {"profileTypeID": CPU, "labelSelector": sel1, "start": start,
                                    "end": end}),
            ("Diff", {"left": dict(merge1), "right": dict(merge1, labelSelector=sel2)}),
            ("SelectSeries", {"profileTypeID": CPU, "labelSelector": '{service_name="%s"}' % SERVICE,
                              "start": start, "end": end, "step": 15, "groupBy": ["run"],
                              "aggregation": "TIME_SERIES_AGGREGATION_TYPE_SUM",
                              "exemplarType": "EXEMPLAR_TYPE_INDIVIDUAL", "limit": "10"}),
            ("SelectMergeSpanProfile", {"profileTypeID": CPU, "labelSelector": sel1,
                                        "spanSelector": ["9a517183f26a089d"], "start": start,
                                        "end": end}),
            ("LabelValues", {"name": "__profile_type__", "matchers": ['{service_name="%s"}' % SERVICE],
                             "start": start, "end": end}),
            ("ProfileTypes", {"start": start, "end": end}),
            ("SelectMergeStacktraces", dict(merge1, format="PROFILE_FORMAT_PPROF")),
        ]
        out = connect_calls(desc, col.http_url, calls)
        exemplar_ids = {}
        root_child = None  # the largest frame under "total" (e.g. the thread start)
        for codec in ("proto", "json"):
            res = out[codec]
            errors = [(calls[i][0], r["error"]) for i, r in enumerate(res) if "error" in r]
            c.check(not errors, codec + ": no call failed %s" % errors)
            res = [r.get("response", {}) for r in res]
            sets = [{l["name"]: l["value"] for l in s.get("labels", [])}
                    for s in res[0].get("labelsSet", [])]
            c.check({"service_name": SERVICE, "__profile_type__": CPU} in sets,
                    codec + ": Series has the service with its profile type: %s" % sets)
            st = res[1]
            c.check(st.get("dataIngested") is True and
                    int(st.get("oldestProfileTime", 0)) <= int(st.get("newestProfileTime", 0)) <= now + 60000,
                    codec + ": GetProfileStats %s" % st)
            fg = res[2].get("flamegraph", {})
            if fg.get("levels", [])[1:]:
                # The largest node under "total" (the thread start; a few
                # stacks whose unwinding stopped early have other roots).
                v = [int(x) for x in fg["levels"][1]["values"]]
                biggest = max(range(0, len(v), 4), key=lambda i: v[i + 1])
                root_child = fg["names"][v[biggest + 3]]
            c.near(a_share(share_levels(fg.get("names", []), fg.get("levels", []))), 70, TOL,
                   codec + ": SelectMergeStacktraces fixture_hot_a share")
            c.check(fg.get("names", [""])[0] == "total" and int(fg.get("total", 0)) ==
                    totals[1] * 2000000, codec + ": flame graph total = samples x 2 ms period")
            c.near(pprof_share(res[3]), 70, TOL, codec + ": SelectMergeProfile (pprof) fixture_hot_a share")
            d = res[4].get("flamegraph", {})
            left = share_levels(d.get("names", []), d.get("levels", []), width=7, offset=0)
            right = share_levels(d.get("names", []), d.get("levels", []), width=7, offset=3)
            lt, rt = int(d.get("leftTicks", 0)), int(d.get("rightTicks", 0))
            grew = (100.0 * right.get("fixture_hot_b", 0) / rt if rt else 0) - \
                   (100.0 * left.get("fixture_hot_b", 0) / lt if lt else 0)
            c.check(lt > 0 and rt > 0 and grew > 25,
                    codec + ": Diff shows fixture_hot_b grew by %.1f points" % grew)
            series = {s["labels"][0]["value"]: s for s in res[5].get("series", [])}
            c.check(set(series) == {"1", "2"}, codec + ": SelectSeries grouped by run: %s" % list(series))
            if "1" in series:
                pts = series["1"].get("points", [])
                total = sum(p.get("value", 0) for p in pts)
                c.check(abs(total - totals[1] * 2000000) < 1, codec + ": SelectSeries run 1 sums to its samples")
                ex = [e for p in pts for e in p.get("exemplars", [])]
                c.check(ex and all(e.get("profileId", "").startswith("ls-") for e in ex),
                        codec + ": exemplars with profile ids (%d)" % len(ex))
                if ex:
                    exemplar_ids[codec] = ex[0]["profileId"]
            sp = res[6].get("flamegraph", {})
            c.check(int(sp.get("total", 0)) == 0 and sp.get("names") == ["total"],
                    codec + ": SelectMergeSpanProfile: empty flame graph until samples carry span_id")
            c.check(CPU in res[7].get("names", []), codec + ": LabelValues __profile_type__")
            c.check([t["ID"] for t in res[8].get("profileTypes", [])] ==
                    [CPU, "process_cpu:samples:count:cpu:nanoseconds"],
                    codec + ": ProfileTypes lists the types present")
            c.near(pprof_share(res[9].get("pprof", {}).get("profile", {})), 70, TOL,
                   codec + ": format PPROF fixture_hot_a share")

        # The exemplar's profile id reads back its stream (run 1's only agent).
        if "proto" in exemplar_ids:
            out = connect_calls(desc, col.http_url, [("SelectMergeStacktraces", dict(
                merge1, labelSelector="{}", profileIdSelector=[exemplar_ids["proto"]]))])
            fg = out["proto"][0].get("response", {}).get("flamegraph", {})
            c.check(int(fg.get("total", 0)) == totals[1] * 2000000,
                    "profile_id_selector of an exemplar reads its stream: %s" % fg.get("total"))

        # Drilldown: JSON with both field-name styles, enum names, unknown fields.
        status, doc = post_json(col, "/querier.v1.QuerierService/SelectMergeStacktraces", {
            "profile_typeID": CPU, "label_selector": sel1, "start": int(start), "end": end,
            "maxNodes": 16384, "format": "PROFILE_FORMAT_FLAMEGRAPH", "unknownField": {"x": [1, 2]},
            "stack_trace_selector": {"callSite": [{"name": root_child}]}})
        fg = doc.get("flamegraph", {})
        c.check(status == 200, "Drilldown JSON SelectMergeStacktraces 200 (%s)" % doc if status != 200 else
                "Drilldown JSON SelectMergeStacktraces 200")
        c.near(a_share(share_levels(fg.get("names", []), fg.get("levels", []))), 70, TOL,
               "Drilldown JSON (mixed names, unknown fields, call_site %s) fixture_hot_a share" % root_child + "")
        status, doc = post_json(col, "/querier.v1.QuerierService/SelectMergeStacktraces", {
            "profileTypeID": CPU, "labelSelector": sel1, "start": start, "end": end,
            "stackTraceSelector": {"call_site": [{"name": root_child}, {"name": "no_such_function"}]}})
        c.check(status == 200 and int(doc.get("flamegraph", {}).get("total", 0)) == 0,
                "call_site below a function that never ran selects nothing")
        status, doc = post_json(col, "/querier.v1.QuerierService/GetProfileStats", {"whatever": 1})
        c.check(status == 200 and doc.get("dataIngested") is True, "Drilldown JSON GetProfileStats %s" % doc)
        status, doc = post_json(col, "/querier.v1.QuerierService/Series", {
            "matchers": ['{service_name="%s"}' % SERVICE], "label_names": ["service_name", "__profile_type__"],
            "start": start, "end": end, "extra": True})
        c.check(status == 200 and {"labels": [{"name": "__profile_type__", "value": CPU},
                                              {"name": "service_name", "value": SERVICE}]}
                in doc.get("labelsSet", []), "Drilldown JSON Series (snake_case label_names)")
        status, doc = post_json(col, "/settings.v1.SettingsService/Get", {})
        c.check(status == 200 and doc == {"settings": []}, "settings.v1 Get: %s" % doc)
        status, doc = post_json(col, "/querier.v1.QuerierService/SelectHeatmap", {})
        c.check(status == 501 and doc.get("code") == "unimplemented", "not served -> 501 unimplemented")

        # /pyroscope/render (flamebearer JSON, DOT) and render-diff.
        q = urllib.parse.quote(CPU + sel1)
        rng = "&from=%d&until=%d" % (int(start) // 1000, int(end) // 1000)
        status, body = col.get("/pyroscope/render?query=" + q + rng + "&format=json&max-nodes=16384")
        doc = json.loads(body) if status == 200 else {}
        fb = doc.get("flamebearer", {})
        c.check(doc.get("version") == 1 and doc.get("metadata", {}).get("format") == "single" and
                fb.get("numTicks") == totals[1] * 2000000, "render: flamebearer v1, single, numTicks")
        c.near(a_share(share_levels(fb.get("names", []), fb.get("levels", []))), 70, TOL,
               "render fixture_hot_a share")
        c.check(sum(doc.get("timeline", {}).get("samples", [])) == totals[1] * 2000000,
                "render timeline sums to numTicks")
        status, body = col.get("/pyroscope/render?query=" + q + rng + "&format=dot")
        c.check(status == 200 and body.startswith(b"digraph") and b"fixture_hot_a" in body,
                "render format=dot is Graphviz DOT naming fixture_hot_a")
        status, body = col.get("/pyroscope/render-diff?leftQuery=" + q + "&rightQuery=" +
                               urllib.parse.quote(CPU + sel2) +
                               rng.replace("from", "leftFrom").replace("until", "leftUntil") +
                               rng.replace("from", "rightFrom").replace("until", "rightUntil"))
        doc = json.loads(body) if status == 200 else {}
        fb = doc.get("flamebearer", {})
        left = share_levels(fb.get("names", []), fb.get("levels", []), 7, 0)
        right = share_levels(fb.get("names", []), fb.get("levels", []), 7, 3)
        lt, rt = doc.get("leftTicks", 0), doc.get("rightTicks", 0)
        grew = (100.0 * right.get("fixture_hot_b", 0) / rt if rt else 0) - \
               (100.0 * left.get("fixture_hot_b", 0) / lt if lt else 0)
        c.check(doc.get("metadata", {}).get("format") == "double" and lt == totals[1] * 2000000 and
                rt == totals[2] * 2000000 and grew > 25,
                "render-diff: double, ticks, fixture_hot_b grew by %.1f points" % grew)

        # The native API's max_nodes (the same truncation).
        status, body = col.get("/api/v1/profile", service=SERVICE, format="folded", max_nodes="3",
                               **{"from": "now-1h", "to": "now+1h"})
        lines = body.decode().splitlines()
        c.check(status == 200 and sum(int(l.rsplit(" ", 1)[1]) for l in lines) == totals[1] + totals[2]
                and any(l.rsplit(" ", 1)[0].endswith(";other") or l.startswith("other") for l in lines),
                "/api/v1/profile?max_nodes=3 keeps the total and merges the rest into other: %s" % lines[:4])
    c.finish()


if __name__ == "__main__":
    main()
