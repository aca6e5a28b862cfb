#!/usr/bin/env bash
# Redis with 1,000,000 keys (`DEBUG POPULATE 1000000`: key:N = value:N) on a throwaway
# redis-server: backup and restore times and repository sizes in logical and RDB mode, and the
# growth of a second backup after 1 % of the keys changed. `redis-cli --rdb` is timed as the
# baseline of a bare RDB transfer.
# Usage: bench/redis-1m.sh   (needs redis-server, redis-cli, python3; uses target/release/lifeboat)
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${LIFEBOAT_BIN:-target/release/lifeboat}
[ -x "$LB" ] || cargo build --release -p lifeboat
LB=$(realpath "$LB")
W=$(mktemp -d /tmp/lifeboat-redis-1m.XXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P=$(free_port) P2=$(free_port)
start() { # port dir
  mkdir -p "$2"
  redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --dir "$2" --enable-debug-command yes \
    --repl-diskless-sync yes --repl-diskless-sync-delay 0 --daemonize yes --pidfile "$2/redis.pid" --logfile "$2/log"
  for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server on $1 did not start" >&2; exit 1
}
cleanup() {
  for d in "$W/a" "$W/b"; do [ -f "$d/redis.pid" ] && kill "$(cat "$d/redis.pid")" 2>/dev/null; done
  sleep 0.3; rm -rf "$W"
}
trap cleanup EXIT
export LIFEBOAT_PASSWORD=bench
start "$P" "$W/a"
redis-cli -p "$P" DEBUG POPULATE 1000000 >/dev/null
echo "server: $(redis-cli -p "$P" info memory | grep '^used_memory_human' | tr -d '\r'), $(redis-cli -p "$P" dbsize) keys"
for m in logical rdb; do
  printf '[repository]\nurl = "%s"\n[[source]]\nname = "%s"\nkind = "redis"\nport = %s\nmode = "%s"\n' \
    "$W/repo-$m" "$m" "$P" "$m" > "$W/$m.toml"
  LIFEBOAT_CONFIG="$W/$m.toml" "$LB" init -q
done
size() { du -sb "$W/repo-$1" | cut -f1; }
/usr/bin/time -f "redis-cli --rdb (baseline): %e s" sh -c "redis-cli -p $P --rdb $W/plain.rdb >/dev/null 2>&1"
echo "RDB size: $(stat -c %s "$W/plain.rdb") bytes"
declare -A S
for m in logical rdb; do
  /usr/bin/time -f "$m: first backup %e s" env LIFEBOAT_CONFIG="$W/$m.toml" "$LB" backup "$m" -q
  S[$m,0]=$(size "$m")
done
python3 -c 'import random; random.seed(1); print("\n".join(f"SET key:{i} changed-{i}" for i in random.sample(range(1000000), 10000)))' \
  | redis-cli -p "$P" >/dev/null
for m in logical rdb; do
  /usr/bin/time -f "$m: second backup (1 %% of keys changed) %e s" env LIFEBOAT_CONFIG="$W/$m.toml" "$LB" backup "$m" -q
  S[$m,1]=$(size "$m")
done
start "$P2" "$W/b"
/usr/bin/time -f "logical: restore into a running empty server, --verify %e s" env LIFEBOAT_CONFIG="$W/logical.toml" \
  "$LB" restore latest --source logical --target "redis://127.0.0.1:$P2" --verify -q
/usr/bin/time -f "rdb: restore to a file, --verify (throwaway server loads it) %e s" env LIFEBOAT_CONFIG="$W/rdb.toml" \
  "$LB" restore latest --source rdb --target "$W/restored/dump.rdb" --verify -q
/usr/bin/time -f "rdb: restore to a file without --verify %e s" env LIFEBOAT_CONFIG="$W/rdb.toml" \
  "$LB" restore latest --source rdb --target "$W/restored/dump.rdb" --overwrite -q
echo
echo "| mode | repository after first backup | growth after 1 % of keys changed |"
echo "|---|---|---|"
for m in logical rdb; do
  printf '| %s | %s bytes | +%s bytes (%s %%) |\n' "$m" "${S[$m,0]}" "$((S[$m,1] - S[$m,0]))" \
    "$((100 * (S[$m,1] - S[$m,0]) / S[$m,0]))"
done
