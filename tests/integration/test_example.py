#!/usr/bin/python3
"""The SDK's example driver (plugins/example, docs/writing-plugins.md) against a fake line-based
instrument: through the plugin author's harness (ironbridge-plugin-test: table, JSON, exit
status, configuration errors with positions), and through the daemon to a real broker."""

import json
import os
import subprocess
from pathlib import Path

from instrument import Instrument
from ibtest import (session_pki, Gateway, Mosquitto, Subscriber, check, data_topic, gateway_config,
                    mqtt_section, note, plugin_dir, run, wait_sample)

HARNESS = os.environ.get("IB_PLUGIN_TEST", "build/tools/ironbridge-plugin-test")


def example_so():
    return str(Path(plugin_dir()) / "example" / "example.so")


def connection(port, tags, timeout="300ms"):
    return {"name": "bench", "plugin": "example", "host": "127.0.0.1", "port": port,
            "timeout": timeout,
            "devices": [{"name": "tm1", "groups": [
                {"name": "g", "interval_ms": 200, "tags": tags}]}]}


TAGS = [{"name": "temp", "query": "MEAS:TEMP?", "unit": "degC"},
        {"name": "count", "query": "MEAS:COUNT?", "type": "int"},
        {"name": "run", "query": "STAT:RUN?", "type": "bool"},
        {"name": "idn", "query": "*IDN?", "type": "string"}]


def harness(d, conns, *args):
    from ibtest import to_yaml
    cfg = Path(d) / "plugin-test.yaml"
    cfg.write_text(to_yaml({"connections": conns}) + "\n")
    r = subprocess.run([HARNESS, *args, example_so(), str(cfg)], capture_output=True, text=True,
                       timeout=60)
    return r


def test_harness_json(d):
    with Instrument() as inst:
        r = harness(d, [connection(inst.port, TAGS)], "--json", "--polls", "3", "--interval",
                    "50ms")
        check(r.returncode == 0, f"exit status {r.returncode}, expected 0:\n{r.stdout}{r.stderr}")
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        check(len(rows) == 12, f"{len(rows)} samples, expected 3 polls x 4 tags:\n{r.stdout}")
        by = {(x["poll"], x["tag"]): x for x in rows}
        check(by[(1, "temp")]["v"] == 23.5, f"temp: {by[(1, 'temp')]}")
        check([by[(p, "count")]["v"] for p in (1, 2, 3)] == [1, 2, 3],
              f"count over 3 polls: {[by[(p, 'count')] for p in (1, 2, 3)]}")
        check(by[(2, "run")]["v"] is True, f"run: {by[(2, 'run')]}")
        check(by[(3, "idn")]["v"] == "ACME,TM-1,42,1.0", f"idn: {by[(3, 'idn')]}")
        check("plugin example" in r.stderr and "ABI 1.1" in r.stderr,
              f"the harness does not name the plugin and its ABI: {r.stderr}")
        check(inst.queries.count("MEAS:TEMP?") == 3, f"queries sent: {inst.queries}")


def test_harness_bad_samples_and_table(d):
    with Instrument() as inst:
        tags = TAGS[:1] + [{"name": "nope", "query": "FOO?"}, {"name": "slow", "query": "HANG?"}]
        r = harness(d, [connection(inst.port, tags)])
        check(r.returncode == 3, f"exit status {r.returncode}, expected 3 (some bad):\n"
              f"{r.stdout}{r.stderr}")
        lines = {line.split()[2]: line for line in r.stdout.splitlines()[1:]}
        check("good" in lines["temp"] and "23.5" in lines["temp"], f"temp: {lines['temp']}")
        check("bad (exception" in lines["nope"], f"nope: {lines['nope']}")
        check("bad (timeout)" in lines["slow"], f"slow: {lines['slow']}")
        check("ERR unknown query" in r.stderr, f"the plugin's warning is not shown: {r.stderr}")


def test_harness_config_errors(d):
    with Instrument() as inst:
        c = connection(inst.port, [{"name": "t", "query": "A?", "type": "complex"}])
        c["port"] = 70000
        r = harness(d, [c])
        check(r.returncode == 1, f"exit status {r.returncode}, expected 1:\n{r.stderr}")
        check("plugin-test.yaml:" in r.stderr and "port" in r.stderr and "65535" in r.stderr,
              f"the port error lacks its position or range:\n{r.stderr}")
        check("complex" in r.stderr, f"the bad enum is not reported:\n{r.stderr}")
        note(r.stderr.strip().splitlines()[0])


def test_daemon_publishes_example(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Instrument() as inst:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        Gateway(gateway_config(mqtt_section(b, p), [connection(inst.port, TAGS)]), d)
        m = wait_sample(sub, "tm1", "temp", lambda s: s.get("v") == 23.5, 20)
        check(m.payload["values"]["idn"].get("v") == "ACME,TM-1,42,1.0",
              f"idn: {m.payload['values']['idn']}")


if __name__ == "__main__":
    run([test_harness_json, test_harness_bad_samples_and_table, test_harness_config_errors,
         test_daemon_publishes_example])
