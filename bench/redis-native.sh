#!/usr/bin/env bash
# Redis with 1,000,000 keys (`DEBUG POPULATE`) on a throwaway redis-server: `lifeboat backup` and
# `restore` in rdb and logical mode beside `redis-cli --rdb`, a copy of the server's own dump.rdb
# after BGSAVE and loading an RDB at start-up, medians of 3 in one run, with the repositories'
# size against the RDB (plain and with zstd -3) (issue 15). See the docstring of
# bench/redis-native.py.
#
#   bench/redis-native.sh
#
#   LIFEBOAT_BIN=PATH   binary (default target/release/lifeboat)
#   KEYS=1000000        keys (DEBUG POPULATE: key:N = value:N)
#   RUNS=3              runs per tool, alternating
#   BENCH_WORK=DIR      where the scratch directory goes (default /tmp); it is removed at the end
# Needs redis-server and redis-cli (Redis 7; Debian redis-server, redis-tools) and zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LIFEBOAT_BIN:-target/release/lifeboat}
[[ -x $bin ]] || { echo "bench/redis-native.sh: $bin missing: cargo build --release -p lifeboat" >&2; exit 1; }
for t in redis-server redis-cli zstd cp /usr/bin/time; do
  command -v $t >/dev/null || { echo "bench/redis-native.sh: $t missing" >&2; exit 1; }
done
exec python3 bench/redis-native.py
