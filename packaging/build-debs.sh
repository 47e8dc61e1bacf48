#!/bin/bash
# Builds the Debian packages ironbridge and ironbridge-dev from this working tree, checks them
# with lintian (any error or warning fails), and copies the .deb files into one folder.
#
#   packaging/build-debs.sh [--out DIR] [--no-lintian] [--nocheck]
#
#   --out DIR      where the .deb files go (default: build-deb/debs)
#   --no-lintian   skip lintian (it is run by default, and must be clean)
#   --nocheck      do not run the unit tests during the package build
#
# The working tree (tracked and untracked-but-not-ignored files, as they are on disk) becomes
# ironbridge_VERSION.orig.tar.xz, packaging/debian/ becomes its debian/, and dpkg-buildpackage
# builds the source and binary packages in build-deb/. Build dependencies are those of
# packaging/debian/control (dpkg-checkbuilddeps names what is missing), plus lintian.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

cd "$(dirname "$(readlink -f "$0")")/.."
top=$PWD
out=$top/build-deb/debs
lintian=1
nocheck=0
while (($#)); do
    case "$1" in
        --out) out=$(readlink -m "${2:?--out needs a folder}"); shift ;;
        --no-lintian) lintian=0 ;;
        --nocheck) nocheck=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build-debs.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

die() { echo "build-debs.sh: $*" >&2; exit 1; }

for tool in dpkg-buildpackage dpkg-checkbuilddeps dpkg-parsechangelog git xz; do
    command -v "$tool" >/dev/null || die "$tool not found; install dpkg-dev, git and xz-utils"
done
((lintian == 0)) || command -v lintian >/dev/null ||
    die "lintian not found; install it (apt-get install lintian) or pass --no-lintian"

# The upstream version lives in meson.build; the Debian revision in the changelog.
upstream=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -n1)
debversion=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[[ -n $upstream ]] || die "cannot read the project version from meson.build"
[[ ${debversion%-*} == "$upstream" ]] ||
    die "packaging/debian/changelog says $debversion but meson.build says $upstream; add a changelog entry"

work=$top/build-deb
src=$work/ironbridge-$upstream
orig=$work/ironbridge_$upstream.orig.tar.xz
rm -rf "$src" "$work"/ironbridge_* "$work"/ironbridge-dev_* "$work"/ironbridge-dbgsym_*
mkdir -p "$work" "$out"

# The orig tarball: what git would commit from this tree now (so uncommitted edits are built),
# without packaging/debian, which becomes debian/ of the Debian source package.
git ls-files -z --cached --others --exclude-standard |
    grep -zv '^packaging/debian/' |
    while IFS= read -r -d "" f; do if [[ -e $f ]]; then printf "%s\0" "$f"; fi; done |
    tar --null -T - --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime="@$(git log -1 --format=%ct 2>/dev/null || echo 0)" \
        --transform="s|^|ironbridge-$upstream/|" -cf - |
    xz -T0 -6 >"$orig"
tar -C "$work" -xf "$orig"
cp -a packaging/debian "$src/debian"

cd "$src"
if ! dpkg-checkbuilddeps; then
    die "missing build dependencies (above); install them with apt-get, e.g. source tests/lib/deps.sh && ib_install_deps --packaging"
fi
opts=("parallel=$(nproc)")
((nocheck == 0)) || opts+=(nocheck)
echo "build-debs.sh: dpkg-buildpackage in $src (DEB_BUILD_OPTIONS=${opts[*]})"
DEB_BUILD_OPTIONS="${opts[*]}" dpkg-buildpackage -us -uc -sa
cd "$work"

changes=$(ls "$work"/ironbridge_"${debversion}"_*.changes)
debs=("$work"/ironbridge_"${debversion}"_*.deb "$work"/ironbridge-dev_"${debversion}"_*.deb)
cp "${debs[@]}" "$out/"

if ((lintian)); then
    echo "build-debs.sh: lintian $(lintian --version | awk '{print $2}') on $(basename "$changes")"
    # Informational tags are shown too; errors and warnings fail the build.
    if ! lintian --display-info --fail-on error,warning "$changes"; then
        die "lintian reported errors or warnings (above)"
    fi
    echo "build-debs.sh: lintian: no errors, no warnings"
fi

echo "build-debs.sh: packages in $out:"
for d in "${debs[@]}"; do echo "  $(basename "$d")"; done
