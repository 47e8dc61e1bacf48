"""A fake line-based instrument for the example plugin's tests (and docs/writing-plugins.md):
answers one line per query line over TCP on a free loopback port."""

import socket
import threading


class Instrument:
    """Queries: MEAS:TEMP? -> 23.5, MEAS:COUNT? -> 1, 2, 3..., STAT:RUN? -> 1,
    *IDN? -> ACME,TM-1,42,1.0, HANG? -> no answer, anything else -> ERR unknown query."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.queries = []
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def answer(self, q):
        if q == "MEAS:TEMP?":
            return "23.5"
        if q == "MEAS:COUNT?":
            self.count += 1
            return str(self.count)
        if q == "STAT:RUN?":
            return "1"
        if q == "*IDN?":
            return "ACME,TM-1,42,1.0"
        if q == "HANG?":
            return None
        return "ERR unknown query"

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        with c:
            while True:
                try:
                    data = c.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    q = line.decode().strip()
                    self.queries.append(q)
                    a = self.answer(q)
                    if a is not None:
                        c.sendall((a + "\r\n").encode())

    def close(self):
        self.stopping = True
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
