#!/bin/bash
# The clean-root check: proves the README's two commands on a machine with nothing installed.
# Makes a minimal Debian 12 root (debootstrap --variant=minbase bookworm, this machine's apt
# sources), puts a clean copy of the committed tree in it (git archive HEAD), and runs there,
# as root, in a chroot of its own mount and PID namespaces that shares this machine's network
# (apt reaches the archive; the tests use loopback only):
#
#   1. ./demo.sh --seconds 10   (installs the packages it lacks; must print data messages)
#   2. ./test.sh --plain        (the plain pass of the whole suite: every test Ok)
#
#   tests/cleanroot/run.sh [--keep] [--only-demo] [--ref COMMIT]
#
#   --keep        keep the work folder (root, logs) for inspection (also IB_KEEP=1)
#   --only-demo   stop after the demo (to check the install step quickly)
#   --ref COMMIT  test this commit instead of HEAD (e.g. one made with git commit-tree to
#                 see the check fail with a package removed from deps.sh)
#
# Environment: IB_DEBIAN_MIRROR=URL overrides the mirror debootstrap uses (default: the host's
# apt source for bookworm). The host's package cache (/var/cache/apt/archives) is shared with
# the root and with debootstrap, as tests/install/run.sh does: nothing is downloaded twice.
# It fails naming the command that failed and what was missing. Runs as root; 10-15 minutes.
set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

cd "$(dirname "$(readlink -f "$0")")/../.." || exit 2
keep=${IB_KEEP:-0}
only_demo=0
ref=HEAD
while (($#)); do
    case "$1" in
        --keep) keep=1 ;;
        --only-demo) only_demo=1 ;;
        --ref) ref=${2:?--ref needs a commit}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cleanroot: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

fail() { echo "cleanroot: FAILED: $*" >&2; exit 1; }
((EUID == 0)) || fail "must run as root (debootstrap, chroot, mounts)"

# shellcheck source=tests/lib/deps.sh
source tests/lib/deps.sh
for tool in debootstrap unshare setpriv git; do
    command -v "$tool" >/dev/null 2>&1 && continue
    ib_apt_install debootstrap util-linux git || fail "cannot install debootstrap on this machine"
    break
done

SUITE=bookworm
CACHE=/var/cache/apt/archives
phases=()
t_all=$SECONDS

# mirror: the first URI of the host's apt sources that serves bookworm.
mirror() {
    if [[ -n ${IB_DEBIAN_MIRROR:-} ]]; then echo "$IB_DEBIAN_MIRROR"; return; fi
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
            { u = ""; ok = 0
              for (i = 1; i <= NF; i++) {
                  if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
                  if ($i ~ /^Suites:/) { n = split($i, b, /[ \t]+/)
                      for (j = 2; j <= n; j++) if (b[j] == s) ok = 1 } }
              if (ok && u != "") { print u; exit } }' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        uri=$(awk -v s="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++
              if ($2 ~ /^\[/) i++; if ($(i + 1) == s) { print $i; exit } }' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    echo http://deb.debian.org/debian
}

work=$(mktemp -d /tmp/ib-cleanroot-XXXXXXXX)
root=$work/root
inner=    # the process running a command in the root (its namespaces die with it)
cleanup() {
    if [[ -n $inner ]]; then
        kill -KILL "$inner" 2>/dev/null
        wait "$inner" 2>/dev/null
        sleep 1     # the root's PID namespace ends with its init, a moment after
    fi
    if grep -q " ${work}[/ ]" /proc/self/mountinfo; then
        echo "cleanroot: not removing $work: something is still mounted below it" >&2
    elif ((keep)); then
        echo "cleanroot: kept $work (root in $root, logs in $work/*.log)"
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# phase NAME SECONDS STATUS: records one line of the summary.
phase() { phases+=("$(printf '%-28s %5d s   %s' "$1" "$2" "$3")"); }
summary() {
    echo
    echo "==================== cleanroot: summary ===================="
    printf '%s\n' "${phases[@]}"
    echo "total: $((SECONDS - t_all)) s"
}

# ---- 1. the minimal root
src_mirror=$(mirror)
echo "==================== cleanroot: debootstrap --variant=minbase $SUITE ($src_mirror) ===================="
t=$SECONDS
mkdir -p "$CACHE"
if ! setpriv --pdeathsig KILL -- unshare --mount --pid --fork --kill-child --mount-proc \
        --propagation private \
        debootstrap --variant=minbase --cache-dir="$CACHE" "$SUITE" "$root" "$src_mirror" \
        >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    phase debootstrap $((SECONDS - t)) FAILED
    summary
    fail "debootstrap --variant=minbase $SUITE $root $src_mirror (log above)"
fi
phase debootstrap $((SECONDS - t)) ok

# The host's apt sources (same mirror, security and updates), name resolution, the tree.
t=$SECONDS
rm -f "$root/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && cp "$f" "$root$f"
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# What the Debian installer writes on every machine (debootstrap writes no /etc/hosts; without
# it `localhost` does not resolve).
printf '127.0.0.1\tlocalhost\n127.0.1.1\tib-cleanroot\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$root/etc/hosts"
echo ib-cleanroot >"$root/etc/hostname"
# The host's trust in TLS for the package registries: where this machine reaches the npm
# registry through a TLS-inspecting gateway whose CA it trusts (its own bundle, named by
# NODE_EXTRA_CA_CERTS or the system bundle), the root gets the same bundle for Node.js, as it
# gets the host's apt sources. A fresh machine without such a gateway needs nothing of this.
ca_bundle=${NODE_EXTRA_CA_CERTS:-}
[[ -n $ca_bundle && -f $ca_bundle ]] || ca_bundle=
if [[ -z $ca_bundle ]] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null &&
        [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    ca_bundle=/etc/ssl/certs/ca-certificates.crt
fi
node_ca=()
if [[ -n $ca_bundle ]]; then
    mkdir -p "$root/etc/ib-cleanroot"
    cp -L "$ca_bundle" "$root/etc/ib-cleanroot/host-ca.crt"
    node_ca=(NODE_EXTRA_CA_CERTS=/etc/ib-cleanroot/host-ca.crt)
fi
mkdir -p "$root/src/ironbridge"
[[ $ref != HEAD || -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] ||
    echo "cleanroot: note: uncommitted changes are not tested (git archive HEAD)"
git archive --format=tar "$ref" | tar -x -C "$root/src/ironbridge" ||
    fail "git archive $ref | tar -x into the root"
phase "sources + git archive" $((SECONDS - t)) "ok ($ref = $(git rev-parse --short "$ref"))"

# in_root LOG COMMAND: runs COMMAND with bash in /src/ironbridge of the root, as root, in its
# own mount and PID namespaces (all of it dies with this script), with /proc, /sys, /dev and
# the host's package cache mounted; output to the terminal and to LOG.
in_root() {
    local log=$1 cmd=$2
    setpriv --pdeathsig KILL -- unshare --mount --pid --fork --kill-child --propagation private \
        /bin/bash -c '
            set -e
            root=$1
            mount -t proc proc "$root/proc"
            mount --rbind /sys "$root/sys"
            mount --rbind /dev "$root/dev"
            mount --bind "$3" "$root/var/cache/apt/archives"
            exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                HOME=/root LANG=C.UTF-8 TERM=dumb ${4:+"$4"} /bin/bash -c "cd /src/ironbridge && $2"
        ' in_root "$root" "$cmd" "$CACHE" "${node_ca[@]}" </dev/null > >(tee "$log") 2>&1 &
    inner=$!
    local rc=0
    wait "$inner" || rc=$?
    inner=
    return "$rc"
}

# explain LOG: the lines of LOG, and of the suite's own test log in the root, that say what
# was missing or what failed.
explain() {
    grep -E 'missing prerequisite|prerequisite missing|No module named|not found|ib_install_deps: .*(fail|missing)|^(Fail|Timeout): +[1-9]|FAIL|test.sh: FAILED' "$1" |
        awk '!seen[$0]++' | head -n 20 | sed 's/^/  /'
    local testlog=$root/src/ironbridge/build/meson-logs/testlog.txt
    [[ ! -f $testlog ]] ||
        grep -E '^FAIL |^not ok |ERROR: |error: Failure' "$testlog" | head -n 12 | sed 's/^/  test log: /'
}

# ---- 2. the demo (its install step installs what the root lacks)
echo "==================== cleanroot: ./demo.sh --seconds 10 ===================="
t=$SECONDS
in_root "$work/demo.log" "./demo.sh --seconds 10"
rc=$?
data=$(grep -cE '^ironbridge/[^ ]+ \{.*"values"' "$work/demo.log")
if ((rc != 0 || data == 0)); then
    phase "./demo.sh --seconds 10" $((SECONDS - t)) "FAILED (exit status $rc, $data data messages)"
    summary
    echo "cleanroot: what went wrong:" >&2
    explain "$work/demo.log" >&2
    [[ ! -f $root/src/ironbridge/.demo/ironbridge.log ]] ||
        tail -n 8 "$root/src/ironbridge/.demo/ironbridge.log" | sed 's/^/  gateway: /' >&2
    fail "./demo.sh --seconds 10 in the clean root: exit status $rc, $data data messages printed"
fi
phase "./demo.sh --seconds 10" $((SECONDS - t)) "ok ($data data messages)"
((only_demo)) && { summary; exit 0; }

# ---- 3. the plain pass of the suite
echo "==================== cleanroot: ./test.sh --plain ===================="
t=$SECONDS
in_root "$work/test.log" "./test.sh --plain"
rc=$?
oks=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$work/test.log" | tail -n 1)
if ((rc != 0)); then
    phase "./test.sh --plain" $((SECONDS - t)) "FAILED (exit status $rc)"
    summary
    echo "cleanroot: what went wrong:" >&2
    explain "$work/test.log" >&2
    fail "./test.sh --plain in the clean root: exit status $rc"
fi
phase "./test.sh --plain" $((SECONDS - t)) "ok (Ok: ${oks:-?})"
summary
echo "cleanroot: PASSED: ./demo.sh and ./test.sh on a fresh Debian 12 root"
