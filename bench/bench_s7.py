#!/usr/bin/python3
"""Benchmark of the S7 plugin: a dense workload (10 DBs x 1,000 REAL, one group per DB) read
from the snap7 server (tests/peers/s7) and published over MQTT (TLS, QoS 1, a local mosquitto),
next to a raw loop of the same Read Var requests on one connection, with as many in flight, with
the plugin's own wire and session code (bench_s7_raw) in the same run.

    bench_s7.py PATH/TO/bench_s7_raw [SECONDS] [--json FILE]

--json FILE also writes the figures as JSON (bench/run.py, the suite, reads them into its
table and results file).

Scenarios: groups at 100 ms (the issue's workload: CPU per million values) and polled
continuously (interval 0: the values/s the gateway reaches against the raw loop). Values per
second come from the daemon's STATUS line (a NOTIFY_SOCKET of ours), CPU and RSS from /proc,
requests per poll from the plugin's plan log line beside the fewest the PDU allows. Prints a
Markdown table; never fails on timing.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from ibtest import Gateway, Mosquitto, session_pki  # noqa: E402
from s7peer import S7Peer  # noqa: E402

DBS = 10
TAGS = 1000


def config_text(broker, pki, port, interval_ms):
    out = ["gateway: { id: bench }", "log: { level: debug }", "north:", "  mqtt:",
           f"    url: mqtts://localhost:{broker.port}", f"    tls: {{ ca: {pki.ca} }}",
           "    qos: 1", "connections:", "  - name: plc", "    plugin: s7",
           "    host: 127.0.0.1", f"    port: {port}", "    devices:", "      - name: cpu",
           "        groups:"]
    for d in range(1, DBS + 1):
        out += [f"          - name: db{d}", f"            interval_ms: {interval_ms}",
                "            tags:"]
        out += [f"              - {{ name: r{d}_{i}, address: DB{d}.DBD{4 * i}, type: real }}"
                for i in range(TAGS)]
    return "\n".join(out) + "\n"


def proc_cpu_s(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def fewest(pdu):
    """The fewest requests per poll of all groups: per DB, 4,000 bytes plus at least one item
    header, in requests of at most pdu - 14 bytes."""
    return DBS * -(-(4 * TAGS + 4) // (pdu - 14))


def run_gateway(d, port, interval_ms, seconds):
    pki = session_pki()
    Path(d).mkdir(parents=True, exist_ok=True)
    sock_path = str(Path(d) / "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(sock_path)
    ns.settimeout(0.2)
    statuses = []
    try:
        with Mosquitto(d, tls=pki.server_tls()) as broker:
            gw = Gateway(config_text(broker, pki, port, interval_ms), d, name=f"gw-{interval_ms}",
                         env={"NOTIFY_SOCKET": sock_path})

            def read_status(until):
                while time.monotonic() < until:
                    try:
                        msg = ns.recv(4096).decode(errors="replace")
                    except socket.timeout:
                        continue
                    for line in msg.splitlines():
                        if line.startswith("STATUS=") and "values/s" in line:
                            statuses.append(line[7:])

            read_status(time.monotonic() + 4)
            if not gw.running():
                raise RuntimeError(f"the gateway exited:\n{gw.log()[-2000:]}")
            t0, c0, first = time.monotonic(), proc_cpu_s(gw.proc.pid), len(statuses)
            read_status(t0 + seconds)
            t1, c1 = time.monotonic(), proc_cpu_s(gw.proc.pid)
            rss = rss_kib(gw.proc.pid)
            log = gw.log()
            gw.stop()
    finally:
        ns.close()
    rates = [float(re.search(r"([\d.]+) values/s", s).group(1)) for s in statuses[first:]]
    rate = sum(rates) / len(rates) if rates else 0.0
    m = re.search(r"PDU (\d+) bytes.*?(\d+) Read Var requests when", log)
    pdu, reqs = (int(m.group(1)), int(m.group(2))) if m else (0, -1)
    cpu = (c1 - c0) / (t1 - t0)
    return rate, cpu, rss, pdu, reqs


def targets(raw_rate, rows):
    """The issue's targets: >= 80% of the raw loop's values/s polling continuously, <= 0.5 CPU s
    per million values at 100 ms."""
    out = []
    for r in rows:
        if r["interval_ms"] == 0:
            out.append({"target": ">= 80% of the raw loop's values/s, continuous",
                        "met": r["values_per_s"] >= 0.8 * raw_rate})
        elif r["interval_ms"] == 100:
            out.append({"target": "<= 0.5 CPU s per million values at 100 ms",
                        "met": r["cpu_s_per_million_values"] is not None
                        and r["cpu_s_per_million_values"] <= 0.5})
    return out


def measure(raw_exe, seconds):
    """Runs the raw loop and both gateway scenarios; the figures as a dict."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="ib-bench-s7-"))
    with S7Peer(d, {db: 4 * TAGS for db in range(1, DBS + 1)}, pdu=480) as peer:
        r = subprocess.run([raw_exe, str(peer.port), str(seconds), str(DBS), str(TAGS)],
                           capture_output=True, text=True, timeout=seconds + 60)
        if r.returncode != 0:
            raise SystemExit(f"bench_s7_raw failed: {r.stderr}")
        raw = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", r.stdout)}
        rows = []
        for interval in (100, 0):
            rate, cpu, rss, pdu, reqs = run_gateway(d / f"i{interval}", peer.port, interval,
                                                    seconds)
            rows.append({"name": f"gateway, {interval} ms" if interval else "gateway, continuous",
                         "interval_ms": interval, "values_per_s": round(rate),
                         "of_raw": round(rate / raw["values_per_s"], 3),
                         "cpu_s_per_million_values": round(cpu / rate * 1e6, 3) if rate else None,
                         "rss_mib": round(rss / 1024, 1), "pdu": pdu, "requests_per_poll": reqs,
                         "fewest_requests_per_poll": fewest(pdu) if pdu else None})
    raw_pdu = int(raw["pdu"])
    res = {"title": f"S7: {DBS} DBs x {TAGS:,} REAL against the snap7 server (100 ms and "
                    "continuous; gateway: TLS, QoS 1 to a local mosquitto)",
           "window_s": seconds,
           "raw": {"name": f"raw loop (bench_s7_raw, {raw['jobs']:.0f} in flight)",
                   "values_per_s": round(raw["values_per_s"]), "of_raw": 1.0,
                   "cpu_s_per_million_values": round(raw["cpu_s"] / raw["values"] * 1e6, 3),
                   "rss_mib": None, "pdu": raw_pdu,
                   "requests_per_poll": int(raw["requests_per_poll"]),
                   "fewest_requests_per_poll": fewest(raw_pdu)},
           "scenarios": rows}
    res["targets"] = targets(raw["values_per_s"], rows)
    return res


def markdown(res):
    """The figures as a Markdown table (also used by bench/run.py)."""
    L = ["| S7 scenario | PDU | requests per poll (fewest) | values/s | of raw | CPU s per "
         "million values | RSS MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in [res["raw"]] + res["scenarios"]:
        cpu = r["cpu_s_per_million_values"]
        L.append(f"| {r['name']} | {r['pdu'] or '?'} | {r['requests_per_poll']} "
                 f"({r['fewest_requests_per_poll'] or '?'}) | {r['values_per_s']:,} | "
                 f"{r['of_raw']:.0%} | {'-' if cpu is None else f'{cpu:.3f}'} | "
                 f"{'-' if r['rss_mib'] is None else r['rss_mib']} |")
    L.append("")
    L.append("S7 targets: " + "; ".join(("met: " if t["met"] else "**MISSED**: ") + t["target"]
                                        for t in res["targets"]))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw_exe")
    ap.add_argument("seconds", nargs="?", type=float, default=10)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    res = measure(args.raw_exe, args.seconds)
    print(f"\n{res['title']}, {args.seconds:.0f} s windows, {os.cpu_count()} CPUs\n")
    print(markdown(res))
    if args.json:
        res["markdown"] = markdown(res)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
