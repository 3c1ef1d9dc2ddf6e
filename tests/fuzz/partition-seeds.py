#!/usr/bin/env python3
"""Write the seeds of fuzz_partition into OUTDIR: partition tables crafted here,
each encoded as fuzz_partition reads its input (flags, the disk's sectors, the
length of the tail, then the bytes at the disk's start and the tail at its end).

    usage: partition-seeds.py OUTDIR
"""

import os
import struct
import sys
import zlib

LINUX = bytes.fromhex("af3dc60f838472478e793d69d8477de4")


def encode(head, tail, sectors, sector, flags=0):
    flags |= 1 if sector == 4096 else 0
    return struct.pack("<BIH", flags, sectors, len(tail)) + bytes(head) + bytes(tail)


def mbr_entry(table, slot, type_, start, count, status=0):
    table[446 + 16 * slot:462 + 16 * slot] = struct.pack("<B3sB3sII", status, b"\0" * 3,
                                                          type_, b"\0" * 3, start, count)
    table[510:512] = b"\x55\xaa"


def mbr_logical(sector):
    """Primary 1, extended 2 holding logical 5 and 6."""
    sectors = 4096
    head = bytearray(sector * 31)
    mbr_entry(head, 0, 0x83, 4, 10, status=0x80)
    mbr_entry(head, 1, 0x05, 20, 60)
    ebr1 = bytearray(sector)
    mbr_entry(ebr1, 0, 0x83, 2, 5)
    mbr_entry(ebr1, 1, 0x05, 10, 20)
    head[20 * sector:21 * sector] = ebr1
    ebr2 = bytearray(sector)
    mbr_entry(ebr2, 0, 0x82, 1, 8)
    head[30 * sector:31 * sector] = ebr2
    return encode(head, b"", sectors, sector)


def gpt(sector, entries=128, entry_size=128, parts=((2048, 4095), (4096, 6000))):
    sectors = 8192 if sector == 512 else 2048
    array = bytearray(entries * entry_size)
    for i, (first, last) in enumerate(parts):
        array[i * entry_size:i * entry_size + 56] = LINUX + bytes([i + 1] * 16) + \
            struct.pack("<QQQ", first, last, 0)
    array_sectors = -(-len(array) // sector)
    last = sectors - 1

    def header(lba, alternate, entries_lba):
        h = bytearray(struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, lba,
                                  alternate, 2 + array_sectors, last - 1 - array_sectors,
                                  b"\x5a" * 16, entries_lba, entries, entry_size,
                                  zlib.crc32(array)))
        h[16:20] = struct.pack("<I", zlib.crc32(h))
        return h + bytearray(sector - len(h))

    pmbr = bytearray(sector)
    mbr_entry(pmbr, 0, 0xEE, 1, sectors - 1)
    head = pmbr + header(1, last, 2) + array
    tail = array + bytearray(array_sectors * sector - len(array)) + \
        header(last, 1, last - array_sectors)
    return encode(head, tail, sectors, sector)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {
        "mbr-logical": mbr_logical(512),
        "mbr-logical-4k": mbr_logical(4096),
        "gpt": gpt(512),
        "gpt-4k": gpt(4096),
        "gpt-small-array": gpt(512, entries=4),
    }
    # The primary's header damaged: the backup is read.
    damaged = bytearray(seeds["gpt"])
    damaged[7 + 512 + 60] ^= 1
    seeds["gpt-primary-damaged"] = struct.pack("<B", damaged[0] | 2) + bytes(damaged[1:])
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
