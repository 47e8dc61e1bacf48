#!/usr/bin/python3
"""Decoded values end to end: registers with known constants in the project's simulator and in
pymodbus (an independent implementation) must arrive over TLS MQTT exactly as decoded here with
struct, scaled where configured, with Modbus exceptions reported per request; a value written
over Modbus must show up within two polls; --once must print the same values."""

import re
import struct
import time

from ibtest import (session_pki, Gateway, Mosquitto, Pki, PymodbusServer, Simulator, Subscriber, check,
                    data_topic, device, gateway_config, group, is_data, modbus_client,
                    modbus_connection, mqtt_section, note, run, run_once, session_dir, tag)

INTERVAL_MS = 200
HOLDING_SIZE = 40       # the servers' holding table: addresses 0..39
PAST_END = 1000         # far from every other tag, so it is a request of its own

# name, table, address, type, order (None: the device's ABCD), constant, extra tag keys
TAGS = [
    ("u16", "holding", 0, "uint16", None, 1234, {}),
    ("i16", "holding", 1, "int16", None, -1234, {}),
    ("u32_abcd", "holding", 2, "uint32", None, 3735928559, {}),          # 0xDEADBEEF
    ("u32_cdab", "holding", 4, "uint32", "CDAB", 305419896, {}),         # 0x12345678
    ("i32_abcd", "holding", 6, "int32", "ABCD", -100000, {}),
    ("i32_cdab", "holding", 8, "int32", "CDAB", -19088744, {}),          # -0x01234568
    ("f32_abcd", "holding", 10, "float32", "ABCD", 247.9, {}),
    ("f32_cdab", "holding", 12, "float32", "CDAB", -0.0123, {}),
    ("f32_scaled", "holding", 14, "float32", "CDAB", 49.95,
     {"scale": 2, "offset": 1, "unit": "V"}),
    ("u16_scaled", "holding", 16, "uint16", None, 1000, {"scale": 0.5, "offset": -10,
                                                         "unit": "A"}),
    ("temp_tenths", "holding", 18, "int16", None, 614, {"scale": 0.1, "unit": "degC"}),
    ("setpoint", "holding", 20, "uint16", None, 7, {}),
    ("coil_on", "coil", 0, "bool", None, True, {}),
    ("coil_off", "coil", 1, "bool", None, False, {}),
    ("di_on", "discrete_input", 3, "bool", None, True, {}),
    ("in_u16", "input", 0, "uint16", None, 4321, {}),
    ("in_i32", "input", 2, "int32", "CDAB", -2, {}),
]
BAD_TAG = ("past_end", "holding", PAST_END, "uint16")

SIM_TABLE = {"holding": "holding", "input": "input", "coil": "coil",
             "discrete_input": "discrete"}


def f32(x):
    """x rounded to float32, as a Python float (what an exact decoder must produce)."""
    return struct.unpack(">f", struct.pack(">f", x))[0]


def shortest_f32(x):
    """The shortest decimal that reads back to the float32 x, as a Python float: how payloads
    show an unscaled float32 (docs/payload.md), e.g. 247.9 rather than 247.89999389648438."""
    for p in range(1, 10):
        s = f"{x:.{p}g}"
        if f32(float(s)) == f32(x):
            return float(s)
    raise AssertionError(f"no decimal of at most 9 digits reads back to {x!r}")


def raw_value(t):
    name, table, addr, typ, order, const, extra = t
    return f32(const) if typ == "float32" else const


def expected(t):
    name, table, addr, typ, order, const, extra = t
    v = raw_value(t)
    if typ == "float32" and not ("scale" in extra or "offset" in extra):
        return shortest_f32(v)
    if "scale" in extra or "offset" in extra:
        scale = extra.get("scale", 1)
        # A scale of exactly 1/N divides by N (docs/configuration.md): 614 * 0.1 reads 61.4.
        n = round(1 / scale) if abs(scale) < 1 else 0
        v = (v / n if n and 1 / n == scale else v * scale) + extra.get("offset", 0)
    return v


def registers(typ, order, value):
    """The 16-bit registers a device holds for value, first register first."""
    fmt = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}[typ]
    b = struct.pack(fmt, value)
    regs = [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2)]
    return regs[::-1] if order == "CDAB" else regs


def sim_map():
    lines = ["# test_values: constants with known decodings",
             f"size holding {HOLDING_SIZE}", "size input 10", "size coil 10",
             "size discrete 10"]
    for name, table, addr, typ, order, const, extra in TAGS:
        if typ == "bool":
            lines.append(f"{SIM_TABLE[table]} {addr} bool - const {'true' if const else 'false'}")
        else:
            o = "AB" if typ.endswith("16") else (order or "ABCD")
            c = repr(const)
            lines.append(f"{SIM_TABLE[table]} {addr} {typ} {o} const {c}   # {name}")
    return "\n".join(lines) + "\n"


def pymodbus_tables():
    t = {"holding": {}, "input": {}, "coils": {}, "discrete": {}}
    key = {"holding": "holding", "input": "input", "coil": "coils", "discrete_input": "discrete"}
    for name, table, addr, typ, order, const, extra in TAGS:
        if typ == "bool":
            t[key[table]][addr] = const
        else:
            for i, r in enumerate(registers(typ, order, const)):
                t[key[table]][addr + i] = r
    return t


def config_tags(with_bad=True):
    tags = []
    for name, table, addr, typ, order, const, extra in TAGS:
        kw = dict(extra)
        if order:
            kw["order"] = order
        tags.append(tag(name, table, addr, None if typ == "bool" else typ, **kw))
    if with_bad:
        tags.append(tag(BAD_TAG[0], BAD_TAG[1], BAD_TAG[2], BAD_TAG[3]))
    return tags


def config(port, broker=None, pki=None, with_bad=True):
    dev = device("meter1", [group("fast", config_tags(with_bad), INTERVAL_MS)],
                 byte_order="ABCD")
    mqtt = mqtt_section(broker, pki) if broker else mqtt_section(
        url="mqtts://localhost:8883", ca=pki.ca)
    return gateway_config(mqtt, [modbus_connection("src", port, [dev])])


def pki():
    return session_pki()


def f32_bits(x):
    return struct.pack(">f", x)


def is_scaled(t):
    return "scale" in t[6] or "offset" in t[6]


def same(t, got):
    """got is exactly tag t's expected value, with the right JSON type: bool for bool, int for
    unscaled integers. An unscaled float32 may be written as any decimal that reads back to the
    very same binary32 (the shortest one, 247.9, or the double expansion 247.89999389648438);
    a rounded one that names a different binary32 is wrong. Scaled values are doubles and
    must be equal as doubles."""
    want = expected(t)
    if isinstance(want, bool):
        return got is want
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return False
    if isinstance(want, int):
        return isinstance(got, int) and got == want
    if t[3] == "float32" and not is_scaled(t):
        return abs(got) < 3.5e38 and f32_bits(got) == f32_bits(want)
    return got == want


def check_values(m, label):
    """Every tag of TAGS good and exact in data message m; past_end bad with exception 2."""
    vals = m.payload["values"]
    errors = []
    for t in TAGS:
        name, extra = t[0], t[6]
        s = vals.get(name)
        if s is None:
            errors.append(f"{name}: missing")
            continue
        if s.get("q") != "good":
            errors.append(f"{name}: q={s.get('q')!r} reason={s.get('reason')!r}")
            continue
        want = expected(t)
        if not same(t, s.get("v")):
            hint = ""
            if t[3] == "float32" and not is_scaled(t):
                hint = " or any decimal that reads back as that binary32"
            errors.append(f"{name}: v={s.get('v')!r} ({type(s.get('v')).__name__}), "
                          f"expected {want!r} ({type(want).__name__}){hint}")
        if "unit" in extra and s.get("unit") != extra["unit"]:
            errors.append(f"{name}: unit={s.get('unit')!r}, expected {extra['unit']!r}")
        if not isinstance(s.get("ts"), int):
            errors.append(f"{name}: ts={s.get('ts')!r} is not an integer (ms)")
    bad = vals.get(BAD_TAG[0])
    if not isinstance(bad, dict):
        errors.append(f"{BAD_TAG[0]} (holding {PAST_END}, past the end): missing or not an "
                      f"object: {bad!r}")
    else:
        if not (bad.get("q") == "bad" and bad.get("reason") == "exception"
                and bad.get("code") == 2):
            errors.append(f"{BAD_TAG[0]} (holding {PAST_END}, past the end): {bad!r}, expected "
                          "q bad, reason exception, code 2")
        if "v" in bad:
            errors.append(f"{BAD_TAG[0]}: a bad sample carries a value {bad['v']!r}")
    check(not errors, f"{label}: {len(errors)} wrong value(s) in seq {m.payload.get('seq')}:"
          "\n  " + "\n  ".join(errors))


def run_stack(d, port, label, n=3):
    """Gateway against the Modbus server on port; checks n consecutive messages. Returns
    (broker, subscriber, gateway) still running."""
    p = pki()
    b = Mosquitto(d, tls=p.server_tls())
    sub = Subscriber(b, data_topic(), cafile=p.ca)
    gw = Gateway(config(port, b, p), d)
    try:
        sub.wait_for(lambda m: is_data(m, "meter1", "fast"), 20, "a data message from meter1")
    except Exception:
        if not gw.running():
            note(f"the gateway exited with status {gw.returncode}")
        raise
    msgs = sub.wait_count(n, 10 + n * INTERVAL_MS / 1000, data_topic())
    for m in msgs[:n]:
        check_values(m, label)
    seqs = [m.payload.get("seq") for m in msgs[:n]]
    check(all(isinstance(s, int) for s in seqs) and seqs == sorted(set(seqs)),
          f"seq not increasing: {seqs}")
    return b, sub, gw


def test_simulator_values(d):
    with Simulator(sim_map(), d) as sim:
        run_stack(d, sim.port, "simulator")


def test_pymodbus_values(d):
    t = pymodbus_tables()
    with PymodbusServer(d, holding=t["holding"], input=t["input"], coils=t["coils"],
                        discrete=t["discrete"], size=HOLDING_SIZE) as srv:
        run_stack(d, srv.port, "pymodbus")


def test_write_arrives_within_two_polls(d):
    with Simulator(sim_map(), d) as sim:
        b, sub, gw = run_stack(d, sim.port, "simulator", n=2)
        new_setpoint = 4242
        new_f32 = 12.75
        c = modbus_client(sim.port)
        try:
            t_before = int(time.time() * 1000)
            r = c.write_register(20, new_setpoint, slave=1)
            check(not r.isError(), f"writing holding 20 failed: {r}")
            r = c.write_registers(10, registers("float32", "ABCD", new_f32), slave=1)
            check(not r.isError(), f"writing holding 10..11 failed: {r}")
        finally:
            c.close()

        def has_new(m):
            v = m.payload["values"]
            return v.get("setpoint", {}).get("v") == new_setpoint and \
                v.get("f32_abcd", {}).get("v") == new_f32

        first = sub.wait_for(lambda m: is_data(m, "meter1") and has_new(m),
                             2 * INTERVAL_MS / 1000 + 5, "the written values")
        # Count polls by their sample timestamps, not by wall-clock waiting: the first poll
        # answered after the write began may have overlapped it; the second must see it.
        def sample_ts(m):
            ts = m.payload["values"].get("setpoint", {}).get("ts")
            return ts if isinstance(ts, int) else -1
        after = [m for m in sub.messages(data_topic())
                 if is_data(m, "meter1") and sample_ts(m) >= t_before]
        idx = next((i for i, m in enumerate(after) if m is first), None)
        check(idx is not None, f"the message with the written values has a sample ts "
              f"{sample_ts(first)} before the write ({t_before})")
        check(idx < 2, f"the written values arrived only in poll {idx + 1} after the write "
              f"(seqs {[m.payload.get('seq') for m in after[:idx + 1]]})")
        later = sub.wait_count(len(sub.messages(data_topic())) + 2, 10, data_topic())
        for m in [m for m in later[later.index(first):] if is_data(m, "meter1")]:
            check(has_new(m), f"seq {m.payload.get('seq')} went back to an old value: "
                  f"{m.payload['values'].get('setpoint')}, {m.payload['values'].get('f32_abcd')}")


def test_once_table(d):
    with Simulator(sim_map(), d) as sim:
        rc, out, err = run_once(config(sim.port, pki=pki()), d)
        # BAD_TAG reads a register the simulator does not serve: --once says so by its status.
        check(rc == 3, f"--once with a bad tag exited {rc}, expected 3\nstdout:\n{out}\n"
              f"stderr:\n{err[-2000:]}")
        note("--once printed:\n" + "\n".join("       " + line for line in out.splitlines()))
        lines = out.splitlines()
        header = next((line for line in lines if re.search(r"\btag\b", line, re.I)), None)
        check(header and all(re.search(rf"\b{c}\b", header, re.I)
                             for c in ("tag", "raw", "value", "unit", "quality")),
              f"no header with the columns tag, raw, value, unit, quality:\n{out}")
        def row_of(name):
            """(line, the cells after the tag's cell) of the row naming the tag."""
            for line in lines:
                cells = line.split()
                if name in cells:
                    return line, cells[cells.index(name) + 1:]
            return None, []

        errors = []
        for t in TAGS:
            name, extra = t[0], t[6]
            row, cells = row_of(name)
            if row is None:
                errors.append(f"{name}: no row")
                continue
            want = expected(t)
            if not any(cell_equals(c, t) for c in cells):
                errors.append(f"{name}: expected value {want!r} not in row: {row.strip()}")
            if "good" not in row:
                errors.append(f"{name}: quality good not in row: {row.strip()}")
            if "unit" in extra and extra["unit"] not in cells:
                errors.append(f"{name}: unit {extra['unit']} not in row: {row.strip()}")
        row, _ = row_of(BAD_TAG[0])
        if row is None or "bad" not in row:
            errors.append(f"{BAD_TAG[0]}: no row showing quality bad: {row!r}")
        check(not errors, "--once table:\n  " + "\n  ".join(errors))


def test_once_exit_status(d):
    """--once exits 0 when every tag is good and 3 when a device is dead, so that
    `ironbridge --check && ironbridge --once` catches it (ironbridge(8))."""
    with Simulator(sim_map(), d) as sim:
        rc, out, err = run_once(config(sim.port, pki=pki(), with_bad=False), d, name="good")
        check(rc == 0, f"--once with every tag good exited {rc}\n{out}\n{err[-1500:]}")
        port = sim.port
    rc, out, err = run_once(config(port, pki=pki(), with_bad=False), d, name="dead")
    check(rc == 3 and "bad" in out, f"--once against a stopped device exited {rc}, expected 3"
          f"\n{out}\n{err[-1500:]}")


def cell_equals(cell, t):
    """A table cell shows tag t's expected value: booleans as true/false (or 1/0), numbers
    exactly as in the JSON payload (see same())."""
    cell = cell.strip(",;|")
    want = expected(t)
    if isinstance(want, bool):
        return cell.lower() in (("true", "1") if want else ("false", "0"))
    try:
        got = int(cell) if re.fullmatch(r"[-+]?\d+", cell) else float(cell)
    except ValueError:
        return False
    if isinstance(want, float) and isinstance(got, int):
        got = float(got)   # a table may print 490.0 as 490
    return same(t, got)


if __name__ == "__main__":
    run([test_simulator_values, test_pymodbus_values, test_write_arrives_within_two_polls,
         test_once_exit_status,
         test_once_table])
