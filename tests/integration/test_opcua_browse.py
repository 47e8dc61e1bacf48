#!/usr/bin/python3
"""ironbridge-opcua-browse against node-opcua's server (tests/peers/opcua): secure by default,
the untrusted server certificate refused and copied to rejected/ (the same PKI directory as the
plugin's), trusted once moved to trusted/; each policy and mode; the CSV it prints fed back as
a group's tags_csv: accepted by --check, and the gateway polls those nodes with the values the
server holds ("browse, then poll" is two commands). Refusals: None without --allow-insecure,
a wrong password (named, never printed), a private key readable by others."""

import os
import subprocess

from ibtest import (Gateway, Mosquitto, Subscriber, check, data_topic, gateway_config, is_data,
                    mqtt_section, note, run, run_check, session_pki)
from opcua_certs import APP_URI, Certs
from test_opcua import NS, PEER, VALUES, OpcuaServer, install_peer, wait_line


class CertServer(OpcuaServer):
    """The peer with a certificate of ours (cert, key) and ApplicationUri app_uri."""

    def __init__(self, dir, cert, app_uri=APP_URI):
        self.cert, self.app_uri = cert, app_uri
        super().__init__(dir)

    def start(self):
        argv = ["node", str(PEER / "server.js"), "--port", str(self.port), "--pki",
                str(self.dir / f"pki-{self.port}"), "--port-file", str(self.port_file),
                "--cert", str(self.cert[0]), "--key", str(self.cert[1]),
                "--app-uri", self.app_uri]
        self._spawn_with_port_file(argv, 240, "the OPC UA server")


def browse(*args, timeout=120):
    exe = os.environ.get("IB_OPCUA_BROWSE")
    check(exe, "IB_OPCUA_BROWSE is not set (run through meson test)")
    r = subprocess.run([exe, *[str(a) for a in args]], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def trust_server(d, srv):
    """The first secure browse refuses the server and copies its certificate to rejected/;
    moved to trusted/, the next one succeeds."""
    pki = d / "pki"
    rc, out, err = browse("--pki-dir", pki, srv.url)
    check(rc == 1 and "not trusted" in err and "trusted/" in err,
          f"an untrusted server was not refused: rc {rc}\n{err}")
    files = list((pki / "rejected").iterdir())
    check(len(files) == 1 and str(files[0]) in err, f"rejected/: {files}\n{err}")
    note(err.strip().splitlines()[-1][:200])
    files[0].rename(pki / "trusted" / files[0].name)
    return pki


def test_browse_then_poll(d):
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        pki = trust_server(d, srv)
        for policy in ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"):
            for mode in ("Sign", "SignAndEncrypt"):
                rc, out, err = browse("--pki-dir", pki, "--security", policy, "--mode", mode,
                                      srv.url)
                check(rc == 0 and f"Test.Double,ns={NS};s=Double,," in out,
                      f"{policy} {mode}: rc {rc}\n{out[-1500:]}\n{err[-1500:]}")
        csv = d / "tags.csv"
        rc, out, err = browse("--pki-dir", pki, "-o", csv, srv.url)
        check(rc == 0, f"browse: rc {rc}\n{err}")
        text = csv.read_text()
        check(text.splitlines()[1] == "name,node,writable,description", text[:500])
        check(f'Test.Setpoint,ns={NS};s=Setpoint,,"Double, read/write"' in text and
              f'Test.Int32,ns={NS};s=Int32,,"Int32, read only"' in text, text)
        dups = sorted(line.split(",")[0] for line in text.splitlines()
                      if line.startswith("Test.Dup_A"))
        check(dups == ["Test.Dup_A", "Test.Dup_A_2"],
              f"two nodes named alike did not get unique tag names: {dups}")
        check(",ns=0;" not in text and ",i=" not in text,
              "namespace 0 nodes listed without --all-namespaces:\n" + text[:2000])
        conn = {"name": "ua", "plugin": "opcua", "endpoint": srv.url, "pki_dir": str(pki),
                "timeout": "10s",
                "devices": [{"name": "press", "groups": [
                    {"name": "all", "interval_ms": 300, "tags_csv": str(csv)}]}]}
        cfg = gateway_config(mqtt_section(b, p), [conn])
        rc, out = run_check(cfg, d)
        check(rc == 0, f"--check refused the browse output:\n{out}")
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        gw = Gateway(cfg, d)
        m = sub.wait_for(lambda m: is_data(m, "press") and m.payload["values"].get(
            "Test.Double", {}).get("q", "good") == "good", 90, "values polled from the CSV")
        vals = m.payload["values"]
        wrong = [f"Test.{n}: {vals.get('Test.' + n)!r}, expected {want!r}" for n, want in VALUES
                 if vals.get("Test." + n, {}).get("v") != want]
        check(not wrong, "wrong values:\n  " + "\n  ".join(wrong))
        note(f"{len(vals)} tags polled from the browse output")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_browse_refusals(d):
    install_peer()
    with OpcuaServer(d) as srv:
        rc, out, err = browse("--security", "None", "--mode", "None", "--pki-dir", d / "pki",
                              srv.url)
        check(rc == 2 and "--allow-insecure" in err and not out, f"None: rc {rc}\n{err}")
        rc, out, err = browse("--security", "None", "--mode", "None", "--allow-insecure",
                              "--pki-dir", d / "pki", "--root", f"ns={NS};s=Missing", srv.url)
        check(rc == 0 and "warning" in err and "unencrypted" in err,
              f"None allowed: rc {rc}\n{err}")
        pki = trust_server(d, srv)
        bad = d / "bad"
        bad.write_text("Wr0ngPassw0rd\n")
        bad.chmod(0o600)
        rc, out, err = browse("--pki-dir", pki, "--user", "operator", "--password-file", bad,
                              srv.url)
        check(rc == 1 and "BadUserAccessDenied" in err and "operator" in err and
              "wrong user name or password" in err, f"wrong password: rc {rc}\n{err}")
        check("Wr0ngPassw0rd" not in out + err, "the password was printed")
        bad.chmod(0o644)
        rc, out, err = browse("--pki-dir", pki, "--user", "operator", "--password-file", bad,
                              srv.url)
        check(rc == 1 and "chmod 600" in err, f"readable password file: rc {rc}\n{err}")
        key = pki / "own" / "private" / "ironbridge.pem"
        key.chmod(0o640)
        rc, out, err = browse("--pki-dir", pki, srv.url)
        check(rc == 1 and str(key) in err and "chmod 600" in err, f"key 0640: rc {rc}\n{err}")
        key.chmod(0o600)
        rc, out, err = browse("--security", "Basic128", "--pki-dir", pki, srv.url)
        check(rc == 2 and "Basic256Sha256" in err and "Aes256_Sha256_RsaPss" in err,
              f"unknown policy: rc {rc}\n{err}")
    rc, out, err = browse("--help")
    check(rc == 0 and "--security" in out and "Aes256_Sha256_RsaPss" in out and
          "tags_csv" in out, f"--help: {out}")


def refused(srv, pki, *patterns):
    rc, out, err = browse("--pki-dir", pki, srv.url)
    check(rc == 1 and all(p in err for p in patterns), f"expected {patterns}: rc {rc}\n{err}")
    note(err.strip().splitlines()[-1].split(": ", 2)[-1][:160])
    return err


def test_certificate_chain_and_crl(d):
    """A server certificate issued by a CA: untrusted while the CA is only in issuers/ (copied
    to rejected/); with the CA in trusted/ but no CRL, refused (revocation unknown, naming
    issuers/crl/); with the CRL accepted; revoked by a new CRL, refused."""
    install_peer()
    c = Certs(d / "certs")
    ca = c.ca()
    leaf = c.leaf("server", ca=ca)
    pki = d / "pki"
    for sub in ("trusted", "issuers/crl"):
        (pki / sub).mkdir(parents=True, exist_ok=True)
    (pki / "issuers" / "ca.pem").write_bytes(ca[0].read_bytes())
    with CertServer(d, leaf) as srv:
        refused(srv, pki, "not trusted", "rejected/", "its CA's certificate")
        (pki / "issuers" / "ca.pem").rename(pki / "trusted" / "ca.pem")
        refused(srv, pki, "no CRL of the CA", str(pki / "issuers" / "crl"))
        c.crl(ca, pki / "issuers" / "crl" / "ca.crl")
        rc, out, err = browse("--pki-dir", pki, srv.url)
        check(rc == 0 and f"Test.Double,ns={NS};s=Double" in out, f"with the CRL: rc {rc}\n{err}")
        c.revoke(ca, leaf[0])
        c.crl(ca, pki / "issuers" / "crl" / "ca.crl")
        refused(srv, pki, "is revoked", "needs a new certificate")


def test_certificate_checks(d):
    """Self-signed server certificates, each trusted (in trusted/) but refused for one reason
    with what to do: expired; not naming the endpoint's host (also through the daemon's
    plugin, in its log); a key usage without keyEncipherment; another ApplicationUri than
    the server's."""
    install_peer()
    c = Certs(d / "certs")
    cases = [
        ("expired", c.leaf("expired", days=0), APP_URI, ("expired on", "renew it")),
        ("host", c.leaf("host", san=f"DNS:elsewhere.example, URI:{APP_URI}"), APP_URI,
         ("does not name the endpoint's host '127.0.0.1'", "DNS:elsewhere.example")),
        ("usage", c.leaf("usage", ku="critical, digitalSignature"), APP_URI,
         ("may not be used", "keyEncipherment")),
        ("uri", c.leaf("uri", san="IP:127.0.0.1, URI:urn:somebody:else"), APP_URI,
         (f"ApplicationUri '{APP_URI}'", "urn:somebody:else")),
    ]
    p = session_pki()
    for name, cert, app_uri, patterns in cases:
        pki = d / f"pki-{name}"
        (pki / "trusted").mkdir(parents=True)
        (pki / "trusted" / "server.pem").write_bytes(cert[0].read_bytes())
        with CertServer(d, cert, app_uri) as srv:
            refused(srv, pki, *patterns)
            check(not any((pki / "rejected").iterdir()), f"{name}: copied to rejected/")
            if name != "host":
                continue
            with Mosquitto(d, tls=p.server_tls()) as b:
                conn = {"name": "ua", "plugin": "opcua", "endpoint": srv.url,
                        "pki_dir": str(pki), "timeout": "10s",
                        "devices": [{"name": "press", "groups": [
                            {"name": "all", "interval_ms": 300,
                             "tags": [{"name": "d", "node": f"ns={NS};s=Double"}]}]}]}
                gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name="host")
                wait_line(gw, "cannot connect", "does not name the endpoint's host")
                check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


if __name__ == "__main__":
    run([test_browse_then_poll, test_browse_refusals, test_certificate_chain_and_crl,
         test_certificate_checks])
