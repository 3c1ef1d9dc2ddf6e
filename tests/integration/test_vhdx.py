"""core/vhdx against files built independently: by qemu-img (fixed and dynamic
VHDX with 512-byte sectors) and by tests/vhdxcraft.py, byte by byte from
[MS-VHDX] (both logical sector sizes, every block state of dynamic and
differencing disks, sector bitmaps, parent locators, disks over one chunk, a
64 TiB disk, dirty logs, and hostile files of every kind).

The reader is driven through tests/vhdxdump (info, extents, content of the
file alone). Expected content comes from the crafter's model of what it was
asked to build, or from qemu-img, never from the code under test. Every
hostile file must be refused with a message naming the file and the fault,
and left as it was.
"""

import hashlib
import os
import random
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import vhdxcraft as vc  # noqa: E402
from taplib import Skip, have, run, run_tests, sanitizer_clean  # noqa: E402

VHDXDUMP = os.environ.get("VHDXDUMP", "vhdxdump")
MiB = vc.MiB
KiB = vc.KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


def need(*tools):
    for tool in tools:
        if not have(tool):
            raise Skip("%s is not installed" % tool)


# ---- driving the reader ----


def dump(*args, check=True, text=True, stdout=None):
    result = run([VHDXDUMP] + [str(a) for a in args], check=check, text=text, stdout=stdout,
                 timeout=600)
    sanitizer_clean(result)
    return result


def info(path):
    out = {}
    for line in dump("info", path).stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def read(path, offset=None, length=None):
    args = ["read", path] + ([offset, length] if offset is not None else [])
    return dump(*args, text=False).stdout


def runs(path, first, count, logical):
    """The extents vhdx_map gives for sectors [first, first+count): they must tile the range;
    returned merged as vhdxcraft's model merges them (same kind, and for stored runs
    adjacent in the file)."""
    parsed = []
    for line in dump("map", path, first, count).stdout.splitlines():
        start, n, kind, offset = line.split()
        parsed.append((int(start), int(n), kind, int(offset) if kind == "here" else None))
    merged, at = [], first
    for start, n, kind, offset in parsed:
        assert start == at and n > 0, parsed
        at += n
        if merged:
            s, m, k, o = merged[-1]
            if k == kind and (kind != "here" or o + m * logical == offset):
                merged[-1] = (s, m + n, k, o)
                continue
        merged.append((start, n, kind, offset))
    assert at == first + count, (at, first, count)
    return merged


def sha(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() if hasattr(
            hashlib, "file_digest") else hashlib.sha256(f.read()).hexdigest()


def check(img, path="disk.vhdx", ranges=None, save=True, guids=True):
    """Save @img (unless told not to), then compare what the reader makes of it with the
    crafter's model: the parameters, the extents of @ranges (default the whole disk)
    and their bytes. The file must be left as it was."""
    if save:
        img.save(path)
    before = sha(path)
    i = info(path)
    assert int(i["size"]) == img.size, i
    assert int(i["logical_sector_size"]) == img.logical, i
    assert int(i["physical_sector_size"]) == img.physical, i
    assert int(i["block_size"]) == img.block_size, i
    assert int(i["chunk_ratio"]) == img.chunk_ratio, i
    assert int(i["block_count"]) == img.block_count, i
    assert i["type"] == img.kind, i
    assert i["has_parent"] == ("1" if img.kind == "differencing" else "0"), i
    assert i["leave_allocated"] == ("1" if img.kind == "fixed" else "0"), i
    assert i["disk_id"] == vc.guid_text(img.disk_id), i
    if guids:
        assert i["data_write_guid"] == vc.guid_text(img.data_write_guid), i
        assert i["file_write_guid"] == vc.guid_text(img.file_write_guid), i
    total = img.size // img.logical
    for first, count in ranges or [(0, total)]:
        assert runs(path, first, count, img.logical) == img.expected_runs(first, count), (
            first, count)
        want = img.expected_bytes(first * img.logical, count * img.logical)
        got = read(path, first * img.logical, count * img.logical)
        assert got == want, "content of sectors %d+%d differs" % (first, count)
    assert sha(path) == before, "the reader changed the file"
    return i


# ---- hostile files ----

REFUSED = set()


def refused(img, *words, name="bad.vhdx"):
    """@img (an Image, saved as @name, or a path) is refused: exit 1, a message that
    starts lower-case and names the file and @words, the file unchanged."""
    path = img.save(name) if isinstance(img, vc.Image) else img
    before = sha(path)
    result = dump("info", path, check=False)
    assert result.returncode == 1, result
    message = result.stderr.strip()
    assert message.startswith("vhdxdump: ") and "\n" not in message, message
    message = message[len("vhdxdump: "):]
    assert message[0].islower() or message[0] == "'", message
    assert not message.endswith("."), message
    assert "'%s'" % path in message, message
    for word in words:
        assert word in message, "%r not in %r" % (word, message)
    assert sha(path) == before, "the reader changed a refused file"
    REFUSED.add(message.replace(path, "FILE"))
    return message


def data(n, seed):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))


def small(kind="dynamic", logical=512, **kw):
    """An 8 MiB disk of 1 MiB blocks with a few sectors written."""
    kw.setdefault("writes", [(0, data(logical, 1)), (3 * MiB + logical, data(2 * logical, 2))])
    return vc.build(8 * MiB, kind, block_size=MiB, logical=logical, **kw)


# ---- qemu-img made files ----


def raw_with_holes(size, seed):
    r = random.Random(seed)
    raw = bytearray(size)
    for _ in range(40):
        at = r.randrange(size // 512) * 512
        n = min(r.randrange(1, 400) * 512, size - at)
        raw[at:at + n] = bytes(r.getrandbits(8) for _ in range(min(n, 4096))) * (n // 4096) + \
            bytes(r.getrandbits(8) for _ in range(n % 4096))
    raw[:512] = data(512, seed + 1)  # first sector
    raw[-512:] = data(512, seed + 2)  # last sector
    return bytes(raw)


def test_qemu_made_files_read_back():
    need("qemu-img")
    size = 72 * MiB
    raw = raw_with_holes(size, 7)
    with open("source.raw", "wb") as f:
        f.write(raw)
    for options in ("subformat=dynamic", "subformat=dynamic,block_size=1M",
                    "subformat=dynamic,block_size=8M", "subformat=fixed",
                    "subformat=fixed,block_size=2M"):
        if os.path.exists("q.vhdx"):
            os.remove("q.vhdx")
        run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", options, "source.raw",
             "q.vhdx"])
        run(["qemu-img", "check", "-f", "vhdx", "q.vhdx"])
        before = sha("q.vhdx")
        assert read("q.vhdx") == raw, options
        i = info("q.vhdx")
        assert int(i["size"]) == size and i["log_replayed"] == "0", i
        assert i["type"] == ("fixed" if "fixed" in options else "dynamic"), (options, i)
        # Reads at odd places agree with the source too.
        for at, n in ((0, 512), (size - 512, 512), (MiB - 512, 1024), (5 * MiB + 512, 3 * MiB)):
            assert read("q.vhdx", at, n) == raw[at:at + n], (options, at, n)
        assert sha("q.vhdx") == before


def test_qemu_created_empty_and_written():
    need("qemu-img", "qemu-io")
    run(["qemu-img", "create", "-f", "vhdx", "e.vhdx", "3G"])
    i = info("e.vhdx")
    assert int(i["size"]) == 3 * GiB, i
    total = 3 * GiB // 512
    assert runs("e.vhdx", 0, total, 512) == [(0, total, "zero", None)]
    assert read("e.vhdx", 3 * GiB - MiB, MiB) == bytes(MiB)
    run(["qemu-io", "-f", "vhdx", "-c", "write -P 0x5a 0 512", "-c",
         "write -P 0xa5 %d 4096" % (3 * GiB - 4096), "e.vhdx"])
    assert read("e.vhdx", 0, 1024) == b"\x5a" * 512 + bytes(512)
    assert read("e.vhdx", 3 * GiB - 8192, 8192) == bytes(4096) + b"\xa5" * 4096


# ---- crafted files: content ----


def test_crafted_fixed_and_dynamic_both_sector_sizes():
    for logical in (512, 4096):
        for kind in ("dynamic", "fixed"):
            for block in (MiB, 2 * MiB):
                size = 6 * MiB + 3 * logical  # a partial last block
                writes = [(0, data(logical, 10)),  # first sector
                          (block - logical, data(2 * logical, 11)),  # straddles a block
                          (2 * block + 5 * logical, data(7 * logical, 12)),
                          (size - logical, data(logical, 13))]  # last sector
                img = vc.build(size, kind, block_size=block, logical=logical, physical=4096,
                               writes=writes)
                check(img)


def test_crafted_dynamic_against_qemu():
    """qemu-img referees the crafter itself: it reads the crafted dynamic and fixed files
    (512-byte sectors: QEMU 7.2 refuses 4096) as the model says."""
    need("qemu-img")
    for kind in ("dynamic", "fixed"):
        img = vc.build(10 * MiB, kind, block_size=MiB,
                       writes=[(0, data(512, 20)), (4 * MiB - 512, data(1024, 21)),
                               (10 * MiB - 512, data(512, 22))])
        img.save("c.vhdx")
        run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", "c.vhdx", "c.raw"])
        with open("c.raw", "rb") as f:
            assert f.read() == img.expected_bytes(), kind
        check(img, "c.vhdx")


def test_dynamic_block_states():
    """Every payload state of a dynamic disk: only FULLY_PRESENT reads from the file;
    UNDEFINED and UNMAPPED blocks whose offset points at old data read zeros."""
    for logical in (512, 4096):
        states = {0: vc.NOT_PRESENT, 1: vc.UNDEFINED, 2: vc.ZERO, 3: vc.UNMAPPED,
                  4: vc.FULLY_PRESENT, 6: vc.UNDEFINED, 7: vc.UNMAPPED}
        img = vc.build(8 * MiB, "dynamic", block_size=MiB, logical=logical,
                       writes=[(4 * MiB + logical, data(logical, 30)), (5 * MiB, data(MiB, 31))],
                       states=states, stale={6: b"\xee" * MiB, 7: b"\xdd" * MiB})
        assert img.layout["blocks"][6] and img.layout["blocks"][7]
        i = check(img)
        assert i["type"] == "dynamic"
        total = 8 * MiB // logical
        spb = MiB // logical
        assert img.expected_runs(0, total) == [
            (0, 4 * spb, "zero", None),
            (4 * spb, 2 * spb, "here", img.layout["blocks"][4]),
            (6 * spb, 2 * spb, "zero", None)]
        for block, state in states.items():
            got = dump("block", "disk.vhdx", block).stdout.split()
            assert int(got[0]) == state, (block, got)


def test_differencing_block_states():
    """Every payload state of a differencing disk: NOT_PRESENT is the parent's,
    UNDEFINED, ZERO and UNMAPPED read zeros (never the parent's, never old data),
    FULLY_PRESENT is here whole, PARTIALLY_PRESENT here where its bitmap bit is set."""
    for logical in (512, 4096):
        spb = MiB // logical
        writes = [(2 * MiB, data(logical, 40)),  # first sector of block 2
                  (2 * MiB + 9 * logical, data(3 * logical, 41)),
                  (3 * MiB - logical, data(logical, 42)),  # last sector of block 2
                  (5 * MiB + 4 * logical, data(logical, 43)),  # block 5, made fully present
                  (8 * MiB - logical, data(logical, 44))]  # the disk's last sector
        states = {0: vc.NOT_PRESENT, 1: vc.UNDEFINED, 3: vc.ZERO, 4: vc.UNMAPPED,
                  5: vc.FULLY_PRESENT, 6: vc.PARTIALLY_PRESENT}
        img = vc.build(8 * MiB, "differencing", block_size=MiB, logical=logical,
                       writes=writes, states=states, stale={1: b"\xcc" * MiB, 4: b"\xbb" * MiB})
        check(img)
        # The model says what the table in vhdx.h says (check() compared it with the reader).
        want = img.expected_runs(0, 8 * spb)

        def at(sector):
            return next((kind, None if offset is None else offset + (sector - start) * logical)
                        for start, n, kind, offset in want if start <= sector < start + n)

        assert at(0) == at(spb - 1) == ("parent", None)  # NOT_PRESENT
        for block in (1, 3, 4):  # UNDEFINED, ZERO, UNMAPPED
            assert at(block * spb) == at(block * spb + spb - 1) == ("zero", None), block
        assert at(2 * spb) == ("here", img.layout["blocks"][2])
        assert at(2 * spb + 1) == at(2 * spb + 8) == ("parent", None)
        assert at(2 * spb + 9) == ("here", img.layout["blocks"][2] + 9 * logical)
        assert at(3 * spb - 1) == ("here", img.layout["blocks"][2] + (spb - 1) * logical)
        assert at(5 * spb) == ("here", img.layout["blocks"][5])  # FULLY_PRESENT, not written
        assert at(6 * spb) == at(7 * spb - 1) == ("parent", None)  # PARTIALLY, no bit set
        assert at(8 * spb - 1) == ("here", img.layout["blocks"][7] + (spb - 1) * logical)


def test_sector_bitmap_bit_order():
    """Bits set by hand in a sector bitmap, independently of the crafter's writer: bit 0 of
    byte 0 (the least significant) is the block's first sector."""
    img = vc.build(4 * MiB, "differencing", block_size=MiB,
                   states={1: vc.PARTIALLY_PRESENT})
    bitmap = img.layout["bitmaps"][0]
    spb = MiB // 512
    # Block 1's bits start at bit spb of the chunk's bitmap.
    img.put(bitmap + spb // 8, bytes([0x01, 0x80, 0x00, 0xF0]))
    img.save("bits.vhdx")
    got = runs("bits.vhdx", spb, spb, 512)
    at = img.layout["blocks"][1]
    assert got == [(spb, 1, "here", at),
                   (spb + 1, 14, "parent", None),
                   (spb + 15, 1, "here", at + 15 * 512),
                   (spb + 16, 12, "parent", None),
                   (spb + 28, 4, "here", at + 28 * 512),
                   (spb + 32, spb - 32, "parent", None)], got


def test_disks_larger_than_one_chunk():
    """Chunks: the BAT interleaves a sector bitmap entry after every chunk ratio payload
    entries. 9 GiB of 1 MiB blocks with 512-byte sectors is three chunks (ratio 4096);
    33 GiB of 1 MiB blocks with 4096-byte sectors is two (ratio 32768). Only some chunks
    of the differencing disks have a bitmap block: the others' NOT_PRESENT blocks are the
    parent's."""
    for logical, size in ((512, 9 * GiB), (4096, 33 * GiB)):
        chunk = vc.CHUNK_SECTORS * logical
        writes = [(0, data(logical, 50)),
                  (chunk - logical, data(2 * logical, 51)),  # straddles chunks 0 and 1
                  (chunk + 7 * MiB + 3 * logical, data(logical, 52)),
                  (size - logical, data(logical, 53))]
        spb = MiB // logical
        ranges = [(0, 2 * spb), (chunk // logical - spb, 2 * spb),
                  ((chunk + 7 * MiB) // logical, spb), (size // logical - 2 * spb, 2 * spb)]
        for kind in ("dynamic", "differencing"):
            img = vc.build(size, kind, block_size=MiB, logical=logical, writes=writes,
                           states={5: vc.FULLY_PRESENT} if kind == "differencing" else None)
            assert img.bat_entries > img.chunk_ratio + 1
            if kind == "differencing":
                assert 0 in img.layout["bitmaps"] and 1 in img.layout["bitmaps"]
            check(img, ranges=ranges + [(spb * 4, spb * 3)])
            # The whole map at once, against the model.
            total = size // logical
            assert runs("disk.vhdx", 0, total, logical) == img.expected_runs(0, total)


def test_huge_bat_read_in_pages():
    """A 64 TiB disk of 1 MiB blocks has a 512 MiB BAT: it is checked page by page at open
    and read through a 1 MiB cache, so the reader's memory stays far below the BAT."""
    size = 64 * TiB
    last = size - 512
    writes = [(0, data(512, 60)), (37 * TiB + 5 * MiB, data(4096, 61)), (last, data(512, 62))]
    img = vc.build(size, "dynamic", block_size=MiB, writes=writes)
    assert img.layout["bat_length"] >= 512 * MiB
    spb = MiB // 512
    ranges = [(0, spb), ((37 * TiB + 5 * MiB) // 512, spb), (size // 512 - spb, spb),
              ((20 * TiB) // 512, 100 * spb)]
    check(img, "big.vhdx", ranges=ranges)
    # Maximum resident memory of one open, walk and read, measured in a fresh process.
    probe = ("import resource, subprocess, sys\n"
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    rss_kib = int(run([sys.executable, "-c", probe, VHDXDUMP, "map", "big.vhdx",
                       (size - 64 * GiB) // 512, 64 * GiB // 512]).stdout)
    assert rss_kib < 160 * 1024, "the reader took %d KiB for a 512 MiB BAT" % rss_kib
    print("# 64 TiB disk, 512 MiB BAT: the reader's maximum resident set was %d KiB"
          % rss_kib)


def test_threads_read_alike():
    """Reads from 8 threads at once (BAT page cache and bitmap cache shared) give what the
    same reads give alone."""
    writes = [(b * MiB + (b % 7) * 512, data(512 * (1 + b % 5), 70 + b)) for b in range(0, 60, 2)]
    img = vc.build(64 * MiB, "differencing", block_size=MiB, writes=writes,
                   states={b: vc.FULLY_PRESENT for b in range(1, 60, 6)})
    img.save("t.vhdx")
    assert dump("threads", "t.vhdx", 8, 400).stdout.strip() == "ok"
    img = vc.build(3 * GiB, "dynamic", block_size=MiB,
                   writes=[(b * MiB, data(512, b)) for b in range(0, 64, 3)])
    img.save("u.vhdx")
    assert dump("threads", "u.vhdx", 8, 400).stdout.strip() == "ok"


# ---- the parent locator ----

LINKAGE = "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"
ALL_KEYS = [("parent_linkage", LINKAGE),
            ("parent_linkage2", "{11111111-2222-3333-4444-555555555555}"),
            ("relative_path", ".\\Snapshots\\base_{83ed0ec3}.vhdx"),
            ("volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\VMs\\base.vhdx"),
            ("absolute_win32_path", "\\\\?\\C:\\VMs\\Ünïcødé\\base.vhdx")]


def test_locator_key_subsets():
    """Any subset of keys that has parent_linkage and a path, in any order, with unknown
    keys kept; the values decoded from UTF-16LE."""
    paths = ALL_KEYS[2:]
    subsets = [[ALL_KEYS[0], p] for p in paths]  # each path alone
    subsets.append(list(reversed(ALL_KEYS)))
    subsets.append(ALL_KEYS[:1] + ALL_KEYS[2:4] + [("vendor_key", "anything")])
    for pairs in subsets:
        img = small("differencing", locator=pairs)
        i = check(img)
        assert int(i["locator_count"]) == len(pairs), i
        for key, value in pairs:
            assert i["locator." + key] == value, (key, i)
    for missing in ("relative_path", "volume_path", "absolute_win32_path"):
        pairs = [kv for kv in ALL_KEYS if kv[0] != missing]
        assert "locator." + missing not in check(small("differencing", locator=pairs))


def test_locator_refused():
    refused(small("differencing", locator=ALL_KEYS[2:]), "no parent_linkage")
    refused(small("differencing", locator=ALL_KEYS[:2]),
            "no relative_path, volume_path or absolute_win32_path")
    refused(small("differencing", locator=[("parent_linkage", "83ed0ec3-24c8"),
                                           ALL_KEYS[2]]), "not a GUID")
    refused(small("differencing", locator=ALL_KEYS + [ALL_KEYS[2]]), "has key 'relative_path' twice")
    refused(small("differencing", locator=[ALL_KEYS[0], ("relative_path", b"\x00\xd8a\x00")]),
            "value of parent locator entry 1")  # a lone surrogate
    refused(small("differencing", locator=[ALL_KEYS[0], ("relative_path", "a\0b")]),
            "NUL character")
    # Offsets and lengths out of the item.
    for field_at, value, words in ((20, 0xFFFF0000, "key of parent locator entry 0"),
                                   (24, 5000, "value of parent locator entry 0"),
                                   (30, 0xFFFF, "value of parent locator entry 0"),
                                   (28, 0, "key of parent locator entry 0"),
                                   (28, 3, "odd")):
        img = small("differencing", locator=ALL_KEYS)
        at = img.item_offset("parent_locator") + field_at
        fmt = "<I" if field_at in (20, 24) else "<H"
        img.put(at, struct.pack(fmt, value))
        refused(img, words)
    img = small("differencing", locator=ALL_KEYS)
    img.put(img.item_offset("parent_locator") + 18, struct.pack("<H", 5000))
    refused(img, "declares 5000 entries")
    img = small("differencing", locator=ALL_KEYS)
    img.put(img.item_offset("parent_locator"), vc.guid("{12345678-1234-1234-1234-123456789abc}"))
    refused(img, "not a VHDX locator")
    # HasParent and the locator must agree.
    refused(small("dynamic", locator=ALL_KEYS), "parent locator but no parent")
    img = small("differencing")
    img.set_metadata_entry("parent_locator", "item_id", vc.new_guid())
    img.set_metadata_entry("parent_locator", "flags", 0)
    refused(img, "has a parent (HasParent) but no parent locator")


# ---- headers and region tables ----


def test_headers_one_damaged_tolerated():
    img = small()
    img.set_header(1, "data_write_guid", vc.guid("{00000000-0000-0000-0000-000000000001}"))
    # Header 2 (sequence 2) is current; damaged, header 1 takes over.
    assert check(img)["current_header"] == "2"
    img.set_header(2, "checksum", 0, checksum=False)
    i = check(img, guids=False)
    assert i["current_header"] == "1"
    assert i["data_write_guid"] == "{00000000-0000-0000-0000-000000000001}"
    img = small()
    img.put(vc.HEADER_AT[0], b"HEAD")  # signature
    assert check(img)["current_header"] == "2"
    img = small()
    img.set_header(1, "sequence_number", 9)
    assert check(img)["current_header"] == "1"
    # Identical headers with one sequence number (as Disk2VHD writes them): either.
    img = small()
    img.put(vc.HEADER_AT[1], img.get(vc.HEADER_AT[0], 4096))
    assert check(img)["current_header"] == "1"


def test_headers_refused():
    img = small()
    img.set_header(1, "checksum", 1, checksum=False)
    img.put(vc.HEADER_AT[1], b"xxxx")
    refused(img, "neither header", "wrong checksum", "no 'head' signature")
    img = small()
    img.set_header("both", "sequence_number", 5)
    img.set_header(2, "file_write_guid", vc.new_guid())
    refused(img, "both headers", "sequence number 5 but differ")
    img = small()
    img.set_header("both", "version", 2)
    refused(img, "VHDX version 2")
    img = small()
    img.set_header("both", "log_guid", vc.new_guid())
    img.set_header("both", "log_version", 1)
    refused(img, "log", "version 1")
    img = small()
    img.set_header("both", "log_offset", MiB + 4096)
    refused(img, "not aligned to 1 MiB")
    img = small()
    img.set_header("both", "log_offset", 1000 * MiB)
    refused(img, "log", "runs past the end of the file")
    img = small()
    img.set_header("both", "log_offset", 0)
    refused(img, "log", "header section")
    img = small()
    img.put(0, b"vhdxfilf")
    refused(img, "not a VHDX file")
    img = small()
    img.truncate(512 * KiB)
    refused(img, "shorter than the 1 MiB header section")


def test_region_tables():
    img = small()
    img.put(vc.REGION_TABLE_AT[0] + 100, b"x")  # region table 1 damaged
    check(img)
    img = small()
    img.put(vc.REGION_TABLE_AT[1], b"REGI")
    check(img)
    # An unknown region that is not required is kept out of the way, not refused.
    img = small(extra_regions=[(vc.new_guid(), 30 * MiB, MiB, 0)])
    check(img)


def test_region_tables_refused():
    img = small()
    img.put(vc.REGION_TABLE_AT[0] + 100, b"x")
    img.put(vc.REGION_TABLE_AT[1], b"REGI")
    refused(img, "neither region table", "wrong checksum", "no 'regi' signature")
    img = small()
    img.set_region_header("both", "entry_count", 2048)
    refused(img, "2048 entries")
    img = small()
    img.set_region("both", 1, "file_offset", img.layout["bat"])  # metadata over the BAT
    refused(img, "overlap")
    img = small()
    img.set_region("both", 1, "file_offset", 64 * GiB)
    refused(img, "runs past the end")
    img = small()
    img.set_region("both", 0, "file_offset", img.layout["bat"] + 4096)
    refused(img, "not whole MiB")
    img = small()
    img.set_region("both", 1, "file_offset", 0)
    refused(img, "after the header section")
    img = small()
    img.set_region("both", 1, "file_offset", img.layout["log"][0])
    refused(img, "overlaps the log")
    img = small(extra_regions=[(vc.new_guid(), 30 * MiB, MiB, 1)])
    refused(img, "required region", "does not know")
    img = small()
    img.set_region("both", 1, "guid", vc.REGION_BAT)
    refused(img, "twice")
    img = small()
    img.set_region("both", 0, "guid", vc.new_guid())
    img.set_region("both", 0, "required", 0)
    refused(img, "no BAT region")


# ---- metadata ----


def test_metadata_refused():
    img = small()
    img.set_metadata_header("signature", b"metadatx")
    refused(img, "no 'metadata' signature")
    img = small()
    img.set_metadata_header("entry_count", 3000)
    refused(img, "3000 entries")
    for item, name in (("disk_size", "virtual disk size"), ("logical_sector_size",
                                                            "logical sector size"),
                       ("file_parameters", "file parameters"), ("disk_id", "virtual disk ID"),
                       ("physical_sector_size", "physical sector size")):
        img = small()
        img.set_metadata_entry(item, "item_id", vc.new_guid())
        img.set_metadata_entry(item, "flags", 0)
        refused(img, "no %s metadata item" % name)
    img = small(extra_items=[(vc.new_guid(), vc.IS_REQUIRED, b"12345678")])
    refused(img, "required metadata item", "does not know")
    img = small()
    img.set_metadata_entry("disk_size", "offset", 2 * MiB)
    refused(img, "lies outside the metadata region")
    img = small()
    img.set_metadata_entry("disk_size", "offset", 32)
    refused(img, "over its table")
    img = small()
    img.set_metadata_entry("disk_size", "offset",
                           img.item_offset("file_parameters") - img.layout["metadata"] + 4)
    refused(img, "overlap")
    img = small()
    img.set_metadata_entry("disk_size", "length", 4)
    refused(img, "virtual disk size metadata item", "too short")
    img = small()
    img.set_metadata_entry("disk_id", "length", 2 * MiB)
    refused(img, "more than 1 MiB")
    img = small()
    img.set_metadata_entry("disk_id", "length", 0)
    refused(img, "empty but has offset")
    for block_size in (3 * MiB, 512 * KiB, 512 * MiB, 0):
        img = small()
        img.set_item("file_parameters", struct.pack("<I", block_size))
        refused(img, "block size of %d bytes" % block_size)
    for logical in (1024, 0, 520):
        img = small()
        img.set_item("logical_sector_size", struct.pack("<I", logical))
        refused(img, "logical sector size of %d bytes" % logical)
    img = small()
    img.set_item("physical_sector_size", struct.pack("<I", 2048))
    refused(img, "physical sector size of 2048 bytes")
    for size in (0, 8 * MiB + 100, 65 * TiB):
        img = small()
        img.set_item("disk_size", struct.pack("<Q", size))
        refused(img, "disk size of %d bytes" % size)
    img = small(logical=4096)
    img.set_item("disk_size", struct.pack("<Q", 8 * MiB + 512))
    refused(img, "whole 4096-byte sectors")


# ---- the BAT ----


def test_bat_refused():
    img = small()
    img.set_bat(3, vc.FULLY_PRESENT, 1024 * MiB)
    refused(img, "block 3", "points past the end of the file")
    img = small()
    img.set_bat(3, vc.FULLY_PRESENT, 0)
    refused(img, "block 3", "header section")
    img = small()
    img.set_bat(3, vc.FULLY_PRESENT, img.layout["metadata"])
    refused(img, "block 3", "overlaps the metadata region")
    img = small()
    img.set_bat(3, vc.FULLY_PRESENT, img.layout["bat"])
    refused(img, "block 3", "overlaps the BAT")
    img = small()
    img.set_bat(3, vc.FULLY_PRESENT, img.layout["log"][0])
    refused(img, "block 3", "overlaps the log")
    img = small()
    img.set_bat(3, vc.FULLY_PRESENT, img.layout["blocks"][0])
    refused(img, "block 3", "overlaps another block")
    for state in (4, 5):
        img = small()
        img.set_bat(2, state)
        refused(img, "block 2", "reserved state %d" % state)
    img = small()
    img.set_bat(2, vc.PARTIALLY_PRESENT, img.layout["blocks"][0] + 8 * MiB)
    refused(img, "block 2", "partially present, but the disk has no parent")
    img = small()
    img.set_bat(0, vc.FULLY_PRESENT, img.layout["blocks"][0], reserved=1)
    refused(img, "BAT entry 0", "reserved bits")
    # A differencing disk's partially present block needs its chunk's bitmap block.
    img = small("differencing")
    img.set_bat(img.bitmap_index(0), vc.SB_NOT_PRESENT)
    refused(img, "block 0", "no sector bitmap block")
    img = small("differencing")
    img.set_bat(img.bitmap_index(0), 3, img.layout["bitmaps"][0])
    refused(img, "sector bitmap block of chunk 0", "unknown state 3")
    # A dynamic disk has no bitmap blocks: the BAT of a 3-chunk disk has two such entries.
    img = vc.build(9 * GiB, "dynamic", block_size=MiB, writes=[(0, data(512, 80))])
    img.set_bat(img.bitmap_index(1), vc.SB_PRESENT, img.layout["blocks"][0] + MiB)
    refused(img, "sector bitmap block of chunk 1", "no parent")
    img = small("differencing")
    img.set_bat(img.bitmap_index(0), vc.SB_PRESENT, img.layout["blocks"][0])
    refused(img, "sector bitmap block of chunk 0", "overlaps another block")
    # The BAT region must hold every entry the disk size needs.
    img = small()
    img.set_item("disk_size", struct.pack("<Q", 1 * TiB))
    refused(img, "BAT", "too small for the")


# ---- the log ----


def bat_sector(img, index):
    """File offset of the 4 KiB BAT sector holding entry @index."""
    at = img.layout["bat"] + 8 * index
    return at - at % vc.LOG_SECTOR


def with_entry_cleared(img, index, sector=None):
    """The 4 KiB sector of the BAT around entry @index with that entry zero."""
    sector = bat_sector(img, index) if sector is None else sector
    raw = bytearray(img.get(sector, vc.LOG_SECTOR))
    at = img.layout["bat"] + 8 * index - sector
    raw[at:at + 8] = bytes(8)
    return bytes(raw)


def test_log_replayed_in_memory():
    """A log holding a BAT update (a block allocated) and a metadata update (the disk
    grown) is replayed in memory: the content is the post-replay model's, the file bytes
    and time stay as they were; without the log (LogGuid cleared) the old state shows."""
    for logical in (512, 4096):
        img = vc.build(24 * MiB, "dynamic", block_size=MiB, logical=logical,
                       writes=[(0, data(logical, 90)), (3 * MiB, data(8 * logical, 91)),
                               (20 * MiB, data(logical, 92))])
        sector = bat_sector(img, 3)
        size_item = img.item_offset("disk_size")
        meta = size_item - size_item % vc.LOG_SECTOR
        old_meta = bytearray(img.get(meta, vc.LOG_SECTOR))
        old_meta[size_item - meta:size_item - meta + 8] = struct.pack("<Q", 16 * MiB)
        old_bat = with_entry_cleared(img, 3)
        img.dirty([sector, meta], old={sector: old_bat, meta: bytes(old_meta)}, sequence=77)
        img.save("dirty.vhdx")
        os.utime("dirty.vhdx", (1_000_000_000, 1_000_000_000))
        os.chmod("dirty.vhdx", 0o444)
        i = check(img, "dirty.vhdx", save=False)
        assert i["log_replayed"] == "1" and i["log_head_sequence"] == "77", i
        assert os.stat("dirty.vhdx").st_mtime == 1_000_000_000
        # The file alone, without its log, is the old state.
        shutil.copy("dirty.vhdx", "clean.vhdx")
        os.chmod("clean.vhdx", 0o644)
        clean = vc.Image()
        clean.buf.put(0, open("clean.vhdx", "rb").read())
        clean.set_header("both", "log_guid", bytes(16))
        clean.save("clean.vhdx")
        i = info("clean.vhdx")
        assert int(i["size"]) == 16 * MiB and i["log_replayed"] == "0", i
        assert read("clean.vhdx", 3 * MiB, 8 * logical) == bytes(8 * logical)
        assert read("dirty.vhdx", 3 * MiB, 8 * logical) == data(8 * logical, 91)


def test_log_replay_against_qemu():
    """qemu-img replays a log when it may write the file (`check -r all` on a copy); its
    reading of that copy equals impexfs's reading of the untouched original."""
    need("qemu-img")
    img = vc.build(24 * MiB, "dynamic", block_size=MiB,
                   writes=[(0, data(512, 95)), (5 * MiB, data(MiB, 96))])
    sector = bat_sector(img, 5)
    img.dirty([sector], old={sector: with_entry_cleared(img, 5)})
    img.save("dirty.vhdx")
    shutil.copy("dirty.vhdx", "copy.vhdx")
    ro = run(["qemu-img", "info", "-f", "vhdx", "dirty.vhdx"], check=False)
    print("# qemu-img info of the dirty file (read-only): exit %d %s"
          % (ro.returncode, ro.stderr.strip().replace("\n", " ")))
    run(["qemu-img", "check", "-r", "all", "-f", "vhdx", "copy.vhdx"], check=False)
    run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", "copy.vhdx", "copy.raw"])
    with open("copy.raw", "rb") as f:
        assert f.read() == read("dirty.vhdx") == img.expected_bytes()


def wrapped_log(img, log_guid, garbage_sector):
    """The log of @img (1 MiB): C(9) D(10) E(11) at its end and F(12) wrapped to its
    start, F's Tail naming D: replay D, E, F. Entries that must not be replayed: C
    (before the Tail), G (after F, another LogGuid, sequence 13), and an older complete
    sequence of this LogGuid at 512 KiB (sequence 3). Those three write
    @garbage_sector."""
    length = img.layout["log"][1]
    flushed = img.file_size // MiB * MiB
    last = -(-img.file_size // MiB) * MiB

    def entry(seq, sectors, tail, guid=log_guid):
        return vc.log_entry(seq, guid, img.sectors_of(sectors), tail=tail, flushed=flushed,
                            last=last)

    garbage = [("data", garbage_sector[0], garbage_sector[1])]
    d_at, e_at, c_at = length - 16 * KiB, length - 8 * KiB, length - 24 * KiB
    entries = [
        (c_at, vc.log_entry(9, log_guid, garbage, tail=c_at, flushed=flushed, last=last)),
        (d_at, entry(10, [bat_sector(img, 0)], d_at)),
        (e_at, entry(11, [bat_sector(img, 1100)], d_at)),
        (0, entry(12, [bat_sector(img, 2100)], d_at)),
        (8 * KiB, vc.log_entry(13, vc.new_guid(), garbage, tail=8 * KiB, flushed=flushed,
                               last=last)),
        (512 * KiB, vc.log_entry(3, log_guid, garbage, tail=512 * KiB, flushed=flushed,
                                 last=last)),
    ]
    return entries


def test_log_wrapped_ranked_by_tail():
    """A wrapped log: the active sequence is found through the head's Tail (D, E, F, not
    F alone and not C), and stale entries (another LogGuid, an older sequence) are
    ignored. Each of D, E, F allocates a block; C, G and the old sequence would make
    block 3000 read stale data."""
    img = vc.build(3 * GiB, "dynamic", block_size=MiB,
                   writes=[(0, data(512, 100)), (1100 * MiB, data(4096, 101)),
                           (2100 * MiB + 512, data(512, 102))],
                   stale={3000: b"\x99" * MiB})
    assert img.states[3000] == vc.UNDEFINED
    garbage = bytearray(img.get(bat_sector(img, 3000), vc.LOG_SECTOR))
    at = img.layout["bat"] + 8 * 3000 - bat_sector(img, 3000)
    garbage[at:at + 8] = struct.pack("<Q", vc.FULLY_PRESENT | img.layout["blocks"][3000])
    log_guid = vc.new_guid()
    entries = wrapped_log(img, log_guid, (bat_sector(img, 3000), bytes(garbage)))
    for block in (0, 1100, 2100):
        img.put(bat_sector(img, block), with_entry_cleared(img, block))
    img.write_log(entries, log_guid)
    spb = MiB // 512
    ranges = [(0, spb), (1100 * spb, spb), (2100 * spb, spb), (3000 * spb, spb)]
    i = check(img, "wrapped.vhdx", ranges=ranges)
    assert i["log_head_sequence"] == "12", i
    assert read("wrapped.vhdx", 3000 * MiB, 4096) == bytes(4096)
    if have("qemu-img"):
        shutil.copy("wrapped.vhdx", "qemu.vhdx")
        run(["qemu-img", "check", "-r", "all", "-f", "vhdx", "qemu.vhdx"], check=False)
        got = run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", "qemu.vhdx", "q.raw"],
                  check=False)
        same = []
        if got.returncode == 0:
            with open("q.raw", "rb") as f:
                for first, count in ranges:
                    f.seek(first * 512)
                    same.append(f.read(count * 512) == img.expected_bytes(first * 512,
                                                                          count * 512))
        print("# qemu-img on the wrapped log: exit %d, ranges as the specification says: %s"
              % (got.returncode, same))


def test_log_region_table_and_file_end():
    """Logs may rewrite the region tables ([MS-VHDX] 2.2.3: their updates go through the
    log) and write past the file's end up to LastFileOffset: here a sector bitmap block
    that the crash left out of the file."""
    # The region tables: before the log, the metadata region is an older copy saying 8 MiB.
    img = small()
    old_meta_at = -(-img.file_size // MiB) * MiB
    old_meta = bytearray(img.get(img.layout["metadata"], MiB))
    size_at = img.item_offset("disk_size") - img.layout["metadata"]
    old_meta[size_at:size_at + 8] = struct.pack("<Q", 4 * MiB)
    img.put(old_meta_at, old_meta)
    old_table = vc.region_table_bytes([(vc.REGION_BAT, img.layout["bat"], img.layout["bat_length"], 1),
                                       (vc.REGION_METADATA, old_meta_at, MiB, 1)])
    img.dirty(list(vc.REGION_TABLE_AT), old={at: old_table[:vc.LOG_SECTOR]
                                             for at in vc.REGION_TABLE_AT})
    assert int(check(img)["size"]) == 8 * MiB
    # Past the end: the bitmap block of chunk 0 sits at the file's last MiB.
    img = small("differencing")
    bitmap_at = img.layout["bitmaps"][0]
    assert bitmap_at + MiB == img.file_size
    bitmap_first = img.get(bitmap_at, vc.LOG_SECTOR)
    after_bat = img.get(bat_sector(img, 0), vc.LOG_SECTOR)
    raw = vc.log_entry(1, vc.new_guid(), [("data", bitmap_at, bitmap_first),
                                          ("zero", bitmap_at + vc.LOG_SECTOR, MiB - vc.LOG_SECTOR),
                                          ("data", bat_sector(img, 0), after_bat)],
                       tail=0, flushed=bitmap_at, last=bitmap_at + MiB)
    guid = struct.unpack_from("16s", raw, 32)[0]
    before_bat = bytearray(after_bat)
    for index in (img.payload_index(0), img.payload_index(3), img.bitmap_index(0)):
        at = img.layout["bat"] + 8 * index - bat_sector(img, 0)
        before_bat[at:at + 8] = bytes(8)
    img.put(bat_sector(img, 0), before_bat)
    img.write_log([(0, raw)], guid)
    img.truncate(bitmap_at)
    check(img)
    assert os.path.getsize("disk.vhdx") == bitmap_at


def hostile_log(descriptors=None, tamper=None, checksum=True, **entry):
    """A small dynamic disk whose log holds one entry (sequence 1) with @descriptors
    (default: block 3 of the BAT allocated)."""
    img = small()
    sector = bat_sector(img, 3)
    if descriptors is None:
        descriptors = img.sectors_of([sector])
    entry.setdefault("flushed", img.file_size // MiB * MiB)
    entry.setdefault("last", img.file_size)
    guid = vc.new_guid()
    raw = vc.log_entry(1, guid, descriptors, tamper=tamper, checksum=checksum, **entry)
    img.write_log([(0, raw)], guid)
    return img


def test_log_hostile():
    def set_field(name, value):
        return lambda raw: vc.set_entry_field(raw, name, value)

    refused(hostile_log(tamper=lambda raw: raw.__setitem__(5000, raw[5000] ^ 1),
                        checksum=False), "no valid sequence", "wrong checksum")
    refused(hostile_log(tamper=lambda raw: raw.__setitem__(slice(4096 + 4092, 4096 + 4096),
                                                           b"\x07\0\0\0")),
            "no valid sequence", "data sector 0 of another sequence number")
    refused(hostile_log(tamper=set_field("descriptor_count", 0xFFFFFFFF)),
            "declares 4294967295 descriptors")
    refused(hostile_log(tamper=set_field("entry_length", 2 * MiB)), "has a length of")
    refused(hostile_log(tamper=set_field("tail", 3 * 4096 + 1)), "Tail")
    refused(hostile_log(tamper=set_field("sequence_number", 0)), "sequence number 0")
    refused(hostile_log(tamper=lambda raw: raw.__setitem__(slice(64, 68), b"dexc")),
            "without a 'desc' or 'zero' signature")
    refused(hostile_log(tamper=lambda raw: raw.__setitem__(slice(4096, 4100), b"date")),
            "without a 'data' signature")
    refused(hostile_log(flushed=MiB + 1), "FlushedFileOffset")
    refused(hostile_log([("data", 64 * KiB, bytes(4096))]), "headers")
    refused(hostile_log([("data", 0, bytes(4096))]), "file identifier")
    refused(hostile_log([("zero", 60 * KiB, 8192)]), "headers")
    refused(hostile_log([("data", MiB + 64 * KiB, bytes(4096))]), "into the log itself")
    refused(hostile_log([("zero", 3 * MiB, 64 * MiB)]), "past the entry's LastFileOffset")
    refused(hostile_log([("data", 5 * MiB + 1, bytes(4096))]), "not a 4 KiB sector")
    refused(hostile_log([("zero", 5 * MiB, 100)]), "not whole 4 KiB sectors")
    refused(hostile_log([("zero", 5 * MiB, 4096)], last=1 << 50), "more than any VHDX needs")
    # The head's Tail names no entry of its sequence.
    refused(hostile_log(tail=64 * KiB), "no valid sequence")
    # A log past the file end, an empty one named by the header, a truncated file.
    img = hostile_log()
    img.truncate(2 * MiB + 4096)
    img.set_header("both", "log_length", 2 * MiB)
    refused(img, "log", "runs past the end of the file")
    img = small()
    img.set_header("both", "log_guid", vc.new_guid())
    refused(img, "no valid sequence")
    img = small()
    img.set_header("both", "log_guid", vc.new_guid())
    img.set_header("both", "log_length", 0)
    refused(img, "must be replayed but is empty")
    img = hostile_log(flushed=8 * MiB)
    img.truncate(7 * MiB)
    refused(img, "is truncated", "FlushedFileOffset")
    # Only entries of another LogGuid.
    img = hostile_log()
    img.set_header("both", "log_guid", vc.new_guid())
    refused(img, "no valid sequence")
    # An entry that wraps round the log's end onto another entry's header.
    img = small()
    length = img.layout["log"][1]
    guid = vc.new_guid()
    wrapping = vc.log_entry(5, guid, img.sectors_of([bat_sector(img, 3)]), tail=length - 4096,
                            flushed=img.file_size, last=img.file_size)
    other = vc.log_entry(9, guid, [("zero", 5 * MiB, 4096)], tail=64 * KiB,
                         flushed=img.file_size, last=img.file_size)
    img.write_log([(length - 4096, wrapping), (0, other)], guid)
    refused(img, "no valid sequence", "without a 'data' signature")
    # What a log writes is checked like the rest: region tables made to overlap, a block
    # sent past the end.
    img = small()
    table = bytearray(img.get(vc.REGION_TABLE_AT[0], 64 * KiB))
    struct.pack_into("<Q", table, 16 + 32 + 16, img.layout["bat"])
    table[4:8] = bytes(4)
    struct.pack_into("<I", table, 4, vc.crc32c(table))
    guid = vc.new_guid()
    img.write_log([(0, vc.log_entry(1, guid, [("data", vc.REGION_TABLE_AT[0], bytes(table[:4096]))],
                                    flushed=img.file_size, last=img.file_size))], guid)
    refused(img, "overlap")
    img = small()
    sector = bytearray(img.get(bat_sector(img, 3), 4096))
    struct.pack_into("<Q", sector, img.layout["bat"] + 24 - bat_sector(img, 3),
                     vc.FULLY_PRESENT | (600 * MiB))
    refused(hostile_log([("data", bat_sector(img, 3), bytes(sector))], last=512 * MiB),
            "block 3", "points past the end of the file")


def test_log_too_large_to_replay():
    """A log whose replay needs more than 64 MiB of memory is refused with a message that
    says so (four entries of 4200 data sectors: 66 MiB)."""
    img = small(log_length=72 * MiB)
    sector = bat_sector(img, 3)
    descriptors = img.sectors_of([sector]) * 4200
    guid = vc.new_guid()
    entries, at = [], 0
    for seq in range(1, 5):
        raw = vc.log_entry(seq, guid, descriptors, tail=0, flushed=img.file_size // MiB * MiB,
                           last=img.file_size)
        entries.append((at, raw))
        at += len(raw)
    assert at < 72 * MiB
    img.write_log(entries, guid)
    refused(img, "would take more than 64 MiB")


def test_at_least_30_hostile_files():
    """The hostile files above were refused for at least 30 different faults."""
    assert len(REFUSED) >= 30, len(REFUSED)
    print("# %d different refusals" % len(REFUSED))


run_tests(globals())
