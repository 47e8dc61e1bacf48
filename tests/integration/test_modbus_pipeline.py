#!/usr/bin/python3
"""Modbus TCP with several requests in flight (max_outstanding, issue 21) end to end through the
daemon (--once): exact values with max_outstanding 8 against pymodbus, the project's simulator
and a scripted peer of ours that answers out of order; the fall-back to one request at a time,
logged once, against scripted peers that mishandle several in flight (answer only the first of
a burst, mangle the transaction ids, answer "busy", reset the connection); the libmodbus
implementation selectable and exact; max_outstanding refused where it cannot work."""

import re
import socket
import struct
import threading
import time

from ibtest import (PymodbusServer, Simulator, check, device, gateway_config, group,
                    modbus_connection, mqtt_section, note, run, run_check, run_once)

N_REGS = 300       # holding 0..299, read in 8 requests of at most 40 registers
MAX_REGS = 40


def value(a):
    return (a * 37 + 11) % 65536


def tags():
    return [{"name": f"r{a}", "table": "holding", "address": a} for a in range(N_REGS)]


def config(port, **conn_keys):
    dev = device("dev", [group("g", tags(), 1000)])
    dev["max_registers"] = MAX_REGS
    conn = modbus_connection("c", port, [dev], timeout_ms=500)
    conn.update(conn_keys)
    return gateway_config(mqtt_section(url="mqtt://127.0.0.1:1", allow_insecure=True), [conn])


def once_values(out):
    """{register: raw value} from --once's table (tag, raw, value, unit, quality)."""
    vals = {}
    for line in out.splitlines():
        m = re.match(r"\s*c\s+dev\s+r(\d+)\s+(\S+)\s+\S+.*\bgood\s*$", line)
        if m:
            vals[int(m.group(1))] = int(m.group(2))
    return vals


def check_once(d, name, port, **conn_keys):
    rc, out, err = run_once(config(port, **conn_keys), d, name)
    vals = once_values(out)
    wrong = [a for a in range(N_REGS) if vals.get(a) != value(a)]
    check(rc == 0 and not wrong, f"{name}: exit {rc}, {len(wrong)} wrong or bad value(s), "
          f"first {wrong[:5]}:\n{out[-1500:]}\n{err[-3000:]}")
    return err


class ScriptedPeer:
    """A Modbus TCP device of our own (FC3 over holding registers value(a)) that collects the
    requests of a burst for `gather` seconds after the first, then answers them as its mode says:
      good      every request, in reverse order (only transaction ids can match them up)
      first     only the first request of a burst; the rest are dropped (some devices read one
                frame per segment)
      tid0      every request, in order, all with transaction id 0
      busy      the first properly, the others with exception 6 (server device busy)
      reset     a burst of more than one request resets the connection; on the first
                connection it waits for a second request rather than answer a lone one, so
                that a batch always meets the reset however the kernel splits its segments
    A lone request is otherwise always answered properly. stall: seconds the first connection
    waits before it reads anything. max_pending: the most requests seen together."""

    def __init__(self, mode, gather=0.05, stall=0.0):
        self.mode, self.gather, self.stall = mode, gather, stall
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.max_pending = 0
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c, self.connections == 1),
                             daemon=True).start()

    @staticmethod
    def frames(buf):
        out = []
        while len(buf) >= 6:
            n = 6 + struct.unpack(">H", buf[4:6])[0]
            if len(buf) < n:
                break
            out.append(buf[:n])
            buf = buf[n:]
        return out, buf

    @staticmethod
    def answer(req, tid=None, exception=None):
        tid = struct.unpack(">H", req[0:2])[0] if tid is None else tid
        if exception:
            pdu = bytes([req[7] | 0x80, exception])
        else:
            addr, count = struct.unpack(">HH", req[8:12])
            pdu = bytes([3, 2 * count]) + b"".join(struct.pack(">H", value(a))
                                                    for a in range(addr, addr + count))
        return struct.pack(">HHH", tid, 0, len(pdu) + 1) + req[6:7] + pdu

    def _burst(self, c, buf, at_least=1):
        """The requests that arrive within `gather` s of the first (and at least `at_least`)."""
        c.settimeout(None)
        while len(self.frames(buf)[0]) < at_least or not buf:
            data = c.recv(4096)
            if not data:
                return None, buf
            buf += data
        end = time.monotonic() + self.gather
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            c.settimeout(left)
            try:
                data = c.recv(4096)
            except socket.timeout:
                break
            if not data:
                break
            buf += data
        return self.frames(buf)

    def _serve(self, c, first):
        buf = b""
        if first and self.stall:
            time.sleep(self.stall)
        at_least = 2 if first and self.mode == "reset" else 1
        with c:
            while True:
                try:
                    reqs, buf = self._burst(c, buf, at_least)
                except OSError:
                    return
                if reqs is None:
                    return
                self.requests += len(reqs)
                self.max_pending = max(self.max_pending, len(reqs))
                if len(reqs) == 1 or self.mode == "good":
                    out = [self.answer(r) for r in reversed(reqs)]
                elif self.mode == "first":
                    out = [self.answer(reqs[0])]
                elif self.mode == "tid0":
                    out = [self.answer(r, tid=0) for r in reqs]
                elif self.mode == "busy":
                    out = [self.answer(reqs[0])] + [self.answer(r, exception=6) for r in reqs[1:]]
                else:  # reset
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                try:
                    c.sendall(b"".join(out))
                except OSError:
                    return


FALLBACK = "mishandles several requests in flight"


def test_out_of_order_answers_matched(d):
    with ScriptedPeer("good") as peer:
        err = check_once(d, "good", peer.port, max_outstanding=8)
        check(peer.max_pending >= 2, f"the peer never saw two requests together "
              f"(max {peer.max_pending})")
        check(FALLBACK not in err, f"a fall-back against a good peer:\n{err[-2000:]}")
        note(f"{peer.requests} requests, up to {peer.max_pending} in flight, answered in "
             "reverse order")


def test_one_at_a_time_by_default(d):
    with ScriptedPeer("good") as peer:
        check_once(d, "default", peer.port)
        check(peer.max_pending == 1, f"max_outstanding absent, yet {peer.max_pending} in flight")


def fallback(d, mode, **peer_keys):
    with ScriptedPeer(mode, **peer_keys) as peer:
        err = check_once(d, mode, peer.port, max_outstanding=8)
        lines = [l for l in err.splitlines() if FALLBACK in l]
        check(len(lines) == 1 and "falls back to 1" in lines[0],
              f"{mode}: expected one fall-back line, got {len(lines)}:\n{err[-3000:]}")
        note(f"{mode}: {lines[0]}")


def test_fallback_first_of_burst_only(d):
    fallback(d, "first")


def test_fallback_mangled_transaction_ids(d):
    fallback(d, "tid0")


def test_fallback_busy_exceptions(d):
    fallback(d, "busy")


def test_fallback_reset_with_several_in_flight(d):
    fallback(d, "reset")


def test_fallback_reset_after_requests_timed_out(d):
    """The peer stalls past the timeout of the requests in flight, then reads them all (and the
    first request the gateway asks again alone) together and resets: still a fall-back, and
    every value then read one by one."""
    fallback(d, "reset", stall=0.8)


def pymodbus_tables():
    return {a: value(a) for a in range(N_REGS)}


def test_pymodbus_several_in_flight(d):
    """pymodbus 3.0's TCP server takes every frame of a segment in turn: all values exact with
    max_outstanding 8 and no fall-back."""
    with PymodbusServer(d, holding=pymodbus_tables(), size=N_REGS) as srv:
        err = check_once(d, "pymodbus", srv.port, max_outstanding=8)
        check(FALLBACK not in err, f"pymodbus fell back:\n{err[-2000:]}")


def test_simulator_several_in_flight(d):
    regs = "\n".join(f"holding {a} uint16 - const {value(a)}" for a in range(N_REGS))
    with Simulator(f"size holding {N_REGS}\n{regs}\n", d) as sim:
        err = check_once(d, "sim", sim.port, max_outstanding=8)
        check(FALLBACK not in err, f"the simulator fell back:\n{err[-2000:]}")


def test_libmodbus_implementation(d):
    with PymodbusServer(d, holding=pymodbus_tables(), size=N_REGS) as srv:
        check_once(d, "libmodbus", srv.port, implementation="libmodbus")
    with ScriptedPeer("good") as peer:
        check_once(d, "libmodbus-peer", peer.port, implementation="libmodbus")
        check(peer.max_pending == 1, f"libmodbus had {peer.max_pending} in flight")


def test_config_errors(d):
    rc, out = run_check(config(1502, implementation="libmodbus", max_outstanding=8), d, "lmb8")
    check(rc == 1 and "max_outstanding 8 needs implementation native" in out,
          f"libmodbus with max_outstanding 8: exit {rc}:\n{out}")
    rtu = config(1502, transport="rtu_over_tcp", max_outstanding=4)
    rc, out = run_check(rtu, d, "rtu4")
    check(rc == 1 and "applies to transport tcp only" in out,
          f"rtu_over_tcp with max_outstanding 4: exit {rc}:\n{out}")
    rc, out = run_check(config(1502, max_outstanding=17), d, "big")
    check(rc == 1 and "max_outstanding" in out, f"max_outstanding 17: exit {rc}:\n{out}")
    rc, out = run_check(config(1502, max_outstanding=16), d, "ok16")
    check(rc == 0, f"max_outstanding 16 refused:\n{out}")


if __name__ == "__main__":
    run([test_out_of_order_answers_matched, test_one_at_a_time_by_default,
         test_fallback_first_of_burst_only, test_fallback_mangled_transaction_ids,
         test_fallback_busy_exceptions, test_fallback_reset_with_several_in_flight,
         test_fallback_reset_after_requests_timed_out,
         test_pymodbus_several_in_flight, test_simulator_several_in_flight,
         test_libmodbus_implementation, test_config_errors])
