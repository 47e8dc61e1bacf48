# shellcheck shell=bash
# Installs the Debian 12 packages ironbridge needs to build and to run its tests and demo.
# Source this file, then call: ib_install_deps [--runtime-only | --packaging]
# (--packaging: also what packaging/build-debs.sh and tests/install/run.sh need)

IB_BUILD_PKGS=(meson ninja-build gcc pkgconf libmodbus-dev libpaho-mqtt-dev libssl-dev
               libsystemd-dev libyaml-dev libcmocka-dev clang libclang-rt-14-dev)
IB_RUNTIME_PKGS=(mosquitto mosquitto-clients openssl python3 python3-pymodbus socat mbpoll
                 procps)
IB_PACKAGING_PKGS=(debhelper dpkg-dev lintian git xz-utils debootstrap util-linux systemd)

# ib_missing_pkgs PKG...: prints the packages that dpkg does not report as installed.
ib_missing_pkgs() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        [[ $status == ii* ]] || printf '%s\n' "$p"
    done
}

ib_install_deps() {
    local runtime_only=0 packaging=0
    case "${1-}" in
        --runtime-only) runtime_only=1 ;;
        --packaging) packaging=1 ;;
        "") ;;
        *) echo "ib_install_deps: unknown option '$1' (use --runtime-only or --packaging)" >&2
           return 2 ;;
    esac
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "ib_install_deps: dpkg-query not found; this helper expects Debian 12." >&2
        return 1
    fi

    local wanted=("${IB_RUNTIME_PKGS[@]}")
    ((runtime_only)) || wanted=("${IB_BUILD_PKGS[@]}" "${wanted[@]}")
    ((packaging == 0)) || wanted+=("${IB_PACKAGING_PKGS[@]}")

    local missing
    mapfile -t missing < <(ib_missing_pkgs "${wanted[@]}")
    if ((${#missing[@]} == 0)); then
        echo "ib_install_deps: all ${#wanted[@]} required packages are installed."
        return 0
    fi
    echo "ib_install_deps: installing missing packages: ${missing[*]}"

    local -a sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "ib_install_deps: not root and sudo is not available." >&2
            echo "  Install these packages as root, then run again:" >&2
            echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
            return 1
        fi
    fi

    if ! "${sudo[@]}" apt-get update; then
        echo "ib_install_deps: apt-get update failed; missing: ${missing[*]}" >&2
        return 1
    fi
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}"; then
        echo "ib_install_deps: apt-get install failed; missing: ${missing[*]}" >&2
        return 1
    fi

    mapfile -t missing < <(ib_missing_pkgs "${wanted[@]}")
    if ((${#missing[@]} != 0)); then
        echo "ib_install_deps: still missing after install: ${missing[*]}" >&2
        return 1
    fi
    return 0
}

# The S7 test peer (tests/peers/s7/build.sh builds npm node-snap7 1.0.9 from its bundled C++
# source with node-gyp): Node.js with its headers, npm, and a C++ toolchain. Installs only what
# is missing by command, so a Node.js from another source (which ships its own npm) is kept.
# Call: ib_install_s7_peer_deps
ib_install_s7_peer_deps() {
    local -a want=()
    command -v node >/dev/null 2>&1 || want+=(nodejs)
    command -v npm >/dev/null 2>&1 || want+=(npm)
    [[ -f /usr/include/node/node.h ]] || want+=(libnode-dev)
    command -v g++ >/dev/null 2>&1 || want+=(g++)
    command -v make >/dev/null 2>&1 || want+=(make)
    command -v python3 >/dev/null 2>&1 || want+=(python3)
    if ((${#want[@]} == 0)); then
        echo "ib_install_s7_peer_deps: node, npm, Node headers, g++, make and python3 are there."
        return 0
    fi
    local -a sudo=()
    ((EUID == 0)) || sudo=(sudo)
    echo "ib_install_s7_peer_deps: installing ${want[*]}"
    "${sudo[@]}" apt-get update &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${want[@]}"

# The OPC UA test peer (tests/integration/test_opcua.py): Node.js with npm (Debian 12's nodejs
# 18.19 is enough; node-opcua-server is pinned at 2.182.2, the newest that runs there), then
# node-opcua-server and its dependencies from the npm registry, as pinned by
# tests/peers/opcua/package-lock.json (npm ci, no install scripts). Needs the network once;
# later runs find it installed.
IB_OPCUA_PEER_PKGS=(nodejs npm)

ib_install_opcua_peer() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        local missing
        mapfile -t missing < <(ib_missing_pkgs "${IB_OPCUA_PEER_PKGS[@]}")
        if ((${#missing[@]} != 0)); then
            echo "ib_install_opcua_peer: installing ${missing[*]}"
            local -a sudo=()
            ((EUID == 0)) || sudo=(sudo)
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends "${missing[@]}" || return 1
        fi
    fi
    "$root/tests/peers/opcua/install.sh"
}
