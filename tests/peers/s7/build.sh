#!/bin/bash
# tests/peers/s7/build.sh: installs and builds the S7 test peer (npm node-snap7 1.0.9, pinned by
# package-lock.json) into DIR (default: this directory), idempotently; prints nothing on success
# when it is already built. npm skips install scripts (--ignore-scripts: the prebuilt download is
# not reachable), so the bundled snap7 C++ source is compiled here with node-gyp against the
# system's Node headers (/usr/include/node). Needs nodejs, npm (or node-gyp), g++, make, python3:
# tests/lib/deps.sh's ib_install_peer_deps installs them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here}
addon=$dir/node_modules/node-snap7/build/Release/node_snap7.node
stamp=$dir/node_modules/.ib-peer-lock

# Tests running side by side may call this at once: one builds, the others wait.
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [[ -f $addon && -f $stamp ]] && cmp -s "$stamp" "$here/package-lock.json"; then
    exit 0
fi
for p in node npm g++ make python3; do
    command -v "$p" >/dev/null || { echo "s7 peer: '$p' not found; run ./test.sh (tests/lib/deps.sh installs it)" >&2; exit 1; }
done
mkdir -p "$dir"
if [[ $dir != "$here" ]]; then
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
fi
cd "$dir"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
# node-gyp: Debian's node-gyp package, else the one npm bundles.
gyp=(node-gyp)
if ! command -v node-gyp >/dev/null; then
    root=$(npm root -g)
    for js in "$root/npm/node_modules/node-gyp/bin/node-gyp.js" /usr/share/nodejs/node-gyp/bin/node-gyp.js; do
        [[ -f $js ]] && { gyp=(node "$js"); break; }
    done
fi
nodedir=/usr
[[ -f /usr/include/node/node.h ]] || { echo "s7 peer: /usr/include/node/node.h missing (nodejs headers)" >&2; exit 1; }
log=$dir/node-gyp.log
if ! (cd node_modules/node-snap7 && "${gyp[@]}" rebuild --nodedir="$nodedir" --loglevel=error -j 2) \
        >"$log" 2>&1; then
    echo "s7 peer: node-gyp rebuild failed; the last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
[[ -f $addon ]] || { echo "s7 peer: node-gyp did not produce $addon" >&2; exit 1; }
cp "$here/package-lock.json" "$stamp"
