"""ibt_pki: the tests' throw-away PKI made with the openssl command line tool, one per test
process, and an openssl s_client probe of what a TLS listener accepts.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import os
import subprocess
from pathlib import Path

from ibt_core import Failure, LOOPBACK, require_program
from ibt_procs import session_dir

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_localhost]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
[server_wrong]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


class Pki:
    """A throw-away PKI made with the openssl CLI (EC P-256, SHA-256, valid 2 days).

    ca.crt/ca.key            the test CA
    server.crt/server.key    CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by the CA
    wrong.crt/wrong.key      SAN DNS:wrong.example only, signed by the CA
    other-ca.crt/.key        a second, unrelated CA
    unknown.crt/unknown.key  like server.crt (right names) but signed by the other CA
    client.crt/client.key    a client certificate for mutual TLS, signed by the CA
    Private keys have mode 0600.
    """

    def __init__(self, dir):
        self.openssl = require_program("openssl", "the openssl command line tool")
        self.dir = Path(dir) / "pki"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cnf = self.dir / "openssl.cnf"
        self.cnf.write_text(_OPENSSL_CNF)
        self.ca, self.ca_key = self._ca("ca", "ironbridge test CA")
        self.other_ca, self.other_ca_key = self._ca("other-ca", "ironbridge unrelated CA")
        self.server, self.server_key = self._leaf("server", "localhost", "server_localhost",
                                                  self.ca, self.ca_key)
        self.wrong, self.wrong_key = self._leaf("wrong", "wrong.example", "server_wrong",
                                                self.ca, self.ca_key)
        self.unknown, self.unknown_key = self._leaf("unknown", "localhost", "server_localhost",
                                                    self.other_ca, self.other_ca_key)
        self.client, self.client_key = self._leaf("client", "ironbridge-test-gw", "client",
                                                  self.ca, self.ca_key)

    # (cafile, certfile, keyfile) tuples for Mosquitto(tls=...)
    def server_tls(self):
        return (self.ca, self.server, self.server_key)

    def wrong_host_tls(self):
        return (self.ca, self.wrong, self.wrong_key)

    def unknown_ca_tls(self):
        return (self.other_ca, self.unknown, self.unknown_key)

    def _run(self, *args):
        r = subprocess.run([self.openssl, *args], cwd=self.dir, capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure(f"openssl {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")

    def _key(self, name):
        key = self.dir / f"{name}.key"
        self._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", str(key))
        os.chmod(key, 0o600)
        return key

    def _ca(self, name, cn):
        key = self._key(name)
        crt = self.dir / f"{name}.crt"
        self._run("req", "-config", str(self.cnf), "-x509", "-new", "-key", str(key),
                  "-sha256", "-days", "2", "-subj", f"/CN={cn}", "-extensions", "ca",
                  "-out", str(crt))
        return crt, key

    def _leaf(self, name, cn, ext, ca, ca_key):
        key = self._key(name)
        csr = self.dir / f"{name}.csr"
        crt = self.dir / f"{name}.crt"
        self._run("req", "-config", str(self.cnf), "-new", "-key", str(key),
                  "-subj", f"/CN={cn}", "-out", str(csr))
        self._run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                  "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
                  "-sha256", "-days", "2", "-extfile", str(self.cnf), "-extensions", ext,
                  "-out", str(crt))
        return crt, key


_session_pki = None


def session_pki():
    """One throw-away PKI per test process (making keys costs time), in the session dir."""
    global _session_pki
    if _session_pki is None:
        _session_pki = Pki(session_dir())
    return _session_pki


def tls_handshake(port, cafile, args=(), servername="localhost"):
    """openssl s_client against 127.0.0.1:port; returns (ok, negotiated protocol, last error
    line). For showing what a broker accepts, e.g. args=("-tls1_1", "-cipher",
    "DEFAULT@SECLEVEL=0")."""
    exe = require_program("openssl", "the openssl command line tool")
    r = subprocess.run([exe, "s_client", "-connect", f"{LOOPBACK}:{port}", "-CAfile",
                        str(cafile), "-servername", servername, "-verify_return_error",
                        *args], input="", capture_output=True, text=True, timeout=15)
    proto = ""
    for line in r.stdout.splitlines():
        if line.strip().startswith("Protocol") and ":" in line:
            proto = line.split(":", 1)[1].strip()
    err = (r.stderr.strip().splitlines() or [""])[-1]
    return r.returncode == 0, proto, err
