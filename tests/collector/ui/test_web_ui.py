#!/usr/bin/env python3
"""The collector's web UI in headless Chromium (playwright-core + Debian's
chromium), against a real collector fed by the real agent preloaded into
cpu_split (fixture_hot_a/fixture_hot_b: the 70/30 and the 30/70 run).

views: home lists the service; the profile view shows both functions with
  top-table shares within 3 points of /api/v1/top; a click zooms; search
  highlights and reports the share; a top row opens the caller/callee view;
  brushing the chart puts the range in the URL; the diff view (70/30 base,
  30/70 target) draws the function that grew in red; exports and speedscope
  load; no console errors. Screenshots: BUILD/ui-screenshots/.
auth: with --auth-token-file the UI asks for the token once, pages and assets
  without it show no data, a wrong token shows nothing.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "pipeline"))
from pipeline_e2e_util import CPU_SPLIT, agent_env  # noqa: E402
from stackstream_test import AGENT, BUILD, COLLECTOR, Checker, Collector  # noqa: E402

NPM_DIR = os.path.join(BUILD, "collector", "ui", "npm")
SHOTS = os.path.join(BUILD, "ui-screenshots")
SERVICE = "ui-split"


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browser(mode, **cfg):
    cfg.update(mode=mode, npm_dir=NPM_DIR, chromium=chromium(), out=SHOTS)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    r = subprocess.run(["node", os.path.join(HERE, "browser.mjs"), f.name],
                       capture_output=True, text=True, timeout=240)
    os.unlink(f.name)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"checks": [{"ok": False, "what": "browser.mjs output: %s %s" % (
            r.stdout[-2000:], r.stderr[-2000:])}], "figures": {}}


def judge(t, result):
    for c in result["checks"]:
        t.check(c["ok"], c["what"])


def profile_runs(c):
    """70/30 ({run="base"}) and 30/70 ({run="grown"}) at the same time."""
    procs = []
    for run, a, b in (("base", 7000, 3000), ("grown", 3000, 7000)):
        env = agent_env(collector=c.grpc_addr, flush_ms=500, service=SERVICE, labels="run=" + run)
        procs.append(subprocess.Popen(
            [CPU_SPLIT, "--threads=2", "--seconds=3", "--a-us=%d" % a, "--b-us=%d" % b],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        p.wait(timeout=60)


def heap_run(c):
    """heap_split (50/30/20 bytes by fixture_alloc_a/b/c) heap-profiled into "ui-heap"."""
    env = agent_env(collector=c.grpc_addr, flush_ms=500, service="ui-heap")
    env["STACKSTREAM_PROFILES"] = "cpu,heap"
    env["STACKSTREAM_HEAP_RATE"] = "65536"  # ~3,000 samples: shares within a point or two
    subprocess.run([os.path.join(BUILD, "tests", "fixtures", "heap_split"), "--scenario=split",
                    "--total-mb=200", "--rounds=50"], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = c.get_json("/api/v1/top", service="ui-heap", type="alloc_space", limit=10,
                          **{"from": "now-1h", "to": "now"})
        if any(r["function"] == "fixture_alloc_c" for r in rows):
            break
        time.sleep(0.5)
    time.sleep(1.0)


def top_pct(c, selector):
    rows = c.get_json("/api/v1/top", service=SERVICE, selector=selector, limit=1000,
                      **{"from": "now-1h", "to": "now"})
    return {r["function"]: r["total_pct"] for r in rows}


def drops_run(c):
    """A service whose agents reported dropped samples (ingest_load_client);
    returns the API's X-Stackstream-Dropped-Samples for it."""
    client = os.path.join(BUILD, "tests", "collector", "ingest_load_client")
    r = subprocess.run([client, "--target", c.grpc_addr, "--agents", "1", "--summaries", "3",
                        "--stacks", "20", "--run-id", "ui", "--service", "ui-drops",
                        "--start-unix-s", str(int(time.time()) - 120), "--progress", "0",
                        "--counters", "samples_dropped_ring_full=7"],
                       capture_output=True, timeout=120)
    if r.returncode != 0:
        return -1
    url = c.http_url + "/api/v1/top?" + urllib.parse.urlencode(
        {"service": "ui-drops", "from": "now-1h", "to": "now", "limit": 1})
    with urllib.request.urlopen(url, timeout=30) as resp:
        return int(resp.headers.get("X-Stackstream-Dropped-Samples", "-1"))


def wait_stable(c, selector):
    last, deadline = None, time.time() + 20
    while time.time() < deadline:
        shares = top_pct(c, selector)
        if shares and shares == last:
            return shares
        last = shares
        time.sleep(1.0)
    return last or {}


def folded_tree(nodes):
    """Folded lines whose call tree has about "nodes" nodes (20 modules x 10
    handlers x leaves), every stack a distinct path."""
    lines, n, i = [], 1, 0
    while n < nodes:
        m, hd = i % 20, (i // 20) % 10
        lines.append("main;module_%d;handler_%d_%d;step_%d;leaf_%d %d" % (m, m, hd, i, i, 1 + i % 13))
        n += 2 if i >= 200 else 4  # step_i and leaf_i are new; the first 200 add module/handler
        i += 1
    return "\n".join(lines) + "\n"


def ingest_folded(c, service, body):
    now = int(time.time())
    url = c.http_url + "/ingest?" + urllib.parse.urlencode(
        {"name": service + ".cpu", "from": now - 10, "until": now, "format": "folded",
         "sampleRate": 100})
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status


def render_time(t, nodes=20000, max_nodes=100000, repeat=3):
    """Chromium's time to show a profile of "nodes" nodes; returns figures."""
    with Collector() as c:
        t.check(ingest_folded(c, "render-bench", folded_tree(nodes)) == 200,
                "%d-node profile pushed through /ingest" % nodes)
        res = browser("render", base=c.http_url, service="render-bench", nodes=nodes,
                      max_nodes=max_nodes, repeat=repeat)
        judge(t, res)
        return res["figures"]


def installed_collector_serves_ui(t):
    """cmake --install puts the UI where the installed collector finds it."""
    prefix = tempfile.mkdtemp(prefix="ss-ui-install-")
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                       capture_output=True, text=True, timeout=120)
    t.check(r.returncode == 0, "cmake --install (%s)" % r.stderr[-300:])
    import stackstream_test
    saved = stackstream_test.COLLECTOR
    stackstream_test.COLLECTOR = os.path.join(prefix, "bin", "stackstream-collector")
    try:
        with Collector() as c:
            for path in ("/ui/", "/ui/app.js", "/ui/vendor/d3-flamegraph.min.js",
                         "/ui/vendor/uPlot.iife.min.js", "/speedscope/index.html"):
                status, body = c.get(path)
                t.check(status == 200 and len(body) > 100,
                        "installed collector serves %s (%s)" % (path, status))
    finally:
        stackstream_test.COLLECTOR = saved
        shutil.rmtree(prefix, ignore_errors=True)


def main():
    t = Checker()
    for path in (AGENT, CPU_SPLIT, COLLECTOR, os.path.join(NPM_DIR, "node_modules", "playwright-core")):
        if not os.path.exists(path):
            t.check(False, "missing " + path)
            t.finish()
    if not chromium() or not shutil.which("node"):
        t.check(False, "chromium and node are needed (deploy/install-deps.sh installs them)")
        t.finish()
    os.makedirs(SHOTS, exist_ok=True)

    with Collector() as c:
        profile_runs(c)
        base = wait_stable(c, '{run="base"}')
        grown = wait_stable(c, '{run="grown"}')
        a, b = base.get("fixture_hot_a", 0), base.get("fixture_hot_b", 0)
        t.check(55 < a < 85 and 15 < b < 45, "API: 70/30 run has a=%.1f%% b=%.1f%%" % (a, b))
        t.check(grown.get("fixture_hot_b", 0) > b + 20,
                "API: 30/70 run has b=%.1f%%" % grown.get("fixture_hot_b", 0))
        dropped = drops_run(c)
        t.check(dropped > 0, "API: ui-drops lost %d samples" % dropped)
        judge(t, browser("views", base=c.http_url, service=SERVICE, selector='{run="base"}',
                         drops_service="ui-drops", dropped=dropped,
                         diff_selector='{run="grown"}', grown="fixture_hot_b",
                         shrunk="fixture_hot_a",
                         expected_total_pct={"fixture_hot_a": a, "fixture_hot_b": b}))

    with Collector() as c:
        heap_run(c)
        judge(t, browser("heap", base=c.http_url, service="ui-heap",
                         expected_total_pct={"fixture_alloc_a": 50, "fixture_alloc_b": 30,
                                             "fixture_alloc_c": 20}))

    token_dir = tempfile.mkdtemp(prefix="ss-ui-auth-")
    token_file = os.path.join(token_dir, "token")
    with open(token_file, "w") as f:
        f.write("ui-test-token-1234\n")
    with Collector(extra_args=["--auth-token-file", token_file]) as c:
        env = agent_env(collector=c.grpc_addr, flush_ms=500, service=SERVICE,
                        token="ui-test-token-1234")
        subprocess.run([CPU_SPLIT, "--threads=1", "--seconds=1.5"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        time.sleep(1.5)
        judge(t, browser("auth", base=c.http_url, service=SERVICE, token="ui-test-token-1234"))
    shutil.rmtree(token_dir, ignore_errors=True)
    figures = render_time(t)
    draw = sorted(figures.get("draw_ms", [1e9]))[len(figures.get("draw_ms", [0])) // 2]
    t.check(figures.get("nodes", 0) >= 19000 and draw < 1000,
            "a %d-node flame graph draws in %.0f ms (median of %s; < 1000)"
            % (figures.get("nodes", 0), draw, figures.get("draw_ms")))
    print("figure render_20000_nodes_draw_ms %.0f" % draw)
    print("figure render_20000_nodes_page_ms %s" % figures.get("page_ms"))
    installed_collector_serves_ui(t)
    print("screenshots in " + SHOTS)
    t.finish()


if __name__ == "__main__":
    main()
