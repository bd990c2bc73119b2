#!/usr/bin/env python3
"""Offline output never replaces what it points at (issue 16): the real agent
preloaded into cpu_split with STACKSTREAM_OUTPUT pointing at each kind of
target, each case in its own temporary directory (a private null device made
with mknod there, never the machine's /dev/null). After each run: the type,
mode and content of the target, the host's exit code and stdout, no
temporary file left, and one clear log line for the cases that must fail.
/dev/stdout is tested through a private symlink to /proc/self/fd/1 (what
/dev/stdout is): a broken writer cannot replace a machine path."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pprof
from pipeline_e2e_util import CPU_SPLIT, agent_env
from stackstream_test import AGENT, Checker

ARGS = ["--threads=1", "--seconds=1", "--exit-code=3", "--stdout-lines=5"]
LOG_LINE = b"cannot write the profile"

t = Checker()
for path in (AGENT, CPU_SPLIT):
    if not os.path.exists(path):
        print("missing " + path)
        sys.exit(1)
plain = subprocess.run([CPU_SPLIT] + ARGS, capture_output=True, timeout=60)


def run(output, args=ARGS, stdout=subprocess.PIPE):
    """The fixture with the agent writing to "output"; (result, seconds)."""
    env = agent_env(output=output, service="offline-targets", log="warn",
                    collector="127.0.0.1:1")  # nothing listens there
    t0 = time.time()
    r = subprocess.run([CPU_SPLIT] + args, env=env, stdout=stdout, stderr=subprocess.PIPE,
                       timeout=120)
    return r, time.time() - t0


def host_untouched(r, what):
    t.check(r.returncode == 3, "%s: exit code kept (%d)" % (what, r.returncode))
    t.check(r.stdout == plain.stdout, "%s: stdout identical to the run without the agent" % what)


def log_lines(r):
    return [l for l in r.stderr.splitlines() if LOG_LINE in l]


def no_log(r, what):
    lines = log_lines(r)
    t.check(not lines, "%s: no write error logged %s" % (what, lines))


def one_log(r, what, reason):
    lines = log_lines(r)
    t.check(len(lines) == 1 and reason.encode() in lines[0],
            "%s: one log line saying %r: %s" % (what, reason, lines))


def valid_profile(data_or_path, what):
    try:
        p = pprof.load(data_or_path)
    except Exception as e:  # noqa: BLE001 (any decoding error is the failure)
        t.check(False, "%s: a valid gzip pprof (%s)" % (what, e))
        return
    total = sum(s.values[0] for s in p.samples)
    hot = sum(v for k, v in p.total_by_function().items() if k.startswith("fixture_hot_"))
    t.check(total > 0 and hot > 0.5 * total,
            "%s: a valid gzip pprof, %d samples, %d in fixture_hot_*" % (what, total, hot))


def no_leftovers(d, what):
    left = [f for _, _, fs in os.walk(d) for f in fs if ".tmp." in f]
    t.check(not left, "%s: no temporary file left %s" % (what, left))


def case(fn):
    d = tempfile.mkdtemp(prefix="ss-offline-targets-")
    print("== " + fn.__doc__)
    try:
        fn(d)
        no_leftovers(d, fn.__name__)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def char_device(d):
    """a private character device (mknod c 1 3 in the temp dir)"""
    if os.geteuid() != 0:
        print("skipped: mknod needs root")
        return
    dev = os.path.join(d, "null")
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(dev, 0o666)
    r, _ = run(dev)
    st = os.lstat(dev)
    t.check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3),
            "char device: still the character device 1,3 (%o)" % st.st_mode)
    t.check(stat.S_IMODE(st.st_mode) == 0o666, "char device: mode kept")
    host_untouched(r, "char device")
    no_log(r, "char device")


def read_fifo(fifo):
    """Reads one stream (to EOF) from "fifo" in a thread; returns the bytes
    or None. A reader still waiting is released through a handle on the FIFO
    itself (works even if its name was replaced)."""
    handle = os.open(fifo, os.O_PATH)
    got = []
    th = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    th.start()
    return th, got, handle


def fifo_with_reader(d):
    """a FIFO with a reader"""
    fifo = os.path.join(d, "fifo")
    os.mkfifo(fifo, 0o600)
    th, got, handle = read_fifo(fifo)
    r, _ = run(fifo)
    th.join(10)
    if th.is_alive():
        os.close(os.open("/proc/self/fd/%d" % handle, os.O_WRONLY | os.O_NONBLOCK))
        th.join(5)
    os.close(handle)
    t.check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "fifo: still a FIFO")
    t.check(stat.S_IMODE(os.lstat(fifo).st_mode) == 0o600, "fifo: mode kept")
    t.check(len(got) == 1 and got[0], "fifo: the reader got data (%d bytes)" % len(got[0] if got else b""))
    if got and got[0]:
        valid_profile(got[0], "fifo")
    host_untouched(r, "fifo")
    no_log(r, "fifo")


def fifo_without_reader(d):
    """a FIFO nobody reads: bounded wait, then one log line"""
    fifo = os.path.join(d, "fifo")
    os.mkfifo(fifo, 0o600)
    r, took = run(fifo)
    t.check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "fifo without reader: still a FIFO")
    t.check(took < 1 + 3, "fifo without reader: the host ends in %.1f s (1 s run + 0.25 s wait)" % took)
    host_untouched(r, "fifo without reader")
    one_log(r, "fifo without reader", "nobody reads")


def symlink_to_file(d):
    """a symlink to an existing file"""
    target = os.path.join(d, "real.pb.gz")
    with open(target, "w") as f:
        f.write("old")
    os.chmod(target, 0o640)
    link = os.path.join(d, "out.pb.gz")
    os.symlink("real.pb.gz", link)
    r, _ = run(link)
    t.check(os.path.islink(link) and os.readlink(link) == "real.pb.gz", "symlink: still the link")
    t.check(stat.S_ISREG(os.lstat(target).st_mode), "symlink: target is a file")
    t.check(stat.S_IMODE(os.stat(target).st_mode) == 0o640, "symlink: target's mode kept")
    valid_profile(target, "symlink target")
    host_untouched(r, "symlink")
    no_log(r, "symlink")


def missing_file(d):
    """a path that does not exist yet"""
    path = os.path.join(d, "new.pb.gz")
    r, _ = run(path)
    t.check(stat.S_ISREG(os.lstat(path).st_mode), "new file: created")
    valid_profile(path, "new file")
    host_untouched(r, "new file")
    no_log(r, "new file")


def existing_0600(d):
    """an existing file with mode 0600"""
    path = os.path.join(d, "old.pb.gz")
    with open(path, "w") as f:
        f.write("old")
    os.chmod(path, 0o600)
    r, _ = run(path)
    st = os.lstat(path)
    t.check(stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
            "0600 file: mode kept (%o)" % stat.S_IMODE(st.st_mode))
    valid_profile(path, "0600 file")
    host_untouched(r, "0600 file")
    no_log(r, "0600 file")


def directory(d):
    """a directory"""
    out = os.path.join(d, "outdir")
    os.mkdir(out, 0o750)
    os.chmod(out, 0o750)
    with open(os.path.join(out, "marker"), "w") as f:
        f.write("x")
    r, _ = run(out)
    st = os.lstat(out)
    t.check(stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750,
            "directory: still the directory, mode kept")
    t.check(os.listdir(out) == ["marker"], "directory: contents untouched %s" % os.listdir(out))
    host_untouched(r, "directory")
    one_log(r, "directory", "is a directory")


def missing_directory(d):
    """a path in a directory that does not exist"""
    path = os.path.join(d, "no", "such", "p.pb.gz")
    r, _ = run(path)
    t.check(os.listdir(d) == [], "missing directory: nothing created %s" % os.listdir(d))
    host_untouched(r, "missing directory")
    one_log(r, "missing directory", "No such file or directory")


def private_stdout(d):
    """What /dev/stdout is (a symlink to /proc/self/fd/1), made in the temp dir:
    a broken writer would replace this one, never the machine's."""
    link = os.path.join(d, "stdout")
    os.symlink("/proc/self/fd/1", link)
    return link


def still_link(link, what):
    t.check(os.path.islink(link) and os.readlink(link) == "/proc/self/fd/1",
            "%s: the stdout link is still a link" % what)


def dev_stdout_pipe(d):
    """/dev/stdout, a pipe: the profile arrives on it"""
    link = private_stdout(d)
    r, _ = run(link, args=["--threads=1", "--seconds=1", "--exit-code=3"])
    still_link(link, "/dev/stdout pipe")
    t.check(r.returncode == 3, "/dev/stdout pipe: exit code kept")
    valid_profile(r.stdout, "/dev/stdout pipe")
    no_log(r, "/dev/stdout pipe")


def dev_stdout_file(d):
    """/dev/stdout, a file: the same file gets the profile"""
    link = private_stdout(d)
    path = os.path.join(d, "stdout.pb.gz")
    with open(path, "wb") as f:
        ino = os.fstat(f.fileno()).st_ino
        r, _ = run(link, args=["--threads=1", "--seconds=1", "--exit-code=3"], stdout=f)
    still_link(link, "/dev/stdout file")
    t.check(r.returncode == 3, "/dev/stdout file: exit code kept")
    t.check(os.lstat(path).st_ino == ino, "/dev/stdout file: the same file (not replaced)")
    valid_profile(path, "/dev/stdout file")
    no_log(r, "/dev/stdout file")


for fn in (char_device, fifo_with_reader, fifo_without_reader, symlink_to_file, missing_file,
           existing_0600, directory, missing_directory, dev_stdout_pipe, dev_stdout_file):
    case(fn)
t.check(stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is still a character device")
t.finish()
