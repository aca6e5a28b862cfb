#!/usr/bin/env python3
"""Continuous SQLite replication, Lifeboat beside Litestream in one run (issue 12).

1. Lag: the same writer (one row of 1 KiB per transaction, RATE transactions a second for
   SECONDS) against each tool with its defaults; a watcher (inotify) notes when each new file
   appears in the tool's output directory. A transaction's lag is the time from the return of its
   commit to the first shipment that lands after the commit began (0 when that is before the
   commit returned: the commit was still in its fsync of the log), the same rule for both
   tools. A shipment is a new file in the tool's output (Litestream: its LTX
   file in a file replica) or, for Lifeboat on a local repository, an append to the open segment
   object under lifeboat/wal/ (`*.open`: one frame and an fdatasync per shipment; the
   `*.frames` file it is renamed to every 64 shipments carries nothing new and is not counted).
   The watcher uses inotify: a file counts when it is renamed into place (or closed after
   writing), an append when it is written (IN_MODIFY, just before its fdatasync). CPU: the tool's user+system
   seconds while it replicated, summed over its threads from /proc/PID/task/*/schedstat (to the
   nanosecond; /proc/PID/stat counts 10 ms ticks). REPEAT=N: N runs per tool, alternating,
   medians.
2. Restore: a database of SIZE_MB, replicated by each tool, then restored to a new file, median
   of 3 (lifeboat restore --at latest; litestream restore); the restored row counts are checked.

Prints a markdown table. Run through bench/pitr-sqlite.sh.
"""

import bisect
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

BIN = os.path.realpath(os.environ.get("LIFEBOAT_BIN", "target/release/lifeboat"))
WORK = os.path.realpath(os.environ.get("BENCH_WORK", "bench/work/pitr-sqlite"))
RATE = float(os.environ.get("RATE", "20"))
SECONDS = float(os.environ.get("SECONDS_", "30"))
SIZE_MB = int(os.environ.get("SIZE_MB", "200"))
# The writer's PRAGMA synchronous (default: SQLite's, FULL: an fsync of the log in every commit).
SYNC = os.environ.get("SYNC", "")
# Lag runs per tool (alternating); the table shows medians.
REPEAT = int(os.environ.get("REPEAT", "1"))
# Extra `lifeboat replicate` arguments (e.g. "--max-delay 1s" to ship as often as Litestream).
EXTRA = os.environ.get("LIFEBOAT_ARGS", "").split()
TICK = os.sysconf(os.sysconf_names["SC_CLK_TCK"])


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def app(db):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA busy_timeout=10000")
    if SYNC:
        c.execute(f"PRAGMA synchronous={SYNC}")
    c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, at REAL, pad BLOB)")
    return c


def cpu_seconds(pid):
    """User+system seconds of the process: in clock ticks (10 ms) from /proc/PID/stat, which
    counts threads that ended too."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 (1-based) of the whole line.
    return sum(int(x) for x in fields[11:15]) / TICK


def cpu_threads(pid):
    """{thread: CPU nanoseconds} from /proc/PID/task/*/schedstat: to the nanosecond, but only
    for threads alive now (see `cpu_between`)."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                out[t] = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def cpu_between(before, after, coarse):
    """CPU seconds between two `cpu_threads` readings; where a thread ended in between, its
    time is lost, so the tick count `coarse` (which keeps it) is taken instead."""
    if not set(before) <= set(after):
        return coarse
    return sum(after[t] - before.get(t, 0) for t in after) / 1e9


class Watcher(threading.Thread):
    """Notes when each new file appears below `root`: inotify (through libc, no extra package),
    so the time is when the file was renamed into place or closed after writing, and the
    watcher itself costs next to nothing (a listing every 5 ms, the first way this was measured,
    competed with the tools for the directory and for the two cores)."""

    IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_ISDIR = 0x2, 0x8, 0x80, 0x100, 0x40000000

    def __init__(self, root):
        super().__init__(daemon=True)
        import ctypes
        self.root, self.seen, self.appends, self.finished, self.stop = root, {}, [], 0, False
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0:
            sys.exit("inotify_init1 failed")
        self.dirs = {}
        # The output directory may not exist yet: watch the nearest one that does.
        base = root
        while not os.path.isdir(base):
            base = os.path.dirname(base)
        self.add_tree(base, 0.0)

    def add_tree(self, top, at):
        # The watch first, then the listing: a file that lands after the listing is an event.
        self.add(top)
        try:
            entries = list(os.scandir(top))
        except FileNotFoundError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                self.add_tree(e.path, at)
            else:
                self.note(e.path, at)

    def note(self, p, at):
        if p.startswith(self.root + os.sep):
            self.seen.setdefault(p, at)

    def add(self, d):
        mask = self.IN_MODIFY | self.IN_CLOSE_WRITE | self.IN_MOVED_TO | self.IN_CREATE
        wd = self.libc.inotify_add_watch(self.fd, d.encode(), mask)
        if wd >= 0:
            self.dirs[wd] = d

    def run(self):
        import select
        import struct
        while not self.stop:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                continue
            now = time.time()
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            i = 0
            while i + 16 <= len(buf):
                wd, mask, _, n = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + n].split(b"\0", 1)[0].decode()
                i += 16 + n
                p = os.path.join(self.dirs.get(wd, ""), name)
                if mask & self.IN_ISDIR:
                    if mask & self.IN_CREATE:
                        # With what landed in it before the watch was added.
                        self.add_tree(p, now)
                    continue
                if name.startswith(".") or name.endswith(".tmp"):
                    continue
                if name.endswith(".frames"):
                    self.finished += bool(mask & self.IN_MOVED_TO)
                    continue
                if name.endswith(".open"):
                    if mask & self.IN_MODIFY and p.startswith(self.root + os.sep):
                        self.appends.append(now)
                    continue
                if mask & (self.IN_MOVED_TO | self.IN_CLOSE_WRITE):
                    self.note(p, now)

    def appeared(self):
        """When each shipment landed: new files and appends."""
        return sorted([t for t in self.seen.values() if t > 0] + self.appends)

    def files(self):
        """New files that landed (an open object counts once it is finished)."""
        return sum(1 for t in self.seen.values() if t > 0) + self.finished


def open_objects(root):
    """Lifeboat's open segment objects below `root` (files written that no rename showed)."""
    return [f for _, _, fs in os.walk(root) for f in fs if f.endswith(".open")]


def lifeboat_setup(d, db):
    repo = os.path.join(d, "repo")
    env = dict(os.environ, LIFEBOAT_PASSWORD="bench")
    sh(BIN, "--repo", repo, "init", stdout=subprocess.DEVNULL, env=env)
    cfg = os.path.join(d, "lifeboat.toml")
    with open(cfg, "w") as f:
        f.write(f'[repository]\nurl = "{repo}"\n\n[[source]]\nname = "app"\nkind = "sqlite"\npath = "{db}"\ncontinuous = true\n')
    return cfg, env, os.path.join(repo, "lifeboat", "wal")


def start(tool, d, db):
    """Start replicating; returns (process, directory to watch, restore function)."""
    if tool == "lifeboat":
        cfg, env, watch = lifeboat_setup(d, db)
        out = open(os.path.join(d, "replicate.log"), "w")
        p = subprocess.Popen([BIN, "--config", cfg, "replicate", *EXTRA], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 600
        while "replicating generation" not in open(os.path.join(d, "replicate.log")).read():
            if p.poll() is not None or time.time() > deadline:
                sys.exit(f"lifeboat replicate did not start: {open(os.path.join(d, 'replicate.log')).read()}")
            time.sleep(0.05)

        def restore(target):
            sh(BIN, "--config", cfg, "restore", "latest", "--source", "app", "--at", "latest", "--target", target,
               stdout=subprocess.DEVNULL, env=env)

        return p, watch, restore
    replica = os.path.join(d, "replica")
    os.makedirs(replica, exist_ok=True)
    out = open(os.path.join(d, "replicate.log"), "w")
    p = subprocess.Popen(["litestream", "replicate", db, "file://" + replica], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while not any(files for _, _, files in os.walk(replica)):
        if p.poll() is not None or time.time() > deadline:
            sys.exit(f"litestream did not start: {open(os.path.join(d, 'replicate.log')).read()}")
        time.sleep(0.05)
    time.sleep(1.5)

    def restore(target):
        sh("litestream", "restore", "-o", target, "file://" + replica, stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)

    return p, replica, restore


def stop(p):
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def lag_run(tool, k=0):
    d = os.path.join(WORK, f"lag-{tool}-{k}")
    os.makedirs(d)
    db = os.path.join(d, "app.db")
    c = app(db)
    c.execute("INSERT INTO t(at, pad) VALUES (?, randomblob(1024))", (time.time(),))
    p, watch, _ = start(tool, d, db)
    time.sleep(1.0)
    w = Watcher(watch)
    w.start()
    time.sleep(0.2)
    cpu0, threads0 = cpu_seconds(p.pid), cpu_threads(p.pid)
    commits = []
    n = int(RATE * SECONDS)
    t0 = time.time()
    for k in range(n):
        target = t0 + k / RATE
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        began = time.time()
        c.execute("INSERT INTO t(at, pad) VALUES (?, randomblob(1024))", (began,))
        commits.append((began, time.time()))
    time.sleep(3.0)
    cpu = cpu_between(threads0, cpu_threads(p.pid), cpu_seconds(p.pid) - cpu0)
    w.stop = True
    w.join()
    files = w.files() + len(open_objects(watch))
    stop(p)
    appear = w.appeared()
    # A transaction's lag: from the return of its commit to the first shipment that can hold it,
    # the first to land after the commit began (its pages are in the log a fraction of a
    # millisecond after that; the commit then waits for the log's fsync); 0 when that shipment
    # landed before the commit returned. The earlier rule (the first shipment after the
    # return) counted such a transaction as waiting for the next shipment: `after_return`.
    lags, after_return = [], []
    for began, ended in commits:
        j = bisect.bisect_right(appear, began)
        k = bisect.bisect_right(appear, ended)
        if j == len(appear):
            sys.exit(f"{tool}: a transaction committed at {ended} never reached the replica")
        lags.append(max(0.0, appear[j] - ended))
        if k < len(appear):  # (the last transactions may have no shipment after their return)
            after_return.append(appear[k] - ended)
    lags.sort()
    after_return.sort()
    p99 = lambda v: v[min(len(v) - 1, int(len(v) * 0.99))]
    return {
        "p50": statistics.median(lags),
        "p99": p99(lags),
        "max": lags[-1],
        "after_return_p50": statistics.median(after_return),
        "after_return_p99": p99(after_return),
        "after_return_max": after_return[-1],
        "cpu": cpu,
        "shipments": len(appear),
        "files": files,
        "n": n,
    }


def restore_run(tool):
    d = os.path.join(WORK, f"restore-{tool}")
    os.makedirs(d)
    db = os.path.join(d, "app.db")
    c = app(db)
    rows = SIZE_MB * 1024 * 1024 // 1100
    c.execute("BEGIN")
    for i in range(rows):
        c.execute("INSERT INTO t(at, pad) VALUES (?, randomblob(1024))", (i,))
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(50):
        c.execute("INSERT INTO t(at, pad) VALUES (?, randomblob(1024))", (i,))
    size = os.path.getsize(db)
    p, _, restore = start(tool, d, db)
    time.sleep(3.0)
    stop(p)
    times = []
    for k in range(3):
        target = os.path.join(d, f"restored-{k}.db")
        t = time.time()
        restore(target)
        times.append(time.time() - t)
        n = sqlite3.connect(target).execute("SELECT COUNT(*) FROM t").fetchone()[0]
        if n != rows + 50:
            sys.exit(f"{tool}: restored {n} rows, expected {rows + 50}")
        os.remove(target)
    return {"seconds": statistics.median(times), "bytes": size}


def main():
    subprocess.run(["rm", "-rf", WORK], check=True)
    os.makedirs(WORK)
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
    lver = subprocess.run(["litestream", "version"], capture_output=True, text=True).stdout.strip()
    print(f"{ver}; Litestream {lver}; {os.cpu_count()} cores; writer {RATE:g} tx/s for {SECONDS:g} s; "
          f"restore of {SIZE_MB} MB; medians of {REPEAT} lag runs; lifeboat replicate {' '.join(EXTRA)}", file=sys.stderr)
    # REPEAT lag runs, alternating the tools; each number is the median of its runs.
    runs = {"lifeboat": [], "litestream": []}
    for k in range(REPEAT):
        for t in runs:
            runs[t].append(lag_run(t, k))
    lag = {t: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for t, rs in runs.items()}
    lag_all = runs
    rest = {t: restore_run(t) for t in ("lifeboat", "litestream")}
    print("| | Lifeboat | Litestream | ratio |")
    print("|---|---:|---:|---:|")
    for key, label in (("p50", "lag p50 (s)"), ("p99", "lag p99 (s)"), ("max", "lag max (s)"),
                       ("after_return_p99", "lag p99, first shipment after the commit returned (s)"),
                       ("cpu", "CPU while replicating (s)")):
        a, b = lag["lifeboat"][key], lag["litestream"][key]
        print(f"| {label} | {a:.3f} | {b:.3f} | {a / b if b else float('nan'):.2f}× |")
    a, b = lag["lifeboat"]["shipments"], lag["litestream"]["shipments"]
    print(f"| shipments for {lag['lifeboat']['n']:g} transactions | {a:g} | {b:g} | |")
    a, b = lag["lifeboat"]["files"], lag["litestream"]["files"]
    print(f"| files written | {a:g} | {b:g} | |")
    a, b = rest["lifeboat"]["seconds"], rest["litestream"]["seconds"]
    mb = rest["lifeboat"]["bytes"] / 1e6
    print(f"| restore of a {mb:.0f} MB database (s, median of 3) | {a:.2f} | {b:.2f} | {a / b:.2f}× |")
    print(json.dumps({"lag": lag, "lag_runs": lag_all, "restore": rest}), file=sys.stderr)


if __name__ == "__main__":
    main()
