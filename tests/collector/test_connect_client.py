"""The Pyroscope query API through the real Connect client
(@connectrpc/connect-node, binary and JSON codecs) against the known data set
of http_test_server. Skipped (77) without node/npm/registry."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stackstream_test import Checker  # noqa: E402
from http_test_server import TestServer  # noqa: E402
from connect_node import connect_calls, setup  # noqa: E402

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def main():
    desc = setup()
    c = Checker()
    now = int(time.time() * 1000)
    start = now - 30 * 60 * 1000
    calls = [
        ("ProfileTypes", {"start": str(start), "end": str(now)}),
        ("LabelNames", {"matchers": ['{service_name="api"}'], "start": str(start), "end": str(now)}),
        ("LabelValues", {"name": "service_name", "start": str(start), "end": str(now)}),
        ("SelectMergeStacktraces", {"profileTypeID": CPU, "labelSelector": '{service_name="api", env="prod"}',
                                    "start": str(start), "end": str(now), "maxNodes": "1024"}),
        ("SelectSeries", {"profileTypeID": CPU, "labelSelector": '{service_name="api"}',
                          "start": str(start), "end": str(now), "groupBy": ["env"], "step": 60}),
        ("SelectMergeStacktraces", {"profileTypeID": "nope", "labelSelector": "{"}),
    ]
    with TestServer() as s:
        out = connect_calls(desc, s.url, calls)
    ms = 10_000_000
    for codec in ("proto", "json"):
        res = [r.get("response", {}) for r in out[codec]]
        ids = [t["ID"] for t in res[0].get("profileTypes", [])]
        c.check("process_cpu:cpu:nanoseconds:cpu:nanoseconds" in ids, codec + ": ProfileTypes %s" % ids)
        names = res[1].get("names", [])
        c.check([n for n in names if not n.startswith("__")] == ["env", "host", "service_name"] and
                "__profile_type__" in names, codec + ": LabelNames %s" % names)
        c.check(res[2].get("names") == ["api", "worker"], codec + ": LabelValues")
        fg = res[3].get("flamegraph", {})
        levels = [[int(v) for v in l.get("values", [])] for l in fg.get("levels", [])]
        c.check(int(fg.get("total", 0)) == 6 * ms and int(fg.get("maxSelf", 0)) == 3 * ms and
                fg.get("names", [None])[0] == "total" and levels[:2] == [[0, 6 * ms, 0, 0],
                                                                          [0, 6 * ms, 0, 1]],
                codec + ": SelectMergeStacktraces total/max_self/levels")
        series = {s["labels"][0]["value"]: sum(p["value"] for p in s["points"])
                  for s in res[4].get("series", [])}
        c.check(series == {"prod": 6 * ms, "dev": 5 * ms}, codec + ": SelectSeries %s" % series)
        err = out[codec][5].get("error", {})
        c.check(err.get("code") == 3 and "profile_typeID" in err.get("message", ""),
                codec + ": error arrives as Connect invalid_argument: %s" % err)
    c.finish()


if __name__ == "__main__":
    main()
