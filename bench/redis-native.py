#!/usr/bin/env python3
"""KEYS Redis keys backed up and restored by Lifeboat beside Redis's own ways, in one run
(issue 15, point 6). Run through bench/redis-native.sh.

The server: a throwaway redis-server on a free port (`--save "" --appendonly no`, diskless
replication with no delay: `repl-diskless-sync yes`, `repl-diskless-sync-delay 0`), filled with
`DEBUG POPULATE KEYS` (key:N = value:N).

Backup, median of RUNS, the tools alternating:
- `lifeboat backup` in rdb mode (the replication protocol, as a replica) and in logical mode
  (SCAN + DUMP), each into a new repository each run;
- `redis-cli --rdb FILE` (the same transfer as rdb mode, to a file);
- `BGSAVE` until the server reports it done (INFO persistence, polled every 5 ms; the server
  notices its child's end on its own clock, hz 10), then `cp` of its dump.rdb: the CPU is that of
  the server's fork (INFO cpu, *_children) plus cp's, and there is no peak RSS.
Restore, median of RUNS, each checked with DBSIZE:
- logical: `lifeboat restore latest --source logical --target redis://…` into a running, empty
  (FLUSHALL) server;
- rdb: `lifeboat restore latest --source rdb --target DIR/dump.rdb` (the file alone), and that
  plus starting a redis-server on it until it answers PING and has finished loading;
- native: `cp` of the `redis-cli --rdb` file into place plus the same start and load.
The load's CPU and peak RSS are the redis-server's own (/proc), read once it answers.
Sizes: each repository after one backup against the RDB, plain and with `zstd -3`.
Each timing is wall seconds with the CPU seconds (user+system) and the peak RSS of the client
process (GNU time; the server's side is not counted except where said). Prints a markdown table;
the raw timings go to stderr as JSON.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import free_port, size_of, timed

BIN = os.path.realpath(os.environ.get("LIFEBOAT_BIN", "target/release/lifeboat"))
KEYS = int(os.environ.get("KEYS", "1000000"))
RUNS = int(os.environ.get("RUNS", "3"))
WORK = tempfile.mkdtemp(prefix="lifeboat-redis-native-", dir=os.environ.get("BENCH_WORK") or None)
SERVERS = []
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class RedisError(Exception):
    pass


class Redis:
    """Just enough RESP for PING, INFO, DBSIZE, FLUSHALL, BGSAVE and DEBUG POPULATE."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def close(self):
        self.f.close()
        self.s.close()

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.f.readline()
        if not line:
            raise RedisError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:n].decode()
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RedisError(f"unexpected reply {line!r}")

    def info(self, section):
        return dict(l.split(":", 1) for l in self.cmd("INFO", section).splitlines() if ":" in l)


def start(port, d):
    """Start a redis-server on `d`/dump.rdb (loaded if there) and wait until it has loaded;
    returns the process."""
    os.makedirs(d, exist_ok=True)
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", d, "--dbfilename", "dump.rdb",
                          "--enable-debug-command", "yes", "--repl-diskless-sync", "yes",
                          "--repl-diskless-sync-delay", "0", "--logfile", os.path.join(d, "log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    SERVERS.append(p)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if p.poll() is not None:
            sys.exit(f"redis-server on {port} exited ({p.returncode}); see {d}/log")
        try:
            r = Redis(port)
        except OSError:
            time.sleep(0.005)
            continue
        try:
            while time.monotonic() < deadline:
                try:
                    if r.cmd("PING") == "PONG" and r.info("persistence").get("loading") == "0":
                        return p
                except RedisError as e:
                    if not str(e).startswith("LOADING"):
                        raise
                time.sleep(0.005)
        finally:
            r.close()
    sys.exit(f"redis-server on {port} did not start")


def proc_usage(p):
    """CPU seconds and peak RSS (MiB) of a running process."""
    with open(f"/proc/{p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    with open(f"/proc/{p.pid}/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    return cpu, hwm / 1024


def stop(p):
    p.terminate()
    p.wait()
    SERVERS.remove(p)


def one(port, *args):
    r = Redis(port)
    try:
        return r.cmd(*args)
    finally:
        r.close()


def bench():
    env = dict(os.environ, LIFEBOAT_PASSWORD="bench")
    pa, pb, pc = free_port(), free_port(), free_port()
    a, b = os.path.join(WORK, "a"), os.path.join(WORK, "b")
    start(pa, a)
    ra = Redis(pa)
    ra.cmd("DEBUG", "POPULATE", KEYS)
    if ra.cmd("DBSIZE") != KEYS:
        sys.exit("DEBUG POPULATE did not make KEYS keys")
    mem = ra.info("memory")["used_memory_human"]
    target = start(pc, os.path.join(WORK, "c"))  # logical restores go here
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
    rv = ra.info("server")["redis_version"]
    log(f"{ver}; Redis {rv}; {os.cpu_count()} cores; {KEYS} keys, {mem} in memory; medians of {RUNS}")
    keys = ("rdb", "logical", "cli", "bgsave", "rdb-restore", "rdb-restore-load", "logical-restore", "load")
    t = {k: [] for k in keys}
    sizes = {}
    plain = os.path.join(WORK, "plain.rdb")
    for k in range(RUNS):
        log(f"run {k + 1}/{RUNS}")
        cfgs = {}
        for mode in ("rdb", "logical"):
            repo = os.path.join(WORK, f"repo-{mode}")
            cfgs[mode] = cfg = os.path.join(WORK, f"{mode}.toml")
            with open(cfg, "w") as f:
                f.write(f'[repository]\nurl = "{repo}"\n\n[[source]]\nname = "{mode}"\nkind = "redis"\n'
                        f'port = {pa}\nmode = "{mode}"\n')
            shutil.rmtree(repo, ignore_errors=True)
            subprocess.run([BIN, "--config", cfg, "init", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        # Backups, alternating.
        t["rdb"].append(timed([BIN, "--config", cfgs["rdb"], "backup", "rdb", "-q"], env))
        sizes.setdefault("rdb", size_of(os.path.join(WORK, "repo-rdb")))
        t["logical"].append(timed([BIN, "--config", cfgs["logical"], "backup", "logical", "-q"], env))
        sizes.setdefault("logical", size_of(os.path.join(WORK, "repo-logical")))
        t["cli"].append(timed(["redis-cli", "-p", str(pa), "--rdb", plain]))
        sizes.setdefault("plain", size_of(plain))
        # The fork that fed redis-cli is reaped on the server's clock: wait for it first.
        while ra.info("persistence")["rdb_bgsave_in_progress"] != "0":
            time.sleep(0.005)
        before = ra.info("cpu")
        t0 = time.monotonic()
        if not ra.cmd("BGSAVE").startswith("Background saving started"):
            sys.exit("BGSAVE did not start")
        while (p := ra.info("persistence"))["rdb_bgsave_in_progress"] != "0":
            time.sleep(0.005)
        wall = time.monotonic() - t0
        if p["rdb_last_bgsave_status"] != "ok":
            sys.exit(f"BGSAVE failed: {p}")
        after = ra.info("cpu")
        fork_cpu = sum(float(after[f"used_cpu_{x}_children"]) - float(before[f"used_cpu_{x}_children"])
                       for x in ("user", "sys"))
        cw, cc, _ = timed(["cp", os.path.join(a, "dump.rdb"), os.path.join(WORK, "bgsave-copy.rdb")])
        t["bgsave"].append((wall + cw, fork_cpu + cc, None))
        os.remove(os.path.join(a, "dump.rdb"))
        os.remove(os.path.join(WORK, "bgsave-copy.rdb"))

        # Restores, alternating: logical into a running server, rdb to a file + load, native load.
        one(pc, "FLUSHALL")
        t["logical-restore"].append(timed([BIN, "--config", cfgs["logical"], "restore", "latest", "--source",
                                           "logical", "--target", f"redis://127.0.0.1:{pc}", "-q"], env))
        if (n := one(pc, "DBSIZE")) != KEYS:
            sys.exit(f"lifeboat restore (logical) gave {n} keys, expected {KEYS}")
        one(pc, "FLUSHALL")
        rdb = os.path.join(b, "dump.rdb")
        os.makedirs(b, exist_ok=True)
        r = timed([BIN, "--config", cfgs["rdb"], "restore", "latest", "--source", "rdb", "--target", rdb, "-q"], env)
        t["rdb-restore"].append(r)
        t0 = time.monotonic()
        srv = start(pb, b)
        wall = time.monotonic() - t0
        cpu, hwm = proc_usage(srv)
        t["rdb-restore-load"].append((r[0] + wall, r[1] + cpu, max(r[2], hwm)))
        if (n := one(pb, "DBSIZE")) != KEYS:
            sys.exit(f"lifeboat restore (rdb) + load gave {n} keys, expected {KEYS}")
        stop(srv)
        os.remove(rdb)
        t0 = time.monotonic()
        cw, cc, cr = timed(["cp", plain, rdb])
        srv = start(pb, b)
        wall = time.monotonic() - t0
        cpu, hwm = proc_usage(srv)
        t["load"].append((wall, cc + cpu, max(cr, hwm)))
        if (n := one(pb, "DBSIZE")) != KEYS:
            sys.exit(f"loading the redis-cli --rdb file gave {n} keys, expected {KEYS}")
        stop(srv)
        os.remove(rdb)
        os.remove(plain)
    # Sizes: the RDB of the last run, compressed.
    subprocess.run(["redis-cli", "-p", str(pa), "--rdb", plain], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    subprocess.run(["zstd", "-3", "-q", "-f", plain, "-o", plain + ".zst"], check=True)
    sizes["zstd"] = size_of(plain + ".zst")
    ra.close()
    stop(target)

    def med(k):
        v = t[k]
        rss = [r[2] for r in v if r[2] is not None]
        return (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v),
                statistics.median(rss) if rss else None)

    def row(label, k, base):
        a, b = med(k), med(base)
        rss = f"{a[2]:.0f} MiB" if a[2] is not None else "—"
        return f"| {label} | {a[0]:.2f} s ({a[1]:.1f} CPU s, {rss}) | {a[0] / b[0]:.2f}× |"

    def size_row(label, k):
        return (f"| {label} | {sizes[k] / 1e6:.1f} MB | {sizes[k] / sizes['plain']:.2f}× | "
                f"{sizes[k] / sizes['zstd']:.2f}× |")

    print(f"Redis {rv}: {KEYS:,} keys (`DEBUG POPULATE`), {mem} in memory; medians of {RUNS}.\n")
    print("| | time (CPU, peak RSS) | vs `redis-cli --rdb` / loading the RDB |")
    print("|---|---:|---:|")
    print(row("`lifeboat backup` (rdb mode)", "rdb", "cli"))
    print(row("`lifeboat backup` (logical mode)", "logical", "cli"))
    print(row("`redis-cli --rdb`", "cli", "cli"))
    print(row("`BGSAVE` until done + `cp dump.rdb` (CPU: the fork's)", "bgsave", "cli"))
    print(row("`lifeboat restore` (logical, into a running server)", "logical-restore", "load"))
    print(row("`lifeboat restore` (rdb, the file)", "rdb-restore", "load"))
    print(row("`lifeboat restore` (rdb) + start and load", "rdb-restore-load", "load"))
    print(row("`cp` of the RDB + start and load", "load", "load"))
    print("\n| after one backup | size | vs the RDB | vs the RDB with `zstd -3` |")
    print("|---|---:|---:|---:|")
    print(size_row("Lifeboat repository, rdb mode", "rdb"))
    print(size_row("Lifeboat repository, logical mode", "logical"))
    print(size_row("RDB (`redis-cli --rdb`)", "plain"))
    print(size_row("RDB with `zstd -3`", "zstd"))
    print(json.dumps({"runs": t, "sizes": sizes}), file=sys.stderr)


def cleanup():
    for p in SERVERS:
        p.terminate()
    for p in SERVERS:
        p.wait()
    shutil.rmtree(WORK, ignore_errors=True)


def main():
    benchlib.run(bench, cleanup)


if __name__ == "__main__":
    main()
