#!/bin/sh
# tests/lib/npm_ci.sh DIR: installs the npm peer in DIR (its package.json, pinned by its
# package-lock.json) into DIR/node_modules with `npm ci --ignore-scripts`, once: a stamp file
# newer than the lock file says it is done, so later runs need no network. Exit 0 when
# installed, 1 (with the reason) when npm is missing or fails. The peers' install.sh call it.
set -eu
dir=$(cd "$1" && pwd)
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
