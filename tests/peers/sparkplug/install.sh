#!/bin/sh
# Installs the Sparkplug test peer (npm sparkplug-payload, pinned by package-lock.json) into
# tests/peers/sparkplug/node_modules with `npm ci`, once: later runs find it installed and need
# no network. Exit 0 when installed, 1 (with the reason) when npm is missing or fails.
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
npm ci --ignore-scripts --no-audit --no-fund >&2
touch "$stamp"
