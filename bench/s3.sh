#!/usr/bin/env bash
# S3 throughput on loopback: Lifeboat backing up a directory to SeaweedFS (the test server,
# started by .ci/start-seaweedfs) and restoring it, beside Lifeboat on a local directory and
# restic on the same S3 server, in one run. Prints a markdown table (wall time, MiB/s of the
# corpus) and checks every restore with diff -r. See docs/benchmarks.md.
#
#   bench/s3.sh [DIR]        default DIR: the Rust toolchain's lib/ (~0.5 GB of real files)
#
#   LIFEBOAT_BIN=PATH        binary (default target/release/lifeboat)
#   BENCH_WORK=DIR           scratch (default bench/work/s3; git ignores bench/work)
#   BENCH_TOOLS="..."        subset of: lifeboat-s3 lifeboat-local restic-s3 small (default all four)
#   SMALL_FILES=20000        files of 1-8 KiB in the small-file restore comparison (tool "small")
#   SMALL_REPEAT=5           restores of each kind, alternating (medians compared)
#
# The metadata cache lives in BENCH_WORK/cache: the "--no-cache" rows show what it saves.
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=${1:-$(rustc --print sysroot)/lib}
bin=${LIFEBOAT_BIN:-target/release/lifeboat}
work=${BENCH_WORK:-bench/work/s3}
tools=${BENCH_TOOLS:-lifeboat-s3 lifeboat-local restic-s3 small}
[[ -x $bin ]] || { echo "bench/s3.sh: $bin missing: cargo build --release -p lifeboat" >&2; exit 1; }
bash .ci/start-seaweedfs

export AWS_ACCESS_KEY_ID=lifeboat-test-key AWS_SECRET_ACCESS_KEY=lifeboat-test-secret
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_SESSION_TOKEN
rm -rf "$work" && mkdir -p "$work"
printf 'bench\n' >"$work/password"
export XDG_CACHE_HOME=$work/cache
export LIFEBOAT_PASSWORD_FILE=$work/password RESTIC_PASSWORD_FILE=$work/password
run_id=bench-$(date +%s)-$$

bytes=$(du -sb "$corpus" | cut -f1)
files=$(find "$corpus" -type f | wc -l)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
echo "corpus: $corpus, $mib MiB in $files files; $(nproc) cores; $($bin --version); $(restic version | head -1)" >&2
# Same state for every step: the corpus in the page cache.
find "$corpus" -type f -print0 | xargs -0 -r cat >/dev/null

rows=()
timed() { # label, command...: runs it, records wall seconds and MiB/s
    local label=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$work/$(echo "$label" | tr ' /' '__').log" 2>&1 || {
        echo "bench/s3.sh: '$label' failed: $*" >&2; tail -5 "$work/$(echo "$label" | tr ' /' '__').log" >&2; exit 1; }
    t1=$(date +%s.%N)
    rows+=("$(awk -v l="$label" -v a="$t0" -v b="$t1" -v m="$mib" 'BEGIN { printf "| %s | %.2f | %.0f |", l, b - a, m / (b - a) }')")
}
same() { diff -r --no-dereference "$corpus" "$1$corpus" >/dev/null || { echo "bench/s3.sh: restore $1 differs" >&2; exit 1; }; }

for tool in $tools; do
    case $tool in
    lifeboat-s3)
        url=s3:http://127.0.0.1:8333/lifeboat-test/$run_id/lifeboat
        $bin -r "$url" init -q
        timed "lifeboat, S3: backup" $bin -r "$url" backup -q "$corpus"
        timed "lifeboat, S3: backup again (unchanged)" $bin -r "$url" backup -q "$corpus"
        timed "lifeboat, S3: backup again (unchanged), --no-cache" $bin -r "$url" --no-cache backup -q "$corpus"
        timed "lifeboat, S3: snapshots" $bin -r "$url" snapshots -q
        timed "lifeboat, S3: snapshots, --no-cache" $bin -r "$url" --no-cache snapshots -q
        timed "lifeboat, S3: ls latest" $bin -r "$url" ls latest
        timed "lifeboat, S3: ls latest, --no-cache" $bin -r "$url" --no-cache ls latest
        timed "lifeboat, S3: restore" $bin -r "$url" restore -q latest --target "$work/restore-lb-s3"
        same "$work/restore-lb-s3"
        timed "lifeboat, S3: check --read-data" $bin -r "$url" check -q --read-data
        ;;
    lifeboat-local)
        repo=$work/repo-local
        $bin -r "$repo" init -q
        timed "lifeboat, local dir: backup" $bin -r "$repo" backup -q "$corpus"
        timed "lifeboat, local dir: restore" $bin -r "$repo" restore -q latest --target "$work/restore-lb-local"
        same "$work/restore-lb-local"
        ;;
    restic-s3)
        url=s3:http://127.0.0.1:8333/lifeboat-test/$run_id/restic
        env -u AWS_CA_BUNDLE restic --no-cache -q -r "$url" init
        timed "restic 0.14, S3: backup" env -u AWS_CA_BUNDLE restic --no-cache -q -r "$url" backup "$corpus"
        timed "restic 0.14, S3: restore" env -u AWS_CA_BUNDLE restic --no-cache -q -r "$url" restore latest --target "$work/restore-restic-s3"
        same "$work/restore-restic-s3"
        ;;
    small)
        # Many small files: one S3 request per pack span against a local read.
        small=$(realpath -m "$work/small")
        mkdir -p "$small"
        for d in $(seq 1 200); do
            mkdir -p "$small/d$d"
            for f in $(seq 1 $((${SMALL_FILES:-20000} / 200))); do
                head -c $((1024 + (d * 7919 + f * 104729) % 7168)) /dev/urandom >"$small/d$d/f$f"
            done
        done
        url=s3:http://127.0.0.1:8333/lifeboat-test/$run_id/small
        $bin -r "$url" init -q && $bin -r "$url" backup -q "$small"
        $bin -r "$work/repo-small" init -q && $bin -r "$work/repo-small" backup -q "$small"
        saved=$corpus corpus=$small
        mib=$(awk -v b="$(du -sb "$small" | cut -f1)" 'BEGIN { printf "%.1f", b / 1048576 }')
        # Alternating (local, S3, S3, local, ...), SMALL_REPEAT runs each; medians compared.
        lw=() sw=()
        for i in $(seq 1 "${SMALL_REPEAT:-5}"); do
            order="local s3"; ((i % 2)) || order="s3 local"
            for where in $order; do
                if [[ $where == local ]]; then src_repo=$work/repo-small; else src_repo=$url; fi
                t0=$(date +%s.%N)
                $bin -r "$src_repo" restore -q latest --target "$work/restore-small-$where-$i" >/dev/null
                t1=$(date +%s.%N)
                w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
                if [[ $where == local ]]; then lw+=("$w"); else sw+=("$w"); fi
            done
        done
        same "$work/restore-small-s3-1"
        med() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
        lm=$(med "${lw[@]}") sm=$(med "${sw[@]}")
        rows+=("$(awk -v a="$lm" -v m="$mib" 'BEGIN { printf "| lifeboat, small files, local dir: restore (median) | %.2f | %.0f |", a, m / a }')")
        rows+=("$(awk -v a="$sm" -v m="$mib" 'BEGIN { printf "| lifeboat, small files, S3: restore (median) | %.2f | %.0f |", a, m / a }')")
        echo "small files: local ${lw[*]} s; S3 ${sw[*]} s; S3 at $(awk -v a="$lm" -v b="$sm" 'BEGIN { printf "%.0f", 100 * a / b }') % of the local speed" >&2
        corpus=$saved
        ;;
    *) echo "bench/s3.sh: unknown tool $tool" >&2; exit 1 ;;
    esac
done

echo "| step | wall s | MiB/s |"
echo "|---|---:|---:|"
printf '%s\n' "${rows[@]}"
echo "(objects stay in the test server under lifeboat-test/$run_id/; restores in $work)" >&2
