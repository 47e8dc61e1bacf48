"""opcua_certs: server certificates for the OPC UA client's certificate checks, made with the
openssl command line tool (RSA 2048, as OPC UA asks): a CA with its CRL (revoking what it is
told), and leaf certificates with a chosen validity, subjectAltName and key usage."""

import subprocess
from pathlib import Path

from ibt_core import Failure, require_program

APP_URI = "urn:ironbridge:test-server"
GOOD_KU = "critical, digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment"

_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = {ku}
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
[ca_db]
database = {dir}/index.txt
crlnumber = {dir}/crlnumber
default_md = sha256
default_crl_days = {crl_days}
"""


class Certs:
    def __init__(self, dir):
        self.openssl = require_program("openssl", "the openssl command line tool")
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _run(self, *args):
        r = subprocess.run([self.openssl, *map(str, args)], cwd=self.dir, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise Failure(f"openssl {' '.join(map(str, args))} failed:\n{r.stderr}")

    def _cnf(self, name, ku=GOOD_KU, san=f"IP:127.0.0.1, URI:{APP_URI}", crl_days=7):
        cnf = self.dir / f"{name}.cnf"
        cnf.write_text(_CNF.format(ku=ku, san=san, dir=self.dir, crl_days=crl_days))
        return cnf

    def ca(self, name="ca"):
        """A self-signed CA: (cert path, key path)."""
        cnf = self._cnf(name)
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                  "-out", f"{name}.pem", "-days", "30", "-subj", f"/CN=test {name}",
                  "-config", cnf, "-extensions", "ca")
        (self.dir / "index.txt").write_text("")
        (self.dir / "crlnumber").write_text("01\n")
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"

    def leaf(self, name, ca=None, days=30, ku=GOOD_KU, san=f"IP:127.0.0.1, URI:{APP_URI}"):
        """A server certificate, self-signed or issued by ca (from ca()); days=0: it expires
        as it is made. (cert path, key path)."""
        cnf = self._cnf(name, ku=ku, san=san)
        key, csr, pem = (self.dir / f"{name}{s}" for s in (".key", ".csr", ".pem"))
        self._run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                  "-subj", f"/CN=test {name}", "-config", cnf)
        args = ["-days", str(days)]
        if ca:
            args += ["-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial"]
        else:
            args += ["-signkey", key]
        self._run("x509", "-req", "-in", csr, "-out", pem, "-extfile", cnf, "-extensions", "leaf",
                  "-sha256", *args)
        return pem, key

    def der(self, path):
        """The DER bytes of a certificate file (PEM or DER)."""
        data = Path(path).read_bytes()
        if not data.startswith(b"-----BEGIN"):
            return data
        r = subprocess.run([self.openssl, "x509", "-outform", "der"], input=data,
                           capture_output=True)
        return r.stdout

    def revoke(self, ca, cert):
        cnf = self._cnf("ca_db")
        self._run("ca", "-config", cnf, "-name", "ca_db", "-keyfile", ca[1], "-cert", ca[0],
                  "-revoke", cert)

    def crl(self, ca, out, days=7):
        cnf = self._cnf("ca_db", crl_days=days)
        self._run("ca", "-config", cnf, "-name", "ca_db", "-keyfile", ca[1], "-cert", ca[0],
                  "-gencrl", "-out", out)
        return out
