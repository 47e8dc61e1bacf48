#!/usr/bin/python3
"""Delivery to the broker: QoS 0 keeps flowing past the in-flight window, and with QoS 1 a
network cut between the gateway and the broker loses nothing — every sequence number produced
during the outage arrives after the link is back (at least once: duplicates allowed, no gap).
A reconnect storm (a broker that drops the connection at every PUBLISH) neither grows the
gateway's memory nor floods its log."""

import os
import socket
import ssl
import threading
import time

from ibtest import (session_pki, CuttableProxy, Gateway, Mosquitto, PymodbusServer, Subscriber, check,
                    data_topic, device, gateway_config, group, is_data, log_has, modbus_connection,
                    mqtt_section, note, run, tag, wait_until)


def seqs_of(sub):
    return [m.payload["seq"] for m in sub.messages() if is_data(m)]


def gateway(src, mqtt, interval_ms, groups=1, gateway_id="test-gw"):
    gs = [group(f"g{i}", [tag(f"u16_{i}", "holding", 0, "uint16")], interval_ms)
          for i in range(groups)]
    return gateway_config(mqtt, [modbus_connection("src", src.port, [device("meter1", gs)])],
                          gateway_id, log_level="info")


class StormBroker:
    """A broker on 127.0.0.1 that accepts every MQTT 3.1.1 CONNECT (CONNACK 0) and closes the
    connection at the first PUBLISH: a reconnect storm. Counts connects and PUBLISHes."""

    def __init__(self, pki=None):
        self.ctx = None
        if pki is not None:  # TLS with the PKI's server certificate
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(pki.server), str(pki.server_key))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connects = self.publishes = 0
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read(c, n):
        b = b""
        while len(b) < n:
            x = c.recv(n - len(b))
            if not x:
                raise OSError("closed")
            b += x
        return b

    def _packet(self, c):
        kind = self._read(c, 1)[0]
        length, shift = 0, 0
        while True:
            x = self._read(c, 1)[0]
            length |= (x & 0x7F) << shift
            shift += 7
            if not x & 0x80:
                break
        return kind, self._read(c, length)

    def _serve(self, c):
        try:
            if self.ctx:
                c.settimeout(10)
                c = self.ctx.wrap_socket(c, server_side=True)
            while True:
                kind, _ = self._packet(c)
                if kind >> 4 == 1:  # CONNECT
                    self.connects += 1
                    c.sendall(b"\x20\x02\x00\x00")
                elif kind >> 4 == 3:  # PUBLISH: drop the connection
                    self.publishes += 1
                    break
                elif kind >> 4 == 12:  # PINGREQ
                    c.sendall(b"\xd0\x00")
        except OSError:
            pass
        c.close()

    def close(self):
        self.running = False
        self.sock.close()


def test_reconnect_storm(d):
    """At every reconnect the broker takes the connection and drops it at the first PUBLISH, with
    records in flight. What the gateway handed to paho is freed (RSS stays flat after the first
    seconds), and the storm is one failure episode in the log, not lines per reconnect."""
    seconds = int(os.environ.get("IB_STORM_SECONDS", "20"))
    p = session_pki()
    storm = StormBroker(p)
    try:
        with PymodbusServer(d, holding={0: 7}) as src:
            m = mqtt_section(url=f"mqtts://localhost:{storm.port}", ca=p.ca, qos=1)
            m["reconnect_min_ms"] = 100
            m["reconnect_max_ms"] = 200
            # Under AddressSanitizer freed memory waits in quarantine: off, so that RSS means
            # what it means.
            env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                          "quarantine_size_mb=0",
                                                          "thread_local_quarantine_size_kb=0"]))}
            gw = Gateway(gateway(src, m, 20, groups=5), d, env=env)
            check(wait_until(lambda: storm.connects >= 5, 20),
                  f"the gateway did not reconnect to the storm broker\n{gw.log()[-2000:]}")
            time.sleep(5)  # paho's and OpenSSL's first allocations, the store's first segment
            rss0, c0, lines0, t0 = gw.rss_kib(), storm.connects, len(gw.log().splitlines()), time.time()
            time.sleep(seconds)
            rss1, c1, lines1, t1 = gw.rss_kib(), storm.connects, len(gw.log().splitlines()), time.time()
            per_min = 60.0 / (t1 - t0)
            north = [ln for ln in gw.log().splitlines()[lines0:lines1] if "north:" in ln or "store: replay" in ln]
            note(f"storm: {c1 - c0} reconnects in {t1 - t0:.0f} s ({(c1 - c0) * per_min:.0f}/min); RSS "
                 f"{rss0} -> {rss1} KiB ({(rss1 - rss0) * per_min:+.0f} KiB/min); "
                 f"{(lines1 - lines0) * per_min:.0f} log lines/min")
            check(c1 - c0 >= 20, f"only {c1 - c0} reconnects in {seconds} s: no storm")
            check(rss1 - rss0 < 1024 + 20 * seconds,
                  f"RSS grew from {rss0} to {rss1} KiB in {seconds} s of reconnects")
            check(len(north) <= 4, f"{len(north)} north log lines in {seconds} s for {c1 - c0} "
                  f"reconnects (one episode expected):\n" + "\n".join(north[:12]))
            check(log_has(gw.log(), "connection to", "lost") or "cannot connect" in gw.log(),
                  f"the storm was not logged at all\n{gw.log()[-2000:]}")
            gw.stop()
    finally:
        storm.close()


def test_qos0_keeps_flowing(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, holding={0: 7}) as src:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        m = mqtt_section(b, p, qos=0)
        m["linger_ms"] = 0  # each record sent as soon as it is queued
        # 5 groups at 20 ms: 250 messages/s, past the 256-message in-flight window in ~1 s.
        gw = Gateway(gateway(src, m, 20, groups=5), d)
        got = wait_until(lambda: len(seqs_of(sub)) >= 1000, 20)
        n = len(seqs_of(sub))
        check(got, f"QoS 0: only {n} messages arrived in 20 s at 250 messages/s "
              f"(stuck in flight?)\n{gw.log()[-2000:]}")
        note(f"QoS 0: {n} messages arrived")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_qos1_outage_loses_nothing(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, holding={0: 7}) as src:
        proxy = CuttableProxy(b.port)
        try:
            sub = Subscriber(b, data_topic(), cafile=p.ca)
            m = mqtt_section(b, p, url=f"mqtts://localhost:{proxy.port}", ca=p.ca, qos=1)
            m["reconnect_min_ms"] = 200
            m["reconnect_max_ms"] = 1000
            gw = Gateway(gateway(src, m, 50), d)
            check(wait_until(lambda: len(seqs_of(sub)) >= 10, 20),
                  f"no data before the outage\n{gw.log()[-2000:]}")
            proxy.cut()
            cut_at = max(seqs_of(sub))
            time.sleep(4)  # ~80 records made while the broker is unreachable
            check(len([s for s in seqs_of(sub) if s > cut_at + 5]) == 0,
                  "messages arrived through a cut link")
            proxy.restore()
            check(wait_until(lambda: max(seqs_of(sub)) > cut_at + 120, 30),
                  f"delivery did not resume after the outage\n{gw.log()[-3000:]}")
            gw.stop()
            seqs = seqs_of(sub)
            first, last = min(seqs), max(seqs)
            missing = sorted(set(range(first, last + 1)) - set(seqs))
            check(not missing, f"{len(missing)} sequence numbers lost across the outage, e.g. "
                  f"{missing[:10]} (received {len(set(seqs))} of {last - first + 1})")
            dups = len(seqs) - len(set(seqs))
            note(f"outage: seq {first}..{last} all arrived ({dups} duplicates re-sent after the "
                 f"reconnect); cut after seq {cut_at}")
            check("connection to" in gw.log() or "cannot connect" in gw.log(),
                  "the gateway did not log the lost broker connection")
        finally:
            proxy.close()


def test_linger_batches_lose_nothing(d):
    """north.mqtt.linger_ms at its largest (1000): the north thread sends what the pollers queued
    during each linger as one batch. Nothing is lost or held back: every sequence number arrives,
    and the stop delivers what was queued (the linger is skipped when stopping). How the
    arrivals bunch is printed, not asserted (timing)."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, holding={0: 7}) as src:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        m = mqtt_section(b, p, qos=1)
        m["linger_ms"] = 1000
        gw = Gateway(gateway(src, m, 50, groups=3), d)  # 60 records/s
        check(wait_until(lambda: len(seqs_of(sub)) >= 200, 30),
              f"only {len(seqs_of(sub))} messages in 30 s with linger_ms 1000\n{gw.log()[-2000:]}")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")
        time.sleep(0.5)
        seqs = seqs_of(sub)
        first, last = min(seqs), max(seqs)
        missing = sorted(set(range(first, last + 1)) - set(seqs))
        check(not missing, f"{len(missing)} sequence numbers lost with linger_ms 1000, e.g. "
              f"{missing[:10]}")
        check("not yet delivered" not in gw.log(),
              f"records were left undelivered at the stop\n{gw.log()[-2000:]}")
        times = [mm.time for mm in sub.messages() if is_data(mm)]
        bursts = 1 + sum(1 for a, b2 in zip(times, times[1:]) if b2 - a > 0.3)
        note(f"linger 1000 ms: {len(seqs)} messages (seq {first}..{last}) in {bursts} bursts over "
             f"{times[-1] - times[0]:.1f} s")


if __name__ == "__main__":
    run([test_qos0_keeps_flowing, test_qos1_outage_loses_nothing, test_reconnect_storm,
         test_linger_batches_lose_nothing])
