#!/bin/bash
# The install test: builds the Debian packages (packaging/build-debs.sh, lintian included) and
# the Modbus simulator, then installs the packages in a fresh Debian 12 root booted with systemd
# as PID 1 and checks the service there (tests/install/install_test.py lists the steps).
#
#   tests/install/run.sh [--debs DIR] [--no-install]
#
#   --debs DIR     test these ironbridge_*.deb and ironbridge-dev_*.deb instead of building
#   --no-install   do not check for or install the Debian packages the test needs
#
# Environment: IB_KEEP=1 keeps the root for inspection;
# IB_DEBIAN_MIRROR=URL overrides the mirror (default: the host's apt source for bookworm).
# Runs as root. Takes 2.5 to 4 minutes; needs the Debian mirror, nothing else from the network.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

cd "$(dirname "$(readlink -f "$0")")/../.."
debs=
install=1
while (($#)); do
    case "$1" in
        --debs) debs=$(readlink -f "${2:?--debs needs a folder}"); shift ;;
        --no-install) install=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
((EUID == 0)) || { echo "run.sh: the install test must run as root" >&2; exit 1; }

t0=$SECONDS
if ((install)); then
    # shellcheck source=tests/lib/deps.sh
    source tests/lib/deps.sh
    ib_install_deps --packaging || { echo "run.sh: could not install the required packages" >&2; exit 1; }
fi

if [[ -z $debs ]]; then
    echo "==================== install test: building the packages ===================="
    debs=$PWD/build-install/debs
    rm -rf "$debs"
    packaging/build-debs.sh --out "$debs"
fi

echo "==================== install test: building the simulator (build/) ===================="
[[ -f build/build.ninja ]] || meson setup build
ninja -C build tests/sim/ironbridge-sim

echo "==================== install test: Debian 12 root with systemd ===================="
# install_test.py cleans up after itself, also on failures and signals. Should it be killed
# outright, systemd in the root dies with it (parent-death signal) and this removes the rest:
# the root (never while anything is mounted below it) and the cgroups named after it.
work=$(mktemp -d /tmp/ib-install-XXXXXXXX)
leftovers() {
    set +e      # a cleanup goes on past what fails
    [[ -d $work ]] || return 0
    local name i
    name=$(basename "$work")
    for i in 1 2 3 4 5 6 7 8 9 10; do
        local dirs
        mapfile -t dirs < <(find /sys/fs/cgroup -type d -name "$name" -prune 2>/dev/null)
        ((${#dirs[@]})) || break
        find "${dirs[@]}" -depth -type d -exec rmdir {} + 2>/dev/null
        sleep 0.5
    done
    if grep -q " $work[/ ]" /proc/self/mountinfo; then
        echo "run.sh: not removing $work: something is still mounted below it" >&2
    elif [[ ${IB_KEEP:-0} != 1 ]]; then
        # Processes killed with the test may still be finishing a write: try a few times.
        for i in 1 2 3 4 5; do
            rm -rf --one-file-system "$work" 2>/dev/null && break
            sleep 1
        done
        [[ ! -e $work ]] || echo "run.sh: could not remove $work" >&2
    fi
}
trap leftovers EXIT
status=0
PYTHONPATH=$PWD/tests/lib /usr/bin/python3 tests/install/install_test.py --work "$work" \
    --debs "$debs" --sim build/tests/sim/ironbridge-sim \
    --sdk-plugin-source tests/unit/abi/abi_plugin.c || status=$?
echo "install test: exit status $status after $((SECONDS - t0)) s in all"
exit "$status"
