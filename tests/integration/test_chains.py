"""Differencing chains made with impex: merged content and parent resolution.

Every chain is built with `impex vhd create`, `snapshot` and `write`; the same
writes go to a bytearray here, which is the expected merged disk. Writes are
sector-aligned but rarely block-aligned: they cover part of a block's sectors
(often not whole bitmap bytes), straddle blocks, and overlap the levels below,
so a sector of one block can come from any level.
"""

import json
import os
import random
import shutil
import time

from taplib import have, impex, run, run_tests, sanitizer_clean

MiB = 1024 * 1024
SECTOR = 512
CHILD_BLOCK = 2 * MiB  # impex vhd snapshot makes 2 MiB blocks


def vhd(*args, check=True, **kw):
    """Run `impex vhd ARGS` and insist on a clean exit from the sanitizers."""
    result = impex("vhd", *args, check=check, **kw)
    sanitizer_clean(result)
    return result


def info_json(path, *options, check=True):
    result = vhd("info", "--json", *options, path, check=check)
    return json.loads(result.stdout)


def cat(path, *options):
    return vhd("cat", *options, path, text=False).stdout


def first_difference(actual, expected):
    if len(actual) != len(expected):
        return "length %d, expected %d" % (len(actual), len(expected))
    step = 64 * 1024
    for pos in range(0, len(expected), step):
        if actual[pos:pos + step] != expected[pos:pos + step]:
            at = next(i for i in range(pos, pos + step) if actual[i] != expected[i])
            return "first difference at byte %d (sector %d, block %d of 2 MiB)" % (
                at, at // SECTOR, at // CHILD_BLOCK)
    return None


def assert_content(path, expected, *options):
    """`impex vhd cat` equals EXPECTED."""
    problem = first_difference(cat(path, *options), expected)
    assert problem is None, "impex vhd cat %s: %s" % (path, problem)


def assert_flatten(path, expected, *options):
    """`impex vhd flatten` makes a VHD whose content QEMU finds equal to EXPECTED."""
    out = "flat-%s" % os.path.basename(path)
    with open("expected.raw", "wb") as f:
        f.write(expected)
    vhd("flatten", *options, path, out)
    if have("qemu-img"):
        result = run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", out, "expected.raw"],
                     check=False)
        assert result.returncode == 0, "qemu-img compare: %r" % result
    problem = first_difference(cat(out), expected)
    assert problem is None, "impex vhd cat %s: %s" % (out, problem)
    os.unlink(out)
    os.unlink("expected.raw")


class Chain:
    """A chain under construction and the content it should read as."""

    def __init__(self, folder, size_mib, base_type="dynamic", block=None):
        self.folder = folder
        self.size = size_mib * MiB
        self.expected = bytearray(self.size)
        self.levels = []
        os.makedirs(folder, exist_ok=True)
        args = ["create", "--type", base_type]
        if block:
            args += ["--block-size", block]
        self._add("base.vhd")
        vhd(*args, self.top, "%dM" % size_mib)

    def _add(self, name):
        self.levels.append(os.path.join(self.folder, name))

    @property
    def top(self):
        return self.levels[-1]

    def snapshot(self, *options):
        parent = self.top
        self._add("level%d.vhd" % len(self.levels))
        vhd("snapshot", *options, parent, self.top)

    def write(self, offset, data, stdin=False):
        assert offset % SECTOR == 0 and len(data) % SECTOR == 0
        assert offset + len(data) <= self.size
        if stdin:
            vhd("write", self.top, offset, "-", input=data, text=False)
        else:
            with open("input.bin", "wb") as f:
                f.write(data)
            vhd("write", self.top, offset, "input.bin")
        self.expected[offset:offset + len(data)] = data


def level_writes(rng, size, level):
    """Writes for one level: sector-aligned, mostly not block-aligned."""
    sectors = size // SECTOR
    per_block = CHILD_BLOCK // SECTOR
    blocks = sectors // per_block
    writes = []
    # A hot block every level writes into: overlapping runs that start and
    # end inside bitmap bytes.
    writes.append((per_block + 3 * level + 1, 5 + level))
    # A few sectors inside some block.
    b = rng.randrange(blocks)
    first = rng.randrange(per_block - 40)
    writes.append((b * per_block + first, rng.randrange(1, 40)))
    # A run across a block boundary, odd on both sides.
    b = rng.randrange(1, blocks)
    writes.append((b * per_block - rng.randrange(1, 300), rng.randrange(301, 900)))
    # A longer random run, which may span two blocks.
    length = rng.randrange(per_block // 4, per_block)
    writes.append((rng.randrange(sectors - length), length))
    # A run of zeros over data that lower levels may hold.
    writes.append((rng.randrange(sectors - 64), rng.randrange(1, 64), "zeros"))
    return writes


def build_chain(folder, depth, size_mib, seed, base_type="dynamic", block=None):
    rng = random.Random(seed)
    chain = Chain(folder, size_mib, base_type, block)
    for level in range(depth):
        if level:
            chain.snapshot()
        for write in level_writes(rng, chain.size, level):
            first, count = write[0], write[1]
            count = min(count, chain.size // SECTOR - first)
            data = bytes(count * SECTOR) if len(write) > 2 else rng.randbytes(count * SECTOR)
            chain.write(first * SECTOR, data, stdin=(level % 3 == 2))
    # The first and the last sector of the disk, at the top.
    chain.write(0, rng.randbytes(SECTOR))
    chain.write(chain.size - SECTOR, rng.randbytes(SECTOR))
    return chain


def check_chain(chain, depth):
    info = info_json(chain.top)
    assert info["error"] is None, info
    assert [level["path"] for level in info["chain"]][0] == chain.top, info
    assert len(info["chain"]) == depth, info
    assert info["warnings"] == [], info
    vhd("check", chain.top)
    assert_content(chain.top, chain.expected)
    assert_flatten(chain.top, chain.expected)


def test_chain_of_3_levels():
    chain = build_chain("vms", 3, 16, seed=3)
    check_chain(chain, 3)


def test_chain_of_4_levels_with_512k_base_blocks():
    # 21 MiB: the last 2 MiB block of the children is only half inside the disk.
    chain = build_chain("vms", 4, 21, seed=4, block="512K")
    check_chain(chain, 4)


def test_chain_of_8_levels_with_64k_base_blocks():
    chain = build_chain("vms", 8, 29, seed=8, block="64K")
    check_chain(chain, 8)


def test_chain_over_fixed_base():
    chain = build_chain("vms", 3, 9, seed=9, base_type="fixed")
    check_chain(chain, 3)


def test_every_bitmap_byte_mixes_8_levels():
    # Level L writes the sectors s with s % 8 == L of one block, so each byte
    # of that block's bitmap has one bit from each level: a wrong bit order
    # reads another level's sector.
    rng = random.Random(88)
    chain = Chain("vms", 6)
    block_start = CHILD_BLOCK // SECTOR  # block 1
    for level in range(8):
        if level:
            chain.snapshot()
        for s in range(level, 2 * 64, 8):
            chain.write((block_start + s) * SECTOR, rng.randbytes(SECTOR))
        # and the block's last sector and the disk's first, at every level
        chain.write((2 * block_start - 1) * SECTOR, rng.randbytes(SECTOR))
        chain.write(0, rng.randbytes(SECTOR))
    check_chain(chain, 8)


def test_whole_folder_moved():
    chain = build_chain("vms", 4, 8, seed=41)
    os.rename("vms", "moved")
    top = os.path.join("moved", os.path.basename(chain.top))
    info = info_json(top)
    assert info["error"] is None, info
    for level in info["chain"][1:]:
        assert level["found_by"].startswith("relative locator W2ru"), info
        assert "/moved/" in level["path"], info
    assert_content(top, chain.expected)
    # From inside the folder too.
    result = vhd("cat", os.path.basename(top), cwd="moved", text=False)
    assert first_difference(result.stdout, chain.expected) is None


def test_renamed_parent_found_by_uuid():
    chain = build_chain("vms", 3, 8, seed=5)
    os.rename(chain.levels[0], os.path.join("vms", "renamed-base.vhd"))
    os.rename(chain.levels[1], os.path.join("vms", "renamed-middle.vhd"))
    # A stranger now holds the middle level's old name: wrong UUID, passed over.
    vhd("create", chain.levels[1], "8M")
    info = info_json(chain.top)
    assert info["error"] is None, info
    assert len(info["chain"]) == 3, info
    names = [os.path.basename(level["path"]) for level in info["chain"]]
    assert names[1:] == ["renamed-middle.vhd", "renamed-base.vhd"], info
    for level in info["chain"][1:]:
        assert level["found_by"].startswith("UUID scan"), info
    assert_content(chain.top, chain.expected)
    vhd("check", chain.top)


def test_parent_moved_next_to_child():
    chain = Chain("vms", 8)
    rng = random.Random(6)
    chain.write(3 * MiB, rng.randbytes(5 * SECTOR))
    os.mkdir("snaps")
    child = os.path.join("snaps", "child.vhd")
    vhd("snapshot", chain.top, child)
    chain.levels.append(child)
    chain.write(3 * MiB + 2 * SECTOR, rng.randbytes(SECTOR))
    shutil.move(chain.levels[0], os.path.join("snaps", "base.vhd"))
    info = info_json(child)
    assert info["error"] is None, info
    assert os.path.basename(info["chain"][1]["path"]) == "base.vhd", info
    assert "snaps" in info["chain"][1]["path"], info
    assert_content(child, chain.expected)


def test_absolute_locator_through_path_map():
    chain = Chain("vms", 8)
    vms = os.path.realpath("vms")
    rng = random.Random(7)
    chain.write(1 * MiB, rng.randbytes(7 * SECTOR))
    os.mkdir("snaps")
    child = os.path.join("snaps", "child.vhd")
    vhd("snapshot", "--pathmap", "C:\\VMs=" + vms, chain.top, child)
    chain.levels.append(child)
    chain.write(1 * MiB + 3 * SECTOR, rng.randbytes(2 * SECTOR))
    info = info_json(child)
    locators = {l["platform"]: l["path"] for l in info["parent"]["locators"]}
    assert locators.get("W2ku") == "C:\\VMs\\base.vhd", info
    assert locators.get("W2ru") == "..\\vms\\base.vhd", info

    os.mkdir("elsewhere")
    shutil.move(chain.levels[0], "elsewhere")
    elsewhere = "C:\\VMs=" + os.path.realpath("elsewhere")
    # Without the map the parent is lost; the message names it.
    result = vhd("cat", child, check=False)
    assert result.returncode == 1, result
    assert "base.vhd" in result.stderr, result
    info = info_json(child, "--pathmap", elsewhere)
    assert info["error"] is None, info
    how = info["chain"][1]["found_by"]
    assert "W2ku" in how and "path map" in how, info
    assert_content(child, chain.expected, "--pathmap", elsewhere)
    # Windows paths ignore case.
    assert_content(child, chain.expected, "--pathmap", "c:\\vms=" + os.path.realpath("elsewhere"))
    vhd("check", "--pathmap", elsewhere, child)
    assert_flatten(child, chain.expected, "--pathmap", elsewhere)


def test_path_map_through_symlink_records_windows_path():
    # The map's Linux side may name the folder through a symbolic link.
    os.mkdir("real-vms")
    os.symlink("real-vms", "vms")
    vhd("create", "vms/base.vhd", "4M")
    vhd("snapshot", "--pathmap", "C:\\VMs=" + os.path.abspath("vms"), "vms/base.vhd",
        "child.vhd")
    info = info_json("child.vhd")
    locators = {l["platform"]: l["path"] for l in info["parent"]["locators"]}
    assert locators.get("W2ku") == "C:\\VMs\\base.vhd", \
        "no W2ku locator although the path map covers the parent: %r" % info["parent"]


def test_missing_parent():
    chain = build_chain("vms", 3, 8, seed=10)
    os.unlink(chain.levels[0])
    for command in ("cat", "check", "info"):
        result = vhd(command, chain.top, check=False, text=False)
        assert result.returncode == 1, (command, result)
        err = result.stderr.decode() if command != "info" else result.stdout.decode()
        assert "base.vhd" in err and "level1.vhd" in err, (command, result)
    info = info_json(chain.top, check=False)
    assert info["error"] and "base.vhd" in info["error"], info
    result = vhd("flatten", chain.top, "out.vhd", check=False)
    assert result.returncode == 1 and "base.vhd" in result.stderr, result
    assert not os.path.exists("out.vhd")


def test_parent_replaced_by_another_disk():
    chain = build_chain("vms", 2, 8, seed=11)
    want = info_json(chain.levels[0])["uuid"]
    os.unlink(chain.levels[0])
    vhd("create", chain.levels[0], "8M")
    have_uuid = info_json(chain.levels[0])["uuid"]
    for command in ("cat", "check"):
        result = vhd(command, chain.top, check=False, text=False)
        assert result.returncode == 1, (command, result)
        err = result.stderr.decode()
        assert "UUID" in err and want in err and have_uuid in err, (command, result)
        assert "base.vhd" in err, (command, result)
    info = info_json(chain.top, check=False)
    assert info["error"] and "UUID" in info["error"], info


def test_parent_written_after_snapshot():
    chain = Chain("vms", 8)
    rng = random.Random(12)
    chain.write(2 * MiB, rng.randbytes(8 * SECTOR))
    # The parent's time is well in the past when the child records it.
    past = time.time() - 3600
    os.utime(chain.top, (past, past))
    chain.snapshot()
    chain.write(2 * MiB + SECTOR, rng.randbytes(SECTOR))
    data = rng.randbytes(4 * SECTOR)
    vhd("write", chain.levels[0], 2 * MiB + 4 * SECTOR, "-", input=data, text=False)
    chain.expected[2 * MiB + 4 * SECTOR:2 * MiB + 8 * SECTOR] = data

    info = info_json(chain.top)
    assert info["error"] is None, info
    assert len(info["warnings"]) == 1, info
    assert "base.vhd" in info["warnings"][0] and "modified" in info["warnings"][0], info
    result = vhd("check", chain.top)
    assert "warning" in result.stderr and "base.vhd" in result.stderr, result
    result = vhd("info", chain.top)
    assert "warning" in result.stdout + result.stderr, result
    # The data is still read: the parent's new sectors where the child has none.
    assert_content(chain.top, chain.expected)


if __name__ == "__main__":
    run_tests(globals())
