#!/usr/bin/python3
"""The daemon's sd_notify protocol, read from a notify socket as systemd would: READY=1, a STATUS
line that follows what happens, WATCHDOG=1 only while every poller makes progress, STOPPING=1.
(tests/install/run.sh checks the same against systemd itself.)"""

import os
import re
import signal
import time

from ibtest import (Gateway, Mosquitto, NotifySocket, SilentServer, Simulator, check, data_topic,
                    device, gateway_config, group, modbus_connection, mqtt_section, note, run,
                    session_pki, tag, wait_until, Subscriber, wait_sample)

SIM_MAP = """\
# test_notify: one register
holding 0 uint16 AB const 42
"""
TAGS = [tag("v", "holding", 0, "uint16")]
RUNNING = r"^connections (\d+)/(\d+) up, \d+ values/s, broker (connected|disconnected), " \
          r"queue \d+ records, \d+ dropped$"


def watchdog_gaps(n, since):
    """The gaps in seconds between consecutive WATCHDOG=1 pings after time `since`, the
    silence from the last ping until now included (pings that stop are the longest gap)."""
    times = [since] + [t for t, v in n.values("WATCHDOG") if v == "1" and t >= since]
    times.append(time.monotonic())
    return [b - a for a, b in zip(times, times[1:])], len(times) - 2


def test_idle(d):
    """Nothing configured: READY with the idle STATUS, which stays; the watchdog is fed."""
    with NotifySocket(d) as n:
        gw = Gateway("log:\n  level: info\n", d, env=n.env(watchdog_usec=1_500_000))
        n.wait("READY", lambda v: v == "1", 10, "1")
        first = n.wait("STATUS", lambda v: True, 5, "set")
        check(first.startswith("idle: nothing configured yet in ") and "examples in " in first,
              f"idle STATUS: {first!r}")
        t0 = wait_until(lambda: len(n.values("WATCHDOG")) >= 1 and n.values("WATCHDOG")[0][0],
                        5)
        check(t0, "no WATCHDOG=1 at all")
        time.sleep(3)
        gaps, count = watchdog_gaps(n, t0)
        check(count >= 5 and max(gaps) < 1.2,
              f"watchdog pings in 3 s: {count}, longest gap {max(gaps or [0]):.2f}s "
              "(expected one every 0.5 s)")
        statuses = [v for _, v in n.values("STATUS")]
        check(len(statuses) >= 3 and all(s == first for s in statuses),
              f"the idle STATUS must be refreshed unchanged: {statuses[-3:]}")
        gw.proc.send_signal(signal.SIGTERM)
        check(gw.wait_exit(10) == 0, f"exit status {gw.returncode}")
        n.wait("STOPPING", lambda v: v == "1", 2, "1")
        note(f"idle: {first!r}; {count} pings in 3 s")


def test_status_follows_the_connection(d):
    """STATUS is refreshed: a connection going down and up again shows within seconds."""
    p = session_pki()
    with NotifySocket(d) as n, Mosquitto(d, tls=p.server_tls()) as b:
        sim = Simulator(SIM_MAP, d)
        cfg = gateway_config(mqtt_section(b, p), [
            modbus_connection("line", sim.port, [device("m1", [group("g", TAGS, 200)])])])
        Gateway(cfg, d, env=n.env(watchdog_usec=3_000_000))
        n.wait("READY", lambda v: v == "1", 10, "1")
        up = n.wait("STATUS", lambda v: re.match(RUNNING, v) and
                    v.startswith("connections 1/1 up") and "broker connected" in v, 10,
                    "'1/1 up, broker connected'")
        sim.stop()
        down = n.wait("STATUS", lambda v: v.startswith("connections 0/1 up"), 10,
                      "'0/1 up' after the simulator stopped")
        # The connection stays down and its poller retries with back-off: it is alive, so the
        # watchdog is still fed.
        t = time.monotonic()
        time.sleep(4)  # a 1 s ping period gives at least 3 pings in any 4 s window
        gaps, count = watchdog_gaps(n, t)
        check(count >= 3 and max(gaps) < 2.0,
              f"while a connection is down the watchdog must still be fed: {count} pings, "
              f"gaps {[round(g, 2) for g in gaps]}")
        note(f"{up!r} -> {down!r}")


def test_hung_poller_starves_the_watchdog(d):
    """A poller stuck in a read (a device that never answers, with a response timeout longer
    than the watchdog period) stops the WATCHDOG=1 pings while the main loop goes on."""
    p = session_pki()
    with NotifySocket(d) as n, Mosquitto(d, tls=p.server_tls()) as b, SilentServer() as s, \
            Simulator(SIM_MAP, d) as sim:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        cfg = gateway_config(mqtt_section(b, p), [
            modbus_connection("good", sim.port, [device("ok", [group("g", TAGS, 200)])]),
            modbus_connection("stuck", s.port, [device("mute", [group("g", TAGS, 200)])],
                              timeout_ms=6000)])
        Gateway(cfg, d, env=n.env(watchdog_usec=2_000_000))
        n.wait("READY", lambda v: v == "1", 10, "1")
        t0 = time.monotonic()
        wait_sample(sub, "ok", "v", lambda x: x.get("q") == "good", 10)
        time.sleep(8)
        gaps, count = watchdog_gaps(n, t0)
        statuses = [t for t, _ in n.values("STATUS") if t >= t0 + 2]
        check(gaps and max(gaps) >= 3.0,
              f"the watchdog was fed although a poller hung for 6 s per read: {count} pings, "
              f"longest gap {max(gaps or [0]):.2f}s")
        check(len(statuses) >= 6, f"the main loop stalled too: {len(statuses)} STATUS in 8 s")
        note(f"pings stop while 'stuck' waits 6 s for an answer: longest gap "
             f"{max(gaps):.1f}s; {len(statuses)} STATUS updates meanwhile")


def test_slow_reload_feeds_the_watchdog(d):
    """A reload that takes long to load (here: a drop-in that is a FIFO the test holds open)
    must not starve the watchdog: the loader runs beside the main thread, which keeps feeding
    it. Before, the main loop stood still in the loader and WatchdogSec=30s killed a daemon
    reloading a big tree."""
    with NotifySocket(d) as n:
        gw = Gateway("log:\n  level: info\n", d, env=n.env(watchdog_usec=1_500_000))
        n.wait("READY", lambda v: v == "1", 10, "1")
        dropins = gw.config.parent / "conf.d"
        dropins.mkdir(exist_ok=True)
        fifo = dropins / "50-slow.yaml"
        os.mkfifo(fifo)
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGHUP)
        try:
            n.wait("RELOADING", lambda v: v == "1", 10, "1")
            seen = wait_until(lambda: any(t > t0 for t, v in n.values("WATCHDOG") if v == "1")
                              and not any(t > t0 for t, v in n.values("READY")), 10)
        finally:
            # the loader is blocked opening the FIFO until a writer comes
            with open(fifo, "w") as f:
                f.write("config:\n  watch: false\n")
        check(seen, "no WATCHDOG=1 while the reload was loading: "
              f"{[(round(t - t0, 2), v) for t, v in n.values('WATCHDOG')][-5:]}")
        check(wait_until(lambda: "configuration applied (SIGHUP)" in gw.log(), 10),
              f"the slow reload was not applied\n{gw.log()[-1500:]}")
        check(gw.running(), "the daemon exited")


if __name__ == "__main__":
    run([test_idle, test_status_follows_the_connection, test_hung_poller_starves_the_watchdog,
         test_slow_reload_feeds_the_watchdog])
