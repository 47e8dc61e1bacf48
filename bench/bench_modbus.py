#!/usr/bin/python3
"""Benchmark of the Modbus planner and poller: how many values per second the gateway reads from
the project's simulator and publishes over MQTT, next to a bare libmodbus loop sending the same
requests to the same simulator in the same run (the practical limit of this machine).

    bench_modbus.py PATH/TO/bench_modbus_raw [SECONDS]

Scenarios: a dense map (1,000 adjacent uint16) and a sparse one (1,000 uint16 with 3-register
gaps, read over by the default max_gap), with one and with ten connections. The gateway runs
flat out: each connection has enough devices (each a 1,000-tag group at the shortest interval,
10 ms) that its poller never waits. The values it reads per second come from the daemon's own
STATUS line (sent to a NOTIFY_SOCKET of ours); the values it publishes are those minus the
records its queue dropped because the MQTT side could not keep up; its CPU comes from /proc.
The north is TLS with QoS 1 to a local mosquitto (IB_BENCH_NORTH=plain0: plaintext, QoS 0).
Prints a Markdown table; never fails on timing. IB_BENCH_ONLY=dense-1,sparse-10 picks
scenarios.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ibtest import (Gateway, Mosquitto, Simulator, gateway_config, note, session_pki,
                    stop_all)

TAGS = 1000
INTERVAL_MS = 10
SCENARIOS = [("dense", 1), ("sparse", 1), ("dense", 10), ("sparse", 10)]
if os.environ.get("IB_BENCH_ONLY"):  # e.g. IB_BENCH_ONLY=dense-1,sparse-10
    SCENARIOS = [(k, int(c)) for k, c in
                 (x.split("-") for x in os.environ["IB_BENCH_ONLY"].split(","))]


def sim_map():
    lines = ["# bench_modbus: 4,000 holding registers with varied constants", "size holding 4000"]
    for a in range(0, 4000):
        lines.append(f"holding {a} uint16 AB const {(a * 7919) % 65536}")
    return "\n".join(lines) + "\n"


def tag_list(kind):
    stride = 4 if kind == "sparse" else 1
    return [{"name": f"t{i:04d}", "table": "holding", "address": i * stride}
            for i in range(TAGS)]


PLAIN = os.environ.get("IB_BENCH_NORTH") == "plain0"


def config_text(broker, pki, port, kind, conns, devices_per_conn):
    """YAML with the tag list written once (an anchor) and shared by every group."""
    import json
    tags = tag_list(kind)
    out = ["gateway: { id: bench }", "log: { level: info }", "north:", "  mqtt:"]
    if PLAIN:
        out += [f"    url: mqtt://127.0.0.1:{broker.port}", "    allow_insecure: true",
                "    qos: 0"]
    else:
        out += [f"    url: mqtts://localhost:{broker.port}", f"    tls: {{ ca: {pki.ca} }}",
                "    qos: 1"]
    out.append("connections:")
    first = True
    for c in range(conns):
        out += [f"  - name: c{c}", "    plugin: modbus", "    host: 127.0.0.1",
                f"    port: {port}", "    devices:"]
        for d in range(devices_per_conn):
            out += [f"      - name: c{c}d{d}", "        unit_id: 1", "        groups:",
                    "          - name: g", f"            interval_ms: {INTERVAL_MS}"]
            if first:
                out.append("            tags: &tags")
                out += ["              - " + json.dumps(t) for t in tags]
                first = False
            else:
                out.append("            tags: *tags")
    return "\n".join(out) + "\n"


def run_raw(raw_exe, port, conns, seconds, kind):
    r = subprocess.run([raw_exe, str(port), str(conns), str(seconds), kind, str(TAGS)],
                       capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise RuntimeError(f"bench_modbus_raw failed: {r.stderr}")
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", r.stdout)}


def proc_cpu_s(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_gateway(d, port, kind, conns, devices, seconds):
    """Returns (values read/s, values published/s, CPU s/s of the daemon, records dropped in
    the window, read requests of all groups once from the plugin's log, mean queue)."""
    pki = session_pki()
    Path(d).mkdir(parents=True, exist_ok=True)
    sock_path = str(Path(d) / "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(sock_path)
    ns.settimeout(0.2)
    try:
        broker_kw = {"plain": True} if PLAIN else {"tls": pki.server_tls()}
        with Mosquitto(d, **broker_kw) as broker:
            gw = Gateway(config_text(broker, pki, port, kind, conns, devices), d,
                         name=f"gw-{kind}-{conns}", env={"NOTIFY_SOCKET": sock_path})
            statuses = []

            def read_status(until):
                while time.monotonic() < until:
                    try:
                        msg = ns.recv(4096).decode(errors="replace")
                    except socket.timeout:
                        continue
                    for line in msg.splitlines():
                        if line.startswith("STATUS=") and "values/s" in line:
                            statuses.append((time.monotonic(), line[7:]))

            read_status(time.monotonic() + 3)       # start-up: config, connects, broker
            if not gw.running():
                raise RuntimeError(f"the gateway exited:\n{gw.log()[-2000:]}")
            t0, c0 = time.monotonic(), proc_cpu_s(gw.proc.pid)
            first = len(statuses)
            read_status(t0 + seconds)
            t1, c1 = time.monotonic(), proc_cpu_s(gw.proc.pid)
            log = gw.log()
            gw.stop()
    finally:
        ns.close()
    window = [s for _, s in statuses[first:]]
    before = [s for _, s in statuses[:first]]
    if os.environ.get("IB_BENCH_VERBOSE"):
        print("\n".join(f"  {t - t0:+.1f}s {s}" for t, s in statuses), file=sys.stderr)
    def dropped(s):
        return int(re.search(r"(\d+) dropped", s).group(1))
    rates = [float(re.search(r"([\d.]+) values/s", s).group(1)) for s in window]
    queued = [int(re.search(r"queue (\d+) records", s).group(1)) for s in window]
    lost = dropped(window[-1]) - dropped(before[-1] if before else window[0]) if window else 0
    reqs = sum(int(r) for r in re.findall(r"\d+ tags in (\d+) read requests when", log)) or -1
    rate = sum(rates) / len(rates) if rates else 0.0
    published = rate - lost * TAGS / (t1 - t0)
    return rate, published, (c1 - c0) / (t1 - t0), lost, reqs, \
        (sum(queued) / len(queued) if queued else 0)


def main():
    raw_exe = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 4
    d = Path(tempfile.mkdtemp(prefix="ib-bench-modbus-"))
    rows = []
    try:
        with Simulator(sim_map(), d, extra=["--quiet"]) as sim:
            for kind, conns in SCENARIOS:
                raw = run_raw(raw_exe, sim.port, conns, seconds, kind)
                # Enough 10 ms groups per connection that one round takes 3 periods or more
                # at the raw loop's pace: the poller never sleeps.
                cycle_s = seconds * conns / max(raw["cycles"], 1)
                devices = max(2, min(400, int(3 * INTERVAL_MS / 1000 / cycle_s) + 1))
                rate, published, cpu_per_s, dropped, reqs, queue = run_gateway(
                    d / f"{kind}-{conns}", sim.port, kind, conns, devices, seconds)
                # This machine's pace wanders: measure the limit again after the gateway and
                # keep the higher of the two, so the ratio is not flattered.
                again = run_raw(raw_exe, sim.port, conns, seconds, kind)
                if again["values_per_s"] > raw["values_per_s"]:
                    raw = again
                rows.append((kind, conns, int(raw["requests_per_cycle"]), reqs, devices,
                             raw["values_per_s"], rate, published,
                             raw["cpu_s"] / raw["values"] * 1e6,
                             cpu_per_s / rate * 1e6 if rate else float("nan"), dropped, queue))
    finally:
        stop_all()
        if os.environ.get("IB_KEEP") != "1":
            shutil.rmtree(d, ignore_errors=True)
    print()
    north = "plaintext MQTT, QoS 0" if PLAIN else "MQTT over TLS, QoS 1"
    print(f"# bench_modbus: {TAGS} uint16 tags per group, {seconds:g} s per measurement, "
          f"{os.cpu_count()} CPUs; gateway: {north} to a local mosquitto")
    print("| map | connections | requests per cycle (planner / gateway) | gateway groups per "
          "connection | raw libmodbus values/s | gateway values/s read | gateway values/s "
          "published | published / raw | raw CPU s per million values | gateway CPU s per "
          "million values read | records dropped | mean queue (records) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (kind, conns, plan_reqs, log_reqs, devices, raw_rate, rate, published, raw_cpu, gw_cpu,
         dropped, queue) in rows:
        gw_reqs = log_reqs // (devices * conns) if log_reqs > 0 else "?"
        print(f"| {kind} | {conns} | {plan_reqs} / {gw_reqs} | {devices} | {raw_rate:,.0f} | "
              f"{rate:,.0f} | {published:,.0f} | {published / raw_rate:.0%} | {raw_cpu:.3f} | "
              f"{gw_cpu:.3f} | {dropped} | {queue:.0f} |")
    print("requests per cycle: Modbus read requests for one poll of one 1,000-tag group (the "
          "gateway's from its own log). raw: the same requests in a bare libmodbus loop, one "
          "thread per connection. published: read minus the values of records dropped from the "
          "full queue.")


if __name__ == "__main__":
    main()
