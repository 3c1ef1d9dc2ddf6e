"""Hostile and damaged VHD files, built byte by byte with vhdcraft.

Every hostile file must make `impex vhd info`, `check`, `cat` and `flatten`
exit 1 with a message on standard error that names the file and the fault,
with no sanitizer report, no hang, the files left byte for byte as they were
(same hash, same modification time) and no output left behind. When the fault
lies in the file itself (not in its chain), `impex vhd write` into it and
`impex vhd snapshot` over it must fail the same way and leave nothing behind.
"""

import hashlib
import os
import random
import struct
import subprocess

import vhdcraft as vc
from taplib import have, impex, run, run_tests, sanitizer_clean

MIB = 1024 * 1024
TIMEOUT = 60       # seconds: any command on these small files answers far sooner
FIFO_TIMEOUT = 5   # for the cases where a blocking open() would hang
FLAT = "flattened.vhd"
SNAPSHOT = "snapshot-child.vhd"
INPUT = "input.bin"

READ_COMMANDS = ("info", "check", "cat", "flatten")
ALL_COMMANDS = READ_COMMANDS + ("write", "snapshot")


# ---- helpers ----

def folder_state():
    """Everything under the current folder: path -> (kind, size, mtime_ns, sha256)."""
    state = {}
    for top, dirs, files in os.walk("."):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            kind = "dir" if os.path.isdir(path) else "file" if digest else oct(st.st_mode)
            state[path] = (kind, st.st_size if digest else 0,
                           st.st_mtime_ns if kind != "dir" else 0, digest)
    return state


def describe_change(before, after):
    lines = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            lines.append("  %s: %r -> %r" % (path, before.get(path), after.get(path)))
    return "\n".join(lines)


def command_args(command, path):
    if command == "flatten":
        return ["vhd", "flatten", path, FLAT]
    if command == "write":
        return ["vhd", "write", path, "0", INPUT]
    if command == "snapshot":
        return ["vhd", "snapshot", path, SNAPSHOT]
    return ["vhd", command, path]


def as_text(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data or ""


def assert_rejected(path, fault, named=None, commands=ALL_COMMANDS, timeout=TIMEOUT):
    """Run @commands on @path: each must exit 1 with no sanitizer report,
    a message on stderr holding every string of @named (default: @path) and
    one of @fault (a string or a tuple of alternatives, any case), cat must
    print nothing, flatten and snapshot must leave no file, and no file of
    the folder may change. All problems are gathered into one failure."""
    named = [path] if named is None else named
    faults = (fault,) if isinstance(fault, str) else fault
    with open(INPUT, "wb") as f:
        f.write(b"\x5a" * vc.SECTOR)
    before = folder_state()
    problems = []
    for command in commands:
        label = "impex " + " ".join(command_args(command, path))
        try:
            result = impex(*command_args(command, path), check=False, timeout=timeout,
                           text=False)
        except subprocess.TimeoutExpired:
            problems.append("%s: no answer within %d s (hangs)" % (label, timeout))
            continue
        stderr = as_text(result.stderr)
        try:
            sanitizer_clean(result)
        except AssertionError as e:
            problems.append("%s: %s" % (label, e))
        if result.returncode != 1:
            problems.append("%s: exit %d, want 1; stderr %r" % (label, result.returncode,
                                                                stderr[-600:]))
        for name in named:
            if name not in stderr:
                problems.append("%s: stderr does not name %r: %r" % (label, name,
                                                                     stderr[-600:]))
        if not any(f.lower() in stderr.lower() for f in faults):
            problems.append("%s: stderr does not say %s: %r" % (
                label, " or ".join(repr(f) for f in faults), stderr[-600:]))
        if command == "cat" and result.stdout:
            problems.append("%s: printed %d bytes" % (label, len(result.stdout)))
        for left in (FLAT, SNAPSHOT):
            if os.path.lexists(left):
                problems.append("%s: left %s behind" % (label, left))
                os.unlink(left)
    after = folder_state()
    if after != before:
        problems.append("files changed:\n" + describe_change(before, after))
    assert not problems, "\n".join(problems)


def assert_chain_rejected(path, fault, named=None, timeout=TIMEOUT):
    """A file sound in itself whose chain is broken: the commands that open
    the chain must reject it (write and snapshot touch only the file)."""
    assert_rejected(path, fault, named, READ_COMMANDS, timeout)


def here(name):
    """The absolute path of @name in the test's folder, as the engine prints its relatives."""
    return os.path.join(os.path.realpath("."), name)


def dynamic(size=8 * MIB, **kw):
    """A sound 8 MiB dynamic image with two allocated blocks, to damage."""
    kw.setdefault("writes", [(0, b"\x11" * 4096), (5 * MIB, b"\x22" * 512)])
    return vc.dynamic(size, **kw)


def base_and_child(**child_kw):
    """A dynamic base.vhd and a differencing child over it (not yet saved)."""
    base = vc.dynamic(8 * MIB, writes=[(0, b"\x11" * 8192)])
    child_kw.setdefault("writes", [(512, b"\x33" * 512)])
    child = vc.differencing(base, 8 * MIB, **child_kw)
    return base, child


# ---- controls: sound crafted files open, so each fault below is the only one ----

def test_control_fixed():
    img = vc.fixed(4 * MIB, writes=[(1024, b"\x44" * 512)])
    path = img.save(here("fixed.vhd"))
    impex("vhd", "check", path)
    out = impex("vhd", "cat", path, text=False).stdout
    assert out == bytes(img.data[:4 * MIB])
    if have("qemu-img"):
        run(["qemu-img", "info", "-f", "vpc", path])


def test_control_dynamic():
    img = dynamic()
    path = img.save(here("dynamic.vhd"))
    impex("vhd", "check", path)
    out = impex("vhd", "cat", path, text=False).stdout
    want = bytearray(8 * MIB)
    want[0:4096] = b"\x11" * 4096
    want[5 * MIB:5 * MIB + 512] = b"\x22" * 512
    assert out == bytes(want)
    if have("qemu-img"):
        with open("want.raw", "wb") as f:
            f.write(want)
        run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", path, "want.raw"])


def test_control_differencing():
    base, child = base_and_child(locators=[("W2ru", ".\\base.vhd"), ("MacX", here("base.vhd"))])
    base.save(here("base.vhd"))
    path = child.save(here("child.vhd"))
    impex("vhd", "check", path)
    out = impex("vhd", "cat", path, text=False).stdout
    want = bytearray(8 * MIB)
    want[0:8192] = b"\x11" * 8192
    want[512:1024] = b"\x33" * 512
    assert out == bytes(want)


def test_control_chain_of_128_levels():
    build_chain(128)
    impex("vhd", "check", here("level-127.vhd"), timeout=TIMEOUT)


def build_chain(levels):
    """level-000.vhd (dynamic) under levels-1 differencing disks, each naming
    the one below by a relative locator. Returns the top's path."""
    below = vc.dynamic(MIB, writes=[(0, b"\x01" * 512)])
    below.save("level-000.vhd")
    for i in range(1, levels):
        below = vc.differencing(below, MIB, parent_name="level-%03d.vhd" % (i - 1),
                                locators=[("W2ru", ".\\level-%03d.vhd" % (i - 1))], writes=())
        below.save("level-%03d.vhd" % i)
    return here("level-%03d.vhd" % (levels - 1))


# ---- not a VHD at all ----

def test_zero_length_file():
    path = here("empty.vhd")
    open(path, "wb").close()
    assert_rejected(path, "too short")


def test_shorter_than_a_footer():
    path = here("short.vhd")
    with open(path, "wb") as f:
        f.write(vc.fixed(MIB).data[-vc.FOOTER_SIZE:][:300])
    assert_rejected(path, "too short")


def test_random_512_bytes():
    path = here("random.vhd")
    with open(path, "wb") as f:
        f.write(random.Random(20060101).randbytes(512))
    assert_rejected(path, "not a VHD file")


def test_directory_instead_of_file():
    path = here("folder.vhd")
    os.mkdir(path)
    assert_rejected(path, ("not a regular file", "is a directory"))


def test_fifo_instead_of_file():
    path = here("pipe.vhd")
    os.mkfifo(path)
    assert_rejected(path, "not a regular file", timeout=FIFO_TIMEOUT)


def test_vhdx_file():
    # A VHDX file type identifier: signature "vhdxfile" and a UTF-16LE creator.
    data = bytearray(MIB)
    data[0:8] = b"vhdxfile"
    data[8:8 + 12] = "hostile".encode("utf-16-le")[:12]
    struct.pack_into("<4sI", data, 64 * 1024, b"head", 0)
    path = here("disk.vhdx")
    with open(path, "wb") as f:
        f.write(data)
    assert_rejected(path, "neither header of")


def test_qcow2_file():
    # A qcow2 version 3 header for an 8 MiB disk, 64 KiB clusters, no data.
    data = bytearray(256 * 1024)
    struct.pack_into(">4sIQIIQIIQQIIQQQQII", data, 0, b"QFI\xfb", 3, 0, 0, 16, 8 * MIB, 0,
                     1, 0x30000, 0x10000, 1, 0, 0, 0, 0, 0, 4, 104)
    path = here("disk.qcow2")
    with open(path, "wb") as f:
        f.write(data)
    assert_rejected(path, "not a VHD file")


# ---- the footer ----


def test_fixed_disk_shorter_than_its_size():
    img = vc.fixed(4 * MIB)
    tail = bytes(img.data[-vc.FOOTER_SIZE:])
    img.truncate(2 * MIB)
    img.put(2 * MIB, tail)
    assert_rejected(img.save(here("hostile.vhd")), "fixed disk")


def test_fixed_disk_longer_than_its_size():
    img = vc.fixed(MIB)
    tail = bytes(img.data[-vc.FOOTER_SIZE:])
    img.put(MIB, bytes(vc.SECTOR) + tail)
    assert_rejected(img.save(here("hostile.vhd")), "fixed disk")


# ---- truncation ----

def test_truncated_to_footer_only():
    img = dynamic()
    path = here("hostile.vhd")
    with open(path, "wb") as f:
        f.write(img.data[-vc.FOOTER_SIZE:])
    assert_rejected(path, "too short")


def test_truncated_in_header():
    img = dynamic()
    img.truncate(vc.FOOTER_SIZE + 600)
    assert_rejected(img.save(here("hostile.vhd")), "truncated")


def test_header_cut_short_before_footer():
    img = dynamic(writes=())
    tail = bytes(img.data[-vc.FOOTER_SIZE:])
    img.truncate(vc.FOOTER_SIZE + 600)
    img.put(len(img.data), tail)
    assert_rejected(img.save(here("hostile.vhd")), "too short")


def test_truncated_in_last_block():
    img = dynamic()
    tail = bytes(img.data[-vc.FOOTER_SIZE:])
    img.truncate(len(img.data) - vc.FOOTER_SIZE - MIB)
    img.put(len(img.data), tail)
    assert_rejected(img.save(here("hostile.vhd")), "past the end")


# ---- the header's place: the footer's data offset ----


# ---- the dynamic header ----


def test_max_table_entries_huge():
    # 2^31 entries: an 8 GiB table declared in a file of a few MiB.
    img = dynamic()
    img.set_header("max_table_entries", 1 << 31)
    assert_rejected(img.save(here("hostile.vhd")), "block allocation table")


def test_more_blocks_than_supported():
    # A 1 TiB disk in 512-byte blocks: 2^31 blocks.
    img = dynamic(writes=())
    img.set_footer("current_size", 1 << 40)
    img.set_header("block_size", 512)
    img.set_header("max_table_entries", 1 << 31)
    assert_rejected(img.save(here("hostile.vhd")), "more than impexfs supports")


# ---- the block allocation table ----


# ---- differencing disks: the file itself ----


def test_locator_data_inside_a_block():
    # The locator's bytes also serve as sector 2 of block 0: a write there
    # would rewrite the path to the parent.
    base, child = base_and_child()
    base.save("base.vhd")
    raw = vc.locator_data("W2ru", ".\\base.vhd")
    inside = child.layout["blocks"][0] + vc.bitmap_size(vc.DEFAULT_BLOCK) + 2 * vc.SECTOR
    child.put(inside, raw)
    child.set_locator(0, "data_offset", inside)
    assert_rejected(child.save(here("child.vhd")), "overlap")


# ---- differencing disks: the chain ----

def test_parent_missing():
    _, child = base_and_child()
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, "cannot find the parent")


def test_parent_uuid_mismatch():
    base, child = base_and_child()
    base.set_footer("uuid", vc.new_uuid())
    base.save("base.vhd")
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, "does not match", named=[path, here("base.vhd")])


def test_parent_damaged():
    base, child = base_and_child()
    base.set_footer("checksum", 0, copy=False)
    base.save("base.vhd")
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, "footer checksum", named=[path, here("base.vhd")])


def test_parent_not_a_vhd():
    _, child = base_and_child(locators=[("W2ru", ".\\notes.txt")], parent_name="notes.txt")
    with open("notes.txt", "w") as f:
        f.write("not a disk\n" * 100)
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, "not a VHD file", named=[path, here("notes.txt")])


def test_grandparent_missing():
    _, middle = base_and_child()
    middle.save("middle.vhd")  # its own parent, base.vhd, is absent
    top = vc.differencing(middle, 8 * MIB, parent_name="middle.vhd",
                          locators=[("W2ru", ".\\middle.vhd")])
    path = top.save(here("top.vhd"))
    assert_chain_rejected(path, "cannot find the parent", named=[here("middle.vhd")])


def test_self_parent_cycle():
    uuid = vc.new_uuid()
    child = vc.differencing(uuid, 8 * MIB, uuid=uuid, parent_name="self.vhd",
                            locators=[("W2ru", ".\\self.vhd")])
    path = child.save(here("self.vhd"))
    assert_chain_rejected(path, "loops")


def test_self_parent_through_symlink():
    uuid = vc.new_uuid()
    child = vc.differencing(uuid, 8 * MIB, uuid=uuid, parent_name="link.vhd",
                            locators=[("W2ru", ".\\link.vhd")])
    path = child.save(here("self.vhd"))
    os.symlink("self.vhd", "link.vhd")
    assert_chain_rejected(path, "loops")


def test_two_disk_cycle():
    a_uuid, b_uuid = vc.new_uuid(), vc.new_uuid()
    a = vc.differencing(b_uuid, 8 * MIB, uuid=a_uuid, parent_name="b.vhd",
                        locators=[("W2ru", ".\\b.vhd")])
    b = vc.differencing(a_uuid, 8 * MIB, uuid=b_uuid, parent_name="a.vhd",
                        locators=[("W2ru", ".\\a.vhd")])
    b.save("b.vhd")
    path = a.save(here("a.vhd"))
    assert_chain_rejected(path, "loops")


def test_chain_deeper_than_128():
    path = build_chain(130)
    assert_chain_rejected(path, "deeper than 128")


def test_chain_1000_deep():
    path = build_chain(1000)
    assert_chain_rejected(path, "deeper than 128")


def test_locator_with_embedded_nul():
    # The locator reads ".\sub\base.vhd<NUL>\evil": only its part before the
    # NUL names the parent, which nothing else leads to (it sits in a subfolder).
    base, child = base_and_child(
        parent_name="", locators=[("W2ru", ".\\sub\\base.vhd\0\\evil.vhd")])
    os.mkdir("sub")
    base.save(os.path.join("sub", "base.vhd"))
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, ("NUL", "locator 0"))


def test_macx_locator_with_encoded_nul():
    base, child = base_and_child(
        parent_name="", locators=[("MacX", b"file://" + here("sub").encode() + b"/base.vhd%00x")])
    os.mkdir("sub")
    base.save(os.path.join("sub", "base.vhd"))
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, "locator 0")


def test_parent_name_not_utf16():
    # A lone high surrogate, then "base.vhd": no valid UTF-16.
    name = b"\xd8\x00" + "base.vhd".encode("utf-16-be")
    _, child = base_and_child(parent_name=name, locators=[])
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, "cannot find the parent")


def test_locator_names_a_fifo():
    _, child = base_and_child(locators=[("W2ru", ".\\pipe.vhd")], parent_name="pipe.vhd")
    os.mkfifo("pipe.vhd")
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, "not a regular file", named=[path, here("pipe.vhd")],
                          timeout=FIFO_TIMEOUT)


def test_folder_scan_meets_a_fifo():
    _, child = base_and_child(locators=[], parent_name="")
    os.mkfifo("other.vhd")
    path = child.save(here("child.vhd"))
    assert_chain_rejected(path, "cannot find the parent", timeout=FIFO_TIMEOUT)


def test_snapshot_over_a_broken_chain():
    # The parent is sound, but its own parent is missing: a child made over it
    # could never be read.
    _, child = base_and_child()
    parent = child.save(here("child.vhd"))
    assert_rejected(parent, "cannot find the parent", commands=("snapshot",))


# ---- accepted with a warning, or at least without harm ----

def test_write_into_file_of_odd_length():
    # 100 stray bytes before the footer: the file is no whole number of sectors.
    # Refusing it is right; so is a write that lands where it was asked to.
    img = dynamic()
    tail = bytes(img.data[-vc.FOOTER_SIZE:])
    img.truncate(img.layout["footer"])
    img.put(len(img.data), b"J" * 100 + tail)
    path = img.save(here("odd.vhd"))
    with open(INPUT, "wb") as f:
        f.write(b"\x77" * vc.SECTOR)
    before = folder_state()
    result = impex("vhd", "write", path, str(2 * MIB), INPUT, check=False, timeout=TIMEOUT)
    sanitizer_clean(result)
    if result.returncode != 0:
        assert result.returncode == 1 and path in result.stderr, result
        assert folder_state() == before, describe_change(before, folder_state())
        return
    out = impex("vhd", "cat", path, text=False, timeout=TIMEOUT).stdout
    want = bytearray(8 * MIB)
    want[0:4096] = b"\x11" * 4096
    want[5 * MIB:5 * MIB + 512] = b"\x22" * 512
    want[2 * MIB:2 * MIB + 512] = b"\x77" * 512
    if out != bytes(want):
        moved = out.find(b"\x77" * 16)
        raise AssertionError("the sector written at %d reads back at %d" % (2 * MIB, moved))


def test_child_larger_than_parent():
    base = vc.dynamic(4 * MIB, writes=[(0, b"\x11" * 4096)])
    base.save("base.vhd")
    child = vc.differencing(base, 8 * MIB, writes=[(6 * MIB, b"\x33" * 512)])
    path = child.save(here("child.vhd"))
    before = folder_state()
    want = bytearray(8 * MIB)
    want[0:4096] = b"\x11" * 4096
    want[6 * MIB:6 * MIB + 512] = b"\x33" * 512
    for command in READ_COMMANDS:
        result = impex(*command_args(command, path), check=False, timeout=TIMEOUT, text=False)
        sanitizer_clean(result)
        assert result.returncode in (0, 1), "%s: %r" % (command, result)
        if result.returncode == 1:
            assert path in as_text(result.stderr), "%s: %r" % (command, result)
        elif command == "cat":
            assert result.stdout == bytes(want), "cat: wrong content"
        if os.path.exists(FLAT):
            if result.returncode == 0:
                out = impex("vhd", "cat", FLAT, text=False, timeout=TIMEOUT).stdout
                assert out == bytes(want), "flatten: wrong content"
            os.unlink(FLAT)
    assert folder_state() == before, describe_change(before, folder_state())


def test_small_parent_blocks_under_huge_child():
    # A parent of a few KB in 512-byte blocks under a 2040 GiB child: walking
    # the allocation must not step through the parent's block size over the
    # child's whole size (that took minutes of CPU).
    base = vc.dynamic(MIB, block_size=512, writes=[(0, b"\x11" * 4096)])
    base.save("base.vhd")
    child = vc.differencing(base, 2040 * 1024 * MIB, writes=[(MIB, b"\x33" * 512)])
    path = child.save(here("child.vhd"))
    with open("out.raw", "wb") as out:
        result = impex("vhd", "cat", path, check=False, timeout=TIMEOUT, text=False, stdout=out)
    sanitizer_clean(result)
    assert result.returncode == 0, result
    with open("out.raw", "rb") as f:
        head = f.read(MIB + 512)
    assert head[:4096] == b"\x11" * 4096 and head[4096:MIB] == bytes(MIB - 4096)
    assert head[MIB:] == b"\x33" * 512
    assert os.path.getsize("out.raw") == 2040 * 1024 * MIB
    os.unlink("out.raw")
    result = impex("vhd", "flatten", path, FLAT, check=False, timeout=TIMEOUT)
    sanitizer_clean(result)
    assert result.returncode == 0, result
    os.unlink(FLAT)


def test_footer_copy_differs_is_a_warning():
    img = dynamic()
    img.set_footer("timestamp", 12345, copy=False)
    path = img.save(here("hostile.vhd"))
    before = folder_state()
    result = impex("vhd", "check", path, check=False, timeout=TIMEOUT)
    sanitizer_clean(result)
    assert result.returncode == 0, result
    assert "footer copy" in result.stderr and path in result.stderr, result
    for command in ("info", "cat"):
        result = impex(*command_args(command, path), check=False, timeout=TIMEOUT, text=False)
        sanitizer_clean(result)
        assert result.returncode == 0, "%s: %r" % (command, result)
    assert folder_state() == before, describe_change(before, folder_state())


# ---- one field set to a hostile value ----
# name: (how the file is built, what is changed, what the error must say)

FIELD_CASES = {
    "footer_cookie_wrong": (lambda: vc.fixed(MIB),
        lambda i: i.set_footer("cookie", b"conectiX"),
        "not a VHD file"),
    "footer_cookie_wrong_copy_intact": (dynamic,
        lambda i: i.set_footer("cookie", b"\0" * 8, copy=False),
        "no footer at its end"),
    "footer_checksum_wrong": (dynamic,
        lambda i: i.set_footer("checksum", i.footer_field("checksum") ^ 1),
        "footer checksum"),
    "footer_field_changed_checksum_not_updated": (lambda: vc.fixed(MIB),
        lambda i: i.set_footer("current_size", 2 * MIB, checksum=False),
        "footer checksum"),
    "footer_version_unsupported": (dynamic,
        lambda i: i.set_footer("version", 0x00020000),
        "version"),
    "unknown_disk_type": (dynamic,
        lambda i: i.set_footer("disk_type", 5),
        "unknown disk type"),
    "disk_size_not_sector_multiple": (dynamic,
        lambda i: i.set_footer("current_size", 8 * MIB - 100),
        "whole number of sectors"),
    "disk_size_zero": (dynamic,
        lambda i: i.set_footer("current_size", 0),
        "disk size of 0 bytes"),
    "disk_size_over_2_tib": (dynamic,
        lambda i: (i.set_footer("current_size", 2048 * 1024 * MIB + 2 * MIB), i.set_header("max_table_entries", 0x100001)),
        "2 TiB"),
    "data_offset_past_eof": (dynamic,
        lambda i: i.set_footer("data_offset", 1 << 40),
        "outside the file"),
    "data_offset_into_footer": (dynamic,
        lambda i: i.set_footer("data_offset", i.layout["footer"] - 100),
        "outside the file"),
    "data_offset_all_ones_on_dynamic": (dynamic,
        lambda i: i.set_footer("data_offset", 0xFFFFFFFFFFFFFFFF),
        "outside the file"),
    "data_offset_unaligned": (dynamic,
        lambda i: i.set_footer("data_offset", 513),
        "header"),
    "data_offset_zero": (dynamic,
        lambda i: i.set_footer("data_offset", 0),
        "outside the file"),
    "header_cookie_wrong": (dynamic,
        lambda i: i.set_header("cookie", b"cxsparsE"),
        "cxsparse"),
    "header_checksum_wrong": (dynamic,
        lambda i: i.set_header("checksum", i.header_field("checksum") + 1),
        "header checksum"),
    "header_field_changed_checksum_not_updated": (dynamic,
        lambda i: i.set_header("block_size", vc.DEFAULT_BLOCK * 2, checksum=False),
        "header checksum"),
    "header_version_unsupported": (dynamic,
        lambda i: i.set_header("version", 0x00030000),
        "header version"),
    "block_size_zero": (dynamic,
        lambda i: i.set_header("block_size", 0),
        "block size"),
    "block_size_not_power_of_two": (dynamic,
        lambda i: i.set_header("block_size", 3 * MIB),
        "block size"),
    "block_size_1_gib": (dynamic,
        lambda i: i.set_header("block_size", 1024 * MIB),
        "block size"),
    "block_size_below_a_sector": (dynamic,
        lambda i: (i.set_header("block_size", 256), i.set_header("max_table_entries", 8 * MIB // 256)),
        "block size"),
    "max_table_entries_too_few": (dynamic,
        lambda i: i.set_header("max_table_entries", 3),
        "too few"),
    "table_offset_past_eof": (dynamic,
        lambda i: i.set_header("table_offset", 1 << 40),
        "runs past the footer"),
    "table_offset_overflows": (dynamic,
        lambda i: i.set_header("table_offset", 0xFFFFFFFFFFFFFFF0),
        "runs past the footer"),
    "bat_overlaps_header": (dynamic,
        lambda i: i.set_header("table_offset", 1024),
        "overlaps its header"),
    "bat_over_footer_copy": (dynamic,
        lambda i: i.set_header("table_offset", 0),
        "overlaps the footer copy"),
    "bat_runs_into_footer": (dynamic,
        lambda i: i.set_header("table_offset", i.layout["footer"] - 8),
        "runs past the footer"),
    "bat_entry_past_eof": (dynamic,
        lambda i: i.set_bat(2, len(i.data) // vc.SECTOR + 100),
        "past the end"),
    "bat_entry_near_u32_max": (dynamic,
        lambda i: i.set_bat(3, 0xFFFFFFFE),
        "past the end"),
    "bat_entry_into_trailing_footer": (dynamic,
        lambda i: i.set_bat(0, (i.layout["footer"] - vc.SECTOR) // vc.SECTOR),
        "past the end"),
    "bat_entries_share_sectors": (dynamic,
        lambda i: i.set_bat(3, i.layout["blocks"][0] // vc.SECTOR),
        "overlap"),
    "bat_entries_partly_overlap": (dynamic,
        lambda i: i.set_bat(2, i.layout["blocks"][2] // vc.SECTOR - 8),
        "overlap"),
    "bat_entry_into_header": (dynamic,
        lambda i: i.set_bat(1, 2),
        "overlaps the file's header"),
    "bat_entry_into_footer_copy": (dynamic,
        lambda i: i.set_bat(1, 0),
        "overlaps"),
    "bat_entry_into_bat": (dynamic,
        lambda i: i.set_bat(1, i.layout["bat"] // vc.SECTOR),
        "overlaps"),
}


def field_case(build, change, fault):
    def case():
        img = build()
        change(img)
        assert_rejected(img.save(here("hostile.vhd")), fault)
    return case


for _name, _case in FIELD_CASES.items():
    globals()["test_" + _name] = field_case(*_case)



# ---- one field of a differencing child set to a hostile value ----

CHILD_CASES = {
    "differencing_zero_parent_uuid": (lambda c: c.set_header("parent_uuid", bytes(16)),
        "names no parent"),
    "locator_data_past_eof": (lambda c: c.set_locator(0, "data_offset", len(c.data) + 4096),
        "past the end"),
    "locator_offset_overflows": (lambda c: c.set_locator(0, "data_offset", 0xFFFFFFFFFFFFFFF0),
        "past the end"),
    "locator_length_huge": (lambda c: (c.set_locator(0, "data_space", 1 << 20), c.set_locator(0, "data_length", 65536 + 2)),
        "absurd length"),
    "locator_longer_than_its_space": (lambda c: (c.set_locator(0, "data_space", 512), c.set_locator(0, "data_length", 1024)),
        "longer"),
    "locator_odd_utf16_length": (lambda c: c.set_locator(0, "data_length", 21),
        "odd length"),
}


def child_case(change, fault):
    def case():
        base, child = base_and_child()
        base.save("base.vhd")
        change(child)
        assert_rejected(child.save(here("child.vhd")), fault)
    return case


for _name, _case in CHILD_CASES.items():
    globals()["test_" + _name] = child_case(*_case)


if __name__ == "__main__":
    run_tests(globals())
