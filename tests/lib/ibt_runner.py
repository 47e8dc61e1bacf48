"""ibt_runner: the test runner: runs a file's test functions, each in a fresh temp dir, prints
PASS/FAIL with the logs of what a failed test started, and fails a test whose daemon tripped a
sanitizer.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import inspect
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ibt_core import Failure
from ibt_procs import _history, _live_count, _live_lock, _session, stop_all
from ibt_gateway import Gateway, sanitizer_report



def _accepts_arg(fn):
    try:
        return len(inspect.signature(fn).parameters) >= 1
    except (TypeError, ValueError):
        return False


def run(tests, keep=None):
    """Runs each test function (given a fresh temp dir if it takes an argument), prints
    PASS name / FAIL name: reason, then "N passed, M failed"; exits 1 if any failed.

    On failure the logs of the processes the test started are printed and its temp dir is
    kept (its path is printed); IB_KEEP=1 keeps every temp dir. IB_ONLY=name1,name2 runs only
    those tests (for debugging).
    """
    keep = os.environ.get("IB_KEEP") == "1" if keep is None else keep
    only = [s for s in os.environ.get("IB_ONLY", "").split(",") if s]
    passed = failed = 0
    for fn in tests:
        name = fn.__name__
        if only and name not in only:
            continue
        d = Path(tempfile.mkdtemp(prefix=f"ib-it-{name}-"))
        base = _live_count()
        hist_base = len(_history)
        print(f"---- {name}", flush=True)
        t0 = time.monotonic()
        ok = False
        try:
            fn(d) if _accepts_arg(fn) else fn()
            ok = True
        except Failure as e:
            reason = str(e)
        except Exception as e:  # an unexpected error is a failure too, with its traceback
            reason = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        if not ok:
            with _live_lock:
                started = list(_history[hist_base:])
            logs = "\n".join(filter(None, (o.describe() for o in started)))
        stop_all(base)
        # A daemon that tripped ASan/UBSan/LSan fails the test even if its outputs were right
        # (leaks are reported only at exit, after the test's own checks).
        with _live_lock:
            gateways = [o for o in _history[hist_base:] if isinstance(o, Gateway)]
        for gw in gateways:
            report = sanitizer_report(gw.log())
            if report and ok:
                ok, reason, logs = False, f"sanitizer report in {gw.logfile}:\n{report}", ""
            elif report:
                reason += f"\nand a sanitizer report in {gw.logfile}:\n{report}"
        dt = time.monotonic() - t0
        if ok:
            passed += 1
            print(f"PASS {name} ({dt:.1f}s)", flush=True)
            if not keep:
                shutil.rmtree(d, ignore_errors=True)
        else:
            failed += 1
            _session["failed"] = True
            first, _, rest = reason.partition("\n")
            print(f"FAIL {name}: {first}", flush=True)
            if rest:
                print(rest)
            if logs:
                print(logs)
            print(f"     (files kept in {d})", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
