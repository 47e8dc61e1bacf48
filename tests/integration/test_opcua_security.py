#!/usr/bin/python3
"""The OPC UA plugin's security completions through the daemon, against node-opcua's server
(tests/peers/opcua): an X.509 user identity (user_certificate, user_private_key) accepted and
values polled; a configured application certificate (certificate, private_key) used instead
of the generated one (the server keeps the very certificate), with its ApplicationUri checked
against application_uri and its key refused when readable by others; Aes256_Sha256_RsaPss
(RSA-PSS signatures, RSA-OAEP SHA-256) in Sign and SignAndEncrypt reading values end to end,
with a password and an X.509 user token under that policy; the configuration refusals
of the new keys and of an unknown policy."""

from ibtest import (Gateway, Mosquitto, Subscriber, check, data_topic, gateway_config,
                    mqtt_section, note, run, session_pki, wait_sample)
from opcua_certs import Certs
from test_opcua import NS, OpcuaServer, check_refused, install_peer, secured, secured_values, \
    wait_for_file, wait_line
from test_opcua_browse import trust_server

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
    with a 2 s token lifetime, so tokens are renewed while values keep coming; a password
    encrypted with RSA-OAEP SHA-256 (rsa-oaep-sha2-256) and an X.509 user token signed with
    RSA-PSS, both of which node-opcua checks against the policy's algorithm URIs."""
    install_peer()
    p = session_pki()
    tags = [{"name": n, "node": f"ns={NS};s={n}"} for n in ("Double", "UInt64", "String")]
    tags.append({"name": "Counter", "node": f"ns={NS};s=Counter"})
    policy = "Aes256_Sha256_RsaPss"
    pw = d / "pw"
    pw.write_text("s3cret!\n")
    pw.chmod(0o600)
    user = Certs(d / "certs").leaf("user", san="URI:urn:ironbridge:test-user")
    user[1].chmod(0o600)
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        trust_server(d, srv)  # so that the first connect succeeds and logs the policy
        for mode in ("SignAndEncrypt", "Sign"):
            secured_values(srv, d, b, p, sub, policy, mode, tags)
            note(f"{policy} {mode}: values end to end")
        # the endpoint's user token policies name no policy: the channel's (RsaPss) applies
        identities = {"password": {"user": "operator", "password_file": str(pw)},
                      "X.509 user": {"user_certificate": str(user[0]),
                                     "user_private_key": str(user[1])}}
        for what, keys in identities.items():
            sub.clear()
            conn = secured(srv, d, policy, "SignAndEncrypt", tags, **keys)
            gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name=f"pss-{what[:4]}")
            wait_sample(sub, "press", "Double", lambda s: s.get("v") == 3.141592653589793, 60,
                        f"a value with {policy} and a {what} identity")
            check("s3cret!" not in gw.log(), "the password is in the log")
            check(gw.stop() == 0, f"{what}: SIGTERM exit status {gw.returncode}")
            note(f"{policy}: {what} identity accepted")


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
