#!/usr/bin/env python3
"""Continuous SQLite replication, Lifeboat beside Litestream in one run (issue 12).

1. Lag: the same writer (one row of 1 KiB per transaction, RATE transactions a second for
   SECONDS) against each tool with its defaults; a watcher lists the tool's output directory
   every 5 ms and notes when each new file appears. A transaction's lag is the time from its
   commit to the first new file after it (Lifeboat: its segment under lifeboat/wal/; Litestream:
   its LTX file in a file replica); the same rule for both. CPU: the tool's user+system seconds
   while it replicated (from /proc).
2. Restore: a database of SIZE_MB, replicated by each tool, then restored to a new file, median
   of 3 (lifeboat restore --at latest; litestream restore); the restored row counts are checked.

Prints a markdown table. Run through bench/pitr-sqlite.sh.
"""

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
# Extra `lifeboat replicate` arguments (e.g. "--max-delay 1s" to ship as often as Litestream).
EXTRA = os.environ.get("LIFEBOAT_ARGS", "").split()
TICK = os.sysconf(os.sysconf_names["SC_CLK_TCK"])


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def app(db):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA busy_timeout=10000")
    c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, at REAL, pad BLOB)")
    return c


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 (1-based) of the whole line.
    return sum(int(x) for x in fields[11:15]) / TICK


class Watcher(threading.Thread):
    def __init__(self, root):
        super().__init__(daemon=True)
        self.root, self.seen, self.stop = root, {}, False

    def run(self):
        while not self.stop:
            now = time.time()
            for d, _, files in os.walk(self.root):
                for f in files:
                    p = os.path.join(d, f)
                    if p not in self.seen and not f.startswith("."):
                        self.seen[p] = now
            time.sleep(0.005)


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


def lag_run(tool):
    d = os.path.join(WORK, f"lag-{tool}")
    os.makedirs(d)
    db = os.path.join(d, "app.db")
    c = app(db)
    c.execute("INSERT INTO t(at, pad) VALUES (?, randomblob(1024))", (time.time(),))
    p, watch, _ = start(tool, d, db)
    time.sleep(1.0)
    w = Watcher(watch)
    w.start()
    time.sleep(0.2)
    cpu0 = cpu_seconds(p.pid)
    commits = []
    n = int(RATE * SECONDS)
    t0 = time.time()
    for k in range(n):
        target = t0 + k / RATE
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        c.execute("INSERT INTO t(at, pad) VALUES (?, randomblob(1024))", (time.time(),))
        commits.append(time.time())
    time.sleep(3.0)
    cpu = cpu_seconds(p.pid) - cpu0
    w.stop = True
    w.join()
    stop(p)
    appear = sorted(t for t in w.seen.values())
    lags, j = [], 0
    for t in commits:
        while j < len(appear) and appear[j] < t:
            j += 1
        if j == len(appear):
            sys.exit(f"{tool}: a transaction committed at {t} never reached the replica")
        lags.append(appear[j] - t)
    lags.sort()
    return {
        "p50": statistics.median(lags),
        "p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "max": lags[-1],
        "cpu": cpu,
        "files": len(appear),
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
          f"restore of {SIZE_MB} MB; lifeboat replicate {' '.join(EXTRA)}", file=sys.stderr)
    lag = {t: lag_run(t) for t in ("lifeboat", "litestream")}
    rest = {t: restore_run(t) for t in ("lifeboat", "litestream")}
    print("| | Lifeboat | Litestream | ratio |")
    print("|---|---:|---:|---:|")
    for key, label in (("p50", "lag p50 (s)"), ("p99", "lag p99 (s)"), ("max", "lag max (s)"),
                       ("cpu", "CPU while replicating (s)")):
        a, b = lag["lifeboat"][key], lag["litestream"][key]
        print(f"| {label} | {a:.3f} | {b:.3f} | {a / b if b else float('nan'):.2f}× |")
    a, b = lag["lifeboat"]["files"], lag["litestream"]["files"]
    print(f"| files written for {lag['lifeboat']['n']} transactions | {a} | {b} | |")
    a, b = rest["lifeboat"]["seconds"], rest["litestream"]["seconds"]
    mb = rest["lifeboat"]["bytes"] / 1e6
    print(f"| restore of a {mb:.0f} MB database (s, median of 3) | {a:.2f} | {b:.2f} | {a / b:.2f}× |")
    print(json.dumps({"lag": lag, "restore": rest}), file=sys.stderr)


if __name__ == "__main__":
    main()
