"""The VHDX writer (core/vhdx_create.c, core/vhdx_write.c), driven through
tests/vhdxwrite, judged by referees that share no code with it: qemu-img
(info, check, compare; fixed and dynamic disks of 512-byte sectors), libvhdi
(vhdiinfo, vhdimount; AVHDX chains), tests/vhdxread.py (an independent
reader written from [MS-VHDX]: every layout, both sector sizes, chains, logs)
and models of the content built here from what was written. The project's
reader (tests/vhdxdump) must agree with them.

Crash safety: the writer is cut off at every system call that writes or
syncs (tests/vhdxwrite's failure injection: cut mid-write, unsynced writes
lost, or every call failing from one on), killed with SIGKILL at random
moments, and run out of space on a small file system; every time the file
opens in the project's reader, in vhdxread.py and (dynamic disks) in
qemu-img check, and every sector reads old or new.
"""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vhdxwritelib import (GiB, KiB, MiB, TiB, ZERO_GUID, Model, assert_clean,  # noqa: E402
                          bat_sector, block_state, child_alone, compare_raw, data,
                          dirty_image, dump_runs, have_all, info, make_parent, need,
                          qemu_check, qemu_raw, read, sha, vc, vr, vw, write)
from taplib import have, run, run_tests  # noqa: E402


# ---- creating ----


def test_create_layout_and_defaults():
    """New fixed and dynamic files have Hyper-V's defaults and layout, as an independent
    reader sees them: 32 MiB blocks (dynamic) and 2 MiB (fixed), 512-byte logical and
    4 KiB physical sectors, the log of 1 MiB at 1 MiB, the metadata region at 2 MiB, the
    BAT at 3 MiB, the items flagged as Hyper-V flags them; a fixed disk has every block
    allocated in order after the BAT. qemu-img agrees on what it reads."""
    size = 200 * MiB
    for kind, block in (("dynamic", 32 * MiB), ("fixed", 2 * MiB)):
        path = kind + ".vhdx"
        vw("create", path, size, kind)
        disk = assert_clean(path)
        assert disk.creator.startswith("impexfs "), disk.creator
        h1, h2 = disk.headers[1], disk.headers[2]
        assert (h1["sequence_number"], h2["sequence_number"]) == (1, 2)
        for h in (h1, h2):
            assert (h["log_offset"], h["log_length"], h["version"], h["log_version"]) == (
                MiB, MiB, 1, 0), h
        assert h1["file_write_guid"] == h2["file_write_guid"] != ZERO_GUID
        assert disk.regions["{2DC27766-F623-4200-9D64-115E9BFD4A08}"] == (3 * MiB, MiB, 1)
        assert disk.regions["{8B7CA206-4790-4B9A-B8FE-575F050F886E}"] == (2 * MiB, MiB, 1)
        assert (disk.size, disk.block_size, disk.logical, disk.physical) == (
            size, block, 512, 4096)
        assert disk.leave_allocated == (kind == "fixed") and not disk.has_parent
        assert disk.locator is None
        flags = {g: f for g, (_, f, _) in disk.items.items()}
        assert flags == {"{CAA16737-FA36-4D43-B3B6-33F0AA44E76B}": 4,
                         "{2FA54224-CD1B-4876-B211-5DBED83BF4B8}": 6,
                         "{BECA12AB-B2E6-4523-93EF-C309E000C746}": 6,
                         "{8141BF1D-A96F-4709-BA47-F233A8FAAB5F}": 6,
                         "{CDA348C7-445D-4471-9CC9-E9885251C556}": 6}, flags
        blocks = size // block
        if kind == "fixed":
            assert os.path.getsize(path) == 4 * MiB + blocks * block
            assert [disk.block_entry(b) for b in range(blocks)] == [
                (vr.FULLY_PRESENT, 4 * MiB + b * block) for b in range(blocks)]
        else:
            assert os.path.getsize(path) == 4 * MiB
            assert all(disk.block_entry(b) == (vr.NOT_PRESENT, 0) for b in range(blocks))
        assert disk.read() == bytes(size)
        i = info(path)
        assert (int(i["size"]), int(i["block_size"]), i["type"]) == (size, block, kind), i
        assert i["disk_id"] == disk.disk_id and i["file_write_guid"] == h2["file_write_guid"]
        if have("qemu-img"):
            qemu_check(path)
            out = run(["qemu-img", "info", "-f", "vhdx", path]).stdout
            assert "virtual size: 200 MiB (%d bytes)" % size in out, out
            assert "cluster_size: %d" % block in out, out
            assert qemu_raw(path) == bytes(size)
    # Other sizes on request, and a 4096-byte logical sector.
    vw("create", "big.vhdx", 64 * TiB, "dynamic", MiB, 4096, 4096)
    disk = vr.VhdxFile("big.vhdx")
    assert (disk.size, disk.block_size, disk.logical, disk.physical) == (
        64 * TiB, MiB, 4096, 4096)
    assert disk.bat_length == 513 * MiB  # 2^26 blocks, a bitmap entry between chunks
    assert os.path.getsize("big.vhdx") == 3 * MiB + disk.bat_length
    assert info("big.vhdx")["logical_sector_size"] == "4096"


def test_create_refused():
    """Bad options and an existing name are refused with a clear message, and nothing is
    left behind: not the file, not a temporary one."""
    os.mkdir("d")
    cases = [((0, "dynamic"), "a disk size of 0"),
             ((MiB + 512, "dynamic"), "not a whole number of MiB"),
             ((64 * TiB + MiB, "fixed"), "over the VHDX limit of 64 TiB"),
             ((8 * MiB, "dynamic", 3 * MiB), "block size 3145728 is not a power of two"),
             ((8 * MiB, "dynamic", 512 * KiB), "from 1 MiB to 256 MiB"),
             ((8 * MiB, "fixed", 512 * MiB), "from 1 MiB to 256 MiB"),
             ((8 * MiB, "dynamic", 0, 1024), "logical sector size 1024 is not 512 or 4096"),
             ((8 * MiB, "dynamic", 0, 4096, 512),
              "physical sector size 512 is smaller than the logical sector size 4096"),
             ((8 * MiB, "differencing"), "can only create fixed or dynamic disks")]
    for args, words in cases:
        result = vw("create", "d/x.vhdx", *args, check=False)
        assert result.returncode == 1, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)
        assert os.listdir("d") == [], os.listdir("d")
    vw("create", "d/x.vhdx", 8 * MiB, "dynamic")
    before = sha("d/x.vhdx")
    result = vw("create", "d/x.vhdx", 8 * MiB, "fixed", check=False)
    assert result.returncode == 1 and "'d/x.vhdx' already exists" in result.stderr, result
    assert sha("d/x.vhdx") == before and os.listdir("d") == ["x.vhdx"]
    result = vw("create", "nowhere/x.vhdx", 8 * MiB, "fixed", check=False)
    assert result.returncode == 1 and "cannot create 'nowhere/x.vhdx'" in result.stderr
    # A file system that fills up while the file is made: nothing is left.
    if os.geteuid() == 0:
        os.mkdir("small")
        run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", "small"])
        try:
            result = vw("create", "small/x.vhdx", 8 * MiB, "fixed", 32 * MiB, check=False)
            print("# create on a full file system: %s" % result.stderr.strip())
            assert result.returncode == 1 and "small/x.vhdx" in result.stderr, result
            assert os.listdir("small") == [], os.listdir("small")
        finally:
            run(["umount", "small"])


# ---- writing fixed and dynamic disks ----


def sample_writes(size, block, logical, seed):
    """Writes at sector granularity: the first and last sectors, one straddling a block
    boundary, a whole block, small ones, overwrites."""
    return [(0, data(logical, seed)),
            (size - logical, data(logical, seed + 1)),
            (block - 2 * logical, data(5 * logical, seed + 2)),
            (2 * block, data(block, seed + 3)),
            (3 * block + 7 * logical, data(3 * logical, seed + 4)),
            (3 * block + 8 * logical, data(logical, seed + 5)),  # over the one before
            (block - logical, data(2 * logical, seed + 6))]


def test_write_fixed_and_dynamic_against_qemu():
    """qemu-img referees fixed and dynamic disks written at sector granularity: check
    finds no error, compare finds the content of the model, and the project's reader and
    vhdxread.py read the same. Blocks are allocated at the end of the file, whole MiB,
    each once."""
    need("qemu-img")
    for kind, block, size in (("dynamic", 0, 100 * MiB), ("dynamic", MiB, 20 * MiB),
                              ("dynamic", 8 * MiB, 37 * MiB), ("fixed", 0, 21 * MiB),
                              ("fixed", MiB, 20 * MiB)):
        path = "%s-%d.vhdx" % (kind, block)
        vw("create", path, size, kind, block)
        bs = block or (32 * MiB if kind == "dynamic" else 2 * MiB)
        model = Model(size)
        writes = sample_writes(size, bs, 512, 1)
        write(path, writes[:3])
        write(path, writes[3:])
        for offset, chunk in writes:
            model.write(offset, chunk)
        assert_clean(path)
        qemu_check(path)
        compare_raw(path, model)
        assert read(path) == model.bytes()
        disk = vr.VhdxFile(path)
        assert disk.read() == model.bytes()
        if kind == "dynamic":
            stored = sorted(at for b in range(disk.block_count)
                            for state, at in [disk.block_entry(b)] if state == vr.FULLY_PRESENT)
            assert stored == [4 * MiB + i * bs for i in range(len(stored))], stored
            assert os.path.getsize(path) == 4 * MiB + len(stored) * bs
        else:
            assert os.path.getsize(path) == 4 * MiB + disk.block_count * bs


def test_write_4096_byte_sectors():
    """Disks of 4096-byte logical sectors (which QEMU 7.2 refuses): the project's reader
    and vhdxread.py read the model; writes not of whole 4096-byte sectors are refused."""
    for kind in ("dynamic", "fixed"):
        path = kind + ".vhdx"
        size = 40 * MiB
        vw("create", path, size, kind, MiB, 4096)
        model = Model(size)
        writes = sample_writes(size, MiB, 4096, 10)
        write(path, writes)
        for offset, chunk in writes:
            model.write(offset, chunk)
        assert read(path) == model.bytes()
        assert vr.VhdxFile(path).read() == model.bytes()
        before = sha(path)
        result = vw("write", path, "src.bin", "512,4096", check=False)
        assert result.returncode == 1 and "whole 4096-byte sectors" in result.stderr, result
        result = vw("write", path, "src.bin", "%d,8192,0" % (size - 4096), check=False)
        assert result.returncode == 1 and "does not fit" in result.stderr, result
        assert sha(path) == before
    if have("qemu-img"):
        result = run(["qemu-img", "info", "-f", "vhdx", "fixed.vhdx"], check=False)
        print("# qemu-img on 4096-byte sectors: exit %d %s" % (
            result.returncode, result.stderr.strip().replace("\n", " ")))


# ---- differencing disks ----


def test_differencing_sector_granular():
    """An AVHDX over a VHDX parent, written at sector granularity at both logical sector
    sizes: blocks written in part are PARTIALLY_PRESENT with their sectors in the chunk's
    bitmap, blocks written whole (at once, or piece by piece until every sector is there)
    FULLY_PRESENT, the rest NOT_PRESENT (the parent's). The project's reader, vhdxread.py
    and (through the locator's absolute_win32_path, its relative_path being unreadable to
    it) libvhdi's vhdimount read the model."""
    for logical in (512, 4096):
        os.mkdir(str(logical))
        os.chdir(str(logical))
        size = 25 * MiB  # the child's last block (2 MiB blocks) is half a block
        block = 2 * MiB
        model = make_parent("parent.vhdx", size, logical, 20)
        cwd = os.getcwd()
        vw("diff", "child.avhdx", "parent.vhdx", "C:\\VMs=%s" % cwd)
        L = logical
        sessions = [
            [(0, data(L, 1)),  # block 0: first sector
             (3 * L, data(2 * L, 2)),
             (4 * L, data(L, 3)),  # over the one before
             (2 * block, data(block, 4)),  # block 2 whole
             (4 * block - 2 * L, data(4 * L, 5))],  # straddles blocks 3 and 4
            [(5 * block, data(block // 2, 6)),  # block 5: half, then the other half
             (6 * block + L, data(block - L, 7)),  # block 6 but its first sector
             (size - L, data(L, 8))],  # the disk's last sector
            [(5 * block + block // 2, data(block // 2, 9)),
             (6 * block, data(L, 10)),  # block 6 complete
             (3 * L, data(L, 11))],  # over a sector already here
        ]
        for writes in sessions:
            write("child.avhdx", writes)
            for offset, chunk in writes:
                model.write(offset, chunk)
        parent = vr.VhdxFile("parent.vhdx")
        child = assert_clean("child.avhdx")
        states = {b: block_state("child.avhdx", b)[0] for b in range(13)}
        assert states == {0: 7, 1: 0, 2: 6, 3: 7, 4: 7, 5: 6, 6: 6, 7: 0, 8: 0, 9: 0, 10: 0,
                          11: 0, 12: 7}, states
        assert [child.block_entry(b)[0] for b in range(13)] == [states[b] for b in range(13)]
        assert dump_runs("child.avhdx", L) == child.runs()
        assert child.read(parent=parent) == model.bytes()
        assert read("child.avhdx") == child_alone(child, model)
        # Every new block and the bitmap block at the end of the file, whole MiB.
        stored = sorted(at for b in range(13) for s, at in [child.block_entry(b)] if s in (6, 7))
        bitmap_state, bitmap_at = child.bitmap_entry(0)
        assert bitmap_state == vr.SB_PRESENT
        spans = sorted([(at, block) for at in stored] + [(bitmap_at, MiB)])
        assert spans[0][0] == 4 * MiB and all(at % MiB == 0 for at, _ in spans), spans
        assert all(a + n <= b for (a, n), (b, _) in zip(spans, spans[1:])), spans
        assert os.path.getsize("child.avhdx") == 4 * MiB + 7 * block + MiB
        if have("qemu-img") and logical == 512:
            result = run(["qemu-img", "info", "-f", "vhdx", "child.avhdx"], check=False)
            print("# qemu-img on an AVHDX: exit %d %s" % (
                result.returncode, result.stderr.strip().replace("\n", " ")))
        if have_all("vhdiinfo", "vhdimount", "fusermount3") and os.path.exists("/dev/fuse"):
            out = run(["vhdiinfo", "child.avhdx"]).stdout
            assert "Parent identifier\t: %s" % parent.header["data_write_guid"][1:-1] in out, out
            assert "Parent filename\t\t: \\\\?\\C:\\VMs\\parent.vhdx" in out, out
            os.mkdir("mnt")
            run(["vhdimount", "child.avhdx", "mnt"])
            try:
                with open("mnt/vhdi2", "rb") as f:
                    assert f.read() == model.bytes(), logical
            finally:
                run(["fusermount3", "-u", "mnt"])
        os.chdir("..")


def test_differencing_larger_than_one_chunk():
    """Children of four chunks (13 GiB of 512-byte sectors: chunks of 4 GiB; 97 GiB of
    4096: 32 GiB): a sector bitmap block for each chunk that has a partially present
    block, at the BAT entry after the chunk's payload entries; chunk 1, with only a fully
    present block, has none. A write straddles chunks 2 and 3. (libvhdi is left out: it reads
    the sector bitmap of chunks that have none, docs/VHDX.md.)"""
    for logical, size in ((512, 13 * GiB), (4096, 97 * GiB)):
        chunk = vc.CHUNK_SECTORS * logical
        vw("create", "p%d.vhdx" % logical, size, "dynamic", 0, logical)
        vw("diff", "c%d.avhdx" % logical, "p%d.vhdx" % logical)
        writes = [(logical, data(logical, 30)),  # chunk 0, partial
                  (chunk + 4 * MiB, data(2 * MiB, 31)),  # chunk 1: one whole block only
                  (3 * chunk - logical, data(2 * logical, 32)),  # the end of 2, start of 3
                  (size - logical, data(logical, 33))]
        write("c%d.avhdx" % logical, writes)
        child = vr.VhdxFile("c%d.avhdx" % logical)
        ratio = child.chunk_ratio
        assert ratio == chunk // (2 * MiB)
        states = [child.bitmap_entry(c)[0] for c in range(-(-child.block_count // ratio))]
        assert states == [vr.SB_PRESENT, vr.NOT_PRESENT, vr.SB_PRESENT, vr.SB_PRESENT], states
        assert child.block_entry((chunk + 4 * MiB) // (2 * MiB))[0] == vr.FULLY_PRESENT
        for offset, chunk_data in writes:
            lo = offset - offset % (2 * MiB)
            hi = min(size, -(-(offset + len(chunk_data)) // (2 * MiB)) * 2 * MiB)
            want_bytes = bytearray(hi - lo)
            for o, d in writes:
                for i in range(0, len(d), logical):
                    if lo <= o + i < hi:
                        want_bytes[o + i - lo:o + i - lo + logical] = d[i:i + logical]
            assert read("c%d.avhdx" % logical, lo, hi - lo) == bytes(want_bytes), offset
            assert child.read(lo, hi - lo) == bytes(want_bytes), (logical, offset)
        # vhdxdump's extents agree with vhdxread's over the whole disk.
        assert dump_runs("c%d.avhdx" % logical, logical) == child.runs()


def test_locator_keys():
    """The parent locator as Hyper-V writes it: parent_linkage (the parent's
    DataWriteGuid), relative_path from the child's folder with Windows separators, and
    absolute_win32_path in the \\\\?\\ form only when the path map covers the parent (a
    drive or a UNC share); volume_path is left out. The child takes the parent's size,
    sector sizes and virtual disk ID, and 2 MiB blocks."""
    os.makedirs("vms/base")
    os.makedirs("vms/snap")
    vw("create", "vms/base/Base Disk.vhdx", 48 * MiB, "dynamic", 0, 512, 512)
    here = os.getcwd()
    cases = [("vms/snap/a.avhdx", None, None),
             ("vms/snap/b.avhdx", "C:\\Hyper-V=%s/vms" % here,
              "\\\\?\\C:\\Hyper-V\\base\\Base Disk.vhdx"),
             ("vms/snap/c.avhdx", "\\\\nas\\share\\=%s" % here,
              "\\\\?\\UNC\\nas\\share\\vms\\base\\Base Disk.vhdx"),
             ("vms/base/d.avhdx", "D:\\=/elsewhere", None)]
    parent = vr.VhdxFile("vms/base/Base Disk.vhdx")
    for path, pathmap, absolute in cases:
        vw("diff", path, "vms/base/Base Disk.vhdx", *([pathmap] if pathmap else []))
        child = vr.VhdxFile(path)
        relative = ".\\Base Disk.vhdx" if "base/" in path else "..\\base\\Base Disk.vhdx"
        keys = ["parent_linkage", "relative_path"] + (["absolute_win32_path"] if absolute
                                                      else [])
        assert child.locator_order == keys, child.locator_order
        assert child.locator["parent_linkage"] == parent.header["data_write_guid"]
        assert child.locator["relative_path"] == relative, child.locator
        assert child.locator.get("absolute_win32_path") == absolute, child.locator
        assert (child.size, child.logical, child.physical, child.disk_id) == (
            parent.size, 512, 512, parent.disk_id)
        assert (child.block_size, child.has_parent, child.leave_allocated) == (2 * MiB, True,
                                                                               False)
        assert child.items["{A8D35F2D-B30B-454D-ABF7-D3D84834AB0C}"][1] == 4
        assert child.header["data_write_guid"] != parent.header["data_write_guid"]
        i = info(path)
        assert i["locator.relative_path"] == relative and i["type"] == "differencing", i
        assert child.runs() == [(0, 48 * MiB // 512, "parent", None)]
    # Refused: an existing child, a parent that is no VHDX, a parent path Windows cannot hold.
    result = vw("diff", "vms/snap/a.avhdx", "vms/base/Base Disk.vhdx", check=False)
    assert result.returncode == 1 and "already exists" in result.stderr, result
    with open("plain.vhdx", "wb") as f:
        f.write(bytes(2 * MiB))
    result = vw("diff", "x.avhdx", "plain.vhdx", check=False)
    assert result.returncode == 1 and "cannot use 'plain.vhdx' as a parent" in result.stderr
    shutil.copy("vms/base/Base Disk.vhdx", "back\\slash.vhdx")
    result = vw("diff", "y.avhdx", "back\\slash.vhdx", check=False)
    assert result.returncode == 1 and "holds a backslash" in result.stderr, result
    assert not os.path.exists("x.avhdx") and not os.path.exists("y.avhdx")


def test_write_guids():
    """[MS-VHDX] 2.2.2: opening for writing changes nothing; the first write renews the
    FileWriteGuid and the DataWriteGuid in both headers (the sequence number going up by
    one each time a header is written), and a child made before the parent changed no
    longer matches its parent_linkage (libvhdi refuses the chain then)."""
    vw("create", "p.vhdx", 16 * MiB, "dynamic")
    before = vr.VhdxFile("p.vhdx")
    digest = sha("p.vhdx")
    vw("open", "p.vhdx")
    assert sha("p.vhdx") == digest
    vw("diff", "c.avhdx", "p.vhdx", "C:\\=%s" % os.getcwd())
    write("p.vhdx", [(512, data(512, 40))])
    after = assert_clean("p.vhdx")
    for field in ("file_write_guid", "data_write_guid"):
        assert after.header[field] != before.header[field], field
        assert after.headers[1][field] == after.headers[2][field]
    # Two headers for the new GUIDs, two for the LogGuid of the first entry, two to clear it.
    assert after.header["sequence_number"] == before.header["sequence_number"] + 6
    assert vr.VhdxFile("c.avhdx").locator["parent_linkage"] == before.header["data_write_guid"]
    if have_all("vhdimount", "fusermount3") and os.path.exists("/dev/fuse"):
        os.mkdir("mnt")
        result = run(["vhdimount", "c.avhdx", "mnt"], check=False)
        if result.returncode == 0:
            run(["fusermount3", "-u", "mnt"])
        print("# vhdimount of a child whose parent changed since: exit %d, %s" % (
            result.returncode, " ".join(result.stderr.split())))
        assert result.returncode != 0 and "mismatch in identifier" in result.stderr, result


# ---- a log left to replay ----


def test_dirty_log_replayed_then_written():
    """A file left with a log to replay, opened for writing: the first write replays it
    for real (the file then reads as the log made it without any log: LogGuid zero), then
    writes. qemu-img's own replay (check -r all on a copy of the dirty file) agrees."""
    for logical in (512, 4096):
        img = dirty_image(logical)
        img.save("dirty.vhdx")
        assert info("dirty.vhdx")["log_replayed"] == "1"
        model = Model(24 * MiB, img.expected_bytes())
        shutil.copy("dirty.vhdx", "w.vhdx")
        writes = [(3 * MiB + 8 * logical, data(logical, 53)), (22 * MiB, data(logical, 54))]
        write("w.vhdx", writes)
        for offset, chunk in writes:
            model.write(offset, chunk)
        disk = assert_clean("w.vhdx")
        assert not disk.log_entries
        assert info("w.vhdx")["log_replayed"] == "0"
        assert disk.size == 24 * MiB and disk.read() == model.bytes()
        assert read("w.vhdx") == model.bytes()
        if logical == 512 and have("qemu-img"):
            qemu_check("w.vhdx")
            compare_raw("w.vhdx", model)
            shutil.copy("dirty.vhdx", "q.vhdx")
            run(["qemu-img", "check", "-r", "all", "-f", "vhdx", "q.vhdx"], check=False)
            write("q.vhdx", writes)
            assert qemu_raw("q.vhdx") == model.bytes()


def test_wrapped_log_replayed_then_written():
    """A log of three entries, the last wrapped round the log's end to its start, each
    allocating a block: replayed for real, in order, before the write."""
    img = vc.build(40 * MiB, "dynamic", block_size=MiB,
                   writes=[(b * MiB, data(4096, 60 + b)) for b in (1, 9, 30)])
    log_guid = vc.new_guid()
    length = img.layout["log"][1]
    flushed, last = img.file_size // MiB * MiB, -(-img.file_size // MiB) * MiB
    entries, at = [], length - 12 * KiB
    d_at = at
    for seq, b in ((5, 1), (6, 9), (7, 30)):
        raw = vc.log_entry(seq, log_guid, img.sectors_of([bat_sector(img, b)]), tail=d_at,
                           flushed=flushed, last=last)
        entries.append((at % length, raw))
        at += len(raw)
    assert entries[-1][0] < d_at  # wrapped
    for b in (1, 9, 30):
        sector = bat_sector(img, b)
        raw = bytearray(img.get(sector, vc.LOG_SECTOR))
        o = img.layout["bat"] + 8 * b - sector
        raw[o:o + 8] = bytes(8)
        img.put(sector, bytes(raw))
    img.write_log(entries, log_guid)
    img.save("wrapped.vhdx")
    model = Model(40 * MiB, img.expected_bytes())
    write("wrapped.vhdx", [(9 * MiB + 4096, data(512, 69))])
    model.write(9 * MiB + 4096, data(512, 69))
    assert assert_clean("wrapped.vhdx").read() == model.bytes()
    assert read("wrapped.vhdx") == model.bytes()


# ---- hostile files ----


def test_hostile_files_opened_for_writing_change_nothing():
    """Damaged files opened for writing (and written to) are refused with a message that
    names the file and the fault, and not one byte changes."""
    def small(kind="dynamic", **kw):
        return vc.build(8 * MiB, kind, block_size=MiB, writes=[(0, data(512, 70))], **kw)

    cases = []
    img = small()
    img.set_header(1, "checksum", 1, checksum=False)
    img.set_header(2, "checksum", 1, checksum=False)
    cases.append((img, "neither header"))
    img = small()
    img.set_region("both", 1, "file_offset", img.layout["bat"])
    cases.append((img, "overlap"))
    img = small()
    img.set_bat(img.payload_index(0), vc.FULLY_PRESENT, 900 * MiB)
    cases.append((img, "points past the end of the file"))
    img = small()
    sector = bat_sector(img, 0)
    img.dirty([sector])
    img.put(img.layout["log"][0] + 100, b"x")
    cases.append((img, "wrong checksum"))
    img = small()
    guid = vc.new_guid()
    img.write_log([(0, vc.log_entry(1, guid, [("data", 64 * KiB, bytes(4096))],
                                    last=8 * MiB))], guid)
    cases.append((img, "into the file identifier or the headers"))
    img = small()
    img.set_header("both", "sequence_number", 2 ** 64 - 1)
    cases.append((img, "sequence number of its headers is at its limit"))
    img = small()
    img.set_header("both", "log_version", 3)
    cases.append((img, "log of version 3"))
    img = small("differencing", locator=[("relative_path", ".\\p.vhdx")])
    cases.append((img, "no parent_linkage"))
    for n, (img, words) in enumerate(cases):
        path = img.save("bad%d.vhdx" % n)
        before = sha(path)
        for args in (["open", path], ["write", path, path, "0,512"]):
            result = vw(*args, check=False)
            message = result.stderr.strip()
            assert result.returncode == 1, (words, result.stderr)
            assert message.startswith("vhdxwrite: '%s'" % path) or (
                "'%s'" % path in message), message
            assert words in message, (words, message)
            assert sha(path) == before, words


run_tests(globals())
