#!/bin/bash
# tests/fuzz/smoke.sh: the bounded fuzz run of CI: builds build-fuzz/ (clang, -Dfuzz=true) and
# runs every fuzz target for a few seconds each (docs/fuzzing.md). Fails on any crash, leak,
# timeout or out-of-memory, and prints the reproducer's path, the input as hex and the
# sanitizer's report.
#
#   tests/fuzz/smoke.sh [--seconds N] [TARGET...]
#
# Seconds per target: --seconds, else $IB_FUZZ_SECONDS, else 20 (10 under CI=true).
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/lib.sh"

secs=${IB_FUZZ_SECONDS:-}
[[ -z $secs ]] && { [[ ${CI:-} == true ]] && secs=10 || secs=20; }
targets=()
while (($#)); do
    case $1 in
        --seconds) secs=$2; shift ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
((${#targets[@]})) || targets=("${FUZZ_TARGETS[@]}")

start=$SECONDS
fz_build || exit 1
failed=()
printf '%-16s %12s %8s %7s %7s  %s\n' target executions exec/s cov ft result
for t in "${targets[@]}"; do
    log=$FUZZ_BUILD/fuzz-logs/smoke-$t.log
    fz_run "$t" "$secs" "$log"
    rc=$?
    read -r cov ft <<< "$(fz_cov "$log")"
    printf '%-16s %12s %8s %7s %7s  %s\n' "$t" "$(fz_stat "$log" number_of_executed_units)" \
        "$(fz_stat "$log" average_exec_per_sec)" "$cov" "$ft" "$( ((rc)) && echo "FAILED ($rc)" || echo ok)"
    ((rc)) && failed+=("$t")
done
for t in "${failed[@]}"; do
    fz_report_crash "$t" "$FUZZ_BUILD/fuzz-logs/smoke-$t.log"
done
echo "fuzz smoke: ${#targets[@]} targets, ${secs}s each, $((SECONDS - start))s in all (build included)"
if ((${#failed[@]})); then
    echo "fuzz smoke: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz smoke: PASSED"
