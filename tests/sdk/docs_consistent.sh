#!/bin/bash
# The reference docs agree with what the code accepts (issue 13, point 10): fails naming the
# doc, the place and the missing word when they do not.
#   - docs/reload.md's CSV section names every column the loader accepts (the "known keys" of
#     `ironbridge --check` on a CSV with an unknown column: the core's and the plugin's tag keys);
#   - ironbridge.yaml(5) names, in the paragraph of each key, every value `ironbridge
#     --list-plugins=modbus` gives for the device keys byte_order and byte_order_16 and the tag
#     keys order and type, and every report mode the loader accepts;
#   - every paragraph (or table row) of reporting.md, payload.md, configuration.md, README.md
#     and ironbridge.yaml(5) saying a stale value is sent once also says what `report: always`
#     does (it sends it at every poll).
#
#   docs_consistent.sh SOURCE_DIR IRONBRIDGE PLUGIN_DIR
set -uo pipefail
src=$1 daemon=$2 pdir=$3
man=$src/docs/man/ironbridge.yaml.5
tmp=$(mktemp -d /tmp/ib-docs-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
status=0
bad() { echo "FAIL: $*" >&2; status=1; }

# check_config CSV_TEXT [GROUP_EXTRA]: `ironbridge --check` on a one-group configuration whose
# tags come from CSV_TEXT; prints its output.
check_config() {
    printf '%s\n' "$1" >"$tmp/tags.csv"
    cat >"$tmp/c.yaml" <<YAML
gateway: { id: docs-check }
north: { mqtt: { url: "mqtt://127.0.0.1:1883", allow_insecure: true } }
connections:
  - name: c1
    plugin: modbus
    host: 127.0.0.1
    devices:
      - name: d1
        groups: [ { name: g, interval_ms: 1000, ${2:-} tags_csv: tags.csv } ]
YAML
    "$daemon" --check -c "$tmp/c.yaml" --plugin-dir "$pdir" 2>&1
}

# ---- the CSV columns in docs/reload.md
out=$(check_config $'name,table,address,ib_no_such_column\nx,holding,1,2')
known=$(sed -n 's/.*ib_no_such_column: unknown key; known keys here: //p' <<<"$out")
if [[ -z $known ]]; then
    bad "ironbridge --check did not list the known CSV columns; it said:"$'\n'"$out"
else
    csv_doc=$(awk '/^## CSV tag lists/ { on = 1; next } /^## / { on = 0 } on' "$src/docs/reload.md")
    [[ -n $csv_doc ]] || bad "docs/reload.md has no '## CSV tag lists' section"
    IFS=', ' read -r -a keys <<<"$known"
    before=$status status=0
    for k in "${keys[@]}"; do
        grep -qF "\`$k\`" <<<"$csv_doc" ||
            bad "docs/reload.md (CSV tag lists) does not name the column \`$k\` that the loader accepts"
    done
    ((status)) || echo "ok: docs/reload.md names the ${#keys[@]} CSV columns: $known"
    ((status |= before))
fi

# ---- values of keys in ironbridge.yaml(5)
plugins=$("$daemon" --plugin-dir "$pdir" --list-plugins=modbus) ||
    { bad "ironbridge --list-plugins=modbus failed"; exit 1; }

# choices SECTION KEY: the "one of a, b, c" values of KEY in the "SECTION keys:" list.
choices() {
    awk -v sec="  $1 keys:" -v key="$2" '
        /^  [a-z]+ keys:$/ { on = ($0 == sec); next }
        on && $1 == key { sub(/.* one of /, ""); gsub(/,/, ""); print; exit }' <<<"$plugins"
}

# man_paragraph KEY: the text of the ironbridge.yaml(5) paragraph that starts `.TP` `.B KEY`,
# with the troff markup reduced to words.
man_paragraph() {
    awk -v key="$1" '
        on && /^\.(TP|SS|SH|PP)/ { exit }
        on { print }
        prev == ".TP" && ($0 == ".B " key || $0 ~ "^\\.BR " key " ") { on = 1; print }
        { prev = $0 }' "$man" | sed 's/\\-/-/g; s/"//g'
}

for spec in device:byte_order device:byte_order_16 tag:order tag:type; do
    sec=${spec%%:*} key=${spec#*:}
    vals=$(choices "$sec" "$key")
    [[ -n $vals ]] || { bad "--list-plugins=modbus gives no values for the $sec key $key"; continue; }
    para=$(man_paragraph "$key")
    [[ -n $para ]] || { bad "ironbridge.yaml(5) has no paragraph for $key (.TP, .B $key)"; continue; }
    before=$status status=0
    for v in $vals; do
        grep -qw -- "$v" <<<"$para" ||
            bad "ironbridge.yaml(5), paragraph $key: does not name $v (--list-plugins=modbus: $vals)"
    done
    ((status)) || echo "ok: ironbridge.yaml(5) names every $key: $vals"
    ((status |= before))
done

out=$(check_config $'name,table,address\nx,holding,1' 'report: { mode: ib_no_such_mode },')
modes=$(sed -n "s/.*unknown value 'ib_no_such_mode'; expected one of: //p" <<<"$out" | tr -d ,)
if [[ -z $modes ]]; then
    bad "ironbridge --check did not list the report modes; it said:"$'\n'"$out"
else
    para=$(man_paragraph "report.mode")
    before=$status status=0
    for v in $modes; do
        grep -qw -- "$v" <<<"$para" || bad "ironbridge.yaml(5), paragraph report.mode: does not name $v"
        grep -qF "\`$v\`" "$src/docs/reporting.md" || bad "docs/reporting.md does not name \`$v\`"
    done
    ((status)) || echo "ok: ironbridge.yaml(5) and reporting.md name every report mode: $modes"
    ((status |= before))
fi

# ---- "stale ... once" is never said without what `always` does
for doc in "$src/docs/reporting.md" "$src/docs/payload.md" "$src/docs/configuration.md" \
           "$src/README.md" "$man"; do
    # Paragraphs (blank-line separated blocks, list items, man page paragraphs) that say a
    # stale value is sent or reported "once" ("at once" aside) must also say that with
    # `always` it is sent at "every poll".
    awk '
        function flush() { if (p ~ /stale/) print p; p = "" }
        /^[[:space:]]*$/ || /^\.(TP|PP|SS|SH)/ || /^[[:space:]]*([-*|]|[0-9]+\.) / { flush() }
        { p = p " " $0 }
        END { flush() }' "$doc" | sed 's/\\-/-/g; s/at once/at_once/g; s/[[:space:]]\+/ /g' |
        grep -wi 'once' | grep -v 'always.*every poll\|every poll.*always' >"$tmp/stale.txt"
    if [[ -s $tmp/stale.txt ]]; then
        while IFS= read -r line; do
            bad "$(basename "$doc"): says a stale value is sent once without saying that with" \
                "report: always it is sent at every poll:${line:0:300}"
        done <"$tmp/stale.txt"
    else
        echo "ok: $(basename "$doc") says what report: always does with a stale value"
    fi
done
exit $status
