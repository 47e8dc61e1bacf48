#!/usr/bin/python3
"""The durable store with a real mosquitto: a gateway killed with SIGKILL during a broker outage
loses nothing; damaged segment files are cut back, counted and the rest delivered; a full store
drops the oldest records, counts them and keeps its memory flat; a full disk keeps polling going
and the store recovers by itself. The 60 s broker outage is in test_store_outage.py."""

import os
import re
import struct
import subprocess
import time
from pathlib import Path

from ibtest import (session_pki, CuttableProxy, Failure, Gateway, Mosquitto, NotifySocket,
                    Simulator, Subscriber, check, data_topic, device, group, is_data,
                    modbus_connection, mqtt_section, note, run, run_check, tag, to_yaml,
                    wait_until)


def sim_map(n_regs):
    return "".join(f"holding {i} uint16 - random 0 65535\n" for i in range(n_regs))


def store_config(sim_port, mqtt, devices=1, groups=2, tags=10, interval_ms=50, store=None):
    devs = [device(f"dev{d + 1}",
                   [group(f"g{g}", [tag(f"t{g}_{t}", "holding", g * tags + t, "uint16")
                                    for t in range(tags)], interval_ms)
                    for g in range(groups)], unit_id=d + 1)
            for d in range(devices)]
    cfg = {"gateway": {"id": "test-gw"}, "log": {"level": "info"}, "north": {"mqtt": mqtt},
           "store": store or {}, "connections": [modbus_connection("src", sim_port, devs)]}
    return to_yaml(cfg) + "\n"


def proxied_mqtt(proxy, pki):
    m = mqtt_section(url=f"mqtts://localhost:{proxy.port}", ca=pki.ca, qos=1)
    m.update(reconnect_min_ms=200, reconnect_max_ms=1000, flush_timeout_ms=2000)
    return m


def received(sub):
    """{seq: payload text} of the data messages; fails if one seq came with two payloads (a
    sequence number reused for other data)."""
    out = {}
    for m in sub.messages():
        if not is_data(m):
            continue
        seq = m.payload["seq"]
        check(out.get(seq, m.text) == m.text,
              f"seq {seq} arrived with two different payloads (a reused number):\n"
              f"  {out.get(seq)}\n  {m.text}")
        out[seq] = m.text
    return out


def missing(seqs, lo, hi):
    return sorted(set(range(lo, hi + 1)) - set(seqs))


def continue_at(gw):
    """The N of 'sequence numbers continue at N' in the gateway's log, or None."""
    m = re.search(r"sequence numbers continue at (\d+)", gw.log())
    return int(m.group(1)) if m else None


def start_gateway(text, d, name, ns, state=None, asan=()):
    """A gateway reporting to notify socket ns; runs given the same state share one store.
    Under AddressSanitizer freed memory is not reused while in quarantine, which would make RSS
    grow with every reconnect attempt: the quarantine is off so that RSS means what it means."""
    env = dict(ns.env())
    env["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                 "quarantine_size_mb=0",
                                                 "thread_local_quarantine_size_kb=0",
                                                 *asan]))
    if state is not None:
        env["STATE_DIRECTORY"] = str(state)
    gw = Gateway(text, d, name=name, env=env)
    check(wait_until(lambda: continue_at(gw) or not gw.running(), 15) and gw.running(),
          f"{name} did not open its store\n{gw.log()[-2000:]}")
    return gw


def status(ns):
    """The last STATUS= line of the daemon (systemctl status shows it)."""
    v = ns.values("STATUS")
    return v[-1][1] if v else None


def wait_status(ns, pred, timeout, what):
    """Waits until the latest STATUS= line satisfies pred; returns it."""
    got = wait_until(lambda: (lambda s: s if s and pred(s) else None)(status(ns)), timeout)
    check(got is not None, f"no status line with {what} within {timeout}s; last: {status(ns)!r}")
    return got


def status_number(line, word):
    m = re.search(r"(\d+) " + word, line or "")
    return int(m.group(1)) if m else None


# ---- the on-disk format (docs/store.md) ---------------------------------------------------

def segment_files(queue):
    return sorted(Path(queue).glob("seg-*.ibq"))


def frames(path):
    """[(offset, frame length, seq)] of a segment file, read with the documented framing."""
    data = Path(path).read_bytes()
    check(data[:8] == b"IBQSEG01", f"{path}: no segment header")
    out, off = [], 32
    while off + 8 <= len(data):
        crc, length = struct.unpack_from("<II", data, off)
        seq = struct.unpack_from("<Q", data, off + 8)[0]
        out.append((off, 8 + length, seq))
        off += 8 + length
    return out


# ---- tests ----------------------------------------------------------------------------------

def test_sigkill_during_outage(d):
    """SIGKILL twice during a broker outage (fsync batch, then always): every sequence number
    arrives once the broker is reachable, and no number is reused."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(sim_map(20), d) as sim, \
            NotifySocket(d) as ns:
        proxy = CuttableProxy(b.port)
        sub = Subscriber(b, data_topic(), cafile=p.ca)
        m = proxied_mqtt(proxy, p)
        state = d / "state"

        def start(name, fsync):
            return start_gateway(store_config(sim.port, m, store={"fsync": fsync}), d, name, ns,
                                 state)

        gw = start("gw1", "batch")
        check(wait_until(lambda: len(received(sub)) >= 10, 20),
              f"no data before the outage\n{gw.log()[-2000:]}")
        proxy.cut()
        time.sleep(1.5)
        gw.kill()
        gw2 = start("gw2", "always")
        time.sleep(1.5)
        gw2.kill()
        gw3 = start("gw3", "batch")
        at = [continue_at(gw2), continue_at(gw3)]
        proxy.restore()
        check(wait_until(lambda: len(received(sub)) > at[-1] + 20, 30),
              f"delivery did not resume: {len(received(sub))} records\n{gw3.log()[-3000:]}")
        check(gw3.stop() == 0, f"exit status {gw3.returncode}")
        got = received(sub)
        lost = missing(got, 1, max(got))
        check(not lost, f"{len(lost)} sequence numbers lost across two SIGKILLs, e.g. {lost[:10]}"
              f" (runs continued at {at})")
        check(1 < at[0] < at[1], f"numbers did not continue: {at}")
        note(f"seq 1..{max(got)} all arrived; the runs after SIGKILL continued at {at} "
             f"(killed with fsync batch, then with fsync always)")
        proxy.close()


def test_damaged_segments(d):
    """A segment's tail truncated and a byte of another flipped while the gateway is down: it
    starts, says how many records it discarded, and delivers exactly the others."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(sim_map(20), d) as sim, \
            NotifySocket(d) as ns:
        proxy = CuttableProxy(b.port, up=False)
        m = proxied_mqtt(proxy, p)
        text = store_config(sim.port, m, groups=2, interval_ms=20, store={"max_bytes": "1MiB"})
        state = d / "state"
        gw = start_gateway(text, d, "gw1", ns, state)
        queue = state / "queue"
        check(wait_until(lambda: len(segment_files(queue)) >= 5, 30),
              f"the store did not reach 5 segments\n{gw.log()[-2000:]}")
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        segs = segment_files(queue)
        all_frames = [frames(s) for s in segs]
        stored = [f[2] for fs in all_frames for f in fs]
        check(stored == list(range(1, len(stored) + 1)),
              f"the store does not hold 1..{len(stored)} in order before the damage")
        # Cut the second file in the middle of its tenth-last record.
        cut = all_frames[1][-10]
        lost = {f[2] for f in all_frames[1][-10:]}
        os.truncate(segs[1], cut[0] + 13)
        # Flip one byte in the payload of the fifth record of the third file.
        off, length, seq = all_frames[2][4]
        with open(segs[2], "r+b") as f:
            f.seek(off + length - 5)
            c = f.read(1)
            f.seek(off + length - 5)
            f.write(bytes([c[0] ^ 0x01]))
        lost.add(seq)

        sub = Subscriber(b, data_topic(), cafile=p.ca)
        gw = start_gateway(text, d, "gw2", ns, state)
        proxy.restore()
        want = set(stored) - lost
        check(wait_until(lambda: want <= set(received(sub)), 30),
              f"not delivered: {sorted(want - set(received(sub)))[:10]}...\n{gw.log()[-3000:]}")
        line = re.search(r"discarded (\d+) damaged records", gw.log())
        check(line and int(line.group(1)) == len(lost),
              f"the gateway should report {len(lost)} discarded records; its log says: "
              f"{line.group(0) if line else 'nothing'}")
        st = wait_status(ns, lambda s: "damaged" in s, 5, "the damaged count")
        check(status_number(st, "damaged") == len(lost), f"status: {st}")
        got = set(received(sub))
        check(not (got & lost), f"damaged records were sent: {sorted(got & lost)}")
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        note(f"{len(stored)} records in {len(segs)} files; {len(lost)} discarded (reported: "
             f"'{line.group(0)}'), the other {len(want)} delivered; status '{st}'")
        proxy.close()


def test_store_full_drops_oldest(d):
    """A 1 MiB store during a long outage at ~2 MB/s: the oldest records go, every one counted
    and reported, the rest delivered without a gap, and the daemon's memory stays flat."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(sim_map(480), d) as sim, \
            NotifySocket(d) as ns:
        proxy = CuttableProxy(b.port, up=False)
        m = proxied_mqtt(proxy, p)
        text = store_config(sim.port, m, groups=4, tags=120, interval_ms=10,
                            store={"max_bytes": "1MiB"})
        gw = start_gateway(text, d, "gw", ns)
        wait_status(ns, lambda s: (status_number(s, "dropped") or 0) > 0, 20, "dropped records")
        time.sleep(1)
        rss1 = gw.rss_kib()
        t1 = time.monotonic()
        time.sleep(6)
        rss2 = gw.rss_kib()
        dt = time.monotonic() - t1
        written = status_number(status(ns), "dropped")
        check(rss2 - rss1 < 1024, f"RSS grew from {rss1} to {rss2} KiB during the outage")
        drops = [l for l in gw.log().splitlines() if "dropping the oldest records" in l]
        check(len(drops) == 1, f"the full store was logged {len(drops)} times:\n" +
              "\n".join(drops[:5]))
        queue = gw.state_dir / "queue"
        size = sum(f.stat().st_size for f in queue.iterdir())
        check(size <= 1 << 20, f"the store holds {size} bytes, more than max_bytes 1 MiB")

        sub = Subscriber(b, data_topic(), cafile=p.ca)
        proxy.restore()
        check(wait_until(lambda: "replay finished" in gw.log(), 30),
              f"the backlog was not replayed\n{gw.log()[-3000:]}")
        time.sleep(1.5)
        dropped = status_number(status(ns), "dropped")
        check(gw.stop() == 0, f"exit status {gw.returncode}")
        got = received(sub)
        lo, hi = min(got), max(got)
        gap = missing(got, lo, hi)
        check(not gap, f"{len(gap)} records missing after the oldest were dropped, e.g. {gap[:10]}")
        check(dropped == lo - 1, f"status says {dropped} dropped, but the first record delivered "
              f"is {lo} (1..{lo - 1} dropped)")
        note(f"RSS {rss1} KiB when the store was full, {rss2} KiB {dt:.0f} s "
             f"later ({written} dropped by then); {dropped} dropped in all, seq {lo}..{hi} "
             f"delivered without a gap; store {size} bytes on disk")
        proxy.close()


def mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                        str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"prerequisite missing: this test mounts a small tmpfs as the store's file "
                      f"system and needs root: mount failed: {r.stderr.strip()}")


def recover_and_deliver(gw, broker, pki, proxy, what):
    """After a disk fault was cleared: the store writes to disk again, then the broker becomes
    reachable and every record from seq 1 on arrives. Returns the highest seq."""
    check(wait_until(lambda: re.search(r"store: writing to .* again after", gw.log()), 10),
          f"the store did not recover after {what}\n{gw.log()[-2000:]}")
    sub = Subscriber(broker, data_topic(), cafile=pki.ca)
    proxy.restore()
    check(wait_until(lambda: "replay finished" in gw.log(), 30),
          f"the backlog was not replayed\n{gw.log()[-3000:]}")
    time.sleep(0.5)
    check(gw.stop() == 0, f"exit status {gw.returncode}")
    got = received(sub)
    gap = missing(got, 1, max(got))
    check(not gap, f"{len(gap)} records lost around {what}, e.g. {gap[:10]}")
    return max(got)


def test_disk_full(d):
    """The store's file system fills up: polling goes on (records in memory), the status and the
    log say so, and when space is freed the store writes to disk again and every record is
    delivered."""
    p = session_pki()
    mnt = d / "mnt"
    mount_tmpfs(mnt, "1m")
    try:
        with Mosquitto(d, tls=p.server_tls()) as b, Simulator(sim_map(40), d) as sim, \
                NotifySocket(d) as ns:
            filler = mnt / "filler"
            filler.write_bytes(b"\0" * (700 << 10))
            proxy = CuttableProxy(b.port, up=False)
            m = proxied_mqtt(proxy, p)
            text = store_config(sim.port, m, groups=2, tags=20, interval_ms=20,
                                store={"path": "mnt/queue", "max_bytes": "64MiB"})
            gw = start_gateway(text, d, "gw", ns)
            st = wait_status(ns, lambda s: "No space left on device" in s, 20, "the full disk")
            check("polling goes on" in gw.log(), f"no log line for the full disk\n"
                  f"{gw.log()[-2000:]}")
            n1 = status_number(st, r"records in memory")
            time.sleep(2)
            st2 = wait_status(ns, lambda s: (status_number(s, "records in memory") or 0) > n1 + 50,
                              5, "more records in memory (polling goes on)")
            filler.unlink()
            st3 = wait_status(ns, lambda s: "FAILING" not in s, 10, "no disk fault")
            hi = recover_and_deliver(gw, b, p, proxy, "the full disk")
            recovered = [l for l in gw.log().splitlines() if "again after" in l][0]
            note(f"disk full: '{st}'; then '{st2}'; after freeing space: '{st3}'")
            note(recovered.split(" store: ", 1)[-1])
            note(f"seq 1..{hi} all delivered")
            proxy.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_read_only_disk(d):
    """The store's file system is read-only when the gateway starts: it starts anyway, polls into
    memory and says so; once the file system is writable again the store recovers by itself and
    every record is delivered."""
    p = session_pki()
    mnt = d / "mnt"
    mount_tmpfs(mnt, "4m")
    try:
        (mnt / "queue").mkdir(mode=0o700)
        r = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True, text=True)
        check(r.returncode == 0, f"cannot remount {mnt} read-only: {r.stderr.strip()}")
        with Mosquitto(d, tls=p.server_tls()) as b, Simulator(sim_map(20), d) as sim, \
                NotifySocket(d) as ns:
            proxy = CuttableProxy(b.port, up=False)
            m = proxied_mqtt(proxy, p)
            text = store_config(sim.port, m, store={"path": "mnt/queue"})
            gw = start_gateway(text, d, "gw", ns)
            st = wait_status(ns, lambda s: "Read-only file system" in s, 10, "the read-only disk")
            n1 = status_number(st, "records in memory")
            st2 = wait_status(ns, lambda s: (status_number(s, "records in memory") or 0) > n1 + 20,
                              5, "more records in memory (polling goes on)")
            r = subprocess.run(["mount", "-o", "remount,rw", str(mnt)], capture_output=True,
                               text=True)
            check(r.returncode == 0, f"cannot remount {mnt} read-write: {r.stderr.strip()}")
            hi = recover_and_deliver(gw, b, p, proxy, "the read-only disk")
            note(f"read-only at start: '{st2}'; after remounting read-write every record "
                 f"(seq 1..{hi}) was delivered")
            proxy.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_unusable_store_refused(d):
    """No store section and a state directory that cannot be created: --check passes (it does not
    touch the store), the daemon refuses to start and says what to set."""
    p = session_pki()
    blocker = d / "not-a-dir"
    blocker.write_text("")
    m = mqtt_section(url="mqtts://localhost:1", ca=p.ca)
    text = store_config(1, m, store=None).replace("store: {}\n", "")
    check("store" not in text, "the config still has a store section")
    rc, out = run_check(text, d)
    check(rc == 0, f"--check failed ({rc}):\n{out}")
    gw = Gateway(text, d, env={"STATE_DIRECTORY": str(blocker / "state")})
    rc = gw.wait_exit(10)
    check(rc == 1, f"exit status {rc}, expected 1 (refused)\n{gw.log()[-2000:]}")
    line = next((l for l in gw.log().splitlines() if "store directory" in l), None)
    check(line and "Not a directory" in line and "set store.path" in line,
          f"no clear refusal in the log:\n{gw.log()[-2000:]}")
    note(line.split(" error ", 1)[-1])


def test_waiting_counts_unacknowledged(d):
    """At start, 'N records (X) waiting' counts the records not yet acknowledged and their bytes,
    not the bytes of the segment files, which also hold the acknowledged records before them."""
    p = session_pki()
    with Mosquitto(d, tls=p.server_tls()) as b, Simulator(sim_map(20), d) as sim, \
            NotifySocket(d) as ns:
        proxy = CuttableProxy(b.port)
        try:
            sub = Subscriber(b, data_topic(), cafile=p.ca)
            m = proxied_mqtt(proxy, p)
            state = d / "state"
            cfg = store_config(sim.port, m)
            gw = start_gateway(cfg, d, "gw1", ns, state)
            check(wait_until(lambda: len(received(sub)) >= 200, 30),
                  f"no data before the outage\n{gw.log()[-2000:]}")
            proxy.cut()
            time.sleep(2)  # records pile up unacknowledged behind the acknowledged ones
            check(gw.stop() == 0, f"SIGTERM exit status {gw.returncode}")
            frame = max(28 + len(mm.topic) + len(mm.text) for mm in sub.messages() if is_data(mm))
            gw = start_gateway(cfg, d, "gw2", ns, state)
            line = re.search(r"(\d+) records \(([\d.]+) (B|KiB|MiB)\) waiting", gw.log())
            check(line, f"no 'waiting' line at start\n{gw.log()[-1500:]}")
            n = int(line.group(1))
            size = float(line.group(2)) * {"B": 1, "KiB": 1024, "MiB": 1 << 20}[line.group(3)]
            on_disk = sum(f.stat().st_size for f in segment_files(state / "queue"))
            note(f"{line.group(0)}; segment files {on_disk} bytes; frames up to {frame} bytes")
            check(n > 0 and size <= n * frame * 1.05 + 64,
                  f"{line.group(0)}: more than {n} records of at most {frame} bytes "
                  f"(the segment files hold {on_disk} bytes)")
            gw.stop()
        finally:
            proxy.close()


if __name__ == "__main__":
    run([test_sigkill_during_outage, test_damaged_segments, test_store_full_drops_oldest,
         test_disk_full, test_read_only_disk, test_unusable_store_refused,
         test_waiting_counts_unacknowledged])
