"""core/stream's dynamic VHDX over a chain, checked by the referees: VHD chains built
byte by byte by tests/vhdcraft.py, their merged content computed here from the writes
(each level's writes laid over the ones below, the rest zeros), the synthesized VHDX
served by tests/streamdump and written to a file, then:

- parsed here field by field from [MS-VHDX] (checksums computed from scratch with
  vhdxcraft's CRC-32C): file identifier, headers, region tables, metadata, and every
  BAT entry against the blocks the model says some level allocates;
- `qemu-img info`, `check` (clean) and `compare` against the raw merged content;
- where QEMU 7.2 refuses (4096-byte logical sectors): tests/vhdxdump (the test-only
  reader of core/vhdx) and libvhdi (vhdiinfo, vhdimount);
- any range read alone equals the same bytes of the whole file read at once;
- a 64 TiB disk of 1 MiB blocks (a 513 MiB BAT) made and written in little memory,
  measured with /usr/bin/time -v.

No VHD file can describe more than 2 TiB, and chains read only VHD for now: the
64 TiB disk is a made-up chain served by streamdump through wrapped chain functions.
"""

import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import vhdcraft as vd  # noqa: E402
import vhdxcraft as vc  # noqa: E402
from taplib import Skip, have, run, run_tests, sanitizer_clean  # noqa: E402

STREAMDUMP = os.environ.get("STREAMDUMP", "streamdump")
VHDXDUMP = os.environ.get("VHDXDUMP", "vhdxdump")
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
SECTOR = 512

# The namespace of the name-based UUIDs impexfs gives synthesized disks.
NAMESPACE = uuid.UUID("6b1f4e0a-932d-4c51-a73e-58c40d9b72e6")


def name_uuid(name):
    """The SHA-1 name-based UUID of @name (bytes or text) in NAMESPACE (RFC 4122 4.3)."""
    if isinstance(name, str):
        name = name.encode()
    raw = bytearray(hashlib.sha1(NAMESPACE.bytes + name).digest()[:16])
    raw[6] = raw[6] & 0x0F | 0x50
    raw[8] = raw[8] & 0x3F | 0x80
    return uuid.UUID(bytes=bytes(raw))


def need(*tools):
    for tool in tools:
        if not have(tool):
            raise Skip("%s is not installed" % tool)


def sd(*args, check=True, text=True, stdout=None, timeout=600):
    result = run([STREAMDUMP] + [str(a) for a in args], check=check, text=text, stdout=stdout,
                 timeout=timeout)
    sanitizer_clean(result)
    return result


def keyvalues(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def data(n, seed):
    """@n bytes, never a whole sector of zeros."""
    out = bytearray(hashlib.sha256(b"%d" % seed).digest() * (n // 32 + 1))[:n]
    for i in range(0, n, SECTOR):
        out[i] |= 1
    return bytes(out)


# ---- chains and their merged content ----


class Chain:
    """VHD files base.vhd, level1.vhd, ... made by vhdcraft from lists of writes, and
    what their chain reads as: the writes in order, sparse, in expected.raw."""

    def __init__(self, size, levels, block=vd.DEFAULT_BLOCK, fixed_base=False):
        self.size = size
        self.block = block
        self.fixed_base = fixed_base
        self.levels = levels
        parent = None
        for i, writes in enumerate(levels):
            name = self.name(i)
            if i == 0 and fixed_base:
                img = vd.fixed(size, writes=writes)
            elif i == 0:
                img = vd.dynamic(size, block_size=block, writes=writes)
            else:
                img = vd.differencing(parent, size, parent_name=self.name(i - 1),
                                      locators=(("W2ru", ".\\" + self.name(i - 1)),),
                                      writes=writes, block_size=block)
            img.save(name)
            parent = img
        with open("expected.raw", "wb") as f:
            f.truncate(size)
            for writes in levels:
                for offset, raw in writes:
                    f.seek(offset)
                    f.write(raw)

    @staticmethod
    def name(i):
        return "base.vhd" if i == 0 else "level%d.vhd" % i

    @property
    def top(self):
        return self.name(len(self.levels) - 1)

    def allocated(self, start, length):
        """Whether a level allocates a VHD block that meets [start, start+length)."""
        if self.fixed_base:
            return True
        end = min(start + length, self.size)
        for writes in self.levels:
            for offset, raw in writes:
                # vhdcraft allocates every block a write touches.
                first = offset // self.block * self.block
                last = (offset + len(raw) + self.block - 1) // self.block * self.block
                if first < end and start < last:
                    return True
        return False

    def expected(self, offset, length):
        with open("expected.raw", "rb") as f:
            f.seek(offset)
            return f.read(length)


# ---- an independent reading of the VHDX ----


def le(fmt, raw, at):
    return struct.unpack_from(fmt, raw, at)[0]


def fields(table, raw, base=0):
    return {name: le(fmt, raw, base + at) for name, (at, fmt) in table.items()}


def parse(path, blocks=None):
    """Read @path as [MS-VHDX] says, checking every checksum and the layout impexfs
    promises (docs/VHDX.md). Returns the parameters and, for the payload blocks
    @blocks (default all), their BAT entries as {block: (state, offset)}."""
    with open(path, "rb") as f:
        head = f.read(4 * MiB)
        size = os.fstat(f.fileno()).st_size

        assert head[:8] == b"vhdxfile", head[:8]
        assert head[8:8 + 14] == "impexfs".encode("utf-16-le"), head[8:40]
        hdr = []
        for at in vc.HEADER_AT:
            raw = bytearray(head[at:at + 4 * KiB])
            h = fields(vc.HEADER_FIELDS, raw)
            raw[4:8] = bytes(4)
            assert h["signature"] == b"head" and h["checksum"] == vc.crc32c(raw), h
            assert h["version"] == 1 and h["log_version"] == 0, h
            assert h["log_guid"] == bytes(16), "the log must be empty"
            assert h["log_offset"] == MiB and h["log_length"] == MiB, h
            hdr.append(h)
        assert (hdr[0]["sequence_number"], hdr[1]["sequence_number"]) == (1, 2), hdr
        for name in ("file_write_guid", "data_write_guid"):
            assert hdr[0][name] == hdr[1][name] and hdr[0][name] != bytes(16), name
        regions = []
        for at in vc.REGION_TABLE_AT:
            raw = bytearray(head[at:at + 64 * KiB])
            r = fields(vc.REGION_HEADER_FIELDS, raw)
            raw[4:8] = bytes(4)
            assert r["signature"] == b"regi" and r["checksum"] == vc.crc32c(raw), r
            entries = {}
            for i in range(r["entry_count"]):
                e = fields(vc.REGION_ENTRY_FIELDS, raw, 16 + 32 * i)
                assert e["required"] == 1, e
                entries[e["guid"]] = (e["file_offset"], e["length"])
            regions.append(entries)
        assert regions[0] == regions[1] and len(regions[0]) == 2, regions
        meta_at, meta_len = regions[0][vc.REGION_METADATA]
        bat_at, bat_len = regions[0][vc.REGION_BAT]
        assert (meta_at, meta_len, bat_at) == (2 * MiB, MiB, 3 * MiB), regions
        assert bat_len % MiB == 0 and bat_len > 0, bat_len
        assert not any(head[320 * KiB:2 * MiB]), "the reserved space and the log are zeros"

        table = head[meta_at:meta_at + 64 * KiB]
        m = fields(vc.METADATA_HEADER_FIELDS, table)
        assert m["signature"] == b"metadata" and m["entry_count"] == 5, m
        items = {}
        for i in range(m["entry_count"]):
            e = fields(vc.METADATA_ENTRY_FIELDS, table, 32 + 32 * i)
            name = [k for k, v in vc.ITEMS.items() if v == e["item_id"]]
            assert name and name[0] != "parent_locator", e
            assert e["flags"] == vc.ITEM_FLAGS[name[0]] and e["offset"] >= 64 * KiB, e
            items[name[0]] = head[meta_at + e["offset"]:meta_at + e["offset"] + e["length"]]
        block_size, flags = struct.unpack("<II", items["file_parameters"])
        assert flags == 0, "a dynamic disk: neither LeaveBlockAllocated nor HasParent"
        p = {
            "block_size": block_size,
            "disk_size": le("<Q", items["disk_size"], 0),
            "disk_id": items["disk_id"],
            "logical": le("<I", items["logical_sector_size"], 0),
            "physical": le("<I", items["physical_sector_size"], 0),
            "data_write_guid": hdr[1]["data_write_guid"],
            "file_write_guid": hdr[1]["file_write_guid"],
            "file_size": size,
            "bat_length": bat_len,
        }
        ratio = (1 << 23) * p["logical"] // block_size
        count = -(-p["disk_size"] // block_size)
        entries = count + (count - 1) // ratio
        assert bat_len == -(-entries * 8 // MiB) * MiB, (bat_len, entries)
        p.update(ratio=ratio, block_count=count)

        # The BAT: blocks FULLY_PRESENT in disk order right after it, the rest and
        # every sector bitmap entry NOT_PRESENT (zero).
        bat = {}
        want = range(count) if blocks is None else blocks
        if blocks is None:
            f.seek(bat_at)
            raw = f.read(bat_len)
            for i in range(0, len(raw), 8):
                entry = le("<Q", raw, i)
                index = i // 8
                if index % (ratio + 1) == ratio or index >= entries:
                    assert entry == 0, "sector bitmap entry %d is 0x%x" % (index, entry)
        for b in want:
            f.seek(bat_at + 8 * (b + b // ratio))
            entry = le("<Q", f.read(8), 0)
            assert entry & 0xFFFF8 == 0, hex(entry)
            bat[b] = (entry & 7, entry >> 20 << 20)
        present = [b for b in sorted(bat) if bat[b][0] == vc.FULLY_PRESENT]
        assert all(bat[b] == (vc.NOT_PRESENT, 0) for b in bat if b not in present), bat
        if blocks is None:
            for i, b in enumerate(present):
                assert bat[b][1] == bat_at + bat_len + i * block_size, (b, bat[b])
            assert size == bat_at + bat_len + len(present) * block_size, size
        p["bat"] = bat
        return p


def check_against_model(chain, path, block, logical=512, physical=4096):
    """The file's structure and BAT as the chain's model wants: a block is stored
    exactly when some level allocates part of it."""
    p = parse(path)
    assert (p["block_size"], p["logical"], p["physical"]) == (block, logical, physical), p
    assert p["disk_size"] == chain.size, p
    for b, (state, _) in p["bat"].items():
        want = chain.allocated(b * block, block)
        assert (state == vc.FULLY_PRESENT) == want, "block %d: state %d" % (b, state)
    return p


def qemu_agrees(path, size, block):
    """qemu-img opens the file as a VHDX of @size bytes and @block-byte clusters,
    finds no fault, and reads it as expected.raw."""
    info = run(["qemu-img", "info", "-f", "vhdx", path]).stdout
    assert "virtual size: " in info and "(%d bytes)" % size in info, info
    assert "cluster_size: %d" % block in info, info
    check = run(["qemu-img", "check", "-f", "vhdx", path], check=False)
    assert check.returncode == 0 and "No errors were found" in check.stdout, check
    compare = run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", path, "expected.raw"],
                  check=False)
    assert compare.returncode == 0, compare


def reader_agrees(chain, path, ranges):
    """core/vhdx (tests/vhdxdump) reads @ranges of the file as the model says."""
    for offset, length in ranges:
        got = run([VHDXDUMP, "read", path, offset, length], text=False).stdout
        assert got == chain.expected(offset, length), "bytes %d+%d differ" % (offset, length)


def vhdimount_read(path):
    """The disk libvhdi's vhdimount serves for @path, copied to vhdi.raw."""
    os.mkdir("mnt")
    daemon = subprocess.Popen(["vhdimount", path, "mnt"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if os.path.exists("mnt/vhdi1"):
                break
            assert daemon.poll() is None, daemon.stderr.read()
            time.sleep(0.1)
        shutil.copyfile("mnt/vhdi1", "vhdi.raw")
    finally:
        run(["fusermount3", "-u", "mnt"], check=False)
        daemon.wait(timeout=60)
        os.rmdir("mnt")
    return "vhdi.raw"


def three_levels(size):
    """Sector-granular writes on three levels: first and last sector, runs that
    straddle blocks, overlaps, and zeros written over data."""
    last = size - SECTOR
    return [
        [(0, data(SECTOR, 1)), (3 * MiB - 1536, data(4096, 2)), (9 * MiB + 512, data(1024, 3)),
         (20 * MiB, data(2 * MiB, 4)), (last, data(SECTOR, 5))],
        [(3 * MiB - 512, data(1536, 6)), (11 * MiB + 7 * SECTOR, data(3 * SECTOR, 7)),
         (20 * MiB + 4096, bytes(8192)), (40 * MiB - 512, data(1024, 8))],
        [(512, data(SECTOR, 9)), (20 * MiB + MiB - 512, data(1024, 10)),
         (33 * MiB, bytes(2 * MiB)), (last - 4096, data(4096, 11))],
    ]


# ---- tests ----


def test_merged_chain_against_qemu():
    """A three-level chain merged into one dynamic VHDX at several block and sector
    sizes: its structure parsed here, QEMU's check clean and its reading equal to the
    merged content; core/vhdx reads it alike. The disk ends inside a block."""
    need("qemu-img")
    size = 61 * MiB + 3 * SECTOR
    chain = Chain(size, three_levels(size))
    for block, physical in ((MiB, 512), (2 * MiB, 4096), (32 * MiB, None)):
        out = "merged-%d.vhdx" % block
        args = ["--seed", "vm/disk0", "--block", block]
        if physical:
            args += ["--physical", physical]
        sd(*args, "write", chain.top, out)
        check_against_model(chain, out, block, physical=physical or 4096)
        qemu_agrees(out, size, block)
        reader_agrees(chain, out, [(0, size)])
        os.unlink(out)


def test_fixed_base_every_block_stored():
    """Over a fixed base every block is stored, the last one partly past the disk."""
    need("qemu-img")
    size = 9 * MiB + 4096
    chain = Chain(size, [[(MiB, data(4096, 20))], [(size - 1024, data(1024, 21))]],
                  fixed_base=True)
    sd("--seed", "f", "--block", MiB, "write", chain.top, "fixed.vhdx")
    p = check_against_model(chain, "fixed.vhdx", MiB)
    assert [s for s, _ in p["bat"].values()] == [vc.FULLY_PRESENT] * 10, p["bat"]
    qemu_agrees("fixed.vhdx", size, MiB)


def test_compact_leaves_out_zero_blocks():
    """stream_write_compact: the blocks whose merged content is all zeros (written
    over with zeros, or allocated by a level that wrote zeros) are left out, the rest
    moved up; the file is as QEMU wants and reads the same."""
    need("qemu-img")
    size = 16 * MiB
    chain = Chain(size, [
        [(0, data(4096, 30)), (4 * MiB, data(MiB, 31)), (10 * MiB, data(512, 32))],
        [(4 * MiB, bytes(2 * MiB)), (8 * MiB, bytes(4096)), (15 * MiB, data(512, 33))],
    ])
    out = sd("--seed", "c", "--block", MiB, "compact", chain.top, "flat.vhdx").stdout
    p = parse("flat.vhdx")
    kept = sorted(b for b, (s, _) in p["bat"].items() if s == vc.FULLY_PRESENT)
    # VHD blocks of 2 MiB: 0-1 hold data in 0, 4-5 became zeros, 8-9 only zeros, 10-11
    # data in 10, 14-15 data in 15.
    assert kept == [0, 10, 15], kept
    assert keyvalues(out)["size"] == str(p["file_size"]), out
    assert p["file_size"] == 4 * MiB + 3 * MiB, p["file_size"]
    qemu_agrees("flat.vhdx", size, MiB)
    # Zero runs inside the kept blocks, the log and the empty BAT stay holes.
    assert os.stat("flat.vhdx").st_blocks * 512 < 2 * MiB, os.stat("flat.vhdx").st_blocks
    # Written whole, the same chain keeps them: the stream is not the compacted file.
    sd("--seed", "c", "--block", MiB, "write", chain.top, "whole.vhdx")
    whole = parse("whole.vhdx")
    assert sorted(b for b, (s, _) in whole["bat"].items() if s) == [0, 1, 4, 5, 8, 9, 10, 11,
                                                                    14, 15]


def test_4096_byte_logical_sectors():
    """Logical sectors of 4096 bytes (QEMU 7.2 refuses them): the structure parsed
    here, core/vhdx and libvhdi (vhdiinfo, and vhdimount's content) read the merged
    content; a disk that is not whole 4096-byte sectors is refused."""
    size = 44 * MiB
    chain = Chain(size, three_levels(size))
    for block in (MiB, 4 * MiB):
        out = "l4k-%d.vhdx" % block
        sd("--seed", "s", "--block", block, "--logical", 4096, "--physical", 4096, "write",
           chain.top, out)
        p = check_against_model(chain, out, block, logical=4096, physical=4096)
        assert p["ratio"] == (1 << 23) * 4096 // block, p["ratio"]
        info = keyvalues(run([VHDXDUMP, "info", out]).stdout)
        assert info["logical_sector_size"] == "4096", info
        assert info["chunk_ratio"] == str(p["ratio"]), info
        reader_agrees(chain, out, [(0, size)])
        if have("vhdiinfo"):
            text = run(["vhdiinfo", out]).stdout
            assert re.search(r"Bytes per sector\s*:\s*4096 bytes", text), text
            assert "(%d bytes)" % size in text, text
        if have("vhdimount") and os.path.exists("/dev/fuse"):
            assert sha(vhdimount_read(out)) == sha("expected.raw"), "vhdimount reads otherwise"
    if have("qemu-img"):
        refused = run(["qemu-img", "info", "-f", "vhdx", out], check=False)
        assert refused.returncode != 0, "QEMU 7.2 was known to refuse 4096-byte sectors"
    # 40 MiB + 512 bytes is not whole 4096-byte sectors.
    odd = Chain(40 * MiB + SECTOR, [[(0, data(SECTOR, 40))]])
    bad = sd("--seed", "s", "--logical", 4096, "info", odd.top, check=False)
    assert bad.returncode == 1, bad
    assert "is not a whole number of 4096-byte sectors" in bad.stderr, bad.stderr


def test_disks_larger_than_one_chunk():
    """1 MiB blocks: a chunk is 4 GiB at 512-byte sectors (ratio 4096) and 32 GiB at
    4096 (ratio 32768). 9 GiB and 33 GiB chains span three and two chunks: every
    sector bitmap entry interleaved in the BAT is NOT_PRESENT, payload entries past
    them are shifted by one per chunk, and the content reads right across the chunk
    edges (QEMU for 512-byte sectors, core/vhdx for both)."""
    for logical, size in ((512, 9 * GiB), (4096, 33 * GiB)):
        chunk = (1 << 23) * logical
        writes = [
            [(0, data(4096, 50)), (chunk - 2048, data(4096, 51)),  # straddles chunks 0 and 1
             (size - SECTOR, data(SECTOR, 52))],
            [(chunk + 5 * MiB + 512, data(1024, 53)), (size - 3 * MiB, data(2 * MiB, 54))],
        ]
        chain = Chain(size, writes)
        out = "big-%d.vhdx" % logical
        sd("--seed", "b", "--block", MiB, "--logical", logical, "--physical", 4096, "write",
           chain.top, out)
        p = check_against_model(chain, out, MiB, logical=logical)
        assert p["ratio"] == chunk // MiB and p["block_count"] > p["ratio"], p["ratio"]
        stored = sorted(b for b, (s, _) in p["bat"].items() if s)
        assert chunk // MiB in stored and chunk // MiB - 1 in stored, stored
        ranges = [(0, 2 * MiB), (chunk - 2 * MiB, 4 * MiB), (chunk + 4 * MiB, 3 * MiB),
                  (2 * chunk - 2 * MiB, 4 * MiB), (size - 4 * MiB, 4 * MiB)]
        reader_agrees(chain, out, [(o, n) for o, n in ranges if o + n <= size])
        # vhdxdump's map of the whole disk: stored blocks "here", the rest zeros.
        runs = run([VHDXDUMP, "map", out, 0, size // logical]).stdout.split("\n")
        here = sum(int(line.split()[1]) for line in runs if line and line.split()[2] == "here")
        assert here * logical == len(stored) * MiB, (here, len(stored))
        if logical == 512 and have("qemu-img"):
            qemu_agrees(out, size, MiB)
        os.unlink(out)


def test_arbitrary_ranges_equal_whole_read():
    """Reads at odd offsets and of odd lengths, across every part's edges, equal the
    bytes of the whole file read at once; every hole stream_extent reports reads as
    zeros; the data extents add up to stream_allocated_bytes. A file written from
    4097-byte reads, and one written from its data extents alone, equal the whole."""
    size = 61 * MiB + 3 * 4096
    chain = Chain(size, three_levels(size))
    for options in (["--block", MiB], ["--block", 2 * MiB, "--logical", 4096],
                    ["--block", 32 * MiB]):
        out = sd("--seed", "r", *options, "ranges", chain.top, 300, 7).stdout
        assert out.startswith("ok "), out
    sd("--seed", "r", "--block", MiB, "--piece", 4097, "write", chain.top, "odd.vhdx")
    with open("whole.vhdx", "wb") as f:
        sd("--seed", "r", "--block", MiB, "read", chain.top, stdout=f, text=False)
    assert sha("odd.vhdx") == sha("whole.vhdx")


def test_extents_of_the_file():
    """The holes of a synthesized VHDX: past each structure of the header section, the
    log, past the metadata, the BAT pages that store no block, and inside stored blocks
    what no level allocates (here all but the two 2 MiB VHD blocks written, in a
    32 MiB VHDX block)."""
    size = 64 * MiB
    chain = Chain(size, [[(0, data(4096, 60))], [(6 * MiB + 512, data(512, 61))]])
    lines = sd("--seed", "e", "extents", chain.top).stdout.splitlines()
    runs = [(kind, int(a), int(b)) for kind, a, b in (line.split() for line in lines)]
    data_runs = [(a, b) for kind, a, b in runs if kind == "data"]
    blocks_at = 4 * MiB  # 3 MiB, then a 1 MiB BAT
    assert data_runs == [
        (0, 4 * KiB), (64 * KiB, 68 * KiB), (128 * KiB, 132 * KiB), (192 * KiB, 196 * KiB),
        (256 * KiB, 260 * KiB), (2 * MiB, 2 * MiB + 4 * KiB),
        (2 * MiB + 64 * KiB, 2 * MiB + 68 * KiB), (3 * MiB, 3 * MiB + 4 * KiB),
        (blocks_at, blocks_at + 2 * MiB), (blocks_at + 6 * MiB, blocks_at + 8 * MiB),
    ], data_runs
    assert runs[-1] == ("hole", blocks_at + 8 * MiB, blocks_at + 32 * MiB), runs[-1]
    info = keyvalues(sd("--seed", "e", "info", chain.top).stdout)
    assert int(info["allocated"]) == sum(b - a for a, b in data_runs), info


def test_ids_from_the_seed():
    """The disk ID is the SHA-1 name-based UUID of the seed in impexfs's namespace
    (the VHD stream's UUID for that seed), DataWriteGuid and FileWriteGuid are derived
    from it; without a seed the top disk's 16 bytes are the name; the same seed gives
    the same bytes, another seed other IDs; neither is refused."""
    size = 8 * MiB
    chain = Chain(size, [[(0, data(4096, 70))]])
    disk_id = name_uuid("vm-1/disk-0")
    for name in ("a.vhdx", "b.vhdx"):
        sd("--seed", "vm-1/disk-0", "--block", MiB, "write", chain.top, name)
    assert sha("a.vhdx") == sha("b.vhdx")
    p = parse("a.vhdx")
    assert p["disk_id"] == disk_id.bytes_le, uuid.UUID(bytes_le=p["disk_id"])
    for what in ("DataWriteGuid", "FileWriteGuid"):
        want = name_uuid(p["disk_id"] + what.encode()).bytes_le
        assert p[what.lower().replace("writeguid", "_write_guid")] == want, what
    info = keyvalues(run([VHDXDUMP, "info", "a.vhdx"]).stdout)
    assert info["disk_id"] == "{%s}" % disk_id, info
    vhd = keyvalues(sd("--format", "vhd", "--seed", "vm-1/disk-0", "info", chain.top).stdout)
    assert uuid.UUID(hex=vhd["uuid"]) == disk_id, vhd
    sd("--seed", "vm-2/disk-0", "--block", MiB, "write", chain.top, "c.vhdx")
    assert parse("c.vhdx")["disk_id"] == name_uuid("vm-2/disk-0").bytes_le
    top = bytes(range(16))
    sd("--top-id", top.hex(), "--block", MiB, "write", chain.top, "d.vhdx")
    assert parse("d.vhdx")["disk_id"] == name_uuid(top).bytes_le
    bad = sd("info", chain.top, check=False)
    assert bad.returncode == 1 and "needs a seed or the top disk's ID" in bad.stderr, bad


def test_options_refused():
    """Block sizes VHDX cannot hold and sector sizes other than 512 and 4096 are
    refused with a message naming the value; 0 takes Hyper-V's defaults (32 MiB
    blocks, 512-byte logical and 4096-byte physical sectors)."""
    chain = Chain(8 * MiB, [[(0, data(512, 80))]])
    for option, value, words in (("--block", 512 * KiB, "not 524288 bytes"),
                                 ("--block", 3 * MiB, "not 3145728 bytes"),
                                 ("--block", 512 * MiB, "not 536870912 bytes"),
                                 ("--logical", 1024, "512 or 4096 bytes, not 1024"),
                                 ("--physical", 2048, "512 or 4096 bytes, not 2048")):
        bad = sd("--seed", "o", option, value, "info", chain.top, check=False)
        assert bad.returncode == 1 and words in bad.stderr, (option, value, bad)
        assert bad.stderr.startswith("streamdump: a VHDX "), bad.stderr
    sd("--seed", "o", "write", chain.top, "default.vhdx")
    p = parse("default.vhdx")
    assert (p["block_size"], p["logical"], p["physical"]) == (32 * MiB, 512, 4096), p


def fake_bytes(offset, length):
    """Content of the made-up chain's allocated ranges (streamdump's fake_byte)."""
    return bytes(((x >> 9) * 131 + (x & 511) * 7 + 1) & 0xFF
                 for x in range(offset, offset + length))


def max_rss_kib(args, stdout=None):
    result = run(["/usr/bin/time", "-v"] + [str(a) for a in args], timeout=600,
                 stdout=stdout)
    sanitizer_clean(result)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    assert m, result.stderr
    return int(m.group(1)), result


def test_64_tib_in_little_memory():
    """A 64 TiB disk of 1 MiB blocks has a 513 MiB BAT (67 million entries and 16383
    sector bitmap entries). Made, walked and written compacted, the stream's maximum
    resident set stays a small fraction of that (one bit a block), sparse or fully
    allocated; QEMU checks the file clean, core/vhdx reads its data back, and the BAT
    entries around the chunk edges are right."""
    if not os.path.exists("/usr/bin/time"):
        raise Skip("/usr/bin/time is not installed")
    size = 64 * TiB
    chunk = 4 * GiB
    ranges = [(0, 512), (37 * chunk - 4096, 8192), (37 * TiB + 5 * MiB + 3, 70001),
              (size - 512, 512)]
    spec = "%d:%s" % (size, ",".join("%d+%d" % r for r in ranges))
    rss, out = max_rss_kib([STREAMDUMP, "--fake", spec, "--seed", "huge", "--block", MiB,
                            "compact", "-", "huge.vhdx"])
    print("# 64 TiB sparse, compact: maximum resident set %d KiB" % rss)
    assert rss < 128 * 1024, "the stream took %d KiB" % rss
    stored = sorted({b for o, n in ranges for b in range(o // MiB, (o + n - 1) // MiB + 1)})
    p = parse("huge.vhdx", blocks=stored + [0, 1, 4095, 4096, 4097, 36 * 4096 + 4095])
    assert p["bat_length"] == 513 * MiB and p["ratio"] == 4096, p["bat_length"]
    for i, b in enumerate(stored):
        assert p["bat"][b] == (vc.FULLY_PRESENT, 3 * MiB + 513 * MiB + i * MiB), (b, p["bat"][b])
    assert p["bat"][1] == (vc.NOT_PRESENT, 0) and p["bat"][4096] == (vc.NOT_PRESENT, 0)
    with open("huge.vhdx", "rb") as f:  # entry 4096 is chunk 0's sector bitmap
        f.seek(3 * MiB + 4096 * 8)
        assert f.read(16) == bytes(16)
    assert p["file_size"] == 3 * MiB + 513 * MiB + len(stored) * MiB
    assert os.stat("huge.vhdx").st_blocks * 512 < 16 * MiB, "the empty BAT pages are holes"
    for offset, length in ranges:
        got = run([VHDXDUMP, "read", "huge.vhdx", offset // 512 * 512,
                   -(-(offset + length) // 512) * 512 - offset // 512 * 512], text=False).stdout
        start = offset % 512
        assert got[start:start + length] == fake_bytes(offset, length), offset
        assert not any(got[:start]) and not any(got[start + length:]), offset
    if have("qemu-img"):
        check = run(["qemu-img", "check", "-f", "vhdx", "huge.vhdx"], check=False)
        assert check.returncode == 0 and "No errors were found" in check.stdout, check
        info = run(["qemu-img", "info", "-f", "vhdx", "huge.vhdx"]).stdout
        assert "(%d bytes)" % size in info, info
    # Every block stored: the map is full, the BAT read whole through the stream.
    rss_full, out = max_rss_kib([STREAMDUMP, "--fake", "%d:0+%d" % (size, size), "--seed",
                                 "full", "--block", MiB, "info", "-"])
    print("# 64 TiB fully allocated, layout: maximum resident set %d KiB" % rss_full)
    assert rss_full < 128 * 1024, "the stream took %d KiB" % rss_full
    assert int(keyvalues(out.stdout)["size"]) == 3 * MiB + 513 * MiB + size
    with open(os.devnull, "wb") as null:
        rss_bat, _ = max_rss_kib([STREAMDUMP, "--fake", "%d:0+%d" % (size, size), "--seed",
                                  "full", "--block", MiB, "read", "-", 3 * MiB, 513 * MiB],
                                 stdout=null)
    print("# 64 TiB fully allocated, BAT read whole: maximum resident set %d KiB" % rss_bat)
    assert rss_bat < 128 * 1024, "reading the BAT took %d KiB" % rss_bat


run_tests(globals())
