#!/usr/bin/python3
"""The integration fixtures themselves, with no daemon involved: a throw-away PKI, mosquitto over
TLS (plain, mutual, wrong host, unknown CA, TLS 1.1 only), mosquitto_sub/pub, the project's
simulator and the pymodbus server. When a daemon test fails, this file says whether the
fixtures still work."""

import subprocess
import struct

from ibtest import (session_pki, Failure, Mosquitto, Pki, PymodbusServer, Simulator, Subscriber, check,
                    file_mode, modbus_client, retained, run, session_dir, tls_handshake)

def pki():
    return session_pki()


def expect_refused(what, **kw):
    try:
        s = Subscriber(**kw)
    except Failure as e:
        return str(e)
    s.stop()
    raise Failure(f"{what}: the subscriber got through, but should have been refused")


def test_pki(d):
    p = pki()
    for k in (p.ca_key, p.other_ca_key, p.server_key, p.wrong_key, p.unknown_key, p.client_key):
        check(file_mode(k) == 0o600, f"{k} has mode {oct(file_mode(k))}, expected 0600")
    r = subprocess.run(["openssl", "verify", "-CAfile", str(p.ca), str(p.server), str(p.wrong),
                        str(p.client)], capture_output=True, text=True)
    check(r.returncode == 0, f"certificates do not verify against the CA: {r.stdout}{r.stderr}")
    r = subprocess.run(["openssl", "verify", "-CAfile", str(p.ca), str(p.unknown)],
                       capture_output=True, text=True)
    check(r.returncode != 0, "the unknown-CA certificate verifies against the test CA")
    r = subprocess.run(["openssl", "x509", "-in", str(p.server), "-noout", "-ext",
                        "subjectAltName"], capture_output=True, text=True)
    check("DNS:localhost" in r.stdout and "IP Address:127.0.0.1" in r.stdout,
          f"server certificate SAN: {r.stdout}")


def test_broker_tls_roundtrip(d):
    p = pki()
    with Mosquitto(d, tls=p.server_tls()) as b:
        s = Subscriber(b, "fx/#", cafile=p.ca)
        s.publish("fx/json", '{"a": 1, "b": [true, 2.5]}')
        s.publish("fx/text", "hello world")
        s.publish("fx/multi", '{\n  "x": 1\n}')
        s.wait_for(lambda m: m.topic == "fx/multi", 5)
        check(s.messages("fx/json")[0].payload == {"a": 1, "b": [True, 2.5]}, "JSON payload")
        check(s.messages("fx/text")[0].payload == "hello world", "text payload")
        check(s.messages("fx/multi")[0].payload == {"x": 1}, "multi-line JSON payload")
        s.publish("fx/status", "online", retain=True)
        check(retained(b, "fx/status", cafile=p.ca) == "online", "retained message not read")
        check(retained(b, "fx/none", cafile=p.ca, timeout=1) is None, "phantom retained")
        check(b.foreign_clients() == [], f"unexpected clients {b.foreign_clients()}")
        b.restart()
        Subscriber(b, "fx/#", cafile=p.ca)


def test_broker_variants(d):
    p = pki()
    with Mosquitto(d, tls=p.server_tls(), require_cert=True) as b:
        Subscriber(b, "#", cafile=p.ca, cert=p.client, key=p.client_key)
        expect_refused("mutual TLS without client cert", broker=b, topic="#", cafile=p.ca)
    with Mosquitto(d, tls=p.wrong_host_tls()) as b:
        Subscriber(b, "#", cafile=p.ca, insecure=True)
        expect_refused("wrong host name", broker=b, topic="#", cafile=p.ca)
    with Mosquitto(d, tls=p.unknown_ca_tls()) as b:
        Subscriber(b, "#", cafile=p.other_ca)
        expect_refused("unknown CA", broker=b, topic="#", cafile=p.ca)
    with Mosquitto(d, plain=True) as b:
        Subscriber(b, "#", plain=True)


def test_broker_tls11_only(d):
    p = pki()
    with Mosquitto(d, tls=p.server_tls(), tls_version="tlsv1.1") as b:
        ok, proto, err = tls_handshake(b.port, p.ca)
        check(not ok, f"a default OpenSSL client connected to the TLS 1.1 broker ({proto})")
        ok, proto, err = tls_handshake(b.port, p.ca, ("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"))
        check(ok and proto == "TLSv1.1", f"a TLS 1.1 client could not connect: {proto} {err}")
        Subscriber(b, "#", cafile=p.ca,
                   tls_args=("--tls-version", "tlsv1.1", "--ciphers", "DEFAULT@SECLEVEL=0"))


def test_pymodbus_server(d):
    with PymodbusServer(d, holding={0: 1234, 5: 65535}, input={2: 7}, coils={3: True},
                        discrete={1: True}, size=20) as s:
        c = modbus_client(s.port)
        try:
            r = c.read_holding_registers(0, 6, slave=1)
            check(r.registers == [1234, 0, 0, 0, 0, 65535], f"holding: {r.registers}")
            check(c.read_input_registers(2, 1, slave=1).registers == [7], "input")
            check(c.read_coils(0, 4, slave=1).bits[:4] == [False, False, False, True], "coils")
            check(c.read_discrete_inputs(0, 2, slave=1).bits[:2] == [False, True], "discrete")
            r = c.read_holding_registers(19, 2, slave=1)
            check(r.isError() and r.exception_code == 2, f"past the end: {r}")
            c.write_register(1, 42, slave=1)
            check(c.read_holding_registers(1, 1, slave=1).registers == [42], "write")
        finally:
            c.close()


SIM_MAP = """\
# test_fixtures: one of each table
size holding 20
holding 0 uint16 AB const 1234
holding 2 float32 CDAB const 1.5
coil 1 bool - const true
discrete 2 bool - const true
input 3 int16 AB const -2
"""


def test_simulator(d):
    with Simulator(SIM_MAP, d) as s:
        c = modbus_client(s.port)
        try:
            r = c.read_holding_registers(0, 4, slave=1)
            check(not r.isError(), f"read holding: {r}")
            lo, hi = r.registers[2], r.registers[3]
            f = struct.unpack(">f", struct.pack(">HH", hi, lo))[0]
            check(r.registers[0] == 1234 and f == 1.5, f"holding: {r.registers}")
            check(c.read_coils(0, 2, slave=1).bits[:2] == [False, True], "coils")
            check(c.read_discrete_inputs(2, 1, slave=1).bits[0] is True, "discrete")
            check(c.read_input_registers(3, 1, slave=1).registers == [0xFFFE], "input")
            r = c.read_holding_registers(19, 2, slave=1)
            check(r.isError() and r.exception_code == 2, f"past the end: {r}")
            c.write_register(0, 4321, slave=1)
            check(c.read_holding_registers(0, 1, slave=1).registers == [4321], "write")
        finally:
            c.close()


if __name__ == "__main__":
    run([test_pki, test_broker_tls_roundtrip, test_broker_variants, test_broker_tls11_only,
         test_pymodbus_server, test_simulator])
