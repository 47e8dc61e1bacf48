#!/bin/sh
# bench/peers/install.sh: installs the benchmark's peers (Node-RED and node-red-contrib-modbus,
# pinned by package-lock.json) into bench/peers/node_modules with `npm ci`, once: later runs
# find them installed and need no network. Exit 0 when installed, 1 (with the reason) when npm
# is missing or fails. Called by bench/run.sh --peers.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
stamp="$dir/node_modules/.ironbridge-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install.sh: npm not found: install nodejs and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
cd "$dir"
# No install scripts: Node-RED and the Modbus nodes need none (serialport, which the Modbus
# library pulls in, ships prebuilt bindings and is never opened for TCP).
npm ci --ignore-scripts --no-audit --no-fund >&2
touch "$stamp"
