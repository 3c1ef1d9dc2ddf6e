"""impex against QEMU and libvhdi: each reads what the other writes.

QEMU's vpc driver reads fixed and dynamic VHDs well (not differencing ones),
so it is the referee for single-level disks; vhdiinfo checks the metadata.
Expected content is built here, in Python or by `qemu-img convert -O raw`,
never by impex.
"""

import json
import os
import random
import re
import struct
import subprocess
import uuid

from taplib import IMPEX, Skip, have, impex, run, run_tests, sanitizer_clean

MiB = 1024 * 1024
SECTOR = 512


def need(*tools):
    for tool in tools:
        if not have(tool):
            raise Skip("%s is not installed" % tool)


def vhd(*args, check=True, **kw):
    """Run `impex vhd ARGS` and insist on a clean exit from the sanitizers."""
    result = impex("vhd", *args, check=check, **kw)
    sanitizer_clean(result)
    return result


def info_json(path, *options):
    return json.loads(vhd("info", "--json", *options, path).stdout)


def cat_to(path, out):
    """`impex vhd cat PATH > OUT`."""
    with open(out, "wb") as f:
        vhd("cat", path, stdout=f)


def qemu_raw(path, out):
    run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", path, out])


def qemu_info(path):
    return json.loads(run(["qemu-img", "info", "-f", "vpc", "--output=json", path]).stdout)


def qemu_io(path, *commands):
    args = ["qemu-io", "-f", "vpc"]
    for command in commands:
        args += ["-c", command]
    result = run(args + [path])
    assert "failed" not in result.stdout + result.stderr, result
    return result


def qemu_compare(vhd_path, raw_path):
    """qemu-img compare: exit 0 when the VHD's content equals the raw file."""
    result = run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", vhd_path, raw_path],
                 check=False)
    assert result.returncode == 0, "qemu-img compare %s %s: %r" % (vhd_path, raw_path, result)
    assert "identical" in result.stdout, result


def vhdiinfo(path):
    result = run(["vhdiinfo", path])
    fields = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def vhdiinfo_media_size(fields):
    match = re.search(r"\((\d+) bytes\)", fields.get("Media size", ""))
    assert match, "vhdiinfo shows no media size: %r" % fields
    return int(match.group(1))


def next_data(f, pos, size):
    """Where data starts at or after POS in the file F (SEEK_DATA), or SIZE."""
    try:
        return os.lseek(f.fileno(), pos, os.SEEK_DATA)
    except OSError:
        return size


def assert_same_stream(actual, expected, name, skip_holes_of=None, size=None):
    """Compare two binary streams chunk by chunk; name the first differing
    offset. Holes that both files have (SKIP_HOLES_OF) are skipped."""
    chunk = 4 * MiB
    pos = 0
    while True:
        if skip_holes_of:
            start = min(next_data(f, pos, size) for f in skip_holes_of)
            pos = max(pos, start // chunk * chunk if start < size else size)
            for f in skip_holes_of:
                f.seek(pos)  # SEEK_DATA moved the descriptor under the buffer
        a, e = actual.read(chunk), expected.read(chunk)
        if a != e:
            if len(a) != len(e) and (a == e[:len(a)] or e == a[:len(e)]):
                raise AssertionError("%s: length differs after byte %d" % (name, pos))
            at = next(i for i in range(min(len(a), len(e))) if a[i] != e[i])
            raise AssertionError("%s: first difference at byte %d (sector %d)" % (
                name, pos + at, (pos + at) // SECTOR))
        if not a:
            return
        pos += len(a)


def assert_files_equal(actual, expected):
    size_a, size_e = os.path.getsize(actual), os.path.getsize(expected)
    assert size_a == size_e, "%s is %d bytes, %s %d" % (actual, size_a, expected, size_e)
    with open(actual, "rb") as fa, open(expected, "rb") as fe:
        assert_same_stream(fa, fe, "%s against %s" % (actual, expected), [fa, fe], size_a)


def assert_cat_equals(path, expected):
    """`impex vhd cat PATH | ...` streams the content of the file EXPECTED."""
    proc = subprocess.Popen([IMPEX, "vhd", "cat", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        with open(expected, "rb") as fe:
            assert_same_stream(proc.stdout, fe, "impex vhd cat %s against %s" % (
                path, expected))
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace")
        rc = proc.wait()
    assert rc == 0, "impex vhd cat %s: exit %d: %s" % (path, rc, err)
    assert "Sanitizer" not in err and "runtime error" not in err, err


class RawImage:
    """The expected content of a disk: a raw file that writes go to; a new
    sparse file of SIZE bytes unless EXISTING."""

    def __init__(self, path, size, existing=False):
        self.path = path
        self.size = size
        if not existing:
            with open(path, "wb") as f:
                f.truncate(size)

    def write(self, offset, data):
        assert offset + len(data) <= self.size
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def read(self, offset, length):
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(length)


def impex_write(disk, offset, data, raw=None):
    """Write DATA at OFFSET with impex, and to the expected image RAW."""
    with open("input.bin", "wb") as f:
        f.write(data)
    vhd("write", disk, offset, "input.bin")
    if raw is not None:
        raw.write(offset, data)


def write_plan(rng, size, block):
    """Sector-aligned (offset, length) pairs: the first and last sectors, a
    write across a block boundary, a few sectors inside a block, and random
    writes of which one overlaps another."""
    plan = [(0, SECTOR), (size - SECTOR, SECTOR)]
    if size >= 2 * block:
        plan.append((block - 8 * SECTOR, 16 * SECTOR))
    plan.append((min(block, size // 2) // SECTOR * SECTOR + 3 * SECTOR, 5 * SECTOR))
    for _ in range(3):
        length = rng.randrange(1, 600) * SECTOR
        offset = rng.randrange(0, (size - length) // SECTOR) * SECTOR
        plan.append((offset, length))
    offset, length = plan[-1]
    plan.append((offset + length // 2 // SECTOR * SECTOR, length))
    return [(o, min(n, size - o)) for o, n in plan]


# ---- VHD structures, read without impex ----

def read_footer(path):
    with open(path, "rb") as f:
        f.seek(-512, os.SEEK_END)
        raw = f.read(512)
    assert raw[:8] == b"conectix", "%s has no VHD footer" % path
    return {
        "data_offset": struct.unpack(">Q", raw[16:24])[0],
        "size": struct.unpack(">Q", raw[48:56])[0],
        "type": struct.unpack(">I", raw[60:64])[0],
        "uuid": str(uuid.UUID(bytes=raw[68:84])),
    }


def read_blocks(path):
    """Block size and the list of (block, file offset of its bitmap) allocated."""
    footer = read_footer(path)
    with open(path, "rb") as f:
        f.seek(footer["data_offset"])
        header = f.read(1024)
        assert header[:8] == b"cxsparse", "%s has no dynamic header" % path
        table = struct.unpack(">Q", header[16:24])[0]
        entries = struct.unpack(">I", header[28:32])[0]
        block = struct.unpack(">I", header[32:36])[0]
        f.seek(table)
        bat = struct.unpack(">%dI" % entries, f.read(4 * entries))
    return block, [(i, e * SECTOR) for i, e in enumerate(bat) if e != 0xFFFFFFFF]


# ---- disks that QEMU makes, read by impex ----

def qemu_made_disks(subformat):
    need("qemu-img", "qemu-io")
    for size in ("10M", "127M", "1G", "33000K"):
        for force in ("off", "on"):
            name = "q-%s-%s-%s.vhd" % (subformat, size, force)
            run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                 "subformat=%s,force_size=%s" % (subformat, force), name, size])
            virtual = qemu_info(name)["virtual-size"]
            last = virtual - SECTOR
            qemu_io(name,
                    "write -P 0x5a 1M 64k",
                    "write -P 0xa5 0 512",
                    "write -P 0x3c %d 512" % last,
                    "write -P 0x17 %d 8k" % (2 * MiB - 4096),
                    "write -P 0x00 1056k 4k")
            expected = RawImage(name + ".expected", virtual)
            expected.write(1 * MiB, b"\x5a" * 65536)
            expected.write(0, b"\xa5" * 512)
            expected.write(last, b"\x3c" * 512)
            expected.write(2 * MiB - 4096, b"\x17" * 8192)
            expected.write(1056 * 1024, b"\x00" * 4096)

            info = info_json(name)
            assert info["type"] == subformat, (name, info)
            assert info["size"] == virtual, "%s: impex says %d bytes, qemu %d" % (
                name, info["size"], virtual)
            assert info["error"] is None and len(info["chain"]) == 1, info
            qemu_raw(name, name + ".qemu.raw")
            assert_files_equal(name + ".qemu.raw", expected.path)
            assert_cat_equals(name, expected.path)
            if subformat == "dynamic":
                # Into a regular file, which impex leaves sparse.
                cat_to(name, name + ".impex.raw")
                assert_files_equal(name + ".impex.raw", expected.path)
                os.unlink(name + ".impex.raw")
            vhd("check", name)
            for suffix in (".expected", ".qemu.raw"):
                os.unlink(name + suffix)
            os.unlink(name)


def test_qemu_dynamic_disks_read_by_impex():
    qemu_made_disks("dynamic")


def test_qemu_fixed_disks_read_by_impex():
    qemu_made_disks("fixed")


def test_qemu_converted_disks_read_by_impex():
    # qemu-img convert -O vpc of a raw image: the zero blocks are left out.
    need("qemu-img")
    size = 37 * MiB
    rng = random.Random(7)
    expected = RawImage("source.raw", size)
    for _ in range(40):
        offset = rng.randrange(0, size // SECTOR - 64) * SECTOR
        expected.write(offset, rng.randbytes(rng.randrange(1, 64) * SECTOR))
    for subformat in ("dynamic", "fixed"):
        name = "converted-%s.vhd" % subformat
        run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o",
             "subformat=%s,force_size=on" % subformat, expected.path, name])
        assert info_json(name)["size"] == size
        assert_cat_equals(name, expected.path)
        vhd("check", name)


# ---- disks that impex makes, read by QEMU and libvhdi ----

IMPEX_DISKS = [
    # (type, block size option, size in MiB)
    ("dynamic", None, 24),
    ("dynamic", "512K", 24),
    ("dynamic", "2M", 101),
    ("dynamic", "4K", 3),
    ("dynamic", "16M", 40),
    ("fixed", None, 7),
    ("fixed", None, 129),
]


def create(name, disk_type, block, size_mib):
    args = ["create", "--type", disk_type]
    if block:
        args += ["--block-size", block]
    vhd(*args, name, "%dM" % size_mib)


def block_bytes(text):
    units = {"K": 1024, "M": MiB}
    return int(text[:-1]) * units[text[-1]]


def test_impex_disks_open_in_qemu_and_vhdiinfo():
    need("qemu-img", "vhdiinfo")
    for disk_type, block, size_mib in IMPEX_DISKS:
        name = "%s-%s-%d.vhd" % (disk_type, block or "default", size_mib)
        create(name, disk_type, block, size_mib)
        info = qemu_info(name)
        assert info["format"] == "vpc", (name, info)
        assert info["virtual-size"] == size_mib * MiB, (name, info)
        if disk_type == "dynamic":
            assert info["cluster-size"] == block_bytes(block or "2M"), (name, info)
        fields = vhdiinfo(name)
        assert vhdiinfo_media_size(fields) == size_mib * MiB, (name, fields)
        assert fields.get("Disk type") == disk_type.capitalize(), (name, fields)
        assert fields.get("Identifier") == read_footer(name)["uuid"], (name, fields)


def test_impex_writes_read_by_qemu():
    need("qemu-img", "qemu-io")
    rng = random.Random(20240611)
    for disk_type, block, size_mib in IMPEX_DISKS:
        name = "%s-%s-%d.vhd" % (disk_type, block or "default", size_mib)
        size = size_mib * MiB
        create(name, disk_type, block, size_mib)
        expected = RawImage(name + ".expected", size)
        for offset, length in write_plan(rng, size, block_bytes(block or "2M")):
            impex_write(name, offset, rng.randbytes(length), expected)
        pattern_at = size // 3 // SECTOR * SECTOR
        impex_write(name, pattern_at, b"\xc3" * 65536, expected)
        qemu_compare(name, expected.path)
        assert qemu_info(name)["virtual-size"] == size
        qemu_io(name, "read -P 0xc3 %d 64k" % pattern_at)
        vhd("check", name)


def test_qemu_writes_into_impex_disk():
    need("qemu-img", "qemu-io")
    rng = random.Random(7)
    for block in ("2M", "512K"):
        name = "mixed-%s.vhd" % block
        size = 20 * MiB
        create(name, "dynamic", block, 20)
        expected = RawImage(name + ".expected", size)
        # impex first: some blocks exist before QEMU writes.
        impex_write(name, 0, rng.randbytes(64 * SECTOR), expected)
        impex_write(name, 5 * MiB + 7 * SECTOR, rng.randbytes(9 * SECTOR), expected)
        # QEMU writes into an allocated block, into new ones, across a boundary.
        qemu_io(name,
                "write -P 0x11 %d 4k" % (5 * MiB + 64 * 1024),
                "write -P 0x22 9M 1M",
                "write -P 0x33 %d 64k" % (12 * MiB - 32 * 1024),
                "write -P 0x44 %d 512" % (size - SECTOR))
        expected.write(5 * MiB + 64 * 1024, b"\x11" * 4096)
        expected.write(9 * MiB, b"\x22" * MiB)
        expected.write(12 * MiB - 32 * 1024, b"\x33" * 65536)
        expected.write(size - SECTOR, b"\x44" * SECTOR)
        vhd("check", name)
        qemu_raw(name, name + ".qemu.raw")
        cat_to(name, name + ".impex.raw")
        assert_files_equal(name + ".impex.raw", name + ".qemu.raw")
        assert_files_equal(name + ".impex.raw", expected.path)
        # impex again, after QEMU moved the footer and grew the file.
        impex_write(name, 9 * MiB + 3 * SECTOR, rng.randbytes(3 * SECTOR), expected)
        impex_write(name, 15 * MiB, rng.randbytes(2 * SECTOR), expected)
        qemu_compare(name, expected.path)
        cat_to(name, name + ".impex2.raw")
        assert_files_equal(name + ".impex2.raw", expected.path)


# ---- chains ----

def test_flatten_three_level_chain():
    need("qemu-img", "vhdiinfo")
    rng = random.Random(3)
    size = 24 * MiB
    expected = RawImage("expected.raw", size)
    vhd("create", "base.vhd", "24M")
    # Base: whole blocks, a partial block, and an allocated block of zeros.
    impex_write("base.vhd", 0, rng.randbytes(2 * MiB), expected)
    impex_write("base.vhd", 2 * MiB + 100 * SECTOR, rng.randbytes(37 * SECTOR), expected)
    impex_write("base.vhd", 6 * MiB, rng.randbytes(2 * MiB), expected)
    impex_write("base.vhd", 10 * MiB, bytes(64 * 1024), expected)
    vhd("snapshot", "base.vhd", "mid.vhd")
    # Middle: zeroes block 3 whole (allocated below, all zeros merged), and
    # writes single sectors and a run across blocks 1 and 2.
    impex_write("mid.vhd", 6 * MiB, bytes(2 * MiB), expected)
    impex_write("mid.vhd", 2 * MiB + 101 * SECTOR, rng.randbytes(SECTOR), expected)
    impex_write("mid.vhd", 4 * MiB - 5 * SECTOR, rng.randbytes(11 * SECTOR), expected)
    vhd("snapshot", "mid.vhd", "top.vhd")
    # Top: the last sector, a sector in the middle of block 0, a run that
    # only partly overlaps the middle level's.
    impex_write("top.vhd", size - SECTOR, rng.randbytes(SECTOR), expected)
    impex_write("top.vhd", 1 * MiB + 3 * SECTOR, rng.randbytes(SECTOR), expected)
    impex_write("top.vhd", 4 * MiB - 1 * SECTOR, rng.randbytes(20 * SECTOR), expected)

    vhd("flatten", "top.vhd", "flat.vhd")
    info = qemu_info("flat.vhd")
    assert info["format"] == "vpc" and info["virtual-size"] == size, info
    qemu_compare("flat.vhd", expected.path)
    fields = vhdiinfo("flat.vhd")
    assert vhdiinfo_media_size(fields) == size, fields
    assert fields.get("Disk type") == "Dynamic", fields
    footer = read_footer("flat.vhd")
    assert footer["type"] == 3 and footer["size"] == size, footer
    vhd("check", "flat.vhd")

    # No all-zero block is allocated; every block with data is; each sector
    # holding data has its bitmap bit set.
    block, allocated = read_blocks("flat.vhd")
    bitmap_bytes = (block // SECTOR + 7) // 8
    bitmap_bytes = (bitmap_bytes + SECTOR - 1) // SECTOR * SECTOR
    want = [i for i in range((size + block - 1) // block)
            if expected.read(i * block, block).count(0) != min(block, size - i * block)]
    assert [i for i, _ in allocated] == want, "allocated %r, want %r" % (
        [i for i, _ in allocated], want)
    with open("flat.vhd", "rb") as f:
        for index, at in allocated:
            f.seek(at)
            bitmap = f.read(bitmap_bytes)
            data = f.read(block)
            assert data.count(0) != len(data), "block %d is allocated and all zeros" % index
            for s in range(block // SECTOR):
                if any(data[s * SECTOR:(s + 1) * SECTOR]):
                    assert bitmap[s // 8] & (0x80 >> (s % 8)), \
                        "block %d sector %d holds data but its bitmap bit is clear" % (index, s)
    fully_allocated = size + (size // block) * bitmap_bytes
    assert os.path.getsize("flat.vhd") < fully_allocated
    assert os.path.getsize("flat.vhd") <= 3 * 512 + 4096 + len(want) * (block + bitmap_bytes)


def test_snapshot_over_qemu_made_disk():
    # A base whose size is no whole number of MiB or blocks (QEMU's CHS sizes).
    need("qemu-img", "qemu-io")
    rng = random.Random(33)
    for force in ("off", "on"):
        base = "q-%s.vhd" % force
        run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
             "subformat=dynamic,force_size=%s" % force, base, "33000K"])
        size = qemu_info(base)["virtual-size"]
        qemu_io(base, "write -P 0x5a 0 %d" % size)
        qemu_raw(base, "expected.raw")
        expected = RawImage("expected.raw", size, existing=True)
        child = "child-%s.vhd" % force
        vhd("snapshot", base, child)
        assert info_json(child)["size"] == size
        for offset, length in write_plan(rng, size, 2 * MiB):
            impex_write(child, offset, rng.randbytes(length), expected)
        cat_to(child, "child.raw")
        assert_files_equal("child.raw", expected.path)
        vhd("flatten", child, "flat.vhd")
        assert qemu_info("flat.vhd")["virtual-size"] == size
        qemu_compare("flat.vhd", expected.path)
        for name in ("child.raw", "flat.vhd", "expected.raw"):
            os.unlink(name)


def test_vhdiinfo_names_parent_of_snapshot():
    need("vhdiinfo")
    vhd("create", "base.vhd", "16M")
    os.mkdir("snaps")
    vhd("snapshot", "base.vhd", "snaps/child.vhd")
    vhd("snapshot", "snaps/child.vhd", "snaps/grandchild.vhd")
    for child, parent in (("snaps/child.vhd", "base.vhd"),
                          ("snaps/grandchild.vhd", "snaps/child.vhd")):
        fields = vhdiinfo(child)
        assert fields.get("Disk type") == "Differential", fields
        assert vhdiinfo_media_size(fields) == 16 * MiB, fields
        assert fields.get("Identifier") == read_footer(child)["uuid"], fields
        assert fields.get("Parent identifier") == read_footer(parent)["uuid"], fields
        assert fields.get("Parent filename") == os.path.basename(parent), fields


if __name__ == "__main__":
    run_tests(globals())
