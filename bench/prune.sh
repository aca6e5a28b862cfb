#!/usr/bin/env bash
# Forget + prune on a repository with many snapshots: Lifeboat vs restic on the SAME repository.
#
#   bench/prune.sh
#
# Builds one repository with N snapshots (default 1000) of a small, slowly changing tree (every
# snapshot adds one new file and rewrites one file, so old snapshots own data that forget frees),
# copies it twice, then times `restic forget --keep-last K --prune` on one copy and
# `lifeboat forget --keep-last K --prune` on the other (GNU time: wall, CPU, peak RSS), and checks
# both results with `restic check --read-data`.
#
# Knobs: SNAPSHOTS=1000 KEEP=100 FILES=400 (files in the tree) LIFEBOAT_BIN=path BENCH_WORK=dir
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-$BENCH_DIR/work/prune}
SNAPSHOTS=${SNAPSHOTS:-1000}
KEEP=${KEEP:-100}
FILES=${FILES:-400}
LIFEBOAT=${LIFEBOAT_BIN:-$ROOT/target/release/lifeboat}
[[ -x $LIFEBOAT ]] || { echo "build first: cargo build --release -p lifeboat (or set LIFEBOAT_BIN)" >&2; exit 1; }
command -v restic >/dev/null || { echo "restic is needed (apt-get install restic)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "GNU time is needed (apt-get install time)" >&2; exit 1; }

export LIFEBOAT_PASSWORD=lifeboat-bench-password RESTIC_PASSWORD=lifeboat-bench-password LC_ALL=C
unset LIFEBOAT_REPOSITORY RESTIC_REPOSITORY LIFEBOAT_CONFIG
rm -rf "$WORK" && mkdir -p "$WORK/src"
SRC=$WORK/src BASE=$WORK/base

echo "==> building a repository with $SNAPSHOTS snapshots of a $FILES-file tree" >&2
for i in $(seq 1 "$FILES"); do head -c $((2000 + (i * 997) % 60000)) /dev/urandom >"$SRC/f$i"; done
"$LIFEBOAT" --repo "$BASE" init >/dev/null
start=$(date +%s)
for n in $(seq 1 "$SNAPSHOTS"); do
    head -c 20000 /dev/urandom >"$SRC/new-$n"                       # data only this and later snapshots have
    head -c 30000 /dev/urandom >"$SRC/f$(((n % FILES) + 1))"        # data only this snapshot has
    [[ $n -gt 5 ]] && rm -f "$SRC/new-$((n - 5))"                   # ... until it is deleted again
    "$LIFEBOAT" --repo "$BASE" -q backup "$SRC" >/dev/null
done
echo "    $SNAPSHOTS backups in $(($(date +%s) - start)) s; repository $(du -sh "$BASE" | cut -f1)" >&2

measure() { # name, repo copy, command...
    local name=$1 repo=$2
    shift 2
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        { cat "$WORK/$name.err" >&2; exit 1; }
    read -r wall user sys rss <"$WORK/$name.time"
    printf '%s %s %s %s %s\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" "$((rss / 1024))" "$(du -sb "$repo" | cut -f1)"
}

cp -a "$BASE" "$WORK/restic" && cp -a "$BASE" "$WORK/lifeboat"
before=$(du -sb "$BASE" | cut -f1)
R=$(measure restic "$WORK/restic" restic --no-cache -r "$WORK/restic" forget --keep-last "$KEEP" --prune)
L=$(measure lifeboat "$WORK/lifeboat" "$LIFEBOAT" --repo "$WORK/lifeboat" forget --keep-last "$KEEP" --prune)
restic --no-cache -r "$WORK/restic" check --read-data >/dev/null 2>&1 || { echo "restic's result fails restic check" >&2; exit 1; }
restic --no-cache -r "$WORK/lifeboat" check --read-data >/dev/null 2>&1 || { echo "Lifeboat's result fails restic check" >&2; exit 1; }
"$LIFEBOAT" --repo "$WORK/lifeboat" check --read-data >/dev/null || { echo "Lifeboat's result fails lifeboat check" >&2; exit 1; }

read -r _ rw rc rm rs <<<"$R"
read -r _ lw lc lm ls <<<"$L"
mib() { echo "scale=1; $1 / 1048576" | bc; }
echo
echo "forget --keep-last $KEEP --prune of $SNAPSHOTS snapshots (repository $(mib "$before") MiB before); both results pass restic check --read-data"
echo
echo "| | wall s | CPU s | peak RSS MiB | repository after MiB |"
echo "|---|---|---|---|---|"
echo "| restic $(restic version | awk '{print $2}') | $rw | $rc | $rm | $(mib "$rs") |"
echo "| lifeboat | $lw | $lc | $lm | $(mib "$ls") |"
echo "| ratio lifeboat/restic | $(echo "scale=2; $lw / $rw" | bc) | $(echo "scale=2; $lc / $rc" | bc) | $(echo "scale=2; $lm / $rm" | bc) | $(echo "scale=2; $ls / $rs" | bc) |"
