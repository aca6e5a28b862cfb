#!/usr/bin/env bash
# How time and memory grow with the number of files (issue 15, point 1): Lifeboat beside restic
# (and rustic when installed) on generated trees of small files, in one run.
#
#   bench/scale.sh                 # FILES="100000 1000000"
#   FILES="100000 1000000 10000000" bench/scale.sh
#
# For each size N it generates a tree of N files (100 per directory, 1,000 directories per
# level; 64-1,087 bytes of random data each, so every file is its own blob: N data blobs and a
# tree per directory), then for each tool, in a fresh repository: first backup, unchanged
# re-backup, `snapshots`, full restore, check (metadata only: `check` without reading data),
# forget --keep-last 1 --prune.
# Each step is timed with GNU time (wall, CPU, peak RSS). The tree is deleted after its size is
# done (it is generated, not stored). It prints one markdown table per size and, at the end,
# the peak RSS per indexed blob between the smallest and the largest size.
#
# Knobs: FILES="100000 1000000" TOOLS="lifeboat restic rustic" LIFEBOAT_BIN=path
#        BENCH_WORK=dir (needs ~N x 4 KiB for the tree plus the same again during a restore,
#        and 2.1 x N free inodes: a default mkfs.ext4 of 30 GiB has 1.9 million, too few for
#        N = 1,000,000; `mkfs.ext4 -N`)
#        STEPS="backup1 backup2 snapshots restore check prune"
#        DROP_CACHES=1 (as root: empty the page, inode and dentry caches before each tool's
#        first step, so that every tool starts from the same cold state)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-$BENCH_DIR/work/scale}
FILES=${FILES:-100000 1000000}
TOOLS=${TOOLS:-lifeboat restic rustic}
STEPS=${STEPS:-backup1 backup2 snapshots restore check prune}
LIFEBOAT=${LIFEBOAT_BIN:-$ROOT/target/release/lifeboat}
[[ -x $LIFEBOAT ]] || { echo "bench/scale.sh: $LIFEBOAT missing: cargo build --release -p lifeboat" >&2; exit 1; }
if [[ ${DROP_CACHES:-0} == 1 && ! -w /proc/sys/vm/drop_caches ]]; then
    echo "bench/scale.sh: DROP_CACHES=1 needs root (it writes /proc/sys/vm/drop_caches)" >&2; exit 1
fi
[[ -x /usr/bin/time ]] || { echo "bench/scale.sh: GNU time is needed (apt-get install time)" >&2; exit 1; }
export LIFEBOAT_PASSWORD=lifeboat-bench-password RESTIC_PASSWORD=lifeboat-bench-password RUSTIC_PASSWORD=lifeboat-bench-password LC_ALL=C
unset LIFEBOAT_REPOSITORY RESTIC_REPOSITORY LIFEBOAT_CONFIG
mkdir -p "$WORK"

# generate DIR N: N files of 64-1,087 random bytes, 100 per directory.
generate() {
    python3 - "$1" "$2" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = os.urandom(1 << 20)
per_dir, dirs_per_level = 100, 1000
for i in range(n):
    d = i // per_dir
    path = os.path.join(root, "l%d" % (d // dirs_per_level), "d%d" % (d % dirs_per_level))
    if i % per_dir == 0:
        os.makedirs(path, exist_ok=True)
    size = 64 + (i * 7919) % 1024
    off = (i * 104729) % ((1 << 20) - 2048)
    with open(os.path.join(path, "f%d" % (i % per_dir)), "wb") as f:
        # The file's number first: no two files have the same content.
        f.write(i.to_bytes(8, "little") + rnd[off:off + size])
PY
}

declare -A RES=()
step() { # TOOL N STEP CMD...
    local tool=$1 n=$2 name=$3
    shift 3
    sync
    if ! /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >"$WORK/$tool-$n-$name.log" 2>&1; then
        echo "bench/scale.sh: $tool $name (N=$n) failed:" >&2
        tail -5 "$WORK/$tool-$n-$name.log" >&2
        RES[$tool:$n:$name]="failed"
        return 0
    fi
    read -r w u s m <"$WORK/time"
    RES[$tool:$n:$name]=$(awk -v w="$w" -v u="$u" -v s="$s" -v m="$m" 'BEGIN {printf "%.2f s, %.1f CPU-s, %.0f MiB", w, u + s, m / 1024}')
    RES[$tool:$n:$name:rss]=$m
    echo "    $tool $name: ${RES[$tool:$n:$name]}" >&2
}

has() { [[ " $STEPS " == *" $1 "* ]]; }

for n in $FILES; do
    tree=$WORK/tree-$n
    rm -rf "$tree" "$WORK"/repo-* "$WORK"/restore-*
    echo "==> generating $n files" >&2
    t0=$(date +%s)
    generate "$tree" "$n"
    echo "    $(($(date +%s) - t0)) s; $(du -sh "$tree" | cut -f1)" >&2
    for tool in $TOOLS; do
        repo=$WORK/repo-$tool target=$WORK/restore-$tool
        case $tool in
        lifeboat) cmd=("$LIFEBOAT" --repo "$repo" --cache-dir "$WORK/cache-lifeboat") ;;
        restic) command -v restic >/dev/null || { echo "    (restic not installed)" >&2; continue; }
            cmd=(restic --repo "$repo" --cache-dir "$WORK/cache-restic" --compression auto) ;;
        rustic) command -v rustic >/dev/null || { echo "    (rustic not installed: cargo install rustic-rs --locked)" >&2; continue; }
            cmd=(rustic --repository "$repo" --cache-dir "$WORK/cache-rustic") ;;
        esac
        rm -rf "$WORK/cache-$tool"
        if [[ ${DROP_CACHES:-0} == 1 ]]; then
            sync
            echo 3 >/proc/sys/vm/drop_caches
        fi
        echo "==> $tool, $n files" >&2
        case $tool in
        restic) "${cmd[@]}" init --repository-version 2 >/dev/null ;;
        *) "${cmd[@]}" init >/dev/null 2>&1 ;;
        esac
        has backup1 && step "$tool" "$n" backup1 "${cmd[@]}" backup "$tree"
        has backup2 && step "$tool" "$n" backup2 "${cmd[@]}" backup "$tree"
        has snapshots && step "$tool" "$n" snapshots "${cmd[@]}" snapshots
        if has restore; then
            case $tool in
            rustic) step "$tool" "$n" restore "${cmd[@]}" restore latest "$target" ;;
            *) step "$tool" "$n" restore "${cmd[@]}" restore latest --target "$target" ;;
            esac
            rm -rf "$target"
        fi
        has check && step "$tool" "$n" check "${cmd[@]}" check
        # forget + prune: the two snapshots share every blob, so this times the mark phase over
        # the whole repository (every tree read, every blob looked up) and deletes nothing.
        has prune && step "$tool" "$n" prune "${cmd[@]}" forget --keep-last 1 --prune
        RES[$tool:$n:size]=$(du -sh "$repo" | cut -f1)
        rm -rf "$repo"
    done
    rm -rf "$tree"
    echo
    echo "### $n files"
    echo
    printf '| step |'; for tool in $TOOLS; do printf ' %s |' "$tool"; done; echo
    printf '|---|'; for tool in $TOOLS; do printf -- '---|'; done; echo
    for s in $STEPS size; do
        printf '| %s |' "$s"
        for tool in $TOOLS; do printf ' %s |' "${RES[$tool:$n:$s]:--}"; done
        echo
    done
done

# Peak RSS per indexed blob: the growth of the first backup's peak RSS between the smallest and
# the largest tree, per file (each file is one data blob; directories add 1 % in trees).
set -- $FILES
lo=$1 hi=${!#}
if [[ $lo != "$hi" ]]; then
    echo
    echo "Growth of peak RSS per file (= per data blob) from $lo to $hi files:"
    for tool in $TOOLS; do
        for s in backup1 backup2 restore check prune; do
            a=${RES[$tool:$lo:$s:rss]:-} b=${RES[$tool:$hi:$s:rss]:-}
            [[ -n $a && -n $b ]] || continue
            awk -v t="$tool" -v s="$s" -v a="$a" -v b="$b" -v lo="$lo" -v hi="$hi" \
                'BEGIN {printf "- %s %s: %.0f bytes per file\n", t, s, (b - a) * 1024 / (hi - lo)}'
        done
    done
fi
