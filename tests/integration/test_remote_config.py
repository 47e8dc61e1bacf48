#!/usr/bin/python3
"""Signed configuration over MQTT: a document signed with the operators' Ed25519 key is
verified, validated, written to conf.d and applied, and the config status says so; an unsigned
document, a tampered one, one signed with another key, a replay and an invalid configuration
are each refused, reported, and change nothing."""

import subprocess
import time

from ibtest import (session_pki, Gateway, Mosquitto, Simulator, Subscriber, check, daemon_path,
                    device, gateway_config, group, is_data, modbus_connection, mqtt_section, run,
                    tag, to_yaml, wait_until)

MAP = "holding 0 uint16 - const 11\n"
TOPIC = "ironbridge/test-gw/config-set"


def keypair(d, name):
    key, pub = d / f"{name}.key", d / f"{name}.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True)
    key.chmod(0o600)
    return key, pub


def sign(d, text, key, version):
    f = d / f"doc{version}.yaml"
    f.write_text(text)
    r = subprocess.run([daemon_path(), "--sign-config", str(f), "--key", str(key),
                        "--sign-version", str(version)], capture_output=True, text=True)
    check(r.returncode == 0, f"--sign-config failed: {r.stderr}")
    return r.stdout


def conn(name, port, dev):
    return modbus_connection(name, port, [device(dev, [group("g", [tag("a", "holding", 0)],
                                                            200)])])


def status(sub):
    st = [m.payload for m in sub.messages() if m.topic == "ironbridge/test-gw/config"]
    return st[-1] if st else {}


def devices_seen(sub, since):
    return {m.payload["device"] for m in sub.messages() if is_data(m) and m.time > since}


def test_signed_config(d):
    p = session_pki()
    key, pub = keypair(d, "ops")
    other_key, _ = keypair(d, "intruder")
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(MAP, d) as sim:
        sub = Subscriber(b, ["ironbridge/test-gw/+/+", "ironbridge/test-gw/config"], cafile=p.ca)
        text = gateway_config(mqtt_section(b, p), [conn("c1", sim.port, "d1")], log_level="info")
        text += to_yaml({"remote_config": {"enabled": True, "public_key": str(pub)}}) + "\n"
        gw = Gateway(text, d)
        check(wait_until(lambda: status(sub).get("result") == "applied", 20),
              f"no config status\n{gw.log()[-1500:]}")
        h0 = status(sub)["hash"]
        dropin = d / "conf.d" / "50-remote.yaml"

        def refused(payload, words, what):
            n = len([m for m in sub.messages() if m.topic.endswith("/config")])
            sub.publish(TOPIC, payload)
            check(wait_until(lambda: len([m for m in sub.messages()
                                          if m.topic.endswith("/config")]) > n, 15),
                  f"{what}: no config status after it\n{gw.log()[-1500:]}")
            st = status(sub)
            check(st["result"] == "rejected" and any(w in " ".join(st["errors"]) for w in words),
                  f"{what}: status {st}")
            check(st["hash"] == h_now[0], f"{what}: the configuration changed: {st}")
            check(gw.running(), f"{what}: the daemon exited")

        h_now = [h0]
        doc1 = to_yaml({"connections": [conn("c2", sim.port, "d2")]}) + "\n"
        env1 = sign(d, doc1, key, 1)
        refused(doc1, ["not a signed configuration"], "unsigned")
        refused(env1.replace("d2", "dX"), ["signature does not match"], "tampered")
        refused(sign(d, doc1, other_key, 1), ["signature does not match"], "another key")
        check(not dropin.exists(), "a refused document was written")

        t = time.monotonic()
        sub.publish(TOPIC, env1)
        check(wait_until(lambda: "d2" in devices_seen(sub, t), 20),
              f"the signed document was not applied\n{gw.log()[-2000:]}")
        st = status(sub)
        check(st["result"] == "applied" and st["remote_version"] == 1 and st["hash"] != h0,
              f"status after the signed document: {st}")
        check(dropin.exists() and "version 1" in dropin.read_text().splitlines()[0],
              f"{dropin} not written with its version")
        h_now[0] = st["hash"]

        refused(env1, ["not newer"], "replay")
        bad = sign(d, to_yaml({"connections": [conn("c3", sim.port, "d3")]}).replace(
            "interval_ms", "intervall_ms") + "\n", key, 2)
        refused(bad, ["50-remote.yaml:", "intervall_ms: unknown key"], "invalid configuration")
        check("version 1" in dropin.read_text().splitlines()[0], "an invalid document was written")

        # A gateway restarted later keeps the document and refuses the old version.
        gw.stop()
        n = len([m for m in sub.messages() if m.topic.endswith("/config")])
        gw2 = Gateway(text, d, name="gw2")
        # Its first config status comes after it subscribed to the config topic.
        check(wait_until(lambda: len([m for m in sub.messages()
                                      if m.topic.endswith("/config")]) > n, 20),
              f"the restarted gateway published no config status\n{gw2.log()[-1500:]}")
        st = status(sub)
        check(st["result"] == "applied" and st["remote_version"] == 1 and st["hash"] == h_now[0],
              f"after a restart the remote document is not in force: {st}")
        time.sleep(0.5)  # its SUBACK
        n = len([m for m in sub.messages() if m.topic.endswith("/config")])
        sub.publish(TOPIC, env1)
        check(wait_until(lambda: len([m for m in sub.messages()
                                      if m.topic.endswith("/config")]) > n, 20) and
              "not newer" in " ".join(status(sub).get("errors", [])),
              f"after a restart, the replay is not refused: {status(sub)}\n{gw2.log()[-1500:]}")


if __name__ == "__main__":
    run([test_signed_config])
