#!/usr/bin/env bash
# Restore at disk speed (issue 15, point 5): a full `lifeboat restore` of a tree beside a plain
# `cp -a` of the same tree, on the same disk, alternating, median of REPEAT runs each.
#
#   bench/restore.sh [CORPUS_DIR]
#
# The corpus is backed up once into a fresh local repository. Then, REPEAT times: `cp -a CORPUS
# DST` and `lifeboat restore latest --target DST` (in alternating order, each into a new
# directory, with `sync` before each so a previous run's dirty pages are not written back inside
# the next run's time). Copies are deleted only at the end: ext4 skips inodes freed in the last
# minutes when it allocates new ones, so deleting 50,000 files between runs made the next run's
# file creation up to 3x slower (whichever tool came next). For the same reason, do not run it
# within minutes of deleting a big tree on the same file system. Each run is timed with GNU time (wall,
# user+sys CPU, peak RSS), and the first restore is compared with `diff -r` and its sparse files
# with `du`. The page cache is warm (the corpus and the repository are read once before);
# DROP=1 drops it before each run instead (root only).
#
# Knobs: CORPUS=dir (default: a copy of the Rust toolchain, as bench/run.sh) REPEAT=5 DROP=0
#        LIFEBOAT_BIN=path BENCH_WORK=dir
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-$BENCH_DIR/work/restore}
REPEAT=${REPEAT:-5}
DROP=${DROP:-0}
CORPUS=${1:-${CORPUS:-}}
LIFEBOAT=${LIFEBOAT_BIN:-$ROOT/target/release/lifeboat}
[[ -x $LIFEBOAT ]] || { echo "bench/restore.sh: $LIFEBOAT missing: cargo build --release -p lifeboat" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench/restore.sh: GNU time is needed (apt-get install time)" >&2; exit 1; }
if [[ -z $CORPUS ]]; then
    CORPUS=$(rustc --print sysroot 2>/dev/null) || { echo "bench/restore.sh: give a corpus directory" >&2; exit 1; }
fi
[[ -d $CORPUS ]] || { echo "bench/restore.sh: $CORPUS is not a directory" >&2; exit 1; }
CORPUS=$(cd "$CORPUS" && pwd -P)

export LIFEBOAT_PASSWORD=lifeboat-bench-password LC_ALL=C XDG_CACHE_HOME=$WORK/cache
unset LIFEBOAT_REPOSITORY LIFEBOAT_CONFIG
rm -rf "$WORK" && mkdir -p "$WORK"
REPO=$WORK/repo DST=$WORK/dst RUN=0

drop() {
    sync
    if [[ $DROP == 1 ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

echo "==> corpus $CORPUS: $(du -sh --apparent-size "$CORPUS" | cut -f1) in $(find "$CORPUS" -type f | wc -l) files" >&2
"$LIFEBOAT" --repo "$REPO" init >/dev/null
"$LIFEBOAT" --repo "$REPO" -q backup "$CORPUS" >/dev/null
# Warm both sides once (untimed), and check the restore is exact.
tar cf - "$CORPUS" "$REPO" 2>/dev/null | cat >/dev/null
"$LIFEBOAT" --repo "$REPO" -q restore latest --target "$DST" >/dev/null
diff -r --no-dereference "$CORPUS" "$DST$CORPUS" >/dev/null || { echo "bench/restore.sh: the restore differs from the corpus" >&2; exit 1; }
sparse_src=$(du -s "$CORPUS" | cut -f1) sparse_dst=$(du -s "$DST$CORPUS" | cut -f1)

declare -a CP_W CP_C CP_R LB_W LB_C LB_R
one() { # NAME CMD...: time one run into a new, empty $DST
    local name=$1
    shift
    RUN=$((RUN + 1))
    DST=$WORK/dst.$RUN
    drop
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >/dev/null
    read -r w u s m <"$WORK/time"
    local c
    c=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
    printf '    %-8s wall %6.2f s  cpu %6.2f s  rss %5d MiB\n' "$name" "$w" "$c" $((m / 1024)) >&2
    case $name in
    cp) CP_W+=("$w") CP_C+=("$c") CP_R+=("$m") ;;
    lifeboat) LB_W+=("$w") LB_C+=("$c") LB_R+=("$m") ;;
    esac
}
run_cp() { one cp cp -a "$CORPUS" "$WORK/dst.$((RUN + 1))"; }
run_lb() { one lifeboat "$LIFEBOAT" --repo "$REPO" -q restore latest --target "$WORK/dst.$((RUN + 1))"; }
for i in $(seq 1 "$REPEAT"); do
    echo "==> round $i of $REPEAT" >&2
    if ((i % 2)); then run_cp; run_lb; else run_lb; run_cp; fi
done
rm -rf "$WORK"/dst.*

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
cw=$(median "${CP_W[@]}") lw=$(median "${LB_W[@]}")
cc=$(median "${CP_C[@]}") lc=$(median "${LB_C[@]}")
cr=$(median "${CP_R[@]}") lr=$(median "${LB_R[@]}")
echo
echo "restore vs cp -a, median of $REPEAT (page cache $([[ $DROP == 1 ]] && echo dropped before each run || echo warm))"
echo
echo "| | cp -a | lifeboat restore | ratio |"
echo "|---|---:|---:|---:|"
awk -v a="$cw" -v b="$lw" 'BEGIN {printf "| wall (s) | %.2f | %.2f | **%.2f×** |\n", a, b, b / a}'
awk -v a="$cc" -v b="$lc" 'BEGIN {printf "| CPU (s) | %.2f | %.2f | %.2f× |\n", a, b, b / a}'
awk -v a="$cr" -v b="$lr" 'BEGIN {printf "| peak RSS (MiB) | %.1f | %.1f | |\n", a / 1024, b / 1024}'
echo
echo "all runs (wall s): cp ${CP_W[*]}; lifeboat ${LB_W[*]}"
echo "disk use of the tree (du -s, KiB): corpus $sparse_src, restored $sparse_dst"
