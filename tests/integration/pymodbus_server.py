#!/usr/bin/python3
"""A Modbus TCP server made with Debian's pymodbus 3.0, as an implementation independent of
ironbridge-sim: the same register values must decode the same way against both.

    pymodbus_server.py --spec FILE.json [--port 0] [--port-file F]

The spec is JSON: {"size": N, "unit_id": 1, "holding": {"addr": value}, "input": {...},
"coils": {"addr": bool}, "discrete": {...}}. Addresses are 0-based protocol addresses; each
table has N entries from address 0, so a read past N answers exception 2 (illegal data
address). The server listens on 127.0.0.1 only; with --port 0 the kernel picks the port, which
is written to --port-file once the server accepts connections. SIGTERM stops it.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

try:
    from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                    ModbusSlaveContext)
    from pymodbus.server import StartAsyncTcpServer
except ImportError as e:
    sys.exit(f"pymodbus_server.py: cannot import pymodbus ({e}); "
             "install python3-pymodbus and run with /usr/bin/python3")


def block(values, size, cast):
    data = [cast(0)] * size
    for addr, v in values.items():
        a = int(addr)
        if not 0 <= a < size:
            sys.exit(f"pymodbus_server.py: address {a} outside 0..{size - 1}")
        data[a] = cast(v)
    return ModbusSequentialDataBlock(0, data)


async def serve(spec, port, port_file):
    size = int(spec.get("size", 100))
    # zero_mode=True: protocol address N is block index N (pymodbus otherwise adds 1).
    slave = ModbusSlaveContext(
        hr=block(spec.get("holding", {}), size, int),
        ir=block(spec.get("input", {}), size, int),
        co=block(spec.get("coils", {}), size, bool),
        di=block(spec.get("discrete", {}), size, bool),
        zero_mode=True)
    unit = int(spec.get("unit_id", 1))
    context = ModbusServerContext(slaves={unit: slave}, single=False)
    server = await StartAsyncTcpServer(context=context, address=("127.0.0.1", port),
                                       defer_start=True, allow_reuse_address=True)
    task = asyncio.create_task(server.serve_forever())
    await server.serving
    bound = server.server.sockets[0].getsockname()[1]
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{bound}\n")
        os.rename(tmp, port_file)
    print(f"pymodbus {sys.modules['pymodbus'].__version__} serving unit {unit} "
          f"on 127.0.0.1:{bound}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.server_close()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # shutting down: any end is fine
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    if not args.debug:
        # Every probe connection that closes is logged as an ERROR "handler canceled".
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    with open(args.spec) as f:
        spec = json.load(f)
    asyncio.run(serve(spec, args.port, args.port_file))


if __name__ == "__main__":
    main()
