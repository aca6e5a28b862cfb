#!/usr/bin/env python3
"""A JetStream file stream of MSGS messages backed up and restored by Lifeboat beside the
server's own snapshot and restore API, in one run (issue 15, point 6). Run through
bench/nats-native.sh.

The server: a throwaway `nats-server -js -a 127.0.0.1 -p PORT -sd DIR` (the machine's own server
is not touched). The stream: BENCH, file storage, subjects bench.>, MSGS messages of 100–200
bytes (JSON records as in bench/nats.sh) published with plain PUBs over the raw protocol.

Backup, median of RUNS, the tools alternating:
- `lifeboat backup` (nats source) into a new repository each run;
- native: `$JS.API.STREAM.SNAPSHOT.BENCH` used directly, by this script run as its own process
  (`nats-native.py snapshot …`, so its timing includes starting Python, about 0.03 s): literal
  subscriptions on the reply and deliver subjects, the same chunk size as Lifeboat asks for
  (max_payload / 2), every chunk written to a file as it arrives (the server's S2-compressed tar,
  as is) and acked at once on its reply subject, until the empty message without a reply
  (end of snapshot; a status header there is a failure).
Restore, median of RUNS (the stream deleted first, untimed), each checked with the stream's
message count and first/last sequence:
- `lifeboat restore latest --source events --target nats://… --force --confirm events` (original
  name: the restore API; guarded because it is the source's own server and stream);
- native: `$JS.API.STREAM.RESTORE.BENCH` with the config and state the snapshot answered, then
  the snapshot file pushed to the deliver subject in chunks of the same size, 8 unacked at most
  (as Lifeboat does), each acked by the server; an empty message ends it and is answered with
  the stream's info (`nats-native.py restore …`, its own process as well).
Sizes: the repository after one backup against the snapshot file, as is and through `zstd -3`.
Each timing is wall seconds with the CPU seconds (user+system) and the peak RSS of the client
process (GNU time; the server's side is not counted). Prints a markdown table; the raw timings
go to stderr as JSON.
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, size_of, timed

BIN = os.path.realpath(os.environ.get("LIFEBOAT_BIN", "target/release/lifeboat"))
MSGS = int(os.environ.get("MSGS", "1000000"))
RUNS = int(os.environ.get("RUNS", "3"))
STREAM = "BENCH"
WINDOW = 8


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Nats:
    """Just enough of the NATS client protocol: PUB, SUB, MSG/HMSG, PING/PONG."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.f = self.s.makefile("rb", buffering=1 << 20)
        line = self.f.readline()
        if not line.startswith(b"INFO "):
            raise RuntimeError(f"not a NATS server: {line!r}")
        self.max_payload = json.loads(line[5:])["max_payload"]
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,'
                       b'"lang":"python","version":"bench"}\r\n')
        self.sids = 0
        self.inbox = "_INBOX." + os.urandom(8).hex()
        self.api_reply = self.inbox + ".api"
        self.sub(self.api_reply)

    def sub(self, subject):
        self.sids += 1
        self.s.sendall(b"SUB %s %d\r\n" % (subject.encode(), self.sids))

    def pub(self, subject, payload=b"", reply=None):
        head = b"PUB %s %s%d\r\n" % (subject.encode(), (reply.encode() + b" ") if reply else b"", len(payload))
        self.s.sendall(head + payload + b"\r\n")

    def next(self):
        """The next message: (subject, reply, headers, payload)."""
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("connection closed")
            if line.startswith(b"PING"):
                self.s.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode().strip())
            elif line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                parts = line.split()
                if parts[0] == b"MSG":
                    subject, reply, hlen, total = parts[1], (parts[3] if len(parts) == 5 else None), 0, int(parts[-1])
                else:
                    subject, reply = parts[1], (parts[3] if len(parts) == 6 else None)
                    hlen, total = int(parts[-2]), int(parts[-1])
                data = self.f.read(total + 2)[:total]
                return subject.decode(), reply.decode() if reply else None, data[:hlen], data[hlen:]

    def api(self, what, body=None):
        self.pub("$JS.API." + what, json.dumps(body).encode() if body is not None else b"", self.api_reply)
        while True:
            subject, _, hdr, data = self.next()
            if subject == self.api_reply:
                if hdr and not data:
                    raise RuntimeError(f"{what}: {hdr.decode().splitlines()[0]}")
                return json.loads(data)


def check(resp, what):
    if "error" in resp:
        raise RuntimeError(f"{what}: {resp['error']}")
    return resp


def chunk_size(c):
    # What Lifeboat asks for: half of max_payload, 64 KiB–1 MiB.
    return max(64 << 10, min(c.max_payload // 2, 1 << 20))


def snapshot(port, stream, out, info_out):
    """Snapshot `stream` into the file `out` (the server's S2 tar as is) and its config and state
    into `info_out`."""
    c = Nats(port)
    reply, deliver = c.inbox + ".r", c.inbox + ".d"
    c.sub(reply)
    c.sub(deliver)
    req = {"deliver_subject": deliver, "no_consumers": False, "chunk_size": chunk_size(c), "jsck": False}
    c.pub(f"$JS.API.STREAM.SNAPSHOT.{stream}", json.dumps(req).encode(), reply)
    resp, eof = None, False
    with open(out, "wb") as f:
        while resp is None or not eof:
            subject, ack, hdr, data = c.next()
            if subject == reply:
                resp = check(json.loads(data), "snapshot")
            elif subject == deliver:
                if ack is None and not data:
                    if hdr and hdr.split(b"\r\n")[0].strip() != b"NATS/1.0":
                        raise RuntimeError(f"snapshot ended with {hdr.decode().splitlines()[0]}")
                    eof = True
                    continue
                f.write(data)
                if ack:
                    c.pub(ack)
    with open(info_out, "w") as f:
        json.dump({"config": resp["config"], "state": resp["state"]}, f)


def restore(port, stream, snap, info):
    """Restore `stream` from the snapshot file `snap` with the config and state in `info`."""
    c = Nats(port)
    with open(info) as f:
        req = json.load(f)
    deliver = check(c.api(f"STREAM.RESTORE.{stream}", req), "restore")["deliver_subject"]
    acks, done = c.inbox + ".a", c.inbox + ".done"
    c.sub(acks)
    c.sub(done)
    size, pending = chunk_size(c), 0

    def ack():
        while True:
            subject, _, _, data = c.next()
            if subject == acks:
                if data:
                    raise RuntimeError(f"restore: the server refused a chunk: {data.decode()}")
                return

    with open(snap, "rb") as f:
        while chunk := f.read(size):
            while pending >= WINDOW:
                ack()
                pending -= 1
            c.pub(deliver, chunk, acks)
            pending += 1
    while pending:
        ack()
        pending -= 1
    c.pub(deliver, b"", done)
    while True:
        subject, _, _, data = c.next()
        if subject == done:
            check(json.loads(data), "restore")
            return


def publish(c, n):
    stream = STREAM.lower().encode()
    buf = []
    for i in range(n):
        body = b'{"seq":%d,"account":"acct-%05d","amount":%d,"memo":"%s"}' % (
            i, i * 7919 % 100000, i * 104729 % 10**9, b"m" * (40 + i * 31 % 100))
        buf.append(b"PUB %s.events.%d %d\r\n%s\r\n" % (stream, i % 16, len(body), body))
        if len(buf) == 1000:
            c.s.sendall(b"".join(buf))
            buf = []
    c.s.sendall(b"".join(buf))
    for _ in range(6000):
        st = check(c.api(f"STREAM.INFO.{STREAM}"), "stream info")["state"]
        if st["last_seq"] >= n:
            return st
        time.sleep(0.1)
    sys.exit(f"the stream has {st['messages']} messages after 10 minutes, expected {n}")


def bench(work, procs):
    env = dict(os.environ, LIFEBOAT_PASSWORD="bench")
    port = free_port()
    store = os.path.join(work, "js")
    server = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store,
                               "-l", os.path.join(work, "nats.log")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(server)
    for _ in range(600):
        if server.poll() is not None:
            sys.exit(f"nats-server exited ({server.returncode}); see {work}/nats.log")
        try:
            c = Nats(port)
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit("nats-server did not start")
    check(c.api(f"STREAM.CREATE.{STREAM}", {"name": STREAM, "subjects": [STREAM.lower() + ".>"],
                                             "storage": "file"}), "stream create")
    log(f"publishing {MSGS} messages …")
    st = publish(c, MSGS)
    if st["messages"] != MSGS:
        sys.exit(f"the stream has {st['messages']} messages, expected {MSGS}")
    on_disk = size_of(os.path.join(store, "jetstream"))
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
    nv = subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout.strip()
    log(f"{ver}; {nv}; {os.cpu_count()} cores; stream {MSGS} messages, {st['bytes'] / 1e6:.1f} MB "
        f"({on_disk / 1e6:.1f} MB on disk); medians of {RUNS}")

    def verify(who):
        s = check(c.api(f"STREAM.INFO.{STREAM}"), "stream info")["state"]
        if (s["messages"], s["first_seq"], s["last_seq"]) != (MSGS, st["first_seq"], st["last_seq"]):
            sys.exit(f"{who}: the stream has {s['messages']} messages, {s['first_seq']}–{s['last_seq']}; "
                     f"expected {MSGS}, {st['first_seq']}–{st['last_seq']}")

    me = [sys.executable, os.path.realpath(__file__)]
    snap, info = os.path.join(work, "snapshot.tar.s2"), os.path.join(work, "snapshot.json")
    t = {k: [] for k in ("lifeboat", "snapshot", "lifeboat-restore", "restore")}
    sizes = {}
    for k in range(RUNS):
        log(f"run {k + 1}/{RUNS}")
        repo = os.path.join(work, "repo")
        cfg = os.path.join(work, "lifeboat.toml")
        with open(cfg, "w") as f:
            f.write(f'[repository]\nurl = "{repo}"\n\n[[source]]\nname = "events"\nkind = "nats"\n'
                    f'url = "nats://127.0.0.1:{port}"\nstreams = ["{STREAM}"]\n')
        shutil.rmtree(repo, ignore_errors=True)
        subprocess.run([BIN, "--config", cfg, "init", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        t["lifeboat"].append(timed([BIN, "--config", cfg, "backup", "events", "-q"], env))
        sizes.setdefault("lifeboat", size_of(repo))
        t["snapshot"].append(timed([*me, "snapshot", str(port), STREAM, snap, info]))
        sizes.setdefault("snapshot", size_of(snap))
        check(c.api(f"STREAM.DELETE.{STREAM}"), "stream delete")
        t["lifeboat-restore"].append(timed([BIN, "--config", cfg, "restore", "latest", "--source", "events",
                                            "--target", f"nats://127.0.0.1:{port}", "--force", "--confirm", "events", "-q"],
                                           env))
        verify("lifeboat restore")
        check(c.api(f"STREAM.DELETE.{STREAM}"), "stream delete")
        t["restore"].append(timed([*me, "restore", str(port), STREAM, snap, info]))
        verify("the restore API")
        shutil.rmtree(repo)
    subprocess.run(["zstd", "-3", "-q", "-f", snap, "-o", snap + ".zst"], check=True)
    sizes["zstd"] = size_of(snap + ".zst")
    med = {k: tuple(statistics.median(r[i] for r in v) for i in range(3)) for k, v in t.items()}

    def row(label, k, base):
        a, b = med[k], med[base]
        return f"| {label} | {a[0]:.2f} s ({a[1]:.1f} CPU s, {a[2]:.0f} MiB) | {a[0] / b[0]:.2f}× |"

    def size_row(label, k):
        return (f"| {label} | {sizes[k] / 1e6:.1f} MB | {sizes[k] / sizes['snapshot']:.2f}× | "
                f"{sizes[k] / sizes['zstd']:.2f}× |")

    print(f"{nv}: file stream of {MSGS:,} messages, {st['bytes'] / 1e6:.1f} MB ({on_disk / 1e6:.1f} MB on disk); "
          f"medians of {RUNS}.\n")
    print("| | time (CPU, peak RSS) | vs the snapshot / restore API |")
    print("|---|---:|---:|")
    print(row("`lifeboat backup`", "lifeboat", "snapshot"))
    print(row("`$JS.API.STREAM.SNAPSHOT` to a file", "snapshot", "snapshot"))
    print(row("`lifeboat restore`", "lifeboat-restore", "restore"))
    print(row("`$JS.API.STREAM.RESTORE` from the file", "restore", "restore"))
    print("\n| after one backup | size | vs the snapshot file | vs the snapshot with `zstd -3` |")
    print("|---|---:|---:|---:|")
    print(size_row("Lifeboat repository", "lifeboat"))
    print(size_row("snapshot file (S2-compressed tar)", "snapshot"))
    print(size_row("snapshot file with `zstd -3`", "zstd"))
    print(json.dumps({"runs": t, "sizes": sizes}), file=sys.stderr)


def main():
    if len(sys.argv) == 6 and sys.argv[1] in ("snapshot", "restore"):
        op, port, stream, path, info = sys.argv[1:]
        (snapshot if op == "snapshot" else restore)(int(port), stream, path, info)
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, _f: sys.exit(128 + n))
    work = tempfile.mkdtemp(prefix="lifeboat-nats-native-", dir=os.environ.get("BENCH_WORK") or None)
    procs = []
    try:
        bench(work, procs)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
