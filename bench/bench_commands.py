"""Workload K of bench/run.py: commands from the platform (docs/commands.md) while workload B
runs (10 devices x 1,000 uint16 every 100 ms). Measures, with a minimal MQTT 3.1.1 client of
its own (standard library only, QoS 0 on loopback, so that no client library is measured):

- round-trip latency of a write (request published -> answer received), one request at a
  time, p50/p99/max over `n` requests, against the issue's target (p99 under one poll interval
  plus 50 ms);
- commands per second sustained on one connection: a burst of `burst` requests to one device,
  from the first request sent to the last answer received.
"""

import json
import socket
import struct
import time

LOOPBACK = "127.0.0.1"


def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


class MiniMqtt:
    """Just enough MQTT 3.1.1: connect, subscribe (QoS 0), publish (QoS 0), read publishes."""

    def __init__(self, port, client_id):
        self.s = socket.create_connection((LOOPBACK, port), 5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        var = _str("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 60)
        self._send(0x10, var + _str(client_id))
        t, _ = self._packet(5)
        if t != 0x20:
            raise RuntimeError("no CONNACK")

    def _send(self, first, body):
        self.s.sendall(bytes([first]) + _varint(len(body)) + body)

    def _packet(self, timeout):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, mul, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mul
                    mul *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + n:
                    pkt = self.buf[:i + n]
                    self.buf = self.buf[i + n:]
                    return pkt[0] & 0xF0, pkt[i:]
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("broker closed the connection")
            self.buf += chunk

    def subscribe(self, topic):
        self._send(0x82, struct.pack(">H", 1) + _str(topic) + b"\x00")
        t, _ = self._packet(5)
        if t != 0x90:
            raise RuntimeError("no SUBACK")

    def publish(self, topic, payload):
        self._send(0x30, _str(topic) + payload.encode())

    def next_message(self, timeout):
        """(topic, payload bytes) of the next PUBLISH, or None at the timeout."""
        try:
            while True:
                t, body = self._packet(timeout)
                if t == 0x30:
                    n = struct.unpack(">H", body[:2])[0]
                    return body[2:2 + n].decode(), body[2 + n:]
        except socket.timeout:
            return None

    def close(self):
        try:
            self.s.sendall(b"\xe0\x00")
        finally:
            self.s.close()


def _pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 1) if xs else None


def measure(mqtt_port, device, tag, n=200, burst=2000, interval_ms=100):
    req_t, ans_t = "ironbridge/bench/command", "ironbridge/bench/command/response"
    c = MiniMqtt(mqtt_port, "bench-commands")
    c.subscribe(ans_t)
    lat, bad = [], 0
    for i in range(n):
        rid = f"lat-{i}"
        t0 = time.monotonic()
        c.publish(req_t, json.dumps({"id": rid, "device": device, "write": {tag: i % 1000},
                                     "ts": int(time.time() * 1000)}))
        while True:
            m = c.next_message(5)
            if m is None:
                bad += 1
                break
            a = json.loads(m[1])
            if a.get("id") == rid:
                lat.append((time.monotonic() - t0) * 1000)
                bad += not a.get("ok")
                break
        time.sleep(0.01)  # one at a time, spread over the poll phase
    t0 = time.monotonic()
    for i in range(burst):
        c.publish(req_t, json.dumps({"id": f"burst-{i}", "device": device,
                                     "write": {tag: i % 1000}, "ts": int(time.time() * 1000)}))
    got, ok = 0, 0
    while got < burst:
        m = c.next_message(10)
        if m is None:
            break
        a = json.loads(m[1])
        if str(a.get("id", "")).startswith("burst-"):
            got += 1
            ok += bool(a.get("ok"))
    dt = time.monotonic() - t0
    c.close()
    p99 = _pct(lat, 99)
    return {"requests": n, "answered": len(lat), "not_ok": bad,
            "latency_ms": {"p50": _pct(lat, 50), "p99": p99, "max": round(max(lat), 1)
                           if lat else None},
            "target_p99_ms": interval_ms + 50,
            "target_met": p99 is not None and p99 < interval_ms + 50,
            "burst": burst, "burst_answered": got, "burst_ok": ok,
            "burst_seconds": round(dt, 3),
            "commands_per_s": round(got / dt) if dt > 0 else None}
