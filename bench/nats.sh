#!/usr/bin/env bash
# The nats source on a file stream of N messages (default 100,000; 100–200 bytes each) on the
# local nats-server: backup time and repository size, a second backup unchanged and a third after
# 1 % more messages (dedup), then restore time under the original name (stream restore API) and
# under a new name (republish), both with --verify.
# Usage: bench/nats.sh [N]   (needs python3 and nats-server -js on 127.0.0.1:4222;
#        uses target/debug/lifeboat, or LIFEBOAT_BIN=target/release/lifeboat;
#        STORAGE=memory for a memory stream, backed up by export instead of the snapshot API)
set -euo pipefail
cd "$(dirname "$0")/.."
LB=${LIFEBOAT_BIN:-target/debug/lifeboat}
N=${1:-100000}
[ -x "$LB" ] || cargo build -p lifeboat
W=$(mktemp -d /tmp/lifeboat-nats-bench.XXXX)
S="LBBENCH_$$"
# Publish with plain PUBs (JetStream stores them without acks), then wait until the stream has them.
nats() {
  python3 - "$@" <<'PY'
import json, os, socket, sys, time
op, stream = sys.argv[1], sys.argv[2]
s = socket.create_connection(("127.0.0.1", 4222)); f = s.makefile("rb")
f.readline()
s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.bench.* 1\r\n')
def api(subject, body=b""):
    s.sendall(b"PUB %s _INBOX.bench.r %d\r\n%s\r\n" % (subject.encode(), len(body), body))
    while True:
        line = f.readline()
        if line.startswith(b"PING"): s.sendall(b"PONG\r\n")
        if line.startswith(b"MSG") or line.startswith(b"HMSG"):
            n = int(line.split()[-1]); data = f.read(n + 2)[:n]
            return json.loads(data) if data.strip() else {}
if op == "create":
    api("$JS.API.STREAM.CREATE." + stream, json.dumps({"name": stream, "subjects": [stream.lower() + ".>"], "storage": os.environ.get("STORAGE", "file")}).encode())
elif op == "delete":
    api("$JS.API.STREAM.DELETE." + stream)
elif op == "publish":
    start, n = int(sys.argv[3]), int(sys.argv[4])
    buf = []
    for i in range(start, start + n):
        body = b'{"seq":%d,"account":"acct-%05d","amount":%d,"memo":"%s"}' % (i, i * 7919 % 100000, i * 104729 % 10**9, b"m" * (40 + i * 31 % 100))
        buf.append(b"PUB %s.events.%d %d\r\n%s\r\n" % (stream.lower().encode(), i % 16, len(body), body))
        if len(buf) == 1000:
            s.sendall(b"".join(buf)); buf = []
    s.sendall(b"".join(buf))
    for _ in range(600):
        st = api("$JS.API.STREAM.INFO." + stream)["state"]
        if st["last_seq"] >= start + n: break
        time.sleep(0.1)
    print(f"stream {stream}: {st['messages']} messages, {st['bytes']} bytes")
PY
}
trap 'nats delete "$S" >/dev/null; nats delete "${S}_COPY" >/dev/null; rm -rf "$W"' EXIT
nats create "$S" >/dev/null
nats publish "$S" 0 "$N"
cat > "$W/lifeboat.toml" <<TOML
[repository]
url = "$W/repo"
[[source]]
name = "events"
kind = "nats"
url = "nats://127.0.0.1:4222"
streams = ["$S"]
TOML
export LIFEBOAT_PASSWORD=bench LIFEBOAT_CONFIG="$W/lifeboat.toml"
size() { du -sb "$W/repo" | cut -f1; }
"$LB" init -q
[ "${STORAGE:-file}" = memory ] || echo "stream on disk: $(du -sb /var/lib/nats-server/jetstream/*/streams/"$S" | cut -f1) bytes"
/usr/bin/time -f "first backup: %e s" "$LB" backup events -q; s0=$(size)
/usr/bin/time -f "second backup (unchanged): %e s" "$LB" backup events -q; s1=$(size)
nats publish "$S" "$N" $((N / 100))
/usr/bin/time -f "third backup (1 %% more messages): %e s" "$LB" backup events -q; s2=$(size)
echo "repository after first backup: $s0 bytes; growth: second $((s1 - s0)) bytes, third $((s2 - s1)) bytes"
nats delete "$S" >/dev/null
/usr/bin/time -f "restore under the original name (restore API; export: republish) + verify: %e s" \
  "$LB" restore latest --source events --target nats://127.0.0.1:4222 --verify -q
/usr/bin/time -f "restore under a new name (republish) + verify: %e s" \
  "$LB" restore latest --source events --target "nats://127.0.0.1:4222/${S}_COPY" --verify -q
