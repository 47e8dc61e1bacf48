#!/usr/bin/python3
"""Hot reload and the config-status topic: an unchanged connection keeps polling with no missed
poll while another is changed and a third added; an invalid tree leaves the old one running and
is reported (log and retained config status, with file:line:column); a north change reconnects;
the backlog survives a reload; config.watch applies a renamed-into-place file by itself."""

import os
import re
import signal
import subprocess
import time

from ibtest import (session_pki, CuttableProxy, Gateway, Mosquitto, Simulator, Subscriber, check,
                    device, gateway_config, group, is_data, modbus_connection, mqtt_section, note,
                    run, tag, to_yaml, wait_until, daemon_path)

MAP = "holding 0 uint16 - ramp 0 1 60000\nholding 1 uint16 - const 7\n"
INTERVAL = 200


def conn(name, port, dev, tags=("a",)):
    ts = [tag(t, "holding", i, "uint16") for i, t in enumerate(tags)]
    return modbus_connection(name, port, [device(dev, [group("g", ts, INTERVAL)])])


def config(mqtt, conns, extra=None):
    text = gateway_config(mqtt, conns, log_level="info")
    if extra:
        text += to_yaml(extra) + "\n"
    return text


def ts_of(sub, dev):
    return [m.payload["ts"] for m in sub.messages() if is_data(m, dev)]


def seqs(sub):
    return [m.payload["seq"] for m in sub.messages() if is_data(m)]


def config_status(sub):
    st = [m.payload for m in sub.messages() if m.topic == "ironbridge/test-gw/config"]
    return st[-1] if st else None


def hup(gw):
    os.kill(gw.proc.pid, signal.SIGHUP)


def test_reload_keeps_unchanged_connections(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(MAP, d) as sim:
        sub = Subscriber(b, "ironbridge/#", cafile=p.ca)
        m = mqtt_section(b, p)
        gw = Gateway(config(m, [conn("keep", sim.port, "dk"), conn("change", sim.port, "dc")]), d)
        check(wait_until(lambda: len(ts_of(sub, "dk")) >= 10 and config_status(sub), 20),
              f"no data or config status before the reload\n{gw.log()[-2000:]}")
        first = config_status(sub)
        gw.config.write_text(config(m, [conn("keep", sim.port, "dk"),
                                             conn("change", sim.port, "dc", ("a", "b")),
                                             conn("added", sim.port, "da")]))
        t_reload = time.time() * 1000
        hup(gw)
        check(wait_until(lambda: len(ts_of(sub, "da")) >= 5, 20),
              f"the added connection does not deliver\n{gw.log()[-2000:]}")
        time.sleep(1)
        line = [x for x in gw.log().splitlines() if "configuration applied" in x]
        check(line and "1 kept running, 1 restarted, 1 added, 0 removed" in line[-1] and
              "north unchanged" in line[-1], f"reload summary: {line}")
        ks = ts_of(sub, "dk")
        around = [(a, c) for a, c in zip(ks, ks[1:]) if c > t_reload - 2000 and a < t_reload + 2000]
        gaps = [c - a for a, c in around]
        check(gaps and max(gaps) < 1.95 * INTERVAL,
              f"the unchanged connection missed a poll across the reload: gaps {gaps} ms")
        dc = [m.payload for m in sub.messages() if is_data(m, "dc")]
        check("b" in dc[-1]["values"], f"the changed connection does not have its new tag: {dc[-1]}")
        st = config_status(sub)
        check(st["result"] == "applied" and st["hash"] != first["hash"] and
              st["applied_at"] > first["applied_at"], f"config status after reload: {st}")
        out = subprocess.run([daemon_path(), "--check", "-c", str(gw.config)],
                             capture_output=True, text=True).stdout
        check(st["hash"] in out, f"--check hash differs from the applied one: {out} / {st}")
        note(f"unchanged connection across the reload: poll gaps {gaps} ms (interval {INTERVAL})")
        s = seqs(sub)
        check(sorted(set(s)) == list(range(min(s), max(s) + 1)), "gap in seq across the reload")


def test_invalid_reload_keeps_running(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(MAP, d) as sim:
        sub = Subscriber(b, "ironbridge/#", cafile=p.ca)
        m = mqtt_section(b, p)
        good = config(m, [conn("c1", sim.port, "d1")])
        gw = Gateway(good, d)
        check(wait_until(lambda: config_status(sub) is not None, 20), "no config status")
        bad = good.replace("interval_ms:", "intervall_ms:", 1)
        gw.config.write_text(bad)
        n_before = len(ts_of(sub, "d1"))
        hup(gw)
        check(wait_until(lambda: (config_status(sub) or {}).get("result") == "rejected", 15),
              f"no rejected config status\n{gw.log()[-2000:]}")
        st = config_status(sub)
        check(any(re.search(r"gw\.yaml:\d+:\d+: .*intervall_ms: unknown key", e)
                  for e in st["errors"]), f"errors lack the position: {st['errors']}")
        check(gw.running(), "the daemon exited on an invalid reload")
        check(wait_until(lambda: len(ts_of(sub, "d1")) > n_before + 5, 10),
              "the old configuration stopped delivering after a rejected reload")
        check(re.search(r"reload rejected \(SIGHUP\): 1 configuration error", gw.log()),
              f"no 'reload rejected' in the log\n{gw.log()[-1500:]}")


def test_north_change_reconnects_and_backlog_survives(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(MAP, d) as sim:
        proxy = CuttableProxy(b.port)
        try:
            sub = Subscriber(b, "ironbridge/#", cafile=p.ca)
            m = mqtt_section(b, p, url=f"mqtts://localhost:{proxy.port}", ca=p.ca)
            m["reconnect_min_ms"] = 200
            m["reconnect_max_ms"] = 500
            gw = Gateway(config(m, [conn("c1", sim.port, "d1")]), d)
            check(wait_until(lambda: len(seqs(sub)) >= 5, 20), "no data")
            proxy.cut()
            time.sleep(2)  # records queue while the broker is unreachable
            m["keepalive_s"] = 20  # a north change
            gw.config.write_text(config(m, [conn("c1", sim.port, "d1")]))
            hup(gw)
            check(wait_until(lambda: "north reconnected" in gw.log(), 10),
                  f"the north change did not reconnect\n{gw.log()[-1500:]}")
            proxy.restore()
            cut_at = max(seqs(sub))
            check(wait_until(lambda: max(seqs(sub)) > cut_at + 20, 20),
                  f"delivery did not resume\n{gw.log()[-1500:]}")
            gw.stop()
            s = seqs(sub)
            missing = sorted(set(range(min(s), max(s) + 1)) - set(s))
            check(not missing, f"records lost across the outage and reload: {missing[:10]}")
        finally:
            proxy.close()


def test_watch_applies_renamed_file(d):
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(MAP, d) as sim:
        sub = Subscriber(b, "ironbridge/#", cafile=p.ca)
        m = mqtt_section(b, p)
        watch = {"config": {"watch": True, "watch_delay": "200ms"}}
        gw = Gateway(config(m, [conn("c1", sim.port, "d1")], watch), d)
        check(wait_until(lambda: len(ts_of(sub, "d1")) >= 3, 20), "no data")
        dropins = gw.config.parent / "conf.d"
        dropins.mkdir(exist_ok=True)
        tmp = dropins / ".50-more.yaml.tmp"
        tmp.write_text(to_yaml({"connections": [conn("c2", sim.port, "d2")]}) + "\n")
        os.rename(tmp, dropins / "50-more.yaml")
        check(wait_until(lambda: len(ts_of(sub, "d2")) >= 3, 15),
              f"the drop-in was not applied by the watch\n{gw.log()[-2000:]}")
        check("the configuration files changed" in gw.log(), "no watch reload in the log")
        st = config_status(sub)
        check(st and st["files"] == 2 and st["result"] == "applied", f"config status {st}")


def test_check_stops_on_ctrl_c(d):
    """`ironbridge --check` reading a file that never ends (here a FIFO nobody writes) stops
    at SIGINT and at SIGTERM: the signals are blocked only once the daemon runs."""
    fifo = d / "slow.yaml"
    os.mkfifo(fifo)
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen([daemon_path(), "--check", "-c", str(fifo)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            check(proc.poll() is None, f"--check of a FIFO ended by itself ({proc.returncode})")
            proc.send_signal(sig)
            try:
                rc = proc.wait(10)
            except subprocess.TimeoutExpired:
                rc = None
            check(rc is not None, f"--check ignored {sig.name} for 10 s")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    run([test_check_stops_on_ctrl_c, test_reload_keeps_unchanged_connections, test_invalid_reload_keeps_running,
         test_north_change_reconnects_and_backlog_survives, test_watch_applies_renamed_file])
