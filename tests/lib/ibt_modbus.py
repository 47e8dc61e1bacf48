"""ibt_modbus: Modbus peers: the project's simulator, Debian's pymodbus over TCP and RTU, socat pty
pairs and TCP bridges (serial lines and converters), a pymodbus client and a device that hangs.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import json
import socket
import sys
from pathlib import Path

from ibt_core import (LOOPBACK, ROOT, check, free_port, require_program, require_pymodbus,
                      sim_path, tail)
from ibt_procs import _Proc, _SocketThread



class Simulator(_Proc):
    """The project's Modbus TCP simulator: ironbridge-sim --map FILE --port 0 --port-file F."""

    name = "ironbridge-sim"

    def __init__(self, map_text, dir, name="sim", extra=()):
        self.exe = require_program(sim_path(), "the Modbus simulator ironbridge-sim (set IB_SIM)")
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.map = self.dir / f"{name}.map"
        self.map.write_text(map_text)
        self.port_file = self.dir / f"{name}.port"
        self.logfile = self.dir / f"{name}.log"
        self._spawn_with_port_file(
            [self.exe, "--map", str(self.map), "--port", "0", "--port-file",
             str(self.port_file), *extra], 10, f"ironbridge-sim with map {self.map}")


_PYMODBUS_SERVER = ROOT / "tests" / "integration" / "pymodbus_server.py"


class PymodbusServer(_Proc):
    """pymodbus (Debian's 3.0) as an independent Modbus TCP server on 127.0.0.1.

    holding/input: {address: 16-bit value}; coils/discrete: {address: bool}. Every table has
    `size` entries starting at protocol address 0 (addresses past it answer exception 2).
    """

    name = "pymodbus-server"

    def __init__(self, dir, holding=None, coils=None, input=None, discrete=None, size=100,
                 unit_id=1, name="pymodbus"):
        require_pymodbus()
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = {"size": size, "unit_id": unit_id,
                "holding": {str(k): int(v) for k, v in (holding or {}).items()},
                "input": {str(k): int(v) for k, v in (input or {}).items()},
                "coils": {str(k): bool(v) for k, v in (coils or {}).items()},
                "discrete": {str(k): bool(v) for k, v in (discrete or {}).items()}}
        self.spec_file = self.dir / f"{name}.json"
        self.spec_file.write_text(json.dumps(spec))
        self.port_file = self.dir / f"{name}.port"
        self.logfile = self.dir / f"{name}.log"
        self._spawn_with_port_file(
            [sys.executable, str(_PYMODBUS_SERVER), "--spec", str(self.spec_file), "--port", "0",
             "--port-file", str(self.port_file)], 15, "pymodbus server")


class SocatPtyPair(_Proc):
    """Two connected ptys made by socat (`pty,raw,echo=0` on both ends): what one end writes,
    the other reads, like the two ends of a serial cable. .a and .b are their paths (links in
    dir)."""

    name = "socat-pty-pair"

    def __init__(self, dir, name="serial"):
        exe = require_program("socat", "socat")
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.a = self.dir / f"{name}-a"
        self.b = self.dir / f"{name}-b"
        self.logfile = self.dir / f"{name}-socat.log"
        self._spawn_until([exe, "-d", "-d", f"pty,raw,echo=0,link={self.a}",
                           f"pty,raw,echo=0,link={self.b}"],
                          lambda: self.a.exists() and self.b.exists(), 10, "socat's pty pair")


class SocatTcpBridge(_Proc):
    """socat listening on 127.0.0.1:port and passing the bytes of each connection to and from
    a serial port (a pty): what a serial-to-Ethernet converter in transparent mode does."""

    name = "socat-tcp-bridge"

    def __init__(self, dir, serial_path, name="bridge"):
        exe = require_program("socat", "socat")
        self.dir = Path(dir)
        self.port = free_port()
        self.logfile = self.dir / f"{name}-socat.log"
        # Ready at socat's own "listening on" line: a probe connection would open the pty in a
        # child that might still hold it when the gateway connects.
        self._spawn_until([exe, "-d", "-d",
                           f"TCP-LISTEN:{self.port},bind={LOOPBACK},reuseaddr,fork",
                           f"FILE:{serial_path},raw,echo=0"],
                          lambda: "listening on" in tail(self.logfile), 10,
                          f"socat listening on port {self.port}")


class PymodbusRtuServer(_Proc):
    """pymodbus (Debian's 3.0) serving Modbus RTU on a serial port (one end of a SocatPtyPair),
    19200 baud without parity. units: {unit_id: {"holding": {addr: value}, "input": ...,
    "coils": {addr: bool}, "discrete": ...}}. A unit that is not listed never answers."""

    name = "pymodbus-rtu-server"

    def __init__(self, dir, serial_path, units, size=100, name="pymodbus-rtu"):
        require_pymodbus()
        self.dir = Path(dir)
        spec = {"size": size, "units": {
            str(u): {"holding": {str(k): int(v) for k, v in t.get("holding", {}).items()},
                     "input": {str(k): int(v) for k, v in t.get("input", {}).items()},
                     "coils": {str(k): bool(v) for k, v in t.get("coils", {}).items()},
                     "discrete": {str(k): bool(v) for k, v in t.get("discrete", {}).items()}}
            for u, t in units.items()}}
        self.spec_file = self.dir / f"{name}.json"
        self.spec_file.write_text(json.dumps(spec))
        self.ready_file = self.dir / f"{name}.ready"
        self.logfile = self.dir / f"{name}.log"
        self._spawn_until([sys.executable, str(_PYMODBUS_SERVER), "--spec", str(self.spec_file),
                           "--serial", str(serial_path), "--ready-file", str(self.ready_file)],
                          self.ready_file.exists, 15, f"pymodbus RTU server on {serial_path}")


def modbus_client(port):
    """A connected pymodbus ModbusTcpClient to 127.0.0.1:port (close() it when done)."""
    require_pymodbus()
    from pymodbus.client import ModbusTcpClient
    c = ModbusTcpClient(LOOPBACK, port=port, timeout=3)
    check(c.connect(), f"pymodbus client could not connect to {LOOPBACK}:{port}")
    return c


class SilentServer(_SocketThread):
    """A TCP listener on 127.0.0.1 that accepts connections and never answers (a device that
    hangs)."""

    name = "silent-server"

    def __init__(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self.conns = []
        self.accepted = 0
        self._serve(sock, self._accept)

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)

    def stop(self):
        super().stop()
        for c in self.conns:
            c.close()

    def describe(self, n=0):
        return f"--- silent server on port {self.port}: {self.accepted} connection(s) accepted"
