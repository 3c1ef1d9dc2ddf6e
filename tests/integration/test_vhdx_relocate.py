"""vhdx_relocation (core/vhdx_relocate.c) over AVHDX files built by
tests/vhdxcraft.py: the patches that make a differencing VHDX name its parent
by `relative_path` ".\\<name>" alone, laid over the file as the reader sees it
(a dirty log replayed), by `vhdxdump relocate`, which writes that view to a
new file.

What the new file must be is checked independently of the code under test:
its headers, metadata table and parent locator are parsed here from the
bytes; every byte outside the headers and the metadata region must be the
original's as its log leaves it (computed from what the crafter put in the
log); the disk content must be the crafter's model; the project's reader,
`qemu-img` and `vhdiinfo` must open it, none needing a log replay.
"""

import hashlib
import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import vhdxcraft as vc  # noqa: E402
from taplib import Skip, have, run, run_tests, sanitizer_clean  # noqa: E402

VHDXDUMP = os.environ.get("VHDXDUMP", "vhdxdump")
MiB = vc.MiB
KiB = vc.KiB
ZERO_GUID = "{00000000-0000-0000-0000-000000000000}"
LINKAGE = "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"
LINKAGE2 = "{11111111-2222-3333-4444-555555555555}"
ALL_KEYS = [("parent_linkage", LINKAGE),
            ("parent_linkage2", LINKAGE2),
            ("relative_path", ".\\Snapshots\\base_{83ed0ec3}.vhdx"),
            ("volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\VMs\\base.vhdx"),
            ("absolute_win32_path", "\\\\?\\C:\\VMs\\Ünïcødé\\base.vhdx"),
            ("vendor_key", "kept as it is")]
PARENT = "base_8D2E4E3B-8A1D-4C39-9F0B-0B5A3C1F2E11.vhdx"


def need(*tools):
    for tool in tools:
        if not have(tool):
            raise Skip("%s is not installed" % tool)


def dump(*args, check=True, text=True):
    result = run([VHDXDUMP] + [str(a) for a in args], check=check, text=text, timeout=600)
    sanitizer_clean(result)
    return result


def info(path):
    """vhdxdump info as a dict, and the locator's keys in their stored order."""
    out, keys = {}, []
    for line in dump("info", path).stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = value
        if key.startswith("locator."):
            keys.append(key[len("locator."):])
    return out, keys


def read(path):
    return dump("read", path, text=False).stdout


def extents(path):
    return dump("map", path).stdout


def relocate(path, parent=PARENT, out="out.avhdx"):
    """vhdxdump relocate: the patches [(offset, length)] and the new file."""
    result = dump("relocate", path, parent, out)
    return [tuple(int(v) for v in line.split()) for line in result.stdout.splitlines()], out


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def data(n, seed):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))


def small(logical=512, locator=ALL_KEYS, **kw):
    """An 8 MiB differencing disk of 1 MiB blocks: partially present blocks (first and
    last sector), a fully present one, the rest the parent's."""
    kw.setdefault("writes", [(0, data(logical, 1)), (3 * MiB + logical, data(2 * logical, 2)),
                             (8 * MiB - logical, data(logical, 3))])
    kw.setdefault("states", {5: vc.FULLY_PRESENT})
    return vc.build(8 * MiB, "differencing", block_size=MiB, logical=logical, locator=locator,
                    **kw)


# ---- reading the result here, independently of core ----


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def headers(raw):
    """Both headers of @raw: (valid, sequence number, FileWriteGuid, DataWriteGuid,
    LogGuid) each, validity from the signature and the CRC-32C computed here."""
    out = []
    for at in vc.HEADER_AT:
        h = bytearray(raw[at:at + 4096])
        stored = struct.unpack_from("<I", h, 4)[0]
        h[4:8] = bytes(4)
        valid = h[:4] == b"head" and vc.crc32c(h) == stored
        seq = struct.unpack_from("<Q", h, 8)[0]
        out.append((valid, seq, bytes(h[16:32]), bytes(h[32:48]), bytes(h[48:64])))
    return out


def metadata_table(raw, base):
    count = struct.unpack_from("<H", raw, base + 10)[0]
    return [struct.unpack_from("<16sIII", raw, base + 32 + 32 * i) for i in range(count)]


def locator_of(raw, base):
    """The parent locator's (key, value) pairs, its offset in the region and length."""
    for g, offset, length, flags in metadata_table(raw, base):
        if g == vc.ITEMS["parent_locator"] and not flags & vc.IS_USER:
            item = raw[base + offset:base + offset + length]
            assert item[:16] == vc.LOCATOR_TYPE_VHDX
            count = struct.unpack_from("<H", item, 18)[0]
            pairs = []
            for i in range(count):
                ko, vo, kl, vl = struct.unpack_from("<IIHH", item, 20 + 12 * i)
                pairs.append((item[ko:ko + kl].decode("utf-16-le"),
                              item[vo:vo + vl].decode("utf-16-le")))
            return pairs, offset, length
    raise AssertionError("no parent locator")


def differing(a, b):
    """The 4 KiB pages where @a and @b differ (the shorter padded with zeros)."""
    n = max(len(a), len(b))
    a, b = a.ljust(n, b"\0"), b.ljust(n, b"\0")
    return [at for at in range(0, n, 4096) if a[at:at + 4096] != b[at:at + 4096]]


def inside(at, ranges):
    return any(start <= at < start + length for start, length in ranges)


def check_relocated(img, original, out, view, parent=PARENT, want_pairs=None):
    """@out is @original (crafted as @img, read through its log as @view, the bytes)
    relocated to @parent. Returns the new file's bytes."""
    raw = file_bytes(out)
    base = img.layout["metadata"]
    # The file is as long as the view, and differs from it only in the headers and the
    # metadata region.
    assert len(raw) == len(view), (len(raw), len(view))
    allowed = [(vc.HEADER_AT[0], 4096), (vc.HEADER_AT[1], 4096), (base, MiB)]
    for at in differing(raw, view):
        assert inside(at, allowed), "byte %d changed outside the headers and metadata" % at
    # Both headers valid, LogGuid zero, DataWriteGuid kept, a new FileWriteGuid, the
    # header that was current still current and two numbers further.
    before, after = headers(view), headers(raw)
    cur = 0 if not before[1][0] or (before[0][0] and before[0][1] >= before[1][1]) else 1
    old_seq = before[cur][1]
    for i, (valid, seq, fwg, dwg, log_guid) in enumerate(after):
        assert valid, "header %d is not valid" % (i + 1)
        assert log_guid == bytes(16), i
        assert dwg == before[cur][3], i
        assert fwg != before[cur][2], i
        assert seq == (old_seq + 2 if i == cur else old_seq + 1), (i, seq, old_seq)
    assert after[0][2] == after[1][2]
    # The locator: Hyper-V's relative path, the linkages and unknown keys kept in their
    # order, the absolute paths gone.
    old_pairs = locator_of(view, base)[0]
    pairs, offset, length = locator_of(raw, base)
    if want_pairs is None:
        want_pairs = [(k, ".\\" + parent if k == "relative_path" else v) for k, v in old_pairs
                      if k not in ("volume_path", "absolute_win32_path")]
        if "relative_path" not in dict(old_pairs):
            want_pairs.append(("relative_path", ".\\" + parent))
    assert pairs == want_pairs, pairs
    assert offset % 8 == 0 and offset >= 64 * KiB and offset + length <= MiB
    # The metadata table: only the locator's entry changed.
    old_table, new_table = metadata_table(view, base), metadata_table(raw, base)
    assert len(old_table) == len(new_table)
    for o, n in zip(old_table, new_table):
        if o[0] != vc.ITEMS["parent_locator"]:
            assert o == n
    # What the project's reader makes of it: the same disk, no log to replay.
    i, keys = info(out)
    assert i["log_guid"] == ZERO_GUID and i["log_replayed"] == "0", i
    assert keys == [k for k, _ in want_pairs], keys
    assert i["locator.relative_path"] == ".\\" + parent, i
    o, _ = info(original)
    for key in ("size", "disk_id", "data_write_guid", "logical_sector_size", "block_size",
                "current_header", "type"):
        assert i[key] == o[key], key
    assert i["file_write_guid"] != o["file_write_guid"]
    assert int(i["sequence_number"]) == int(o["sequence_number"]) + 2
    assert extents(out) == extents(original)
    assert read(out) == read(original) == img.expected_bytes()
    return raw


def vhdiinfo_checks(original, out, before_path="\\\\?\\C:\\VMs"):
    """libvhdi opens the new file, finds the parent linkage and no absolute path. It
    looks `relative_path` up with a wrong length (docs/VHDX.md), so a locator whose only
    path is the relative one shows no parent file name, unless a later libvhdi finds it:
    then it must be ours. On the original it shows @before_path (libvhdi does not replay
    logs: a dirty original shows the locator as the file holds it)."""
    need("vhdiinfo")
    before = run(["vhdiinfo", original]).stdout
    after = run(["vhdiinfo", out]).stdout
    assert "Parent filename\t\t: " + before_path in before, before
    assert "Parent identifier\t: %s" % LINKAGE[1:-1] in after, after
    assert "Differential" in after and "C:\\" not in after and "Volume{" not in after, after
    names = [line for line in after.splitlines() if "Parent filename" in line]
    assert names in ([], ["\tParent filename\t\t: .\\" + PARENT]), names


def qemu_info_error(path):
    need("qemu-img")
    result = run(["qemu-img", "info", "-f", "vhdx", path], check=False)
    assert result.returncode != 0, result
    return result.stderr.strip()


LOG_REFUSAL = "contains a log that needs to be replayed"


def qemu_checks(original, out, dirty):
    """QEMU 7.2 refuses every differencing VHDX ("Operation not supported", from its
    metadata parser, after the headers, the log and the region tables); the relocated
    file must get that far, and a dirty original must not (its log)."""
    assert "Operation not supported" in qemu_info_error(out)
    if dirty:
        assert LOG_REFUSAL in qemu_info_error(original)


# ---- the tests ----


def test_relocate_every_key():
    """A clean AVHDX with every locator key (and one impexfs does not know), at both
    sector sizes: the locator shrinks in place, the rest of the file is the original's."""
    for logical in (512, 4096):
        img = small(logical)
        img.save("disk.avhdx")
        before = sha("disk.avhdx")
        patches, out = relocate("disk.avhdx")
        raw = check_relocated(img, "disk.avhdx", out, file_bytes("disk.avhdx"))
        assert sha("disk.avhdx") == before, "the original changed"
        # In place: the patches are the two headers, the table entry and the item.
        pairs, offset, length = locator_of(raw, img.layout["metadata"])
        old_offset, old_length = img.layout["items"]["parent_locator"]
        assert offset == old_offset - img.layout["metadata"] and length < old_length
        assert patches == [(vc.HEADER_AT[0], 4096), (vc.HEADER_AT[1], 4096),
                           (img.metadata_entry_at("parent_locator"), 32),
                           (old_offset, old_length)], patches
        # The old, longer item's tail is zeroed: no old path is left behind.
        assert raw[old_offset + length:old_offset + old_length] == bytes(old_length - length)
        assert b"V\0M\0s\0" not in raw[img.layout["metadata"]:img.layout["metadata"] + MiB]
        vhdiinfo_checks("disk.avhdx", out)
        if logical == 512:
            qemu_checks("disk.avhdx", out, dirty=False)


def test_relocate_each_key_missing():
    """Locators Hyper-V could have written with fewer keys: relative_path is put in its
    place or added last, the rest kept."""
    for missing in ("parent_linkage2", "relative_path", "volume_path", "absolute_win32_path",
                    "vendor_key"):
        pairs = [kv for kv in ALL_KEYS if kv[0] != missing]
        img = small(locator=pairs)
        img.save("disk.avhdx")
        _, out = relocate("disk.avhdx")
        check_relocated(img, "disk.avhdx", out, file_bytes("disk.avhdx"))


def replayed_view(img, sectors, size=None):
    """The file @img saved, as its log leaves it: @sectors {offset: bytes} put back and
    the file grown to @size (computed from what the test put in the log)."""
    buf = vc.Sparse()
    buf.put(0, file_bytes("disk.avhdx"))
    for at, raw in sectors.items():
        buf.put(at, raw)
    if size is not None and size > buf.size:
        buf.size = size
    return buf.get(0, buf.size)


def test_relocate_dirty_log_writes_locator():
    """The log holds the metadata sector with the locator (the file holds an older one,
    with another parent): the patched file is the replayed one, with an empty log. With
    the LogGuid put back, a replay would undo the patched locator: that is why it is
    zero."""
    img = small()
    at, length = img.layout["items"]["parent_locator"]
    sector = at - at % vc.LOG_SECTOR
    assert at + length <= sector + vc.LOG_SECTOR
    current = img.get(sector, vc.LOG_SECTOR)
    old = vc.locator_bytes([("parent_linkage", "{00000000-1111-2222-3333-444444444444}"),
                            ("absolute_win32_path", "C:\\old\\older.vhdx")])
    stale = bytearray(current)
    stale[at - sector:at - sector + length] = old.ljust(length, b"\0")
    table = img.layout["metadata"]
    table_sector = img.get(table, vc.LOG_SECTOR)
    img.dirty([table, sector], old={table: table_sector, sector: bytes(stale)}, sequence=41)
    img.save("disk.avhdx")
    o, _ = info("disk.avhdx")
    assert o["log_replayed"] == "1" and o["locator.parent_linkage"] == LINKAGE, o
    view = replayed_view(img, {table: table_sector, sector: current})
    _, out = relocate("disk.avhdx")
    raw = check_relocated(img, "disk.avhdx", out, view)
    assert locator_of(raw, img.layout["metadata"])[0][0] == ("parent_linkage", LINKAGE)
    # The log is still in the new file, stale: put its LogGuid back and it would replay
    # the locator as it was before the relocation.
    log_guid = headers(file_bytes("disk.avhdx"))[1][4]
    undo = vc.Image()
    undo.buf.put(0, raw)
    undo.set_header("both", "log_guid", log_guid)
    undo.save("undo.avhdx")
    u, _ = info("undo.avhdx")
    assert u["log_replayed"] == "1" and u["locator.relative_path"] == ALL_KEYS[2][1], u
    # libvhdi reads the dirty original without its log: the older parent; the relocated
    # file gives it the replayed one.
    vhdiinfo_checks("disk.avhdx", out, before_path="C:\\old\\older.vhdx")
    qemu_checks("disk.avhdx", out, dirty=True)


def bat_sector(img, index):
    at = img.layout["bat"] + 8 * index
    return at - at % vc.LOG_SECTOR


def test_relocate_dirty_log_writes_bat():
    """The log allocates a block (a BAT sector) and gives the disk a sector bitmap
    block past the file's end: the new file is as long as the log makes it, with the
    replayed BAT and bitmap, and no log to replay."""
    img = small(writes=[(0, data(512, 11)), (6 * MiB + 512, data(1024, 12))],
                states={2: vc.FULLY_PRESENT})
    bitmap_at = img.layout["bitmaps"][0]
    assert bitmap_at + MiB == img.file_size
    bitmap = img.get(bitmap_at, vc.LOG_SECTOR)
    indexes = (img.payload_index(0), img.payload_index(2), img.payload_index(6),
               img.bitmap_index(0))
    after = {s: img.get(s, vc.LOG_SECTOR) for s in {bat_sector(img, i) for i in indexes}}
    assert len(after) == 2  # the payload entries, and the chunk's bitmap entry
    raw = vc.log_entry(7, vc.new_guid(), [("data", bitmap_at, bitmap),
                                          ("zero", bitmap_at + vc.LOG_SECTOR,
                                           MiB - vc.LOG_SECTOR)]
                       + [("data", s, after[s]) for s in sorted(after)],
                       tail=0, flushed=bitmap_at, last=bitmap_at + MiB)
    guid = struct.unpack_from("16s", raw, 32)[0]
    for index in indexes:
        img.put(img.layout["bat"] + 8 * index, bytes(8))
    img.write_log([(0, raw)], guid)
    img.truncate(bitmap_at)
    img.save("disk.avhdx")
    assert os.path.getsize("disk.avhdx") == bitmap_at
    view = replayed_view(img, {**after, bitmap_at: bitmap}, size=bitmap_at + MiB)
    _, out = relocate("disk.avhdx")
    check_relocated(img, "disk.avhdx", out, view)
    assert os.path.getsize(out) == bitmap_at + MiB
    assert os.path.getsize("disk.avhdx") == bitmap_at
    qemu_checks("disk.avhdx", out, dirty=True)


def test_relocate_dirty_qemu_reads_it():
    """QEMU refuses differencing files, so this test hides the parent from it in a copy,
    by hand (HasParent cleared, the locator's table entry renamed to an item QEMU does
    not know and need not): a disk of fully present blocks whose log allocates one. The
    relocated file opens read-only, checks clean and reads as impexfs reads the dirty
    original; the same copy of the original is refused for its log."""
    need("qemu-img")
    img = small(writes=[(0, data(MiB, 21)), (4 * MiB, data(MiB, 22))],
                states={0: vc.FULLY_PRESENT, 4: vc.FULLY_PRESENT, 7: vc.FULLY_PRESENT})
    sector = bat_sector(img, 4)
    after = img.get(sector, vc.LOG_SECTOR)
    cleared = bytearray(after)
    at = img.layout["bat"] + 8 * img.payload_index(4) - sector
    cleared[at:at + 8] = bytes(8)
    img.dirty([sector], old={sector: bytes(cleared)})
    img.save("disk.avhdx")
    _, out = relocate("disk.avhdx")
    check_relocated(img, "disk.avhdx", out, replayed_view(img, {sector: after}))
    params = img.item_offset("file_parameters") + 4
    entry = img.metadata_entry_at("parent_locator")

    def without_parent(path, copy):
        raw = bytearray(file_bytes(path))
        raw[params:params + 4] = struct.pack("<I", 0)
        raw[entry:entry + 16] = vc.guid("{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}")
        raw[entry + 24:entry + 28] = struct.pack("<I", 0)
        with open(copy, "wb") as f:
            f.write(raw)
        return copy

    assert LOG_REFUSAL in qemu_info_error(without_parent("disk.avhdx", "orig-dyn.vhdx"))
    dyn = without_parent(out, "out-dyn.vhdx")
    run(["qemu-img", "info", "-f", "vhdx", dyn])
    run(["qemu-img", "check", "-f", "vhdx", dyn])
    run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", dyn, "out.raw"])
    assert file_bytes("out.raw") == read("disk.avhdx") == img.expected_bytes()
    # Read-only all along: QEMU wrote nothing (it would have, to replay a log).
    assert headers(file_bytes(dyn)) == headers(file_bytes(out))


def test_relocate_moves_locator():
    """A locator that cannot grow in place (another item right after it) moves to the
    first free place of the metadata region; the table entry follows and its old place
    is zeroed."""
    other = (vc.guid("{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}"), 0, b"\x77" * 200)
    img = small(locator=[("parent_linkage", LINKAGE), ("relative_path", ".\\b.vhdx")],
                extra_items=[other])
    img.save("disk.avhdx")
    base = img.layout["metadata"]
    old_offset, old_length = img.layout["items"]["parent_locator"]
    other_offset = img.layout["items"][vc.guid_text(other[0])][0]
    assert other_offset == old_offset + -(-old_length // 8) * 8
    patches, out = relocate("disk.avhdx")
    raw = check_relocated(img, "disk.avhdx", out, file_bytes("disk.avhdx"))
    pairs, offset, length = locator_of(raw, base)
    assert base + offset == other_offset + 200, (offset, other_offset)  # after the other item
    assert raw[old_offset:old_offset + old_length] == bytes(old_length)
    assert raw[other_offset:other_offset + 200] == b"\x77" * 200
    assert patches == [(vc.HEADER_AT[0], 4096), (vc.HEADER_AT[1], 4096),
                       (img.metadata_entry_at("parent_locator"), 32),
                       (old_offset, old_length), (base + offset, length)], patches
    qemu_checks("disk.avhdx", out, dirty=False)


def test_relocate_no_room():
    """A metadata region with no room for the larger locator: -ENOSPC, a message naming
    the file (the caller merges the chain instead); a shorter one still fits in place."""
    probe = small(locator=[("parent_linkage", LINKAGE), ("relative_path", ".\\b.vhdx")])
    start, length = probe.layout["items"]["parent_locator"]
    filler_at = start + -(-length // 8) * 8
    filler = (vc.guid("{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}"), 0,
              b"\x55" * (probe.layout["metadata"] + MiB - filler_at))
    img = small(locator=[("parent_linkage", LINKAGE), ("relative_path", ".\\b.vhdx")],
                extra_items=[filler])
    img.save("disk.avhdx")
    before = sha("disk.avhdx")
    result = dump("relocate", "disk.avhdx", PARENT, "out.avhdx", check=False)
    assert result.returncode == 1, result
    message = result.stderr.strip()
    assert message.startswith("vhdxdump: the metadata region of 'disk.avhdx'"), message
    assert "has no room for a parent locator" in message and not message.endswith("."), message
    assert not os.path.exists("out.avhdx")
    assert sha("disk.avhdx") == before
    _, out = relocate("disk.avhdx", parent="c.vhdx")
    check_relocated(img, "disk.avhdx", out, file_bytes("disk.avhdx"), parent="c.vhdx")


def test_relocate_headers():
    """The header that is current stays current, whichever it is; a damaged other header
    is rewritten valid; sequence numbers at the top of their range do not wrap."""
    img = small()
    img.set_header(1, "sequence_number", 9)  # header 1 current
    img.set_header(2, "checksum", 0, checksum=False)  # header 2 damaged
    img.save("disk.avhdx")
    assert info("disk.avhdx")[0]["current_header"] == "1"
    _, out = relocate("disk.avhdx")
    check_relocated(img, "disk.avhdx", out, file_bytes("disk.avhdx"))
    top = 2 ** 64 - 1
    img = small()
    img.set_header("both", "sequence_number", top)  # identical: header 1 current
    img.save("disk.avhdx")
    _, out = relocate("disk.avhdx")
    after = headers(file_bytes(out))
    assert [h[1] for h in after] == [top, top - 1] and all(h[0] for h in after), after
    assert info(out)[0]["current_header"] == "1"


def test_relocate_same_bytes_every_time():
    """The same file and name give the same bytes (the export mount serves them again
    and again); another name gives another FileWriteGuid."""
    img = small()
    img.save("disk.avhdx")
    relocate("disk.avhdx", out="a.avhdx")
    relocate("disk.avhdx", out="b.avhdx")
    relocate("disk.avhdx", parent="other.vhdx", out="c.avhdx")
    assert sha("a.avhdx") == sha("b.avhdx")
    assert info("a.avhdx")[0]["file_write_guid"] != info("c.avhdx")[0]["file_write_guid"]


def test_relocate_refused():
    """What cannot be relocated is refused with a message naming the file and the fault,
    nothing written."""
    def refused(path, parent, *words):
        result = dump("relocate", path, parent, "out.avhdx", check=False)
        assert result.returncode == 1, result
        message = result.stderr.strip()
        assert message.startswith("vhdxdump: ") and "\n" not in message, message
        assert "'%s'" % path in message and not message.endswith("."), message
        for word in words:
            assert word in message, (word, message)
        assert not os.path.exists("out.avhdx")

    vc.build(8 * MiB, "dynamic", block_size=MiB).save("dyn.vhdx")
    refused("dyn.vhdx", PARENT, "is not a differencing disk")
    small().save("disk.avhdx")
    for name in ("", ".", "..", "a\\b.vhdx", "../b.vhdx", "C:\\base.vhdx"):
        refused("disk.avhdx", name, "not a file name", "cannot name parent '%s'" % name)
    refused("disk.avhdx", "x" * 5000, "is too long")
    # A hostile file is refused when opened, as by every reader of the module.
    img = small()
    img.set_header(1, "checksum", 0, checksum=False)
    img.set_header(2, "checksum", 0, checksum=False)
    img.save("bad.avhdx")
    refused("bad.avhdx", PARENT, "neither header")
    img = small()
    img.put(img.item_offset("parent_locator") + 18, struct.pack("<H", 5000))
    img.save("bad.avhdx")
    refused("bad.avhdx", PARENT, "declares 5000 entries")


run_tests(globals())
