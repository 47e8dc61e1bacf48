#!/bin/bash
# The SDK as an integrator gets it: install the development files (headers and
# ironbridge-plugin.pc) into a scratch DESTDIR, copy plugins/example out of the tree, build it
# with `pkg-config --cflags ironbridge-plugin` alone, and check that the daemon loads it and that
# it exports nothing but its descriptor.
#   out_of_tree.sh BUILD_DIR SOURCE_DIR IRONBRIDGE
set -euo pipefail
build=$1 src=$2 daemon=$3
tmp=$(mktemp -d /tmp/ib-sdk-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --tags devel --destdir "$tmp/root" --quiet
pc=$(find "$tmp/root" -name ironbridge-plugin.pc -print -quit)
[[ -n $pc ]] || { echo "FAIL: meson install --tags devel installed no ironbridge-plugin.pc" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp/root PKG_CONFIG_LIBDIR=
cflags=$(pkg-config --cflags ironbridge-plugin)
echo "pkg-config --cflags ironbridge-plugin: $cflags"
echo "plugindir=$(pkg-config --variable=plugindir ironbridge-plugin)" \
     "abi=$(pkg-config --variable=abi_major ironbridge-plugin).$(pkg-config --variable=abi_minor ironbridge-plugin)"

hdr=$src/include/ironbridge/plugin.h
for part in major minor; do
    want=$(awk -v k="IB_ABI_${part^^}" '$1 == "#define" && $2 == k {print $3}' "$hdr")
    got=$(pkg-config --variable=abi_$part ironbridge-plugin)
    [[ $got == "$want" ]] ||
        { echo "FAIL: ironbridge-plugin.pc says abi_$part=$got, plugin.h says $want" >&2; exit 1; }
done

# Out of the tree: nothing but the copied source and the installed headers.
mkdir -p "$tmp/work/plugins"
cp "$src/plugins/example/example.c" "$tmp/work/"
cd "$tmp/work"
# shellcheck disable=SC2086 # cflags are words
cc -std=c11 -Wall -Wextra -Werror -O2 -fPIC -fvisibility=hidden -shared $cflags \
   -o plugins/example.so example.c
exports=$(nm -D --defined-only plugins/example.so | awk '{print $3}')
[[ $exports == ironbridge_plugin ]] ||
    { echo "FAIL: the plugin exports more than its descriptor: $exports" >&2; exit 1; }
out=$("$daemon" --list-plugins --plugin-dir "$tmp/work/plugins")
echo "$out" | head -3
grep -q '^example .*(ABI 1\.1)' <<<"$out" ||
    { echo "FAIL: the daemon did not list the out-of-tree plugin" >&2; exit 1; }
echo "PASS: example built out of tree against the installed SDK and loaded by the daemon"
