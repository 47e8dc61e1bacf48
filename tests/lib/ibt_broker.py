"""ibt_broker: the MQTT side: a real mosquitto on loopback, a mosquitto_sub subscriber collecting
messages, and retained-message reads.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from ibt_core import (Failure, LOOPBACK, check, free_port, port_open, require_program, tail,
                      wait_until)
from ibt_procs import _Proc, _register



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
