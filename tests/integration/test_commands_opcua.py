#!/usr/bin/python3
"""Commands from the platform (docs/commands.md) against an OPC UA device: node-opcua's server
(tests/peers/opcua) behind the OPC UA plugin, over MQTT through a real mosquitto. A write of a
writable Double lands on the server (read back by the gateway's own read "now" and by the next
poll); a node the server refuses to write answers denied (the device refused), its StatusCode
in the journal; a fraction
for an Int32 node, a value beyond write_max and a tag without writable: true are refused before
anything reaches the server; the CLI --write and --read take the same path."""

import json
import time

from ibtest import (Gateway, Mosquitto, check, gateway_config, mqtt_section, run, session_pki,
                    wait_sample)
from test_commands import ANS, GW, Client
from test_opcua import NS, OpcuaServer, install_peer

INTERVAL_MS = 300


def ua_connection(server):
    tags = [
        {"name": "Setpoint", "node": f"ns={NS};s=Setpoint", "writable": True,
         "write_min": -1000, "write_max": 1000},
        # writable here, read-only on the server: the server's refusal is the answer
        {"name": "Int32", "node": f"ns={NS};s=Int32", "writable": True},
        {"name": "Double", "node": f"ns={NS};s=Double"},  # not writable: denied by us
    ]
    return {"name": "ua", "plugin": "opcua", "endpoint": server.url, "security_policy": "None",
            "security_mode": "None", "allow_insecure": True, "timeout": "10s",
            "devices": [{"name": "press", "groups": [
                {"name": "all", "interval_ms": INTERVAL_MS, "tags": tags}]}]}


def test_commands_over_opcua(d):
    install_peer()
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, OpcuaServer(d) as srv:
        cl = Client(b, p, topic=ANS)
        text = gateway_config(mqtt_section(b, p), [ua_connection(srv)], gateway_id=GW,
                              log_level="info")
        gw = Gateway(text, d)
        wait_sample(cl.sub, "press", "Setpoint", lambda s: s.get("q", "good") == "good", 90,
                    "a good Setpoint from the OPC UA server")

        a = cl.call({"id": "ua-1", "device": "press", "write": {"Setpoint": 42.25},
                     "verify": True}, timeout=30)
        check(a["results"]["Setpoint"] == {"result": "ok", "v": 42.25}, f"write: {a}")
        a = cl.call({"id": "ua-2", "device": "press", "read": ["Setpoint"]}, timeout=30)
        check(a["results"]["Setpoint"] == {"result": "ok", "v": 42.25}, f"read now: {a}")
        wait_sample(cl.sub, "press", "Setpoint", lambda s: s.get("v") == 42.25, 20,
                    "the written Setpoint in a later poll")

        a = cl.call({"id": "ua-3", "device": "press", "write": {"Int32": 7}}, timeout=30)
        r = a["results"]["Int32"]
        check(r["result"] == "denied" and "device refused" in r.get("error", ""),
              f"a write the server refuses: {a}")
        check("BadNotWritable" in gw.log(), "the server's StatusCode is not in the journal")
        a = cl.call({"id": "ua-4", "device": "press",
                     "write": {"Int32": 1.5, "Setpoint": 5000, "Double": 1.0}}, timeout=30)
        got = {t: a["results"][t]["result"] for t in ("Int32", "Setpoint", "Double")}
        check(got == {"Int32": "bad_type", "Setpoint": "out_of_range", "Double": "denied"},
              f"refusals: {a}")
        time.sleep(2 * INTERVAL_MS / 1000)
        a = cl.call({"id": "ua-5", "device": "press", "read": ["Setpoint", "Double"]},
                    timeout=30)
        check(a["results"]["Setpoint"].get("v") == 42.25 and
              a["results"]["Double"].get("v") == 3.141592653589793,
              f"a refused write changed the server: {a}")
        log = gw.log()
        check("IB_COMMAND_ID" in log or "ua-3" in log, "the OPC UA commands are not audited")
        check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")

        # the CLI: the same checks, run in place (the daemon above is stopped)
        from ibt_gateway import _run_daemon

        def cli(*args):
            r, _ = _run_daemon(text, d, list(args), "cli", 60)
            return r.returncode, r.stdout, r.stderr
        rc, out, err = cli("--write", "press.Setpoint=-12.5")
        check(rc == 0 and json.loads(out)["results"]["Setpoint"]["result"] == "ok",
              f"--write: {rc} {out}{err[-1500:]}")
        rc, out, err = cli("--read", "press.Setpoint")
        check(rc == 0 and json.loads(out)["results"]["Setpoint"] == {"result": "ok", "v": -12.5},
              f"--read: {rc} {out}{err[-1500:]}")


if __name__ == "__main__":
    run([test_commands_over_opcua])
