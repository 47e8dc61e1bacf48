#!/usr/bin/python3
"""The OPC UA plugin's groups in mode subscribe (one subscription per group, values pushed to
the daemon through plugin ABI 1.1's push_samples) end to end against node-opcua's server:
values equal what the server holds, changes arrive, a bad StatusCode becomes the quality;
arrays of numbers and strings as JSON arrays (both modes); the
server killed and restarted: quality bad, then good again as the subscription is created
anew; the server restarted with another namespace order: nsu= ids still map to the right
node. (The PublishResponse decoders meet hostile input in tests/fuzz/fuzz_opcua.c.)"""

from ibtest import (Gateway, Mosquitto, Subscriber, check, data_topic, gateway_config, is_data,
                    log_has, mqtt_section, run, session_pki, wait_sample)
from test_opcua import NS, VALUES, OpcuaServer, install_peer

INTERVAL_MS = 200


class ShiftedServer(OpcuaServer):
    """The peer with `shift` other namespaces before urn:ironbridge:test."""

    def __init__(self, dir, shift=0, port=None):
        self.shift = shift
        super().__init__(dir, port=port)

    def start(self):
        argv = ["node", str(__import__("test_opcua").PEER / "server.js"), "--port",
                str(self.port), "--pki", str(self.dir / "pki"), "--port-file",
                str(self.port_file), "--max-nodes-per-read", "5", "--ns-shift", str(self.shift)]
        self._spawn_with_port_file(argv, 240, "the OPC UA server")


def connection(server, tags, group_keys=None, **kw):
    c = {"name": "ua", "plugin": "opcua", "endpoint": server.url, "security_policy": "None",
         "security_mode": "None", "allow_insecure": True, "timeout": "10s"}
    c.update(kw)
    g = {"name": "sub", "interval_ms": INTERVAL_MS, "mode": "subscribe", "tags": tags}
    g.update(group_keys or {})
    c["devices"] = [{"name": "press", "groups": [g]}]
    return c


def good(s):
    return isinstance(s, dict) and s.get("q", "good") == "good" and "v" in s


def test_subscribe_values(d):
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        tags = [{"name": n, "node": f"ns={NS};s={n}"} for n, _ in VALUES]
        tags += [{"name": "Counter", "node": f"ns={NS};s=Counter"},
                 {"name": "Broken", "node": f"ns={NS};s=Broken"},
                 {"name": "ViaUri", "node": "nsu=urn:ironbridge:test;s=Double"}]
        gw = Gateway(gateway_config(mqtt_section(b, p), [connection(
            srv, tags, {"queue_size": 5, "sampling_interval_ms": 100})]), d)
        first = sub.wait_for(lambda m: is_data(m, "press") and
                             all(good(m.payload["values"].get(n)) for n, _ in VALUES),
                             90, "a data message with every value good")
        vals = first.payload["values"]
        errors = [f"{n}: {vals.get(n)!r}, expected {w!r}" for n, w in VALUES
                  if vals[n]["v"] != w or type(vals[n]["v"]) is not type(w)]
        check(not errors, "wrong values:\n  " + "\n  ".join(errors))
        check(vals.get("ViaUri", {}).get("v") == 3.141592653589793, f"ViaUri: {vals.get('ViaUri')}")
        br = vals.get("Broken")
        check(isinstance(br, dict) and br.get("q") in ("bad", "stale") and br.get("code") == 0x808B,
              f"Broken: {br!r}, expected bad with BadDeviceFailure")
        c0 = vals["Counter"]["v"]
        wait_sample(sub, "press", "Counter", lambda s: s.get("v", c0) > c0 + 3, 20,
                    "Counter changes pushed by the subscription")
        check(log_has(gw.log(), "subscri", "cannot") is None, "a subscription failed:\n" +
              gw.log()[-2000:])
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


ARRAYS = [("Int32Array", [1, -2, 2147483647]), ("DoubleArray", [0.5, -1.25, 1e300]),
          ("Int64Array", ["-9007199254740993", 7]), ("StringArray", ["a", "b\"c", "h\u00e9"])]


def test_arrays(d):
    """Arrays of numbers and strings as JSON arrays, equal to what the server holds, in both
    modes (read and subscribe)."""
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        tags = [{"name": n, "node": f"ns={NS};s={n}"} for n, _ in ARRAYS]
        conn = connection(srv, tags)
        conn["devices"][0]["groups"].append({"name": "polled", "interval_ms": INTERVAL_MS,
                                             "tags": [dict(t, name="r" + t["name"])
                                                      for t in tags]})
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d)
        for prefix, group in (("", "sub"), ("r", "polled")):
            m = sub.wait_for(lambda m: is_data(m, "press") and m.payload["group"] == group and
                             all(good(m.payload["values"].get(prefix + n)) for n, _ in ARRAYS),
                             90, f"group {group} with every array good")
            vals = m.payload["values"]
            errors = [f"{prefix}{n}: {vals[prefix + n]['v']!r}, expected {w!r}" for n, w in ARRAYS
                      if vals[prefix + n]["v"] != w]
            check(not errors, "wrong arrays:\n  " + "\n  ".join(errors))
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_first_read_has_values(d):
    """A single read of a subscribed group (ironbridge-plugin-test, as --once) waits for the
    new subscription's first values instead of answering "connection lost"."""
    import json
    import os
    import subprocess
    from pathlib import Path
    from ibtest import to_yaml
    install_peer()
    with OpcuaServer(d) as srv:
        tags = [{"name": "Counter", "node": f"ns={NS};s=Counter"},
                {"name": "Int32Array", "node": f"ns={NS};s=Int32Array"}]
        cfg = Path(d) / "plugin-test.yaml"
        cfg.write_text(to_yaml({"connections": [connection(srv, tags)]}) + "\n")
        so = Path(os.environ.get("IB_PLUGIN_DIR", "build/plugins")) / "opcua" / "opcua.so"
        if not so.exists():
            so = Path(os.environ.get("IB_PLUGIN_DIR", "build/plugins")) / "opcua.so"
        r = subprocess.run([os.environ.get("IB_PLUGIN_TEST", "build/tools/ironbridge-plugin-test"),
                            "--json", str(so), str(cfg)], capture_output=True, text=True,
                           timeout=120)
        check(r.returncode == 0, f"exit status {r.returncode}:\n{r.stdout}{r.stderr[-2000:]}")
        rows = {x["tag"]: x for x in map(json.loads, r.stdout.splitlines())}
        check(rows["Int32Array"].get("v") == [1, -2, 2147483647], f"rows: {rows}")


def test_subscribe_server_restart(d):
    """Killed and restarted: bad, then good again with the counter moving (the subscription
    re-created on the new session); the daemon keeps running."""
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        tags = [{"name": "Counter", "node": f"ns={NS};s=Counter"}]
        gw = Gateway(gateway_config(mqtt_section(b, p), [connection(srv, tags)]), d)
        wait_sample(sub, "press", "Counter", good, 60)
        sub.clear()
        srv.proc.kill()
        srv.proc.wait()
        wait_sample(sub, "press", "Counter", lambda s: s.get("q") == "bad", 30,
                    "Counter bad after the server was killed")
        sub.clear()
        srv.start()
        m1 = wait_sample(sub, "press", "Counter", good, 90,
                         "Counter good again after the server restarted")
        v1 = m1.payload["values"]["Counter"]["v"]
        wait_sample(sub, "press", "Counter", lambda s: good(s) and s["v"] > v1, 30,
                    "Counter moving again (the subscription resumed)")
        check(gw.running(), "the daemon stopped")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_subscribe_silent_server(d):
    """The server frozen (SIGSTOP: its socket stays open, it sends nothing, not even
    keep-alives): the subscription is found silent and created again, which fails, so the
    tags go bad rather than keep their last value unnoticed; thawed (SIGCONT): good again with
    the counter moving."""
    import signal
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        tags = [{"name": "Counter", "node": f"ns={NS};s=Counter"}]
        gw = Gateway(gateway_config(mqtt_section(b, p), [connection(srv, tags, timeout="2s")]),
                     d)
        wait_sample(sub, "press", "Counter", good, 60)
        sub.clear()  # from here on: messages after the freeze
        srv.proc.send_signal(signal.SIGSTOP)
        try:
            wait_sample(sub, "press", "Counter", lambda s: s.get("q") in ("bad", "stale"), 120,
                        "Counter bad while the server is frozen")
            check(log_has(gw.log(), "sent nothing for", "created again") is not None,
                  "the silent subscription was not reported:\n" + gw.log()[-2000:])
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        sub.clear()
        m1 = wait_sample(sub, "press", "Counter", good, 120, "Counter good after the thaw")
        v1 = m1.payload["values"]["Counter"]["v"]
        wait_sample(sub, "press", "Counter", lambda s: good(s) and s["v"] > v1, 30,
                    "Counter moving again after the thaw")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_subscribe_secured(d):
    """Subscriptions over Basic256Sha256 SignAndEncrypt with a 2 s token lifetime: the
    server's certificate trusted by the move from rejected/ to trusted/, then the counter's
    changes keep coming across several token renewals on one connection."""
    from test_opcua import wait_for_file
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        tags = [{"name": "Counter", "node": f"ns={NS};s=Counter"}]
        conn = connection(srv, tags, security_policy="Basic256Sha256",
                          security_mode="SignAndEncrypt", allow_insecure=False,
                          pki_dir=str(d / "pki"), token_lifetime="2s")
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn]), d)
        rejected = d / "pki" / "rejected"
        check(wait_for_file(rejected), "nothing was copied to rejected/:\n" + gw.log()[-2000:])
        f = next(rejected.iterdir())
        f.rename(d / "pki" / "trusted" / f.name)
        m = wait_sample(sub, "press", "Counter", good, 90, "Counter good once trusted")
        c0 = m.payload["values"]["Counter"]["v"]
        wait_sample(sub, "press", "Counter", lambda s: good(s) and s["v"] > c0 + 60, 60,
                    "Counter 6 s later, across token renewals")
        log = gw.log()
        check(log.count("[ua] connected to") == 1 and "token renewed" in log,
              "the subscription's channel was not renewed in place:\n" + log[-3000:])
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


def test_namespace_order_changes(d):
    """nsu= ids are resolved at every connect: the server restarted with urn:ironbridge:test
    at another index still gives the right node's value."""
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, ShiftedServer(d, shift=0) as srv:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        tags = [{"name": "Pi", "node": "nsu=urn:ironbridge:test;s=Double"}]
        gw = Gateway(gateway_config(mqtt_section(b, p), [connection(srv, tags)]), d)
        wait_sample(sub, "press", "Pi", lambda s: good(s) and s["v"] == 3.141592653589793, 60)
        sub.clear()
        srv.stop()
        wait_sample(sub, "press", "Pi", lambda s: s.get("q") == "bad", 30)
        sub.clear()
        srv.shift = 3
        srv.start()
        wait_sample(sub, "press", "Pi", lambda s: good(s) and s["v"] == 3.141592653589793, 90,
                    "Pi good again with the namespace at index 5")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")


if __name__ == "__main__":
    run([test_subscribe_values, test_arrays, test_first_read_has_values,
         test_subscribe_server_restart,
         test_subscribe_silent_server, test_subscribe_secured, test_namespace_order_changes])
