#!/usr/bin/python3
"""delay_proxy.py: a TCP proxy that delays every byte by a fixed time each way, like a slow link
(5G, 4G, radio): each connection to it gets its own connection to the target; bytes keep their
order per connection and direction, and any number of requests may be in flight (a byte is never
held back for the answer to an earlier one). Standard library only (asyncio).

It also measures what a poller sees: a poll is a burst of traffic on a connection separated from
the next by at least --idle-ms of silence; its duration runs from the first byte the client sent
to the last byte delivered back to it. With --stats FILE the durations (ms) are written as JSON
after each poll: {"polls_ms": [...], "connections": N}.

    delay_proxy.py --target 127.0.0.1:5020 --delay-ms 30 [--listen 0] [--port-file F]
"""

import argparse
import asyncio
import json
import os
import signal
import time


class Stats:
    def __init__(self, path, idle_ms):
        self.path, self.idle = path, idle_ms / 1000.0
        self.polls, self.connections = [], 0

    def write(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"polls_ms": self.polls, "connections": self.connections}, f)
        os.replace(tmp, self.path)


class Burst:
    """One connection's current poll: first byte from the client, last byte back to it."""

    def __init__(self, stats):
        self.stats, self.start, self.end, self.last = stats, None, None, 0.0

    def client_sent(self, t):
        if self.start is not None and t - self.last >= self.stats.idle:
            self.close()
        if self.start is None:
            self.start = t
        self.last = t

    def delivered(self, t):
        self.end = self.last = t

    def close(self):
        if self.start is not None and self.end is not None and self.end > self.start:
            self.stats.polls.append(round((self.end - self.start) * 1000.0, 3))
            self.stats.write()
        self.start = self.end = None


async def pump(reader, writer, delay, on_read, on_write):
    """Copy reader to writer, each chunk delivered `delay` s after it arrived, in order."""
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
            on_write(time.monotonic())
        writer.close()

    task = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(65536)
            now = time.monotonic()
            if not data:
                break
            on_read(now)
            queue.put_nowait((now + delay, data))
    except (ConnectionError, OSError):
        pass
    # The end of the stream is delayed like its bytes.
    queue.put_nowait((time.monotonic() + delay, None))
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def handle(client_r, client_w, args, stats):
    host, port = args.target.rsplit(":", 1)
    try:
        server_r, server_w = await asyncio.open_connection(host, int(port))
    except OSError:
        client_w.close()
        return
    stats.connections += 1
    burst = Burst(stats)
    delay = args.delay_ms / 1000.0
    noop = lambda t: None  # noqa: E731
    await asyncio.gather(pump(client_r, server_w, delay, burst.client_sent, noop),
                         pump(server_r, client_w, delay, noop, burst.delivered))
    burst.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="host:port of the real server")
    ap.add_argument("--delay-ms", type=float, default=30.0, help="added each way (default 30)")
    ap.add_argument("--listen", type=int, default=0, help="port on 127.0.0.1; 0: a free one")
    ap.add_argument("--port-file", help="write the listening port here once listening")
    ap.add_argument("--stats", help="write the poll durations here (JSON)")
    ap.add_argument("--idle-ms", type=float, default=250.0,
                    help="silence that ends a poll (default 250)")
    args = ap.parse_args()
    stats = Stats(args.stats, args.idle_ms)
    server = await asyncio.start_server(lambda r, w: handle(r, w, args, stats), "127.0.0.1",
                                        args.listen)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    stats.write()


if __name__ == "__main__":
    asyncio.run(main())
