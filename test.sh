#!/bin/bash
# Builds ironbridge and runs its test suites (cmocka unit tests and integration tests against
# real mosquitto and Modbus servers), first plainly, then under ASan+UBSan.
#
#   ./test.sh                       install what is missing, plain pass, then sanitizer pass
#   ./test.sh --plain               only the plain pass (build/), the whole suite
#   ./test.sh --sanitize [ARGS...]  only the sanitizer pass (build-san/)
#   ./test.sh ARGS...               only the plain pass (build/), ARGS go to `meson test`
#   --no-install                    do not install Debian packages
#
# Before building, every program, Python module and library the suite uses is checked once
# (tests/lib/deps.sh's ib_check_prereqs); a missing one is named with its Debian package and
# nothing runs.
#
# Examples: ./test.sh --suite unit     ./test.sh --sanitize test_tls
set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

cd "$(dirname "$(readlink -f "$0")")" || exit 2

sanitize=0
plain=0
install=1
args=()
while (($#)); do
    case "$1" in
        --sanitize) sanitize=1 ;;
        --plain) plain=1 ;;
        --no-install) install=0 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; args+=("$@"); break ;;
        *) args+=("$1") ;;
    esac
    shift
done

# shellcheck source=tests/lib/deps.sh
source tests/lib/deps.sh
if ((install)); then
    ib_install_deps --tests || { echo "test.sh: could not install the required packages" >&2; exit 1; }
fi
if ! absent=$(ib_check_prereqs); then
    sed 's/^/test.sh: /' <<<"$absent" >&2
    echo "test.sh: FAILED: prerequisites missing: install the packages named above (and list" \
         "them in tests/lib/deps.sh if it did not install them)" >&2
    exit 1
fi

summaries=()
passed=0 failed=0 skipped=0

# run_pass NAME BUILDDIR [meson setup options...]: configures, builds and tests one build dir.
run_pass() {
    local name=$1 dir=$2
    shift 2
    echo
    echo "==================== test.sh: $name pass ($dir) ===================="
    if [[ -f $dir/meson-private/coredata.dat && -f $dir/build.ninja ]]; then
        # Configured already: ninja re-runs meson by itself when a meson.build changed; only
        # (re)apply the options this pass depends on.
        if (($#)); then
            meson configure "$dir" "$@" ||
                { echo "test.sh: $name pass: meson configure $dir $* failed" >&2; return 1; }
        fi
    elif [[ -f $dir/meson-private/coredata.dat ]]; then
        meson setup --reconfigure "$dir" "$@" ||
            { echo "test.sh: $name pass: meson setup --reconfigure $dir failed" >&2; return 1; }
    else
        meson setup "$dir" "$@" ||
            { echo "test.sh: $name pass: meson setup $dir failed" >&2; return 1; }
    fi
    ninja -C "$dir" || { echo "test.sh: $name pass: build failed in $dir" >&2; return 1; }

    local out=$dir/meson-logs/test.sh-output.txt status
    echo "---- test.sh: $name pass: meson test -C $dir --print-errorlogs ${args[*]}"
    meson test -C "$dir" --print-errorlogs "${args[@]}" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    summaries+=("$name pass ($dir): exit status $status"
                "$(grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' "$out")")
    local n
    n=$(awk '/^Ok: /{p+=$2} /^(Fail|Unexpected Pass|Timeout): /{f+=$NF} /^Skipped: /{s+=$2}
             END {printf "%d %d %d", p, f, s}' "$out")
    read -r n_ok n_fail n_skip <<<"$n"
    passed=$((passed + n_ok)) failed=$((failed + n_fail)) skipped=$((skipped + n_skip))
    return "$status"
}

plain_opts=()
san_opts=(-Db_sanitize=address,undefined -Db_lundef=false)

run_sanitized() {
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    LSAN_OPTIONS="suppressions=$PWD/tests/lib/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_pass sanitizer build-san "${san_opts[@]}"
}

if ((sanitize)); then
    run_sanitized
    status=$?
elif ((plain || ${#args[@]})); then
    run_pass plain build "${plain_opts[@]}"
    status=$?
else
    run_pass plain build "${plain_opts[@]}"
    status=$?
    if ((status == 0)); then
        run_sanitized
        status=$?
    else
        echo "test.sh: plain pass failed; the sanitizer pass is not run" >&2
    fi
fi

echo
echo "==================== test.sh: summary ===================="
for s in "${summaries[@]}"; do printf '%s\n' "$s"; done
((status == 0)) && echo "test.sh: PASSED" || echo "test.sh: FAILED (exit status $status)"
# The closing line, in the form CI reads: a skipped test counts as a failure (nothing is skipped
# silently: a missing prerequisite fails).
echo "test.sh: $passed passed, $((failed + skipped)) failed"
exit "$status"
