#!/usr/bin/python3
"""The S7 plugin end to end: the daemon reads a snap7 server (npm node-snap7, an independent S7
implementation) over ISO-on-TCP and publishes to a real mosquitto. Every type at odd and even
offsets, bits 0..7, strings of several lengths, DB, M, I/E, Q/A and T; 500 tags over three DBs
packed into the fewest Read Var requests the negotiated PDU allows; a missing DB and an address
past the end bad with their reason while the rest reads; a server that drops its clients, with
the other groups going on and the reconnect working."""

import datetime
import struct

from ibtest import (Gateway, Mosquitto, Subscriber, check, data_topic, gateway_config, is_data,
                    log_has, mqtt_section, note, run, session_pki, wait_until)
from s7peer import S7Peer

INTERVAL_MS = 200
TWO53 = 2 ** 53
EPOCH = datetime.datetime(1970, 1, 1)
WHEN = datetime.datetime(2024, 5, 1, 12, 34, 56, 789000)
WHEN_MS = int((WHEN - EPOCH).total_seconds() * 1000 + 0.5)
DAY_MS = int((datetime.datetime(2024, 5, 1) - EPOCH).total_seconds()) * 1000
TOD_MS = ((12 * 60 + 34) * 60 + 56) * 1000 + 789


def bcd(n):
    return (n // 10) << 4 | n % 10


def s7_string(text, length):
    b = text.encode("latin-1")
    return bytes([length, len(b)]) + b.ljust(length, b"\0")


def s7_wstring(text, length):
    b = text.encode("utf-16-be")
    return struct.pack(">HH", length, len(b) // 2) + b.ljust(2 * length, b"\0")


def s7_dt(t):
    wday = (t.isoweekday() % 7) + 1  # 1 = Sunday
    ms = t.microsecond // 1000
    return bytes([bcd(t.year % 100), bcd(t.month), bcd(t.day), bcd(t.hour), bcd(t.minute),
                  bcd(t.second), bcd(ms // 10), (ms % 10) << 4 | wday])


def s7_dtl(t):
    wday = (t.isoweekday() % 7) + 1
    return struct.pack(">HBBBBBBI", t.year, t.month, t.day, wday, t.hour, t.minute, t.second,
                       t.microsecond * 1000)


# name, address, type (None: by width), server bytes, expected "v", extra tag keys.
# area and offset of the bytes come from the address (parsed below for the test's own use).
TAGS = [
    ("byte_even", "DB1.DBB2", "byte", b"\xfe", 254, {}),
    ("char_odd", "db1.dbb3", "char", b"Z", "Z", {}),
    ("word_even", "%DB1.DBW4", None, b"\xbe\xef", 0xBEEF, {}),
    ("int_odd", "DB1.DBW7", "int", struct.pack(">h", -12345), -12345, {}),
    ("dword_even", "DB1.DBD10", None, b"\xde\xad\xbe\xef", 0xDEADBEEF, {}),
    ("dint_odd", "DB1.DBD15", "dint", struct.pack(">i", -2000000000), -2000000000, {}),
    ("real_even", "DB1.DBD20", "real", struct.pack(">f", 3.14159), 3.14159, {}),
    ("real_odd", "DB1.DBD25", "real", struct.pack(">f", -0.5), -0.5, {}),
    ("lreal_even", "DB1.DBB30", "lreal", struct.pack(">d", 2.718281828459045),
     2.718281828459045, {}),
    ("lreal_odd", "DB1.DBB39", "lreal", struct.pack(">d", -1e300), -1e300, {}),
    ("usint", "DB1.DBB48", "usint", b"\xc8", 200, {}),
    ("sint", "DB1.DBB49", "sint", struct.pack(">b", -100), -100, {}),
    ("uint_even", "DB1.DBW50", "uint", b"\xff\xff", 65535, {}),
    ("udint_odd", "DB1.DBD53", "udint", struct.pack(">I", 4000000000), 4000000000, {}),
    ("lint_even", "DB1.DBB58", "lint", struct.pack(">q", -123456789012), -123456789012, {}),
    ("ulint_odd", "DB1.DBB67", "ulint", struct.pack(">Q", 2 ** 64 - 1), str(2 ** 64 - 1), {}),
    ("string_even", "DB1.DBB76", "string", s7_string("hello", 10), "hello", {"length": 10}),
    ("string_odd", "DB1.DBB89", "string", s7_string("S7 odd, Grün", 20), "S7 odd, Grün",
     {"length": 20}),
    ("string_empty", "DB1.DBB112", "string", s7_string("", 4), "", {"length": 4}),
    ("string_full", "DB1.DBB118", "string", s7_string("x" * 254, 254), "x" * 254,
     {"length": 254}),
    ("wstring", "DB1.DBB380", "wstring", s7_wstring("Grüße €", 8), "Grüße €", {"length": 8}),
    ("s5time", "DB1.DBW402", "s5time", b"\x21\x23", 123000, {}),
    ("time_odd", "DB1.DBD405", "time", struct.pack(">i", -5000), -5000, {}),
    ("date", "DB1.DBW410", "date", struct.pack(">H", 12539), DAY_MS, {}),
    ("date_iso", "DB1.DBW410", "date", None, "2024-05-01", {"format": "iso"}),
    ("tod_odd", "DB1.DBD413", "time_of_day", struct.pack(">I", TOD_MS), TOD_MS, {}),
    ("tod_iso", "DB1.DBD413", "time_of_day", None, "12:34:56.789", {"format": "iso"}),
    ("dt", "DB1.DBB420", "date_and_time", s7_dt(WHEN), WHEN_MS, {}),
    ("dt_iso", "DB1.DBB420", "date_and_time", None, "2024-05-01T12:34:56.789",
     {"format": "iso"}),
    ("dtl_odd", "DB1.DBB431", "dtl", s7_dtl(WHEN), WHEN_MS, {}),
    ("dtl_iso", "DB1.DBB431", "dtl", None, "2024-05-01T12:34:56.789", {"format": "iso"}),
    ("mb", "MB5", None, b"\x07", 7, {}),
    ("mw", "mw10", "int", struct.pack(">h", -2), -2, {}),
    ("md", "%MD21", "real", struct.pack(">f", 1.5), 1.5, {}),
    ("iw", "IW4", None, b"\x12\x34", 0x1234, {}),
    ("ed", "ED8", "dint", struct.pack(">i", 77), 77, {}),
    ("qb", "QB3", None, b"\x99", 0x99, {}),
    ("ad", "AD8", "real", struct.pack(">f", -2.25), -2.25, {}),
    ("timer", "T4", None, b"\x21\x23", 123000, {}),
]
# Bits 0..7 of an even byte (DB1.DBB0 = A5) and of an odd one (DB1.DBB1 = 5A), of M, I (also
# written E) and Q (also written A).
def shifted(address):
    """The same DB1 address one byte further on in DB3, so that every type is read at an odd
    and at an even offset."""
    db, rest = address.lstrip("%").upper().split(".", 1)
    kind, off = rest[:3], int(rest[3:])
    return f"DB3.{kind}{off + 1}"


TAGS += [(f"{n}_shifted", shifted(a), t, d, w, x) for n, a, t, d, w, x in TAGS
         if a.lstrip("%").upper().startswith("DB1.")]
BITS = [(f"dbx0_{b}", f"DB1.DBX0.{b}", bool(0xA5 >> b & 1)) for b in range(8)]
BITS += [(f"dbx1_{b}", f"db1.dbx1.{b}", bool(0x5A >> b & 1)) for b in range(8)]
BITS += [("m0_1", "M0.1", True), ("m0_2", "M0.2", False), ("i0_0", "I0.0", True),
         ("e0_1", "E0.1", False), ("q4_2", "Q4.2", True), ("a4_3", "%A4.3", False)]
BIT_BYTES = [("DB", 1, 0, b"\xa5\x5a"), ("M", 0, 0, b"\x02"), ("I", 0, 0, b"\x01"),
             ("Q", 0, 4, b"\x04")]
MISSING = ("missing_db", "DB9.DBW0")  # no DB 9 on the server: object does not exist (0x0A)
PAST_END = ("past_end", "DB2.DBD98")  # DB2 has 100 bytes: address out of range (0x05)
# Its neighbour shares its span (and so its refusal) in the first poll; the plugin then reads
# the refused span's tags one by one, and the neighbour reads good.
NEAR_END = ("near_end", "DB2.DBW96", b"\x01\x02", 0x0102)


def area_of(address):
    """(area, db, offset) of an address as the peer's control socket names them."""
    a = address.lstrip("%").upper()
    if a.startswith("DB"):
        db, rest = a[2:].split(".", 1)
        return "DB", int(db), int(rest[3:].split(".")[0])
    area = {"M": "M", "I": "I", "E": "I", "Q": "Q", "A": "Q", "T": "T"}[a[0]]
    digits = a[1:].lstrip("XBWD")
    return area, 0, int(digits.split(".")[0])


def load_server(peer):
    for name, address, typ, data, want, extra in TAGS:
        if data is None:
            continue
        area, db, off = area_of(address)
        if area == "T":
            # snap7's server finds timer n at byte n/2 of its area (its own reading of the
            # address field); the plugin sends the timer number as the S7 protocol defines it
            off //= 2
        peer.set(area, off, data, db)
    for area, db, off, data in BIT_BYTES:
        peer.set(area, off, data, db)
    peer.set("DB", 96, NEAR_END[2], 2)


def config_tags():
    tags = []
    for name, address, typ, data, want, extra in TAGS:
        t = {"name": name, "address": address}
        if typ:
            t["type"] = typ
        t.update(extra)
        tags.append(t)
    tags += [{"name": n, "address": a} for n, a, _ in BITS]
    tags += [{"name": MISSING[0], "address": MISSING[1]},
             {"name": PAST_END[0], "address": PAST_END[1], "type": "real"},
             {"name": NEAR_END[0], "address": NEAR_END[1]}]
    return tags


def s7_connection(name, port, devices, **kw):
    c = {"name": name, "plugin": "s7", "host": "127.0.0.1", "port": port, "timeout": "1s"}
    c.update(kw)
    c["devices"] = devices
    return c


def s7_device(name, groups):
    return {"name": name, "groups": groups}


def check_values(m):
    vals = m.payload["values"]
    errors = []
    expected = [(n, w) for n, _, _, _, w, _ in TAGS] + [(n, w) for n, _, w in BITS]
    expected.append((NEAR_END[0], NEAR_END[3]))
    for name, want in expected:
        s = vals.get(name)
        if not isinstance(s, dict) or s.get("q") != "good":
            errors.append(f"{name}: {s!r}")
        elif s.get("v") != want or type(s.get("v")) is not type(want):
            errors.append(f"{name}: v={s.get('v')!r}, expected {want!r}")
    for (name, _), code in ((MISSING, 10), (PAST_END, 5)):
        s = vals.get(name)
        # after the first report the daemon may mark a bad tag stale: still no value, same reason
        if not (isinstance(s, dict) and s.get("q") in ("bad", "stale")
                and s.get("reason") == "exception"
                and s.get("code") == code and "v" not in s):
            errors.append(f"{name}: {s!r}, expected bad with exception {code}")
    check(not errors, f"{len(errors)} wrong value(s):\n  " + "\n  ".join(errors))


def test_types_bits_strings_and_refusals(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, S7Peer(d, {1: 700, 2: 100, 3: 700}) as peer:
        load_server(peer)
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        conn = s7_connection("plc", peer.port, [s7_device("cpu", [
            {"name": "all", "interval_ms": INTERVAL_MS, "tags": config_tags()}])])
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d)
        sub.wait_for(lambda m: is_data(m, "cpu") and
                     m.payload["values"][NEAR_END[0]].get("q") == "good", 20,
                     "a data message from cpu with near_end read alone")
        sub.clear()
        msgs = [m for m in sub.wait_count(2, 10, data_topic()) if is_data(m, "cpu")]
        for m in msgs[:2]:
            check_values(m)
        # a change on the server is published
        peer.set("DB", 4, b"\x00\x2a", 1)
        sub.wait_for(lambda m: is_data(m, "cpu") and
                     m.payload["values"]["word_even"].get("v") == 42, 10, "word_even = 42")
        log = gw.log()
        check(log_has(log, "missing_db", "object does not exist", "optimized block access")
              is not None, f"the missing DB's reason and likely cause are not logged:\n"
              f"{log[-3000:]}")
        check(log_has(log, "past_end", "address out of range") is not None,
              "the address past the end is not logged")
        check(log_has(log, "read one by one") is not None,
              "the split of the refused span is not logged")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def planned_requests(pdu, spans, max_items=20):
    """The greedy packing the planner promises: fill each request's response up to the PDU
    (12-byte header, 2 bytes of parameters, per item 4 bytes + data + a fill byte counted for
    odd data), at most max_items items and (10 + 2 + 12 * items) request bytes."""
    requests, used, items = 0, 0, 0
    for size in spans:
        left = size
        while left > 0:
            room = 0
            if requests and items < max_items and 12 + 12 * (items + 1) <= pdu:
                room = max(0, pdu - (used + 5))
            if room == 0:
                requests, used, items = requests + 1, 14, 0
                continue
            take = min(left, room)
            used += 4 + take + (take & 1)
            items += 1
            left -= take
    return requests


def test_500_tags_pack_to_the_pdu(d):
    """500 REALs back to back over three DBs: the requests per poll are the fewest the
    negotiated PDU allows (240 as an S7-300 grants, 480 as snap7's default), and the server
    reads the planned items once per poll."""
    for pdu in (240, 480):
        pack_500(d / f"pdu{pdu}", pdu)


def pack_500(d, pdu_granted):
    p = session_pki()
    sizes = {10: 700, 11: 700, 12: 700}
    tags, spans = [], []
    per_db = [167, 167, 166]
    for (db, n) in zip(sizes, per_db):
        for i in range(n):
            tags.append({"name": f"r{db}_{i}", "address": f"DB{db}.DBD{4 * i}", "type": "real"})
        spans.append(4 * n)
    check(len(tags) == 500, "500 tags")
    with Mosquitto(d, tls=p.server_tls()) as b, S7Peer(d, sizes, pdu=pdu_granted) as peer:
        for db in sizes:
            peer.set("DB", 0, struct.pack(">f", float(db)), db)
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        conn = s7_connection("plc", peer.port, [s7_device("cpu", [
            {"name": "dense", "interval_ms": 1000, "tags": tags}])])
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d)
        m = sub.wait_for(lambda m: is_data(m, "cpu"), 20, "a data message")
        vals = m.payload["values"]
        bad = [k for k, s in vals.items() if s.get("q") != "good"]
        check(not bad, f"{len(bad)} bad of 500: {bad[:5]}")
        check(vals["r11_0"]["v"] == 11.0, f"r11_0 = {vals['r11_0']}")
        log = gw.log()
        line = log_has(log, "group dense: 500 tags in 3 spans")
        check(line is not None, f"no plan line for group dense:\n{log[-2000:]}")
        pdu = int(line.split("(PDU ")[1].rstrip(")\n "))
        want = planned_requests(pdu, spans)
        got = int(line.split("spans, ")[1].split(" Read Var")[0])
        note(f"negotiated PDU {pdu}: 500 tags, 2000 bytes in {got} requests (fewest: {want})")
        check(pdu == pdu_granted, f"negotiated PDU {pdu}, the server grants {pdu_granted}")
        check(got == want, f"planned {got} requests, the PDU allows {want}: {line}")
        # no packing can do with fewer: every request carries at most pdu - 14 bytes of item
        # headers (4 each, at least one per span) and data
        bound = -(-(sum(spans) + 4 * len(spans)) // (pdu - 14))
        check(bound <= got <= bound + 1, f"{got} requests, the lower bound is {bound}")
        # the server reads exactly the planned items, each once per poll
        items = int(line.split("requests with ")[1].split(" items")[0])
        before = peer.items()
        n0 = len(sub.messages(data_topic()))
        wait_until(lambda: len(sub.messages(data_topic())) >= n0 + 3, 15)
        polls = len(sub.messages(data_topic())) - n0
        read = peer.items() - before
        check(polls >= 3 and items * (polls - 1) <= read <= items * (polls + 1),
              f"the server read {read} items over {polls} polls, planned {items} per poll")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_dropped_connection_and_reconnect(d):
    """The server drops every client: the group goes bad (connection lost), another
    connection's group goes on, and values come back after the reconnect."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, S7Peer(d, {1: 10}, name="a") as pa, \
            S7Peer(d, {1: 10}, name="b") as pb:
        pa.set("DB", 0, b"\x00\x01", 1)
        pb.set("DB", 0, b"\x00\x02", 1)
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        g = [{"name": "g", "interval_ms": INTERVAL_MS,
              "tags": [{"name": "w", "address": "DB1.DBW0"}]}]
        conns = [s7_connection("plc_a", pa.port, [s7_device("a", g)]),
                 s7_connection("plc_b", pb.port, [s7_device("b", g)])]
        gw = Gateway(gateway_config(mqtt_section(b, p), conns), d)
        for dev in ("a", "b"):
            sub.wait_for(lambda m, dev=dev: is_data(m, dev) and
                         m.payload["values"]["w"].get("q") == "good", 20, f"good from {dev}")
        sub.clear()
        pa.set("DB", 0, b"\x00\x03", 1)
        pa.drop()
        sub.wait_for(lambda m: is_data(m, "a") and
                     m.payload["values"]["w"].get("reason") == "connection_lost", 20,
                     "a connection_lost sample from a after the drop")
        sub.wait_for(lambda m: is_data(m, "b") and m.payload["values"]["w"].get("v") == 2, 10,
                     "b goes on")
        sub.wait_for(lambda m: is_data(m, "a") and m.payload["values"]["w"].get("v") == 3, 30,
                     "a reads again after the reconnect")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


if __name__ == "__main__":
    run([test_types_bits_strings_and_refusals, test_500_tags_pack_to_the_pdu,
         test_dropped_connection_and_reconnect])
