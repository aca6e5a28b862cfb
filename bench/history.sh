#!/usr/bin/env bash
# A repository with a long history (issue 15, point 1): N backups of one small source made through
# a config file, as a schedule makes them (each with its snapshot, index file, start and end run
# records and audit record), then what a daemon or an operator repeats against that history, timed
# round after round with bench/alternate.py: an unchanged backup and `health` (what the daemon's
# /api/v1/status and a monitoring check call).
#
#   N=2000 bench/history.sh
#   N=2000 BEFORE_BIN=/tmp/lifeboat-old bench/history.sh     # two builds side by side
#
# Knobs: N (backups, default 2000), LIFEBOAT_BIN (default target/release/lifeboat), BEFORE_BIN (a
#        second build, timed first in each round), RUNS (rounds, default 11), BENCH_WORK (scratch
#        directory, default bench/work/history), REUSE=1 (keep the repository of an earlier run
#        and grow it to N backups).
# The repository uses the default key derivation, as users' do. Every command of a step appends
# to the same repository: later rounds see one more backup than earlier ones.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-$BENCH_DIR/work/history}
N=${N:-2000}
LIFEBOAT=${LIFEBOAT_BIN:-$ROOT/target/release/lifeboat}
[[ -x $LIFEBOAT ]] || { echo "bench/history.sh: $LIFEBOAT missing: cargo build --release -p lifeboat" >&2; exit 1; }
[[ -z ${BEFORE_BIN:-} || -x $BEFORE_BIN ]] || { echo "bench/history.sh: BEFORE_BIN $BEFORE_BIN is not executable" >&2; exit 1; }
export LIFEBOAT_PASSWORD=lifeboat-bench-password LC_ALL=C
unset LIFEBOAT_REPOSITORY LIFEBOAT_CONFIG LIFEBOAT_PASSWORD_FILE LIFEBOAT_PASSWORD_COMMAND
export XDG_CACHE_HOME=$WORK/cache

if [[ ${REUSE:-0} != 1 ]]; then
    rm -rf "$WORK"
fi
mkdir -p "$WORK/data"
CFG=$WORK/lifeboat.toml
cat >"$CFG" <<EOF
[repository]
url = "$WORK/repo"

[[source]]
name = "app"
kind = "files"
path = "$WORK/data"
rpo = "1h"
EOF
[[ -d $WORK/repo ]] || "$LIFEBOAT" --config "$CFG" init -q
for i in 1 2 3 4 5 6 7 8; do
    [[ -f $WORK/data/f$i ]] || head -c 200000 /dev/urandom >"$WORK/data/f$i"
done
have=$(find "$WORK/repo/snapshots" -type f | wc -l)
echo "==> $have backups in the repository; making $((N > have ? N - have : 0)) more" >&2
t0=$(date +%s)
for ((i = have; i < N; i++)); do
    echo "$i" >"$WORK/data/counter"
    "$LIFEBOAT" --config "$CFG" backup app -q
done
echo "    $(($(date +%s) - t0)) s" >&2
count() { find "$WORK/repo/$1" -type f | wc -l; }
echo "==> repository: $(count snapshots) snapshots, $(count index) index files, $(count lifeboat) files under lifeboat/ ($(count lifeboat/runs) run records, $(count lifeboat/audit) audit records)" >&2
echo "    binary: $LIFEBOAT${BEFORE_BIN:+, before: $BEFORE_BIN}" >&2

# health exits 1 (warning: nothing verified) or 2; 3 and above are errors.
health_ok='r=0; "$0" --config "$1" health --json >/dev/null || r=$?; [ "$r" -le 2 ]'
for step in backup health; do
    args=()
    for pair in ${BEFORE_BIN:+"before=$BEFORE_BIN"} "now=$LIFEBOAT"; do
        name=${pair%%=*} bin=${pair#*=}
        case $step in
        backup) args+=("$name=$bin --config $CFG backup app -q") ;;
        health) args+=("$name=sh -c '$health_ok' $bin $CFG") ;;
        esac
    done
    echo "==> $step" >&2
    "$BENCH_DIR/alternate.py" "${args[@]}"
done
