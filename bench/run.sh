#!/usr/bin/env bash
# Lifeboat benchmark harness: Lifeboat vs restic (and rustic / borg when installed).
#
#   bench/run.sh [CORPUS_DIR]
#
# For every tool, in a fresh repository of its own, it times: first backup,
# unchanged re-backup, full restore into an empty directory, and a check that
# reads all data; then it reports the repository size. Each step is measured
# with GNU time (wall, user+sys CPU, peak RSS). See docs/benchmarks.md.
#
# Environment knobs (all optional):
#   CORPUS=DIR          back up DIR as is (same as giving it as the argument)
#   BENCH_QUICK=1       use a ~200 MB sample of the default corpus (smoke run)
#   BENCH_TOOLS="..."   tools to run, in order (default: "lifeboat restic rustic borg")
#   LIFEBOAT_BIN=PATH   Lifeboat binary (default: target/release, else target/debug)
#   BENCH_WORK=DIR      scratch directory (default: bench/work, gitignored)
#   BENCH_NO_DROP=1     do not try to drop the page cache between steps
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-$BENCH_DIR/work}
QUICK=${BENCH_QUICK:-0}
QUICK_BYTES=$((200 * 1000 * 1000))
QUICK_MAX_FILE=$((64 * 1024 * 1024)) # keep single huge files out of the sample
TOOLS=${BENCH_TOOLS:-lifeboat restic rustic borg}
STEPS=(backup1 backup2 restore check)
declare -A STEP_TITLE=(
    [backup1]="first backup"
    [backup2]="unchanged re-backup"
    [restore]="full restore"
    [check]="check, read all data"
)
# Targets for Lifeboat relative to restic (wall-time ratio); RSS must be <= restic's.
declare -A TARGET=([backup1]=0.4 [backup2]=0.3 [restore]=0.7 [check]=0.5 [size]=1.02)

# The command line as given, for the report.
BENCH_CMDLINE="$(
    for v in CORPUS BENCH_QUICK BENCH_TOOLS LIFEBOAT_BIN BENCH_WORK BENCH_NO_DROP; do
        if [[ -n ${!v:-} ]]; then printf '%s=%q ' "$v" "${!v}"; fi
    done
)bench/run.sh${1:+ $(printf '%q' "$1")}"

log() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() {
    printf 'bench: ERROR: %s\n' "$*" >&2
    exit 1
}

# A fixed, throw-away password for the benchmark repositories only; always
# passed through the environment, never on a command line.
BENCH_PASSWORD=lifeboat-bench-password
export LIFEBOAT_PASSWORD=$BENCH_PASSWORD RESTIC_PASSWORD=$BENCH_PASSWORD
export RUSTIC_PASSWORD=$BENCH_PASSWORD BORG_PASSPHRASE=$BENCH_PASSWORD
export BORG_DISPLAY_PASSPHRASE=no BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
unset LIFEBOAT_REPOSITORY RESTIC_REPOSITORY RUSTIC_REPOSITORY BORG_REPO LIFEBOAT_COMPRESSION
unset LIFEBOAT_PASSWORD_FILE LIFEBOAT_PASSWORD_COMMAND RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND
unset RUSTIC_PASSWORD_FILE RUSTIC_PASSWORD_COMMAND BORG_PASSCOMMAND BORG_PASSPHRASE_FD
export LC_ALL=C

# ---------------------------------------------------------------- prerequisites
if [[ ! -x /usr/bin/time ]]; then
    log "/usr/bin/time missing: installing the 'time' package"
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y time >/dev/null 2>&1 ||
            { apt-get update >/dev/null && apt-get install -y time >/dev/null; } ||
            die "could not install GNU time (apt-get install time)"
    else
        die "GNU time is needed at /usr/bin/time (apt-get install time)"
    fi
fi
/usr/bin/time -f '%e' -o /dev/null true 2>/dev/null || die "/usr/bin/time is not GNU time"
for c in du diff find awk tar; do
    command -v "$c" >/dev/null || die "missing command: $c"
done

# ---------------------------------------------------------------- tool selection
LIFEBOAT=${LIFEBOAT_BIN:-}
LIFEBOAT_PROFILE=custom
if [[ -z $LIFEBOAT ]]; then
    if [[ -x $ROOT/target/release/lifeboat ]]; then
        LIFEBOAT=$ROOT/target/release/lifeboat LIFEBOAT_PROFILE=release
    elif [[ -x $ROOT/target/debug/lifeboat ]]; then
        LIFEBOAT=$ROOT/target/debug/lifeboat LIFEBOAT_PROFILE=debug
    fi
fi

ACTIVE=()
for t in $TOOLS; do
    case $t in
    lifeboat)
        if [[ -n $LIFEBOAT && -x $LIFEBOAT ]]; then
            ACTIVE+=(lifeboat)
        else
            note "skipping lifeboat: no binary (build with 'cargo build --release' or set LIFEBOAT_BIN)"
        fi
        ;;
    restic | rustic | borg)
        if command -v "$t" >/dev/null; then ACTIVE+=("$t"); else note "skipping $t: not installed"; fi
        ;;
    *) die "unknown tool in BENCH_TOOLS: $t" ;;
    esac
done
((${#ACTIVE[@]} > 0)) || die "no tool to benchmark"
if [[ " ${ACTIVE[*]} " == *" lifeboat "* && $LIFEBOAT_PROFILE == debug ]]; then
    note "WARNING: only a DEBUG build of lifeboat was found: its numbers are not meaningful."
fi

# ---------------------------------------------------------------- clean scratch
log "cleaning $WORK (repositories, restores, caches, logs; the corpus copy is kept)"
mkdir -p "$WORK"
rm -rf "$WORK/repos" "$WORK/restore" "$WORK/cache" "$WORK/logs" "$WORK"/corpus.tmp.*
mkdir -p "$WORK/repos" "$WORK/restore" "$WORK/cache" "$WORK/logs"

# ---------------------------------------------------------------- corpus
CORPUS=${1:-${CORPUS:-}}
CORPUS_NOTE=""
if [[ -n $CORPUS ]]; then
    [[ -d $CORPUS ]] || die "corpus directory not found: $CORPUS"
    CORPUS=$(cd "$CORPUS" && pwd -P)
    CORPUS_NOTE="given directory $CORPUS"
    [[ $QUICK == 1 ]] && note "BENCH_QUICK ignored: an explicit corpus is used as is"
else
    command -v rustc >/dev/null || die "no corpus given and rustc not found: pass CORPUS_DIR"
    SRC=$(rustc --print sysroot)
    [[ -d $SRC ]] || die "rustc sysroot not found: $SRC"
    if [[ $QUICK == 1 ]]; then
        CORPUS=$WORK/corpus-quick
        want="quick-sample $QUICK_BYTES $SRC"
        CORPUS_NOTE="~200 MB sample (every k-th file, files > 64 MiB left out) of the Rust toolchain $SRC"
    else
        CORPUS=$WORK/corpus
        want="full $SRC"
        CORPUS_NOTE="copy of the Rust toolchain $SRC"
    fi
    if [[ -d $CORPUS && -f $CORPUS.stamp && $(cat "$CORPUS.stamp") == "$want" ]]; then
        log "reusing corpus copy $CORPUS"
    else
        log "copying corpus into $CORPUS (once; later runs reuse it)"
        rm -rf "$CORPUS" "$CORPUS.stamp"
        tmp=$(mktemp -d "$WORK/corpus.tmp.XXXXXX")
        if [[ $QUICK == 1 ]]; then
            # Deterministic sample: files in path order, taking a fixed fraction of
            # them (every k-th), so small and mid-size files keep their proportions.
            list=$WORK/logs/corpus-quick.list
            find "$SRC" -type f -printf '%s\t%P\n' | sort -t $'\t' -k2 >"$list.all"
            awk -F '\t' -v max="$QUICK_MAX_FILE" -v want="$QUICK_BYTES" '
                { size[NR] = $1; path[NR] = $2; if ($1 <= max) total += $1 }
                END {
                    p = want / total; if (p > 1) p = 1; acc = 0
                    for (i = 1; i <= NR; i++) {
                        if (size[i] > max) continue
                        acc += p
                        if (acc >= 1) { acc -= 1; printf "%s\0", path[i] }
                    }
                }' "$list.all" >"$list"
            tar -C "$SRC" --null -T "$list" -cf - | tar -C "$tmp" -xpf - ||
                die "copying the quick corpus sample failed"
        else
            cp -a "$SRC/." "$tmp/" || die "copying the corpus failed"
        fi
        mv "$tmp" "$CORPUS"
        echo "$want" >"$CORPUS.stamp"
    fi
fi
CORPUS_BYTES=$(du -sb "$CORPUS" | cut -f1)
CORPUS_APPARENT=$(find "$CORPUS" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)
CORPUS_DIRS=$(find "$CORPUS" -type d | wc -l)
log "corpus: $CORPUS"
note "$CORPUS_NOTE"
note "$(awk -v b="$CORPUS_APPARENT" 'BEGIN {printf "%.1f MiB in files", b / 1048576}'), $CORPUS_FILES files, $CORPUS_DIRS directories (du -sb: $CORPUS_BYTES)"

# The filesystem may update access times on read (relatime: when the last
# access is more than a day old). Backup tools store atime in their trees, so
# the first tool to read a stale corpus would see its re-backup "change" every
# directory. Reading one byte of every file and listing every directory now
# makes access times stable for the whole run, the same for every tool.
log "settling access times (one read of every file and directory)"
find "$CORPUS" -type f -readable -print0 | xargs -0 -r head -q -c 1 >/dev/null
find "$CORPUS" -type l -print0 | xargs -0 -r readlink >/dev/null || true

# ---------------------------------------------------------------- page cache
CACHE_MODE="warm cache"
if [[ ${BENCH_NO_DROP:-0} != 1 ]] && (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    CACHE_MODE="cold cache (page cache dropped before every step)"
    CAN_DROP=1
else
    CAN_DROP=0
fi
log "page cache: $CACHE_MODE"
[[ $CAN_DROP == 0 ]] && note "cannot drop caches here: every step runs warm; the corpus is read once before each tool's first backup"

prepare_step() {
    sync
    if [[ $CAN_DROP == 1 ]]; then
        echo 3 >/proc/sys/vm/drop_caches || die "dropping the page cache failed"
    fi
}

warm_corpus() {
    [[ $CAN_DROP == 1 ]] && return 0
    find "$CORPUS" -type f -print0 | xargs -0 -r cat >/dev/null
}

# ---------------------------------------------------------------- measurement
declare -A RES=() # RES[tool:step:wall|cpu|rss] ; RES[tool:size]
RAW=$WORK/results.tsv
printf 'tool\tstep\twall_s\tuser_s\tsys_s\tmaxrss_kib\n' >"$RAW"

# run_step TOOL STEP COMMAND... : times COMMAND, aborts naming TOOL and STEP on failure.
run_step() {
    local tool=$1 step=$2
    shift 2
    local out=$WORK/logs/$tool-$step.out tf=$WORK/logs/$tool-$step.time rc=0
    prepare_step
    log "$tool: ${STEP_TITLE[$step]:-$step}"
    /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$out" 2>"${out%.out}.err" || rc=$?
    if ((rc != 0)); then
        printf 'bench: ERROR: %s: step "%s" failed (exit %d): %s\n' "$tool" "${STEP_TITLE[$step]:-$step}" "$rc" "$*" >&2
        show_output "$out"
        exit 1
    fi
    local wall user sys rss
    read -r wall user sys rss < <(tail -n 1 "$tf")
    [[ -n ${rss:-} ]] || die "$tool: step $step: could not read timing from $tf"
    RES[$tool:$step:wall]=$wall
    RES[$tool:$step:cpu]=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
    RES[$tool:$step:rss]=$rss
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$wall" "$user" "$sys" "$rss" >>"$RAW"
    note "wall ${wall}s  cpu ${RES[$tool:$step:cpu]}s  peak RSS $((rss / 1024)) MiB"
}

# show_output FILE.out : the last lines of a command's stdout and stderr logs.
show_output() {
    local f
    for f in "$1" "${1%.out}.err"; do
        [[ -s $f ]] || continue
        printf 'bench: last lines of %s:\n' "$f" >&2
        tail -n 20 "$f" | sed 's/^/    /' >&2
    done
}

# Untimed helper run; aborts naming TOOL and what failed.
run_untimed() {
    local tool=$1 what=$2
    shift 2
    local out=$WORK/logs/$tool-$what.out
    "$@" >"$out" 2>"${out%.out}.err" || {
        printf 'bench: ERROR: %s: %s failed: %s\n' "$tool" "$what" "$*" >&2
        show_output "$out"
        exit 1
    }
}

# The restored copy of the corpus inside a restore target: restic-style tools
# restore the absolute path under the target, borg the path without its leading '/'.
restored_root() {
    local target=$1 base
    base=$(basename "$CORPUS")
    if [[ -d $target$CORPUS ]]; then
        echo "$target$CORPUS"
    elif [[ -d $target/$base && $(find "$target" -mindepth 1 -maxdepth 1 | wc -l) == 1 ]]; then
        echo "$target/$base"
    else
        return 1
    fi
}

verify_restore() {
    local tool=$1 target=$2 root
    root=$(restored_root "$target") || {
        printf 'bench: ERROR: %s: restored corpus not found under %s; top of target:\n' "$tool" "$target" >&2
        find "$target" -maxdepth 4 | head -n 20 | sed 's/^/    /' >&2
        exit 1
    }
    log "$tool: verifying restore (diff -r against the corpus, untimed)"
    diff -r --no-dereference "$CORPUS" "$root" >"$WORK/logs/$tool-diff.log" 2>&1 || {
        printf 'bench: ERROR: %s: restored data differs from the corpus (%s):\n' "$tool" "$WORK/logs/$tool-diff.log" >&2
        head -n 20 "$WORK/logs/$tool-diff.log" | sed 's/^/    /' >&2
        exit 1
    }
    note "restore identical to corpus"
    rm -rf "$target"
}

# Backup summary from `backup --json` stdout (restic: JSON lines ending in a
# summary message; lifeboat: one JSON object). Best effort, for the sanity notes.
json_summary() {
    command -v jq >/dev/null || return 0
    jq -r 'select(type == "object" and has("files_unmodified"))
        | "files new \(.files_new), changed \(.files_changed), unmodified \(.files_unmodified); "
          + "data added \(.data_added / 1048576 * 10 | round / 10) MiB"
          + (if .data_added_packed then " (\(.data_added_packed / 1048576 * 10 | round / 10) MiB packed)" else "" end)' \
        "$1" 2>/dev/null | tail -n 1 || true
}

declare -A SANITY=()

bench_restic_like() { # TOOL: lifeboat | restic | rustic
    local tool=$1 repo=$WORK/repos/$1 target=$WORK/restore/$1
    local -a cmd
    export XDG_CACHE_HOME=$WORK/cache/$tool
    case $tool in
    lifeboat) cmd=("$LIFEBOAT" --repo "$repo") ;;
    restic) cmd=(restic --repo "$repo" --cache-dir "$XDG_CACHE_HOME/restic" --compression auto) ;;
    rustic) cmd=(rustic --repository "$repo") ;;
    esac
    case $tool in
    restic) run_untimed "$tool" init "${cmd[@]}" init --repository-version 2 ;;
    *) run_untimed "$tool" init "${cmd[@]}" init ;;
    esac
    warm_corpus
    if [[ $tool == rustic ]]; then
        run_step "$tool" backup1 "${cmd[@]}" backup "$CORPUS"
        run_step "$tool" backup2 "${cmd[@]}" backup "$CORPUS"
    else
        run_step "$tool" backup1 "${cmd[@]}" backup --json "$CORPUS"
        run_step "$tool" backup2 "${cmd[@]}" backup --json "$CORPUS"
        SANITY[$tool:backup1]=$(json_summary "$WORK/logs/$tool-backup1.out")
        SANITY[$tool:backup2]=$(json_summary "$WORK/logs/$tool-backup2.out")
    fi
    mkdir -p "$target"
    case $tool in
    rustic) run_step "$tool" restore "${cmd[@]}" restore latest "$target" ;;
    *) run_step "$tool" restore "${cmd[@]}" restore latest --target "$target" ;;
    esac
    verify_restore "$tool" "$target"
    run_step "$tool" check "${cmd[@]}" check --read-data
    if command -v jq >/dev/null; then
        run_untimed "$tool" snapshots "${cmd[@]}" snapshots --json
        local n
        n=$(jq 'if type == "array" then length else empty end' \
            "$WORK/logs/$tool-snapshots.out" 2>/dev/null | tail -n 1 || true)
        SANITY[$tool:snapshots]=${n:-?}
        [[ ${n:-2} == 2 ]] || die "$tool: expected 2 snapshots after two backups, 'snapshots --json' lists ${n}"
    fi
    RES[$tool:size]=$(du -sb "$repo" | cut -f1)
    # Key derivation cost is paid by every command: record its parameters.
    if command -v jq >/dev/null; then
        SANITY[$tool:kdf]=$(cat "$repo"/keys/* 2>/dev/null |
            jq -r '"\(.kdf) N=\(.N) r=\(.r) p=\(.p)"' 2>/dev/null | head -n 1 || true)
    fi
}

bench_borg() {
    local tool=borg repo=$WORK/repos/borg target=$WORK/restore/borg
    export XDG_CACHE_HOME=$WORK/cache/borg BORG_BASE_DIR=$WORK/cache/borg
    run_untimed borg init borg init -e repokey "$repo"
    warm_corpus
    run_step borg backup1 borg create --compression zstd,3 "$repo::snap1" "$CORPUS"
    run_step borg backup2 borg create --compression zstd,3 "$repo::snap2" "$CORPUS"
    mkdir -p "$target"
    run_step borg restore env -C "$target" borg extract "$repo::snap2"
    verify_restore borg "$target"
    run_step borg check borg check --verify-data "$repo"
    SANITY[borg:snapshots]=$(borg list --short "$repo" 2>/dev/null | wc -l)
    RES[borg:size]=$(du -sb "$repo" | cut -f1)
}

# ---------------------------------------------------------------- machine facts
version_of() {
    case $1 in
    lifeboat) "$LIFEBOAT" --version 2>/dev/null | head -n 1 || echo "lifeboat (version unknown)" ;;
    restic) restic version 2>/dev/null | head -n 1 ;;
    rustic) rustic --version 2>/dev/null | head -n 1 ;;
    borg) borg --version 2>/dev/null | head -n 1 ;;
    esac
}

CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
MEM=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || true)
FS=$(df -T "$WORK" 2>/dev/null | awk 'NR == 2 {print $2}')
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || GIT_REV="$GIT_REV (+ uncommitted changes)"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo '?')
if awk -v l="${LOAD_START%% *}" 'BEGIN {exit !(l > 0.5)}'; then
    note "WARNING: load average $LOAD_START: other work is running, numbers will be noisy"
fi
declare -A VERSION=()
for t in "${ACTIVE[@]}"; do VERSION[$t]=$(version_of "$t"); done

# ---------------------------------------------------------------- run
for t in "${ACTIVE[@]}"; do
    case $t in
    borg) bench_borg ;;
    *) bench_restic_like "$t" ;;
    esac
done

# ---------------------------------------------------------------- report
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
have() { [[ " ${ACTIVE[*]} " == *" $1 "* ]]; }

report() {
    local t s hdr sep row r w rr
    echo "# Lifeboat benchmark results"
    echo
    if [[ $QUICK == 1 && $CORPUS == "$WORK/corpus-quick" ]]; then
        echo "**Quick/smoke run (BENCH_QUICK=1): small corpus, numbers are indicative only.**"
        echo
    fi
    if have lifeboat && [[ $LIFEBOAT_PROFILE == debug ]]; then
        echo "**Lifeboat is a DEBUG build: its numbers are not meaningful.**"
        echo
    fi
    echo "- date: $DATE"
    echo "- command: \`${BENCH_CMDLINE}\`"
    echo "- machine: $(nproc) CPUs ($CPU_MODEL), $MEM RAM, kernel $(uname -r), scratch filesystem ${FS:-?}"
    echo "- page cache: $CACHE_MODE"
    echo "- load average (1/5/15 min) before the run: $LOAD_START (well above 0 means other work competed for the CPUs)"
    echo "- corpus: $CORPUS_NOTE: $(awk -v b="$CORPUS_APPARENT" 'BEGIN {printf "%.1f MiB", b / 1048576}') in $CORPUS_FILES files, $CORPUS_DIRS directories"
    echo "- source tree at run time: $GIT_REV"
    for t in "${ACTIVE[@]}"; do
        case $t in
        lifeboat) echo "- lifeboat: ${VERSION[$t]} — $LIFEBOAT ($LIFEBOAT_PROFILE, built $(date -u -r "$LIFEBOAT" '+%Y-%m-%d %H:%M UTC')), compression default (auto)" ;;
        restic) echo "- restic: ${VERSION[$t]} — repository v2, \`--compression auto\`" ;;
        rustic) echo "- rustic: ${VERSION[$t]} — defaults (zstd level 3)" ;;
        borg) echo "- borg: ${VERSION[$t]} — \`init -e repokey\`, \`create --compression zstd,3\`" ;;
        esac
    done
    echo
    echo "wall and CPU (user+sys) in seconds, peak RSS in MiB; repository size by \`du -sb\`."
    echo
    hdr="| step |"
    sep="|---|"
    for t in "${ACTIVE[@]}"; do
        hdr+=" $t wall | $t CPU | $t RSS |"
        sep+="---:|---:|---:|"
    done
    hdr+=" lifeboat/restic | target | met |"
    sep+="---|---|---|"
    echo "$hdr"
    echo "$sep"
    for s in "${STEPS[@]}"; do
        row="| ${STEP_TITLE[$s]} |"
        for t in "${ACTIVE[@]}"; do
            row+=" ${RES[$t:$s:wall]} | ${RES[$t:$s:cpu]} | $(mib "${RES[$t:$s:rss]}") |"
        done
        if have lifeboat && have restic; then
            w=$(ratio "${RES[lifeboat:$s:wall]}" "${RES[restic:$s:wall]}")
            rr=$(ratio "${RES[lifeboat:$s:rss]}" "${RES[restic:$s:rss]}")
            r="wall ${w}×, RSS ${rr}×"
            if le "$w" "${TARGET[$s]}" && le "$rr" 1; then m=yes; else m=NO; fi
        else
            r="n/a" m="n/a"
        fi
        row+=" $r | wall ≤ ${TARGET[$s]}×, RSS ≤ 1× | $m |"
        echo "$row"
    done
    row="| repository size (MiB) |"
    for t in "${ACTIVE[@]}"; do
        row+=" $(awk -v b="${RES[$t:size]}" 'BEGIN {printf "%.1f", b / 1048576}') | | |"
    done
    if have lifeboat && have restic; then
        r=$(ratio "${RES[lifeboat:size]}" "${RES[restic:size]}")
        if le "$r" "${TARGET[size]}"; then m=yes; else m=NO; fi
        row+=" size ${r}× | ≤ ${TARGET[size]}× | $m |"
    else
        row+=" n/a | ≤ ${TARGET[size]}× | n/a |"
    fi
    echo "$row"
    echo
    echo "Throughput of the first backup (corpus MiB / wall s):"
    for t in "${ACTIVE[@]}"; do
        echo "- $t: $(awk -v b="$CORPUS_APPARENT" -v w="${RES[$t:backup1:wall]}" 'BEGIN {if (w > 0) printf "%.1f MiB/s", b / 1048576 / w; else print "n/a"}')"
    done
    echo
    echo "Sanity (untimed): every restore was compared with \`diff -r\` against the corpus and matched."
    for t in "${ACTIVE[@]}"; do
        [[ -n ${SANITY[$t:backup1]:-} ]] && echo "- $t first backup: ${SANITY[$t:backup1]}"
        [[ -n ${SANITY[$t:backup2]:-} ]] && echo "- $t re-backup: ${SANITY[$t:backup2]}"
        [[ -n ${SANITY[$t:snapshots]:-} ]] && echo "- $t snapshots in repository: ${SANITY[$t:snapshots]}"
        [[ -n ${SANITY[$t:kdf]:-} ]] && echo "- $t key derivation (paid by every command): ${SANITY[$t:kdf]}"
    done
    echo
    echo "Raw numbers: \`bench/work/results.tsv\`; per-step logs: \`bench/work/logs/\`."
}

echo
report | tee "$WORK/results.md"
log "results written to $WORK/results.md (raw: $RAW)"
