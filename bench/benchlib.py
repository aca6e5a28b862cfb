"""Helpers shared by the benchmarks that time Lifeboat beside a native tool
(bench/*-native.py): timing a command with GNU time in its own process group, stopping such a
group, the size of a file or tree, and a free TCP port."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def stop_group(p):
    """SIGTERM to the process group of `p`, SIGKILL 10 s later, until none of it is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            break
        for _ in range(100):
            p.poll()
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            continue
        break
    p.wait()


def timed(args, env=None):
    """Run `args`; returns (wall s, cpu s, peak RSS MiB) from GNU time."""
    with tempfile.NamedTemporaryFile(prefix="lifeboat-bench-time-") as out:
        # Its own process group: when the bench is stopped, the whole tree goes (GNU time does
        # not pass signals on, and a tool left running would write into the scratch directory).
        p = subprocess.Popen(["/usr/bin/time", "-o", out.name, "-f", "%e %U %S %M", *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = p.communicate()
        except BaseException:
            stop_group(p)
            raise
        if p.returncode != 0:
            sys.exit(f"{' '.join(args)} failed: {err.strip()}")
        e, u, s, m = open(out.name).read().split()[-4:]
    return float(e), float(u) + float(s), int(m) / 1024


def size_of(path):
    """Bytes in a file, or in all files below a directory (directories themselves not counted)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def free_port():
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(bench, cleanup):
    """Run `bench`, then `cleanup` whatever happens; SIGTERM and SIGHUP end it the same way
    (exit 128 + the signal), so servers and scratch directories never outlive the run."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, _f: sys.exit(128 + n))
    try:
        bench()
    finally:
        cleanup()
