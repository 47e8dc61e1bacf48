#!/bin/bash
# The shipped unit's exposure as rated by `systemd-analyze security --offline=true`: prints the
# figure and what still costs exposure, and fails above the limit.
#
#   tests/install/security.sh [UNIT] [LIMIT]      (default: systemd/ironbridge.service, 2.0)
set -uo pipefail

top=$(dirname "$(readlink -f "$0")")/../..
unit=${1:-$top/systemd/ironbridge.service}
limit=${2:-2.0}

command -v systemd-analyze >/dev/null ||
    { echo "FAIL: systemd-analyze not found (package systemd)"; exit 1; }
out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)
rc=$?
figure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' <<<"$out")
if [[ -z $figure ]]; then
    echo "$out"
    echo "FAIL: no exposure figure in the output of systemd-analyze security (exit status $rc)"
    exit 1
fi
echo "what costs exposure in $(basename "$unit"):"
grep '✗' <<<"$out" | sed 's/  */ /g; s/^/  /'
echo "exposure of $(basename "$unit"): $figure (limit $limit)"
if awk -v f="$figure" -v l="$limit" 'BEGIN { exit !(f > l) }'; then
    echo "FAIL: exposure $figure is above $limit"
    exit 1
fi
echo "PASS: exposure $figure <= $limit"
