#!/usr/bin/python3
"""Report by exception over real MQTT: the simulator steps and sweeps values, and only the
messages docs/reporting.md promises arrive — on change, by deadband, by heartbeat, a failure
once as bad and once as stale — in the documented shapes (batch, tag layout, metadata)."""

import time

from ibtest import (session_pki, Gateway, Mosquitto, Simulator, Subscriber, check, device,
                    gateway_config, group, is_data, modbus_connection, mqtt_section, note, run,
                    tag, wait_until)

MAP = """\
holding 0 uint16  -    step 10 20 1
holding 1 uint16  -    const 5
holding 2 float32 ABCD sine 100 10 4
size holding 10
"""
PAST_END = 50  # beyond `size`: every read answers exception 2


def start(d, groups, layout=None, metadata=None):
    """Broker, simulator and a gateway whose device meter1 has `groups`; returns them and a
    subscriber to every ironbridge topic."""
    p = session_pki()
    b = Mosquitto(d, tls=p.server_tls())
    sim = Simulator(MAP, d)
    sub = Subscriber(b, "ironbridge/#", cafile=p.ca)
    m = mqtt_section(b, p)
    if layout:
        m["layout"] = layout
    dev = device("meter1", groups)
    if metadata:
        dev["metadata"] = metadata
    gw = Gateway(gateway_config(m, [modbus_connection("sim", sim.port, [dev])],
                                log_level="info"), d)
    return b, sim, sub, gw


def data(sub):
    return [m for m in sub.messages() if is_data(m)]


def reported(sub, name):
    """(arrival time, sample) for every data message carrying tag `name`."""
    return [(m.time, m.payload["values"][name]) for m in data(sub)
            if name in m.payload["values"]]


def test_on_change_sends_only_changes(d):
    g = group("g", [tag("s", "holding", 0, "uint16"), tag("k", "holding", 1, "uint16")], 100)
    g["report"] = {"mode": "on_change"}
    b, sim, sub, gw = start(d, [g])
    with b, sim:
        check(wait_until(lambda: len(reported(sub, "s")) >= 5, 20),
              f"fewer than 5 changes of the stepping tag arrived\n{gw.log()[-2000:]}")
        gw.stop()
        msgs = data(sub)
        first, rest = msgs[0].payload["values"], msgs[1:]
        check(set(first) == {"s", "k"}, f"the first message must carry every tag: {first}")
        for m in rest:
            check(set(m.payload["values"]) == {"s"},
                  f"after the first message only the changing tag may be sent: {m.text}")
        vals = [s["v"] for _, s in reported(sub, "s")]
        for a, c in zip(vals, vals[1:]):
            check(a != c, f"an unchanged value was sent again: {vals}")
        check(len(msgs) <= len(vals) + 1,
              f"{len(msgs)} messages for {len(vals)} changes: empty polls were sent")
        note(f"on_change: {len(msgs)} messages for {len(vals)} changes over ~{len(vals)} s of "
             f"100 ms polls")


def test_deadband_and_heartbeat(d):
    g = group("g", [tag("w", "holding", 2, "float32", deadband=5),
                    tag("k", "holding", 1, "uint16", report={"mode": "on_change",
                                                             "heartbeat": "1s"})], 100)
    b, sim, sub, gw = start(d, [g])
    with b, sim:
        check(wait_until(lambda: len(reported(sub, "k")) >= 4, 20),
              f"the heartbeat of the constant tag did not fire 3 times\n{gw.log()[-2000:]}")
        gw.stop()
        w = [s["v"] for _, s in reported(sub, "w")]
        check(len(w) >= 3, f"the sine (amplitude 10, deadband 5) was sent only {len(w)} times")
        for a, c in zip(w, w[1:]):
            check(abs(c - a) > 5, f"a move of {abs(c - a)} (not beyond the deadband 5) was sent: "
                  f"{w}")
        k = reported(sub, "k")
        check(all(s["v"] == 5 for _, s in k), f"k: {k}")
        gaps = [round(t2 - t1, 2) for (t1, _), (t2, _) in zip(k, k[1:])]
        # Heartbeats 1 s apart (polls every 100 ms); wide bounds: this checks the mechanism,
        # not the timing (the benchmarks measure timing).
        check(all(0.5 <= x <= 3.0 for x in gaps), f"heartbeat gaps {gaps} s, expected ~1 s")
        note(f"deadband 5 on a sine of amplitude 10: {len(w)} values sent; heartbeat gaps {gaps}")


def test_failure_bad_once_then_stale_once(d):
    g = group("g", [tag("gone", "holding", PAST_END, "uint16")], 100)
    g["report"] = {"mode": "on_change", "stale_after": "500ms"}
    b, sim, sub, gw = start(d, [g])
    with b, sim:
        check(wait_until(lambda: len(reported(sub, "gone")) >= 2, 20),
              f"no bad and stale report\n{gw.log()[-2000:]}")
        time.sleep(2)  # 20 more failing polls: none of them may be sent
        gw.stop()
        r = [s for _, s in reported(sub, "gone")]
        check(len(r) == 2, f"expected exactly one bad and one stale report, got {r}")
        check(r[0].get("q") == "bad" and r[0].get("reason") == "exception" and
              r[0].get("code") == 2 and "v" not in r[0], f"first report {r[0]}")
        check(r[1].get("q") == "stale" and r[1].get("reason") == "exception" and "v" not in r[1],
              f"second report {r[1]}")


def test_tag_layout_and_metadata(d):
    g = group("g", [tag("s", "holding", 0, "uint16", unit="rpm"),
                    tag("k", "holding", 1, "uint16")], 100)
    g["report"] = {"mode": "on_change"}
    b, sim, sub, gw = start(d, [g], layout="tag", metadata={"site": "Plant-1", "line": 3})
    with b, sim:
        check(wait_until(lambda: len([m for m in sub.messages()
                                      if m.topic.endswith("/s")]) >= 3, 20),
              f"no per-tag messages\n{gw.log()[-2000:]}")
        gw.stop()
        msgs = [m for m in sub.messages() if m.topic.startswith("ironbridge/test-gw/meter1/")]
        topics = {m.topic for m in msgs}
        check(topics == {"ironbridge/test-gw/meter1/g/s", "ironbridge/test-gw/meter1/g/k"},
              f"topics {topics}")
        for m in msgs:
            p = m.payload
            check(isinstance(p, dict) and p.get("tag") == m.topic.rsplit("/", 1)[1] and
                  p.get("q") == "good" and isinstance(p.get("v"), int) and
                  isinstance(p.get("seq"), int) and isinstance(p.get("ts"), int) and
                  p.get("meta") == {"site": "Plant-1", "line": "3"} and
                  p.get("device") == "meter1" and "values" not in p,
                  f"not the documented tag-layout shape: {m.text}")
        s = [m.payload for m in msgs if m.topic.endswith("/s")]
        check(all(p.get("unit") == "rpm" for p in s), f"unit missing: {s[:2]}")
        k = [m for m in msgs if m.topic.endswith("/k")]
        check(len(k) == 1, f"the constant tag was sent {len(k)} times with on_change")


if __name__ == "__main__":
    run([test_on_change_sends_only_changes, test_deadband_and_heartbeat,
         test_failure_bad_once_then_stale_once, test_tag_layout_and_metadata])
