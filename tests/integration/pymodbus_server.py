#!/usr/bin/python3
"""A Modbus server made with Debian's pymodbus 3.0, as an implementation independent of
ironbridge-sim and of the plugin's RTU framing: the same register values must decode the same
way against both.

    pymodbus_server.py --spec FILE.json [--port 0] [--port-file F]      Modbus TCP
    pymodbus_server.py --spec FILE.json --serial PATH --ready-file F   Modbus RTU on PATH

The spec is JSON: {"size": N, "unit_id": 1, "holding": {"addr": value}, "input": {...},
"coils": {"addr": bool}, "discrete": {...}}, or {"size": N, "units": {"1": {tables...},
"2": {...}}} for several units. Addresses are 0-based protocol addresses; each table has N
entries from address 0, so a read past N answers exception 2 (illegal data address).

TCP: the server listens on 127.0.0.1 only; with --port 0 the kernel picks the port, which is
written to --port-file once the server accepts connections. Serial: RTU framing
on PATH at 19200 baud without parity (a pty of a socat pair in the tests: pyserial cannot set
even parity on a pty, which has no parity bits anyway); --ready-file is written once the port
is open.
A request for a unit that is not in the spec gets no answer on a serial line (a dead device),
and exception 11 on TCP. SIGTERM stops it.
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
    from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
    from pymodbus.transaction import ModbusRtuFramer
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


def slave_context(tables, size):
    # zero_mode=True: protocol address N is block index N (pymodbus otherwise adds 1).
    return ModbusSlaveContext(
        hr=block(tables.get("holding", {}), size, int),
        ir=block(tables.get("input", {}), size, int),
        co=block(tables.get("coils", {}), size, bool),
        di=block(tables.get("discrete", {}), size, bool),
        zero_mode=True)


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


async def serve(spec, port, port_file, serial, ready_file):
    size = int(spec.get("size", 100))
    if "units" in spec:
        slaves = {int(u): slave_context(t, size) for u, t in spec["units"].items()}
    else:
        slaves = {int(spec.get("unit_id", 1)): slave_context(spec, size)}
    context = ModbusServerContext(slaves=slaves, single=False)
    version = sys.modules['pymodbus'].__version__
    if serial:
        server = await StartAsyncSerialServer(context=context, framer=ModbusRtuFramer,
                                              port=serial, baudrate=19200, parity="N",
                                              bytesize=8, stopbits=1, defer_start=True,
                                              ignore_missing_slaves=True)
        await server.start()
        task = asyncio.create_task(server.serve_forever())
        write_atomically(ready_file, "ready\n")
        print(f"pymodbus {version} serving RTU units {sorted(slaves)} on {serial}", flush=True)
    else:
        server = await StartAsyncTcpServer(context=context, address=("127.0.0.1", port),
                                           defer_start=True, allow_reuse_address=True)
        task = asyncio.create_task(server.serve_forever())
        await server.serving
        bound = server.server.sockets[0].getsockname()[1]
        if port_file:
            write_atomically(port_file, f"{bound}\n")
        print(f"pymodbus {version} serving units {sorted(slaves)} on 127.0.0.1:{bound}",
              flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if serial:
        await server.shutdown()
    else:
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
    ap.add_argument("--serial", help="serve Modbus RTU on this serial port instead of TCP")
    ap.add_argument("--ready-file", help="with --serial: written once the port is open")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    if not args.debug:
        # Every probe connection that closes is logged as an ERROR "handler canceled".
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    with open(args.spec) as f:
        spec = json.load(f)
    asyncio.run(serve(spec, args.port, args.port_file, args.serial, args.ready_file))


if __name__ == "__main__":
    main()
