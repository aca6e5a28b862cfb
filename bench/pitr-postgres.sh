#!/usr/bin/env bash
# PostgreSQL point-in-time recovery (issue 12), Lifeboat beside pgBackRest 2.45 in one run.
# Two throwaway clusters (initdb, pg_ctl on free ports), each with `pgbench -i -s SCALE`:
#   A archives with `lifeboat wal-push` (archive_command) and takes a `pitr = true` base backup;
#   B archives with `pgbackrest archive-push` and takes a full pgBackRest backup, encrypted
#     (repo1-cipher-type=aes-256-cbc: Lifeboat's repository is always encrypted) and with
#     pgBackRest's default compression.
# Then on both: pgbench for SECONDS_/2, a marker row and its commit time T, pgbench for SECONDS_/2,
# a WAL switch; restore to T into a new data directory, start it, wait until recovery has ended
# and count the markers (must be exactly 1). Times: base backup, repository size after it,
# restore to T (restore + start + replay until promoted), and `lifeboat wal-push` of a 16 MiB
# segment (median of 9, into a scratch repository).
#
#   bench/pitr-postgres.sh          (as root: the clusters run as the postgres user)
#
#   LIFEBOAT_BIN=PATH   binary (default target/release/lifeboat)
#   SCALE=50            pgbench scale (50: 5 M accounts, ~750 MB)
#   SECONDS_=30         pgbench traffic between the base backup and the restore point and after it
#   ARCHIVER_KDF_N=1024 scrypt N of the archiver's key (docs/pitr.md: a random password with a
#                       cheap derivation); 32768 shows what the derivation costs each wal-push
set -euo pipefail
cd "$(dirname "$0")/.."
LB=$(realpath "${LIFEBOAT_BIN:-target/release/lifeboat}")
[[ -x $LB ]] || { echo "bench/pitr-postgres.sh: $LB missing: cargo build --release -p lifeboat" >&2; exit 1; }
command -v pgbackrest >/dev/null || { echo "bench/pitr-postgres.sh: pgbackrest missing (apt install pgbackrest)" >&2; exit 1; }
SCALE=${SCALE:-50}
SECS=${SECONDS_:-30}
KDF_N=${ARCHIVER_KDF_N:-1024}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
W=$(mktemp -d /tmp/lifeboat-pitr-pg.XXXX)
chown postgres:postgres "$W"
chmod 755 "$W"
# The password reaches wal-push and wal-fetch through the clusters' environment.
pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- env LIFEBOAT_PASSWORD_FILE="$W/pw" "$@"; else env LIFEBOAT_PASSWORD_FILE="$W/pw" "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
stop_all() {
  for d in "$W"/*/data "$W"/*/restored; do
    [[ -f $d/postmaster.pid ]] && pg "$BIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
}
cleanup() { stop_all; rm -rf "$W"; }
trap cleanup EXIT
[[ -n ${KEEP:-} ]] && trap stop_all EXIT
head -c 32 /dev/urandom | base64 >"$W/pw"
echo "the user's password" >"$W/user-pw"
chown postgres "$W/pw" "$W/user-pw"
chmod 600 "$W/pw" "$W/user-pw"
PASS=$(cat "$W/pw")

start() { # data dir, port, extra -c options
  pg "$BIN/pg_ctl" -D "$1" -l "$1/../log-$(basename "$1")" -w -t 600 \
    -o "-p $2 -k $W -c fsync=on -c max_wal_size=4GB -c checkpoint_timeout=30min $3" start >/dev/null
}
psql_() { pg psql -X -q -At -h "$W" -p "$1" -U postgres -d postgres -c "$2"; }
wait_archived() { # port
  local seg
  seg=$(psql_ "$1" "SELECT pg_walfile_name(pg_switch_wal())")
  for _ in $(seq 1 600); do
    local last
    last=$(psql_ "$1" "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    [[ ${#last} == 24 && ! $last < $seg ]] && return 0
    sleep 0.1
  done
  echo "bench/pitr-postgres.sh: $seg not archived on port $1" >&2
  exit 1
}
wait_promoted() { # port
  for _ in $(seq 1 6000); do
    [[ $(psql_ "$1" "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && return 0
    sleep 0.05
  done
  echo "bench/pitr-postgres.sh: recovery did not end on port $1" >&2
  exit 1
}
traffic() { # port: pgbench, a marker and its time, pgbench; prints the marker's commit time
  pg pgbench -h "$W" -p "$1" -U postgres -c 2 -j 2 -T "$((SECS / 2))" -n postgres >/dev/null 2>&1
  psql_ "$1" "CREATE TABLE IF NOT EXISTS marker(at timestamptz); INSERT INTO marker VALUES (clock_timestamp())" >/dev/null
  local t
  t=$(psql_ "$1" "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
  sleep 1
  psql_ "$1" "INSERT INTO marker VALUES (clock_timestamp())" >/dev/null
  pg pgbench -h "$W" -p "$1" -U postgres -c 2 -j 2 -T "$((SECS / 2))" -n postgres >/dev/null 2>&1
  echo "$t"
}

echo "$("$LB" --version); $(pgbackrest version); PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'); $(nproc) cores; pgbench -s $SCALE, ${SECS}s of traffic; archiver key scrypt N=$KDF_N" >&2

# ---- Lifeboat ----
mkdir -p "$W/a" && chown postgres "$W/a"
pg "$BIN/initdb" -D "$W/a/data" -A trust -U postgres >/dev/null
PA=$(free_port)
cat >"$W/a/lifeboat.toml" <<EOF
[repository]
url = "$W/a/repo"
[[source]]
name = "pg"
kind = "postgres"
pitr = true
host = "$W"
port = $PA
user = "postgres"
bin_dir = "$BIN"
EOF
chown postgres "$W/a/lifeboat.toml"
# The user's key (default cost), then the archiver's (random password, cheap derivation).
pg "$LB" --password-file "$W/user-pw" --config "$W/a/lifeboat.toml" init >/dev/null
pg LIFEBOAT_NEW_PASSWORD_FILE="$W/pw" "$LB" --password-file "$W/user-pw" --config "$W/a/lifeboat.toml" key add --kdf-n "$KDF_N" >/dev/null
archive="LIFEBOAT_PASSWORD_FILE=$W/pw $LB --repo $W/a/repo wal-push --source pg %p"
start "$W/a/data" "$PA" "-c wal_level=replica -c archive_mode=on -c archive_command='$archive'"
pg pgbench -i -s "$SCALE" -q -h "$W" -p "$PA" -U postgres postgres >/dev/null 2>&1
t0=$(now)
pg LIFEBOAT_PASSWORD_FILE="$W/pw" "$LB" --config "$W/a/lifeboat.toml" backup pg -q
lb_backup=$(secs "$t0" "$(now)")
lb_size=$(du -sb "$W/a/repo" | cut -f1)
T_A=$(traffic "$PA")
wait_archived "$PA"
lb_archive=$(du -sb "$W/a/repo" | cut -f1)
t0=$(now)
pg LIFEBOAT_PASSWORD_FILE="$W/pw" "$LB" --config "$W/a/lifeboat.toml" restore latest --source pg --at "$T_A" --target "$W/a/restored" -q
PR=$(free_port)
start "$W/a/restored" "$PR" ""
wait_promoted "$PR"
lb_restore=$(secs "$t0" "$(now)")
n=$(psql_ "$PR" "SELECT count(*) FROM marker")
[[ $n == 1 ]] || { echo "lifeboat: restored $n markers, expected 1" >&2; exit 1; }
pg "$BIN/pg_ctl" -D "$W/a/restored" -m fast stop >/dev/null

# wal-push of 16 MiB segments into a scratch repository, as the archiver runs it.
pg "$LB" --password-file "$W/user-pw" --repo "$W/a/scratch" init >/dev/null
pg LIFEBOAT_NEW_PASSWORD_FILE="$W/pw" "$LB" --password-file "$W/user-pw" --repo "$W/a/scratch" key add --kdf-n "$KDF_N" >/dev/null
mapfile -t segs < <(ls "$W/a/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -9)
# Timed inside one shell as the postgres user, as the archiver runs it (runuser's own start,
# ~10 ms, is not wal-push's).
mapfile -t pushes < <(pg LB="$LB" W="$W" bash -c '
  for s in "$@"; do
    t0=$(date +%s%N)
    "$LB" --repo "$W/a/scratch" wal-push --source pg "$W/a/data/pg_wal/$s" >/dev/null
    echo $(( ($(date +%s%N) - t0) / 1000000 ))
  done' _ "${segs[@]}")
push_ms=$(printf '%s\n' "${pushes[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
pg "$BIN/pg_ctl" -D "$W/a/data" -m fast stop >/dev/null

# ---- pgBackRest ----
mkdir -p "$W/b/repo" "$W/b/log" && chown -R postgres "$W/b"
pg "$BIN/initdb" -D "$W/b/data" -A trust -U postgres >/dev/null
PB=$(free_port)
cat >"$W/b/pgbackrest.conf" <<EOF
[global]
repo1-path=$W/b/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$PASS
log-path=$W/b/log
lock-path=$W/b/log
repo1-retention-full=2
start-fast=y
log-level-console=warn

[pg]
pg1-path=$W/b/data
pg1-port=$PB
pg1-socket-path=$W
EOF
chown postgres "$W/b/pgbackrest.conf"
BR="pgbackrest --config=$W/b/pgbackrest.conf --stanza=pg"
start "$W/b/data" "$PB" "-c wal_level=replica -c archive_mode=on -c archive_command='$BR archive-push %p'"
pg pgbench -i -s "$SCALE" -q -h "$W" -p "$PB" -U postgres postgres >/dev/null 2>&1
pg $BR stanza-create >/dev/null
t0=$(now)
pg $BR --type=full backup
br_backup=$(secs "$t0" "$(now)")
br_size=$(du -sb "$W/b/repo" | cut -f1)
T_B=$(traffic "$PB")
wait_archived "$PB"
br_archive=$(du -sb "$W/b/repo" | cut -f1)
pg "$BIN/pg_ctl" -D "$W/b/data" -m fast stop >/dev/null
mkdir -p "$W/b/restored" && chown postgres "$W/b/restored" && chmod 700 "$W/b/restored"
t0=$(now)
T_B=${T_B/T/ }
pg $BR --pg1-path="$W/b/restored" --type=time "--target=${T_B%Z}+00" --target-action=promote restore
PR=$(free_port)
start "$W/b/restored" "$PR" "-c archive_mode=off"
wait_promoted "$PR"
br_restore=$(secs "$t0" "$(now)")
n=$(psql_ "$PR" "SELECT count(*) FROM marker")
[[ $n == 1 ]] || { echo "pgbackrest: restored $n markers, expected 1" >&2; exit 1; }

mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "| pgbench -s $SCALE | Lifeboat | pgBackRest | ratio |"
echo "|---|---:|---:|---:|"
echo "| base backup (s) | $lb_backup | $br_backup | $(ratio "$lb_backup" "$br_backup")× |"
echo "| repository after it (MiB) | $(mb "$lb_size") | $(mb "$br_size") | $(ratio "$lb_size" "$br_size")× |"
echo "| repository with ${SECS}s of WAL (MiB) | $(mb "$lb_archive") | $(mb "$br_archive") | $(ratio "$lb_archive" "$br_archive")× |"
echo "| restore to a time, start, replay until promoted (s) | $lb_restore | $br_restore | $(ratio "$lb_restore" "$br_restore")× |"
echo "| \`wal-push\` of a 16 MiB segment (ms, median of ${#pushes[@]}) | $push_ms | | |"
