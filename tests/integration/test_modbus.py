#!/usr/bin/python3
"""The Modbus plugin end to end through the daemon: the newer types and orders, Modicon
addresses, gaps read over and a refused block narrowed down, against the project's simulator
and against pymodbus over Modbus TCP; Modbus RTU through a socat pty pair and RTU over TCP
through a socat bridge, both against pymodbus's RTU server; and a dead unit among five on one
line that must not cost the live ones their poll period."""

import re
import socket
import struct
import subprocess
import threading
import time

from ibtest import (ROOT, Gateway, Mosquitto, PymodbusRtuServer, PymodbusServer, Simulator,
                    SocatPtyPair, SocatTcpBridge, Subscriber, check, data_topic, device,
                    gateway_config, group, is_data, log_has, modbus_connection, mqtt_section,
                    free_port, note, daemon_path, plugin_dir, run, run_check, session_pki, wait_until)

INTERVAL_MS = 200
HOLDING_SIZE = 50
TWO53 = 2 ** 53

# name, address (as written in YAML), table (None: from the Modicon reference), type, order,
# constant, extra tag keys. Registers are laid out with small gaps, read over by the default
# max_gap of 10.
TAGS = [
    ("u64", 0, "holding", "uint64", None, 0x0102030405060708, {}),
    ("u64_max", 4, "holding", "uint64", "ABCD", 2 ** 64 - 1, {}),
    ("i64_badc", 8, "holding", "int64", "BADC", -9007199254740993, {}),
    ("f64_dcba", 12, "holding", "float64", "DCBA", 3.141592653589793, {}),
    ("u16_ba", 16, "holding", "uint16", "BA", 0x1234, {}),
    ("i32_badc", 17, "holding", "int32", "BADC", -100000, {}),
    ("f32_dcba", 19, "holding", "float32", "DCBA", -0.5, {}),
    ("text", 21, "holding", "string", "AB", "hello", {"length": 5}),
    ("text_ba", 26, "holding", "string", "BA", "dlrow", {"length": 3}),
    ("flags", 29, "holding", "uint16", None, 0x8005, {}),
    ("bit0", 29, "holding", "bit", None, True, {"bit": 0}),
    ("bit1", 29, "holding", "bit", None, False, {"bit": 1}),
    ("bit15", "modicon:400030", None, "bit", None, True, {"bit": 15}),
    ("after_gap", 36, "holding", "int16", None, -7, {}),
    ("near_end", 48, "holding", "uint16", None, 4848, {}),
    ("in_modicon", "modicon:30001", None, "uint16", None, 4321, {}),
]
# 56 is past the end of the 50-register holding table: the block 48..56 is refused, narrowed
# down, and only this tag is bad.
PAST_END = ("past_end", 56, "holding", "uint16")


def registers(typ, order, value, length=None):
    """The 16-bit registers a device holds for value, first register first."""
    if typ == "string":
        b = value.encode().ljust(2 * length, b"\0")
    else:
        fmt = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f",
               "uint64": ">Q", "int64": ">q", "float64": ">d"}[typ]
        b = struct.pack(fmt, value)
    words = [b[i:i + 2] for i in range(0, len(b), 2)]
    order = order or ("AB" if len(words) == 1 or typ == "string" else "ABCD")
    if order in ("BA", "BADC", "DCBA"):
        words = [w[::-1] for w in words]
    if order in ("CDAB", "DCBA"):
        words = words[::-1]
    return [int.from_bytes(w, "big") for w in words]


def table_of(t):
    return t[2] or {"4": "holding", "3": "input"}[str(t[1]).split(":")[1][0]]


def address_of(t):
    a = t[1]
    if isinstance(a, int):
        return a
    digits = a.split(":")[1]
    return int(digits[1:]) - 1


def server_tables():
    """{table: {address: register}} for pymodbus, from TAGS (bits from their register)."""
    tables = {"holding": {}, "input": {}, "coils": {}, "discrete": {}}
    for t in TAGS:
        name, _, _, typ, order, const, extra = t
        if typ == "bit":
            continue
        regs = registers(typ, order, const, extra.get("length"))
        for i, r in enumerate(regs):
            tables[table_of(t)][address_of(t) + i] = r
    return tables


def sim_map():
    lines = ["# test_modbus: the newer types", f"size holding {HOLDING_SIZE}", "size input 10"]
    sim_table = {"holding": "holding", "input": "input"}
    for t in TAGS:
        name, _, _, typ, order, const, extra = t
        if typ == "bit":
            continue
        if typ == "string":
            lines.append(f"{sim_table[table_of(t)]} {address_of(t)} string{extra['length']} "
                         f"{order} const \"{const}\"   # {name}")
            continue
        o = order or ("AB" if typ.endswith("16") else "ABCD")
        lines.append(f"{sim_table[table_of(t)]} {address_of(t)} {typ} {o} const {const!r}"
                     f"   # {name}")
    return "\n".join(lines) + "\n"


def config_tags():
    tags = []
    for name, address, table, typ, order, const, extra in TAGS:
        tg = {"name": name, "address": address}
        if table:
            tg["table"] = table
        tg["type"] = typ
        if order:
            tg["order"] = order
        tg.update(extra)
        tags.append(tg)
    tags.append({"name": PAST_END[0], "table": PAST_END[2], "address": PAST_END[1],
                 "type": PAST_END[3]})
    return tags


def expected_json(t):
    """The value as the payload carries it (docs/payload.md)."""
    const = t[5]
    if isinstance(const, int) and not isinstance(const, bool) and abs(const) > TWO53:
        return str(const)
    return const


def check_values(m, label):
    vals = m.payload["values"]
    errors = []
    for t in TAGS:
        s = vals.get(t[0])
        want = expected_json(t)
        if not isinstance(s, dict) or s.get("q") != "good":
            errors.append(f"{t[0]}: {s!r}")
        elif s.get("v") != want or type(s.get("v")) is not type(want):
            errors.append(f"{t[0]}: v={s.get('v')!r}, expected {want!r}")
    bad = vals.get(PAST_END[0])
    if not (isinstance(bad, dict) and bad.get("q") == "bad" and bad.get("reason") == "exception"
            and bad.get("code") == 2 and "v" not in bad):
        errors.append(f"{PAST_END[0]}: {bad!r}, expected bad with exception 2")
    check(not errors, f"{label}: {len(errors)} wrong value(s) in seq {m.payload.get('seq')}:"
          "\n  " + "\n  ".join(errors))


def run_types(d, label, connection):
    """A gateway with TAGS on one device of `connection` (a dict without devices); checks
    three consecutive messages and the log of the narrowed-down block."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        conn = dict(connection, devices=[device("meter1", [group("fast", config_tags(),
                                                                 INTERVAL_MS)])])
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d)
        sub.wait_for(lambda m: is_data(m, "meter1"), 20, "a data message from meter1")
        msgs = [m for m in sub.wait_count(3, 10, data_topic()) if is_data(m, "meter1")]
        for m in msgs[:3]:
            check_values(m, label)
        log = gw.log()
        line = log_has(log, "refused holding 48..56", "narrowed down")
        check(line is not None, f"{label}: no log line about the narrowed-down block:\n"
              f"{log[-3000:]}")
        check(log_has(log, "past_end", "refuses holding 56") is not None,
              f"{label}: the refused tag was not named in the log")
        check(gw.stop() == 0, f"{label}: SIGTERM exit status {gw.returncode}")


def test_types_against_simulator(d):
    with Simulator(sim_map(), d) as sim:
        run_types(d, "simulator", modbus_connection("src", sim.port, []))


def test_types_against_pymodbus(d):
    t = server_tables()
    with PymodbusServer(d, holding=t["holding"], input=t["input"], size=HOLDING_SIZE) as srv:
        run_types(d, "pymodbus", modbus_connection("src", srv.port, []))


def rtu_units(n):
    """pymodbus units 1..n, each holding TAGS' registers."""
    t = server_tables()
    return {u: {"holding": t["holding"], "input": t["input"]} for u in range(1, n + 1)}


def test_rtu_serial_against_pymodbus(d):
    pair = SocatPtyPair(d)
    PymodbusRtuServer(d, pair.a, rtu_units(1), size=HOLDING_SIZE)
    run_types(d, "RTU through a socat pty pair",
              {"name": "line", "plugin": "modbus", "transport": "rtu",
               "serial_port": str(pair.b), "baud": 19200, "parity": "none", "timeout_ms": 1000})


def test_rtu_over_tcp_through_socat(d):
    pair = SocatPtyPair(d)
    PymodbusRtuServer(d, pair.a, rtu_units(1), size=HOLDING_SIZE)
    bridge = SocatTcpBridge(d, pair.b)
    run_types(d, "RTU over TCP through a socat bridge",
              {"name": "dtu", "plugin": "modbus", "transport": "rtu_over_tcp",
               "host": "127.0.0.1", "port": bridge.port, "timeout_ms": 1000})


PERIOD_MS = 100
DEAD_UNIT = 3


def measure_periods(d, name, backoff_max_ms, warmup_s, seconds):
    """Five units on one RTU-over-TCP line, unit 3 silent, every group at PERIOD_MS with a
    timeout longer than that. Returns ({device: mean period in ms over `seconds` after
    `warmup_s`}, the dead device's samples, the gateway log)."""
    pair = SocatPtyPair(d, name=f"{name}-serial")
    units = {u: {"holding": {0: 100 + u}} for u in range(1, 6) if u != DEAD_UNIT}
    PymodbusRtuServer(d, pair.a, units, size=10, name=f"{name}-pymodbus")
    bridge = SocatTcpBridge(d, pair.b, name=f"{name}-bridge")
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        devices = []
        for u in range(1, 6):
            dv = device(f"unit{u}", [group("g", [{"name": "v", "table": "holding",
                                                  "address": 0}], PERIOD_MS)], unit_id=u)
            dv["backoff_max_ms"] = backoff_max_ms
            devices.append(dv)
        conn = {"name": "line", "plugin": "modbus", "transport": "rtu_over_tcp",
                "host": "127.0.0.1", "port": bridge.port, "timeout_ms": 150,
                "devices": devices}
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn], log_level="info"), d,
                     name=name)
        sub.wait_for(lambda m: is_data(m, "unit1") and
                     m.payload["values"]["v"].get("q") == "good", 20, "a good sample of unit1")
        t0 = time.monotonic() + warmup_s
        time.sleep(warmup_s + seconds)
        log = gw.log()
        check(gw.stop() == 0, f"{name}: SIGTERM exit status {gw.returncode}")
    # Mean period from the polls' own timestamps (poll start), messages received in the window.
    periods = {}
    for u in range(1, 6):
        ts = [m.payload["ts"] for m in sub.messages() if is_data(m, f"unit{u}")
              and m.time >= t0]
        check(len(ts) >= 5, f"{name}: only {len(ts)} messages of unit{u}")
        periods[f"unit{u}"] = (ts[-1] - ts[0]) / (len(ts) - 1)
    dead = [m.payload["values"]["v"] for m in sub.messages() if is_data(m, f"unit{DEAD_UNIT}")]
    return periods, dead, log


def test_dead_unit_keeps_the_period_of_the_others(d):
    # Each try of the dead unit costs the others one cycle (its 150 ms timeout is longer than
    # the 100 ms period); the back-off makes the tries rarer: after 2 s they come 3.2 s and
    # 6.4 s apart, so 6 s hold about 2 of them in 60 polls.
    periods, dead, log = measure_periods(d, "backoff", 60000, 2, 6)
    note("mean poll period with back-off: " +
         ", ".join(f"{k} {v:.1f} ms" for k, v in periods.items()))
    for dev, period in periods.items():
        if dev == f"unit{DEAD_UNIT}":
            continue
        check(abs(period - PERIOD_MS) <= 0.1 * PERIOD_MS,
              f"{dev}: mean poll period {period:.1f} ms, configured {PERIOD_MS} ms (more than "
              f"10% off) while unit {DEAD_UNIT} is dead: {periods}")
    # The failure is reported bad (timeout) first; a unit that stays dead for stale_after is
    # then reported stale, keeping the reason (docs/reporting.md).
    check(dead and dead[0].get("q") == "bad" and
          all(s.get("q") in ("bad", "stale") and s.get("reason") == "timeout" for s in dead),
          f"the dead unit's samples: {dead[:3]}")
    check(log.count(f"unit {DEAD_UNIT} does not answer") == 1,
          f"the back-off of unit {DEAD_UNIT} was not logged exactly once:\n{log[-3000:]}")

    # The same line without back-off: each poll of the dead unit costs a timeout longer than
    # the period itself, so the units polled after it fall behind. This shows that the
    # measurement above can fail.
    periods, _, _ = measure_periods(d, "no-backoff", 0, 1, 3)
    note("mean poll period without back-off: " +
         ", ".join(f"{k} {v:.1f} ms" for k, v in periods.items()))
    check(max(periods[f"unit{u}"] for u in (4, 5)) > 1.5 * PERIOD_MS,
          f"without back-off the units polled after the dead one still kept their period: "
          f"{periods}")


class OneRequestServer:
    """A Modbus TCP device that serves one request per connection: it answers a read of holding
    or input registers (zeros) and closes the connection (issue 13 #6)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with c:
                c.settimeout(5)
                try:
                    req = c.recv(260)
                except OSError:
                    continue
                if len(req) < 12 or req[7] not in (3, 4):
                    continue
                count = struct.unpack(">H", req[10:12])[0]
                pdu = bytes([req[7], 2 * count]) + bytes(2 * count)
                c.sendall(req[0:4] + struct.pack(">H", len(pdu) + 1) + req[6:7] + pdu)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_device_closing_after_each_request(d):
    """A device that closes the connection after every request: each poll (two requests) loses
    it. The plugin logs the start of that once, not every loss and reconnection."""
    with OneRequestServer() as srv:
        conn = modbus_connection("oneshot", srv.port, [device("dev", [group("g", [
            {"name": "h", "table": "holding", "address": 0},
            {"name": "i", "table": "input", "address": 0}], interval_ms=100)])])
        cfg = gateway_config(mqtt_section(url=f"mqtt://127.0.0.1:{free_port()}",
                                          allow_insecure=True), [conn], log_level="info")
        gw = Gateway(cfg, d)
        check(wait_until(lambda: srv.connections >= 40, 60),
              f"only {srv.connections} connections in 60 s:\n{gw.log()[-2000:]}")
        gw.stop()
        lines = [l for l in gw.log().splitlines() if "[oneshot" in l]
        plugin = [l for l in lines if f"127.0.0.1:{srv.port}" in l and "connected to" not in l
                  or re.search(r"connected to \S+ again", l)]
        note(f"{srv.connections} connections, {len(lines)} log lines of the connection in all "
             f"(the daemon's included), {len(plugin)} of the plugin's about the link:")
        for line in plugin:
            note("  " + line)
        check(sum("lost" in l for l in plugin) == 1 and len(plugin) == 1,
              "the plugin logged the losses more than once:\n" + "\n".join(lines[:20]))
        # The daemon's side (poller.c): one loss episode, no "connection open" per reopen.
        daemon = [l for l in lines if "connection lost while reading" in l or
                  "connection open" in l]
        check(len(daemon) <= 2 and sum("lost while reading" in l for l in daemon) == 1,
              "the daemon logged the losses or reopenings more than once:\n" +
              "\n".join(daemon[:20]))


def test_docs_agree_with_the_plugin(d):
    """docs/modbus.md against the code: its Modbus TCP example passes --check, its voltage_l1
    sits where docs/reload.md's CSV puts it, every key --list-plugins prints for the plugin is
    documented, and CSV tag lists (which work) are not called missing."""
    text = (ROOT / "docs" / "modbus.md").read_text()
    example = text[text.index("```yaml\nconnections:"):]
    example = example[len("```yaml\n"):example.index("  - name: rs485-line-a")]
    config = ("gateway: {id: docs}\n"
              "north: {mqtt: {url: \"mqtt://127.0.0.1:1883\", allow_insecure: true}}\n"
              "store: {path: queue}\n" + example)
    rc, out = run_check(config, d, "docs-example")
    check(rc == 0, f"docs/modbus.md's example fails --check:\n{out}\n{config}")

    def voltage_l1(doc, pattern):
        m = re.search(pattern, doc)
        check(m, f"no voltage_l1 found with {pattern!r}")
        return int(m.group(1))
    reload_doc = (ROOT / "docs" / "reload.md").read_text()
    a = voltage_l1(text, r"name: voltage_l1, table: holding, address: (\d+)")
    b = voltage_l1(reload_doc, r"\nvoltage_l1,holding,(\d+),")
    check(a == b, f"voltage_l1 at {a} in docs/modbus.md, at {b} in docs/reload.md")

    daemon = subprocess.run([str(daemon_path()), "--plugin-dir", str(plugin_dir()),
                             "--list-plugins=modbus"], capture_output=True, text=True, timeout=30)
    listing = "\n" + daemon.stdout
    keys = re.findall(r"\n    ([a-z_0-9]+) +(?:string|integer|enum|bool|duration)", listing)
    check(len(keys) > 20, f"--list-plugins printed too few modbus keys: {keys}")
    missing = [k for k in keys if f"`{k}`" not in text]
    check(not missing, f"keys of the plugin not in docs/modbus.md: {missing}")
    check("not there yet" not in text, "docs/modbus.md still calls something missing")


if __name__ == "__main__":
    run([test_types_against_simulator, test_types_against_pymodbus,
         test_rtu_serial_against_pymodbus, test_rtu_over_tcp_through_socat,
         test_dead_unit_keeps_the_period_of_the_others, test_device_closing_after_each_request,
         test_docs_agree_with_the_plugin])
