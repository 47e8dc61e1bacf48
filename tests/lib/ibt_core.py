"""ibt_core: the basics every fixture uses: Failure and check, the project's paths, prerequisites
that fail (never skip) when absent, free loopback ports, waiting, log tails and notes.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import os
import shutil
import socket
import stat
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


class Failure(Exception):
    """A test assertion or a missing prerequisite; the runner prints its message as FAIL."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def _env_path(var, default):
    v = os.environ.get(var)
    return Path(v) if v else ROOT / default


def daemon_path():
    return _env_path("IB_DAEMON", "build/daemon/ironbridge")


def sim_path():
    return _env_path("IB_SIM", "build/tests/sim/ironbridge-sim")


def plugin_dir():
    return _env_path("IB_PLUGIN_DIR", "build/plugins")


def require_program(path, what):
    """Fails (never skips) when a program the test needs is absent."""
    p = Path(path)
    if p.is_absolute() or "/" in str(path):
        check(p.is_file() and os.access(p, os.X_OK),
              f"prerequisite missing: {what} ({path}) does not exist or is not executable")
        return str(p)
    found = shutil.which(str(path))
    check(found is not None, f"prerequisite missing: {what} ('{path}' not on PATH); "
          "run tests/lib/deps.sh's ib_install_deps or ./test.sh")
    return found


def require_pymodbus():
    try:
        import pymodbus  # noqa: F401
    except ImportError as e:
        raise Failure(f"prerequisite missing: pymodbus is not importable from {sys.executable} "
                      f"({e}); install python3-pymodbus and run with /usr/bin/python3") from e


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_open(port, host=LOOPBACK):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.05):
    """Polls pred() until it returns a true value (returned) or timeout seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def tail(path, n=40):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(lines[-n:])


def note(msg):
    """A line of test output that a reader should see (not a pass/fail verdict)."""
    print(f"     {msg}", flush=True)


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def log_has(text, *patterns):
    """The first log line matching all regular expressions (case-insensitive), or None."""
    import re
    for line in text.splitlines():
        if all(re.search(p, line, re.IGNORECASE) for p in patterns):
            return line
    return None
