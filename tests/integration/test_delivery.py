#!/usr/bin/python3
"""Delivery to the broker: QoS 0 keeps flowing past the in-flight window, and with QoS 1 a
network cut between the gateway and the broker loses nothing — every sequence number produced
during the outage arrives after the link is back (at least once: duplicates allowed, no gap)."""

import time

from ibtest import (session_pki, CuttableProxy, Gateway, Mosquitto, PymodbusServer, Subscriber, check,
                    data_topic, device, gateway_config, group, is_data, modbus_connection,
                    mqtt_section, note, run, tag, wait_until)


def seqs_of(sub):
    return [m.payload["seq"] for m in sub.messages() if is_data(m)]


def gateway(src, mqtt, interval_ms, groups=1, gateway_id="test-gw"):
    gs = [group(f"g{i}", [tag(f"u16_{i}", "holding", 0, "uint16")], interval_ms)
          for i in range(groups)]
    return gateway_config(mqtt, [modbus_connection("src", src.port, [device("meter1", gs)])],
                          gateway_id, log_level="info")


def test_qos0_keeps_flowing(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, holding={0: 7}) as src:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        m = mqtt_section(b, p, qos=0)
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


if __name__ == "__main__":
    run([test_qos0_keeps_flowing, test_qos1_outage_loses_nothing])
