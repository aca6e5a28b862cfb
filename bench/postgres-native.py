#!/usr/bin/env python3
"""A pgbench database of SCALE backed up and restored by Lifeboat beside PostgreSQL's own
`pg_dump -Fc` / `pg_restore` and pgBackRest, in one run (issue 15, point 6). Run through
bench/postgres-native.sh (as root).

The cluster: a throwaway PostgreSQL 15 (initdb as the postgres user into the scratch directory,
Unix socket only, wal_level replica, archive_mode on, max_wal_size 4GB, checkpoint_timeout
30min, fsync on), database `bench` from `pgbench -i -s SCALE` (FILLER=md5: the accounts' blank
filler replaced with hex text, then VACUUM FULL). WAL is archived with `pgbackrest archive-push`
from just before the first pgBackRest backup on (`/bin/true` while pgbench -i loads). pgBackRest
2.45: one stanza, repo1-path in the scratch directory, encrypted (aes-256-cbc: Lifeboat's
repository is always encrypted, as in bench/pitr-postgres.sh), its default compression (gz),
start-fast, one process.

Backup, median of RUNS, the tools alternating:
- `lifeboat backup` (postgres source, custom format, the default) into a new repository each run;
- `pg_dump -Fc` to a file (pg_dump's default compression);
- `pg_dump -Fc --compress=0 | zstd -3` to a file;
- `pgbackrest --type=full backup` (into the one pgBackRest repository; no expiry).
Restore, median of RUNS, each checked with the row count of pgbench_accounts:
- `lifeboat restore latest --source pg --target DB` (creates the database, pg_restore fed from the
  repository);
- `createdb` + `pg_restore -d DB` of that run's -Fc file, and the same with `--jobs=2`;
- `pgbackrest restore` into a new data directory (the restored files), and separately the time
  to start that cluster and replay the archive until it is promoted (wall time only).
Sizes after one backup: the Lifeboat repository, the -Fc file, the zstd -3 dump, the pgBackRest
repository (full backup + the WAL archived for it).
A day: HOURS rounds of `pgbench -n -c 2 -j 2 -T SECS_PER_HOUR`, each followed by a Lifeboat backup
(into the last run's repository), a `pgbackrest --type=incr backup` and a `pg_dump -Fc` file kept
per round; the growth of each: Lifeboat repository bytes, pgBackRest repository bytes (backups
and WAL archive), the sum of the dumps.
Each timing is wall seconds with the CPU seconds (user+system) and the peak RSS of the client
processes (GNU time; the server backends' work is not in the CPU column for any tool). Prints a
markdown table; the raw timings go to stderr as JSON.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import free_port, size_of, timed

BIN = os.path.realpath(os.environ.get("LIFEBOAT_BIN", "target/release/lifeboat"))
PGBIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
SCALE = int(os.environ.get("SCALE", "50"))
FILLER = os.environ.get("FILLER", "")
RUNS = int(os.environ.get("RUNS", "3"))
HOURS = int(os.environ.get("HOURS", "24"))
SECS = int(os.environ.get("SECS_PER_HOUR", "10"))
WORK = tempfile.mkdtemp(prefix="lifeboat-postgres-native-", dir=os.environ.get("BENCH_WORK") or None)
STANZA = "bench"
PGBR_CONF = os.path.join(WORK, "pgbackrest.conf")
STARTED = []  # data directories of clusters started (stopped at the end)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def as_pg(args):
    return ["runuser", "-u", "postgres", "--", *args]


def pgbr(*args):
    return as_pg(["pgbackrest", f"--config={PGBR_CONF}", f"--stanza={STANZA}", *args])


def run(args, **kw):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
    return r.stdout


def bash(script):
    return ["bash", "-c", "set -eo pipefail; " + script]


def psql(port, sql, db="bench"):
    return run([f"{PGBIN}/psql", "-X", "-q", "-At", "-h", WORK, "-p", str(port), "-U", "postgres", "-d", db,
                "-c", sql]).strip()


def conn(port, db="bench"):
    return f"-h {WORK} -p {port} -U postgres {db}"


def start(data, port, extra=""):
    run(as_pg([f"{PGBIN}/pg_ctl", "-D", data, "-l", data + ".log", "-w", "-t", "600",
               "-o", f"-p {port} -k {WORK} {extra}", "start"]))
    STARTED.append(data)


def stop(data, mode="fast"):
    if os.path.exists(os.path.join(data, "postmaster.pid")):
        subprocess.run(as_pg([f"{PGBIN}/pg_ctl", "-D", data, "-m", mode, "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def count(port, db):
    return int(psql(port, "SELECT count(*) FROM pgbench_accounts", db))


def dropdb(port, db):
    psql(port, f"DROP DATABASE IF EXISTS {db}", "postgres")


def bench():
    shutil.chown(WORK, "postgres", "postgres")
    os.chmod(WORK, 0o755)
    env = dict(os.environ, LIFEBOAT_PASSWORD="bench")
    rows = SCALE * 100_000
    data = os.path.join(WORK, "data")
    port = free_port()
    run(as_pg([f"{PGBIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]))
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write("listen_addresses = ''\nwal_level = replica\narchive_mode = on\narchive_command = '/bin/true'\n"
                "max_wal_size = 4GB\ncheckpoint_timeout = 30min\n")
    start(data, port)
    psql(port, "CREATE DATABASE bench", "postgres")
    log(f"pgbench -i -s {SCALE} …")
    run([f"{PGBIN}/pgbench", "-i", "-s", str(SCALE), "-q", *conn(port).split()])
    if FILLER == "md5":
        psql(port, "UPDATE pgbench_accounts SET filler = md5(aid::text) || md5((-aid)::text) || "
                   "left(md5((3 * aid)::text), 20)")
        psql(port, "VACUUM FULL ANALYZE pgbench_accounts")
    db_size = int(psql(port, "SELECT pg_database_size('bench')"))

    # pgBackRest: archive from here on.
    pgbr_repo = os.path.join(WORK, "pgbr-repo")
    pgbr_log = os.path.join(WORK, "pgbr-log")
    for d in (pgbr_repo, pgbr_log):
        os.makedirs(d)
        shutil.chown(d, "postgres", "postgres")
    with open(PGBR_CONF, "w") as f:
        f.write(f"""[global]
repo1-path={pgbr_repo}
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass={os.urandom(24).hex()}
repo1-retention-full=9999
log-path={pgbr_log}
lock-path={pgbr_log}
start-fast=y
log-level-console=warn

[{STANZA}]
pg1-path={data}
pg1-port={port}
pg1-socket-path={WORK}
""")
    shutil.chown(PGBR_CONF, "postgres", "postgres")
    os.chmod(PGBR_CONF, 0o600)
    psql(port, "CHECKPOINT")
    psql(port, f"ALTER SYSTEM SET archive_command = "
               f"'pgbackrest --config={PGBR_CONF} --stanza={STANZA} archive-push %p'")
    psql(port, "SELECT pg_reload_conf()")
    run(pgbr("stanza-create"))
    run(pgbr("check"))

    pgv = run([f"{PGBIN}/postgres", "--version"]).split()[2]
    ver = run([BIN, "--version"]).strip()
    brv = run(["pgbackrest", "version"]).strip()
    log(f"{ver}; {brv}; PostgreSQL {pgv}; {os.cpu_count()} cores; pgbench -s {SCALE}"
        f"{' (filler md5)' if FILLER == 'md5' else ''}, database {db_size / 1e6:.0f} MB; medians of {RUNS}")
    # Warm the page cache (and shared buffers) once.
    psql(port, "SELECT count(*) FROM pgbench_accounts")

    keys = ("lifeboat", "dump", "dump-zstd", "pgbr", "lifeboat-restore", "restore", "restore-j2",
            "pgbr-restore", "pgbr-start")
    t = {k: [] for k in keys}
    sizes = {}
    repo = cfg = None
    for k in range(RUNS):
        log(f"run {k + 1}/{RUNS}: backups")
        repo = os.path.join(WORK, f"repo-{k}")
        cfg = os.path.join(WORK, f"lifeboat-{k}.toml")
        with open(cfg, "w") as f:
            f.write(f'[repository]\nurl = "{repo}"\n\n[[source]]\nname = "pg"\nkind = "postgres"\n'
                    f'database = "bench"\nhost = "{WORK}"\nport = {port}\nuser = "postgres"\nbin_dir = "{PGBIN}"\n')
        subprocess.run([BIN, "--config", cfg, "init", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        t["lifeboat"].append(timed([BIN, "--config", cfg, "backup", "pg", "-q"], env))
        sizes.setdefault("lifeboat", size_of(repo))
        dump = os.path.join(WORK, "bench.pgdump")
        t["dump"].append(timed([f"{PGBIN}/pg_dump", "-Fc", "-f", dump, *conn(port).split()]))
        sizes.setdefault("dump", size_of(dump))
        zdump = os.path.join(WORK, "bench-z0.pgdump.zst")
        t["dump-zstd"].append(timed(bash(f"{PGBIN}/pg_dump -Fc --compress=0 {conn(port)} | zstd -3 -q -f -o {zdump}")))
        sizes.setdefault("dump-zstd", size_of(zdump))
        os.remove(zdump)
        t["pgbr"].append(timed(pgbr("--type=full", "backup")))
        sizes.setdefault("pgbr", size_of(pgbr_repo))

        log(f"run {k + 1}/{RUNS}: restores")
        t["lifeboat-restore"].append(timed([BIN, "--config", cfg, "restore", "latest", "--source", "pg",
                                            "--target", "bench_lb", "-q"], env))
        if (n := count(port, "bench_lb")) != rows:
            sys.exit(f"lifeboat restored {n} accounts, expected {rows}")
        dropdb(port, "bench_lb")
        if k < RUNS - 1:
            shutil.rmtree(repo)
        for key, jobs in (("restore", ""), ("restore-j2", "--jobs=2 ")):
            t[key].append(timed(bash(f"{PGBIN}/createdb -h {WORK} -p {port} -U postgres bench_pr && "
                                     f"{PGBIN}/pg_restore {jobs}{conn(port, '-d bench_pr')} {dump}")))
            if (n := count(port, "bench_pr")) != rows:
                sys.exit(f"pg_restore {jobs}restored {n} accounts, expected {rows}")
            dropdb(port, "bench_pr")
        os.remove(dump)
        rdir = os.path.join(WORK, "pgbr-restored")
        os.makedirs(rdir, mode=0o700)
        shutil.chown(rdir, "postgres", "postgres")
        t["pgbr-restore"].append(timed(pgbr(f"--pg1-path={rdir}", "restore")))
        t0 = time.monotonic()
        rport = free_port()
        start(rdir, rport, "-c archive_mode=off")
        for _ in range(60000):
            if psql(rport, "SELECT pg_is_in_recovery()", "postgres") == "f":
                break
            time.sleep(0.01)
        else:
            sys.exit("the cluster restored by pgBackRest did not leave recovery")
        t["pgbr-start"].append((time.monotonic() - t0, 0.0, 0.0))
        if (n := count(rport, "bench")) != rows:
            sys.exit(f"pgbackrest restored {n} accounts, expected {rows}")
        stop(rdir)
        shutil.rmtree(rdir)

    # A day of traffic: the last run's Lifeboat repository, the pgBackRest repository.
    log(f"a day: {HOURS} rounds of pgbench -T {SECS}")
    day = {k: [] for k in ("lifeboat", "pgbr", "dump")}
    lb0, br0 = size_of(repo), size_of(pgbr_repo)
    dumps = os.path.join(WORK, "dumps")
    os.makedirs(dumps)
    tx = 0
    for h in range(HOURS):
        out = run([f"{PGBIN}/pgbench", "-n", "-c", "2", "-j", "2", "-T", str(SECS), *conn(port).split()])
        tx += int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
        day["lifeboat"].append(timed([BIN, "--config", cfg, "backup", "pg", "-q"], env))
        day["pgbr"].append(timed(pgbr("--type=incr", "backup")))
        day["dump"].append(timed([f"{PGBIN}/pg_dump", "-Fc", "-f", os.path.join(dumps, f"bench-{h:02}.pgdump"),
                                  *conn(port).split()]))
    growth = {"lifeboat": size_of(repo) - lb0, "pgbr": size_of(pgbr_repo) - br0, "dump": size_of(dumps)}
    db_size_after = int(psql(port, "SELECT pg_database_size('bench')"))

    med = {k: tuple(statistics.median(r[i] for r in v) for i in range(3)) for k, v in t.items()}

    def row(label, k, base):
        a, b = med[k], med[base]
        return f"| {label} | {a[0]:.2f} s ({a[1]:.1f} CPU s, {a[2]:.0f} MiB) | {a[0] / b[0]:.2f}× |"

    def size_row(label, k):
        return f"| {label} | {sizes[k] / 1e6:.1f} MB | {sizes[k] / sizes['dump']:.2f}× |"

    print(f"Database: pgbench -s {SCALE}{' (filler md5)' if FILLER == 'md5' else ''}, {rows:,} accounts, "
          f"{db_size / 1e6:.0f} MB; PostgreSQL {pgv}, {brv}; medians of {RUNS}.\n")
    print("| | time (CPU, peak RSS) | vs `pg_dump -Fc` / `pg_restore` |")
    print("|---|---:|---:|")
    print(row("`lifeboat backup`", "lifeboat", "dump"))
    print(row("`pg_dump -Fc`", "dump", "dump"))
    print(row("`pg_dump -Fc --compress=0 \\| zstd -3`", "dump-zstd", "dump"))
    print(row("`pgbackrest backup --type=full`", "pgbr", "dump"))
    print(row("`lifeboat restore`", "lifeboat-restore", "restore"))
    print(row("`createdb` + `pg_restore`", "restore", "restore"))
    print(row("`createdb` + `pg_restore --jobs=2`", "restore-j2", "restore"))
    print(row("`pgbackrest restore` (files)", "pgbr-restore", "restore"))
    s = med["pgbr-start"][0]
    print(f"| … then start, replay, promoted | +{s:.2f} s | {(med['pgbr-restore'][0] + s) / med['restore'][0]:.2f}× "
          f"in all |")
    print("\n| after one backup | size | vs `pg_dump -Fc` |")
    print("|---|---:|---:|")
    print(size_row("Lifeboat repository", "lifeboat"))
    print(size_row("`pg_dump -Fc` file", "dump"))
    print(size_row("`pg_dump -Fc --compress=0 \\| zstd -3`", "dump-zstd"))
    print(size_row("pgBackRest repository (full backup + its WAL)", "pgbr"))
    if HOURS > 0:
        dm = {k: tuple(statistics.median(r[i] for r in v) for i in range(3)) for k, v in day.items()}

        def day_row(label, k):
            a = dm[k]
            return (f"| {label} | +{growth[k] / 1e6:.1f} MB | {growth[k] / growth['lifeboat']:.2f}× | "
                    f"{a[0]:.2f} s ({a[1]:.1f} CPU s, {a[2]:.0f} MiB) |")

        print(f"\nA day: {HOURS} round{'s' if HOURS != 1 else ''} of `pgbench -c 2 -j 2 -T {SECS}` ({tx:,} transactions in all; database "
              f"{db_size / 1e6:.0f} → {db_size_after / 1e6:.0f} MB), each followed by one backup per tool.\n")
        print("| | growth after the day | vs Lifeboat | median backup of a round |")
        print("|---|---:|---:|---:|")
        print(day_row("Lifeboat repository", "lifeboat"))
        print(day_row("pgBackRest repository (incr backups + WAL archive)", "pgbr"))
        print(day_row(f"a `pg_dump -Fc` file per round (sum of {HOURS})", "dump"))
    print(json.dumps({"runs": t, "day": day, "sizes": sizes, "growth": growth, "transactions": tx}),
          file=sys.stderr)


def cleanup():
    for d in reversed(STARTED):
        stop(d, "immediate")
    shutil.rmtree(WORK, ignore_errors=True)


def main():
    benchlib.run(bench, cleanup)


if __name__ == "__main__":
    main()
