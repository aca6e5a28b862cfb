#!/usr/bin/env bash
# How much does the repository grow when a pgbench database (scale 10: 1,000,000 accounts) is
# backed up again after pgbench has run? Three ways to dump, each into its own repository:
#   custom     pg_dump -Fc --compress=0 (Lifeboat's default: the repository compresses)
#   custom-z6  pg_dump -Fc --compress=6 (what pg_dump does by itself)
#   directory  pg_dump -Fd --compress=0 --jobs=2
# Steps: pgbench -i -s 10; first backup; 1,000 pgbench transactions; second backup; pgbench for
# SECONDS (default 30); third backup; then a timed restore (--verify) of each.
# pgbench's own rows are extremely regular (filler = 84 blanks, balances 0), which flatters every
# compressor; FILLER=md5 replaces the filler with hex text (md5 of the id) before the first
# backup, which behaves much more like real rows.
# Usage: [FILLER=md5] bench/pgbench-dedup.sh [SECONDS]
#   PostgreSQL from PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432 postgres, trust or ~/.pgpass);
#   uses target/release/lifeboat (LIFEBOAT_BIN to override).
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${LIFEBOAT_BIN:-target/release/lifeboat}
[ -x "$LB" ] || cargo build --release -p lifeboat
LB=$(realpath "$LB")
SECONDS_RUN=${1:-30}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=lb_pgbench_dedup_$$
W=$(mktemp -d /tmp/lifeboat-pgbench-dedup.XXXX)
VARIANTS=${VARIANTS:-"custom custom-z6 directory"}
cleanup() {
  rm -rf "$W"
  for v in $VARIANTS; do dropdb --if-exists "${v/-/_}_r$$" 2>/dev/null || true; done
  dropdb --if-exists "$DB" 2>/dev/null || true
}
trap cleanup EXIT
export LIFEBOAT_PASSWORD=bench

createdb "$DB"
/usr/bin/time -f "pgbench -i -s 10: %e s" pgbench -i -s 10 -q "$DB" 2>&1 | grep -v "^done\|vacuum\|generating\|creating\|set primary" || true
for v in $VARIANTS; do
  case $v in
    custom) extra='compress = 0' ;;
    custom-z6) extra='compress = 6' ;;
    directory) extra="format = \"directory\"
jobs = 2
tmp_dir = \"$W\"" ;;
  esac
  cat > "$W/$v.toml" <<TOML
[repository]
url = "$W/repo-$v"
[[source]]
name = "$v"
kind = "postgres"
database = "$DB"
$extra
TOML
  LIFEBOAT_CONFIG="$W/$v.toml" "$LB" init -q
done
size() { du -sb "$W/repo-$1" | cut -f1; }
declare -A S
backup_all() { # $1 = step name
  for v in $VARIANTS; do
    /usr/bin/time -f "  $v: backup %e s" env LIFEBOAT_CONFIG="$W/$v.toml" "$LB" backup "$v" -q
    S[$v,$1]=$(size "$v")
  done
}
if [ "${FILLER:-}" = md5 ]; then
  psql -Xq -d "$DB" -c "UPDATE pgbench_accounts SET filler = md5(aid::text) || md5((-aid)::text) || left(md5((3 * aid)::text), 20)" \
    -c "VACUUM FULL ANALYZE pgbench_accounts"
fi
echo "database: $(psql -XAtc "SELECT pg_size_pretty(pg_database_size('$DB'))" -d "$DB")"
echo "first backup"
backup_all 0
echo "1,000 transactions: $(pgbench -n -t 500 -c 2 "$DB" 2>&1 | grep -o 'number of transactions actually processed: [0-9/]*')"
echo "second backup"
backup_all 1
echo "pgbench -T $SECONDS_RUN -c 2: $(pgbench -n -T "$SECONDS_RUN" -c 2 "$DB" 2>&1 | grep -o 'number of transactions actually processed: [0-9]*')"
echo "third backup"
backup_all 2
echo "restore (--verify: row counts checked)"
for v in $VARIANTS; do
  /usr/bin/time -f "  $v: restore %e s" env LIFEBOAT_CONFIG="$W/$v.toml" "$LB" restore latest --source "$v" \
    --target "${v/-/_}_r$$" --verify -q
  dropdb "${v/-/_}_r$$"
done
echo
echo "| dump | first backup (full copy) | after 1,000 transactions | after pgbench -T $SECONDS_RUN |"
echo "|---|---|---|---|"
for v in $VARIANTS; do
  s0=${S[$v,0]} s1=${S[$v,1]} s2=${S[$v,2]}
  printf '| %s | %s bytes | +%s bytes (%s %%) | +%s bytes (%s %%) |\n' "$v" "$s0" \
    "$((s1 - s0))" "$((100 * (s1 - s0) / s0))" "$((s2 - s1))" "$((100 * (s2 - s1) / s0))"
done
