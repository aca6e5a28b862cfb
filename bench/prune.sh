#!/usr/bin/env bash
# Many snapshots: Lifeboat vs restic on the SAME repository.
#
#   bench/prune.sh                       # 1,000 snapshots
#   SNAPSHOTS=10000 REUSE=1 bench/prune.sh   # grow the same repository to 10,000 and measure again
#
# Builds one repository with N snapshots (default 1000) of a small, slowly changing tree (every
# snapshot adds one new file and rewrites one file, so old snapshots own data that forget frees),
# copies it once per tool, then times on each copy, in this order (GNU time: wall, CPU, peak RSS):
#   snapshots (cold cache), snapshots (warm cache), an unchanged backup of the tree (the parent is
#   found among N snapshots), check (metadata), forget --keep-last K --prune;
# and checks both results with `restic check --read-data` and `lifeboat check --read-data`.
# Each tool has a cache directory of its own, empty at the start (restic --cache-dir, Lifeboat
# LIFEBOAT_CACHE_DIR), so the two start equal.
#
# Knobs: SNAPSHOTS=1000 KEEP=100 FILES=400 (files in the tree) LIFEBOAT_BIN=path BENCH_WORK=dir
#        REUSE=1 (keep a repository an earlier run built and add snapshots to reach SNAPSHOTS)
#        BUILD_ONLY=1 (build the repository, measure nothing: build while the machine is busy,
#        measure with REUSE=1 when it is quiet)
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
SRC=$WORK/src BASE=$WORK/base
export LIFEBOAT_CACHE_DIR=$WORK/cache-build
have=0
if [[ ${REUSE:-0} == 1 && -f $WORK/base.count ]]; then
    have=$(cat "$WORK/base.count")
    rm -rf "$WORK/restic" "$WORK/lifeboat" "$WORK"/cache-restic "$WORK"/cache-lifeboat
else
    rm -rf "$WORK" && mkdir -p "$SRC"
    for i in $(seq 1 "$FILES"); do head -c $((2000 + (i * 997) % 60000)) /dev/urandom >"$SRC/f$i"; done
    "$LIFEBOAT" --repo "$BASE" init >/dev/null
fi

echo "==> building a repository with $SNAPSHOTS snapshots of a $FILES-file tree ($have there)" >&2
start=$(date +%s)
for n in $(seq $((have + 1)) "$SNAPSHOTS"); do
    head -c 20000 /dev/urandom >"$SRC/new-$n"                       # data only this and later snapshots have
    head -c 30000 /dev/urandom >"$SRC/f$(((n % FILES) + 1))"        # data only this snapshot has
    [[ $n -gt 5 ]] && rm -f "$SRC/new-$((n - 5))"                   # ... until it is deleted again
    # --force: no parent, so no listing of every snapshot per backup (that made building 10,000
    # snapshots quadratic); the unchanged tree still deduplicates.
    "$LIFEBOAT" --repo "$BASE" -q backup --force "$SRC" >/dev/null
    echo "$n" >"$WORK/base.count"
done
echo "    $((SNAPSHOTS - have)) backups in $(($(date +%s) - start)) s; repository $(du -sh "$BASE" | cut -f1)" >&2
[[ ${BUILD_ONLY:-0} == 1 ]] && exit 0

measure() { # file name, repo copy, command...  → wall CPU RSS-MiB repo-bytes
    local name=$1 repo=$2
    shift 2
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        { cat "$WORK/$name.err" >&2; exit 1; }
    read -r wall user sys rss <"$WORK/$name.time"
    printf '%s %s %s %s\n' "$wall" "$(echo "$user + $sys" | bc)" "$((rss / 1024))" "$(du -sb "$repo" | cut -f1)"
}

cp -a "$BASE" "$WORK/restic" && cp -a "$BASE" "$WORK/lifeboat"
before=$(du -sb "$BASE" | cut -f1)
RC=(--cache-dir "$WORK/cache-restic")
export LIFEBOAT_CACHE_DIR=$WORK/cache-lifeboat
declare -A R L
step() { # label, restic args..., --, lifeboat args...
    local label=$1 r=() l=()
    shift
    while [[ $1 != -- ]]; do r+=("$1"); shift; done
    shift
    l=("$@")
    local file=${label//[^a-z]/-}
    R[$label]=$(measure "restic-$file" "$WORK/restic" restic "${RC[@]}" -r "$WORK/restic" "${r[@]}")
    L[$label]=$(measure "lifeboat-$file" "$WORK/lifeboat" "$LIFEBOAT" --repo "$WORK/lifeboat" "${l[@]}")
}
step "snapshots (cold cache)" snapshots --json -- snapshots --json
step "snapshots (warm cache)" snapshots --json -- snapshots --json
step "unchanged backup" backup "$SRC" -- backup "$SRC"
step "check" check -- check
step "forget --keep-last $KEEP --prune" forget --keep-last "$KEEP" --prune -- forget --keep-last "$KEEP" --prune
restic --no-cache -r "$WORK/restic" check --read-data >/dev/null 2>&1 || { echo "restic's result fails restic check" >&2; exit 1; }
restic --no-cache -r "$WORK/lifeboat" check --read-data >/dev/null 2>&1 || { echo "Lifeboat's result fails restic check" >&2; exit 1; }
"$LIFEBOAT" --repo "$WORK/lifeboat" check --read-data >/dev/null || { echo "Lifeboat's result fails lifeboat check" >&2; exit 1; }

mib() { echo "scale=1; $1 / 1048576" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
echo
echo "$SNAPSHOTS snapshots of a $FILES-file tree (repository $(mib "$before") MiB); restic $(restic version | awk '{print $2}'); both results pass restic check --read-data"
echo
echo "| step | restic: wall s, CPU s, RSS MiB | lifeboat: wall s, CPU s, RSS MiB | ratio wall, RSS |"
echo "|---|---|---|---|"
for label in "snapshots (cold cache)" "snapshots (warm cache)" "unchanged backup" "check" "forget --keep-last $KEEP --prune"; do
    read -r rw rc rm rs <<<"${R[$label]}"
    read -r lw lc lm ls <<<"${L[$label]}"
    echo "| $label | $rw, $rc, $rm | $lw, $lc, $lm | $(ratio "$lw" "$rw")×, $(ratio "$lm" "$rm")× |"
done
echo
echo "repository after: restic $(mib "$rs") MiB, lifeboat $(mib "$ls") MiB"
