#!/usr/bin/python3
"""Derives the damaged sample stores from `whole` (see make_samples.sh and docs/store.md):
torn (the last record of the second segment half written), badcrc (a flipped byte inside
record 5), badheader (a flipped byte in the first segment's header), badckpt (a checkpoint of
garbage), junk (a 5 KiB file of garbage named like a segment). Deterministic bytes."""
import os
import random
import shutil
import sys

SEG1 = "seg-0000000000000001.ibq"
SEG2 = "seg-000000000000000b.ibq"


def frames(path):
    data = open(path, "rb").read()
    off, out = 32, []
    while off + 8 <= len(data):
        n = int.from_bytes(data[off + 4:off + 8], "little")
        out.append(off)
        off += 8 + n
    return out


def flip(path, off, bit=0x20):
    with open(path, "r+b") as f:
        f.seek(off)
        c = f.read(1)[0]
        f.seek(off)
        f.write(bytes([c ^ bit]))


def variant(root, name):
    d = os.path.join(root, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.join(root, "whole"), d)
    return d


def main(root):
    rnd = random.Random(14)
    d = variant(root, "torn")
    p = os.path.join(d, SEG2)
    os.truncate(p, frames(p)[9] + 11)
    d = variant(root, "badcrc")
    p = os.path.join(d, SEG1)
    flip(p, frames(p)[4] + 40)
    d = variant(root, "badheader")
    flip(os.path.join(d, SEG1), 17)
    d = variant(root, "badckpt")
    with open(os.path.join(d, "checkpoint"), "wb") as f:
        f.write(bytes(rnd.getrandbits(8) for _ in range(256)))
    d = variant(root, "junk")
    with open(os.path.join(d, "seg-0000000000000005.ibq"), "wb") as f:
        f.write(bytes(rnd.getrandbits(8) for _ in range(5120)))


if __name__ == "__main__":
    main(sys.argv[1])
