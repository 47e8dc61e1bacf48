#!/bin/sh
# bench/peers/install.sh: installs the benchmark's peers (Node-RED and node-red-contrib-modbus,
# pinned by package-lock.json) into bench/peers/node_modules with `npm ci`, once
# (tests/lib/npm_ci.sh): later runs find them installed and need no network. Exit 0 when
# installed, 1 (with the reason) when npm is missing or fails. Called by bench/run.sh --peers.
# No install scripts run: Node-RED and the Modbus nodes need none (serialport, which the Modbus
# library pulls in, ships prebuilt bindings and is never opened for TCP).
here=$(dirname "$0")
exec "$here/../../tests/lib/npm_ci.sh" "$here"
