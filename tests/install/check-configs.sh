#!/bin/bash
# The configurations the package ships must be valid for the daemon they ship with: the default
# /etc/ironbridge/ironbridge.yaml (idle: no connections) and every example.
#
#   tests/install/check-configs.sh DAEMON SOURCE_DIR
set -uo pipefail

daemon=${1:?usage: check-configs.sh DAEMON SOURCE_DIR}
src=${2:?usage: check-configs.sh DAEMON SOURCE_DIR}
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check NAME FILE EXPECT: --check must succeed and print EXPECT.
check() {
    local out
    out=$("$daemon" --check -c "$2" 2>&1)
    local rc=$?
    if ((rc != 0)) || ! grep -q -- "$3" <<<"$out"; then
        echo "FAIL: $1 ($2): exit status $rc, expected '$3' in:"
        sed 's/^/    /' <<<"$out"
        fail=1
    else
        echo "PASS: $1: $out"
    fi
}

check "default configuration is valid and idle" "$src/conf/ironbridge.yaml" ", 0 connections,"

# The examples name certificates relative to their directory (tls/ca.crt in /etc/ironbridge):
# give them stand-in files, as an installation would have real ones.
for ex in "$src"/conf/examples/*.yaml; do
    cp "$ex" "$tmp/"
    mkdir -p "$tmp/tls"
    for f in $(sed -n 's/^ *\(ca\|cert\|key\|password_file\): *\([^ #]*\).*/\2/p' "$ex"); do
        [[ $f == /* ]] || { mkdir -p "$tmp/$(dirname "$f")"; : >"$tmp/$f"; chmod 600 "$tmp/$f"; }
    done
    check "example $(basename "$ex") is valid" "$tmp/$(basename "$ex")" ": valid: "
done
exit $fail
