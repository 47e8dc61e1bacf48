#!/usr/bin/env bash
# ironbridge's benchmark suite in one command: installs missing Debian packages (as test.sh
# does), builds, then runs bench/run.py: workloads A-F and the machine's limits on 127.0.0.1,
# then M (B with /metrics scraped every second), G (Modbus over a slow link), K (commands while
# workload B runs: bench/bench_commands.py), then S, the S7 dense workload against the snap7
# peer (needs Node.js: tests/lib/deps.sh ib_install_s7_peer_deps; without it S is skipped and
# the output says so), then U, the OPC UA workloads against node-opcua (bench/bench_opcua.py).
# B, E and F run three times (--runs N) and their median is reported; B's scaling runs (1, 50,
# 100 devices) follow (--no-scaling skips them).
# --peers: also runs A-D through Node-RED with node-red-contrib-modbus (pinned in
# bench/peers/package-lock.json, installed from the npm registry by bench/peers/install.sh the
# first time) against the same farm, broker and subscriber; about 1.5 minutes more.
# Prints a Markdown table; writes bench/results/DATE-COMMIT.json. Arguments go to run.py
# (--only ABC, --only K for commands alone, --only S for the S7 workload alone, --only U for OPC UA, --window S,
# --warmup S, --out FILE, --keep; IB_BENCH_F_INTERVALS=0,10 picks F's intervals). Takes about
# 5 minutes without --peers (310 s on a loaded 2-core machine with 3 s warm-up and 7 s windows;
# suite_seconds in the JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/lib/deps.sh
source tests/lib/deps.sh
ib_install_deps --tests
missing=$(ib_missing_pkgs iproute2)   # ss: counts the gateway's Modbus requests
if [[ -n $missing ]]; then
    apt-get install -y --no-install-recommends iproute2
fi
for a in "$@"; do
    if [[ $a == --peers ]]; then
        # Without Node.js or the npm registry the rest of the suite still runs; run.py says
        # in the table and the JSON (peers.skipped) why the peer is missing.
        ib_install_node || echo "bench/run.sh: Node.js could not be installed" >&2
        bench/peers/install.sh || echo "bench/run.sh: bench/peers/install.sh failed" >&2
    fi
done
[[ -d build ]] || meson setup build
ninja -C build
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 bench/run.py "$@"
