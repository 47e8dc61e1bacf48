"""ibt_proxy: a TCP proxy on loopback whose connections can be cut and restored, as a network
outage.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import select
import socket
import threading

from ibt_core import LOOPBACK
from ibt_procs import _register, _unregister



class CuttableProxy:
    """A TCP proxy on 127.0.0.1 between the gateway and the broker; cut() drops every
    connection and refuses new ones until restore(), as a network outage would. up=False
    starts it cut."""

    def __init__(self, upstream_port, up=True):
        self.upstream = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.up = up
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        _register(self)

    def _accept(self):
        while not self.stopping:
            r, _, _ = select.select([self.listener], [], [], 0.2)
            if not r:
                continue
            try:
                c, _ = self.listener.accept()
            except OSError:
                continue
            with self.lock:
                if not self.up:
                    c.close()
                    continue
                try:
                    u = socket.create_connection((LOOPBACK, self.upstream), timeout=3)
                except OSError:
                    c.close()
                    continue
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            self.up = False
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns = []

    def restore(self):
        with self.lock:
            self.up = True

    def close(self):
        self.stopping = True
        self.cut()
        self.listener.close()
        _unregister(self)

    stop = close

    def describe(self, n=0):
        return f"--- proxy {self.port} -> {self.upstream}: {'up' if self.up else 'cut'}"
