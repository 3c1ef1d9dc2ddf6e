"""Helpers of the tests of the VHDX writer (test_vhdx_write.py, test_vhdx_crash.py):
driving tests/vhdxwrite and tests/vhdxdump, models of disk content built from what was
written, and the check of a file a crash left behind."""

import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import vhdxcraft as vc  # noqa: E402
import vhdxread as vr  # noqa: E402
from taplib import Skip, have, run, sanitizer_clean  # noqa: E402

VHDXDUMP = os.environ.get("VHDXDUMP", "vhdxdump")
VHDXWRITE = os.environ.get("VHDXWRITE", "vhdxwrite")
MiB = vc.MiB
KiB = vc.KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
ZERO_GUID = "{00000000-0000-0000-0000-000000000000}"


def need(*tools):
    for tool in tools:
        if not have(tool):
            raise Skip("%s is not installed" % tool)


def have_all(*tools):
    return all(have(tool) for tool in tools)


# ---- driving the writer and the reader ----


def vw(*args, check=True, env=None, timeout=600):
    result = subprocess.run([VHDXWRITE] + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, timeout=timeout,
                            env=dict(os.environ, **(env or {})))
    if check and result.returncode != 0:
        raise AssertionError("vhdxwrite %s failed: %s" % (" ".join(map(str, args)),
                                                          result.stderr))
    if result.returncode != 3:  # 3: cut off on purpose, with nothing to report
        sanitizer_clean(result)
    return result


def dump(*args, check=True, text=True):
    result = run([VHDXDUMP] + [str(a) for a in args], check=check, text=text, timeout=600)
    sanitizer_clean(result)
    return result


def info(path):
    return dict(line.partition("=")[::2] for line in dump("info", path).stdout.splitlines())


def read(path, offset=None, length=None):
    args = ["read", path] + ([offset, length] if offset is not None else [])
    return dump(*args, text=False).stdout


def block_state(path, block):
    state, offset = dump("block", path, block).stdout.split()
    return int(state), int(offset)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def data(n, seed):
    r = random.Random(seed)
    return r.randbytes(n)


def write(path, writes, src="src.bin"):
    """Write @writes, [(offset, bytes)], to @path in one session."""
    blob, specs = bytearray(), []
    for offset, chunk in writes:
        specs.append("%d,%d,%d" % (offset, len(chunk), len(blob)))
        blob += chunk
    with open(src, "wb") as f:
        f.write(blob)
    return vw("write", path, src, *specs)


class Model:
    """The content of a disk, built from what was written: a base (bytes, or a
    function of (offset, length)) and the writes laid over it."""

    def __init__(self, size, base=None):
        self.buf = bytearray(size) if base is None else bytearray(base)

    def write(self, offset, chunk):
        self.buf[offset:offset + len(chunk)] = chunk

    def bytes(self):
        return bytes(self.buf)


def qemu_raw(path, out="q.raw"):
    if os.path.exists(out):
        os.remove(out)
    run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", path, out])
    with open(out, "rb") as f:
        return f.read()


def qemu_check(path):
    result = run(["qemu-img", "check", "-f", "vhdx", path], check=False)
    assert result.returncode == 0 and "No errors" in result.stdout, result
    return result


def compare_raw(path, model):
    with open("model.raw", "wb") as f:
        f.write(model.bytes())
    result = run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", path, "model.raw"],
                 check=False)
    assert result.returncode == 0 and "identical" in result.stdout, result


def assert_clean(path, both=True):
    """A file the writer closed: both headers valid, with LogGuid zero (only the current
    one unless @both: a writer cut off between the two may leave the other naming a log
    it no longer uses)."""
    disk = vr.VhdxFile(path)
    assert set(disk.headers) == {1, 2}, disk.headers.keys()
    for h in disk.headers.values() if both else [disk.header]:
        assert h["log_guid"] == bytes(16), h
    assert info(path)["log_guid"] == ZERO_GUID
    return disk



# ---- disks to write to ----


def make_parent(path, size, logical, seed, block=MiB):
    """A dynamic VHDX with content here and there; returns its Model."""
    vw("create", path, size, "dynamic", block, logical, 4096)
    model = Model(size)
    writes = [(o, data(n, seed + i)) for i, (o, n) in enumerate(
        ((0, 3 * MiB), (5 * MiB + logical, 2 * MiB), (size - 2 * MiB, 2 * MiB)))]
    write(path, writes)
    for offset, chunk in writes:
        model.write(offset, chunk)
    return model


def child_alone(disk, model):
    """What the child alone reads (the parent's sectors as zeros), from vhdxread's runs and
    the model."""
    out = bytearray(disk.size)
    for start, n, kind, _ in disk.runs():
        if kind == "here":
            lo, hi = start * disk.logical, (start + n) * disk.logical
            out[lo:hi] = model.buf[lo:hi]
    return bytes(out)


def dump_runs(path, logical):
    """vhdxdump's extents, merged as vhdxread.runs merges them."""
    merged = []
    for line in dump("map", path).stdout.splitlines():
        start, n, kind, offset = line.split()
        start, n = int(start), int(n)
        offset = int(offset) if kind == "here" else None
        if merged:
            s, m, k, o = merged[-1]
            if k == kind and s + m == start and (kind != "here" or o + m * logical == offset):
                merged[-1] = (s, m + n, k, o)
                continue
        merged.append((start, n, kind, offset))
    return merged


def bat_sector(img, index):
    at = img.layout["bat"] + 8 * index
    return at - at % vc.LOG_SECTOR


def dirty_image(logical):
    """A dynamic disk whose log (one entry) allocates block 3 and grows the disk from 16
    to 24 MiB: the model is the state after the log."""
    img = vc.build(24 * MiB, "dynamic", block_size=MiB, logical=logical,
                   writes=[(0, data(logical, 50)), (3 * MiB, data(8 * logical, 51)),
                           (20 * MiB, data(logical, 52))])
    sector = bat_sector(img, 3)
    size_item = img.item_offset("disk_size")
    meta = size_item - size_item % vc.LOG_SECTOR
    old_meta = bytearray(img.get(meta, vc.LOG_SECTOR))
    old_meta[size_item - meta:size_item - meta + 8] = struct.pack("<Q", 16 * MiB)
    old_bat = bytearray(img.get(sector, vc.LOG_SECTOR))
    at = img.layout["bat"] + 8 * 3 - sector
    old_bat[at:at + 8] = bytes(8)
    img.dirty([sector, meta], old={sector: bytes(old_bat), meta: bytes(old_meta)}, sequence=77)
    return img


# ---- crash safety ----


def pattern_bytes(index, sector, count, logical):
    """What `vhdxwrite pattern` writes as write @index to @count sectors from @sector."""
    return b"".join(struct.pack("<QQ", index + 1, s) * (logical // 16)
                    for s in range(sector, sector + count))


class Progress:
    """The disk content after k writes of a plan, for k going up: the base with the
    pattern writes laid over it, one copy kept."""

    def __init__(self, base, plan, logical):
        self.plan, self.logical = plan, logical
        self.model, self.k = Model(len(base), base), 0

    def _apply(self, model, i):
        sector, count = self.plan[i]
        model.write(sector * self.logical, pattern_bytes(i, sector, count, self.logical))

    def at(self, k):
        """(content after k writes, content after k + 1 writes, or after all)."""
        assert k >= self.k
        while self.k < k:
            self._apply(self.model, self.k)
            self.k += 1
        old = self.model.bytes()
        if k == len(self.plan):
            return old, old
        new = Model(len(old), old)
        self._apply(new, k)
        return old, new.bytes()


def save_plan(plan, path="plan.txt"):
    with open(path, "w") as f:
        f.write("".join("%d %d\n" % w for w in plan))
    return path


def check_crashed(path, old, new, logical, parent=None, qemu=False, what=""):
    """@path, as a crash left it, opens in the project's reader, in vhdxread.py and (with
    @qemu) in qemu-img check, its log replayed where one is left; each sector of its
    content is that of @old or that of @new. Returns whether the log was left to replay."""
    alone = read(path)
    disk = vr.VhdxFile(path)
    dirty = disk.header["log_guid"] != bytes(16)
    assert disk.read() == alone, "the readers disagree " + what
    got = disk.read(parent=parent) if parent else alone
    if got != old and got != new:
        for s in range(0, len(got), logical):
            part = got[s:s + logical]
            assert part in (old[s:s + logical], new[s:s + logical]), (
                "sector %d is neither old nor new %s" % (s // logical, what))
    if qemu:
        shutil.copy(path, "q.vhdx")
        if dirty:
            run(["qemu-img", "check", "-r", "all", "-f", "vhdx", "q.vhdx"], check=False)
        qemu_check("q.vhdx")
        assert qemu_raw("q.vhdx") == got, "qemu-img reads otherwise " + what
    return dirty


def crash_scenarios():
    """(name, make the base file in the current folder -> (base content, parent reader),
    logical sector size, plan of writes (sector, count), whether qemu-img referees)."""
    def dynamic():
        vw("create", "base.vhdx", 8 * MiB, "dynamic", MiB)
        return bytes(8 * MiB), None

    def differencing():
        model = make_parent("parent.vhdx", 8 * MiB, 4096, 80)
        vw("diff", "base.vhdx", "parent.vhdx")
        return model.bytes(), vr.VhdxFile("parent.vhdx")

    def dirty():
        img = dirty_image(512)
        img.save("base.vhdx")
        return img.expected_bytes(), None

    spb = MiB // 512
    return [
        # New blocks, one straddling write, in place, the last sector.
        ("dynamic", dynamic, 512,
         [(0, 1), (spb - 1, 2), (3 * spb + 5, 3), (3 * spb + 6, 1), (8 * spb - 1, 1)], True),
        # A bitmap block, partially present blocks, a whole block, bits added to a partial
        # block, one completed (fully present), the last sector.
        ("differencing", differencing, 4096,
         [(0, 1), (511, 2), (1024, 512), (3, 2), (2047, 1), (513, 511)], False),
        # The log replayed for real, then writes.
        ("dirty log", dirty, 512, [(3 * spb + 8, 2), (22 * spb, 1)], True),
    ]
