#!/usr/bin/python3
"""Faults the gateway must live through: a dead Modbus endpoint and a hanging one beside a good
connection, no broker at start, SIGTERM, and a configuration error with its position."""

import re
import time

from ibtest import (session_pki, Gateway, Mosquitto, Pki, SilentServer, Simulator, Subscriber, check,
                    data_topic, device, gateway_config, group, is_data, log_has,
                    modbus_connection, mqtt_section, note, free_port, retained, run, run_check,
                    session_dir, status_topic, tag, wait_sample, wait_until)

INTERVAL_MS = 200
SIM_MAP = """\
# test_faults: a meter with a few constants
holding 0 uint16 AB const 1234
holding 1 int16 AB const -5
coil 0 bool - const true
"""
TAGS = [tag("u16", "holding", 0, "uint16"), tag("i16", "holding", 1, "int16"),
        tag("c0", "coil", 0)]

def pki():
    return session_pki()


def conn(name, port, dev_name, timeout_ms=500):
    return modbus_connection(name, port, [device(dev_name, [group("fast", TAGS, INTERVAL_MS)])],
                             timeout_ms=timeout_ms)


def good(s):
    return s.get("q") == "good"


def test_dead_and_hanging_connections(d):
    p = pki()
    dead_port = free_port()   # nothing listens here
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim, \
            SilentServer() as silent:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        cfg = gateway_config(mqtt_section(b, p), [
            conn("sim", sim.port, "meter1"),
            conn("dead", dead_port, "ghost"),
            conn("silent", silent.port, "mute", timeout_ms=300),
        ])
        gw = Gateway(cfg, d)
        wait_sample(sub, "meter1", "u16", lambda s: good(s) and s.get("v") == 1234, 20)
        dead = wait_sample(sub, "ghost", "u16", lambda s: s.get("q") == "bad", 20,
                           "a bad sample from the dead connection")
        s = dead.payload["values"]["u16"]
        check(s.get("reason") == "connection_lost",
              f"dead connection: reason {s.get('reason')!r}, expected 'connection_lost': {s}")
        mute = wait_sample(sub, "mute", "u16", lambda s: s.get("q") == "bad", 20,
                           "a bad sample from the connection that never answers")
        s = mute.payload["values"]["u16"]
        check(s.get("reason") in ("timeout", "connection_lost"),
              f"hanging connection: reason {s.get('reason')!r}, expected timeout: {s}")
        note(f"hanging connection reported reason {s.get('reason')!r}")

        # The good connection keeps delivering while the others fail: count its messages over
        # a few seconds (no timing assertion beyond "it goes on").
        before = len([m for m in sub.messages() if is_data(m, "meter1")])
        time.sleep(3)
        after = [m for m in sub.messages() if is_data(m, "meter1")]
        check(len(after) - before >= 3, f"the good connection delivered only "
              f"{len(after) - before} message(s) in 3 s while the others were failing")
        check(all(good(m.payload["values"]["u16"]) for m in after[before:]),
              "the good connection's samples turned bad")
        check(gw.running(), f"the gateway exited ({gw.returncode})")
        check(silent.accepted >= 1, "the gateway never connected to the hanging device")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}, expected 0")


def test_continuous_polling(d):
    """interval_ms: 0 polls a group back to back; on a dead connection it does not spin but
    retries every 100 ms."""
    p = pki()
    dead_port = free_port()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        cfg = gateway_config(mqtt_section(b, p), [
            modbus_connection("sim", sim.port, [device("meter1", [group("fast", TAGS, 0)])]),
            modbus_connection("dead", dead_port, [device("ghost", [group("fast", TAGS, 0)])]),
        ], log_level="info")
        gw = Gateway(cfg, d)
        wait_sample(sub, "meter1", "u16", lambda s: good(s) and s.get("v") == 1234, 20)
        wait_sample(sub, "ghost", "u16", lambda s: s.get("q") == "bad", 20,
                    "a bad sample from the dead connection")

        def count(dev):
            return len([m for m in sub.messages() if is_data(m, dev)])
        live0, dead0 = count("meter1"), count("ghost")
        time.sleep(3)
        live, dead = count("meter1") - live0, count("ghost") - dead0
        note(f"continuous group: {live} polls delivered in 3 s; dead connection: {dead} "
             "bad records in 3 s")
        # More than the shortest period (10 ms) could give: the group is polled back to back.
        check(live > 300, f"a continuous group delivered only {live} polls in 3 s")
        # A failing continuous group retries every 100 ms (30 in 3 s), not as fast as it can.
        check(dead <= 45, f"a continuous group on a dead connection published {dead} records "
              "in 3 s: it spins instead of waiting 100 ms between failed polls")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}, expected 0")


def test_no_broker_at_start(d):
    p = pki()
    port = free_port()
    with Simulator(SIM_MAP, d) as sim:
        gw = Gateway(gateway_config(mqtt_section(url=f"mqtts://localhost:{port}", ca=p.ca),
                                    [conn("sim", sim.port, "meter1")]), d)
        line = wait_until(lambda: log_has(gw.log(), r"connect|broker|mqtt",
                                          r"fail|error|refused|unable|cannot|could not"), 15)
        check(line, f"no broker: the log names no connect error within 15 s:\n{gw.log()[-2000:]}")
        note(f"without a broker the gateway logged: {line.strip()}")
        time.sleep(2)
        check(gw.running(), f"the gateway exited ({gw.returncode}) without a broker")

        t0 = time.monotonic()
        with Mosquitto(d, tls=p.server_tls(), port=port) as b:
            sub = Subscriber(b, [data_topic(), status_topic()], cafile=p.ca)
            m = wait_sample(sub, "meter1", "u16", lambda s: good(s) and s.get("v") == 1234, 60,
                            "data after the broker came up")
            note(f"data arrived {time.monotonic() - t0:.1f} s after the broker started "
                 f"(first seq {m.payload.get('seq')})")
            st = wait_until(lambda: retained(b, status_topic(), cafile=p.ca, timeout=2), 10)
            check(st == "online", f"status after the broker came up: {st!r}")
            check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}, expected 0")


def test_sigterm_exits_0(d):
    p = pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn("sim", sim.port, "meter1")]), d)
        wait_sample(sub, "meter1", "u16", good, 20)
        t0 = time.monotonic()
        rc = gw.stop()
        dt = time.monotonic() - t0
        check(rc == 0, f"exit status after SIGTERM: {rc}, expected 0\n{gw.log()[-2000:]}")
        note(f"stopped {dt:.2f} s after SIGTERM")


def test_status_every_second(d):
    """sd_notify STATUS (and WATCHDOG, from the same tick) keeps coming once a second, not only
    once after the start."""
    import socket
    path = str(d / "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(0.5)
    try:
        with Simulator(SIM_MAP, d) as sim:
            gw = Gateway(gateway_config(mqtt_section(url=f"mqtts://localhost:{free_port()}",
                                                     ca=pki().ca),
                                        [conn("sim", sim.port, "meter1")]), d,
                         env={"NOTIFY_SOCKET": path})
            got = []
            end = time.monotonic() + 4.5
            while time.monotonic() < end:
                try:
                    got += [ln for ln in ns.recv(4096).decode().splitlines()
                            if ln.startswith("STATUS=") and "values/s" in ln]
                except socket.timeout:
                    pass
            check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")
    finally:
        ns.close()
    check(len(got) >= 3, f"{len(got)} STATUS update(s) in 4.5 s, expected one a second: {got}")


UNKNOWN_KEY = """\
gateway:
  id: test-gw
north:
  mqtt:
    url: mqtts://localhost:8883
    tls:
      ca: {ca}
connections:
  - name: sim
    plugin: modbus
    host: 127.0.0.1
    port: 1502
    devices:
      - name: meter1
        unit_id: 1
        groups:
          - name: fast
            interval_ms: 500
            tags:
              - {{ name: u16, table: holding, address: 0, type: uint16, colour: red }}
"""


def test_unknown_key(d):
    text = UNKNOWN_KEY.format(ca=pki().ca)
    lines = text.splitlines()
    line_no = next(i for i, ln in enumerate(lines, 1) if "colour" in ln)
    col = lines[line_no - 1].index("colour") + 1
    rc, out = run_check(text, d)
    pos = f"check.yaml:{line_no}:{col}:"
    check(rc == 1, f"--check with an unknown key exited {rc}, expected 1:\n{out}")
    check(log_has(out, re.escape(pos), "colour"),
          f"--check output lacks '{pos} ...colour...':\n{out}")
    gw = Gateway(text, d)
    rc = gw.wait_exit(15)
    check(rc == 1, f"the daemon with an unknown key: exit status {rc}, expected 1")
    pos = f"gw.yaml:{line_no}:{col}:"
    check(log_has(gw.log(), re.escape(pos), "colour"),
          f"the daemon's log lacks '{pos} ...colour...':\n{gw.log()}")

    # Top level too, and the valid file without it passes.
    bad_top = text.replace("gateway:\n", "gateway:\n  idd: x\n", 1)
    rc, out = run_check(bad_top, d, name="check-top")
    check(rc == 1 and log_has(out, r"check-top\.yaml:2:3:", "idd"),
          f"unknown key gateway.idd: exit {rc}, output:\n{out}")
    rc, out = run_check(text.replace(", colour: red", ""), d, name="check-ok")
    check(rc == 0, f"the same file without the unknown key fails --check ({rc}):\n{out}")


if __name__ == "__main__":
    run([test_dead_and_hanging_connections, test_continuous_polling, test_no_broker_at_start,
         test_sigterm_exits_0, test_status_every_second, test_unknown_key])
