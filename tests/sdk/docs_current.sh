#!/bin/bash
# docs/plugins/NAME.md is what `ironbridge --list-plugins=NAME --format markdown` prints for each
# bundled plugin; fails (with the diff and the command that fixes it) when one is out of date.
#   docs_current.sh SOURCE_DIR IRONBRIDGE PLUGIN_DIR
set -uo pipefail
src=$1 daemon=$2 pdir=$3
status=0
for name in modbus s7 example opcua; do
    doc=$src/docs/plugins/$name.md
    if ! out=$("$daemon" --plugin-dir "$pdir" --list-plugins="$name" --format markdown); then
        echo "FAIL: ironbridge --list-plugins=$name --format markdown failed" >&2
        status=1
        continue
    fi
    if ! diff -u "$doc" <(printf '%s\n' "$out"); then
        echo "FAIL: $doc is out of date; regenerate it with:" >&2
        echo "  build/daemon/ironbridge --plugin-dir build/plugins --list-plugins=$name --format markdown > docs/plugins/$name.md" >&2
        status=1
    else
        echo "ok: $doc is current"
    fi
done
exit $status
