#!/usr/bin/python3
"""Sparkplug B edge node (docs/sparkplug.md) on live traffic through a real mosquitto, checked by
a host of ours (spb_host.py, one named rule per item of the edge-node checklist): births, seq,
aliases, data, quality, Rebirth without reconnecting, NDEATH at a clean stop and as the will,
bdSeq continued across restarts, DDEATH and DBIRTH around a lost device, and a broker outage
replayed as historical metrics."""

import re
import time

from ibtest import (CuttableProxy, Gateway, Mosquitto, NotifySocket, PymodbusServer, Simulator,
                    Subscriber, check, data_topic, device, gateway_config, group, is_data,
                    modbus_client, modbus_connection, note, run, run_check, tag, to_yaml,
                    wait_until)
import spb_host
from spb_host import Host, check_all, cross_check, props, value_of

GROUP, NODE = "plant1", "test-gw"


def spb_config(port, connections, store=None, extra_north=None):
    north = {"format": "sparkplug_b", "sparkplug": {"group_id": GROUP},
             "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "allow_insecure": True,
                      "reconnect_min_ms": 200, "reconnect_max_ms": 500}}
    north.update(extra_north or {})
    cfg = {"gateway": {"id": NODE}, "log": {"level": "debug"}, "north": north,
           "store": store or {}, "connections": connections}
    return to_yaml(cfg) + "\n"


SIM_MAP = ("holding 0 uint16 - ramp 0 1 65535\n"
           "holding 1 int16 - const -7\n"
           "holding 10 float32 ABCD sine 20.0 5.0 10\n"
           "coil 0 bool - step 0 1 1\n")


def sim_devices():
    return [device("meter1", [group("fast", [tag("count", "holding", 0, "uint16"),
                                             tag("neg", "holding", 1, "int16"),
                                             tag("temp", "holding", 10, "float32", unit="degC",
                                                 range=[-20, 80])],
                                    200),
                              group("bits", [tag("run", "coil", 0)], 300)])]


def nbirths(h):
    return h.messages("NBIRTH")


def bdseq(m):
    return value_of(m.metric("bdSeq"))


def test_session_rules(d):
    """Every checklist rule on a session with a Rebirth; NDEATH at a clean stop with the
    session's bdSeq; a restart continues bdSeq; SIGKILL makes the broker deliver the will."""
    with Mosquitto(d, plain=True) as b, Simulator(SIM_MAP, d) as sim, Host(b, d) as h:
        text = spb_config(b.port, [modbus_connection("src", sim.port, sim_devices())])
        gw = Gateway(text, d)
        h.wait_for(lambda m: m.kind == "DDATA", 20, "a DDATA")
        # A metric not yet read is announced as a Double; when its first value shows another
        # type, the node is born again (docs/sparkplug.md): wait for the DBIRTH that knows all.
        dbirth = h.wait_for(lambda m: m.kind == "DBIRTH" and all(
            x.datatype != spb_host.DOUBLE for x in m.p.metrics if x.name == "bits/run"), 20,
            "a DBIRTH with every datatype")[0]
        birth = nbirths(h)[-1]
        names = {x.name: x for x in dbirth.p.metrics}
        check(set(names) == {"fast/count", "fast/neg", "fast/temp", "bits/run"},
              f"the DBIRTH's metrics are group/tag names: {sorted(names)}")
        check(names["fast/count"].datatype == spb_host.UINT64 and
              names["fast/neg"].datatype == spb_host.INT64 and
              names["bits/run"].datatype == spb_host.BOOLEAN,
              f"datatypes from the values' types: {dbirth.p}")
        tp = props(names["fast/temp"])
        check(tp.get("engUnit") and tp["engUnit"].string_value == "degC" and
              tp["engLow"].double_value == -20 and tp["engHigh"].double_value == 80,
              f"unit and range as engUnit, engLow, engHigh: {names['fast/temp']}")
        # Rebirth: a new NBIRTH with the same bdSeq, on the same connection.
        connects = b.log().count(f"as ironbridge-{NODE} ")
        h.rebirth_request(GROUP, NODE)
        n0 = len(nbirths(h))
        h.wait_for(lambda m: m.kind == "NBIRTH" and len(nbirths(h)) > n0, 10, "a new NBIRTH")
        h.wait_for(lambda m: m.kind == "DDATA" and m.time > nbirths(h)[-1].time, 10,
                   "DDATA after the rebirth")
        check(bdseq(nbirths(h)[-1]) == bdseq(birth), "Rebirth keeps bdSeq")
        check(b.log().count(f"as ironbridge-{NODE} ") == connects, "Rebirth without reconnecting")
        # Subscribed before the first birth; clean session (mosquitto's log: c1).
        log = b.log()
        sub = log.find(f"Received SUBSCRIBE from ironbridge-{NODE}")
        pub = log.find(f"Received PUBLISH from ironbridge-{NODE}")
        check(0 <= sub < pub, "rule subscribe before birth: SUBSCRIBE comes before any PUBLISH")
        check(re.search(rf"as ironbridge-{NODE} \(p\d, c1,", log),
              "rule clean session: the CONNECT has clean session set")
        check(re.search(rf"Received SUBSCRIBE from ironbridge-{NODE}\S*\n.*spBv1.0/{GROUP}/NCMD/"
                        rf"{NODE} \(QoS 1\)", log) or f"spBv1.0/{GROUP}/NCMD/{NODE} (QoS 1)" in log,
              "rule subscribe: NCMD at QoS 1")
        # Clean stop: NDEATH with this bdSeq.
        check(gw.stop() == 0, f"exit status {gw.returncode}\n{gw.log()[-2000:]}")
        death = h.wait_for(lambda m: m.kind == "NDEATH", 10, "an NDEATH at the clean stop")[-1]
        check(bdseq(death) == bdseq(birth), f"NDEATH's bdSeq {bdseq(death)} is the NBIRTH's")
        check(not death.p.HasField("seq"), "NDEATH carries no seq")
        check_all(h.messages())
        # A restart continues bdSeq; SIGKILL delivers the will, with the new bdSeq.
        n0 = len(nbirths(h))
        gw = Gateway(text, d, name="gw")
        h.wait_for(lambda m: m.kind == "NBIRTH" and len(nbirths(h)) > n0, 20, "a new NBIRTH")
        b3 = nbirths(h)[n0]
        check(bdseq(b3) == (bdseq(birth) + 1) % 256, f"bdSeq after a restart: {bdseq(b3)}")
        gw.kill()
        will = h.wait_for(lambda m: m.kind == "NDEATH" and m.time > b3.time, 20, "the will")[-1]
        check(bdseq(will) == bdseq(b3), "the will's bdSeq is the session's")
        check_all(h.messages())
        n = cross_check(h.messages())
        note(f"{len(h.messages())} messages checked, {n} metrics decoded alike by "
             f"sparkplug-payload; bdSeq {bdseq(birth)} -> {bdseq(b3)}")


def test_broker_restart(d):
    """The broker stopped and started again: the node connects again with the next bdSeq (a
    new NDEATH will), births again, and data follows; every rule holds across the restart."""
    with Mosquitto(d, plain=True) as b, Simulator(SIM_MAP, d) as sim:
        devs = [device("meter1", [group("fast", [tag("count", "holding", 0, "uint16")], 200)])]
        with Host(b, d) as h:
            gw = Gateway(spb_config(b.port, [modbus_connection("src", sim.port, devs)]), d)
            first = h.wait_for(lambda m: m.kind == "NBIRTH", 20, "an NBIRTH")[0]
        b.restart()
        with Host(b, d, client_id="ibtest-spbhost2") as h:
            h.wait_for(lambda m: m.kind in ("NBIRTH", "DDATA"), 30, "the node after the restart")
            if not h.messages("NBIRTH"):  # the node was quicker than this host: ask again
                h.rebirth_request(GROUP, NODE)
            again = h.wait_for(lambda m: m.kind == "NBIRTH", 30, "an NBIRTH after the restart")[0]
            h.wait_for(lambda m: m.kind == "DDATA", 20, "DDATA after the restart")
            check(bdseq(again) == (bdseq(first) + 1) % 256,
                  f"bdSeq {bdseq(first)} then {bdseq(again)}: it grows by one per connection")
            will = b.log()[b.log().rfind("Will message specified"):]
            check("spBv1.0/plant1/NDEATH/test-gw" in will, "the new connection's will is NDEATH")
            check(gw.stop() == 0, f"exit status {gw.returncode}")
            death = h.wait_for(lambda m: m.kind == "NDEATH", 10, "NDEATH at the stop")[0]
            check(bdseq(death) == bdseq(again), "NDEATH carries the new session's bdSeq")
            check_all(h.messages())
            cross_check(h.messages())


def test_quality_and_device_loss(d):
    """A tag the device refuses is null with Quality 0 and its reason; the device's connection
    lost gives DDEATH, its return a DBIRTH before its data."""
    with Mosquitto(d, plain=True) as b, PymodbusServer(d, holding={0: 5}, size=10) as srv, \
            Host(b, d) as h:
        proxy = CuttableProxy(srv.port)
        devs = [device("pump", [group("g", [tag("ok", "holding", 0, "uint16"),
                                           tag("refused", "holding", 50, "uint16")], 200)])]
        gw = Gateway(spb_config(b.port, [modbus_connection("src", proxy.port, devs,
                                                            timeout_ms=500)]), d)
        data = h.wait_for(lambda m: m.kind == "DDATA", 20, "a DDATA")[0]
        birth = h.messages("DBIRTH", "pump")[0]
        alias = {x.name: x.alias for x in birth.p.metrics}
        bad = [x for m in h.messages("DDATA") + [birth] for x in m.p.metrics
               if x.alias == alias["g/refused"] and x.is_null]
        check(bad, f"the refused tag is null: {data.p}")
        pr = props(bad[0])
        check(pr["Quality"].int_value == 0 and pr["reason"].string_value == "exception 2",
              f"Quality 0 with reason 'exception 2': {bad[0]}")
        proxy.cut()
        h.wait_for(lambda m: m.kind == "DDEATH" and m.device == "pump", 20, "a DDEATH")
        proxy.restore()
        t = h.messages("DDEATH")[-1].time
        h.wait_for(lambda m: m.kind == "DDATA" and m.time > t, 30, "DDATA after the return")
        check([m for m in h.messages("DBIRTH") if m.time > t], "a DBIRTH after the DDEATH")
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        check_all(h.messages())
        cross_check(h.messages())


def test_outage_historical(d):
    """The broker unreachable for 30 s: after the new births, what was collected meanwhile
    arrives as historical DDATA with its original timestamps; no seq gap; no sample lost (the
    ramp's values, one per poll, are all there)."""
    with Mosquitto(d, plain=True) as b, Simulator(SIM_MAP, d, extra=("--tick-ms", "1000")) as sim, \
            Host(b, d) as h:
        proxy = CuttableProxy(b.port)
        devs = [device("meter1", [group("fast", [tag("count", "holding", 0, "uint16")], 100)])]
        text = spb_config(proxy.port, [modbus_connection("src", sim.port, devs)],
                          store={"replay_rate": 200})
        gw = Gateway(text, d)
        h.wait_for(lambda m: m.kind == "DDATA" and len(h.messages("DDATA")) >= 5, 20, "DDATA")
        proxy.cut()
        t_cut = time.monotonic()
        time.sleep(30)
        proxy.restore()
        h.wait_for(lambda m: m.kind == "NBIRTH" and m.time > t_cut, 30, "a new NBIRTH")
        check(wait_until(lambda: any(x.is_historical for m in h.messages("DDATA")
                                     for x in m.p.metrics), 60), "no historical metric arrived")
        # Let the backlog drain, then stop cleanly.
        check(wait_until(lambda: "replay finished" in gw.log(), 90),
              f"the backlog was not replayed\n{gw.log()[-2000:]}")
        time.sleep(1)
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        check_all(h.messages())
        cross_check(h.messages())
        new_birth = [m for m in h.messages("NBIRTH") if m.time > t_cut][0]
        hist = [x for m in h.messages("DDATA") for x in m.p.metrics if x.is_historical]
        check(all(x.timestamp < new_birth.p.timestamp for x in hist),
              "historical metrics carry timestamps from before the new NBIRTH")
        # The ramp counts 0, 1, 2... once per second of the simulator's clock; every sample
        # polled is either live or historical: the values seen form no gap (the ramp's step).
        vals = sorted({value_of(x) for m in h.messages("DDATA") for x in m.p.metrics
                       if not x.is_null})
        gaps = [(a, c) for a, c in zip(vals, vals[1:]) if c - a > 1]
        check(not gaps, f"values missing across the outage: {gaps[:5]}")
        note(f"{len(hist)} historical samples; values {vals[0]}..{vals[-1]}")


def test_primary_host(d):
    """With primary_host_id: no birth until its STATE says online (an older timestamp is not
    taken); its offline makes the node send NDEATH and start over; online again: births with
    the next bdSeq."""
    with Mosquitto(d, plain=True) as b, Simulator(SIM_MAP, d) as sim, Host(b, d) as h:
        h.state("scada1", False, 1000)
        devs = [device("meter1", [group("fast", [tag("count", "holding", 0, "uint16")], 200)])]
        text = spb_config(b.port, [modbus_connection("src", sim.port, devs)])
        text = text.replace('    group_id: "plant1"\n',
                            '    group_id: "plant1"\n    primary_host_id: "scada1"\n')
        gw = Gateway(text, d)
        check(wait_until(lambda: "waiting for the primary host scada1" in gw.log(), 20),
              f"the node does not wait for the primary host\n{gw.log()[-2000:]}")
        h.state("scada1", True, 500)  # older than the offline seen: not taken
        check(wait_until(lambda: "STATE" in b.log() and b.log().count(
            "Sending PUBLISH to ironbridge-test-gw") >= 2, 10), "the node got both STATEs")
        check(not h.messages("NBIRTH"), f"births before the host is online: {h.messages()}")
        h.state("scada1", True, 2000)
        birth = h.wait_for(lambda m: m.kind == "NBIRTH", 20, "an NBIRTH once the host is online")[0]
        h.wait_for(lambda m: m.kind == "DDATA", 20, "DDATA")
        h.state("scada1", False, 3000)
        death = h.wait_for(lambda m: m.kind == "NDEATH", 20, "NDEATH when the host goes offline")[0]
        check(bdseq(death) == bdseq(birth), "NDEATH with the session's bdSeq")
        check(wait_until(lambda: gw.log().count("waiting for the primary host scada1") >= 2, 20),
              f"the node did not start over\n{gw.log()[-2000:]}")
        h.state("scada1", True, 4000)
        h.wait_for(lambda m: m.kind == "NBIRTH" and m.time > death.time, 20, "a new NBIRTH")
        again = [m for m in h.messages("NBIRTH") if m.time > death.time][0]
        check(bdseq(again) == (bdseq(birth) + 1) % 256, "the new session has the next bdSeq")
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        check_all(h.messages())


def test_dcmd_write(d):
    """A DCMD write goes through the command path to pymodbus and its result shows in the next
    DDATA; a write of a tag that is not writable is refused, logged and counted, and nothing
    reaches the device."""
    with Mosquitto(d, plain=True) as b, PymodbusServer(d, holding={0: 5, 1: 9}) as srv, \
            Host(b, d) as h:
        devs = [device("pump", [group("g", [tag("sp", "holding", 0, "uint16", writable=True),
                                           tag("ro", "holding", 1, "uint16")], 200)])]
        gw = Gateway(spb_config(b.port, [modbus_connection("src", srv.port, devs)]), d)
        birth = h.wait_for(lambda m: m.kind == "DBIRTH" and all(
            x.datatype == spb_host.UINT64 for x in m.p.metrics), 20, "a DBIRTH")[-1]
        alias = {x.name: x.alias for x in birth.p.metrics}
        h.dcmd(GROUP, NODE, "pump", [(alias["g/sp"], spb_host.UINT64, "long_value", 42)])
        h.wait_for(lambda m: m.kind == "DDATA" and any(
            x.alias == alias["g/sp"] and value_of(x) == 42 for x in m.p.metrics), 20,
            "the written value in a DDATA")
        c = modbus_client(srv.port)
        try:
            check(c.read_holding_registers(0, 1, slave=1).registers == [42],
                  "pymodbus holds the written value")
            h.dcmd(GROUP, NODE, "pump", [(alias["g/ro"], spb_host.UINT64, "long_value", 7)])
            check(wait_until(lambda: "DCMD write refused: denied" in gw.log(), 20),
                  f"the refused write is logged\n{gw.log()[-2000:]}")
            check(c.read_holding_registers(1, 1, slave=1).registers == [9],
                  "the refused write did not reach the device")
        finally:
            c.close()
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        check_all(h.messages())
        cross_check(h.messages())


def failover(d, sparkplug):
    """url's broker stopped: the gateway moves to the next of north.mqtt.servers, and the
    status line says which server it is on."""
    with Mosquitto(d / "a", plain=True) as a, Mosquitto(d / "b", plain=True) as b, \
            Simulator(SIM_MAP, d) as sim, NotifySocket(d) as ns:
        devs = [device("meter1", [group("fast", [tag("count", "holding", 0, "uint16")], 200)])]
        conns = [modbus_connection("src", sim.port, devs)]
        servers = [f"mqtt://127.0.0.1:{b.port}"]
        if sparkplug:
            text = spb_config(a.port, conns)
            text = text.replace("    allow_insecure: true\n",
                                f"    allow_insecure: true\n    servers: [{servers[0]}]\n")
            check("servers:" in text, text)
        else:
            text = gateway_config({"url": f"mqtt://127.0.0.1:{a.port}", "allow_insecure": True,
                                   "servers": servers, "reconnect_min_ms": 200,
                                   "reconnect_max_ms": 500}, conns)
        gw = Gateway(text, d, env=ns.env())
        ns.wait("STATUS", lambda v: f"broker connected to tcp://127.0.0.1:{a.port}" in v, 20,
                "connected to the first server")
        watch = Host(b, d) if sparkplug else Subscriber(b, data_topic(), insecure=True, plain=True)
        with watch:
            a.stop()
            ns.wait("STATUS", lambda v: f"broker connected to tcp://127.0.0.1:{b.port}" in v, 30,
                    "connected to the second server")
            if sparkplug:
                watch.wait_for(lambda m: m.kind == "DDATA", 20, "DDATA on the second server")
                check_all(watch.messages())
            else:
                watch.wait_for(is_data, 20, "data on the second server")
        check(gw.stop() == 0, f"exit status {gw.returncode}")


def test_failover_json(d):
    failover(d, False)


def test_failover_sparkplug(d):
    failover(d, True)


def test_config_errors(d):
    """Sparkplug settings are checked with their place named."""
    base = spb_config(1883, [])
    rc, out = run_check(base.replace('group_id: "plant1"', 'group_id: "a/b"'), d, "c1")
    check(rc != 0 and "north.sparkplug.group_id: 'a/b' is not a Sparkplug group id" in out, out)
    rc, out = run_check(base.replace('  sparkplug:\n    group_id: "plant1"\n', ""), d, "c2")
    check(rc != 0 and "format: sparkplug_b needs a sparkplug section" in out, out)
    rc, out = run_check(base.replace("allow_insecure: true", "allow_insecure: true\n    servers: "
                                     "[mqtts://x]"), d, "c3")
    check(rc != 0 and "every server must use the scheme of url" in out, out)
    # names unique without regard to case (rule 14): metrics of a device, and device ids
    dev = device("meter1", [group("fast", [tag("Temp", "holding", 0, "uint16"),
                                           tag("temp", "holding", 1, "uint16")], 200)])
    other = device("METER1", [group("fast", [tag("x", "holding", 0, "uint16")], 200)])
    rc, out = run_check(spb_config(1883, [modbus_connection("c1", 1502, [dev, other])]), d, "c4")
    check(rc != 0 and "'fast/temp' differs from 'fast/Temp' only in case" in out and
          "device id 'METER1' differs from 'meter1' only in case" in out, out)
    json_cfg = {"gateway": {"id": NODE}, "north": {"mqtt": {
        "url": "mqtt://127.0.0.1:1883", "allow_insecure": True}},
        "connections": [modbus_connection("c1", 1502, [dev])]}
    rc, out = run_check(to_yaml(json_cfg) + "\n", d, "c5")
    check("only in case" not in out, f"JSON mode refused case-only differences:\n{out}")


if __name__ == "__main__":
    run([test_session_rules, test_broker_restart, test_quality_and_device_loss, test_outage_historical,
         test_primary_host, test_dcmd_write, test_failover_json, test_failover_sparkplug, test_config_errors])
