#!/usr/bin/python3
"""Signed configuration over MQTT: a document signed with the operators' Ed25519 key is
verified, validated, kept in the state directory ($STATE_DIRECTORY/remote) and applied, and the
config status says so; an unsigned document, a tampered one, one signed with another key, a
replay, a version out of range and an invalid configuration are each refused, reported, and
change nothing. A restart finds the document again; a document followed at once by another
message gets its status as well; a document that cannot be kept is not applied."""

import os
import re
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


def sign_raw(d, text, key, version):
    return sign(d, text, key, version)


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
        kept = gw.state_dir / "remote" / "50-remote.yaml"

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
        refused(sign_raw(d, doc1, key, 5).replace("version 5", "version 18446744073709551615"),
                ["out of range"], "version 2^64-1")
        refused(sign_raw(d, doc1, key, 5).replace("version 5", "version 9007199254740993"),
                ["out of range"], "version 2^53+1")
        check(not dropin.exists() and not kept.exists(), "a refused document was written")

        t = time.monotonic()
        sub.publish(TOPIC, env1)
        check(wait_until(lambda: "d2" in devices_seen(sub, t), 20),
              f"the signed document was not applied\n{gw.log()[-2000:]}")
        st = status(sub)
        check(st["result"] == "applied" and st["remote_version"] == 1 and st["hash"] != h0,
              f"status after the signed document: {st}")
        check(kept.exists() and "version 1" in kept.read_text().splitlines()[0],
              f"{kept} not written with its version")
        check(not dropin.exists(), f"{dropin} written: /etc is read-only under the unit")
        h_now[0] = st["hash"]

        refused(env1, ["not newer"], "replay")
        bad = sign(d, to_yaml({"connections": [conn("c3", sim.port, "d3")]}).replace(
            "interval_ms", "intervall_ms") + "\n", key, 2)
        refused(bad, ["50-remote.yaml:", "intervall_ms: unknown key"], "invalid configuration")
        check("version 1" in kept.read_text().splitlines()[0], "an invalid document was written")

        # --check sees the tree as the daemon runs it: with the kept document.
        r = subprocess.run([daemon_path(), "--check", "-c", str(gw.config)], capture_output=True,
                           text=True, env={**os.environ, "STATE_DIRECTORY": str(gw.state_dir)})
        check(r.returncode == 0 and "signed configuration version 1 included from "
              f"{kept}" in r.stdout and "3 connections" not in r.stdout and
              "2 connections" in r.stdout, f"--check without the kept document: {r.stdout}")

        # A gateway restarted later keeps the document and refuses the old version.
        gw.stop()
        n = len([m for m in sub.messages() if m.topic.endswith("/config")])
        gw2 = Gateway(text, d, name="gw2", env={"STATE_DIRECTORY": str(gw.state_dir)})
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


def statuses(sub):
    return [m.payload for m in sub.messages() if m.topic == "ironbridge/test-gw/config"]


def test_back_to_back(d):
    """A valid document followed at once by other messages: every one is answered (the
    single-slot mailbox dropped the document 1 time in 10, with no status)."""
    p = session_pki()
    key, pub = keypair(d, "ops")
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(MAP, d) as sim:
        sub = Subscriber(b, ["ironbridge/test-gw/+/+", "ironbridge/test-gw/config"], cafile=p.ca)
        text = gateway_config(mqtt_section(b, p), [conn("c1", sim.port, "d1")], log_level="info")
        text += to_yaml({"remote_config": {"enabled": True, "public_key": str(pub)}}) + "\n"
        gw = Gateway(text, d)
        check(wait_until(lambda: status(sub).get("result") == "applied", 20),
              f"no config status\n{gw.log()[-1500:]}")
        time.sleep(0.5)  # its SUBACK
        n = len(statuses(sub))
        doc = sign(d, to_yaml({"connections": [conn("c2", sim.port, "d2")]}) + "\n", key, 1)
        # Three publishers at once: the messages arrive back to back, in any order.
        procs = [subprocess.Popen(["mosquitto_pub", *sub.conn_args, "-i", f"ibtest-b2b-{i}",
                                   "-q", "1", "-t", TOPIC, "-m", m],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i, m in enumerate([doc, "garbage", "garbage 2"])]
        for pr in procs:
            pr.wait(15)
        sub.publish(TOPIC, doc)  # and the replay, after them
        # Each message is answered in the journal; the retained status holds the last answer
        # (the north may fold statuses that follow each other within milliseconds into it).
        answers = re.compile(r"configuration applied \(signed configuration version 1\)|"
                             r"remote configuration refused")
        check(wait_until(lambda: len(answers.findall(gw.log())) >= 4, 20),
              f"{len(answers.findall(gw.log()))} answers for 4 messages:\n{gw.log()[-2000:]}")
        log = gw.log()
        check(log.count("configuration applied (signed configuration version 1)") == 1 and
              log.count("not a signed configuration") == 2 and log.count("not newer") == 1,
              f"the document and the three others were not each answered:\n{log[-2000:]}")
        check(wait_until(lambda: "not newer" in " ".join(status(sub).get("errors", [])), 10),
              f"the status does not end with the replay's refusal: {statuses(sub)[n:]}")
        got = statuses(sub)[n:]
        check(got[-1]["remote_version"] == 1,
              f"statuses: {[(s['result'], s['remote_version']) for s in got]}")


def test_not_kept_not_applied(d):
    """A document that cannot be kept in the state directory is refused, not applied: a
    restart would lose it."""
    p = session_pki()
    key, pub = keypair(d, "ops")
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(MAP, d) as sim:
        sub = Subscriber(b, ["ironbridge/test-gw/+/+", "ironbridge/test-gw/config"], cafile=p.ca)
        text = gateway_config(mqtt_section(b, p), [conn("c1", sim.port, "d1")], log_level="info")
        text += to_yaml({"remote_config": {"enabled": True, "public_key": str(pub)}}) + "\n"
        state = d / "state"
        state.mkdir()
        (state / "remote").write_text("not a directory\n")  # mkdir and every write fail
        gw = Gateway(text, d, env={"STATE_DIRECTORY": str(state)})
        check(wait_until(lambda: status(sub).get("result") == "applied", 20),
              f"no config status\n{gw.log()[-1500:]}")
        h0 = status(sub)["hash"]
        time.sleep(0.5)  # its SUBACK
        n = len(statuses(sub))
        t = time.monotonic()
        sub.publish(TOPIC, sign(d, to_yaml({"connections": [conn("c2", sim.port, "d2")]}) + "\n",
                                key, 1))
        check(wait_until(lambda: len(statuses(sub)) > n, 20), f"no status\n{gw.log()[-1500:]}")
        st = status(sub)
        check(st["result"] == "rejected" and "could not be kept" in " ".join(st["errors"]) and
              st["hash"] == h0 and st["remote_version"] == 0, f"status: {st}")
        time.sleep(1)
        check("d2" not in devices_seen(sub, t), "the document was applied all the same")


if __name__ == "__main__":
    run([test_signed_config, test_back_to_back, test_not_kept_not_applied])
