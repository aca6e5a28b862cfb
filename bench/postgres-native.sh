#!/usr/bin/env bash
# PostgreSQL 15 (`pgbench -i -s 50`, about 750 MB): `lifeboat backup` and `restore` beside
# `pg_dump -Fc` / `pg_restore` and pgBackRest 2.45, medians of 3 in one run, the repository's
# size beside theirs, and each tool's repository growth after a day of pgbench traffic (issue 15).
# See the docstring of bench/postgres-native.py.
#
#   bench/postgres-native.sh          (as root: the throwaway cluster runs as the postgres user)
#
#   LIFEBOAT_BIN=PATH   binary (default target/release/lifeboat)
#   SCALE=50            pgbench scale (100,000 accounts each)
#   FILLER=md5          replace pgbench's blank filler with hex text first (default: pgbench's)
#   RUNS=3              runs per tool, alternating
#   HOURS=24            rounds of traffic + backups for the repository growth ("a day"; 0: none)
#   SECS_PER_HOUR=10    pgbench -T of each round (-c 2 -j 2)
#   PG_BIN=DIR          PostgreSQL programs (default /usr/lib/postgresql/15/bin)
#   BENCH_WORK=DIR      where the scratch directory goes (default /tmp); it is removed at the end
# Needs PostgreSQL 15 (server, client, pgbench), pgBackRest and zstd
# (Debian postgresql-15, pgbackrest, zstd).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LIFEBOAT_BIN:-target/release/lifeboat}
[[ -x $bin ]] || { echo "bench/postgres-native.sh: $bin missing: cargo build --release -p lifeboat" >&2; exit 1; }
pgbin=${PG_BIN:-/usr/lib/postgresql/15/bin}
for t in initdb pg_ctl postgres psql pg_dump pg_restore pgbench createdb; do
  [[ -x $pgbin/$t ]] || { echo "bench/postgres-native.sh: $pgbin/$t missing (apt-get install postgresql-15)" >&2; exit 1; }
done
for t in pgbackrest zstd runuser /usr/bin/time; do
  command -v $t >/dev/null || { echo "bench/postgres-native.sh: $t missing (apt-get install ${t##*/})" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "bench/postgres-native.sh: run as root (the cluster runs as the postgres user)" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "bench/postgres-native.sh: no postgres user" >&2; exit 1; }
exec python3 bench/postgres-native.py
