"""Runs Pyroscope API calls through the real Connect client
(@connectrpc/connect-node, connect_client/client.mjs) with descriptors built
from proto/querier/v1/querier.proto, in the binary and the JSON codec.

    calls = [("ProfileTypes", {"start": "1000", "end": "4000"}), ...]
    out = connect_calls(url, calls)   # {"proto": [...], "json": [...]}

The npm packages (connect_client/package-lock.json) are installed with
`npm ci` into <build>/connect-node on first use. When node, npm or the
registry is missing the caller's test exits 77 (skipped)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from stackstream_test import BUILD

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("STACKSTREAM_SOURCE_DIR", os.path.join(HERE, "..", ".."))
NODE_DIR = os.path.join(BUILD, "connect-node")
SKIP = 77


def setup():
    """Installs the client; returns the descriptor set path (exits 77 when impossible)."""
    if not shutil.which("node") or not shutil.which("protoc"):
        print("skip: node or protoc missing")
        sys.exit(SKIP)
    os.makedirs(NODE_DIR, exist_ok=True)
    changed = False
    for f in ("package.json", "package-lock.json", "client.mjs"):
        src, dst = os.path.join(HERE, "connect_client", f), os.path.join(NODE_DIR, f)
        if f != "client.mjs" and (not os.path.exists(dst) or open(src).read() != open(dst).read()):
            changed = True
        shutil.copy(src, dst)
    if changed or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@connectrpc",
                                                 "connect-node")):
        if not shutil.which("npm"):
            print("skip: npm missing")
            sys.exit(SKIP)
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=240)
        if r.returncode != 0:
            print("skip: npm ci failed:", r.stderr[-500:])
            sys.exit(SKIP)
    desc = os.path.join(NODE_DIR, "querier.pb")
    subprocess.run(["protoc", "--proto_path=" + os.path.join(SRC, "proto"), "--include_imports",
                    "--descriptor_set_out=" + desc,
                    os.path.join(SRC, "proto", "querier", "v1", "querier.proto")], check=True)
    return desc


def connect_calls(desc, url, calls):
    """{"proto": [result...], "json": [result...]} for [(method, request_json)]."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([{"method": m, "request": r} for m, r in calls], f)
        path = f.name
    try:
        r = subprocess.run(["node", "client.mjs", desc, url, path], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError("node Connect client failed: " + r.stderr[-1000:])
    return json.loads(r.stdout)
