#!/bin/bash
# tests/fuzz/run.sh: a long fuzz run (docs/fuzzing.md): builds build-fuzz/, runs the targets one
# after another (nice, one process: the machine is shared) for N minutes each, keeping what they
# find in build-fuzz/fuzz-corpus/TARGET for the next run, and prints per target: executions,
# exec/s, edges covered (cov) and features (ft) from libFuzzer's final statistics, and crashes
# (libFuzzer stops at the first one; its reproducer and report are printed).
#
#   tests/fuzz/run.sh --minutes N [TARGET...]
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/lib.sh"

minutes=
targets=()
while (($#)); do
    case $1 in
        --minutes) minutes=$2; shift ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
if [[ ! $minutes =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "usage: tests/fuzz/run.sh --minutes N [TARGET...]  (targets: ${FUZZ_TARGETS[*]})" >&2
    exit 2
fi
((${#targets[@]})) || targets=("${FUZZ_TARGETS[@]}")
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')

fz_build || exit 1
failed=()
rows=()
for t in "${targets[@]}"; do
    log=$FUZZ_BUILD/fuzz-logs/run-$t.log
    echo "fuzz: $t for ${secs}s ($(date -u +%H:%M:%S) UTC), log $log"
    fz_run "$t" "$secs" "$log"
    rc=$?
    read -r cov ft <<< "$(fz_cov "$log")"
    rows+=("$(printf '%-16s %12s %8s %7s %7s %8s %s' "$t" "$(fz_stat "$log" number_of_executed_units)" \
        "$(fz_stat "$log" average_exec_per_sec)" "$cov" "$ft" \
        "$(ls "$FUZZ_BUILD/fuzz-corpus/$t" | wc -l)" "$( ((rc)) && echo 1 || echo 0)")")
    ((rc)) && failed+=("$t")
done
for t in "${failed[@]}"; do
    fz_report_crash "$t" "$FUZZ_BUILD/fuzz-logs/run-$t.log"
done
printf '%-16s %12s %8s %7s %7s %8s %s\n' target executions exec/s cov ft corpus crashes
printf '%s\n' "${rows[@]}"
((${#failed[@]} == 0))
