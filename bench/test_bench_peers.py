#!/usr/bin/python3
"""bench/test_bench_peers.py: checks of the benchmark suite's own logic (meson test
bench-suite): the Node-RED flow generated from each workload (reads that cover every register,
one chain per device, loopback-only settings), its two function nodes run in Node.js against a
known register image (the record the subscriber reads: seq, device, every tag's value decoded
as the gateway decodes it, quality good), and the medians, ratios and targets of bench/run.py.
Never measures anything; the Node.js part is skipped (and says so) without `node`."""

import json
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_nodered  # noqa: E402
import run  # noqa: E402
import threads  # noqa: E402

# Runs a function node's body as Node-RED does (msg, context, global; an array return sends
# several messages on the output) and prints what it returned, as JSON.
NODE_HARNESS = r"""
const fs = require('fs');
const [plan, record, regs] = JSON.parse(fs.readFileSync(0, 'utf8'));
const ctx = () => { const m = new Map(); return {get: k => m.get(k), set: (k, v) => m.set(k, v)}; };
const glob = ctx();
const run = (body, c, msg) => new Function('msg', 'context', 'global', 'Buffer', body)(msg, c, glob, Buffer);
const pc = ctx(), rc = ctx(), out = [];
for (let poll = 0; poll < 2; poll++) {
    const reads = run(plan, pc, {payload: Date.now()})[0];
    for (const r of reads.reverse()) {   // answers in any order
        const a = r.payload.address, q = r.payload.quantity;
        const m = run(record, rc, {poll: r.poll, payload: regs.slice(a, a + q),
                                   modbusRequest: r.payload});
        if (m) out.push({topic: m.topic, payload: JSON.parse(JSON.stringify(m.payload)),
                         reads: reads.length});
    }
}
console.log(JSON.stringify(out));
"""


def register_image(w):
    total = run.CLOCK_REGS + w["tags"] * w["stride"]
    regs = [(7 * i + 3) % 65536 for i in range(total)]
    regs[0:4] = [0x0000, 0x0193, 0x1234, 0x5678]  # clock: hi = 0x193, lo = 0x12345678
    return regs


class FlowTest(unittest.TestCase):
    def test_reads_cover_every_register_once(self):
        for letter in "ABCD":
            w = run.WORKLOADS[letter]
            blocks, total = peer_nodered.blocks(w, run.CLOCK_REGS)
            at = 0
            for a, q in blocks:
                self.assertEqual(a, at, letter)
                self.assertTrue(1 <= q <= 125, letter)
                at += q
            self.assertEqual(at, total, letter)
        self.assertEqual(len(peer_nodered.blocks(run.WORKLOADS["B"], 4)[0]), 9)

    def test_one_chain_per_device_wired_to_its_own_connection(self):
        w = run.WORKLOADS["B"]
        ports = list(range(20000, 20000 + w["devices"]))
        nodes = peer_nodered.flow(w, 100, ports, 1883, 1, run.CLOCK_REGS, "peer/x")
        by_id = {n["id"]: n for n in nodes}
        self.assertEqual(len(by_id), len(nodes))
        clients = [n for n in nodes if n["type"] == "modbus-client"]
        self.assertEqual(sorted(int(c["tcpPort"]) for c in clients), ports)
        for c in clients:
            self.assertEqual(c["tcpHost"], "127.0.0.1")
        for d in range(w["devices"]):
            tick = by_id[f"d{d}-tick"]
            self.assertEqual(float(tick["repeat"]), 0.1)
            get = by_id[tick["wires"][0][0]]["wires"][0][0]
            self.assertEqual(by_id[get]["server"], f"d{d}-client")
            rec = by_id[by_id[get]["wires"][0][0]]
            out = by_id[rec["wires"][0][0]]
            self.assertEqual((out["type"], out["qos"], out["broker"]), ("mqtt out", "1", "broker"))
        broker = by_id["broker"]
        self.assertEqual((broker["broker"], broker["port"]), ("127.0.0.1", "1883"))

    def test_settings_loopback_no_editor_no_telemetry(self):
        with tempfile.TemporaryDirectory() as d:
            argv, user = peer_nodered.prepare(d, "B", run.WORKLOADS["A"], 1000, [1502], 1883, 1,
                                              run.CLOCK_REGS, "peer/x", 1999)
            s = (user / "settings.js").read_text()
            json.loads((user / "flows.json").read_text())
        for want in ("uiHost: '127.0.0.1'", "httpAdminRoot: false", "httpNodeRoot: false",
                     "telemetry: { enabled: false", "projects: { enabled: false }"):
            self.assertIn(want, s)
        self.assertEqual(argv[0], "node")
        self.assertIn("--userDir", argv)

    @unittest.skipUnless(shutil.which("node"), "node is not installed")
    def test_function_nodes_build_the_record_the_subscriber_reads(self):
        for letter in "ACD":
            w = dict(run.WORKLOADS[letter], devices=1)
            nodes = {n["id"]: n for n in
                     peer_nodered.flow(w, 1000, [1502], 1883, 1, run.CLOCK_REGS, "peer/x")}
            regs = register_image(w)
            r = subprocess.run(["node", "-e", NODE_HARNESS], capture_output=True, text=True,
                               input=json.dumps([nodes["d0-plan"]["func"],
                                                 nodes["d0-record"]["func"], regs]), timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = json.loads(r.stdout)
            self.assertEqual(len(out), 2, letter)  # one record per poll
            self.assertEqual([o["payload"]["seq"] for o in out], [1, 2])
            p = out[0]["payload"]
            self.assertEqual((out[0]["topic"], p["device"]), ("peer/x/d0/g", "d0"))
            v = p["values"]
            self.assertEqual(len(v), w["tags"] + 2, letter)
            self.assertEqual((v["clk_hi"]["v"], v["clk_lo"]["v"]), (0x193, 0x12345678))
            self.assertTrue(all(x["q"] == "good" for x in v.values()))
            for i in (0, 1, w["tags"] - 1):
                a = run.CLOCK_REGS + i * w["stride"]
                if w["type"] == "float32":  # CDAB: the second register holds the high word
                    want = struct.unpack(">f", struct.pack(">HH", regs[a + 1], regs[a]))[0]
                else:
                    want = regs[a]
                self.assertEqual(v[f"t{i}"]["v"], want, f"{letter} t{i}")
            # what bench_sub looks for: "seq": near the start, "NAME":{"v":, "q":"
            text = json.dumps(p, separators=(",", ":"))
            self.assertLess(text.index('"seq":'), 200)
            self.assertIn('"clk_hi":{"v":403,"q":"good","ts":', text)


class FiguresTest(unittest.TestCase):
    def run_of(self, cpu, rss, lost=0):
        return {"delivered_values_per_s": 100000, "lost_values": lost, "cpu_s": cpu,
                "cpu_pct_of_one_core": cpu * 10, "cpu_s_per_million_values": cpu,
                "peak_rss_kib": rss, "rss_kib": rss, "interval_ms": 100,
                "latency_ms": {"p99": 50}, "devices_seen": 10, "devices": 10,
                "polls_per_device_expected": 100, "polls_per_device_min": 100,
                "pipeline_latency_ms": {"max": 10}}

    def test_median_of_each_figure_and_every_run_kept(self):
        m = run.median_run([self.run_of(0.5, 14000), self.run_of(0.3, 15000),
                            self.run_of(0.9, 13000, lost=5)])
        self.assertEqual((m["cpu_s_per_million_values"], m["peak_rss_kib"], m["lost_values"]),
                         (0.5, 14000, 0))
        self.assertEqual((m["median_of"], len(m["runs"])), (3, 3))
        self.assertNotIn("runs", m["runs"][0])

    def test_targets_of_issue_21(self):
        met = {t["target"]: t["met"] for t in run.targets("B", self.run_of(0.35, 12 * 1024), None)}
        self.assertTrue(met["<= 0.35 CPU s/M values"] and met["<= 12 MB peak RSS"])
        met = {t["target"]: t["met"] for t in run.targets("B", self.run_of(0.36, 12 * 1024 + 1),
                                                          None)}
        self.assertFalse(met["<= 0.35 CPU s/M values"] or met["<= 12 MB peak RSS"])
        e = dict(self.run_of(0.3, 20 * 1024), cpu_pct_of_one_core=3.1)
        met = {t["target"]: t["met"] for t in run.targets("E", e, None)}
        self.assertEqual((met["<= 3% of a core"], met["<= 20 MB peak RSS"]), (False, True))
        f = dict(self.run_of(0.3, 1), delivered_values_per_s=850)
        met = {t["target"]: t["met"] for t in run.targets("F", f, 1000)}
        self.assertTrue(met[">= 85% of raw libmodbus (1 connection)"])
        peer = run.targets("B", self.run_of(9, 1), None, peer=True)
        self.assertEqual([t["target"] for t in peer],
                         ["no loss", "p99 < 120 ms", "every device at its period"])

    def test_ratio(self):
        self.assertEqual(run.ratio(0.5, 4.0), "1/8.0")
        self.assertEqual(run.ratio(2.0, 1.0), "2.0x")
        self.assertEqual(run.ratio(0, 1.0), "?")


class ThreadProfile(unittest.TestCase):
    """bench/threads.py: per kind of thread from two schedstat snapshots."""

    def test_profile(self):
        a = {"1": ("ironbridge", 0, 5), "2": ("ib-poll", 1_000_000, 10),
             "3": ("ib-poll", 0, 0), "9": ("ib-load", 5, 1)}
        b = {"1": ("ironbridge", 10_000_000, 7), "2": ("ib-poll", 21_000_000, 110),
             "3": ("ib-poll", 20_000_000, 100), "4": ("ib-north", 99, 99)}
        p = threads.profile(a, b, 2.0)
        # a thread that started (4) or ended (9) between the snapshots is left out
        self.assertEqual(list(p), ["ib-poll", "ironbridge"])
        self.assertEqual(p["ib-poll"], {"threads": 2, "cpu_pct": 2.0, "runs_per_s": 100.0})
        self.assertEqual(p["ironbridge"], {"threads": 1, "cpu_pct": 0.5, "runs_per_s": 1.0})
        self.assertEqual(threads.summary(p),
                         "ib-poll x2 2.00% (100 runs/s), ironbridge x1 0.50% (1 runs/s)")

    def test_snapshot_of_this_process(self):
        import os
        snap = threads.snapshot(os.getpid())
        self.assertTrue(snap)
        self.assertTrue(all(ns >= 0 and runs >= 0 for _, ns, runs in snap.values()))
        self.assertEqual(threads.snapshot(2 ** 22 + 12345), {})


if __name__ == "__main__":
    unittest.main(verbosity=2)
