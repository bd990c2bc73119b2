"""stackstream CLI tests: top/export/services against a running HttpServer
(over a real SqliteStore with a known data set), clear errors and non-zero
exits when the server is unreachable or answers an error, and `run` (exit
status kept, LD_PRELOAD and STACKSTREAM_* set, agent found next to itself)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stackstream_test import Checker, free_port  # noqa: E402
from http_test_server import CLI, TestServer, check_speedscope  # noqa: E402

c = Checker()


def cli(*args, env=None, timeout=60):
    return subprocess.run([CLI] + list(args), capture_output=True, timeout=timeout,
                          env=env or dict(os.environ))


def main():
    tmp = tempfile.mkdtemp(prefix="ss-cli-")
    try:
        with TestServer() as s:
            query_commands(s, tmp)
        with TestServer(token="tok") as s:
            r = cli("services", "--server", s.url)
            c.check(r.returncode == 1 and b"401" in r.stderr, "no token -> exit 1, says 401")
            r = cli("services", "--server", s.url, "--token", "tok")
            c.check(r.returncode == 0 and b"api" in r.stdout, "--token works")
            r = cli("services", "--server", s.url, env=dict(os.environ, STACKSTREAM_TOKEN="tok"))
            c.check(r.returncode == 0, "$STACKSTREAM_TOKEN works")
        unreachable()
        run_command(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


def query_commands(s, tmp):
    r = cli("top", "--server", s.url, "--service", "api", "--from", "now-30m", "--selector",
            '{env="prod"}')
    out = r.stdout.decode()
    lines = out.splitlines()
    c.check(r.returncode == 0, "top exits 0 (%s)" % r.stderr[-200:])
    c.check(lines and lines[0].split() == ["SELF%", "TOTAL%", "SELF", "TOTAL", "FUNCTION", "MODULE"],
            "top header: %r" % (lines[:1],))
    rows = [l.split() for l in lines[1:]]
    c.check([r_[4] for r_ in rows] == ["bar", "baz", "foo", "main"], "top order: %s" % rows)
    if len(rows) == 4:
        c.check(rows[0][:4] == ["50.00%", "50.00%", "30.0ms", "30.0ms"] and rows[0][5] == "api",
                "top bar row: %s" % rows[0])
        c.check(rows[2][:4] == ["16.67%", "66.67%", "10.0ms", "40.0ms"], "top foo row: %s" % rows[2])
        # Aligned: every row is as long as the header up to FUNCTION.
        col = lines[0].index("FUNCTION")
        c.check(all(l[col - 2:col] == "  " and l[col] != " " for l in lines[1:]),
                "top columns aligned")
    r = cli("top", "--server", s.url, "--service", "api", "--from", "now-30m", "--limit", "1")
    c.check(r.returncode == 0 and len(r.stdout.decode().splitlines()) == 2, "top --limit 1")
    r = cli("top", "--server", s.url, "--service", "nosuch")
    c.check(r.returncode == 0 and b"no samples" in r.stderr, "top of an unknown service says so")
    r = cli("top", "--server", s.url, "--service", "api", "--from", "yesterday")
    c.check(r.returncode == 1 and b'"from"' in r.stderr and b"400" in r.stderr,
            "top bad --from: exit 1 with the server's message: %r" % r.stderr)
    r = cli("top", "--server", s.url)
    c.check(r.returncode == 2 and b"--service" in r.stderr, "top without --service: usage error")

    # export: file and stdout, each format.
    out = os.path.join(tmp, "api.pb.gz")
    r = cli("export", "--server", s.url, "--service", "api", "--format", "pprof",
            "--from", "now-30m", "--to", "now", "-o", out)
    c.check(r.returncode == 0 and os.path.getsize(out) > 0, "export pprof -o file")
    env = dict(os.environ, PPROF_TMPDIR=tmp, HOME=tmp)
    p = subprocess.run(["go", "tool", "pprof", "-sample_index=samples", "-top", out],
                       capture_output=True, text=True, timeout=60, env=env)
    c.check(p.returncode == 0 and "qux" in p.stdout and "bar" in p.stdout,
            "exported pprof readable by go tool pprof")
    r = cli("export", "--server", s.url, "--service", "api", "--format", "folded",
            "--from", "now-30m")
    c.check(r.returncode == 0 and r.stdout.decode() ==
            "main;baz 2\nmain;foo 1\nmain;foo;bar 3\nmain;qux 5\n",
            "export folded to stdout: %r" % r.stdout)
    r = cli("export", "--server", s.url, "--service", "api", "--format", "speedscope")
    c.check(r.returncode == 0 and not check_speedscope(json.loads(r.stdout)),
            "export speedscope to stdout valid")
    r = cli("export", "--server", s.url, "--service", "api", "--format", "flamegraph")
    c.check(r.returncode == 0 and json.loads(r.stdout)["data"]["values"][3][0] == "total",
            "export flamegraph")
    r = cli("export", "--server", s.url, "--service", "api", "--format", "svg")
    c.check(r.returncode == 2, "export bad --format: usage error")
    r = cli("export", "--server", s.url, "--service", "api", "--format", "folded", "-o",
            os.path.join(tmp, "no", "such", "dir", "x"))
    c.check(r.returncode == 1 and b"cannot open" in r.stderr, "export to an unwritable path fails")

    r = cli("services", "--server", s.url)
    lines = r.stdout.decode().splitlines()
    c.check(r.returncode == 0 and lines[0].split()[:1] == ["SERVICE"] and
            [l.split()[0] for l in lines[1:]] == ["api", "worker"] and lines[1].split()[1] == "2",
            "services table: %r" % lines)
    r = cli("services", "--server", s.url, "--json")
    c.check(r.returncode == 0 and [x["service"] for x in json.loads(r.stdout)] == ["api", "worker"],
            "services --json")
    r = cli("services", "--server", s.url.replace("http://", ""))
    c.check(r.returncode == 0, "--server without scheme")


def unreachable():
    port = free_port()
    for args in (["services"], ["top", "--service", "x"], ["export", "--service", "x", "--format",
                                                             "folded"]):
        r = cli(*args, "--server", "http://127.0.0.1:%d" % port)
        c.check(r.returncode == 1 and b"cannot reach" in r.stderr and not r.stdout,
                "%s against a closed port: exit 1, %r" % (args[0], r.stderr.strip()))
    r = cli("services", "--server", "ftp://x")
    c.check(r.returncode == 1 and b"http" in r.stderr, "bad server URL scheme")


def run_command(tmp):
    stub_c = os.path.join(tmp, "stub.c")
    stub = os.path.join(tmp, "stub", "libstackstream.so")
    os.makedirs(os.path.dirname(stub))
    with open(stub_c, "w") as f:
        f.write("void stackstream_stub(void) {}\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", stub, stub_c], check=True)
    env = dict(os.environ, STACKSTREAM_AGENT_PATH=stub, LD_PRELOAD="", STACKSTREAM_LABELS="")
    env.pop("LD_PRELOAD")
    env.pop("STACKSTREAM_LABELS")

    r = cli("run", "--", "sh", "-c", "exit 7", env=env)
    c.check(r.returncode == 7, "run -- sh -c 'exit 7' exits 7 (got %d)" % r.returncode)
    r = cli("run", "sh", "-c", "exit 3", env=env)
    c.check(r.returncode == 3, "run without -- keeps the command's args (exit 3)")

    envfile = os.path.join(tmp, "env.txt")
    out_pattern = os.path.join(tmp, "x.%p.pb.gz")  # inside the test's temp dir
    r = cli("run", "--collector", "127.0.0.1:9", "--output", out_pattern, "--hz", "250",
            "--mode", "wall", "--service", "svc", "--label", "env=prod", "--label", "team=a b",
            "--", "sh", "-c", 'env > "$0"; echo out; exit 0', envfile, env=env)
    got = {}
    if os.path.exists(envfile):
        for line in open(envfile):
            k, _, v = line.rstrip("\n").partition("=")
            got[k] = v
    c.check(r.returncode == 0 and r.stdout == b"out\n", "run passes stdout through untouched")
    want = {"LD_PRELOAD": os.path.realpath(stub), "STACKSTREAM_COLLECTOR": "127.0.0.1:9",
            "STACKSTREAM_OUTPUT": out_pattern, "STACKSTREAM_HZ": "250",
            "STACKSTREAM_MODE": "wall", "STACKSTREAM_SERVICE": "svc",
            "STACKSTREAM_LABELS": "env=prod,team=a b"}
    for k, v in want.items():
        c.check(got.get(k) == v, "run sets %s=%r (got %r)" % (k, v, got.get(k)))

    # (verify_asan_link_order=0: an ASan build of the CLI itself tolerates the preload.)
    env2 = dict(env, LD_PRELOAD="/lib/x86_64-linux-gnu/libm.so.6",
                ASAN_OPTIONS="verify_asan_link_order=0")
    r = cli("run", "--", "sh", "-c", 'echo "$LD_PRELOAD"', env=env2)
    c.check(r.stdout.decode().strip() == os.path.realpath(stub) + ":/lib/x86_64-linux-gnu/libm.so.6",
            "run prepends to an existing LD_PRELOAD: %r" % r.stdout)

    r = cli("run", "--", os.path.join(tmp, "no-such-program"), env=env)
    c.check(r.returncode == 127 and b"cannot run" in r.stderr, "missing command -> 127")
    r = cli("run", "--mode", "gpu", "--", "true", env=env)
    c.check(r.returncode == 2, "bad --mode -> usage error")
    r = cli("run", "--label", "novalue", "--", "true", env=env)
    c.check(r.returncode == 2 and b"k=v" in r.stderr, "bad --label -> usage error")
    r = cli("run", env=env)
    c.check(r.returncode == 2, "run without a command -> usage error")

    # Agent discovery next to the binary: <prefix>/bin/stackstream + <prefix>/lib/.
    prefix = os.path.join(tmp, "prefix")
    os.makedirs(os.path.join(prefix, "bin"))
    os.makedirs(os.path.join(prefix, "lib"))
    shutil.copy(CLI, os.path.join(prefix, "bin", "stackstream"))
    shutil.copy(stub, os.path.join(prefix, "lib", "libstackstream.so"))
    env3 = dict(env)
    env3.pop("STACKSTREAM_AGENT_PATH")
    r = subprocess.run([os.path.join(prefix, "bin", "stackstream"), "run", "--", "sh", "-c",
                        'echo "$LD_PRELOAD"'], capture_output=True, env=env3, timeout=30)
    c.check(r.stdout.decode().strip() == os.path.join(os.path.realpath(prefix), "lib",
                                                      "libstackstream.so"),
            "run finds ../lib/libstackstream.so next to itself: %r" % r.stdout)
    os.remove(os.path.join(prefix, "lib", "libstackstream.so"))
    r = subprocess.run([os.path.join(prefix, "bin", "stackstream"), "run", "--", "true"],
                       capture_output=True, env=env3, timeout=30)
    c.check(r.returncode == 127 and b"STACKSTREAM_AGENT_PATH" in r.stderr,
            "no agent anywhere -> clear error, exit 127")


if __name__ == "__main__":
    main()
