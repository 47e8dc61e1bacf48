#!/usr/bin/python3
"""The OPC UA plugin end to end through the daemon to mosquitto, against an independent
server: node-opcua's (tests/peers/opcua, pinned, installed by its install.sh with npm ci).
Security None with allow_insecure: every scalar type exact (Float as float32, Int64/UInt64
beyond 2^53), the bad StatusCode of a node as its quality with the code, batching within the
server's MaxNodesPerRead, the warning at every connect; the server stopped and started again:
quality bad then good. The configuration refusals: None without allow_insecure, and the
signing policies this build does not have yet."""

import subprocess
from pathlib import Path

from ibtest import (ROOT, Failure, Gateway, Mosquitto, Subscriber, _Proc, check, data_topic,
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
        self._spawn_with_port_file(argv, 60, "the OPC UA server")

    @property
    def url(self):
        return f"opc.tcp://127.0.0.1:{self.port}"


def connection(server, tags, **kw):
    c = {"name": "ua", "plugin": "opcua", "endpoint": server.url, "security_policy": "None",
         "security_mode": "None", "allow_insecure": True, "timeout": "3s"}
    c.update(kw)
    c["devices"] = [{"name": "press", "groups": [
        {"name": "all", "interval_ms": INTERVAL_MS, "tags": tags}]}]
    return c


def all_tags():
    tags = [{"name": n, "node": f"ns={NS};s={n}"} for n, _ in VALUES]
    tags += [{"name": "Counter", "node": f"ns={NS};s=Counter"},
             {"name": "Broken", "node": f"ns={NS};s=Broken"},
             {"name": "Missing", "node": f"ns={NS};s=Missing"},
             {"name": "ServerState", "node": "i=2259"}]
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
    for name, code in (("Broken", BAD_DEVICE_FAILURE), ("Missing", BAD_NODE_ID_UNKNOWN)):
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
        first = sub.wait_for(lambda m: is_data(m, "press"), 30, "a data message from press")
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
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


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
    conn = connection(Fake, tags)
    for k in ("security_policy", "security_mode", "allow_insecure"):
        del conn[k]
    check_refused(d, conn, "security_policy", "None only")
    check_refused(d, connection(Fake, [{"name": "t", "node": "ns=2;x=1"}]), "node",
                  "ns=2;x=1")
    check_refused(d, connection(Fake, [{"name": "t", "node": "nsu=urn:a;s=b"}]), "nsu=",
                  "not supported yet")
    bad_url = connection(Fake, tags)
    bad_url["endpoint"] = "http://127.0.0.1:4840"
    check_refused(d, bad_url, "endpoint", "opc.tcp://")


if __name__ == "__main__":
    run([test_values_with_security_none, test_server_restart, test_config_refusals])
