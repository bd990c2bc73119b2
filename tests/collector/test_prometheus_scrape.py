"""Debian's real Prometheus server scrapes the collector's /metrics on
loopback: the target must be "up" with no scrape error, and the counters,
the labelled rejected counter and the latency histogram must be queryable.
Exits 77 (skipped) when `prometheus` is not installed."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stackstream_test import Checker, free_port  # noqa: E402
from http_test_server import TestServer  # noqa: E402


def prom_get(port, path, **params):
    url = "http://127.0.0.1:%d%s?%s" % (port, path, urllib.parse.urlencode(params))
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def main():
    prom = shutil.which("prometheus")
    if not prom:
        print("skip: prometheus not installed (apt-get install prometheus)")
        sys.exit(77)
    c = Checker()
    tmp = tempfile.mkdtemp(prefix="ss-prom-")
    proc = None
    try:
        with TestServer() as s:
            s.get("/api/v1/top", service="api")  # one observation in the histogram
            cfg = os.path.join(tmp, "prometheus.yml")
            with open(cfg, "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                        "scrape_configs:\n  - job_name: stackstream\n"
                        "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % s.port)
            port = free_port()
            proc = subprocess.Popen(
                [prom, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                 "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prom.log"), "wb"))
            target, deadline = None, time.time() + 60
            while time.time() < deadline:
                try:
                    targets = prom_get(port, "/api/v1/targets")["data"]["activeTargets"]
                    if targets and targets[0]["health"] != "unknown":
                        target = targets[0]
                        if target["health"] == "up":
                            break
                except OSError:
                    pass
                time.sleep(0.5)
            c.check(target is not None and target["health"] == "up" and not target["lastError"],
                    "prometheus scrapes /metrics: %r" % (
                        (target["health"], target["lastError"]) if target else None,))
            def value(q):
                for _ in range(20):
                    try:
                        res = prom_get(port, "/api/v1/query", query=q)["data"]["result"]
                        if res:
                            return float(res[0]["value"][1])
                    except OSError:
                        pass
                    time.sleep(0.5)
                return None
            c.check(value("stackstream_summaries_ingested_total") == 1, "counter queryable")
            c.check(value('stackstream_rejected_total{reason="invalid"}') == 1, "labelled counter")
            c.check((value('stackstream_query_duration_seconds_count{endpoint="top"}') or 0) >= 1,
                    "histogram _count")
            c.check(value('histogram_quantile(0.5, stackstream_query_duration_seconds_bucket{endpoint="top"})')
                    is not None, "histogram_quantile over the buckets")
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
