"""Private clickhouse-server processes on loopback for the ClickHouse store tests.

Each server runs deploy/clickhouse/config.xml and users.xml with its own free
ports and data directory under a temporary root; with two or more servers the
shipped cluster.xml is written with their TCP ports, so the servers form the
"stackstream" cluster (one shard each) and Distributed tables work.

    with ClickHouseServers(2) as ch:
        ch.uri(0, "db")         # clickhouse://127.0.0.1:PORT/db
        ch.sharded_uri("db")    # clickhouse://A,B/db?cluster=stackstream
        ch.kill(0); ch.start(0)  # SIGKILL and restart on the same ports/data
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy", "clickhouse")
SERVER = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
CLUSTER = "stackstream"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClickHouseServers:
    def __init__(self, count=1, root=None):
        self.count = count
        self.root = root or tempfile.mkdtemp(prefix="stackstream-clickhouse-")
        self.own_root = root is None
        self.http_ports = [free_port() for _ in range(count)]
        self.tcp_ports = [free_port() for _ in range(count)]
        self.procs = [None] * count
        for i in range(count):
            self._write_config(i)

    def __enter__(self):
        for i in range(self.count):
            self.start(i)
        return self

    def __exit__(self, *exc):
        self.stop()

    def dir(self, i):
        return os.path.join(self.root, "node%d" % i)

    def _write_config(self, i):
        d = self.dir(i)
        os.makedirs(d, exist_ok=True)
        tree = ET.parse(os.path.join(DEPLOY, "config.xml"))
        cfg = tree.getroot()
        cfg.find("logger/log").text = os.path.join(d, "server.log")
        cfg.find("logger/errorlog").text = os.path.join(d, "error.log")
        cfg.find("http_port").text = str(self.http_ports[i])
        cfg.find("tcp_port").text = str(self.tcp_ports[i])
        cfg.find("path").text = os.path.join(d, "data") + "/"
        cfg.find("tmp_path").text = os.path.join(d, "tmp") + "/"
        cfg.find("format_schema_path").text = os.path.join(d, "format_schemas") + "/"
        cfg.find("include_from").text = os.path.join(d, "cluster.xml")
        tree.write(os.path.join(d, "config.xml"))
        shutil.copy(os.path.join(DEPLOY, "users.xml"), os.path.join(d, "users.xml"))
        cluster = ET.parse(os.path.join(DEPLOY, "cluster.xml"))
        shards = cluster.getroot().find("remote_servers/" + CLUSTER)
        for shard in list(shards):
            shards.remove(shard)
        for port in self.tcp_ports:
            shard = ET.SubElement(shards, "shard")
            replica = ET.SubElement(shard, "replica")
            ET.SubElement(replica, "host").text = "127.0.0.1"
            ET.SubElement(replica, "port").text = str(port)
        cluster.write(os.path.join(d, "cluster.xml"))

    def start(self, i, timeout=60):
        d = self.dir(i)
        out = open(os.path.join(d, "stdout.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [SERVER, "--config-file=" + os.path.join(d, "config.xml")],
            cwd=d, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.procs[i].poll() is not None:
                raise RuntimeError("clickhouse-server %d exited: %s" % (i, self.tail(i)))
            try:
                if self.query(i, "SELECT 1").strip() == "1":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("clickhouse-server %d not ready: %s" % (i, self.tail(i)))

    def tail(self, i):
        text = ""
        for name in ("stdout.log", "error.log"):
            try:
                with open(os.path.join(self.dir(i), name), errors="replace") as f:
                    text += f.read()[-2000:]
            except OSError:
                pass
        return text

    def kill(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.procs[i] = None

    def stop(self):
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.kill(i)
        self.procs = [None] * self.count
        if self.own_root and not os.environ.get("KEEP_CLICKHOUSE"):
            shutil.rmtree(self.root, ignore_errors=True)

    def query(self, i, sql, database=None):
        url = "http://127.0.0.1:%d/" % self.http_ports[i]
        if database:
            url += "?database=" + database
        req = urllib.request.Request(url, data=sql.encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode("utf-8", "replace")

    def uri(self, i, database):
        return "clickhouse://127.0.0.1:%d/%s" % (self.http_ports[i], database)

    def sharded_uri(self, database):
        hosts = ",".join("127.0.0.1:%d" % p for p in self.http_ports)
        return "clickhouse://%s/%s?cluster=%s" % (hosts, database, CLUSTER)


if __name__ == "__main__":
    # Runs a command with STACKSTREAM_CLICKHOUSE_URI (one node) and
    # STACKSTREAM_CLICKHOUSE_SHARDED_URI (two shards) naming fresh servers;
    # "{db}" in the URIs is left for the test to fill in.
    import sys
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    with ClickHouseServers(2) as ch:
        env = dict(os.environ)
        env["STACKSTREAM_CLICKHOUSE_URI"] = ch.uri(0, "{db}")
        env["STACKSTREAM_CLICKHOUSE_SHARDED_URI"] = ch.sharded_uri("{db}")
        rc = subprocess.call(args, env=env)
    sys.exit(rc)
