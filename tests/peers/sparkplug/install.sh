#!/bin/sh
# Installs the Sparkplug test peer (npm sparkplug-payload, pinned by package-lock.json) into
# tests/peers/sparkplug/node_modules with `npm ci`, once (tests/lib/npm_ci.sh): later runs find
# it installed and need no network. Exit 0 when installed, 1 (with the reason) when npm is
# missing or fails.
here=$(dirname "$0")
exec "$here/../../lib/npm_ci.sh" "$here"
