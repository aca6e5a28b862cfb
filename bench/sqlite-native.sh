#!/usr/bin/env bash
# A SQLite database of about 1 GB: `lifeboat backup` and `restore` beside `sqlite3 .backup`,
# `VACUUM INTO` and `.restore`, medians of 3 in one run, with the repository's size against the
# `.backup` copy compressed with zstd (issue 15). See the docstring of bench/sqlite-native.py.
#
#   bench/sqlite-native.sh
#
#   LIFEBOAT_BIN=PATH   binary (default target/release/lifeboat)
#   SIZE_MB=1000        database size
#   RUNS=3              runs per tool, alternating
#   BENCH_WORK=DIR      scratch (default: a new directory in /tmp, removed at the end)
# Needs the sqlite3 shell and zstd (Debian sqlite3, zstd).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LIFEBOAT_BIN:-target/release/lifeboat}
[[ -x $bin ]] || { echo "bench/sqlite-native.sh: $bin missing: cargo build --release -p lifeboat" >&2; exit 1; }
for t in sqlite3 zstd; do
  command -v $t >/dev/null || { echo "bench/sqlite-native.sh: $t missing (apt-get install $t)" >&2; exit 1; }
done
exec python3 bench/sqlite-native.py
