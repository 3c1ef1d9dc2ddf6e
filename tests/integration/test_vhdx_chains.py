"""AVHDX chains through the common disk interface: merged content and parent
resolution, read by `impex vhd cat`, `check` and `flatten`.

Every file is built by tests/vhdxcraft.py byte by byte from [MS-VHDX]; the
merged content expected comes from the crafter's model of each level (what
it was asked to write, and which sectors it leaves to the parent), layered
here top down: never from the code under test. Flattened output is refereed
by qemu-img (`info -f vpc`, `compare`) and libvhdi's vhdiinfo.
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import vhdxcraft as vc  # noqa: E402
from taplib import Skip, have, impex, run, run_tests, sanitizer_clean  # noqa: E402

MiB = vc.MiB
KiB = vc.KiB


def vhd(*args, check=True, **kw):
    result = impex("vhd", *args, check=check, **kw)
    sanitizer_clean(result)
    return result


def data(n, seed):
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(n))


def merged(levels):
    """The chain's content, top level first: each sector from the nearest level
    that holds it (its model's "here"), zeros where a level says "zero" or where
    a smaller parent ends."""
    top = levels[0]
    logical = top.logical
    total = top.size // logical
    out = bytearray(top.size)
    pending = bytearray(b"\x01") * total  # sectors no level has answered yet
    for lvl in levels:
        own = lvl.expected_bytes()
        for start, n, kind, _ in lvl.expected_runs():
            if kind == "parent":
                continue
            for sector in range(start, min(start + n, total)):
                if pending[sector]:
                    pending[sector] = 0
                    if kind == "here":
                        out[sector * logical:(sector + 1) * logical] = \
                            own[sector * logical:(sector + 1) * logical]
    return bytes(out)


def link(parent, **keys):
    """Locator pairs naming @parent by its DataWriteGuid plus @keys (None drops one)."""
    pairs = [("parent_linkage", vc.guid_text(parent.data_write_guid))]
    pairs += [(k, v) for k, v in keys.items() if v is not None]
    return pairs


def three_levels(logical, folder="."):
    """base.vhdx (dynamic) <- mid.avhdx <- top.avhdx, 8 MiB, 1 MiB blocks, with
    sector-granular writes that straddle blocks, hit the first and last
    sectors and overlap across levels."""
    size = 8 * MiB
    base = vc.build(size, "dynamic", block_size=MiB, logical=logical,
                    writes=[(0, data(3 * MiB, 1)), (5 * MiB, data(2 * MiB, 2))])
    mid = vc.build(size, "differencing", block_size=MiB, logical=logical,
                   writes=[(0, data(logical, 3)),  # first sector
                           (MiB - 2 * logical, data(4 * logical, 4)),  # straddles blocks 0/1
                           (5 * MiB + 7 * logical, data(9 * logical, 5))],
                   states={3: vc.ZERO},  # hides nothing of the base, reads zeros
                   locator=link_later())
    top = vc.build(size, "differencing", block_size=MiB, logical=logical,
                   writes=[(2 * MiB + 3 * logical, data(2 * logical, 6)),
                           (size - logical, data(logical, 7)),  # last sector
                           (MiB - logical, data(logical, 8))],  # over mid's straddling write
                   states={5: vc.FULLY_PRESENT}, locator=link_later())
    relink(mid, base, relative_path=".\\base.vhdx")
    relink(top, mid, relative_path=".\\mid.avhdx")
    for img, name in ((base, "base.vhdx"), (mid, "mid.avhdx"), (top, "top.avhdx")):
        img.save(os.path.join(folder, name))
    return [top, mid, base]


def link_later():
    # A locator with room for any keys this file writes later (relink): the
    # item is rebuilt in place by relink.
    return [("parent_linkage", vc.guid_text(bytes(16))), ("relative_path", "x" * 200),
            ("volume_path", "x" * 200), ("absolute_win32_path", "x" * 200)]


def relink(child, parent, **keys):
    """Rewrite @child's parent locator item to name @parent with @keys."""
    raw = vc.locator_bytes(link(parent, **keys))
    offset, length = child.layout["items"]["parent_locator"]
    assert len(raw) <= length + 8, "locator grows past its room"
    child.put(offset, raw + bytes(max(0, length - len(raw))))
    child.set_metadata_entry("parent_locator", "length", len(raw))


def test_three_levels_merge_at_both_sector_sizes():
    """A three-level chain reads, sector by sector, as the model layers it, at 512
    and 4096-byte logical sectors; flatten makes a VHD QEMU and libvhdi accept."""
    for logical in (512, 4096):
        levels = three_levels(logical)
        expected = merged(levels)
        got = vhd("cat", "top.avhdx", text=False).stdout
        assert got == expected, "merged content differs at %d-byte sectors" % logical
        out = vhd("check", "top.avhdx").stdout
        assert "3 levels" in out and "VHDX" in out, out
        vhd("flatten", "top.avhdx", "flat.vhd")
        with open("expected.raw", "wb") as f:
            f.write(expected)
        if have("qemu-img"):
            run(["qemu-img", "info", "-f", "vpc", "flat.vhd"])
            run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", "flat.vhd", "expected.raw"])
        if have("vhdiinfo"):
            run(["vhdiinfo", "flat.vhd"])
        assert vhd("cat", "flat.vhd", text=False).stdout == expected
        # As the name says, else in the chain's own format: a VHDX with the top's sectors.
        vhd("flatten", "top.avhdx", "flat.out")
        os.rename("flat.out", "flat.vhdx")
        shown = json.loads(vhd("info", "--json", "flat.vhdx").stdout)
        assert shown["format"] == "VHDX" and shown["logical_sector_size"] == logical, shown
        assert shown["type"] == "dynamic" and shown["block_size"] == MiB, shown
        assert vhd("cat", "flat.vhdx", text=False).stdout == expected
        if have("qemu-img") and logical == 512:
            run(["qemu-img", "check", "-f", "vhdx", "flat.vhdx"])
            run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", "flat.vhdx", "expected.raw"])
        os.unlink("flat.vhdx")
        # And the other way: a VHDX chain as a VHD, a VHD as a VHDX.
        vhd("flatten", "--format", "vhd", "top.avhdx", "again.vhd")
        vhd("flatten", "--format", "vhdx", "again.vhd", "again.vhdx")
        shown = json.loads(vhd("info", "--json", "again.vhdx").stdout)
        assert shown["block_size"] == 32 * MiB and shown["logical_sector_size"] == 512, shown
        assert vhd("cat", "again.vhdx", text=False).stdout == expected
        if have("qemu-img"):
            run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", "again.vhd", "expected.raw"])
            run(["qemu-img", "check", "-f", "vhdx", "again.vhdx"])
            run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", "again.vhdx", "expected.raw"])
        os.unlink("again.vhd")
        os.unlink("again.vhdx")
        for name in ("flat.vhd", "expected.raw", "base.vhdx", "mid.avhdx", "top.avhdx"):
            os.unlink(name)


def test_libvhdi_agrees():
    """libvhdi's vhdimount, an independent reader of AVHDX chains, reads the
    three-level chain as the model does (given absolute_win32_path too: libvhdi
    misreads relative_path, see docs/VHDX.md)."""
    if not (have("vhdimount") and os.path.exists("/dev/fuse")):
        raise Skip("vhdimount or /dev/fuse is missing")
    for logical in (512, 4096):
        top, mid, base = three_levels(logical)
        relink(mid, base, relative_path=".\\base.vhdx",
               absolute_win32_path="C:\\VMs\\base.vhdx")
        relink(top, mid, relative_path=".\\mid.avhdx",
               absolute_win32_path="C:\\VMs\\mid.avhdx")
        mid.save("mid.avhdx")
        top.save("top.avhdx")
        expected = merged([top, mid, base])
        assert vhd("cat", "top.avhdx", text=False).stdout == expected
        os.mkdir("m")
        try:
            run(["vhdimount", "top.avhdx", "m"], timeout=60)
            names = sorted(os.listdir("m"), key=lambda n: int(n[4:]))
            with open(os.path.join("m", names[-1]), "rb") as f:
                assert f.read() == expected, "libvhdi reads %d-byte sectors otherwise" % logical
        finally:
            run(["fusermount3", "-u", "m"], check=False)
        os.rmdir("m")


def test_over_one_chunk():
    """A chain over one chunk (2^23 sectors): the top's partially present blocks in
    the second chunk use that chunk's sector bitmap block, the first chunk has none."""
    if not have("qemu-img"):
        raise Skip("qemu-img is not installed")
    logical, size = 512, 4 * 1024 * MiB + 4 * MiB
    edge = 4 * 1024 * MiB  # the second chunk's first byte
    base = vc.build(size, "dynamic", block_size=MiB, logical=logical,
                    writes=[(edge - MiB, data(2 * MiB, 11))])
    top = vc.build(size, "differencing", block_size=MiB, logical=logical,
                   writes=[(edge + 5 * logical, data(3 * logical, 12)),
                           (edge - logical, data(2 * logical, 13))],
                   locator=link_later())
    relink(top, base, relative_path=".\\base.vhdx")
    base.save("base.vhdx")
    top.save("top.avhdx")
    # Compare the region around the chunk boundary: flatten, then read the raw
    # window through qemu-img from the flattened VHD.
    want = bytearray(base.expected_bytes(edge - 2 * MiB, 4 * MiB))
    mine = top.expected_runs((edge - 2 * MiB) // logical, 4 * MiB // logical)
    own = top.expected_bytes(edge - 2 * MiB, 4 * MiB)
    for start, n, kind, _ in mine:
        at = start * logical - (edge - 2 * MiB)
        if kind == "here":
            want[at:at + n * logical] = own[at:at + n * logical]
        elif kind == "zero":
            want[at:at + n * logical] = bytes(n * logical)
    vhd("flatten", "top.avhdx", "flat.vhd")
    with open("expected.raw", "wb") as f:  # sparse: zeros but for the window
        f.truncate(size)
        f.seek(edge - 2 * MiB)
        f.write(bytes(want))
    run(["qemu-img", "info", "-f", "vpc", "flat.vhd"])
    run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", "flat.vhd", "expected.raw"])


def chain_of_two(folder=".", logical=512, parent_name="base.vhdx", **keys):
    base = vc.build(4 * MiB, "dynamic", block_size=MiB, logical=logical,
                    writes=[(0, data(MiB, 21))])
    top = vc.build(4 * MiB, "differencing", block_size=MiB, logical=logical,
                   writes=[(512 * 8, data(4096, 22))], locator=link_later())
    relink(top, base, **keys)
    base.save(os.path.join(folder, parent_name))
    top.save(os.path.join(folder, "top.avhdx"))
    return top, base


def test_each_locator_key_alone_finds_the_parent():
    """relative_path, volume_path and absolute_win32_path each find the parent on
    their own (the absolute ones through the path map, else by file name next to
    the child), in Hyper-V's order; when none leads to it, the folder is scanned
    for the DataWriteGuid."""
    os.mkdir("disks")
    os.mkdir("elsewhere")
    cases = [
        ({"relative_path": ".\\base.vhdx"}, (), "relative_path '.\\base.vhdx'"),
        ({"volume_path": "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\vms\\base.vhdx"},
         ("--pathmap", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\vms="
          + os.path.abspath("disks")),
         "volume_path"),
        ({"absolute_win32_path": "D:\\Hyper-V\\base.vhdx"},
         ("--pathmap", "D:\\Hyper-V=" + os.path.abspath("disks")),
         "absolute_win32_path 'D:\\Hyper-V\\base.vhdx' through the path map"),
        ({"absolute_win32_path": "\\\\?\\D:\\Hyper-V\\base.vhdx"}, (),
         "file name of absolute_win32_path"),
        ({"relative_path": ".\\renamed-away.vhdx"}, (), "DataWriteGuid scan of"),
    ]
    for keys, options, how in cases:
        top, base = chain_of_two("disks", **keys)
        expected = merged([top, base])
        out = json.loads(vhd("info", "--json", *options, "disks/top.avhdx").stdout)
        assert out["chain"][1]["found_by"].startswith(how), (keys, out)
        assert vhd("cat", *options, "disks/top.avhdx", text=False).stdout == expected
    # The order: a relative_path that leads to the parent wins over an absolute
    # path naming another file that would match too.
    top, base = chain_of_two("disks", relative_path=".\\base.vhdx",
                             absolute_win32_path="D:\\other\\base.vhdx")
    base.save(os.path.join("elsewhere", "base.vhdx"))
    out = json.loads(vhd("info", "--json", "--pathmap", "D:\\other=" + os.path.abspath("elsewhere"),
                         "disks/top.avhdx").stdout)
    assert out["chain"][1]["found_by"].startswith("relative_path"), out
    assert out["chain"][1]["path"].endswith("disks/base.vhdx"), out


def test_linkage_checked_against_data_write_guid():
    """A parent whose DataWriteGuid is not the child's parent_linkage is refused
    by name, unless parent_linkage2 names it."""
    top, base = chain_of_two(relative_path=".\\base.vhdx")
    other = vc.build(4 * MiB, "dynamic", block_size=MiB, writes=[(0, data(MiB, 31))])
    other.save("base.vhdx")  # same name, another disk
    result = vhd("check", "top.avhdx", check=False)
    assert result.returncode != 0
    assert "DataWriteGuid" in result.stderr and "base.vhdx" in result.stderr, result.stderr
    # parent_linkage2 naming the new base's DataWriteGuid accepts it.
    raw = vc.locator_bytes(link(base, relative_path=".\\base.vhdx")
                           + [("parent_linkage2", vc.guid_text(other.data_write_guid))])
    offset, length = top.layout["items"]["parent_locator"]
    top.put(offset, raw + bytes(max(0, length - len(raw))))
    top.set_metadata_entry("parent_locator", "length", len(raw))
    top.save("top.avhdx")
    vhd("check", "top.avhdx")
    assert vhd("cat", "top.avhdx", text=False).stdout == merged([top, other])


def test_mixed_chains_refused():
    """A chain is of one format: an AVHDX whose relative_path names a VHD, and one
    whose parent has other logical sectors, are refused naming both files."""
    top, base = chain_of_two(relative_path=".\\base.vhd", parent_name="elsewhere.vhdx")
    os.unlink("elsewhere.vhdx")
    vhd("create", "base.vhd", "4M")
    result = vhd("check", "top.avhdx", check=False)
    assert result.returncode != 0
    assert "one format" in result.stderr and "base.vhd" in result.stderr, result.stderr
    os.unlink("top.avhdx")
    top = vc.build(4 * MiB, "differencing", block_size=MiB, logical=4096, locator=link_later())
    base = vc.build(4 * MiB, "dynamic", block_size=MiB, logical=512)
    relink(top, base, relative_path=".\\base.vhdx")
    top.save("top.avhdx")
    base.save("base.vhdx")
    result = vhd("check", "top.avhdx", check=False)
    assert result.returncode != 0
    assert "4096-byte" in result.stderr and "512-byte" in result.stderr, result.stderr


def test_missing_parent_and_cycles():
    """A missing parent names what was tried; two AVHDX naming each other loop."""
    top, base = chain_of_two(relative_path=".\\base.vhdx")
    os.unlink("base.vhdx")
    result = vhd("check", "top.avhdx", check=False)
    assert result.returncode != 0
    assert "cannot find the parent" in result.stderr and "parent_linkage" in result.stderr
    assert "base.vhdx" in result.stderr, result.stderr
    a = vc.build(4 * MiB, "differencing", block_size=MiB, locator=link_later())
    b = vc.build(4 * MiB, "differencing", block_size=MiB, locator=link_later())
    relink(a, b, relative_path=".\\b.avhdx")
    relink(b, a, relative_path=".\\a.avhdx")
    a.save("a.avhdx")
    b.save("b.avhdx")
    result = vhd("check", "a.avhdx", check=False)
    assert result.returncode != 0 and "loops" in result.stderr, result.stderr


if __name__ == "__main__":
    run_tests(globals())
