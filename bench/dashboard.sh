#!/usr/bin/env bash
# The dashboard's numbers (issue 14, "Numbers"):
#   1. overview server time with 100 sources and N snapshots (default 10,000): 200 requests of
#      `/`, the daemon's own Server-Timing (handler start to response) and the client's wall time;
#   2. the overview's weight with its assets (HTML + CSS + JS + icon, as sent: no compression).
# The fixture: 100 files sources, `backup --all` N/100 times (N snapshots, 2N run records).
# Usage: bench/dashboard.sh [SNAPSHOTS]   (release build; prints one table, Markdown)
set -euo pipefail
cd "$(dirname "$0")/.."
snapshots="${1:-10000}"
cargo build --release -q -p lifeboat
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/lifeboat"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export LIFEBOAT_PASSWORD=bench
repo="$work/repo"
"$bin" --repo "$repo" init --kdf-n 1024 >/dev/null
mkdir -p "$work/data"
echo x >"$work/data/f"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cfg="$work/many.toml"
{ echo "[repository]"; echo "url = \"$repo\""; echo "[server]"; echo "listen = \"127.0.0.1:$port\""
  for i in $(seq 1 100); do
    printf '[[source]]\nname = "source-%03d"\nkind = "files"\npath = "%s"\nschedule = "0 3 * * *"\nrpo = "2d"\nrto = "15m"\n' "$i" "$work/data"
  done
} >"$cfg"
t0=$(date +%s)
for _ in $(seq 1 $(( snapshots / 100 ))); do "$bin" --config "$cfg" backup --all >/dev/null; done
made=$(( $(date +%s) - t0 ))
"$bin" --config "$cfg" daemon 2>"$work/daemon.log" &
start=$(date +%s.%N)
python3 - "$port" "$start" "$snapshots" "$made" <<'PY'
import re, sys, time, urllib.request
port, start, snapshots, made = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}"
def get(path):
    with urllib.request.urlopen(base + path) as r:
        return r.read(), r.headers
while True:  # until the dashboard has read the repository
    try:
        body, _ = get("/")
        if b"Reading the repository" not in body:
            break
    except OSError:
        pass
    time.sleep(0.1)
loaded = time.time() - start
server, wall = [], []
for _ in range(200):
    t = time.perf_counter()
    body, h = get("/")
    wall.append((time.perf_counter() - t) * 1000)
    server.append(float(re.search(r"dur=([0-9.]+)", h["Server-Timing"]).group(1)))
assert body.count(b"data-source=") == 100, "100 sources expected on the overview"
assets = sum(len(get(p)[0]) for p in ["/assets/app.css", "/assets/app.js", "/assets/icon.svg"])
pct = lambda v, q: sorted(v)[min(len(v) - 1, int(len(v) * q))]
print("| measure | value | target |")
print("|---|---|---|")
print(f"| overview server time p50 / p99, 100 sources, {int(snapshots):,} snapshots, 200 requests | {pct(server, .5):.1f} / {pct(server, .99):.1f} ms | ≤ 100 ms |")
print(f"| overview wall time at the client p50 / p99 | {pct(wall, .5):.1f} / {pct(wall, .99):.1f} ms | |")
print(f"| overview weight: HTML + CSS + JS + icon | {len(body)/1024:.1f} + {assets/1024:.1f} = {(len(body)+assets)/1024:.1f} KiB | ≤ 200 KB |")
print(f"| daemon start → dashboard has read the repository | {loaded:.1f} s | |")
print(f"| (fixture: {int(snapshots)//100} × `backup --all` of 100 sources) | {made} s | |")
PY
kill -TERM %1; wait %1 || true
