"""The Pyroscope query API through the real Connect client
(@connectrpc/connect-node, binary and JSON codecs) with descriptors built
from proto/querier/v1/querier.proto. Needs node + npm packages; installs
them into <build>/connect-node on first run and exits 77 (skipped) when that is
impossible (no node, no registry)."""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stackstream_test import BUILD, Checker  # noqa: E402
from http_test_server import TestServer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("STACKSTREAM_SOURCE_DIR", os.path.join(HERE, "..", ".."))
NODE_DIR = os.path.join(BUILD, "connect-node")
SKIP = 77


def setup():
    if not shutil.which("node") or not shutil.which("protoc"):
        print("skip: node or protoc missing")
        sys.exit(SKIP)
    os.makedirs(NODE_DIR, exist_ok=True)
    for f in ("package.json", "client.mjs"):
        shutil.copy(os.path.join(HERE, "connect_client", f), os.path.join(NODE_DIR, f))
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@connectrpc", "connect-node")):
        if not shutil.which("npm"):
            print("skip: npm missing")
            sys.exit(SKIP)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefer-offline"],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=240)
        if r.returncode != 0:
            print("skip: npm install failed:", r.stderr[-500:])
            sys.exit(SKIP)
    desc = os.path.join(NODE_DIR, "querier.pb")
    subprocess.run(["protoc", "--proto_path=" + os.path.join(SRC, "proto"),
                    "--descriptor_set_out=" + desc,
                    os.path.join(SRC, "proto", "querier", "v1", "querier.proto")], check=True)
    return desc


def main():
    desc = setup()
    c = Checker()
    with TestServer() as s:
        r = subprocess.run(["node", "client.mjs", desc, s.url, str(int(time.time() * 1000))],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
        c.check(r.returncode == 0, "node Connect client ran (%s)" % r.stderr[-500:])
        out = json.loads(r.stdout) if r.returncode == 0 else {}
    ms = 10_000_000
    for codec in ("proto", "json"):
        res = out.get(codec, {})
        ids = [t["ID"] for t in res.get("profileTypes", {}).get("profileTypes", [])]
        c.check("process_cpu:cpu:nanoseconds:cpu:nanoseconds" in ids, codec + ": ProfileTypes")
        c.check(res.get("labelNames", {}).get("names") == ["env", "host", "service_name"],
                codec + ": LabelNames")
        c.check(res.get("labelValues", {}).get("names") == ["api", "worker"], codec + ": LabelValues")
        fg = res.get("merge", {}).get("flamegraph", {})
        levels = [[int(v) for v in l.get("values", [])] for l in fg.get("levels", [])]
        c.check(int(fg.get("total", 0)) == 6 * ms and int(fg.get("maxSelf", 0)) == 3 * ms and
                fg.get("names", [None])[0] == "total" and levels[:2] == [[0, 6 * ms, 0, 0],
                                                                          [0, 6 * ms, 0, 1]],
                codec + ": SelectMergeStacktraces total/max_self/levels")
        series = {s["labels"][0]["value"]: sum(p["value"] for p in s["points"])
                  for s in res.get("series", {}).get("series", [])}
        c.check(series == {"prod": 6 * ms, "dev": 5 * ms}, codec + ": SelectSeries %s" % series)
        err = res.get("error", {})
        c.check(isinstance(err, dict) and err.get("code") == 3 and "profile_typeID" in err.get("message", ""),
                codec + ": error arrives as Connect invalid_argument: %s" % err)
    c.finish()


if __name__ == "__main__":
    main()
