#!/usr/bin/env bash
# ironbridge's benchmark suite in one command: installs missing Debian packages (as test.sh
# does), builds, then runs bench/run.py: workloads A-F and the machine's limits on 127.0.0.1,
# then K, commands while workload B runs (bench/bench_commands.py: round trip p50/p99 and
# commands/s on one connection), then S, the S7 dense workload against the snap7 peer (needs
# Node.js: tests/lib/deps.sh ib_install_s7_peer_deps; without it S is skipped and the output
# says so), then U, the OPC UA workloads against node-opcua (bench/bench_opcua.py; about 45 s).
# Prints a Markdown table; writes bench/results/DATE-COMMIT.json. Arguments go to
# run.py (--only ABC, --only K for commands alone, --only S for the S7 workload alone, --only U
# for OPC UA, --window S, --warmup S, --out FILE, --keep;
# IB_BENCH_F_INTERVALS=0,10 picks F's intervals). Takes about 3.5 minutes (S alone: about 1).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/lib/deps.sh
source tests/lib/deps.sh
ib_install_deps --tests
missing=$(ib_missing_pkgs iproute2)   # ss: counts the gateway's Modbus requests
if [[ -n $missing ]]; then
    apt-get install -y --no-install-recommends iproute2
fi
[[ -d build ]] || meson setup build
ninja -C build
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 bench/run.py "$@"
