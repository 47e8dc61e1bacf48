# tests/fuzz/lib.sh: what smoke.sh and run.sh share: the fuzz build (build-fuzz/, clang,
# -Dfuzz=true), the list of targets, running one target for a bounded time, and reporting a
# crash (reproducer path, input as hex, the sanitizer's report). Sourced, not run.

FUZZ_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FUZZ_ROOT=$(cd "$FUZZ_SRC/../.." && pwd)
FUZZ_BUILD=${IB_FUZZ_BUILD:-$FUZZ_ROOT/build-fuzz}
# Every target, in the order they run. A new target is added here and in meson.build.
FUZZ_TARGETS=(config csv csv_parse command remote store store_format status modbus_tcp modbus_rtu_tcp modbus_mbap
              modbus_pipe modbus_rtu modbus_decode opcua s7)

# The longest input each target is given (bytes).
fz_max_len() {
    case $1 in
        config | store | store_format) echo 16384 ;;
        csv | csv_parse | remote | command) echo 8192 ;;
        modbus_decode) echo 512 ;;
        *) echo 600 ;;
    esac
}

# Configure (once) and build build-fuzz/ with clang. Returns non-zero on failure.
fz_build() {
    if ! command -v clang > /dev/null; then
        echo "fuzz: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2
        return 1
    fi
    if [[ ! -f $FUZZ_BUILD/build.ninja ]]; then
        CC=clang meson setup "$FUZZ_BUILD" "$FUZZ_ROOT" -Dfuzz=true -Dtests=false \
            -Db_lundef=false > "$FUZZ_BUILD.setup.log" 2>&1 || {
            cat "$FUZZ_BUILD.setup.log" >&2
            echo "fuzz: meson setup $FUZZ_BUILD failed" >&2
            return 1
        }
        rm -f "$FUZZ_BUILD.setup.log"
    fi
    nice -n 10 ninja -C "$FUZZ_BUILD" > "$FUZZ_BUILD/fuzz-build.log" 2>&1 || {
        cat "$FUZZ_BUILD/fuzz-build.log" >&2
        echo "fuzz: the build in $FUZZ_BUILD failed" >&2
        return 1
    }
}

# fz_run TARGET SECONDS LOG: fuzz TARGET for SECONDS (one process, nice), starting from its
# working corpus (build-fuzz/fuzz-corpus/TARGET, kept between runs), the seeds and the
# checked-in crash inputs; a crash input is written to build-fuzz/fuzz-crashes/TARGET-*.
# Returns libFuzzer's exit status (0: no crash).
fz_run() {
    local t=$1 secs=$2 log=$3
    local work=$FUZZ_BUILD/fuzz-corpus/$t crashes=$FUZZ_BUILD/fuzz-crashes
    mkdir -p "$work" "$crashes" "$(dirname "$log")"
    local args=(-max_total_time="$secs" -max_len="$(fz_max_len "$t")" -timeout=30
                -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/$t-")
    [[ -f $FUZZ_SRC/dict/$t.dict ]] && args+=(-dict="$FUZZ_SRC/dict/$t.dict")
    local dirs=("$work" "$FUZZ_SRC/corpus/$t")
    [[ -d $FUZZ_SRC/regressions/$t ]] && dirs+=("$FUZZ_SRC/regressions/$t")
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    IB_FUZZ_PLUGIN_DIR=$FUZZ_BUILD/plugins \
        nice -n 10 "$FUZZ_BUILD/tests/fuzz/fuzz_$t" "${args[@]}" "${dirs[@]}" > "$log" 2>&1
}

# fz_stat LOG NAME: one of libFuzzer's final statistics (stat::NAME), or "?".
fz_stat() {
    local v
    v=$(sed -n "s/^stat::$2: *//p" "$1" | tail -1)
    echo "${v:-?}"
}

# fz_cov LOG: "cov ft" of the last status line.
fz_cov() {
    local line
    line=$(grep -E '^#[0-9]+.*cov: ' "$1" | tail -1)
    [[ -z $line ]] && { echo "? ?"; return; }
    echo "$(sed -E 's/.*cov: ([0-9]+).*/\1/' <<< "$line") $(sed -E 's/.*ft: ([0-9]+).*/\1/' <<< "$line")"
}

# fz_report_crash TARGET LOG: the reproducer, the input as hex, the sanitizer's report.
fz_report_crash() {
    local t=$1 log=$2 art
    art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "==================== fuzz: $t FAILED ===================="
    if [[ -n $art && -f $art ]]; then
        echo "reproducer: $art ($(stat -c %s "$art") bytes)"
        echo "replay it:  IB_FUZZ_PLUGIN_DIR=$FUZZ_BUILD/plugins $FUZZ_BUILD/tests/fuzz/fuzz_$t $art"
        echo "then keep it: cp $art tests/fuzz/regressions/$t/<what-it-is> (replayed by ./test.sh)"
        echo "---- input (hex, first 1024 bytes):"
        od -A x -t x1z -v -N 1024 "$art"
    else
        echo "no reproducer was written (the fuzzer itself failed); its log: $log"
    fi
    echo "---- report:"
    # From the sanitizer's or libFuzzer's first error line to the end, at most 120 lines.
    awk '/==[0-9]+==ERROR|runtime error:|deadly signal|ERROR: libFuzzer|==[0-9]+== ?ERROR/ {p=1} p' "$log" |
        grep -v '^MS: \|^Base64: ' | head -120
    echo "(full log: $log)"
}
