#!/usr/bin/env python3
"""Write the seeds of fuzz_vhdx into OUTDIR: VHDX files built by tests/vhdxcraft.py,
each encoded as fuzz_vhdx reads its input (a sparse file: size in KiB, flags,
then records of offset, length and bytes for the runs that are not zeros).

    usage: vhdx-seeds.py OUTDIR
"""

import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import vhdxcraft as vc  # noqa: E402

MiB = vc.MiB
GAP = 64  # zeros that end a record


def encode(img, flags=0):
    """The fuzz input for @img: its non-zero runs, split where zeros run for GAP bytes."""
    out = bytearray(struct.pack("<IB", -(-img.file_size // 1024), flags))
    for page in sorted(img.buf.pages):
        data = bytes(img.buf.pages[page])
        base = page * vc.Sparse.PAGE
        i = 0
        while i < len(data):
            if data[i] == 0:
                i += 1
                continue
            start, zeros = i, 0
            while i < len(data) and i - start < 65535 and zeros < GAP:
                zeros = zeros + 1 if data[i] == 0 else 0
                i += 1
            end = i - zeros
            out += struct.pack("<IH", base + start, end - start) + data[start:end]
    return bytes(out)


def seeds():
    def pattern(n, seed):
        return bytes((seed * 31 + i * 7 + (i >> 9)) & 0xFF or 1 for i in range(n))

    yield "dynamic-512", vc.build(8 * MiB, "dynamic", block_size=MiB,
                                  writes=[(0, pattern(512, 1)), (3 * MiB + 512, pattern(1024, 2))])
    yield "fixed-4096", vc.build(3 * MiB, "fixed", block_size=MiB, logical=4096,
                                 writes=[(4096, pattern(4096, 3))])
    yield "differencing", vc.build(
        4 * MiB, "differencing", block_size=MiB,
        writes=[(512, pattern(1024, 4)), (2 * MiB + 4096, pattern(512, 5))],
        states={1: vc.ZERO, 3: vc.FULLY_PRESENT},
        locator=[("parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"),
                 ("parent_linkage2", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfc}"),
                 ("relative_path", ".\\base.vhdx"),
                 ("volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\b.vhdx"),
                 ("absolute_win32_path", "\\\\?\\C:\\VMs\\base.vhdx")])
    yield "chunks", vc.build(9 * 1024 * MiB, "differencing", block_size=MiB,
                             writes=[(4 * 1024 * MiB - 512, pattern(1024, 6))])
    # A dirty log: block 3's BAT entry only in the log.
    img = vc.build(8 * MiB, "dynamic", block_size=MiB, writes=[(3 * MiB, pattern(512, 7))])
    sector = img.layout["bat"]
    old = bytearray(img.get(sector, 4096))
    old[24:32] = bytes(8)
    img.dirty([sector], old={sector: bytes(old)})
    yield "dirty-log", img
    # A wrapped log of two entries with a zero descriptor.
    img = vc.build(8 * MiB, "dynamic", block_size=MiB, writes=[(0, pattern(512, 8))])
    guid = vc.new_guid()
    length = img.layout["log"][1]
    first = vc.log_entry(4, guid, img.sectors_of([sector]), tail=length - 8192,
                         flushed=img.file_size, last=img.file_size)
    second = vc.log_entry(5, guid, [("zero", 3 * MiB + 512 * 1024, 8192)], tail=length - 8192,
                          flushed=img.file_size, last=img.file_size)
    img.write_log([(length - 8192, first), (0, second)], guid)
    yield "wrapped-log", img
    # Relocation (fuzz_vhdx names the parent "p.vhdx"): a locator that must move past the
    # item after it, and one that a dirty log writes.
    yield "relocate-moved", vc.build(
        4 * MiB, "differencing", block_size=MiB, writes=[(512, pattern(512, 9))],
        locator=[("parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"),
                 ("relative_path", ".\\b")],
        extra_items=[(vc.guid("{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}"), 0, pattern(40, 10))])
    img = vc.build(4 * MiB, "differencing", block_size=MiB, writes=[(512, pattern(512, 11))])
    at = img.item_offset("parent_locator")
    sector = at - at % 4096
    img.dirty([sector], old={sector: bytes(4096)})
    yield "relocate-dirty", img


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: vhdx-seeds.py OUTDIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, img in seeds():
        with open(os.path.join(sys.argv[1], name), "wb") as f:
            f.write(encode(img))
    # One with the checksums kept as stored.
    img = next(seeds())[1]
    with open(os.path.join(sys.argv[1], "stored-checksums"), "wb") as f:
        f.write(encode(img, flags=1))


main()
