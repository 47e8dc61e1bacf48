#!/usr/bin/python3
"""The command line tells the truth: --help names the default configuration the daemon really
reads (/etc/ironbridge/ironbridge.yaml with conf.d, in a plain build as in the package, as
ironbridge(8) says), the three Modbus transports, and the exit status of --once; --sign-version
refuses versions beyond 2^53."""

import subprocess
from pathlib import Path

from ibtest import check, daemon_path, run

DEFAULT = "/etc/ironbridge/ironbridge.yaml"
MAN = Path(__file__).resolve().parents[2] / "docs" / "man" / "ironbridge.8"


def ironbridge(*args):
    return subprocess.run([daemon_path(), *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def test_help(d):
    r = ironbridge("--help")
    text = " ".join(r.stdout.split())
    check(r.returncode == 0, f"--help exited {r.returncode}")
    check(f"(default: {DEFAULT})" in text and "conf.d/*.yaml" in text,
          f"--help does not name the default {DEFAULT} and its conf.d:\n{r.stdout}")
    check("/usr/local/etc" not in text, f"--help names /usr/local/etc:\n{r.stdout}")
    check("Modbus TCP, RTU and RTU over TCP" in text, f"--help on the transports:\n{r.stdout}")
    check("3 when any was bad" in text, f"--help does not give --once's exit status:\n{r.stdout}")
    man = MAN.read_text()
    check(DEFAULT in man and "RTU over TCP" in man and "read a bad tag" in man,
          "ironbridge(8) disagrees with --help on the default, the transports or --once")


def test_default_is_read(d):
    """Without -c the daemon reads /etc/ironbridge/ironbridge.yaml (whether this machine has
    one or not, the messages name it)."""
    r = ironbridge("--check")
    check(DEFAULT in r.stdout + r.stderr,
          f"--check without -c does not read {DEFAULT}:\n{r.stdout}{r.stderr}")


def test_sign_version_bound(d):
    doc = d / "doc.yaml"
    doc.write_text("log:\n  level: info\n")
    for v in ("18446744073709551615", "9007199254740993", "0"):
        r = ironbridge("--sign-config", str(doc), "--key", str(d / "none.pem"),
                       "--sign-version", v)
        check(r.returncode == 2 and "2^53" in r.stderr,
              f"--sign-version {v}: exit {r.returncode}, {r.stderr.strip()}")


if __name__ == "__main__":
    run([test_help, test_default_is_read, test_sign_version_bound])
