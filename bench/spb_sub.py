#!/usr/bin/python3
"""The benchmark's Sparkplug subscriber: counts the DDATA messages, metrics (values) and payload
bytes of a window on spBv1.0/{group}/DDATA/#, and the seq gaps. Writes a ready file once
subscribed; SIGUSR1 starts the window, SIGUSR2 prints one line of JSON and exits. Payloads are
decoded with classes protoc generates from daemon/sparkplug.proto (python3-protobuf's C++
backend), one ParseFromString per message."""

import argparse
import importlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--ready-file", required=True)
    a = ap.parse_args()
    gen = tempfile.mkdtemp(prefix="ib-spb-sub-")
    subprocess.run(["protoc", f"--proto_path={ROOT / 'daemon'}", f"--python_out={gen}",
                    str(ROOT / "daemon" / "sparkplug.proto")], check=True)
    sys.path.insert(0, gen)
    pb = importlib.import_module("sparkplug_pb2")
    st = {"counting": False, "records": 0, "values": 0, "bytes": 0, "null": 0, "seq_gaps": 0,
          "last_seq": None, "t0": None}
    lock = threading.Lock()
    done = threading.Event()

    def on_message(c, ud, m):
        p = pb.Payload()
        p.ParseFromString(m.payload)
        with lock:
            if st["last_seq"] is not None and p.seq != (st["last_seq"] + 1) % 256:
                st["seq_gaps"] += st["counting"]
            st["last_seq"] = p.seq
            if not st["counting"]:
                return
            st["records"] += 1
            st["values"] += len(p.metrics)
            st["null"] += sum(1 for x in p.metrics if x.is_null)
            st["bytes"] += len(m.payload)

    c = mqtt.Client(client_id="ib-bench-spb-sub")
    c.on_message = on_message
    c.on_connect = lambda c, ud, fl, rc: c.subscribe([(a.topic, 0), ("spBv1.0/+/+/bench", 0)])
    c.on_subscribe = lambda *x: Path(a.ready_file).write_text("ready\n")
    c.connect("127.0.0.1", a.port, 60)

    def start(*_):
        with lock:
            st["counting"] = True
            st["t0"] = time.monotonic()

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, lambda *_: done.set())
    c.loop_start()
    done.wait()
    c.loop_stop()
    with lock:
        el = time.monotonic() - st["t0"] if st["t0"] else 0
        print(json.dumps({"records": st["records"], "values": st["values"], "bytes": st["bytes"],
                          "null": st["null"], "seq_gaps": st["seq_gaps"], "window_s": el}))


if __name__ == "__main__":
    main()
