#!/usr/bin/env python3
"""Time shell commands alternately, round after round, and print their medians: the A/B of two
builds beside a native tool, measured under the same conditions (a busy neighbour slows every
command of a round, not one command's whole series).

    RUNS=15 bench/alternate.py 'before=/tmp/lb-old --config C backup --all -q' \\
                               'after=/tmp/lb-new --config C backup --all -q' \\
                               'redis-cli=redis-cli -p 6399 --rdb /tmp/x.rdb'

Each argument is NAME=COMMAND; COMMAND runs under `sh -c` with stdout and stderr discarded, and
must exit 0. Wall time is measured around the process with a monotonic clock (to the
microsecond, where GNU time rounds to 10 ms). Prints a markdown table (median, min, max, and the
median's ratio to the last command's) and every run's time.

    RUNS=N     rounds (default 15)
    WARMUP=N   rounds run first and not counted (default 1)
"""

import os
import statistics
import subprocess
import sys
import time


def main():
    cmds = []
    for arg in sys.argv[1:]:
        name, sep, cmd = arg.partition("=")
        if not sep or not name or not cmd:
            sys.exit(f"bench/alternate.py: {arg!r} is not NAME=COMMAND")
        cmds.append((name, cmd))
    if not cmds:
        sys.exit(__doc__)
    runs = int(os.environ.get("RUNS", "15"))
    warmup = int(os.environ.get("WARMUP", "1"))
    times = {name: [] for name, _ in cmds}
    for r in range(warmup + runs):
        for name, cmd in cmds:
            t = time.perf_counter()
            p = subprocess.run(["sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            took = time.perf_counter() - t
            if p.returncode != 0:
                sys.exit(f"bench/alternate.py: {name} exited {p.returncode}: {p.stderr.decode(errors='replace')[-500:]}")
            if r >= warmup:
                times[name].append(took)
    base = statistics.median(times[cmds[-1][0]])
    print(f"{runs} rounds, alternating, after {warmup} not counted.\n")
    print(f"| | median | min | max | vs {cmds[-1][0]} |")
    print("|---|---:|---:|---:|---:|")
    for name, _ in cmds:
        v = times[name]
        m = statistics.median(v)
        print(f"| {name} | {m:.3f} s | {min(v):.3f} s | {max(v):.3f} s | {m / base:.2f}× |")
    print()
    for name, cmd in cmds:
        print(f"- {name}: `{cmd}`: " + ", ".join(f"{x:.3f}" for x in times[name]))


if __name__ == "__main__":
    main()
