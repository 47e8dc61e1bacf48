"""Fixtures for ironbridge's integration tests: real mosquitto, real Modbus servers, the daemon.

Standard library only; run with /usr/bin/python3 (Debian's pymodbus is importable only there).
Every process started here listens on 127.0.0.1 only and is stopped when its context ends,
when a test ends (the runner stops what the test left running) and at exit (atexit, SIGTERM).
"""

import atexit
import inspect
import json
import os
import shutil
import signal
import select
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


class Failure(Exception):
    """A test assertion or a missing prerequisite; the runner prints its message as FAIL."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def _env_path(var, default):
    v = os.environ.get(var)
    return Path(v) if v else ROOT / default


def daemon_path():
    return _env_path("IB_DAEMON", "build/daemon/ironbridge")


def sim_path():
    return _env_path("IB_SIM", "build/tests/sim/ironbridge-sim")


def plugin_dir():
    return _env_path("IB_PLUGIN_DIR", "build/plugins")


def require_program(path, what):
    """Fails (never skips) when a program the test needs is absent."""
    p = Path(path)
    if p.is_absolute() or "/" in str(path):
        check(p.is_file() and os.access(p, os.X_OK),
              f"prerequisite missing: {what} ({path}) does not exist or is not executable")
        return str(p)
    found = shutil.which(str(path))
    check(found is not None, f"prerequisite missing: {what} ('{path}' not on PATH); "
          "run tests/lib/deps.sh's ib_install_deps or ./test.sh")
    return found


def require_pymodbus():
    try:
        import pymodbus  # noqa: F401
    except ImportError as e:
        raise Failure(f"prerequisite missing: pymodbus is not importable from {sys.executable} "
                      f"({e}); install python3-pymodbus and run with /usr/bin/python3") from e


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_open(port, host=LOOPBACK):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.05):
    """Polls pred() until it returns a true value (returned) or timeout seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def tail(path, n=40):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------- process bookkeeping

_session = {"dir": None, "failed": False}


def session_dir():
    """A temp dir shared by the tests of one file (e.g. for one PKI); removed at exit unless a
    test failed or IB_KEEP=1."""
    if _session["dir"] is None:
        _session["dir"] = Path(tempfile.mkdtemp(prefix="ib-it-session-"))

        def cleanup():
            stop_all()
            if _session["failed"] or os.environ.get("IB_KEEP") == "1":
                print(f"     (session files kept in {_session['dir']})")
            else:
                shutil.rmtree(_session["dir"], ignore_errors=True)
        atexit.register(cleanup)
    return _session["dir"]


_live = []          # every running fixture object with a stop() method, oldest first
_history = []       # every fixture ever started (for the logs of a failed test)
_live_lock = threading.Lock()


def _register(obj):
    with _live_lock:
        _live.append(obj)
        _history.append(obj)


def _unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


def stop_all(since=0):
    """Stops every fixture started after the first `since` ones, newest first."""
    with _live_lock:
        todo = list(reversed(_live[since:]))
    for obj in todo:
        try:
            obj.stop()
        except Exception as e:  # a stop failing must not keep the others running
            print(f"warning: stopping {obj!r} failed: {e}", file=sys.stderr)


def _live_count():
    with _live_lock:
        return len(_live)


atexit.register(stop_all)


def _on_sigterm(signum, frame):
    # meson's timeout sends SIGTERM: turn it into SystemExit so that atexit runs.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


def _terminate(proc, timeout=10):
    """SIGTERM, then SIGKILL after timeout; returns the exit status."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class _Fixture:
    """Something started for a test, stopped by stop(); also a context manager."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class _Proc(_Fixture):
    """A started process with log files; subclasses set self.proc."""

    name = "process"
    proc = None
    logfile = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            _terminate(self.proc)
        _unregister(self)

    def describe(self, n=30):
        """The log tail for failure reports."""
        if self.logfile is None:
            return ""
        return f"--- {self.name} log ({self.logfile}), last {n} lines:\n{tail(self.logfile, n)}"

    def __repr__(self):
        pid = self.proc.pid if self.proc else None
        return f"<{self.name} pid={pid}>"

    def _spawn(self, argv):
        """Start argv with its output appended to self.logfile; stopped with the test."""
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        _register(self)

    def _spawn_until(self, argv, ready, timeout, what):
        """_spawn(argv), then wait until ready() or the process ends; Failure if not ready."""
        self._spawn(argv)
        ok = wait_until(lambda: not self.running() or ready(), timeout)
        if not ok or not self.running():
            rc = self.proc.poll()
            self.stop()
            raise Failure(f"{what} did not start (exit status {rc})\n{self.describe()}")

    def _spawn_with_port_file(self, argv, timeout, what):
        """Start argv (a server that writes the port it listens on to self.port_file) with its
        output in self.logfile, wait until that port accepts connections, set self.port."""
        if self.port_file.exists():
            self.port_file.unlink()
        self._spawn(argv)

        def port_ready():
            if not self.running():
                return True
            try:
                text = self.port_file.read_text().strip()
                return bool(text) and port_open(int(text))
            except (OSError, ValueError):
                return False

        wait_until(port_ready, timeout)
        if not self.running() or not port_ready():
            rc = self.proc.poll()
            self.stop()
            raise Failure(f"{what} did not start (exit status {rc})\n{self.describe()}")
        self.port = int(self.port_file.read_text().strip())


# ---------------------------------------------------------------- PKI

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


# ---------------------------------------------------------------- mosquitto

class Mosquitto(_Proc):
    """A real mosquitto on 127.0.0.1:port.

    tls: (cafile, certfile, keyfile) for a TLS listener (see Pki.server_tls()); plain=True
    for a plaintext listener instead. require_cert: mutual TLS. tls_version: e.g. "tlsv1.1".
    port: default a free one (pass one to start a broker where a gateway already points).

    Started as root, mosquitto drops to the user "mosquitto" and then cannot write its log in a
    root-owned temp dir; the config therefore says `user root` when we are root, which mosquitto
    honours by not dropping privileges (as a non-root user the directive has no effect).
    """

    name = "mosquitto"

    def __init__(self, dir, tls=None, require_cert=False, plain=False, tls_version=None,
                 port=None, start=True):
        self.exe = require_program("/usr/sbin/mosquitto", "the mosquitto broker")
        check(plain or tls is not None, "Mosquitto: give tls=(ca, cert, key) or plain=True")
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.plain = plain
        self.conf = self.dir / f"mosquitto-{self.port}.conf"
        self.logfile = self.dir / f"mosquitto-{self.port}.log"
        self.stdout = self.dir / f"mosquitto-{self.port}.out"
        lines = [
            "per_listener_settings false",
            f"listener {self.port} {LOOPBACK}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {self.logfile}",
            "log_type all",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        if not plain:
            ca, cert, key = tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}",
                      f"require_certificate {'true' if require_cert else 'false'}"]
            if tls_version:
                lines.append(f"tls_version {tls_version}")
        self.conf.write_text("\n".join(lines) + "\n")
        # mosquitto 2.0's tls_version is only a minimum: "tlsv1.1" still accepts TLS 1.3. To
        # get a broker that really speaks nothing newer than TLS 1.0/1.1, cap the protocol
        # through an OpenSSL configuration for this mosquitto alone (SECLEVEL=0: OpenSSL 3
        # cannot sign a TLS 1.1 handshake at its default level).
        self.env = dict(os.environ)
        self.max_tls = None
        if not plain and tls_version in ("tlsv1", "tlsv1.1"):
            self.max_tls = {"tlsv1": "TLSv1", "tlsv1.1": "TLSv1.1"}[tls_version]
            cnf = self.dir / f"mosquitto-{self.port}-openssl.cnf"
            cnf.write_text("openssl_conf = ib_conf\n[ib_conf]\nssl_conf = ib_ssl\n"
                           "[ib_ssl]\nsystem_default = ib_sys\n[ib_sys]\n"
                           f"MinProtocol = TLSv1\nMaxProtocol = {self.max_tls}\n"
                           "CipherString = DEFAULT@SECLEVEL=0\n")
            self.env["OPENSSL_CONF"] = str(cnf)
        if start:
            self.start()

    def start(self):
        with open(self.stdout, "ab") as out:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env)
        _register(self)
        ok = wait_until(lambda: not self.running() or port_open(self.port), 10)
        if not ok or not self.running():
            rc = self.proc.poll()
            self.stop()
            raise Failure(f"mosquitto did not start listening on {LOOPBACK}:{self.port} "
                          f"(exit status {rc}); config {self.conf}\n{self.describe()}\n"
                          f"--- stdout/stderr:\n{tail(self.stdout)}")
        return self

    def restart(self):
        self.stop()
        return self.start()

    def describe(self, n=30):
        return super().describe(n) + f"\n--- mosquitto stdout/stderr:\n{tail(self.stdout, 10)}"

    def log(self):
        try:
            return Path(self.logfile).read_text(errors="replace")
        except OSError:
            return ""

    def foreign_clients(self):
        """Client ids that completed an MQTT CONNECT, other than this library's own."""
        ids = []
        for line in self.log().splitlines():
            # "New client connected from 127.0.0.1:40000 as ID (p2, c1, k60)."
            if "New client connected from" in line and " as " in line:
                cid = line.split(" as ", 1)[1].split(" ", 1)[0]
                if not cid.startswith("ibtest-"):
                    ids.append(cid)
        return ids


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


# ---------------------------------------------------------------- MQTT subscriber

def topic_matches(filt, topic):
    """MQTT topic filter matching (+ and #)."""
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


class Message:
    """One received MQTT message: iterable as (topic, payload); payload is parsed JSON when the
    text is JSON, else the text. .text is the raw text, .time the monotonic arrival time."""

    __slots__ = ("topic", "payload", "text", "time")

    def __init__(self, topic, text, t):
        self.topic, self.text, self.time = topic, text, t
        try:
            self.payload = json.loads(text)
        except ValueError:
            self.payload = text

    def __iter__(self):
        return iter((self.topic, self.payload))

    def __repr__(self):
        return f"Message({self.topic!r}, {self.text[:200]!r})"


class Subscriber(_Proc):
    """mosquitto_sub -v -q 1 in the background; a reader thread collects messages.

    broker: a Mosquitto (or a port number). cafile: the CA to verify the broker with (None with
    plain=True). cert/key: client certificate. insecure: skip the broker host name check (to
    watch a broker whose certificate names the wrong host). ready=True (default) waits until a
    probe published with mosquitto_pub has come back, so the subscription is known to be
    active (and a test that expects nothing to arrive is known to be able to see something).
    """

    name = "mosquitto_sub"

    _count = 0

    def __init__(self, broker, topic, cafile=None, cert=None, key=None, insecure=False,
                 plain=False, ready=True, tls_args=(), extra=()):
        self.exe = require_program("mosquitto_sub", "mosquitto_sub (mosquitto-clients)")
        self.port = broker.port if hasattr(broker, "port") else int(broker)
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self.probe_topic = f"ibtest/probe/{os.getpid()}/{id(self):x}"
        Subscriber._count += 1
        # Client ids start with "ibtest-" so that broker logs tell them from the gateway.
        self.client_id = f"ibtest-sub-{os.getpid()}-{Subscriber._count}"
        self.conn_args = ["-h", LOOPBACK, "-p", str(self.port)]
        if not plain:
            check(cafile is not None, "Subscriber: TLS needs cafile")
            self.conn_args += ["--cafile", str(cafile)]
            if cert:
                self.conn_args += ["--cert", str(cert), "--key", str(key)]
            if insecure:
                self.conn_args.append("--insecure")
            self.conn_args += list(tls_args)
        cmd = [self.exe, *self.conn_args, "-i", self.client_id, "-v", "-q", "1",
               "-t", self.probe_topic]
        for t in self.topics:
            cmd += ["-t", t]
        cmd += list(extra)
        self._lock = threading.Lock()
        self._msgs = []
        self._raw = []
        self._cond = threading.Condition(self._lock)
        self.probe_seen = False
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, errors="replace")
        _register(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err = []
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()
        if ready:
            self.wait_ready()

    def _starts_message(self, line):
        topic = line.split(" ", 1)[0]
        return any(topic_matches(f, topic) for f in self.topics + [self.probe_topic])

    def _read(self):
        cur = None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._cond:
                self._raw.append(line)
                # mosquitto_sub -v prints "topic payload"; a payload with newlines continues
                # on lines that do not start with a subscribed topic.
                if self._starts_message(line) or cur is None:
                    if cur is not None:
                        self._finish(cur)
                    cur = line
                else:
                    cur += "\n" + line
                # A single-line JSON payload is complete now; do not wait for the next line.
                topic, _, text = cur.partition(" ")
                try:
                    json.loads(text)
                    complete = True
                except ValueError:
                    complete = not text.lstrip().startswith(("{", "["))
                if complete:
                    self._finish(cur)
                    cur = None
                self._cond.notify_all()
        with self._cond:
            if cur is not None:
                self._finish(cur)
            self._cond.notify_all()

    def _finish(self, line):
        topic, _, text = line.partition(" ")
        if topic == self.probe_topic:
            self.probe_seen = True
        else:
            self._msgs.append(Message(topic, text, time.monotonic()))

    def _read_err(self):
        for line in self.proc.stderr:
            self._err.append(line.rstrip("\n"))

    def publish(self, topic, payload, retain=False):
        """mosquitto_pub with this subscriber's connection settings."""
        pub = require_program("mosquitto_pub", "mosquitto_pub (mosquitto-clients)")
        cmd = [pub, *self.conn_args, "-i", f"ibtest-pub-{os.getpid()}", "-q", "1",
               "-t", topic, "-m", payload]
        if retain:
            cmd.append("-r")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        check(r.returncode == 0, f"mosquitto_pub to {topic} failed ({r.returncode}): "
              f"{r.stderr.strip()}")

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check(self.running(), f"mosquitto_sub exited ({self.proc.poll()}): "
                  f"{' '.join(self._err)}")
            try:
                self.publish(self.probe_topic, "probe")
            except Failure:
                pass
            with self._cond:
                if self._cond.wait_for(lambda: self.probe_seen, timeout=0.5):
                    return self
        raise Failure(f"mosquitto_sub on port {self.port} did not receive its own probe "
                      f"within {timeout}s; stderr: {' '.join(self._err)}")

    def messages(self, topic_filter=None):
        with self._lock:
            msgs = list(self._msgs)
        if topic_filter is None:
            return msgs
        return [m for m in msgs if topic_matches(topic_filter, m.topic)]

    def clear(self):
        with self._lock:
            self._msgs.clear()

    def wait_for(self, predicate, timeout, what="a matching message"):
        """Waits for a message m with predicate(m) true and returns it; raises Failure with a
        summary of what did arrive otherwise."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for m in self._msgs[seen:]:
                    if predicate(m):
                        return m
                seen = len(self._msgs)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
        raise Failure(f"no {what} within {timeout}s on {self.topics}; received "
                      f"{len(self._msgs)} message(s), last ones:\n  " +
                      "\n  ".join(repr(m) for m in self._msgs[-5:]))

    def wait_count(self, n, timeout, topic_filter=None):
        """Waits until at least n messages (matching topic_filter) arrived; returns them."""
        r = wait_until(lambda: len(self.messages(topic_filter)) >= n, timeout)
        got = self.messages(topic_filter)
        check(r, f"expected at least {n} message(s) on {topic_filter or self.topics} within "
              f"{timeout}s, got {len(got)}")
        return got

    def describe(self, n=10):
        with self._lock:
            raw = self._raw[-n:]
        return (f"--- mosquitto_sub port {self.port} {self.topics}: {len(self._msgs)} "
                f"message(s); last lines:\n" + "\n".join(raw) +
                (f"\n  stderr: {' '.join(self._err)}" if self._err else ""))


def retained(broker, topic, cafile=None, plain=False, timeout=5):
    """The retained message on topic as text, or None if there is none."""
    exe = require_program("mosquitto_sub", "mosquitto_sub (mosquitto-clients)")
    port = broker.port if hasattr(broker, "port") else int(broker)
    cmd = [exe, "-h", LOOPBACK, "-p", str(port), "-i", f"ibtest-ret-{os.getpid()}", "-t", topic,
           "--retained-only", "-C", "1", "-W", str(timeout)]
    if not plain:
        cmd += ["--cafile", str(cafile)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
    # -W expiry without a message: exit status 27 and no output.
    if r.returncode == 0:
        return r.stdout.rstrip("\n")
    check(not r.stdout.strip(), f"mosquitto_sub --retained-only failed: {r.stderr}")
    return None


# ---------------------------------------------------------------- Modbus servers

class Simulator(_Proc):
    """The project's Modbus TCP simulator: ironbridge-sim --map FILE --port 0 --port-file F."""

    name = "ironbridge-sim"

    def __init__(self, map_text, dir, name="sim", extra=()):
        self.exe = require_program(sim_path(), "the Modbus simulator ironbridge-sim (set IB_SIM)")
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.map = self.dir / f"{name}.map"
        self.map.write_text(map_text)
        self.port_file = self.dir / f"{name}.port"
        self.logfile = self.dir / f"{name}.log"
        self._spawn_with_port_file(
            [self.exe, "--map", str(self.map), "--port", "0", "--port-file",
             str(self.port_file), *extra], 10, f"ironbridge-sim with map {self.map}")


_PYMODBUS_SERVER = ROOT / "tests" / "integration" / "pymodbus_server.py"


class PymodbusServer(_Proc):
    """pymodbus (Debian's 3.0) as an independent Modbus TCP server on 127.0.0.1.

    holding/input: {address: 16-bit value}; coils/discrete: {address: bool}. Every table has
    `size` entries starting at protocol address 0 (addresses past it answer exception 2).
    """

    name = "pymodbus-server"

    def __init__(self, dir, holding=None, coils=None, input=None, discrete=None, size=100,
                 unit_id=1, name="pymodbus"):
        require_pymodbus()
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = {"size": size, "unit_id": unit_id,
                "holding": {str(k): int(v) for k, v in (holding or {}).items()},
                "input": {str(k): int(v) for k, v in (input or {}).items()},
                "coils": {str(k): bool(v) for k, v in (coils or {}).items()},
                "discrete": {str(k): bool(v) for k, v in (discrete or {}).items()}}
        self.spec_file = self.dir / f"{name}.json"
        self.spec_file.write_text(json.dumps(spec))
        self.port_file = self.dir / f"{name}.port"
        self.logfile = self.dir / f"{name}.log"
        self._spawn_with_port_file(
            [sys.executable, str(_PYMODBUS_SERVER), "--spec", str(self.spec_file), "--port", "0",
             "--port-file", str(self.port_file)], 15, "pymodbus server")


class SocatPtyPair(_Proc):
    """Two connected ptys made by socat (`pty,raw,echo=0` on both ends): what one end writes,
    the other reads, like the two ends of a serial cable. .a and .b are their paths (links in
    dir)."""

    name = "socat-pty-pair"

    def __init__(self, dir, name="serial"):
        exe = require_program("socat", "socat")
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.a = self.dir / f"{name}-a"
        self.b = self.dir / f"{name}-b"
        self.logfile = self.dir / f"{name}-socat.log"
        self._spawn_until([exe, "-d", "-d", f"pty,raw,echo=0,link={self.a}",
                           f"pty,raw,echo=0,link={self.b}"],
                          lambda: self.a.exists() and self.b.exists(), 10, "socat's pty pair")


class SocatTcpBridge(_Proc):
    """socat listening on 127.0.0.1:port and passing the bytes of each connection to and from
    a serial port (a pty): what a serial-to-Ethernet converter in transparent mode does."""

    name = "socat-tcp-bridge"

    def __init__(self, dir, serial_path, name="bridge"):
        exe = require_program("socat", "socat")
        self.dir = Path(dir)
        self.port = free_port()
        self.logfile = self.dir / f"{name}-socat.log"
        # Ready at socat's own "listening on" line: a probe connection would open the pty in a
        # child that might still hold it when the gateway connects.
        self._spawn_until([exe, "-d", "-d",
                           f"TCP-LISTEN:{self.port},bind={LOOPBACK},reuseaddr,fork",
                           f"FILE:{serial_path},raw,echo=0"],
                          lambda: "listening on" in tail(self.logfile), 10,
                          f"socat listening on port {self.port}")


class PymodbusRtuServer(_Proc):
    """pymodbus (Debian's 3.0) serving Modbus RTU on a serial port (one end of a SocatPtyPair),
    19200 baud without parity. units: {unit_id: {"holding": {addr: value}, "input": ...,
    "coils": {addr: bool}, "discrete": ...}}. A unit that is not listed never answers."""

    name = "pymodbus-rtu-server"

    def __init__(self, dir, serial_path, units, size=100, name="pymodbus-rtu"):
        require_pymodbus()
        self.dir = Path(dir)
        spec = {"size": size, "units": {
            str(u): {"holding": {str(k): int(v) for k, v in t.get("holding", {}).items()},
                     "input": {str(k): int(v) for k, v in t.get("input", {}).items()},
                     "coils": {str(k): bool(v) for k, v in t.get("coils", {}).items()},
                     "discrete": {str(k): bool(v) for k, v in t.get("discrete", {}).items()}}
            for u, t in units.items()}}
        self.spec_file = self.dir / f"{name}.json"
        self.spec_file.write_text(json.dumps(spec))
        self.ready_file = self.dir / f"{name}.ready"
        self.logfile = self.dir / f"{name}.log"
        self._spawn_until([sys.executable, str(_PYMODBUS_SERVER), "--spec", str(self.spec_file),
                           "--serial", str(serial_path), "--ready-file", str(self.ready_file)],
                          self.ready_file.exists, 15, f"pymodbus RTU server on {serial_path}")


def modbus_client(port):
    """A connected pymodbus ModbusTcpClient to 127.0.0.1:port (close() it when done)."""
    require_pymodbus()
    from pymodbus.client import ModbusTcpClient
    c = ModbusTcpClient(LOOPBACK, port=port, timeout=3)
    check(c.connect(), f"pymodbus client could not connect to {LOOPBACK}:{port}")
    return c


# ---------------------------------------------------------------- the daemon

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: UndefinedBehaviorSanitizer")


def sanitizer_report(text):
    """The first lines of an ASan/LSan/UBSan report in text, or None."""
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            start = text.rfind("\n", 0, i) + 1
            return "\n".join(text[start:].splitlines()[:25])
    return None


def _daemon_cmd(cfg, extra):
    exe = require_program(daemon_path(), "the ironbridge daemon (set IB_DAEMON)")
    return [exe, "-c", str(cfg), "--plugin-dir", str(plugin_dir()), *extra]


class Gateway(_Proc):
    """The ironbridge daemon with config_text written to dir/<name>.yaml; stderr is kept in
    dir/<name>.stderr (.log() returns it), stdout in dir/<name>.stdout.

    $STATE_DIRECTORY is dir/<name>.state unless env sets it, as systemd's StateDirectory= would
    set it, so that the store (default path $STATE_DIRECTORY/queue) stays inside the test's
    directory. env: variables added to the daemon's
    environment (e.g. NOTIFY_SOCKET)."""

    name = "ironbridge"

    def __init__(self, config_text, dir, name="gw", extra=(), env=None):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / f"{name}.yaml"
        self.config.write_text(config_text)
        self.logfile = self.dir / f"{name}.stderr"
        self.stdout = self.dir / f"{name}.stdout"
        env = {"STATE_DIRECTORY": str(self.dir / f"{name}.state"), **(env or {})}
        self.state_dir = Path(env["STATE_DIRECTORY"])
        cmd = _daemon_cmd(self.config, extra)
        with open(self.logfile, "wb") as err, open(self.stdout, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **env})
        _register(self)

    def kill(self):
        """SIGKILL: no cleanup of any kind, as after a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _unregister(self)

    def rss_kib(self):
        """The daemon's resident set size (VmRSS) in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise Failure(f"no VmRSS for pid {self.proc.pid}")

    @property
    def returncode(self):
        return self.proc.poll()

    def log(self):
        return Path(self.logfile).read_text(errors="replace")

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM, wait up to 10 s, then SIGKILL; returns the exit status."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                print(f"warning: ironbridge pid {self.proc.pid} ignored SIGTERM for 10 s "
                      "and was killed", file=sys.stderr)
        _unregister(self)
        return self.proc.returncode if self.proc else None


def _run_daemon(config_text, dir, args, name, timeout):
    d = Path(dir) if dir else Path(tempfile.mkdtemp(prefix="ib-it-"))
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / f"{name}.yaml"
    cfg.write_text(config_text)
    cmd = _daemon_cmd(cfg, args)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise Failure(f"{' '.join(cmd)} did not finish within {timeout}s") from e
    report = sanitizer_report(r.stdout + r.stderr)
    check(report is None, f"sanitizer report from {' '.join(cmd)}:\n{report}")
    return r, cfg


def run_check(config_text, dir=None, name="check"):
    """ironbridge --check -c FILE: returns (returncode, stdout + stderr)."""
    r, _ = _run_daemon(config_text, dir, ["--check"], name, 30)
    return r.returncode, r.stdout + r.stderr


def run_once(config_text, dir=None, name="once"):
    """ironbridge --once -c FILE: returns (returncode, stdout, stderr)."""
    r, _ = _run_daemon(config_text, dir, ["--once"], name, 60)
    return r.returncode, r.stdout, r.stderr


# ---------------------------------------------------------------- config text

def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts and lists of scalars/dicts; flat dicts inside lists whose
    values are all scalars are written in flow style (one tag per line)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                out.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and all(not isinstance(x, (dict, list))
                                              for x in item.values()):
                flow = ", ".join(f"{k}: {_yaml_scalar(x)}" for k, x in item.items())
                out.append(f"{pad}- {{ {flow} }}")
            elif isinstance(item, dict):
                sub = to_yaml(item, indent + 2).splitlines()
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def mqtt_section(broker=None, pki=None, url=None, ca=None, cert=None, key=None,
                 allow_insecure=None, qos=1, topic=None, status_topic=None):
    """north.mqtt as a dict: mqtts://localhost:PORT with the PKI's CA unless told otherwise."""
    if url is None:
        url = f"mqtts://localhost:{broker.port}"
    m = {"url": url}
    if allow_insecure is not None:
        m["allow_insecure"] = allow_insecure
    tls = {}
    if ca is None and pki is not None and url.startswith("mqtts"):
        ca = pki.ca
    if ca is not None:
        tls["ca"] = str(ca)
    if cert is not None:
        tls["cert"] = str(cert)
    if key is not None:
        tls["key"] = str(key)
    if tls:
        m["tls"] = tls
    m["qos"] = qos
    if topic:
        m["topic"] = topic
    if status_topic:
        m["status_topic"] = status_topic
    return m


def modbus_connection(name, port, devices, timeout_ms=1000):
    return {"name": name, "plugin": "modbus", "host": LOOPBACK, "port": port,
            "timeout_ms": timeout_ms, "devices": devices}


def gateway_config(mqtt, connections, gateway_id="test-gw", log_level="debug"):
    """The whole config file text from a north.mqtt dict and a list of connections."""
    cfg = {"gateway": {"id": gateway_id}, "log": {"level": log_level},
           "north": {"mqtt": mqtt}, "connections": connections}
    return to_yaml(cfg) + "\n"


def data_topic(gateway="test-gw", device="+", group="+"):
    return f"ironbridge/{gateway}/{device}/{group}"


def status_topic(gateway="test-gw"):
    return f"ironbridge/{gateway}/status"


# ---------------------------------------------------------------- runner

def _accepts_arg(fn):
    try:
        return len(inspect.signature(fn).parameters) >= 1
    except (TypeError, ValueError):
        return False


def run(tests, keep=None):
    """Runs each test function (given a fresh temp dir if it takes an argument), prints
    PASS name / FAIL name: reason, then "N passed, M failed"; exits 1 if any failed.

    On failure the logs of the processes the test started are printed and its temp dir is
    kept (its path is printed); IB_KEEP=1 keeps every temp dir. IB_ONLY=name1,name2 runs only
    those tests (for debugging).
    """
    keep = os.environ.get("IB_KEEP") == "1" if keep is None else keep
    only = [s for s in os.environ.get("IB_ONLY", "").split(",") if s]
    passed = failed = 0
    for fn in tests:
        name = fn.__name__
        if only and name not in only:
            continue
        d = Path(tempfile.mkdtemp(prefix=f"ib-it-{name}-"))
        base = _live_count()
        hist_base = len(_history)
        print(f"---- {name}", flush=True)
        t0 = time.monotonic()
        ok = False
        try:
            fn(d) if _accepts_arg(fn) else fn()
            ok = True
        except Failure as e:
            reason = str(e)
        except Exception as e:  # an unexpected error is a failure too, with its traceback
            reason = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        if not ok:
            with _live_lock:
                started = list(_history[hist_base:])
            logs = "\n".join(filter(None, (o.describe() for o in started)))
        stop_all(base)
        # A daemon that tripped ASan/UBSan/LSan fails the test even if its outputs were right
        # (leaks are reported only at exit, after the test's own checks).
        with _live_lock:
            gateways = [o for o in _history[hist_base:] if isinstance(o, Gateway)]
        for gw in gateways:
            report = sanitizer_report(gw.log())
            if report and ok:
                ok, reason, logs = False, f"sanitizer report in {gw.logfile}:\n{report}", ""
            elif report:
                reason += f"\nand a sanitizer report in {gw.logfile}:\n{report}"
        dt = time.monotonic() - t0
        if ok:
            passed += 1
            print(f"PASS {name} ({dt:.1f}s)", flush=True)
            if not keep:
                shutil.rmtree(d, ignore_errors=True)
        else:
            failed += 1
            _session["failed"] = True
            first, _, rest = reason.partition("\n")
            print(f"FAIL {name}: {first}", flush=True)
            if rest:
                print(rest)
            if logs:
                print(logs)
            print(f"     (files kept in {d})", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


def note(msg):
    """A line of test output that a reader should see (not a pass/fail verdict)."""
    print(f"     {msg}", flush=True)


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------- config pieces and data

def tag(name, table, address, type=None, **kw):
    t = {"name": name, "table": table, "address": address}
    if type is not None:
        t["type"] = type
    t.update(kw)
    return t


def group(name, tags, interval_ms=200):
    return {"name": name, "interval_ms": interval_ms, "tags": tags}


def device(name, groups, unit_id=1, byte_order=None):
    d = {"name": name, "unit_id": unit_id}
    if byte_order:
        d["byte_order"] = byte_order
    d["groups"] = groups
    return d


def is_data(m, device=None, group=None):
    """A data message (a JSON object with "values"), optionally of one device/group."""
    p = m.payload
    return (isinstance(p, dict) and isinstance(p.get("values"), dict)
            and (device is None or p.get("device") == device)
            and (group is None or p.get("group") == group))


def sample(m, name):
    """The sample of tag `name` in data message m (a dict), or None."""
    return m.payload["values"].get(name) if is_data(m) else None


def wait_sample(sub, device, name, pred, timeout, what=None):
    """Waits for a data message of `device` whose sample `name` satisfies pred(sample)."""
    def ok(m):
        if not is_data(m, device):
            return False
        s = m.payload["values"].get(name)
        return s is not None and pred(s)
    return sub.wait_for(ok, timeout, what or f"message from {device} with {name} as expected")


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 between the gateway and the broker; cut() drops every
    connection and refuses new ones until restore(), as a network outage would. up=False
    starts it cut."""

    def __init__(self, upstream_port, up=True):
        self.upstream = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.up = up
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        _register(self)

    def _accept(self):
        while not self.stopping:
            r, _, _ = select.select([self.listener], [], [], 0.2)
            if not r:
                continue
            try:
                c, _ = self.listener.accept()
            except OSError:
                continue
            with self.lock:
                if not self.up:
                    c.close()
                    continue
                try:
                    u = socket.create_connection((LOOPBACK, self.upstream), timeout=3)
                except OSError:
                    c.close()
                    continue
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            self.up = False
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns = []

    def restore(self):
        with self.lock:
            self.up = True

    def close(self):
        self.stopping = True
        self.cut()
        self.listener.close()
        _unregister(self)

    stop = close

    def describe(self, n=0):
        return f"--- proxy {self.port} -> {self.upstream}: {'up' if self.up else 'cut'}"


_session_pki = None


def session_pki():
    """One throw-away PKI per test process (making keys costs time), in the session dir."""
    global _session_pki
    if _session_pki is None:
        _session_pki = Pki(session_dir())
    return _session_pki


def log_has(text, *patterns):
    """The first log line matching all regular expressions (case-insensitive), or None."""
    import re
    for line in text.splitlines():
        if all(re.search(p, line, re.IGNORECASE) for p in patterns):
            return line
    return None


class _SocketThread(_Fixture):
    """A socket served by a daemon thread; a fixture used as a context manager or stopped with
    stop(), which closes the socket (ending the thread)."""

    def _serve(self, sock, target):
        self.sock = sock
        self._stop = False
        self._t = threading.Thread(target=target, daemon=True)
        self._t.start()
        _register(self)

    def stop(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        _unregister(self)


class NotifySocket(_SocketThread):
    """A systemd notify socket: NOTIFY_SOCKET for a daemon (see env()), recording every
    datagram as (monotonic time, {KEY: value}) in .msgs."""

    name = "notify-socket"

    def __init__(self, dir):
        self.path = Path(dir) / "notify.sock"
        self.msgs = []
        self._lock = threading.Lock()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        sock.settimeout(0.2)
        self._serve(sock, self._recv)

    def _recv(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").split("\n")
                          if "=" in line)
            with self._lock:
                self.msgs.append((time.monotonic(), fields))

    def env(self, watchdog_usec=None):
        """The environment systemd gives a Type=notify service (with WatchdogSec=)."""
        e = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_usec:
            e["WATCHDOG_USEC"] = str(watchdog_usec)
        return e

    def values(self, key):
        """[(time, value)] of every datagram that set KEY."""
        with self._lock:
            return [(t, f[key]) for t, f in self.msgs if key in f]

    def wait(self, key, pred, timeout, what):
        """The first value of KEY satisfying pred(value), waiting up to timeout seconds."""
        got = wait_until(lambda: next((v for _, v in self.values(key) if pred(v)), None),
                         timeout)
        seen = [v for _, v in self.values(key)][-5:]
        check(got is not None, f"no {key}= that is {what} within {timeout}s; last: {seen}")
        return got

    def describe(self, n=0):
        with self._lock:
            last = self.msgs[-8:]
        return f"--- notify socket {self.path}: {len(self.msgs)} datagrams, last: {last}"


class SilentServer(_SocketThread):
    """A TCP listener on 127.0.0.1 that accepts connections and never answers (a device that
    hangs)."""

    name = "silent-server"

    def __init__(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self.conns = []
        self.accepted = 0
        self._serve(sock, self._accept)

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)

    def stop(self):
        super().stop()
        for c in self.conns:
            c.close()

    def describe(self, n=0):
        return f"--- silent server on port {self.port}: {self.accepted} connection(s) accepted"
