#!/usr/bin/python3
"""Commands from the platform (docs/commands.md) against a real mosquitto and pymodbus as the
device: every type and word order x scale lands on the registers exactly as its wire encoding
and reads back; every refusal writes nothing (checked on the device); a duplicate id is answered
with its first result and never applied twice; an old or broker-held request is expired and not
applied; MQTT 5 response topic and correlation data are honoured; signed mode refuses unsigned,
tampered, other-key and replayed requests; a burst of 1,000 requests is answered in full while
the poll period is measured (printed, not asserted)."""

import json
import struct
import subprocess
import time

from ibtest import (session_pki, Gateway, Mosquitto, PymodbusServer, Subscriber, check,
                    daemon_path, device, gateway_config, group, is_data, modbus_client,
                    modbus_connection, mqtt_section, note, run, tag, to_yaml, wait_until)

GW = "test-gw"
REQ = f"ironbridge/{GW}/command"
ANS = f"ironbridge/{GW}/command/response"

# (type, width in registers, struct format of the big-endian value)
TYPES = [("int16", 1, ">h"), ("uint16", 1, ">H"), ("int32", 2, ">i"), ("uint32", 2, ">I"),
         ("float32", 2, ">f"), ("int64", 4, ">q"), ("uint64", 4, ">Q"), ("float64", 4, ">d")]
ORDERS_16 = ["AB", "BA"]
ORDERS_WIDE = ["ABCD", "CDAB", "BADC", "DCBA"]


def wire(fmt, value, order):
    """The registers of `value` packed by fmt in `order`, as the Modbus plugin documents it."""
    b = struct.pack(fmt, value)
    words = [b[i:i + 2] for i in range(0, len(b), 2)]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    if order in ("BA", "BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def matrix():
    """One writable tag per type x order x scale, each at its own address."""
    tags, addr = [], 0
    for typ, width, fmt in TYPES:
        for order in (ORDERS_16 if width == 1 else ORDERS_WIDE):
            for scale in (1, 0.1):
                name = f"{typ}_{order}_{'s' if scale != 1 else 'r'}"
                extra = {"writable": True, "order": order}
                if scale != 1:
                    extra["scale"] = scale
                tags.append((name, typ, width, fmt, order, scale, addr, extra))
                addr += width
    return tags


def value_for(typ, scale):
    """An engineering value whose raw value is exact for the type: raw 1234 (or -1234), 1234.5
    for floats."""
    raw = {"int16": -1234, "uint16": 1234, "int32": -123456, "uint32": 3000000000,
           "float32": 1234.5, "int64": -1234567890123,
           "uint64": 12345678901234567 if scale == 1 else 1234567890123,
           "float64": -98765.4321}[typ]
    if scale == 1:
        return raw, raw
    if typ.startswith("float"):
        return raw * scale, None  # a float raw value is whatever the unscaling gives
    # raw / 10 as a decimal that reads back to raw exactly (the daemon divides by 10)
    return raw / 10, raw


class Client:
    """Publishes requests and collects answers (mosquitto_sub on the answer topic)."""

    def __init__(self, broker, pki, topic=ANS):
        self.sub = Subscriber(broker, [topic, f"ironbridge/{GW}/+/+"], cafile=pki.ca)
        self.n = 0

    def send(self, req, retain=False):
        self.sub.publish(REQ, req if isinstance(req, str) else json.dumps(req), retain=retain)

    def answer(self, rid, timeout=15):
        def find():
            for m in self.sub.messages():
                if m.topic == ANS and isinstance(m.payload, dict) and m.payload.get("id") == rid:
                    return m.payload
            return None
        check(wait_until(lambda: find() is not None, timeout), f"no answer to {rid}\n"
              f"{self.sub.describe(20)}")
        return find()

    def answers(self, rid):
        return [m.payload for m in self.sub.messages()
                if m.topic == ANS and isinstance(m.payload, dict) and m.payload.get("id") == rid]

    def call(self, req, timeout=15):
        req.setdefault("ts", int(time.time() * 1000))
        self.send(req)
        return self.answer(req["id"], timeout)


def base_tags():
    return [
        tag("sp", "holding", 100, "uint16", scale=0.1, writable=True, write_min=0, write_max=100),
        tag("ro", "holding", 101, "uint16"),
        tag("txt", "holding", 102, "int16", writable=True),
        tag("run", "coil", 0, "bool", writable=True),
        tag("slow", "holding", 103, "uint16", writable=True, write_interval="1h"),
    ]


def gateway(d, b, pki, dev_port, tags, interval=100, mqtt_extra=None, extra=None, name="gw"):
    m = mqtt_section(b, pki)
    m.update(mqtt_extra or {})
    conn = modbus_connection("c1", dev_port, [device("d1", [group("g", tags, interval)])])
    text = gateway_config(m, [conn], log_level="info")
    if extra:
        text += to_yaml(extra) + "\n"
    return Gateway(text, d, name=name)


def holding(port, addr, n=1):
    c = modbus_client(port)
    try:
        r = c.read_holding_registers(addr, n, slave=1)
        check(not r.isError(), f"reading holding {addr}: {r}")
        return list(r.registers)
    finally:
        c.close()


def set_holding(port, addr, values):
    c = modbus_client(port)
    try:
        c.write_registers(addr, values, slave=1)
    finally:
        c.close()


def wait_up(cl, gw):
    check(wait_until(lambda: any(is_data(m) for m in cl.sub.messages()), 20),
          f"no data from the gateway\n{gw.log()[-2000:]}")


def res(ans, t):
    return ans["results"][t]


def test_types_orders_scales(d):
    """Every type and order x scale: the registers hold exactly the wire encoding of the
    requested engineering value, and the value read back (verify) equals it."""
    p = session_pki()
    tags = matrix()
    size = tags[-1][6] + 8
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, size=size + 10) as dev:
        cl = Client(b, p)
        gw = gateway(d, b, p, dev.port, [tag(n, "holding", a, t, **x)
                                          for n, t, _, _, _, _, a, x in tags])
        wait_up(cl, gw)
        for i, (name, typ, width, fmt, order, scale, addr, _) in enumerate(tags):
            eng, raw = value_for(typ, scale)
            a = cl.call({"id": f"m{i}", "device": "d1", "write": {name: eng}, "verify": True})
            r = res(a, name)
            check(r["result"] == "ok", f"{name} = {eng}: {a}\n{gw.log()[-1500:]}")
            regs = holding(dev.port, addr, width)
            if raw is None:  # float scaled: the daemon's raw value is eng * 10 (1/0.1)
                raw = eng * 10
            want = wire(fmt, struct.unpack(fmt, struct.pack(fmt, raw))[0], order)
            check(regs == want, f"{name} = {eng}: registers {regs}, expected {want} (raw {raw})")
            if typ.startswith("float") and scale != 1:
                check(abs(r["v"] - eng) <= abs(eng) * 1e-6, f"{name}: read back {r['v']}, sent {eng}")
            else:
                v = int(r["v"]) if isinstance(r["v"], str) else r["v"]  # > 2^53: a string
                check(v == eng, f"{name}: read back {r['v']}, sent {eng}")
        note(f"{len(tags)} type/order/scale combinations written and read back exactly")
        gw.stop()


def test_refusals_write_nothing(d):
    """Not writable, out of range, a fraction for an integer, a value that does not fit the
    wire type, unknown device and tag, malformed JSON, a missing id: each refused, and the
    device's registers unchanged."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, \
            PymodbusServer(d, size=200, holding={100: 7, 101: 8, 102: 9}) as dev:
        cl = Client(b, p)
        gw = gateway(d, b, p, dev.port, base_tags())
        wait_up(cl, gw)
        cases = [
            ("r1", {"ro": 5}, "ro", "denied"),
            ("r2", {"sp": 100.1}, "sp", "out_of_range"),
            ("r3", {"sp": -1}, "sp", "out_of_range"),
            ("r4", {"sp": 61.45}, "sp", "bad_type"),
            ("r5", {"txt": 1.5}, "txt", "bad_type"),
            ("r6", {"txt": 40000}, "txt", "out_of_range"),
            ("r7", {"txt": "hello"}, "txt", "bad_type"),
            ("r8", {"nope": 1}, "nope", "unknown_tag"),
        ]
        for rid, w, t, want in cases:
            a = cl.call({"id": rid, "device": "d1", "write": w})
            check(res(a, t)["result"] == want, f"{rid} {w}: expected {want}, got {a}")
            check(res(a, t).get("error"), f"{rid}: no error text: {a}")
        a = cl.call({"id": "r9", "device": "nodev", "write": {"sp": 1}})
        check(res(a, "sp")["result"] == "unknown_device", f"unknown device: {a}")
        cl.send('{"id": "r10", "device": "d1", "write": {"sp": 5,}}')
        a = cl.answer("r10")
        check(a.get("result") == "malformed" and "byte" in a.get("error", ""),
              f"malformed JSON: {a}")
        cl.send('{"device": "d1", "write": {"sp": 5}}')  # no id: not answerable
        time.sleep(1)
        check(holding(dev.port, 100, 3) == [7, 8, 9],
              f"a refused request wrote to the device: {holding(dev.port, 100, 3)}")
        check("refused (malformed)" in gw.log() and "(no id)" in gw.log(),
              "the request without id is not in the log")
        # a tag refused beside one accepted: the accepted one is written, in order
        t_write = time.monotonic()
        a = cl.call({"id": "r11", "device": "d1", "write": {"ro": 1, "sp": 61.4}, "verify": True})
        check(res(a, "ro")["result"] == "denied" and res(a, "sp") == {"result": "ok", "v": 61.4},
              f"mixed request: {a}")
        check(holding(dev.port, 100, 2) == [614, 8], f"registers: {holding(dev.port, 100, 2)}")
        # the next poll publishes the new value
        check(wait_until(lambda: any(is_data(m) and m.time > t_write and
                                     m.payload["values"].get("sp", {}).get("v") == 61.4
                                     for m in cl.sub.messages()), 10),
              f"the written value was not published\n{cl.sub.describe(5)}")
        # write_interval: a second write within it is busy
        check(res(cl.call({"id": "r12", "device": "d1", "write": {"slow": 1}}), "slow")["result"]
              == "ok", "first write of slow")
        a = cl.call({"id": "r13", "device": "d1", "write": {"slow": 2}})
        check(res(a, "slow")["result"] == "busy", f"write within write_interval: {a}")
        check(holding(dev.port, 103) == [1], "the busy write reached the device")
        # a read "now" (not the last poll): change the register behind the gateway's back
        set_holding(dev.port, 101, [4242])
        a = cl.call({"id": "r14", "device": "d1", "read": ["ro"]})
        check(res(a, "ro") == {"result": "ok", "v": 4242}, f"read now: {a}")
        check("IB_COMMAND_ID" in gw.log() or "command r1 " in gw.log(),
              "no audit line for the commands")
        gw.stop()


def test_duplicate_and_expired(d):
    """A repeated id is answered with its first result and not applied again; a request older
    than max_age, and one held by the broker (retained) through a 20 s gateway outage, are
    expired and not applied."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, size=200) as dev:
        cl = Client(b, p)
        gw = gateway(d, b, p, dev.port, base_tags())
        wait_up(cl, gw)
        req = {"id": "dup-1", "device": "d1", "write": {"sp": 12.3}, "verify": True}
        first = cl.call(dict(req))
        check(res(first, "sp")["result"] == "ok", f"first: {first}")
        set_holding(dev.port, 100, [5])  # the device moves on
        req["ts"] = int(time.time() * 1000)
        cl.send(req)  # as a QoS 1 redelivery would
        check(wait_until(lambda: len(cl.answers("dup-1")) >= 2, 10), "no answer to the repeat")
        again = cl.answers("dup-1")[1]
        check(again.get("duplicate") is True and res(again, "sp")["result"] == "ok" and
              res(again, "sp").get("v") == 12.3, f"repeat: {again}")
        time.sleep(0.5)
        check(holding(dev.port, 100) == [5], "the repeated id was applied again")
        old = cl.call({"id": "old-1", "device": "d1", "write": {"sp": 20},
                       "ts": int(time.time() * 1000) - 11000})
        check(res(old, "sp")["result"] == "expired", f"old request: {old}")
        check(holding(dev.port, 100) == [5], "an expired request was applied")
        # a gateway outage of 20 s with a request held by the broker
        gw.stop()
        cl.send({"id": "held-1", "device": "d1", "write": {"sp": 30},
                 "ts": int(time.time() * 1000)}, retain=True)
        time.sleep(20)
        gw = gateway(d, b, p, dev.port, base_tags(), name="gw2")
        a = cl.answer("held-1", 30)
        check(res(a, "sp")["result"] == "expired", f"held request: {a}")
        time.sleep(0.5)
        check(holding(dev.port, 100) == [5], "a request held through the outage was applied")
        cl.sub.publish(REQ, "", retain=True)  # clear the retained request
        gw.stop()


def pub5(b, p, payload, props):
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "--cafile", str(p.ca),
           "-V", "mqttv5", "-q", "1", "-t", REQ, "-m", payload]
    for k, v in props:
        cmd += ["-D", "publish", k] + (v if isinstance(v, list) else [v])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    check(r.returncode == 0, f"mosquitto_pub -V 5: {r.stderr}")


def test_mqtt5_response_topic(d):
    """With north.mqtt.version: 5, data still flows, and an answer goes to the request's
    Response Topic with its Correlation Data; the requester user property is audited."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, size=200) as dev:
        out = d / "v5.out"
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port),
                                "--cafile", str(p.ca), "-V", "mqttv5", "-q", "1",
                                "-t", "app/replies/7", "-F", "%t|%D|%p"],
                               stdout=open(out, "w"), stderr=subprocess.STDOUT)
        try:
            cl = Client(b, p)
            gw = gateway(d, b, p, dev.port, base_tags(), mqtt_extra={"version": "5"})
            wait_up(cl, gw)
            pub5(b, p, json.dumps({"id": "v5-1", "device": "d1", "write": {"sp": 42},
                                   "ts": int(time.time() * 1000)}),
                 [("response-topic", "app/replies/7"), ("correlation-data", "corr-xyz"),
                  ("user-property", ["requester", "alice"])])
            check(wait_until(lambda: "v5-1" in out.read_text(), 15),
                  f"no answer on the response topic: {out.read_text()}\n{gw.log()[-1500:]}")
            line = [ln for ln in out.read_text().splitlines() if "v5-1" in ln][0]
            topic, corr, payload = line.split("|", 2)
            check(topic == "app/replies/7" and corr == "corr-xyz", f"answer: {line}")
            check(json.loads(payload)["results"]["sp"]["result"] == "ok", line)
            check(holding(dev.port, 100) == [420], "the MQTT 5 write did not land")
            check("alice" in gw.log(), "the requester is not in the audit")
            check(not cl.answers("v5-1"), "answered on the default topic too")
            gw.stop()
        finally:
            sub.terminate()
            sub.wait()


def keypair(d, name):
    key, pub = d / f"{name}.key", d / f"{name}.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True)
    key.chmod(0o600)
    return key, pub


def sign(d, req, key):
    f = d / "req.json"
    f.write_text(json.dumps(req))
    r = subprocess.run([daemon_path(), "--sign-command", str(f), "--key", str(key)],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"--sign-command: {r.stderr}")
    return r.stdout


def test_signed_commands(d):
    """require_signature: a signed request is applied; unsigned, tampered, signed with another
    key and replayed requests are refused and write nothing."""
    p = session_pki()
    key, pub = keypair(d, "ops")
    other, _ = keypair(d, "intruder")
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, size=200) as dev:
        cl = Client(b, p)
        gw = gateway(d, b, p, dev.port, base_tags(),
                     extra={"commands": {"require_signature": True, "public_key": str(pub)}})
        wait_up(cl, gw)
        now = int(time.time() * 1000)
        good = sign(d, {"id": "s1", "device": "d1", "write": {"sp": 1}, "ts": now}, key)
        cl.send(good)
        check(res(cl.answer("s1"), "sp")["result"] == "ok", "signed request")
        check(holding(dev.port, 100) == [10], "the signed write did not land")
        cl.send({"id": "s2", "device": "d1", "write": {"sp": 2}, "ts": now})
        check(cl.answer("s2").get("result") == "denied", "unsigned request")
        bad = sign(d, {"id": "s3", "device": "d1", "write": {"sp": 3}, "ts": now}, key)
        cl.send(bad.replace('"sp": 3', '"sp": 9'))
        check(cl.answer("s3").get("result") == "denied", "tampered request")
        cl.send(sign(d, {"id": "s4", "device": "d1", "write": {"sp": 4}, "ts": now}, other))
        check(cl.answer("s4").get("result") == "denied", "request signed with another key")
        cl.send(good)  # replayed
        check(wait_until(lambda: len(cl.answers("s1")) >= 2, 10), "no answer to the replay")
        check(cl.answers("s1")[1].get("duplicate") is True, f"replay: {cl.answers('s1')}")
        time.sleep(0.5)
        check(holding(dev.port, 100) == [10], "a refused signed-mode request wrote")
        gw.stop()


def test_dead_device(d):
    """A write to a device whose connection is down is answered connection_lost at once
    (nothing queued behind a dead connection), and a read the same."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b:
        dev = PymodbusServer(d, size=200)
        cl = Client(b, p)
        gw = gateway(d, b, p, dev.port, base_tags())
        wait_up(cl, gw)
        dev.stop()
        check(wait_until(lambda: "connection lost" in gw.log() or "cannot connect" in gw.log(),
                         20), f"the gateway did not see the device go\n{gw.log()[-1500:]}")
        time.sleep(0.5)
        a = cl.call({"id": "dead-1", "device": "d1", "write": {"sp": 5}})
        check(res(a, "sp")["result"] == "connection_lost", f"write to a dead device: {a}")
        a = cl.call({"id": "dead-2", "device": "d1", "read": ["ro"]})
        check(res(a, "ro")["result"] == "connection_lost", f"read of a dead device: {a}")
        gw.stop()


def test_cli_write_read(d):
    """ironbridge --write DEVICE.TAG=VALUE and --read DEVICE.TAG: the same checks, run in place,
    the answer printed as JSON; exit status 0 when ok, 4 when refused; nothing published."""
    from ibt_gateway import _run_daemon
    p = session_pki()
    with PymodbusServer(d, size=200, holding={101: 77}) as dev:
        m = mqtt_section(url="mqtts://localhost:1", ca=p.ca)  # never connected
        conn = modbus_connection("c1", dev.port, [device("d1", [group("g", base_tags(), 100)])])
        text = gateway_config(m, [conn], log_level="info")

        def cli(*args):
            r, _ = _run_daemon(text, d, list(args), "cli", 30)
            return r.returncode, r.stdout, r.stderr
        rc, out, err = cli("--write", "d1.sp=61.4")
        check(rc == 0, f"--write exited {rc}: {out}{err}")
        a = json.loads(out)
        check(a["results"]["sp"] == {"result": "ok", "v": 61.4}, out)
        check("command cli-" in err and "ok" in err, f"--write is not audited: {err}")
        check(holding(dev.port, 100) == [614], f"--write did not land: {holding(dev.port, 100)}")
        rc, out, err = cli("--write", "d1.ro=1")
        check(rc == 4 and json.loads(out)["results"]["ro"]["result"] == "denied", f"{rc} {out}")
        rc, out, err = cli("--write", "d1.sp=1000")
        check(rc == 4 and json.loads(out)["results"]["sp"]["result"] == "out_of_range",
              f"{rc} {out}")
        check(holding(dev.port, 100, 2) == [614, 77], "a refused --write wrote")
        rc, out, err = cli("--read", "d1.ro")
        check(rc == 0 and json.loads(out)["results"]["ro"] == {"result": "ok", "v": 77},
              f"--read: {rc} {out}{err}")
        rc, out, err = cli("--read", "nodev.ro")
        check(rc == 2 and "names no device" in err, f"--read of an unknown device: {rc} {err}")


def test_burst(d):
    """1,000 requests in a burst against one device polled at 100 ms: every request answered
    once, none applied twice; the poll period during the burst is measured and printed."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, PymodbusServer(d, size=200) as dev:
        cl = Client(b, p)
        gw = gateway(d, b, p, dev.port, base_tags(), interval=100,
                     extra={"commands": {"queue": 1000}})
        wait_up(cl, gw)
        lines = [json.dumps({"id": f"b{i}", "device": "d1", "write": {"txt": i % 30000},
                             "ts": int(time.time() * 1000) + 5000}) for i in range(1000)]
        f = d / "burst.txt"
        f.write_text("\n".join(lines) + "\n")
        t0 = time.monotonic()
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "--cafile",
                            str(p.ca), "-q", "1", "-t", REQ, "-l"], stdin=open(f),
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, r.stderr)

        def answered():
            return {m.payload.get("id") for m in cl.sub.messages()
                    if m.topic == ANS and isinstance(m.payload, dict)}
        check(wait_until(lambda: len(answered()) >= 1000, 90),
              f"{len(answered())} of 1000 answered\n{gw.log()[-1500:]}")
        dt = time.monotonic() - t0
        ans = [m.payload for m in cl.sub.messages() if m.topic == ANS]
        ids = [a["id"] for a in ans]
        check(len(ids) == len(set(ids)) == 1000, f"{len(ids)} answers, {len(set(ids))} ids")
        oks = sum(1 for a in ans if a["results"]["txt"]["result"] == "ok")
        data = [m for m in cl.sub.messages() if is_data(m) and t0 <= m.time <= t0 + dt]
        gaps = [b2.payload["ts"] - a2.payload["ts"] for a2, b2 in zip(data, data[1:])]
        gaps.sort()
        if gaps:
            note(f"burst: 1000 answered in {dt:.2f} s ({1000 / dt:.0f}/s), {oks} ok; poll "
                 f"period during it: median {gaps[len(gaps) // 2]} ms, max {gaps[-1]} ms "
                 f"over {len(gaps)} polls (configured 100 ms)")
        gw.stop()


if __name__ == "__main__":
    run([test_types_orders_scales, test_refusals_write_nothing, test_duplicate_and_expired,
         test_mqtt5_response_topic, test_signed_commands, test_dead_device, test_cli_write_read,
         test_burst])
