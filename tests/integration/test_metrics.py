#!/usr/bin/python3
"""Observability (docs/observability.md): the Prometheus endpoint checked by promtool and
scraped by a real prometheus server, its figures against a subscriber's counts, a dead device
and a broker outage in the figures, `ironbridge status` healthy / degraded / down with its exit
statuses, the listener's refusals (non-loopback bind, other paths) and slow or garbage
clients."""

import json
import os
import re
import signal
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from ibtest import (session_pki, Gateway, Mosquitto, Simulator, Subscriber, check, data_topic,
                    daemon_path, device, gateway_config, group, is_data, modbus_connection,
                    mqtt_section, note, free_port, run, run_check, tag, to_yaml, wait_until)

INTERVAL_MS = 200
SIM_MAP = """\
holding 0 uint16 AB ramp 0 1 60000
holding 1 int16 AB const -5
"""
TAGS = [tag("u16", "holding", 0, "uint16"), tag("i16", "holding", 1, "int16")]


def conn(name, port, dev_name):
    return modbus_connection(name, port, [device(dev_name, [group("fast", TAGS, INTERVAL_MS)])],
                             timeout_ms=300)


def config(b, p, conns, d, metrics_port, **extra):
    metrics = {"listen": f"127.0.0.1:{metrics_port}", "status_socket": str(Path(d) / "st.sock"),
               "health_interval": "1s", **extra}
    return gateway_config(mqtt_section(b, p), conns) + to_yaml({"metrics": metrics}) + "\n"


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def series(text):
    """{ 'name{labels}': value } of an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def value(text, name, **labels):
    """The sum of `name`'s series whose labels include `labels`."""
    total, found = 0.0, False
    for k, v in series(text).items():
        m = re.match(r"([a-z_]+)(?:\{(.*)\})?$", k)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(a) == b for a, b in labels.items()):
            total += v
            found = True
    return total if found else None


def status(d, *args):
    r = subprocess.run([daemon_path(), "status", "--socket", str(Path(d) / "st.sock"), *args],
                       capture_output=True, text=True, timeout=20)
    return r.returncode, r.stdout + r.stderr


def wait_metric(port, name, pred, timeout, what, **labels):
    last = [None]

    def ok():
        try:
            last[0] = value(scrape(port), name, **labels)
        except (urllib.error.URLError, ConnectionError, OSError):
            return False
        return last[0] is not None and pred(last[0])
    check(wait_until(ok, timeout), f"{what}: {name}{labels} is {last[0]}")


def test_promtool_and_prometheus(d):
    p = session_pki()
    mport = free_port()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim:
        gw = Gateway(config(b, p, [conn("plc", sim.port, "meter1")], d, mport), d)
        wait_metric(mport, "ironbridge_north_acknowledged_total", lambda v: v >= 3, 20,
                    "records acknowledged")
        text = scrape(mport)
        for fam in ["ironbridge_polls_total", "ironbridge_poll_errors_total",
                    "ironbridge_poll_duration_seconds_bucket",
                    "ironbridge_last_good_poll_timestamp_seconds", "ironbridge_values_read_total",
                    "ironbridge_values_published_total", "ironbridge_device_up",
                    "ironbridge_store_records", "ironbridge_store_bytes",
                    "ironbridge_store_oldest_age_seconds", "ironbridge_store_appended_total",
                    "ironbridge_store_acknowledged_total", "ironbridge_store_dropped_total",
                    "ironbridge_store_damaged_total", "ironbridge_north_connected",
                    "ironbridge_north_server_info", "ironbridge_north_reconnects_total",
                    "ironbridge_north_published_total", "ironbridge_north_in_flight",
                    "ironbridge_north_puback_latency_seconds_bucket",
                    "ironbridge_uptime_seconds", "ironbridge_process_resident_memory_bytes",
                    "ironbridge_process_threads", "ironbridge_process_open_fds",
                    "ironbridge_build_info", "ironbridge_config_info",
                    "ironbridge_commands_total"]:
            check(value(text, fam) is not None, f"family {fam} missing:\n{text}")
        check(value(text, "ironbridge_commands_total", result="denied") == 0,
              f"the command path's results are not exported:\n{text}")
        check(value(text, "ironbridge_device_up", connection="plc", device="meter1",
                    reason="ok") == 1, f"meter1 not up:\n{text}")
        sha = re.search(r'ironbridge_config_info\{gateway="test-gw",sha256="([0-9a-f]{64})"\}',
                        text)
        check(sha, f"config_info without the SHA-256:\n{text}")
        promtool = shutil.which("promtool")
        check(promtool, "promtool (Debian package prometheus) is not installed")
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 0, f"promtool check metrics refused the exposition: "
              f"{r.stdout}{r.stderr}")

        # A real prometheus scrapes it; its HTTP API returns the series.
        pport = free_port()
        (Path(d) / "prom.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: ironbridge\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{mport}']\n")
        prom = subprocess.Popen(
            [shutil.which("prometheus"), f"--config.file={d}/prom.yml",
             f"--storage.tsdb.path={d}/tsdb", f"--web.listen-address=127.0.0.1:{pport}"],
            stdout=subprocess.DEVNULL, stderr=open(Path(d) / "prom.log", "wb"))
        try:
            q = urllib.parse.quote('ironbridge_device_up{device="meter1",reason="ok"}')
            got = [None]

            def queried():
                try:
                    with urllib.request.urlopen(
                            f"http://127.0.0.1:{pport}/api/v1/query?query={q}", timeout=5) as r:
                        got[0] = json.load(r)
                except (urllib.error.URLError, ConnectionError, OSError):
                    return False
                return bool(got[0]["data"]["result"])
            check(wait_until(queried, 60, 0.5),
                  f"prometheus never returned the series: {got[0]}\n"
                  f"{(Path(d) / 'prom.log').read_text()[-2000:]}")
            r0 = got[0]["data"]["result"][0]
            check(r0["metric"].get("connection") == "plc" and r0["value"][1] == "1",
                  f"prometheus' answer: {r0}")
            # Every query of the shipped Grafana dashboard is valid PromQL over families the
            # daemon exports.
            dash = json.loads((ROOT / "conf/examples/grafana-dashboard.json").read_text())
            names = set(re.findall(r"^([a-z_]+?)(?:_bucket|_sum|_count)?(?:\{| )", text, re.M))
            for panel in dash["panels"]:
                for t in panel["targets"]:
                    expr = t["expr"].replace("$instance", ".*")
                    for fam in re.findall(r"\b(ironbridge_[a-z_]+)", expr):
                        check(fam in names or fam.removesuffix("_bucket") in names,
                              f"dashboard panel {panel['title']!r} uses {fam}, not exported")
                    with urllib.request.urlopen(f"http://127.0.0.1:{pport}/api/v1/query?query="
                                                f"{urllib.parse.quote(expr)}", timeout=10) as r:
                        ans = json.load(r)
                    check(ans.get("status") == "success",
                          f"dashboard panel {panel['title']!r}: {expr}: {ans}")
        finally:
            prom.terminate()
            prom.wait(10)
        check(gw.stop() == 0, f"exit status {gw.returncode}")


def test_figures_agree_with_subscriber(d):
    p = session_pki()
    mport = free_port()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim:
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        gw = Gateway(config(b, p, [conn("plc", sim.port, "meter1")], d, mport), d)
        wait_metric(mport, "ironbridge_north_acknowledged_total", lambda v: v >= 10, 30,
                    "records acknowledged")
        s1 = scrape(mport)
        acked1 = value(s1, "ironbridge_north_acknowledged_total")
        pub1 = value(s1, "ironbridge_values_published_total", device="meter1")

        def data():
            return [m for m in sub.messages() if is_data(m, "meter1")]
        # Every record acknowledged by the first scrape reaches the subscriber...
        check(wait_until(lambda: len(data()) >= acked1, 20),
              f"the subscriber got {len(data())} records; the scrape said {acked1} acknowledged")
        check(wait_until(lambda: sum(len(m.payload["values"]) for m in data()) >= pub1, 20),
              f"the subscriber counted fewer values than the scrape's {pub1} published")
        # ... and it never counts more than the next scrape says was published.
        got = data()
        n_recs, n_vals = len(got), sum(len(m.payload["values"]) for m in got)
        s2 = scrape(mport)
        check(n_recs <= value(s2, "ironbridge_north_published_total"),
              f"subscriber {n_recs} records > published {value(s2, 'ironbridge_north_published_total')}")
        check(n_vals <= value(s2, "ironbridge_values_published_total", device="meter1"),
              f"subscriber {n_vals} values > values_published of the next scrape")
        note(f"scrape 1: {acked1:.0f} acknowledged, {pub1:.0f} values; subscriber later "
             f"{n_recs} records, {n_vals} values; scrape 2: "
             f"{value(s2, 'ironbridge_north_published_total'):.0f} published")

        # The health message: retained JSON with the same figures.
        health = [m for m in sub.messages() if m.topic.endswith("/health")]
        hs = Subscriber(b, "ironbridge/test-gw/health", cafile=p.ca)
        check(wait_until(lambda: hs.messages(), 15), "no retained health message")
        h = hs.messages()[0].payload
        check(h["health"] == "healthy" and h["devices"][0]["device"] == "meter1",
              f"health message: {h}")
        check(h["north"]["acknowledged"] >= 1 and "records" in h["store"], f"health: {h}")
        del health

        # A reload that restarts the connection's poller (its interval changed) and moves the
        # listener: the counters go on from where they were, on the new port.
        polls = value(scrape(mport), "ironbridge_polls_total", device="meter1")
        mport2 = free_port()
        gw.config.write_text(config(b, p, [conn("plc", sim.port, "meter1")], d, mport2)
                             .replace(f"interval_ms: {INTERVAL_MS}", "interval_ms: 300"))
        os.kill(gw.proc.pid, signal.SIGHUP)
        check(wait_until(lambda: _answers(mport2), 20), "the listener did not move on reload")
        after = value(scrape(mport2), "ironbridge_polls_total", device="meter1")
        check(after >= polls, f"polls went back across the reload: {polls} -> {after}")
        check(re.search(r"1 restarted", gw.log()), f"the poller was not restarted:\n{gw.log()}")
        check(gw.stop() == 0, f"exit status {gw.returncode}")


def test_dead_device_and_status(d):
    p = session_pki()
    mport = free_port()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim, \
            Simulator(SIM_MAP, d, name="sim2") as sim2:
        port2 = sim2.port
        gw = Gateway(config(b, p, [conn("plc", sim.port, "meter1"),
                                   conn("plc2", port2, "meter2")], d, mport), d)
        check(wait_until(lambda: status(d)[0] == 0, 20), f"never healthy: {status(d)}")
        rc, out = status(d)
        check("meter1" in out and "meter2" in out and "broker: connected" in out,
              f"healthy status text:\n{out}")
        rc, out = status(d, "--json")
        doc = json.loads(out)
        check(rc == 0 and doc["health"] == "healthy" and len(doc["devices"]) == 2,
              f"status --json: {rc} {out}")

        sim2.stop()
        t0 = time.monotonic()
        wait_metric(mport, "ironbridge_device_up", lambda v: v == 0, 20,
                    "the killed device is not down", device="meter2", reason="connection_lost")
        note(f"killed device down in the metrics after {time.monotonic() - t0:.2f} s "
             f"(poll interval {INTERVAL_MS} ms)")
        rc, out = status(d)
        check(rc == 1 and re.search(r"meter2\s+DOWN.*connection_lost", out),
              f"degraded: exit {rc}, text:\n{out}")

        sim2 = Simulator(SIM_MAP, d, name="sim2b", extra=("--port", str(port2)))
        wait_metric(mport, "ironbridge_device_up", lambda v: v == 1, 40,
                    "the device did not come back up", device="meter2", reason="ok")
        check(wait_until(lambda: status(d)[0] == 0, 20), f"not healthy again: {status(d)}")
        sim2.stop()
        check(gw.stop() == 0, f"exit status {gw.returncode}")
    rc, out = status(d)
    check(rc == 4 and "cannot reach the daemon" in out, f"no daemon: exit {rc}: {out}")
    r = subprocess.run([daemon_path(), "--json"], capture_output=True, text=True, timeout=20)
    check(r.returncode == 2 and "go with status" in r.stderr,
          f"--json without status: exit {r.returncode}: {r.stderr}")


def test_broker_outage(d):
    p = session_pki()
    mport = free_port()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim:
        gw = Gateway(config(b, p, [conn("plc", sim.port, "meter1")], d, mport), d)
        wait_metric(mport, "ironbridge_north_connected", lambda v: v == 1, 20, "never connected")
        b.stop()
        wait_metric(mport, "ironbridge_north_connected", lambda v: v == 0, 30,
                    "the outage is not shown")
        wait_metric(mport, "ironbridge_store_records", lambda v: v >= 10, 30,
                    "the backlog does not grow")
        rc, out = status(d)
        check(rc == 2 and "broker: NOT CONNECTED" in out and "not connected" in out,
              f"down: exit {rc}, text:\n{out}")
        text = scrape(mport)
        check(value(text, "ironbridge_store_oldest_age_seconds") > 0, f"oldest age 0:\n{text}")
        b.start()
        wait_metric(mport, "ironbridge_north_reconnects_total", lambda v: v >= 1, 60,
                    "no reconnect counted")
        wait_metric(mport, "ironbridge_store_records", lambda v: v < 10, 60,
                    "the backlog does not drain")
        check(gw.stop() == 0, f"exit status {gw.returncode}")


def test_listener_refusals_and_clients(d):
    p = session_pki()
    mport = free_port()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim:
        conns = [conn("plc", sim.port, "meter1")]
        rc, out = run_check(config(b, p, conns, d, mport).replace("127.0.0.1:", "0.0.0.0:"), d)
        check(rc == 1 and "not a loopback address" in out and "allow_remote" in out,
              f"a non-loopback listen address: exit {rc}:\n{out}")
        rc, out = run_check(config(b, p, conns, d, mport, allow_remote=True)
                            .replace("127.0.0.1:", "0.0.0.0:"), d, name="check2")
        check(rc == 0, f"allow_remote: true: exit {rc}:\n{out}")

        gw = Gateway(config(b, p, conns, d, mport), d)
        check(wait_until(lambda: _answers(mport), 20), "the listener never answered")
        for path in ["/", "/metrics/", "/status", "/metricsx"]:
            try:
                scrape(mport, path)
                check(False, f"{path} answered 200")
            except urllib.error.HTTPError as e:
                check(e.code == 404, f"{path}: HTTP {e.code}, expected 404")
        req = urllib.request.Request(f"http://127.0.0.1:{mport}/metrics", data=b"x",
                                     method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            check(False, "POST answered 200")
        except urllib.error.HTTPError as e:
            check(e.code == 405, f"POST: HTTP {e.code}, expected 405")

        # Slow and garbage clients hold their sockets open; scrapes and the daemon go on.
        held = []
        for i in range(4):
            s = socket.create_connection(("127.0.0.1", mport))
            s.sendall(b"GET /metr" if i % 2 else b"\x00\xff garbage \r\n\r\n" * 10)
            held.append(s)
        polls0 = value(scrape(mport), "ironbridge_polls_total")
        check(wait_until(lambda: value(scrape(mport), "ironbridge_polls_total") > polls0 + 3, 20),
              "polls stopped while slow clients held connections")
        for s in held:
            s.close()
        check(gw.running(), "the daemon exited")
        check(gw.stop() == 0, f"exit status {gw.returncode}")


def test_https_and_basic_auth(d):
    """tls_cert/tls_key serve HTTPS (the test CA verifies it); basic_auth_file's user:password
    is required (401 without, with a wrong one); the password never reaches the log."""
    import base64
    import ssl
    p = session_pki()
    mport = free_port()
    auth = Path(d) / "metrics.auth"
    auth.write_text("prometheus:s3cret-Pa55\n")
    auth.chmod(0o600)
    key = Path(d) / "metrics.key"
    key.write_bytes(Path(p.server_key).read_bytes())
    key.chmod(0o600)
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim:
        gw = Gateway(config(b, p, [conn("plc", sim.port, "meter1")], d, mport,
                            tls_cert=str(p.server), tls_key=str(key),
                            basic_auth_file=str(auth)), d)
        ctx = ssl.create_default_context(cafile=str(p.ca))
        url = f"https://localhost:{mport}/metrics"

        def get(user=None, pw=None):
            req = urllib.request.Request(url)
            if user:
                tok = base64.b64encode(f"{user}:{pw}".encode()).decode()
                req.add_header("Authorization", f"Basic {tok}")
            try:
                with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, ""
            except (urllib.error.URLError, ConnectionError, OSError):
                return None, ""
        check(wait_until(lambda: get()[0] is not None, 20), "the HTTPS listener never answered")
        check(get()[0] == 401, f"no credentials: {get()[0]}, expected 401")
        check(get("prometheus", "wrong")[0] == 401, "a wrong password was let in")
        st, body = get("prometheus", "s3cret-Pa55")
        check(st == 200 and "ironbridge_polls_total" in body, f"with credentials: {st}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5)
            check(False, "plain HTTP answered on the HTTPS listener")
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        check("s3cret" not in gw.log(), "the password is in the log")
        check(gw.stop() == 0, f"exit status {gw.returncode}")


def _maps(gw):
    try:
        return Path(f"/proc/{gw.proc.pid}/maps").read_text()
    except OSError:
        return ""


def test_http_module_only_with_listener(d):
    """libmicrohttpd and GnuTLS (about 2.8 MB resident) are loaded, through the private module
    metrics-http.so, only when metrics.listen is set (issue 21)."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(SIM_MAP, d) as sim:
        gw = Gateway(gateway_config(mqtt_section(b, p), [conn("plc", sim.port, "meter1")]), d)
        check(wait_until(lambda: "modbus.so" in _maps(gw), 20), "the gateway never started")
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        check(wait_until(lambda: len(sub.messages()) > 0, 20), "no data published")
        sub.stop()
        maps = _maps(gw)
        check("libmicrohttpd" not in maps and "libgnutls" not in maps
              and "metrics-http.so" not in maps,
              "the HTTP module is loaded without metrics.listen")
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        mport = free_port()
        gw = Gateway(config(b, p, [conn("plc", sim.port, "meter1")], d, mport), d)
        check(wait_until(lambda: _answers(mport), 20), "the listener never answered")
        maps = _maps(gw)
        check("metrics-http.so" in maps and "libmicrohttpd" in maps,
              "the listener answers without the HTTP module?")
        check(gw.stop() == 0, f"exit status {gw.returncode}")
    note("libmicrohttpd and GnuTLS mapped only with metrics.listen")


def _answers(port):
    try:
        scrape(port)
        return True
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


if __name__ == "__main__":
    run([test_promtool_and_prometheus, test_figures_agree_with_subscriber,
         test_dead_device_and_status, test_broker_outage, test_listener_refusals_and_clients,
         test_https_and_basic_auth, test_http_module_only_with_listener])
