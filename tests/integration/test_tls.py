#!/usr/bin/python3
"""North-side security against a real mosquitto: TLS with a CA, mutual TLS, host name and CA
verification, plaintext only when allowed, private key permissions, TLS 1.1 refused, and the
retained online/offline status with its last will; a TLS failure logged once with its clear
cause and once when it ends (repeats counted); password_file's first line, and a refused login
logged with its CONNACK code. The Modbus source is the pymodbus server."""

import os
import re
import shutil
import subprocess
import time

from ibtest import (session_pki, Gateway, Mosquitto, Pki, PymodbusServer, Subscriber, check, data_topic,
                    device, gateway_config, group, log_has, modbus_connection,
                    mqtt_section, note, retained, run, run_check, session_dir, status_topic,
                    tag, wait_sample, wait_until)

U16 = 1234
def pki():
    return session_pki()


def source(d):
    return PymodbusServer(d, holding={0: U16})


def config(src, mqtt, gateway_id="test-gw"):
    dev = device("meter1", [group("fast", [tag("u16", "holding", 0, "uint16")], 200)])
    return gateway_config(mqtt, [modbus_connection("src", src.port, [dev])], gateway_id)


def wait_value(sub, gw, timeout=20):
    """Waits for u16 == 1234 with good quality from gw; on failure says whether gw died."""
    try:
        return wait_sample(sub, "meter1", "u16", lambda s: s.get("v") == U16 and
                           s.get("q") == "good", timeout, "good u16 sample")
    except Exception:
        if not gw.running():
            note(f"the gateway exited with status {gw.returncode}")
        raise


# A connect failure the gateway must log; for a bad broker certificate, one that says so (a
# bare "TLS connect failure" does not tell the operator what to fix).
CONNECT_FAIL = (r"connect|tls|ssl|handshake", r"fail|error|refused|unable|cannot|could not")
CERT_FAIL = (r"certificate|verif|host ?name|x509|subject ?alt|\bSAN\b",
             r"fail|error|invalid|mismatch|unknown|untrusted|not trusted|unable|does not match")


def assert_nothing_through(sub, broker, gw, what, cert_words=False, wait=4):
    """The gateway must not get a single message through, must keep running and must log a
    connect failure (naming a certificate/host problem if cert_words)."""
    line = wait_until(lambda: log_has(gw.log(), *CONNECT_FAIL), 15)
    check(line, f"{what}: the gateway log shows no connect failure within 15 s")
    note(f"{what}: gateway logged: {line.strip()}")
    if cert_words:
        cline = wait_until(lambda: log_has(gw.log(), *CERT_FAIL), 10)
        check(cline, f"{what}: the gateway log does not name a certificate or host name "
              "verification failure (only e.g. " + line.strip() + ")")
        if cline != line:
            note(f"{what}: gateway logged: {cline.strip()}")
    time.sleep(wait)
    got = [m for m in sub.messages() if m.topic.startswith("ironbridge/")]
    check(not got, f"{what}: {len(got)} message(s) got through, e.g. {got[:2]}")
    check(not broker.foreign_clients(), f"{what}: the broker accepted MQTT CONNECT from "
          f"{broker.foreign_clients()}")
    check(gw.running(), f"{what}: the gateway exited ({gw.returncode}) instead of retrying")


def test_a_tls_with_ca(d):
    p = pki()
    with Mosquitto(d, tls=p.server_tls()) as b, source(d) as src:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        gw = Gateway(config(src, mqtt_section(b, p)), d)
        m = wait_value(sub, gw)
        pl = m.payload
        check(m.topic == "ironbridge/test-gw/meter1/fast", f"topic {m.topic}")
        for k, v in (("gateway", "test-gw"), ("connection", "src"), ("device", "meter1"),
                     ("group", "fast")):
            check(pl.get(k) == v, f"{k} is {pl.get(k)!r}, expected {v!r}")
        check(isinstance(pl.get("seq"), int) and isinstance(pl.get("ts"), int),
              f"seq/ts missing or not integers: {pl}")
        check(abs(pl["ts"] - time.time() * 1000) < 60_000, f"ts {pl['ts']} is not now")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_b_mutual_tls(d):
    p = pki()
    with Mosquitto(d, tls=p.server_tls(), require_cert=True) as b, source(d) as src:
        sub = Subscriber(b, ["ironbridge/gw-cert/#", "ironbridge/gw-nocert/#"], cafile=p.ca,
                         cert=p.client, key=p.client_key)
        with_cert = Gateway(config(src, mqtt_section(b, p, cert=p.client, key=p.client_key),
                                   "gw-cert"), d, name="gw-cert")
        no_cert = Gateway(config(src, mqtt_section(b, p), "gw-nocert"), d, name="gw-nocert")
        wait_value(sub, with_cert)
        line = wait_until(lambda: log_has(no_cert.log(), *CONNECT_FAIL), 15)
        check(line, "gateway without a client certificate: no connect failure in its log")
        note(f"without client cert, gateway logged: {line.strip()}")
        check(log_has(no_cert.log(), r"client certificate", r"tls\.cert"),
              "the log of the gateway without a client certificate does not say that the "
              "broker wants one (tls.cert):\n" + no_cert.log())
        time.sleep(3)
        leaked = sub.messages("ironbridge/gw-nocert/#")
        check(not leaked, f"the gateway without client certificate got {len(leaked)} "
              f"message(s) through: {leaked[:2]}")
        check(no_cert.running(), f"gateway without cert exited ({no_cert.returncode})")


def test_c_wrong_host_cert(d):
    p = pki()
    with Mosquitto(d, tls=p.wrong_host_tls()) as b, source(d) as src:
        # The watcher skips the host check so it can see what (nothing) arrives.
        sub = Subscriber(b, "ironbridge/#", cafile=p.ca, insecure=True)
        gw = Gateway(config(src, mqtt_section(b, p)), d)
        assert_nothing_through(sub, b, gw, "broker certificate for wrong.example",
                               cert_words=True)


def test_d_unknown_ca(d):
    p = pki()
    with Mosquitto(d, tls=p.unknown_ca_tls()) as b, source(d) as src:
        sub = Subscriber(b, "ironbridge/#", cafile=p.other_ca)
        gw = Gateway(config(src, mqtt_section(b, p)), d)
        assert_nothing_through(sub, b, gw, "broker certificate from an unknown CA",
                               cert_words=True)


def test_e_plaintext(d):
    with Mosquitto(d, plain=True) as b, source(d) as src:
        url = f"mqtt://localhost:{b.port}"
        text = config(src, mqtt_section(url=url))
        rc, out = run_check(text, d)
        check(rc == 1, f"--check of mqtt:// without allow_insecure exited {rc}:\n{out}")
        check("north.mqtt.url" in out, f"--check does not name north.mqtt.url:\n{out}")
        check(log_has(out, r"check\.yaml:\d+:\d+:", r"north\.mqtt\.url"),
              f"--check output has no FILE:LINE:COL: north.mqtt.url line:\n{out}")
        gw = Gateway(text, d, name="gw-refused")
        rc = gw.wait_exit(15)
        check(rc == 1, f"the daemon with mqtt:// and no allow_insecure: exit status {rc}, "
              f"expected 1\n{gw.log()}")

        sub = Subscriber(b, data_topic(), plain=True)
        text = config(src, mqtt_section(url=url, allow_insecure=True))
        rc, out = run_check(text, d, name="check-insecure")
        check(rc == 0, f"--check with allow_insecure: true exited {rc}:\n{out}")
        gw = Gateway(text, d, name="gw-insecure")
        wait_value(sub, gw)
        line = log_has(gw.log(), r"warn", r"insecure|plain ?text|unencrypted|without tls")
        check(line, "no warning about the insecure/plaintext connection in the log:\n" +
              gw.log()[-2000:])
        note(f"warning: {line.strip()}")


def test_f_key_mode_0644(d):
    p = pki()
    with source(d) as src:
        key = d / "client-0644.key"
        shutil.copyfile(p.client_key, key)
        os.chmod(key, 0o644)
        mqtt = mqtt_section(url="mqtts://localhost:8883", ca=p.ca, cert=p.client, key=key)
        text = config(src, mqtt)
        rc, out = run_check(text, d)
        check(rc == 1, f"--check with a 0644 key exited {rc}:\n{out}")
        check(str(key) in out, f"--check does not name the key file {key}:\n{out}")
        gw = Gateway(text, d)
        rc = gw.wait_exit(15)
        check(rc == 1, f"the daemon with a 0644 key: exit status {rc}, expected 1\n{gw.log()}")
        os.chmod(key, 0o600)
        rc, out = run_check(text, d, name="check-0600")
        check(rc == 0, f"the same key with mode 0600 is refused ({rc}):\n{out}")


def test_g_tls11_broker_refused(d):
    from ibtest import tls_handshake
    p = pki()
    with Mosquitto(d, tls=p.server_tls(), tls_version="tlsv1.1") as b, source(d) as src:
        # Show first that this broker really is a working TLS 1.1-only broker, so that the
        # refusal below is the gateway's doing.
        ok11, proto, err = tls_handshake(b.port, p.ca, ("-tls1_1", "-cipher",
                                                         "DEFAULT@SECLEVEL=0"))
        okdef, proto_def, err_def = tls_handshake(b.port, p.ca)
        if ok11 and proto == "TLSv1.1" and not okdef:
            reason = err_def.split(":")[5] if err_def.count(":") >= 6 else err_def
            note("the broker accepts an explicit TLS 1.1 client and refuses a default "
                 f"OpenSSL client ({reason})")
            sub = Subscriber(b, "ironbridge/#", cafile=p.ca,
                             tls_args=("--tls-version", "tlsv1.1", "--ciphers",
                                       "DEFAULT@SECLEVEL=0"))
        else:
            note(f"NOTE: could not make mosquitto a working TLS 1.1-only broker here (TLS 1.1 "
                 f"handshake ok={ok11} proto={proto!r} {err}; default handshake ok={okdef} "
                 f"{proto_def!r}); the refusal below may be the broker's, not the gateway's")
            check(not okdef, f"the 'TLS 1.1' broker negotiates {proto_def} with a default "
                  "client: this test cannot show anything")
            sub = None
        gw = Gateway(config(src, mqtt_section(b, p)), d)
        line = wait_until(lambda: log_has(gw.log(), *CONNECT_FAIL), 15)
        check(line, "TLS 1.1 broker: the gateway log shows no connect failure within 15 s")
        note(f"TLS 1.1 broker: gateway logged: {line.strip()}")
        time.sleep(3)
        if sub is not None:
            got = [m for m in sub.messages() if m.topic.startswith("ironbridge/")]
            check(not got, f"TLS 1.1 broker: {len(got)} message(s) got through")
        check(not b.foreign_clients(), f"TLS 1.1 broker accepted CONNECT from "
              f"{b.foreign_clients()}")
        check(gw.running(), f"the gateway exited ({gw.returncode}) instead of retrying")


def test_h_status_online_offline(d):
    p = pki()
    st = status_topic()
    with Mosquitto(d, tls=p.server_tls()) as b, source(d) as src:
        sub = Subscriber(b, [data_topic(), st], cafile=p.ca)
        gw = Gateway(config(src, mqtt_section(b, p)), d)
        wait_value(sub, gw)
        online = wait_until(lambda: retained(b, st, cafile=p.ca, timeout=2) == "online", 10)
        check(online, f"retained {st} is {retained(b, st, cafile=p.ca)!r}, expected 'online'")
        rc = gw.stop()
        check(rc == 0, f"SIGTERM: exit status {rc}, expected 0")
        r = retained(b, st, cafile=p.ca)
        check(r == "offline", f"after SIGTERM the retained {st} is {r!r}, expected 'offline'")

        # Killed without a goodbye: the broker publishes the last will, "offline" (retained).
        gw = Gateway(config(src, mqtt_section(b, p)), d, name="gw-killed")
        check(wait_until(lambda: retained(b, st, cafile=p.ca, timeout=2) == "online", 15),
              "second gateway never set the status to online")
        gw.proc.kill()
        gw.proc.wait()
        r = wait_until(lambda: retained(b, st, cafile=p.ca, timeout=2) == "offline", 10)
        check(r, f"after SIGKILL the last will did not set {st} to 'offline' "
              f"(now {retained(b, st, cafile=p.ca)!r})")
        offline_msgs = [m for m in sub.messages(st) if m.payload == "offline"]
        check(offline_msgs, "the subscriber saw no 'offline' status message")


def north_lines(gw):
    """The north's log lines above debug."""
    return [ln for ln in gw.log().splitlines() if "north:" in ln and " debug " not in ln]


def test_i_tls_failure_episode(d):
    """A broker whose certificate comes from an unknown CA, retried every 100-300 ms: the clear
    cause (the diagnostic handshake's) is logged once when the failure starts, never OpenSSL's
    raw line above it, the repeats are counted, not printed; when the broker gets a good
    certificate (same port), the end is logged once with the count."""
    p = pki()
    bad = Mosquitto(d, tls=p.unknown_ca_tls())
    with source(d) as src:
        m = mqtt_section(bad, p)
        m.update(reconnect_min_ms=100, reconnect_max_ms=300)
        gw = Gateway(config(src, m), d)
        line = wait_until(lambda: log_has(gw.log(), *CERT_FAIL), 15)
        check(line, f"no certificate failure logged\n{gw.log()[-2000:]}")
        time.sleep(4)  # more attempts (each with its diagnostic handshake)
        north = north_lines(gw)
        check(len(north) == 1, f"{len(north)} north lines for one TLS failure:\n" +
              "\n".join(north[:10]))
        line = north[0]
        check(log_has(line, *CERT_FAIL), f"the first line is not the clear cause: {line}")
        check(not [ln for ln in north if re.search(r"error:[0-9A-F]{8}:", ln)],
              f"OpenSSL's raw line was logged:\n{gw.log()[-1500:]}")
        bad.stop()
        with Mosquitto(d, tls=p.server_tls(), port=bad.port) as good:
            sub = Subscriber(good, data_topic(), cafile=p.ca)
            wait_value(sub, gw)
            end = wait_until(lambda: log_has(gw.log(), r"north: connected to .* delivering again,"
                                             r" after (\d+) failed"), 10)
            check(end, f"the end of the failure was not logged\n{gw.log()[-1500:]}")
            n = int(re.search(r"after (\d+) failed", end).group(1))
            check(n >= 3, f"only {n} failed attempts counted: {end}")
            note(f"TLS failure: {line.strip()} ... {end.strip()}")
            # Start, end, and at most one change of cause while the port was closed between
            # the two brokers.
            north = north_lines(gw)
            check(len(north) <= 3 and north[-1] == end, f"{len(north)} north lines for one TLS "
                  f"failure and its end:\n" + "\n".join(north[:10]))
            gw.stop()


def test_j_password_file(d):
    """password_file: its first line is the password (what follows is ignored); a wrong one is
    refused by the broker and logged with its CONNACK code."""
    p = pki()
    pwfile = os.path.join(d, "broker.passwd")
    subprocess.run(["mosquitto_passwd", "-b", "-c", pwfile, "gw", "right-one"], check=True,
                   capture_output=True)
    os.chmod(pwfile, 0o644)
    b = Mosquitto(d, tls=p.server_tls(), start=False)
    b.conf.write_text(b.conf.read_text().replace(
        "allow_anonymous true", f"allow_anonymous false\npassword_file {pwfile}"))
    b.start()
    with b, source(d) as src:
        wrong = os.path.join(d, "wrong.pw")
        with open(wrong, "w") as f:
            f.write("wrong-one\n")
        os.chmod(wrong, 0o600)
        m = mqtt_section(b, p)
        m.update(username="gw", password_file=wrong)
        gw = Gateway(config(src, m, gateway_id="gw-wrong"), d, name="gw-wrong")
        line = wait_until(lambda: log_has(gw.log(), r"refused the connection: CONNACK return "
                                          r"code [45] \((not authorized|bad user name)"), 15)
        check(line, f"a refused login was not logged with its CONNACK code\n{gw.log()[-1500:]}")
        check("wrong-one" not in gw.log(), "the password was logged")
        note(f"refused login: {line.strip()}")
        gw.stop()
        right = os.path.join(d, "right.pw")
        with open(right, "w") as f:
            f.write("right-one\nthe rest of the file is not the password\n")
        os.chmod(right, 0o600)
        m.update(password_file=right)
        gw = Gateway(config(src, m), d, name="gw-right")
        check(wait_until(lambda: log_has(gw.log(), r"north: connected to"), 15),
              f"the first line of password_file was not accepted\n{gw.log()[-1500:]}")
        check(not log_has(gw.log(), "CONNACK"), f"login refused\n{gw.log()[-1500:]}")
        gw.stop()


if __name__ == "__main__":
    run([test_a_tls_with_ca, test_b_mutual_tls, test_c_wrong_host_cert, test_d_unknown_ca,
         test_i_tls_failure_episode, test_j_password_file,
         test_e_plaintext, test_f_key_mode_0644, test_g_tls11_broker_refused,
         test_h_status_online_offline])
