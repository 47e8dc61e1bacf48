#!/usr/bin/python3
"""The OPC UA plugin's security completions through the daemon, against node-opcua's server
(tests/peers/opcua): an X.509 user identity (user_certificate, user_private_key) accepted and
values polled; a configured application certificate (certificate, private_key) used instead
of the generated one (the server keeps the very certificate), with its ApplicationUri checked
against application_uri and its key refused when readable by others; Aes256_Sha256_RsaPss
(RSA-PSS signatures, RSA-OAEP SHA-256) in Sign and SignAndEncrypt reading values end to end,
with a user name and password encrypted as the token policy asks; the configuration refusals
of the new keys and of an unknown policy."""

from ibtest import (Gateway, Mosquitto, Subscriber, check, data_topic, gateway_config, is_data,
                    log_has, mqtt_section, note, run, session_pki, wait_sample)
from opcua_certs import Certs
from test_opcua import NS, OpcuaServer, check_refused, install_peer, secured, wait_for_file, \
    wait_line

TAGS = [{"name": "Double", "node": f"ns={NS};s=Double"}]


def trust(d):
    rejected = d / "pki" / "rejected"
    wait_for_file(rejected)
    for f in rejected.iterdir():
        f.rename(d / "pki" / "trusted" / f.name)


def test_x509_user_and_own_certificate(d):
    install_peer()
    p = session_pki()
    c = Certs(d / "certs")
    user = c.leaf("user", san="URI:urn:ironbridge:test-user")
    app_uri = "urn:ironbridge:test-gateway"
    own = c.leaf("gateway", san=f"URI:{app_uri}, DNS:localhost")
    for f in (user[1], own[1]):
        f.chmod(0o600)
    (d / "pki" / "trusted").mkdir(parents=True)
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        conn = secured(srv, d, "Basic256Sha256", "SignAndEncrypt", TAGS,
                       user_certificate=str(user[0]), user_private_key=str(user[1]),
                       certificate=str(own[0]), private_key=str(own[1]),
                       application_uri=app_uri)
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name="x509")
        trust(d)
        wait_sample(sub, "press", "Double", lambda s: s.get("v") == 3.141592653589793, 60,
                    "a value with the X.509 user identity")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")
        # the server keeps the client certificates it accepted: ours is the configured one
        der = c.der(own[0])
        kept = [f for f in (d / "pki" / "server").rglob("*") if f.is_file() and
                f.suffix in (".der", ".pem") and "own" not in f.parts]
        check(any(c.der(f) == der for f in kept),
              f"the server did not see the configured certificate: {kept}")
        check(not (d / "pki" / "own" / "private" / "ironbridge.pem").exists(),
              "a certificate was generated although one is configured")
        note("X.509 user identity accepted; the configured application certificate used")
        # a configured certificate whose URI is not application_uri: refused, saying what to set
        conn = secured(srv, d, "Basic256Sha256", "SignAndEncrypt", TAGS,
                       certificate=str(own[0]), private_key=str(own[1]),
                       application_uri="urn:other")
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name="uri")
        line = wait_line(gw, "cannot connect", f"set application_uri: {app_uri}")
        note(line.split("] ", 1)[-1][:200])
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")
        own[1].chmod(0o644)
        conn = secured(srv, d, "Basic256Sha256", "SignAndEncrypt", TAGS,
                       certificate=str(own[0]), private_key=str(own[1]), application_uri=app_uri)
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name="keymode")
        wait_line(gw, "cannot connect", str(own[1]), "chmod 600")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_rsa_pss(d):
    """Aes256_Sha256_RsaPss in Sign and SignAndEncrypt: the OpenSecureChannel exchange signed
    with RSA-PSS and encrypted with RSA-OAEP SHA-256 (66 bytes of padding per block), the
    session signatures with rsa-pss-sha2-256, then values end to end to MQTT; SignAndEncrypt
    with a 2 s token lifetime, so tokens are renewed while values keep coming; and a user name
    whose password goes encrypted as the endpoint's token policy asks."""
    install_peer()
    p = session_pki()
    tags = [{"name": n, "node": f"ns={NS};s={n}"} for n in ("Double", "UInt64", "String")]
    tags.append({"name": "Counter", "node": f"ns={NS};s=Counter"})
    policy = "Aes256_Sha256_RsaPss"
    pw = d / "pw"
    pw.write_text("s3cret!\n")
    pw.chmod(0o600)
    (d / "pki" / "trusted").mkdir(parents=True)
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        for mode in ("SignAndEncrypt", "Sign"):
            sub.clear()
            extra = {"token_lifetime": "2s"} if mode == "SignAndEncrypt" else {}
            conn = secured(srv, d, policy, mode, tags, **extra)
            gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name=f"pss-{mode}")
            if mode == "SignAndEncrypt":
                trust(d)
            m = sub.wait_for(lambda m: is_data(m, "press") and
                             m.payload["values"]["Double"].get("q", "good") == "good", 60,
                             f"data with {policy} {mode}")
            vals = m.payload["values"]
            check(vals["Double"].get("v") == 3.141592653589793 and
                  vals["UInt64"].get("v") == "18446744073709551615" and
                  vals["String"].get("v") == "h\u00e9llo w\u00f6rld", f"{policy} {mode}: {vals}")
            if extra:  # values still come after several token lifetimes
                c0 = vals["Counter"]["v"]
                wait_sample(sub, "press", "Counter", lambda s, c0=c0: s.get("v", c0) > c0 + 60,
                            30, f"Counter 6 s later with {policy} {mode}")
                log = gw.log()
                check(log.count("[ua] connected to") == 1 and "token renewed" in log,
                      f"{policy} {mode}: the channel was not renewed in place:\n{log[-3000:]}")
            check(log_has(gw.log(), f"security policy {policy}, mode {mode}") is not None,
                  f"{policy} {mode}: no connect line:\n{gw.log()[-2000:]}")
            check(gw.stop() == 0, f"{policy} {mode}: SIGTERM exit status {gw.returncode}")
            note(f"{policy} {mode}: values end to end")
        sub.clear()
        conn = secured(srv, d, policy, "SignAndEncrypt", tags, user="operator",
                       password_file=str(pw))
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name="pss-user")
        wait_sample(sub, "press", "Double", lambda s: s.get("v") == 3.141592653589793, 60,
                    f"a value as operator with {policy}")
        check("s3cret!" not in gw.log(), "the password is in the log")
        check(gw.stop() == 0, f"user: SIGTERM exit status {gw.returncode}")
        note(f"{policy}: user name and password accepted")


def test_config_refusals(d):
    class Fake:
        url = "opc.tcp://127.0.0.1:4840"
    conn = secured(Fake, d, "Basic256Sha256", "SignAndEncrypt", TAGS)
    check_refused(d, {**conn, "certificate": "a.pem"}, "private_key", "go together")
    check_refused(d, {**conn, "user_private_key": "k.pem"}, "user_certificate", "go together")
    check_refused(d, {**conn, "user_certificate": "u.pem", "user_private_key": "k.pem",
                      "user": "operator", "password_file": "pw"}, "user_certificate",
                  "one identity")
    check_refused(d, {**conn, "security_policy": "Aes256_Sha256_Rsa"}, "security_policy",
                  "expected one of", "Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss")
    check_refused(d, {**conn, "security_policy": "Aes256_Sha256_RsaPss",
                      "security_mode": "None"}, "security_mode", "None")


if __name__ == "__main__":
    run([test_x509_user_and_own_certificate, test_rsa_pss, test_config_refusals])
