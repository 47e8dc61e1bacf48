#!/bin/sh
# Regenerates the sample stores of tests/data/store/ from the store code of commit d153bda (the
# on-disk format of version 0.1): make_samples.c writes `whole`, make_samples.py derives the
# damaged variants from it. Run from the repository root; needs a built tree of that commit.
# The samples are checked in: regenerate only to add a case, never to follow a format change.
set -eu
here=tests/data/store
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" 2>/dev/null || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/src" d153bda >/dev/null
meson setup "$tmp/build" "$tmp/src" >/dev/null
ninja -C "$tmp/build" daemon/libibcore.a >/dev/null
cc -std=c11 -I"$tmp/src/daemon" -I"$tmp/src/include" -I"$tmp/build" -o "$tmp/gen" \
    "$here/make_samples.c" "$tmp/build/daemon/libibcore.a" \
    $(pkg-config --libs libsystemd yaml-0.1 openssl) -lpaho-mqtt3as -lpthread -ldl -lm
rm -rf "$here/whole"
"$tmp/gen" "$here/whole"
/usr/bin/python3 "$here/make_samples.py" "$here"
