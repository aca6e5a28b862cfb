#!/usr/bin/env bash
# The daemon's own cost and reaction times (issue: "Numbers"):
#   1. idle: 20 sources scheduled @daily (nothing due), CPU% and RSS over 60 s;
#   2. /metrics latency: 100 sources and N snapshots (default 1,000), 200 scrapes, p50/p99;
#   3. a failed backup reaches a webhook receiver: seconds from the run's start to the request;
#   4. an RPO breach is detected: seconds from the breach to the rpo_breached alert.
# Usage: bench/daemon.sh [SNAPSHOTS]   (release build; prints one table, Markdown)
set -euo pipefail
cd "$(dirname "$0")/.."
snapshots="${1:-1000}"
cargo build --release -q -p lifeboat
bin="$PWD/target/release/lifeboat"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export LIFEBOAT_PASSWORD=bench
repo="$work/repo"
"$bin" --repo "$repo" init --kdf-n 1024 >/dev/null
mkdir -p "$work/data"
echo x >"$work/data/f"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

# --- 1. idle with 20 sources
cfg="$work/idle.toml"
{ echo "[repository]"; echo "url = \"$repo\""; echo "[server]"; echo "listen = \"127.0.0.1:$(port)\""
  for i in $(seq 1 20); do printf '[[source]]\nname = "s%d"\nkind = "files"\npath = "%s"\nschedule = "0 3 * * *"\nrpo = "2d"\n' "$i" "$work/data"; done
} >"$cfg"
for i in $(seq 1 20); do "$bin" --config "$cfg" backup "s$i" >/dev/null; done
"$bin" --config "$cfg" daemon 2>"$work/idle.log" &
pid=$!
sleep 5
t0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 60; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
hz=$(getconf CLK_TCK)
cpu=$(python3 -c "print(f'{($t1-$t0)/$hz/60*100:.3f}')")
rss=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$pid/status)
kill -TERM $pid; wait $pid || true

# --- 2. /metrics with 100 sources and many snapshots
cfg="$work/many.toml"
mport=$(port)
{ echo "[repository]"; echo "url = \"$repo\""; echo "[server]"; echo "listen = \"127.0.0.1:$mport\""
  for i in $(seq 1 100); do printf '[[source]]\nname = "m%d"\nkind = "files"\npath = "%s"\nrpo = "2d"\n' "$i" "$work/data"; done
} >"$cfg"
# N/100 × `backup --all` of the 100 sources: N snapshots and 2N run records, as N single backups
# would make, in a fraction of the time.
for _ in $(seq 1 $(( snapshots / 100 ))); do "$bin" --config "$cfg" backup --all >/dev/null; done
"$bin" --config "$cfg" daemon 2>"$work/many.log" &
pid=$!
wait_port "$mport"
lat=$(python3 - "$mport" <<'EOF'
import sys, time, urllib.request
port = sys.argv[1]
ts = []
for _ in range(200):
    t = time.perf_counter()
    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
    ts.append((time.perf_counter() - t) * 1000)
ts.sort()
print(f"{ts[len(ts)//2]:.2f} {ts[int(len(ts)*0.99)-1]:.2f}")
EOF
)
kill -TERM $pid; wait $pid || true

# --- 3 and 4. alert latency: a failing source, and a source whose RPO (1s) runs out
hport=$(port)
python3 - "$hport" "$work/hook.log" <<'EOF' &
import http.server, sys, time
log = open(sys.argv[2], "a")
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        log.write(f"{time.time():.3f} {body.decode()}\n"); log.flush()
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
wait_port "$hport"
cfg="$work/alerts.toml"
cat >"$cfg" <<EOF
[repository]
url = "$repo"
[[source]]
name = "bad"
kind = "command"
command = ["sh", "-c", "exit 3"]
schedule = "every 1h"
[[source]]
name = "late"
kind = "files"
path = "$work/data"
rpo = "20s"
[[notify]]
kind = "webhook"
url = "http://127.0.0.1:$hport/"
events = ["backup_failed", "rpo_breached"]
EOF
"$bin" --config "$cfg" backup late >/dev/null
backed=$(date +%s.%N)
start=$(date +%s.%N)
"$bin" --config "$cfg" daemon 2>"$work/alerts.log" &
pid=$!
for _ in $(seq 1 900); do grep -q rpo_breached "$work/hook.log" 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid; wait $pid || true
failed_at=$(grep backup_failed "$work/hook.log" | head -1 | cut -d' ' -f1)
breach_at=$(grep rpo_breached "$work/hook.log" | head -1 | cut -d' ' -f1)
fail_s=$(python3 -c "print(f'{$failed_at-$start:.2f}')")
rpo_s=$(python3 -c "print(f'{$breach_at-($backed+20):.2f}')")
started=$(grep daemon_started "$work/alerts.log" | head -1)
load_s=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$started")
runs_read=$(sed -n 's/.* runs_read=\([0-9]*\).*/\1/p' <<<"$started")
records=$(ls "$repo/lifeboat/runs" 2>/dev/null | wc -l)

echo "| measure | value | target |"
echo "|---|---|---|"
echo "| idle CPU, 20 sources, 60 s | ${cpu} % | ≤ 0.1 % |"
echo "| idle peak RSS | ${rss} MiB | ≤ 30 MiB |"
echo "| /metrics p50 / p99, 100 sources, $snapshots snapshots, 200 scrapes | ${lat% *} / ${lat#* } ms | p99 ≤ 20 ms |"
echo "| daemon start: state loaded, $runs_read of $records run records read | ${load_s} s | |"
echo "| daemon start → backup_failed at the webhook (includes the run) | ${fail_s} s | ≤ 2 s |"
echo "| RPO runs out → rpo_breached at the webhook | ${rpo_s} s | ≤ 60 s |"
