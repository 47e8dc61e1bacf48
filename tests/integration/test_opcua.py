#!/usr/bin/python3
"""The OPC UA plugin end to end through the daemon to mosquitto, against an independent
server: node-opcua's (tests/peers/opcua, pinned, installed by its install.sh with npm ci).
Security None with allow_insecure: every scalar type exact (Float as float32, Int64/UInt64
beyond 2^53), the bad StatusCode of a node as its quality with the code, batching within the
server's MaxNodesPerRead, the warning at every connect; the server stopped and started again:
quality bad then good. Basic256Sha256 and Aes128_Sha256_RsaOaep in Sign and SignAndEncrypt,
with token renewal; Write through the plugin's write_tag; the untrusted server certificate refused, copied to rejected/, and
accepted once moved to trusted/. User name and password. The configuration refusals."""

import socket
import struct
import subprocess
from pathlib import Path

from ibtest import (ROOT, Failure, Gateway, Mosquitto, Subscriber, _Proc, _SocketThread, check,
                    data_topic,
                    free_port, gateway_config, is_data, log_has, mqtt_section, note, run,
                    run_check, session_pki, wait_sample)

PEER = Path(ROOT) / "tests" / "peers" / "opcua"
NS = 2  # urn:ironbridge:test in the peer: ns=1 is the server's own namespace
INTERVAL_MS = 300

# tag name (= the peer's node s=<name>), the value the JSON payload must carry
VALUES = [
    ("Bool", True), ("SByte", -100), ("Byte", 200), ("Int16", -30000), ("UInt16", 60000),
    ("Int32", -2000000000), ("UInt32", 4000000000),
    # beyond 2^53: decimal strings, exact (docs/payload.md)
    ("Int64", "-9007199254740993"), ("UInt64", "18446744073709551615"), ("Float", 123.456), ("Double", 3.141592653589793),
    ("String", "h\u00e9llo w\u00f6rld"), ("DateTime", "2024-01-02T03:04:05.678Z"),
    ("ByteString", "AQIDBA=="), ("LocalizedText", "Running"),
    ("Guid", "72962b91-fa75-4ae6-8d28-b404dc7daf63"), ("Setpoint", 1.5),
]
BAD_DEVICE_FAILURE = 0x808B  # the high 16 bits of BadDeviceFailure
BAD_NODE_ID_UNKNOWN = 0x8034


def install_peer():
    r = subprocess.run([str(PEER / "install.sh")], capture_output=True, text=True)
    check(r.returncode == 0, f"the OPC UA test peer could not be installed:\n{r.stderr[-2000:]}")


class OpcuaServer(_Proc):
    """node-opcua's server running tests/peers/opcua/server.js on a free loopback port, with
    its PKI in dir/pki."""

    name = "node-opcua-server"

    def __init__(self, dir, port=None, max_nodes_per_read=5):
        self.dir = Path(dir)
        self.port = port or free_port()
        self.port_file = self.dir / f"opcua-{self.port}.port"
        self.logfile = self.dir / f"opcua-{self.port}.log"
        self.max_nodes_per_read = max_nodes_per_read
        self.start()

    def start(self):
        argv = ["node", str(PEER / "server.js"), "--port", str(self.port), "--pki",
                str(self.dir / "pki"), "--port-file", str(self.port_file),
                "--max-nodes-per-read", str(self.max_nodes_per_read)]
        self._spawn_with_port_file(argv, 240, "the OPC UA server")

    @property
    def url(self):
        return f"opc.tcp://127.0.0.1:{self.port}"


def connection(server, tags, **kw):
    c = {"name": "ua", "plugin": "opcua", "endpoint": server.url, "security_policy": "None",
         "security_mode": "None", "allow_insecure": True, "timeout": "10s"}
    c.update(kw)
    c["devices"] = [{"name": "press", "groups": [
        {"name": "all", "interval_ms": INTERVAL_MS, "tags": tags}]}]
    return c


def all_tags():
    tags = [{"name": n, "node": f"ns={NS};s={n}"} for n, _ in VALUES]
    tags += [{"name": "Counter", "node": f"ns={NS};s=Counter"},
             {"name": "Broken", "node": f"ns={NS};s=Broken"},
             {"name": "Missing", "node": f"ns={NS};s=Missing"},
             {"name": "ServerState", "node": "i=2259"},
             # the namespace by its URI, resolved through the NamespaceArray at connect
             {"name": "ViaUri", "node": "nsu=urn:ironbridge:test;s=Double"},
             {"name": "UnknownUri", "node": "nsu=urn:nowhere;s=Double"}]
    return tags


def check_values(m):
    vals = m.payload["values"]
    errors = []
    for name, want in VALUES:
        s = vals.get(name)
        if not isinstance(s, dict) or s.get("q", "good") != "good":
            errors.append(f"{name}: {s!r}")
        elif s.get("v") != want or type(s.get("v")) is not type(want):
            errors.append(f"{name}: v={s.get('v')!r}, expected {want!r}")
    if vals.get("ViaUri", {}).get("v") != 3.141592653589793:
        errors.append(f"ViaUri: {vals.get('ViaUri')!r}, expected 3.141592653589793")
    for name, code in (("Broken", BAD_DEVICE_FAILURE), ("Missing", BAD_NODE_ID_UNKNOWN),
                       ("UnknownUri", BAD_NODE_ID_UNKNOWN)):
        s = vals.get(name)
        if not (isinstance(s, dict) and s.get("q") == "bad" and s.get("reason") == "exception"
                and s.get("code") == code and "v" not in s):
            errors.append(f"{name}: {s!r}, expected bad with exception {code}")
    state = vals.get("ServerState")
    if not (isinstance(state, dict) and state.get("v") == 0):
        errors.append(f"ServerState: {state!r}, expected 0 (Running)")
    check(not errors, f"{len(errors)} wrong value(s):\n  " + "\n  ".join(errors))


def test_values_with_security_none(d):
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        gw = Gateway(gateway_config(mqtt_section(b, p), [connection(srv, all_tags())]), d)
        # the first message with values (a server slow to answer under load gives bad ones)
        first = sub.wait_for(lambda m: is_data(m, "press") and
                             m.payload["values"].get("Double", {}).get("q", "good") == "good",
                             90, "a data message from press with values")
        check_values(first)
        # the counter moves: values are read again at every poll, not once
        c0 = first.payload["values"]["Counter"]["v"]
        wait_sample(sub, "press", "Counter", lambda s: s.get("v", c0) > c0, 10,
                    "a later Counter value")
        log = gw.log()
        check(log_has(log, "security policy None", "unencrypted") is not None,
              "no warning about security None at connect")
        check(log_has(log, "at most 5 nodes per Read") is not None,
              "the server's MaxNodesPerRead (5) was not taken:\n" + log[-2000:])
        check(log_has(log, "Broken", "BadDeviceFailure") is not None,
              "the bad node's StatusCode is not named in the log")
        check(log_has(log, "Missing", "BadNodeIdUnknown") is not None,
              "the unknown node's StatusCode is not named in the log")
        check(log_has(log, "UnknownUri", "no namespace 'urn:nowhere'") is not None,
              "the unknown namespace URI is not named in the log")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def write(srv, node, value):
    """opcua_write (tests/integration/opcua_write.c) through the built plugin: its output."""
    import os
    exe = os.environ.get("IB_OPCUA_WRITE")
    check(exe, "IB_OPCUA_WRITE is not set (run through meson test)")
    plugin = Path(os.environ["IB_PLUGIN_DIR"]) / "opcua" / "opcua.so"
    r = subprocess.run([exe, str(plugin), srv.url, node, str(value)], capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_write(d):
    """write_tag through the Write service with the node's type: a Double written and read
    back; a fraction refused for an Int32 node before anything is sent; a read-only node
    refused by the server (BadNotWritable: denied), named in the log."""
    install_peer()
    with OpcuaServer(d) as srv:
        rc, out, err = write(srv, f"ns={NS};s=Setpoint", 42.25)
        check(rc == 0 and "write: success" in out and "read: 42.25" in out,
              f"Setpoint: rc {rc}\n{out}\n{err[-1500:]}")
        rc, out, err = write(srv, f"ns={NS};s=Int32", 1.5)
        check("write: invalid argument" in out and "fraction" in err,
              f"Int32 1.5: rc {rc}\n{out}\n{err[-1500:]}")
        rc, out, err = write(srv, f"ns={NS};s=Int32", 7)
        check("write: permission denied" in out and "BadNotWritable" in err,
              f"read-only Int32: rc {rc}\n{out}\n{err[-1500:]}")


def test_server_restart(d):
    """The server goes away and comes back on the same port: the tags go bad (connection
    lost), then good again, and the daemon keeps running."""
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        tags = [{"name": "Counter", "node": f"ns={NS};s=Counter"}]
        gw = Gateway(gateway_config(mqtt_section(b, p), [connection(srv, tags)]), d)
        wait_sample(sub, "press", "Counter", lambda s: s.get("q", "good") == "good", 30)
        srv.stop()
        wait_sample(sub, "press", "Counter", lambda s: s.get("q") == "bad", 30,
                    "Counter bad after the server stopped")
        sub.clear()
        srv.start()
        wait_sample(sub, "press", "Counter", lambda s: s.get("q", "good") == "good", 60,
                    "Counter good again after the server restarted")
        check(gw.running(), "the daemon stopped")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def secured(server, d, policy, mode, tags, **kw):
    return connection(server, tags, security_policy=policy, security_mode=mode,
                      allow_insecure=False, pki_dir=str(d / "pki"), **kw)


def secured_values(srv, d, b, p, sub, policy, mode, tags):
    """A gateway with `policy` and `mode` delivers the Double, UInt64 and String of `tags` end
    to end; with SignAndEncrypt its token lives 2 s and is renewed in place while Counter keeps
    coming; its connect line names the policy and mode (the server's certificate must be
    trusted already)."""
    sub.clear()
    extra = {"token_lifetime": "2s"} if mode == "SignAndEncrypt" else {}
    conn = secured(srv, d, policy, mode, tags, **extra)
    gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name=f"{policy}-{mode}")
    m = sub.wait_for(lambda m: is_data(m, "press") and
                     m.payload["values"]["Double"].get("q", "good") == "good", 60,
                     f"data with {policy} {mode}")
    vals = m.payload["values"]
    check(vals["Double"].get("v") == 3.141592653589793 and
          vals["UInt64"].get("v") == "18446744073709551615" and
          vals["String"].get("v") == "h\u00e9llo w\u00f6rld", f"{policy} {mode}: {vals}")
    if extra:  # values still come after several token lifetimes
        c0 = vals["Counter"]["v"]
        wait_sample(sub, "press", "Counter", lambda s, c0=c0: s.get("v", c0) > c0 + 60, 30,
                    f"Counter 6 s later with {policy} {mode}")
        log = gw.log()
        check(log.count("[ua] connected to") == 1 and "token renewed" in log,
              f"{policy} {mode}: the channel was not renewed in place:\n{log[-3000:]}")
    check(log_has(gw.log(), f"security policy {policy}, mode {mode}") is not None,
          f"{policy} {mode}: no connect line:\n{gw.log()[-2000:]}")
    check(gw.stop() == 0, f"{policy} {mode}: SIGTERM exit status {gw.returncode}")


def test_security_matrix(d):
    """The server's certificate is refused and lands in rejected/ with a log line saying where
    to move it; moved to trusted/, the next connect succeeds. Then each of Basic256Sha256 and
    Aes128_Sha256_RsaOaep in Sign and SignAndEncrypt reads values end to end; the
    SignAndEncrypt channels run with a 2 s token lifetime, so their tokens are renewed while
    the values keep coming."""
    install_peer()
    p = session_pki()
    tags = [{"name": n, "node": f"ns={NS};s={n}"} for n in ("Double", "UInt64", "String")]
    tags.append({"name": "Counter", "node": f"ns={NS};s=Counter"})
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        conn = secured(srv, d, "Basic256Sha256", "SignAndEncrypt", tags)
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name="untrusted")
        rejected = d / "pki" / "rejected"
        check(wait_for_file(rejected), "nothing was copied to rejected/:\n" + gw.log()[-2000:])
        line = wait_line(gw, "not trusted", "rejected/", "trusted/")
        note(line.split("] ", 1)[-1][:200])
        files = list(rejected.iterdir())
        check(len(files) == 1 and files[0].name.endswith(".der"), f"rejected/: {files}")
        check(str(files[0]) in line, f"the log line does not name {files[0]}: {line}")
        wait_sample(sub, "press", "Double", lambda s: s.get("q") == "bad", 20,
                    "bad samples while the certificate is untrusted")
        check(not any(is_data(m) and m.payload["values"]["Double"].get("q", "good") == "good"
                      for m in sub.messages()), "a good value although the server is untrusted")
        files[0].rename(d / "pki" / "trusted" / files[0].name)
        wait_sample(sub, "press", "Double", lambda s: s.get("q", "good") == "good", 60,
                    "a good value once the certificate was moved to trusted/")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")
        for policy in ("Basic256Sha256", "Aes128_Sha256_RsaOaep"):
            for mode in ("Sign", "SignAndEncrypt"):
                secured_values(srv, d, b, p, sub, policy, mode, tags)


def test_user_password(d):
    """A user name with its password from a file: accepted with the right password (on a None
    channel, where node-opcua still asks for the password encrypted with its key, and on a
    SignAndEncrypt channel); the wrong one refused with a log line naming the user and the
    StatusCode; the password in no log."""
    install_peer()
    p = session_pki()
    good, bad = d / "pw", d / "bad"
    good.write_text("s3cret!\n")
    bad.write_text("Wr0ngPassw0rd\n")
    for f in (good, bad):
        f.chmod(0o600)
    (d / "pki" / "trusted").mkdir(parents=True)
    tags = [{"name": "Double", "node": f"ns={NS};s=Double"}]
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        for name, conn in (
                ("none", connection(srv, tags, user="operator", password_file=str(good),
                                    pki_dir=str(d / "pki"))),
                ("sae", secured(srv, d, "Basic256Sha256", "SignAndEncrypt", tags,
                                user="operator", password_file=str(good)))):
            sub.clear()
            gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name=name)
            if name == "sae":  # trust the server (the security matrix tests this step)
                wait_for_file(d / "pki" / "rejected")
                for f in (d / "pki" / "rejected").iterdir():
                    f.rename(d / "pki" / "trusted" / f.name)
            wait_sample(sub, "press", "Double", lambda s: s.get("q", "good") == "good", 60,
                        f"a good value with the user's password ({name})")
            check(gw.stop() == 0, f"{name}: SIGTERM exit status {gw.returncode}")
        conn = secured(srv, d, "Basic256Sha256", "SignAndEncrypt", tags, user="operator",
                       password_file=str(bad))
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d, name="wrong")
        line = wait_line(gw, "BadUserAccessDenied", "operator", "wrong user name or password")
        note(line.split("] ", 1)[-1][:200])
        check(gw.stop() == 0, f"wrong: SIGTERM exit status {gw.returncode}")
        for f in d.iterdir():
            if f.suffix in (".stderr", ".stdout", ".log"):
                text = f.read_text(errors="replace")
                check("s3cret" not in text and "Wr0ngPassw0rd" not in text,
                      f"a password appears in {f}")


class HostilePeer(_SocketThread):
    """A TCP listener that answers each connection with one of a list of byte strings (after
    reading what the client sends first), then closes it: garbage, truncated and lying
    headers, and well-formed frames with broken contents."""

    name = "hostile-peer"

    def __init__(self, answers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self.answers = answers
        self.served = 0
        self._serve(sock, self._accept)

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(2)
                c.recv(65536)  # the Hello
                answer = self.answers[self.served % len(self.answers)]
                self.served += 1
                for part in answer:
                    c.sendall(part)
                    try:  # the next request, if the client sends one
                        c.recv(65536)
                    except OSError:
                        pass
            except OSError:
                pass
            finally:
                c.close()


def _ack(recv=65535, send=65535):
    return b"ACKF" + struct.pack("<IIIIII", 28, 0, recv, send, 0, 0)


def _opn_response(chan=1, token=1):
    uri = b"http://opcfoundation.org/UA/SecurityPolicy#None"
    body = (bytes([1, 0]) + struct.pack("<H", 449) + struct.pack("<qII", 0, 1, 0) + b"\x00" +
            struct.pack("<i", -1) + b"\x00\x00\x00" + struct.pack("<IIIqI", 0, chan, token, 0, 3600000)
            + struct.pack("<i", 0))
    payload = (struct.pack("<I", chan) + struct.pack("<i", len(uri)) + uri +
               struct.pack("<ii", -1, -1) + struct.pack("<II", 1, 1) + body)
    return b"OPNF" + struct.pack("<I", 8 + len(payload)) + payload


def test_hostile_peer(d):
    """Garbage, truncated chunks and lying lengths from a hostile TCP peer: the daemon (under
    ASan when built so) keeps running, every sample stays bad, nothing is published good."""
    answers = [
        [b"\x00" * 7],                                   # shorter than a header
        [b"GARBAGE!" * 100],                              # unknown message type
        [b"ACKF" + struct.pack("<I", 0xFFFFFFF0)],        # a 4 GB chunk announced
        [b"ACKF" + struct.pack("<I", 12) + b"\x01\x02\x03\x04"],   # a truncated Acknowledge
        [_ack(recv=100)],                                 # a buffer below the minimum
        [b"ERRF" + struct.pack("<II", 20, 0x80800000) + struct.pack("<i", 0x7FFFFFFF)],
        [_ack(), b"OPNF" + struct.pack("<I", 30) + b"\xff" * 22],   # a garbled OPN response
        [_ack(), _opn_response()[:-5] + b"\xff" * 5],      # a response with a lying length
        [_ack(), _opn_response(), b"MSGA" + struct.pack("<I", 8)],  # an aborted nothing
        [_ack(), _opn_response(), b"MSGF" + struct.pack("<I", 24) + struct.pack("<IIII", 1, 1, 2, 2)],
        [_ack(), _opn_response(chan=0)],                  # channel id 0
    ]
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, HostilePeer(answers) as peer:
        sub = Subscriber(b, data_topic(), cafile=p.ca)

        class Srv:
            url = f"opc.tcp://127.0.0.1:{peer.port}"
        conn = connection(Srv, [{"name": "x", "node": "ns=2;s=x"}], timeout="1s")
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d)
        from ibtest import wait_until
        wait_until(lambda: peer.served > len(answers) or not gw.running(), 240)
        check(gw.running(), "the daemon died:\n" + gw.log()[-3000:])
        check(peer.served >= len(answers), f"only {peer.served} connection attempts")
        good = [m for m in sub.messages() if is_data(m) and
                m.payload["values"].get("x", {}).get("q", "good") == "good"]
        check(not good, f"a good value from a hostile peer: {good[:1]}")
        note(f"{peer.served} hostile answers survived")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def wait_for_file(dir, timeout=30):
    from ibtest import wait_until
    return wait_until(lambda: dir.is_dir() and any(dir.iterdir()), timeout)


def wait_line(gw, *patterns, timeout=30):
    from ibtest import wait_until
    wait_until(lambda: log_has(gw.log(), *patterns) is not None, timeout)
    line = log_has(gw.log(), *patterns)
    check(line is not None, f"no log line with {patterns}:\n{gw.log()[-2000:]}")
    return line


def check_refused(d, conn, *patterns):
    cfg = gateway_config({"url": "mqtt://127.0.0.1:1", "allow_insecure": True}, [conn])
    rc, out = run_check(cfg, d)
    check(rc != 0, f"--check accepted {conn}:\n{out}")
    check(log_has(out, *patterns) is not None, f"--check said:\n{out}")


def test_config_refusals(d):
    class Fake:
        url = "opc.tcp://127.0.0.1:4840"
    tags = [{"name": "t", "node": "ns=2;s=x"}]
    check_refused(d, connection(Fake, tags, allow_insecure=False), "allow_insecure",
                  "in the clear")
    check_refused(d, connection(Fake, tags, security_mode="Sign"), "security_mode",
                  "goes with security_mode None")
    check_refused(d, connection(Fake, tags, security_policy="Basic256Sha256"), "security_mode",
                  "Sign or SignAndEncrypt")
    check_refused(d, connection(Fake, tags, user="operator"), "password_file", "go together")
    check_refused(d, connection(Fake, [{"name": "t", "node": "ns=2;x=1"}]), "node",
                  "ns=2;x=1")
    check_refused(d, connection(Fake, [{"name": "t", "node": "nsu=urn:a"}]), "nsu=",
                  "namespace URI followed by")
    bad_url = connection(Fake, tags)
    bad_url["endpoint"] = "http://127.0.0.1:4840"
    check_refused(d, bad_url, "endpoint", "opc.tcp://")


if __name__ == "__main__":
    run([test_values_with_security_none, test_security_matrix, test_user_password, test_write,
         test_server_restart, test_hostile_peer, test_config_refusals])
