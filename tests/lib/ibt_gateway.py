"""ibt_gateway: the daemon under test: the Gateway process, --check and --once runs, sanitizer
reports, a systemd notify socket, and reading the data messages it publishes.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ibt_core import Failure, check, daemon_path, plugin_dir, require_program, wait_until
from ibt_procs import _Proc, _SocketThread, _register, _unregister

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: UndefinedBehaviorSanitizer")


def sanitizer_report(text):
    """The first lines of an ASan/LSan/UBSan report in text, or None."""
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            start = text.rfind("\n", 0, i) + 1
            return "\n".join(text[start:].splitlines()[:25])
    return None


def _daemon_cmd(cfg, extra):
    exe = require_program(daemon_path(), "the ironbridge daemon (set IB_DAEMON)")
    return [exe, "-c", str(cfg), "--plugin-dir", str(plugin_dir()), *extra]


class Gateway(_Proc):
    """The ironbridge daemon with config_text written to dir/<name>.yaml; stderr is kept in
    dir/<name>.stderr (.log() returns it), stdout in dir/<name>.stdout.

    $STATE_DIRECTORY is dir/<name>.state unless env sets it, as systemd's StateDirectory= would
    set it, so that the store (default path $STATE_DIRECTORY/queue) stays inside the test's
    directory. env: variables added to the daemon's
    environment (e.g. NOTIFY_SOCKET)."""

    name = "ironbridge"

    def __init__(self, config_text, dir, name="gw", extra=(), env=None):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / f"{name}.yaml"
        self.config.write_text(config_text)
        self.logfile = self.dir / f"{name}.stderr"
        self.stdout = self.dir / f"{name}.stdout"
        env = {"STATE_DIRECTORY": str(self.dir / f"{name}.state"), **(env or {})}
        self.state_dir = Path(env["STATE_DIRECTORY"])
        cmd = _daemon_cmd(self.config, extra)
        with open(self.logfile, "wb") as err, open(self.stdout, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **env})
        _register(self)

    def kill(self):
        """SIGKILL: no cleanup of any kind, as after a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _unregister(self)

    def rss_kib(self):
        """The daemon's resident set size (VmRSS) in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise Failure(f"no VmRSS for pid {self.proc.pid}")

    @property
    def returncode(self):
        return self.proc.poll()

    def log(self):
        return Path(self.logfile).read_text(errors="replace")

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM, wait up to 10 s, then SIGKILL; returns the exit status."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                print(f"warning: ironbridge pid {self.proc.pid} ignored SIGTERM for 10 s "
                      "and was killed", file=sys.stderr)
        _unregister(self)
        return self.proc.returncode if self.proc else None


def _run_daemon(config_text, dir, args, name, timeout):
    d = Path(dir) if dir else Path(tempfile.mkdtemp(prefix="ib-it-"))
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / f"{name}.yaml"
    cfg.write_text(config_text)
    cmd = _daemon_cmd(cfg, args)
    # As for a running Gateway: the state directory (the store, the kept signed document) is
    # the test's own, never a /var/lib/ironbridge the machine may have.
    env = {**os.environ, "STATE_DIRECTORY": str(d / f"{name}.state")}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                           timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired as e:
        raise Failure(f"{' '.join(cmd)} did not finish within {timeout}s") from e
    report = sanitizer_report(r.stdout + r.stderr)
    check(report is None, f"sanitizer report from {' '.join(cmd)}:\n{report}")
    return r, cfg


def run_check(config_text, dir=None, name="check"):
    """ironbridge --check -c FILE: returns (returncode, stdout + stderr)."""
    r, _ = _run_daemon(config_text, dir, ["--check"], name, 30)
    return r.returncode, r.stdout + r.stderr


def run_once(config_text, dir=None, name="once"):
    """ironbridge --once -c FILE: returns (returncode, stdout, stderr)."""
    r, _ = _run_daemon(config_text, dir, ["--once"], name, 60)
    return r.returncode, r.stdout, r.stderr


class NotifySocket(_SocketThread):
    """A systemd notify socket: NOTIFY_SOCKET for a daemon (see env()), recording every
    datagram as (monotonic time, {KEY: value}) in .msgs."""

    name = "notify-socket"

    def __init__(self, dir):
        self.path = Path(dir) / "notify.sock"
        self.msgs = []
        self._lock = threading.Lock()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        sock.settimeout(0.2)
        self._serve(sock, self._recv)

    def _recv(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").split("\n")
                          if "=" in line)
            with self._lock:
                self.msgs.append((time.monotonic(), fields))

    def env(self, watchdog_usec=None):
        """The environment systemd gives a Type=notify service (with WatchdogSec=)."""
        e = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_usec:
            e["WATCHDOG_USEC"] = str(watchdog_usec)
        return e

    def values(self, key):
        """[(time, value)] of every datagram that set KEY."""
        with self._lock:
            return [(t, f[key]) for t, f in self.msgs if key in f]

    def wait(self, key, pred, timeout, what):
        """The first value of KEY satisfying pred(value), waiting up to timeout seconds."""
        got = wait_until(lambda: next((v for _, v in self.values(key) if pred(v)), None),
                         timeout)
        seen = [v for _, v in self.values(key)][-5:]
        check(got is not None, f"no {key}= that is {what} within {timeout}s; last: {seen}")
        return got

    def describe(self, n=0):
        with self._lock:
            last = self.msgs[-8:]
        return f"--- notify socket {self.path}: {len(self.msgs)} datagrams, last: {last}"


def is_data(m, device=None, group=None):
    """A data message (a JSON object with "values"), optionally of one device/group."""
    p = m.payload
    return (isinstance(p, dict) and isinstance(p.get("values"), dict)
            and (device is None or p.get("device") == device)
            and (group is None or p.get("group") == group))


def sample(m, name):
    """The sample of tag `name` in data message m (a dict), or None."""
    return m.payload["values"].get(name) if is_data(m) else None


def wait_sample(sub, device, name, pred, timeout, what=None):
    """Waits for a data message of `device` whose sample `name` satisfies pred(sample)."""
    def ok(m):
        if not is_data(m, device):
            return False
        s = m.payload["values"].get(name)
        return s is not None and pred(s)
    return sub.wait_for(ok, timeout, what or f"message from {device} with {name} as expected")
