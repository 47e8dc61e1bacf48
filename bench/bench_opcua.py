#!/usr/bin/python3
"""Benchmark of the OPC UA plugin against node-opcua's server (tests/peers/opcua), secured
(Basic256Sha256, SignAndEncrypt) and published over MQTT (TLS, QoS 1, a local mosquitto):

  read       1,000 nodes polled every 100 ms (mode read), beside a baseline node-opcua client
             (bench/opcua_read_client.js) doing the same reads in the same run;
  subscribe  10,000 monitored items changing every second (mode subscribe): run when the
             plugin has the `mode` key (the opcua-sub work), else reported as skipped.

    bench_opcua.py [SECONDS] [--json FILE]

Figures per scenario: values/s delivered to the broker's subscriber, values lost (gaps in the
records' seq, bad values), CPU s per million values, peak RSS (VmHWM), latency from the value's
source timestamp to its receipt by the subscriber (p50, p99). Targets: 0 lost, <= 1.0 CPU s
per million values in subscribe mode, <= 24 MiB RSS for 10,000 items. Never fails on timing.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from ibtest import Gateway, Mosquitto, session_pki  # noqa: E402
from test_opcua import PEER, OpcuaServer  # noqa: E402

NS = 2
READ_NODES, READ_INTERVAL_MS = 1000, 100
SUB_ITEMS = 10000


class BenchServer(OpcuaServer):
    def __init__(self, dir, extra):
        self.extra = extra
        super().__init__(dir, max_nodes_per_read=READ_NODES)

    def start(self):
        argv = ["node", str(PEER / "server.js"), "--port", str(self.port), "--pki",
                str(self.dir / "pki"), "--port-file", str(self.port_file),
                "--max-nodes-per-read", str(READ_NODES), *self.extra]
        self._spawn_with_port_file(argv, 240, "the OPC UA server")


class Receiver:
    """mosquitto_sub on the data topics: every record with its receipt time (ms)."""

    def __init__(self, broker, cafile):
        self.p = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "--cafile", str(cafile),
             "-q", "1", "-t", "ironbridge/bench/+/+"], stdout=subprocess.PIPE, text=True)
        self.records, self.counting = [], False
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            if self.counting:
                self.records.append((time.time() * 1000, line))

    def stop(self):
        self.p.terminate()
        self.p.wait()


def status_kib(pid, key):
    m = re.search(key + r":\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def cpu_s(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 1) if xs else None


def config(broker, pki, srv, gwpki, groups):
    """groups: list of (name, extra group keys, [(tag, node)])."""
    out = ["gateway: { id: bench }", "log: { level: info }", "north:", "  mqtt:",
           f"    url: mqtts://localhost:{broker.port}", f"    tls: {{ ca: {pki.ca} }}",
           "    qos: 1", "connections:", "  - name: ua", "    plugin: opcua",
           f"    endpoint: {srv.url}", f"    pki_dir: {gwpki}", "    timeout: 10s",
           "    devices:", "      - name: srv", "        groups:"]
    for name, keys, tags in groups:
        out += [f"          - name: {name}"] + [f"            {k}: {v}" for k, v in keys.items()]
        out += ["            tags:"] + [f"              - {{ name: {t}, node: \"{n}\" }}"
                                        for t, n in tags]
    return "\n".join(out) + "\n"


def trust_server(d, gwpki):
    (gwpki / "trusted").mkdir(parents=True, exist_ok=True)
    shutil.copy(d / "pki" / "server" / "own" / "certs" / "certificate.pem",
                gwpki / "trusted" / "server.pem")


def measure_gateway(d, srv, cfg_groups, seconds, warmup=5):
    pki = session_pki()
    gwpki = d / "gwpki"
    trust_server(d, gwpki)
    with Mosquitto(d, tls=pki.server_tls()) as broker:
        rx = Receiver(broker, pki.ca)
        gw = Gateway(config(broker, pki, srv, gwpki, cfg_groups), d, name="gw")
        time.sleep(warmup)
        if not gw.running():
            raise RuntimeError(f"the gateway exited:\n{gw.log()[-2000:]}")
        rx.counting = True
        t0, c0 = time.monotonic(), cpu_s(gw.proc.pid)
        time.sleep(seconds)
        t1, c1 = time.monotonic(), cpu_s(gw.proc.pid)
        rx.counting = False
        hwm = status_kib(gw.proc.pid, "VmHWM")
        gw.stop()
        rx.stop()
    values = bad = 0
    seqs, lat = [], []
    for recv_ms, line in rx.records:
        rec = json.loads(line)
        seqs.append(rec["seq"])
        for v in rec["values"].values():
            if v.get("q", "good") != "good":
                bad += 1
                continue
            values += 1
            lat.append(recv_ms - v.get("ts", rec["ts"]))
    seqs.sort()
    gaps = sum(b - a - 1 for a, b in zip(seqs, seqs[1:]) if b > a + 1)
    lat.sort()
    el = t1 - t0
    return {"values_per_s": round(values / el), "lost_records": gaps, "bad_values": bad,
            "cpu_s_per_million_values": round((c1 - c0) / values * 1e6, 3) if values else None,
            "peak_rss_mib": round(hwm / 1024, 1),
            "latency_ms_p50": pct(lat, 0.5), "latency_ms_p99": pct(lat, 0.99)}


def baseline(srv, seconds):
    env = dict(os.environ, NODE_PATH=str(PEER / "node_modules"))
    r = subprocess.run(["node", str(ROOT / "bench/opcua_read_client.js"), srv.url,
                        str(READ_NODES), str(READ_INTERVAL_MS), str(seconds)],
                       capture_output=True, text=True, env=env, timeout=seconds + 120)
    line = [x for x in r.stdout.splitlines() if x.startswith("{")]
    if r.returncode != 0 or not line:
        return {"failed": (r.stdout + r.stderr).strip().splitlines()[-1:]}
    j = json.loads(line[-1])
    return {"values_per_s": round(j["values"] / j["seconds"]), "lost_records": None,
            "bad_values": j["bad"],
            "cpu_s_per_million_values": round(j["cpu_s"] / j["values"] * 1e6, 3)
            if j["values"] else None,
            "peak_rss_mib": round(j["rss_mib"], 1), "latency_ms_p50": j["latency_ms"]["p50"],
            "latency_ms_p99": j["latency_ms"]["p99"]}


def read_scenario(seconds):
    d = Path(tempfile.mkdtemp(prefix="ib-bench-opcua-r-"))
    with BenchServer(d, ["--bench-read", str(READ_NODES)]) as srv:
        tags = [(f"r{i}", f"ns={NS};s=R{i}") for i in range(READ_NODES)]
        gw = measure_gateway(d, srv, [("g", {"interval_ms": READ_INTERVAL_MS}, tags)], seconds)
        base = baseline(srv, seconds)
    shutil.rmtree(d, ignore_errors=True)
    gw["name"] = f"gateway, read: {READ_NODES:,} nodes every {READ_INTERVAL_MS} ms"
    base["name"] = "baseline node-opcua client, the same reads"
    return [gw, base]


def plugin_has_mode():
    b = os.environ.get("IB_DAEMON")
    pd = os.environ.get("IB_PLUGIN_DIR")
    if not b or not pd:
        return False
    r = subprocess.run([b, "--plugin-dir", pd, "--list-plugins=opcua", "--format", "markdown"],
                       capture_output=True, text=True)
    return "| `mode` |" in r.stdout


def subscribe_scenario(seconds):
    """10,000 monitored items changing every second. Needs the plugin's `mode: subscribe`
    (the opcua-sub work): until then it says so."""
    if not plugin_has_mode():
        return [{"name": f"gateway, subscribe: {SUB_ITEMS:,} items changing every 1 s",
                 "skipped": "the opcua plugin has no `mode` key yet (mode: subscribe comes "
                            "with the opcua-sub branch)"}]
    d = Path(tempfile.mkdtemp(prefix="ib-bench-opcua-s-"))
    with BenchServer(d, ["--bench-sub", str(SUB_ITEMS)]) as srv:
        groups = [(f"s{k}", {"mode": "subscribe", "interval_ms": 1000},
                   [(f"s{i}", f"ns={NS};s=S{i}") for i in range(k * 1000, (k + 1) * 1000)])
                  for k in range(SUB_ITEMS // 1000)]
        gw = measure_gateway(d, srv, groups, seconds, warmup=8)
    shutil.rmtree(d, ignore_errors=True)
    gw["name"] = f"gateway, subscribe: {SUB_ITEMS:,} items changing every 1 s"
    return [gw]


def targets(rows):
    out = []
    for r in rows:
        if "skipped" in r or "failed" in r or r["name"].startswith("baseline"):
            continue
        out.append({"target": f"0 lost ({r['name']})",
                    "met": r["lost_records"] == 0 and r["bad_values"] == 0})
        if "subscribe" in r["name"]:
            out.append({"target": "<= 1.0 CPU s per million values (subscribe)",
                        "met": (r["cpu_s_per_million_values"] or 99) <= 1.0})
            out.append({"target": "<= 24 MiB RSS for 10,000 items",
                        "met": r["peak_rss_mib"] <= 24})
    return out


def markdown(res):
    L = ["| OPC UA scenario | values/s | lost records | bad values | CPU s per million values "
         "| peak RSS MiB | latency p50 / p99 ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["scenarios"]:
        if "skipped" in r or "failed" in r:
            L.append(f"| {r['name']} | {'skipped' if 'skipped' in r else 'FAILED'}: "
                     f"{r.get('skipped') or r.get('failed')} ||||||")
            continue
        lost = "-" if r["lost_records"] is None else r["lost_records"]
        L.append(f"| {r['name']} | {r['values_per_s']:,} | {lost} | {r['bad_values']} | "
                 f"{r['cpu_s_per_million_values']} | {r['peak_rss_mib']} | "
                 f"{r['latency_ms_p50']} / {r['latency_ms_p99']} |")
    L.append("")
    L.append("OPC UA targets: " + "; ".join(("met: " if t["met"] else "**MISSED**: ")
                                           + t["target"] for t in res["targets"]))
    return "\n".join(L) + "\n"


def measure(seconds):
    rows = read_scenario(seconds) + subscribe_scenario(seconds)
    return {"title": "OPC UA against node-opcua's server (Basic256Sha256 SignAndEncrypt; "
                     "gateway: TLS, QoS 1 to a local mosquitto)",
            "window_s": seconds, "scenarios": rows, "targets": targets(rows)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seconds", nargs="?", type=float, default=10)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    res = measure(args.seconds)
    res["markdown"] = markdown(res)
    print(f"\n{res['title']}, {args.seconds:.0f} s windows, {os.cpu_count()} CPUs\n")
    print(res["markdown"])
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
