#!/usr/bin/python3
"""Benchmark of the S7 plugin: a dense workload (10 DBs x 1,000 REAL, one group per DB) read
from the snap7 server (tests/peers/s7) and published over MQTT (TLS, QoS 1, a local mosquitto),
next to a raw loop of the same Read Var requests on one connection, with as many in flight, with
the plugin's own wire and session code (bench_s7_raw) in the same run.

    bench_s7.py PATH/TO/bench_s7_raw [SECONDS]

Scenarios: groups at 100 ms (the issue's workload: CPU per million values) and polled
continuously (interval 0: the values/s the gateway reaches against the raw loop). Values per
second come from the daemon's STATUS line (a NOTIFY_SOCKET of ours), CPU and RSS from /proc,
requests per poll from the plugin's plan log line beside the fewest the PDU allows. Prints a
Markdown table; never fails on timing.
"""

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


def main():
    raw_exe = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10
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
            rows.append((interval, rate, cpu, rss, pdu, reqs))
    raw_rate = raw["values_per_s"]
    raw_cpu = raw["cpu_s"] / raw["values"] * 1e6
    print(f"\nS7 benchmark: {DBS} DBs x {TAGS} REAL against the snap7 server, {seconds:.0f} s "
          f"windows, {os.cpu_count()} CPUs; gateway: TLS, QoS 1 to a local mosquitto\n")
    print("| scenario | PDU | requests per poll (fewest) | values/s | of raw | CPU s per "
          "million values | RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    print(f"| raw loop (bench_s7_raw, {raw['jobs']:.0f} in flight) | {raw['pdu']:.0f} | "
          f"{raw['requests_per_poll']:.0f} "
          f"({fewest(int(raw['pdu']))}) | {raw_rate:,.0f} | 100% | {raw_cpu:.3f} | - |")
    for interval, rate, cpu, rss, pdu, reqs in rows:
        name = f"gateway, {interval} ms" if interval else "gateway, continuous"
        per_m = cpu / rate * 1e6 if rate else float("nan")
        print(f"| {name} | {pdu} | {reqs} ({fewest(pdu) if pdu else '?'}) | {rate:,.0f} | "
              f"{rate / raw_rate:.0%} | {per_m:.3f} | {rss / 1024:.1f} |")


if __name__ == "__main__":
    main()
