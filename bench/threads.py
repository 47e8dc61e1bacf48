"""bench/threads.py: where a running gateway's CPU goes, per kind of thread.

The daemon names its threads (ib-poll/<connection>, ib-north, ib-store, ib-status, ib-load;
paho's are MQTTAsync_send and MQTTAsync_rcv). Two snapshots of /proc/PID/task/*/schedstat (run
time in ns, times the thread was run) taken around a window give, per kind: CPU as % of one
core and runs per second (each run after the first is a wake-up: on a virtual machine the
context switches cost more than most per-value work). Standard library only; also a command:
    /usr/bin/python3 bench/threads.py PID [SECONDS]
"""

import os
import sys
import time


def snapshot(pid):
    """{tid: (kind, run_ns, runs)} of the process's threads now; kind is the name up to '/'."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                kind = f.read().strip().split("/")[0]
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                run_ns, _, runs = f.read().split()[:3]
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        out[t] = (kind, int(run_ns), int(runs))
    return out


def profile(before, after, seconds):
    """Per kind of thread, from two snapshots `seconds` apart: {kind: {threads, cpu_pct,
    runs_per_s}}, largest CPU first (a dict keeps that order)."""
    kinds = {}
    for t, (kind, ns, runs) in after.items():
        if t not in before or seconds <= 0:
            continue
        k = kinds.setdefault(kind, {"threads": 0, "cpu_pct": 0.0, "runs_per_s": 0.0})
        k["threads"] += 1
        k["cpu_pct"] += 100.0 * (ns - before[t][1]) / 1e9 / seconds
        k["runs_per_s"] += (runs - before[t][2]) / seconds
    for k in kinds.values():
        k["cpu_pct"] = round(k["cpu_pct"], 2)
        k["runs_per_s"] = round(k["runs_per_s"], 1)
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]["cpu_pct"]))


def summary(prof):
    """One line: 'ib-poll x10 3.1% (1,050 runs/s), ...'."""
    return ", ".join(f"{kind} x{k['threads']} {k['cpu_pct']:.2f}% ({k['runs_per_s']:,.0f} runs/s)"
                     for kind, k in prof.items())


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    pid, seconds = int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    a = snapshot(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    b = snapshot(pid)
    for kind, k in profile(a, b, time.monotonic() - t0).items():
        print(f"{kind:16s} x{k['threads']:<4d} {k['cpu_pct']:6.2f}% of a core "
              f"{k['runs_per_s']:9.1f} runs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
