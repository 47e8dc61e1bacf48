"""The S7 test peer for ironbridge's tests: the snap7 server (npm node-snap7 1.0.9, built from
source by tests/peers/s7/build.sh) run by tests/peers/s7/server.js on a free loopback port, with
a JSON-lines control socket to set and read its memory, drop its clients and count the items it reads."""

import json
import os
import socket
import subprocess
from pathlib import Path

from ibtest import ROOT, Failure, _Proc, check, plugin_dir, require_program

PEER_SRC = ROOT / "tests" / "peers" / "s7"


def peer_dir():
    """Where build.sh puts node_modules: $IB_S7_PEER_DIR, else beside the build's plugins."""
    v = os.environ.get("IB_S7_PEER_DIR")
    return Path(v) if v else plugin_dir().parent / "tests" / "peers" / "s7"


def build_peer():
    """Builds the peer once (about a minute the first time; nothing when built)."""
    require_program("node", "Node.js for the S7 peer (tests/lib/deps.sh: ib_install_peer_deps)")
    r = subprocess.run(["bash", str(PEER_SRC / "build.sh"), str(peer_dir())],
                       capture_output=True, text=True, timeout=600)
    check(r.returncode == 0, f"prerequisite missing: the S7 peer did not build "
          f"(tests/peers/s7/build.sh):\n{r.stdout}{r.stderr}")


class S7Peer(_Proc):
    """snap7 serving DBs ({number: size}), M, I, Q, T and C areas; `pdu` is the largest PDU
    size it grants."""

    name = "snap7-peer"

    def __init__(self, dir, dbs, m=256, i=64, q=64, t=32, c=32, pdu=480, name="s7peer"):
        build_peer()
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = {"pdu": pdu, "dbs": {str(k): v for k, v in dbs.items()}, "m": m, "i": i, "q": q,
                "t": t, "c": c}
        self.spec_file = self.dir / f"{name}.json"
        self.spec_file.write_text(json.dumps(spec))
        self.port_file = self.dir / f"{name}.port"
        self.ctl_file = self.dir / f"{name}.ctl"
        self.logfile = self.dir / f"{name}.log"
        os.environ["IB_S7_PEER_DIR"] = str(peer_dir())
        self._spawn_with_port_file(
            ["node", str(PEER_SRC / "server.js"), str(self.spec_file), str(self.port_file),
             str(self.ctl_file)], 20, "the snap7 peer")
        self._ctl = socket.create_connection(("127.0.0.1", int(self.ctl_file.read_text())), 10)
        self._rd = self._ctl.makefile("r")

    def _req(self, **kw):
        self._ctl.sendall((json.dumps(kw) + "\n").encode())
        line = self._rd.readline()
        if not line:
            raise Failure(f"the snap7 peer closed its control socket\n{self.describe()}")
        r = json.loads(line)
        check(r.get("ok"), f"snap7 peer: {kw['op']} failed: {r.get('error')}")
        return r

    def set(self, area, offset, data, db=0):
        self._req(op="set", area=area, db=db, offset=offset, hex=bytes(data).hex())

    def get(self, area, offset, length, db=0):
        return bytes.fromhex(self._req(op="get", area=area, db=db, offset=offset,
                                       length=length)["hex"])

    def drop(self):
        """Stops and restarts the server: every client loses its connection."""
        self._req(op="drop")

    def items(self):
        """Read Var items the server has answered since it started."""
        return self._req(op="stats")["items"]

    def stop(self):
        try:
            self._ctl.close()
        except (OSError, AttributeError):
            pass
        super().stop()
