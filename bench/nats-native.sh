#!/usr/bin/env bash
# A JetStream file stream of 1,000,000 messages (100–200 bytes) on a throwaway nats-server:
# `lifeboat backup` and `restore` beside the stream snapshot and restore API used directly
# (`$JS.API.STREAM.SNAPSHOT` to a file, `$JS.API.STREAM.RESTORE` from it), medians of 3 in one
# run, with the repository's size against the snapshot file (plain and with zstd -3) (issue 15).
# See the docstring of bench/nats-native.py.
#
#   bench/nats-native.sh
#
#   LIFEBOAT_BIN=PATH   binary (default target/release/lifeboat)
#   MSGS=1000000        messages in the stream
#   RUNS=3              runs per tool, alternating
#   BENCH_WORK=DIR      where the scratch directory goes (default /tmp); it is removed at the end
# Needs nats-server (2.9; Debian nats-server) and zstd. The machine's own nats-server is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LIFEBOAT_BIN:-target/release/lifeboat}
[[ -x $bin ]] || { echo "bench/nats-native.sh: $bin missing: cargo build --release -p lifeboat" >&2; exit 1; }
for t in nats-server zstd /usr/bin/time; do
  command -v $t >/dev/null || { echo "bench/nats-native.sh: $t missing" >&2; exit 1; }
done
exec python3 bench/nats-native.py
