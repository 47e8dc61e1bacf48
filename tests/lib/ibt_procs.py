"""ibt_procs: process bookkeeping: every fixture started is registered and stopped when its test
ends, at exit and on SIGTERM; the session's temp dir; the base classes of process and socket
fixtures.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from ibt_core import Failure, port_open, tail, wait_until

_session = {"dir": None, "failed": False}


def session_dir():
    """A temp dir shared by the tests of one file (e.g. for one PKI); removed at exit unless a
    test failed or IB_KEEP=1."""
    if _session["dir"] is None:
        _session["dir"] = Path(tempfile.mkdtemp(prefix="ib-it-session-"))

        def cleanup():
            stop_all()
            if _session["failed"] or os.environ.get("IB_KEEP") == "1":
                print(f"     (session files kept in {_session['dir']})")
            else:
                shutil.rmtree(_session["dir"], ignore_errors=True)
        atexit.register(cleanup)
    return _session["dir"]


_live = []          # every running fixture object with a stop() method, oldest first
_history = []       # every fixture ever started (for the logs of a failed test)
_live_lock = threading.Lock()


def _register(obj):
    with _live_lock:
        _live.append(obj)
        _history.append(obj)


def _unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


def stop_all(since=0):
    """Stops every fixture started after the first `since` ones, newest first."""
    with _live_lock:
        todo = list(reversed(_live[since:]))
    for obj in todo:
        try:
            obj.stop()
        except Exception as e:  # a stop failing must not keep the others running
            print(f"warning: stopping {obj!r} failed: {e}", file=sys.stderr)


def _live_count():
    with _live_lock:
        return len(_live)


atexit.register(stop_all)


def _on_sigterm(signum, frame):
    # meson's timeout sends SIGTERM: turn it into SystemExit so that atexit runs.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


def _terminate(proc, timeout=10):
    """SIGTERM, then SIGKILL after timeout; returns the exit status."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class _Fixture:
    """Something started for a test, stopped by stop(); also a context manager."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class _Proc(_Fixture):
    """A started process with log files; subclasses set self.proc."""

    name = "process"
    proc = None
    logfile = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            _terminate(self.proc)
        _unregister(self)

    def describe(self, n=30):
        """The log tail for failure reports."""
        if self.logfile is None:
            return ""
        return f"--- {self.name} log ({self.logfile}), last {n} lines:\n{tail(self.logfile, n)}"

    def __repr__(self):
        pid = self.proc.pid if self.proc else None
        return f"<{self.name} pid={pid}>"

    def _spawn(self, argv):
        """Start argv with its output appended to self.logfile; stopped with the test."""
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        _register(self)

    def _spawn_until(self, argv, ready, timeout, what):
        """_spawn(argv), then wait until ready() or the process ends; Failure if not ready."""
        self._spawn(argv)
        ok = wait_until(lambda: not self.running() or ready(), timeout)
        if not ok or not self.running():
            rc = self.proc.poll()
            self.stop()
            raise Failure(f"{what} did not start (exit status {rc})\n{self.describe()}")

    def _spawn_with_port_file(self, argv, timeout, what):
        """Start argv (a server that writes the port it listens on to self.port_file) with its
        output in self.logfile, wait until that port accepts connections, set self.port."""
        if self.port_file.exists():
            self.port_file.unlink()
        self._spawn(argv)

        def port_ready():
            if not self.running():
                return True
            try:
                text = self.port_file.read_text().strip()
                return bool(text) and port_open(int(text))
            except (OSError, ValueError):
                return False

        wait_until(port_ready, timeout)
        if not self.running() or not port_ready():
            rc = self.proc.poll()
            self.stop()
            raise Failure(f"{what} did not start (exit status {rc})\n{self.describe()}")
        self.port = int(self.port_file.read_text().strip())


class _SocketThread(_Fixture):
    """A socket served by a daemon thread; a fixture used as a context manager or stopped with
    stop(), which closes the socket (ending the thread)."""

    def _serve(self, sock, target):
        self.sock = sock
        self._stop = False
        self._t = threading.Thread(target=target, daemon=True)
        self._t.start()
        _register(self)

    def stop(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        _unregister(self)
