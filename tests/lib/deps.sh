# shellcheck shell=bash
# Installs the Debian 12 packages ironbridge needs to build, to run its tests, the demo and the
# benchmarks, and checks that every program and Python module they use is there.
# Source this file, then call:
#   ib_install_deps [--runtime-only | --packaging | --tests]
#                                                    install what is missing (apt-get, as root
#                                                    or with sudo)
#   ib_check_prereqs                                 one line per missing program, Python module
#                                                    or library, with the package providing it;
#                                                    status 1 if anything is missing
#   ib_install_peer_deps                             Debian's nodejs and npm when no `node` is
#                                                    on PATH, and what the npm test peers build
#                                                    with (called by ib_install_deps --tests)
# (--packaging: also what packaging/build-debs.sh and tests/install/run.sh need;
#  --runtime-only: only what the demo and the tests run, not the build tools;
#  --tests: also clang for the fuzz build and Node.js for the npm test peers)
#
# Every package is installed with --no-install-recommends: anything a test imports or runs
# (or the build links: gcc only recommends libc6-dev)
# must be listed here, including what a listed package only recommends (python3-pymodbus
# imports python3-serial and python3-serial-asyncio but only recommends them).
# tests/cleanroot/run.sh proves this list on a minimal Debian 12 root.

IB_BUILD_PKGS=(meson ninja-build gcc libc6-dev binutils pkgconf libmodbus-dev libpaho-mqtt-dev
               libssl-dev libsystemd-dev libyaml-dev libcmocka-dev libmicrohttpd-dev
               libprotobuf-c-dev protobuf-c-compiler)
# mosquitto, mosquitto-clients: the broker and mosquitto_sub/_pub; openssl: the tests' PKI;
# python3-*: the fixtures and the pymodbus peers; socat: RTU over a pty pair and TCP bridges;
# systemd: systemd-analyze (service-security); mount, util-linux: the store's tmpfs, setsid;
# procps: ps/kill; iproute2: ss (bench); git: the commit id in bench results; mbpoll: docs.
# protobuf-compiler, python3-protobuf, python3-paho-mqtt: the Sparkplug host checker.
IB_RUNTIME_PKGS=(mosquitto mosquitto-clients openssl python3 python3-pymodbus python3-serial
                 python3-serial-asyncio socat mbpoll procps systemd mount util-linux iproute2
                 git protobuf-compiler python3-protobuf python3-paho-mqtt)
IB_PACKAGING_PKGS=(debhelper dpkg-dev lintian git xz-utils debootstrap util-linux systemd)
IB_NODE_PKGS=(nodejs npm)
# Only for the test suite (--tests): clang and libFuzzer for the fuzz build (tests/fuzz/);
# prometheus: promtool and the server that scrapes the daemon in test_metrics.
IB_TEST_PKGS=(clang libclang-rt-14-dev prometheus)

# What ./test.sh, demo.sh and bench/run.sh run or import, and the package that provides it.
# Programs (a name on PATH or an absolute path):
IB_PREREQ_PROGRAMS=(meson:meson ninja:ninja-build cc:gcc nm:binutils pkg-config:pkgconf
                    /usr/bin/python3:python3 /usr/sbin/mosquitto:mosquitto
                    mosquitto_sub:mosquitto-clients mosquitto_pub:mosquitto-clients
                    openssl:openssl socat:socat systemd-analyze:systemd mount:mount
                    umount:mount setsid:util-linux timeout:coreutils ps:procps ss:iproute2
                    node:nodejs npm:npm g++:g++ make:make clang:clang
                    promtool:prometheus prometheus:prometheus
                    protoc-c:protobuf-c-compiler protoc:protobuf-compiler)
# Python modules, imported by /usr/bin/python3:
IB_PREREQ_PYTHON=(pymodbus:python3-pymodbus serial:python3-serial
                  serial_asyncio:python3-serial-asyncio google.protobuf:python3-protobuf
                  paho.mqtt:python3-paho-mqtt)
# pkg-config modules and headers the build needs:
IB_PREREQ_PKGCONFIG=(libmodbus:libmodbus-dev yaml-0.1:libyaml-dev libsystemd:libsystemd-dev
                     openssl:libssl-dev cmocka:libcmocka-dev
                     libmicrohttpd:libmicrohttpd-dev
                     libprotobuf-c:libprotobuf-c-dev)
IB_PREREQ_HEADERS=(/usr/include/stdio.h:libc6-dev /usr/include/MQTTAsync.h:libpaho-mqtt-dev
                   /usr/include/node/node.h:libnode-dev)

# ib_missing_pkgs PKG...: prints the packages that dpkg does not report as installed.
ib_missing_pkgs() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        [[ $status == ii* ]] || printf '%s\n' "$p"
    done
}

# ib_check_prereqs: checks every program, Python module, library and header above, all of
# them, and prints one line per missing piece: what it is and which Debian package has it.
ib_check_prereqs() {
    local e what pkg missing=0
    for e in "${IB_PREREQ_PROGRAMS[@]}"; do
        what=${e%:*} pkg=${e##*:}
        if [[ $what == /* ]]; then
            [[ -x $what ]] && continue
        else
            command -v "$what" >/dev/null 2>&1 && continue
        fi
        echo "missing prerequisite: program '$what' (Debian package $pkg)"
        missing=1
    done
    if [[ -x /usr/bin/python3 ]]; then
        for e in "${IB_PREREQ_PYTHON[@]}"; do
            what=${e%:*} pkg=${e##*:}
            /usr/bin/python3 -c "import $what" >/dev/null 2>&1 && continue
            echo "missing prerequisite: Python module '$what' for /usr/bin/python3" \
                 "(Debian package $pkg)"
            missing=1
        done
    fi
    if command -v pkg-config >/dev/null 2>&1; then
        for e in "${IB_PREREQ_PKGCONFIG[@]}"; do
            what=${e%:*} pkg=${e##*:}
            pkg-config --exists "$what" 2>/dev/null && continue
            echo "missing prerequisite: library '$what' for pkg-config (Debian package $pkg)"
            missing=1
        done
    fi
    for e in "${IB_PREREQ_HEADERS[@]}"; do
        what=${e%:*} pkg=${e##*:}
        [[ -f $what ]] && continue
        echo "missing prerequisite: header $what (Debian package $pkg)"
        missing=1
    done
    return "$missing"
}

# ib_apt_install PKG...: apt-get update and install (as root or with sudo), then checks.
ib_apt_install() {
    local -a sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "ib_install_deps: not root and sudo is not available." >&2
            echo "  Install these packages as root, then run again:" >&2
            echo "  apt-get install --no-install-recommends $*" >&2
            return 1
        fi
    fi
    if ! "${sudo[@]}" apt-get update; then
        echo "ib_install_deps: apt-get update failed; missing: $*" >&2
        return 1
    fi
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "$@"; then
        echo "ib_install_deps: apt-get install failed; missing: $*" >&2
        return 1
    fi
    local missing
    mapfile -t missing < <(ib_missing_pkgs "$@")
    if ((${#missing[@]} != 0)); then
        echo "ib_install_deps: still missing after install: ${missing[*]}" >&2
        return 1
    fi
}

ib_install_deps() {
    local runtime_only=0 packaging=0 tests=0
    case "${1-}" in
        --runtime-only) runtime_only=1 ;;
        --packaging) packaging=1 ;;
        --tests) tests=1 ;;
        "") ;;
        *) echo "ib_install_deps: unknown option '$1' (use --runtime-only, --packaging or --tests)" >&2
           return 2 ;;
    esac
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "ib_install_deps: dpkg-query not found; this helper expects Debian 12." >&2
        return 1
    fi

    local wanted=("${IB_RUNTIME_PKGS[@]}")
    ((runtime_only)) || wanted=("${IB_BUILD_PKGS[@]}" "${wanted[@]}")
    ((packaging == 0)) || wanted+=("${IB_PACKAGING_PKGS[@]}")
    ((tests == 0)) || wanted+=("${IB_TEST_PKGS[@]}")

    local missing
    mapfile -t missing < <(ib_missing_pkgs "${wanted[@]}")
    if ((${#missing[@]} == 0)); then
        echo "ib_install_deps: all ${#wanted[@]} required packages are installed."
    fi
    if ((${#missing[@]} != 0)); then
        echo "ib_install_deps: installing missing packages: ${missing[*]}"
        ib_apt_install "${missing[@]}" || return 1
    fi
    ((tests == 0)) || ib_install_peer_deps
}

# ib_install_node: the install step for npm test peers. A clean Debian 12 has no Node.js: take
# Debian's nodejs and npm when no `node` is on PATH; the peers must work with it (Node 18).
ib_install_node() {
    command -v node >/dev/null 2>&1 && return 0
    local missing
    mapfile -t missing < <(ib_missing_pkgs "${IB_NODE_PKGS[@]}")
    ((${#missing[@]} == 0)) || ib_apt_install "${missing[@]}"
}

# ib_install_peer_deps: what the npm test peers need besides Node.js (each test installs its
# peer from its pinned lock file: tests/peers/s7/build.sh, tests/peers/opcua/install.sh and tests/peers/sparkplug/install.sh through tests/lib/npm_ci.sh): the S7 peer
# (tests/peers/s7/build.sh builds npm node-snap7's bundled C++ source with node-gyp) needs the
# Node headers, g++ and make. Installed by what is missing (a command or a file), so a Node.js
# from another source, which ships its own npm and headers, is kept.
ib_install_peer_deps() {
    ib_install_node || return 1
    local -a want=()
    command -v npm >/dev/null 2>&1 || want+=(npm)
    [[ -f /usr/include/node/node.h ]] || want+=(libnode-dev)
    command -v g++ >/dev/null 2>&1 || want+=(g++)
    command -v make >/dev/null 2>&1 || want+=(make)
    ((${#want[@]} == 0)) || ib_apt_install "${want[@]}"
}
