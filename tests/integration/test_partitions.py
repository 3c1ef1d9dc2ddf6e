"""The partitions of raw images, and the `latest` links, on real mounts of impexfs.

Guests' disks are partitioned: raw/<vm>/<state>/ serves beside each disk image
<disk>.img a file per partition, <disk>-part<N>.img, numbered as Linux numbers
them. The disks here are made as a user's would be: the table written by sfdisk
(util-linux) on an image file, ext4 file systems made in the partitions by
mkfs.ext4 -d, the image written into the VM's disk with impex. Where each
partition lies is what `sfdisk --json` reads of the disk image served; the kernel's
ext4 driver reads the partition files through loop mounts (`mount -o loop,ro`),
each unmounted with umount, its loop device then freed (autoclear), also when a
test fails. Hostile tables are patched into such images by hand. Every impexfs is
unmounted with fusermount3 -u and must exit 0.
"""

import json
import os
import shutil
import subprocess

from impexlib import GUID_RE, as_json, digest, need, new_store, ok, vm_new
from taplib import Skip, run, run_tests
from test_mount import Mount, holes

MiB = 1024 * 1024


def need_root():
    need("fusermount3", "sfdisk", "mkfs.ext4", "mount", "umount", "losetup")
    if os.geteuid() != 0:
        raise Skip("loop mounts need root")


class LoopMount:
    """mount -o loop,ro of @image at @point; umount at the end, and the loop device
    must then be gone (autoclear)."""

    def __init__(self, image, point):
        self.image = image
        self.point = os.path.realpath(point)
        os.makedirs(self.point, exist_ok=True)
        run(["mount", "-o", "loop,ro", image, self.point])

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        done = subprocess.run(["umount", self.point], stderr=subprocess.PIPE, text=True)
        if kind is None:
            assert done.returncode == 0, "umount %s: %s" % (self.point, done.stderr)
            left = run(["losetup", "-j", self.image]).stdout
            assert left.strip() == "", "a loop device is left on %s: %s" % (self.image, left)


def write_files(folder, files):
    shutil.rmtree(folder, ignore_errors=True)
    for rel, text in files.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


class LoopDevice:
    """A loop device over @image with @sector-byte logical sectors (losetup --sector-size),
    without partition scanning: how sfdisk, which reads an image file at 512, sees a disk of
    4096-byte sectors. Detached at the end."""

    def __init__(self, image, sector, read_only=False):
        self.device = run(["losetup", "--show", "-f", "--sector-size", str(sector)] +
                          (["-r"] if read_only else []) + [image]).stdout.strip()

    def __enter__(self):
        return self.device

    def __exit__(self, *exc):
        subprocess.run(["losetup", "-d", self.device], check=False)


def partition(image, script, sector=512):
    """Write the table @script (sfdisk's input) on the image file @image."""
    def write(target):
        subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", target],
                       input=script, text=True, check=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if sector == 512:
        write(image)
    else:
        with LoopDevice(image, sector) as device:
            write(device)


def table_of(image, sector=512):
    """sfdisk's reading of the table of @image (at @sector bytes a sector):
    {number: (start byte, length)}."""
    def read(target):
        table = json.loads(run(["sfdisk", "--json", target]).stdout)["partitiontable"]
        return table, target
    if sector == 512:
        table, target = read(image)
    else:
        with LoopDevice(image, sector, read_only=True) as device:
            table, target = read(device)
    size = table.get("sectorsize", 512)
    assert size == sector, table
    out = {}
    for p in table["partitions"]:
        number = int(p["node"][len(target):].lstrip("p"))
        out[number] = (p["start"] * size, p["size"] * size)
    return out


def mkfs(image, start, length, files):
    """An ext4 holding the folder @files in [@start, @start + @length) of @image."""
    run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "offset=%d,nodiscard" % start,
         "-d", files, image, "%dk" % (length // 1024)])


def read_range(path, start, length):
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(length)


def show(store, vm):
    return as_json(ok("vm", "show", "--json", "--store", store, vm))


def state_folder(point, vm, state):
    return os.path.join(point, "raw", vm, state)


def only_image(folder):
    """The disk image of @folder (one disk), "<stem>.img": its stem."""
    images = [n for n in os.listdir(folder) if n.endswith(".img") and "-part" not in n]
    assert len(images) == 1, os.listdir(folder)
    return images[0][:-4]


def assert_window(image, part, start, length):
    """@part serves [@start, @start + @length) of @image: bytes, size, st_blocks and holes."""
    assert os.path.getsize(part) == length, (part, os.path.getsize(part), length)
    with open(part, "rb") as f:
        data = f.read()
    assert data == read_range(image, start, length), "%s is not its window of the disk" % part
    # Its runs of data are the disk image's, cut to the window.
    want = []
    for s, e in holes(image):
        s, e = max(s, start) - start, min(e, start + length) - start
        if s < e:
            want.append((s, e))
    got = holes(part)
    assert got == want, (part, got[:8], want[:8])
    # st_blocks: what those runs hold, no more than the disk image's.
    blocks = os.stat(part).st_blocks
    assert blocks * 512 == sum(e - s for s, e in got), (part, blocks, got[:8])
    assert blocks <= os.stat(image).st_blocks
    # Holes read as zeros: what lies outside the runs is zeros.
    at = 0
    for s, e in got:
        assert data[at:s].count(0) == s - at, (part, at, s)
        at = e
    assert data[at:].count(0) == len(data) - at


# ---- a GPT disk with an ext4, at two snapshots ----

SNAPSHOT_FILES = {
    "one": {"motd": "first state\n", "etc/hostname": "guest-one\n"},
    "two": {"motd": "second state\n", "etc/hostname": "guest-two\n", "home/note.txt": "new\n"},
}


def gpt_vm(store, name):
    """VM @name with a 64 MiB disk holding a GPT (sfdisk) and an ext4 in partition 1, made
    at snapshot "one", changed at snapshot "two". Returns the partition's (start, length)."""
    vm = vm_new(store, "--disk", "ide:64M", name)
    image = name + ".raw"
    with open(image, "wb") as f:
        f.truncate(64 * MiB)
    partition(image, "label: gpt\nstart=2048, size=118784, type=L, name=root\n")
    start, length = table_of(image)[1]
    for snap, files in SNAPSHOT_FILES.items():
        write_files("files", files)
        mkfs(image, start, length, "files")
        ok("vm", "write", "--store", store, vm, "0", "0", image)
        ok("vm", "snapshot", "--store", store, vm, snap)
    return start, length


def test_gpt_partition_loop_mounts_at_two_snapshots():
    need_root()
    store = new_store()
    start, length = gpt_vm(store, "web")
    with Mount(store, "mnt") as m:
        for snap, files in SNAPSHOT_FILES.items():
            folder = state_folder(m.point, "web", snap)
            stem = only_image(folder)
            assert sorted(os.listdir(folder)) == [stem + "-part1.img", stem + ".img"]
            image = os.path.join(folder, stem + ".img")
            part = os.path.join(folder, stem + "-part1.img")
            # Where sfdisk finds the partition in the image served.
            assert table_of(image) == {1: (start, length)}
            assert_window(image, part, start, length)
            st, img = os.stat(part), os.stat(image)
            assert (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) == \
                (img.st_mode, img.st_uid, img.st_gid, img.st_mtime_ns), part
            with LoopMount(part, "guest") as g:
                got = {}
                for top, _, names in os.walk(g.point):
                    for n in names:
                        path = os.path.join(top, n)
                        with open(path) as f:
                            got[os.path.relpath(path, g.point)] = f.read()
                assert got == files, (snap, got)
        # The current state is the last written: "two"'s files.
        current = state_folder(m.point, "web", "current")
        stem = only_image(current)
        assert digest(os.path.join(current, stem + "-part1.img")) == \
            digest(os.path.join(state_folder(m.point, "web", "two"), stem + "-part1.img"))
    assert "partition" not in m.stderr(), m.stderr()


# ---- MBR with logical partitions ----

MBR_SCRIPT = """label: dos
start=2048, size=16384, type=83
start=20480, size=100352, type=5
start=22528, size=40960, type=83
start=65536, size=16384, type=82
"""


def mbr_image(name):
    """A 64 MiB image with primary 1, extended 2 holding logical 5 (an ext4) and 6."""
    image = name + ".raw"
    with open(image, "wb") as f:
        f.truncate(64 * MiB)
    partition(image, MBR_SCRIPT)
    table = table_of(image)
    assert sorted(table) == [1, 2, 5, 6], table
    write_files("files", {"logical.txt": "in a logical partition\n"})
    mkfs(image, table[5][0], table[5][1], "files")
    with open(image, "r+b") as f:
        for number in (1, 6):  # something to tell them apart
            f.seek(table[number][0])
            f.write(("partition %d\n" % number).encode() * 100)
    return image, table


def test_mbr_logical_partitions():
    need_root()
    store = new_store()
    vm = vm_new(store, "--disk", "ide:64M", "old")
    image, table = mbr_image("old")
    ok("vm", "write", "--store", store, vm, "0", "0", image)
    with Mount(store, "mnt") as m:
        folder = state_folder(m.point, "old", "current")
        stem = only_image(folder)
        served = os.path.join(folder, stem + ".img")
        # Not the extended partition (a container): the primary and the logical ones.
        assert sorted(os.listdir(folder)) == sorted(
            [stem + ".img"] + ["%s-part%d.img" % (stem, n) for n in (1, 5, 6)])
        assert table_of(served) == table
        for number in (1, 5, 6):
            assert_window(served, os.path.join(folder, "%s-part%d.img" % (stem, number)),
                          *table[number])
        with LoopMount(os.path.join(folder, stem + "-part5.img"), "guest") as g:
            with open(os.path.join(g.point, "logical.txt")) as f:
                assert f.read() == "in a logical partition\n"
        with open(os.path.join(folder, stem + "-part6.img"), "rb") as f:
            assert f.read(12) == b"partition 6\n"
    assert "partition" not in m.stderr(), m.stderr()


# ---- GPT at 4096-byte sectors, in a VHDX ----

def test_gpt_on_4096_byte_sectors():
    need_root()
    store = new_store()
    vm = vm_new(store, "--generation", "2", "--disk", "scsi:64M", "big")
    disk = show(store, vm)["disks"][0]["path"]
    assert disk.endswith(".vhdx"), disk
    # The VM's disk made again with 4096-byte logical sectors.
    os.unlink(disk)
    ok("vhd", "create", "--format", "vhdx", "--sector-size", "4096", disk, "64M")
    image = "big.raw"
    with open(image, "wb") as f:
        f.truncate(64 * MiB)
    partition(image, "label: gpt\nstart=256, size=12288, type=L\nstart=12544, size=2560\n",
              sector=4096)
    table = table_of(image, sector=4096)
    assert table[1] == (MiB, 48 * MiB) and table[2] == (12544 * 4096, 10 * MiB), table
    write_files("files", {"sector.txt": "4096-byte sectors\n"})
    mkfs(image, table[1][0], table[1][1], "files")
    ok("vhd", "write", disk, "0", image)
    with Mount(store, "mnt") as m:
        folder = state_folder(m.point, "big", "current")
        stem = only_image(folder)
        served = os.path.join(folder, stem + ".img")
        assert sorted(os.listdir(folder)) == [stem + "-part1.img", stem + "-part2.img",
                                              stem + ".img"]
        assert table_of(served, sector=4096) == table
        for number in (1, 2):
            assert_window(served, os.path.join(folder, "%s-part%d.img" % (stem, number)),
                          *table[number])
        with LoopMount(os.path.join(folder, stem + "-part1.img"), "guest") as g:
            with open(os.path.join(g.point, "sector.txt")) as f:
                assert f.read() == "4096-byte sectors\n"
    assert "partition" not in m.stderr(), m.stderr()


# ---- hostile tables ----

def le32(value):
    return value.to_bytes(4, "little")


def patch(image, offset, data):
    with open(image, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_hostile_tables_are_reported_and_hide_no_image():
    need_root()
    store = new_store()
    # An MBR whose EBR chain loops, with a primary past the disk's end and one over another.
    loop_vm = vm_new(store, "--disk", "ide:64M", "loops")
    image, table = mbr_image("loops")
    ext = 20480
    ebr6 = table[6][0] // 512 - 2048  # sfdisk puts each EBR 2048 sectors before its partition
    with open(image, "rb") as f:
        f.seek(ebr6 * 512 + 510)
        assert f.read(2) == b"\x55\xaa", "no EBR where sfdisk puts it"
    # EBR 6's link: back to the first EBR (the extended partition's first sector).
    patch(image, ebr6 * 512 + 446 + 16, b"\0\0\0\0\x05\0\0\0" + le32(0) + le32(2048))
    patch(image, 446 + 32, b"\0\0\0\0\x83\0\0\0" + le32(130000) + le32(4096))  # slot 3
    patch(image, 446 + 48, b"\0\0\0\0\x83\0\0\0" + le32(4096) + le32(100))    # slot 4
    ok("vm", "write", "--store", store, loop_vm, "0", "0", image)
    # A GPT whose primary header is damaged: its backup serves.
    gpt = vm_new(store, "--disk", "ide:64M", "damaged")
    gimage = "damaged.raw"
    with open(gimage, "wb") as f:
        f.truncate(64 * MiB)
    partition(gimage, "label: gpt\nstart=2048, size=20480, type=L\n")
    gtable = table_of(gimage)
    write_files("files", {"backup.txt": "read through the backup header\n"})
    mkfs(gimage, gtable[1][0], gtable[1][1], "files")
    with open(gimage, "rb") as f:
        f.seek(512 + 56)
        guid = bytearray(f.read(1))
    patch(gimage, 512 + 56, bytes([guid[0] ^ 0xFF]))  # the disk GUID: the CRC32 fails
    ok("vm", "write", "--store", store, gpt, "0", "0", gimage)
    # Both GPT headers gone: no partitions.
    bare = vm_new(store, "--disk", "ide:64M", "headless")
    with open("headless.raw", "wb") as f:
        f.truncate(64 * MiB)
    partition("headless.raw", "label: gpt\nstart=2048, size=20480, type=L\n")
    patch("headless.raw", 512, b"EFI JUNK")
    patch("headless.raw", 64 * MiB - 512, b"EFI JUNK")
    ok("vm", "write", "--store", store, bare, "0", "0", "headless.raw")

    with Mount(store, "mnt") as m:
        folder = state_folder(m.point, "loops", "current")
        stem = only_image(folder)
        # The partitions before the loop, and the primary that is sound, stay.
        assert sorted(os.listdir(folder)) == sorted(
            [stem + ".img"] + ["%s-part%d.img" % (stem, n) for n in (1, 5, 6)])
        served = os.path.join(folder, stem + ".img")
        with open(served, "rb") as f:
            assert f.read() == open(image, "rb").read(), "the disk image is not the disk"
        for number in (1, 5, 6):
            assert_window(served, os.path.join(folder, "%s-part%d.img" % (stem, number)),
                          *table[number])
        what = "'raw/loops/current/%s.img'" % stem
        for said in ("the chain of EBRs of %s loops back to sector %d" % (what, ext),
                     "partition 3 of %s (sectors 130000 to 134095) ends past the disk's end"
                     % what,
                     "partition 4 of %s overlaps partition 1: left out" % what):
            assert m.said(said), (said, m.stderr())

        folder = state_folder(m.point, "damaged", "current")
        stem = only_image(folder)
        assert sorted(os.listdir(folder)) == [stem + "-part1.img", stem + ".img"]
        assert_window(os.path.join(folder, stem + ".img"),
                      os.path.join(folder, stem + "-part1.img"), *gtable[1])
        with LoopMount(os.path.join(folder, stem + "-part1.img"), "guest") as g:
            with open(os.path.join(g.point, "backup.txt")) as f:
                assert f.read() == "read through the backup header\n"
        said = ("the primary GPT header of 'raw/damaged/current/%s.img' is damaged (its CRC32 "
                "does not match): the backup at its last sector (131071) is used" % stem)
        assert m.said(said), m.stderr()

        folder = state_folder(m.point, "headless", "current")
        stem = only_image(folder)
        assert os.listdir(folder) == [stem + ".img"]
        assert m.said("neither GPT header of 'raw/headless/current/%s.img' is sound" % stem), \
            m.stderr()
        # Said once: listing again reads nothing again.
        assert m.said("loops back"), m.stderr()
        count = m.stderr().count("loops back")
        for _ in range(3):
            os.listdir(state_folder(m.point, "loops", "current"))
        assert m.stderr().count("loops back") == count == 1, m.stderr()


# ---- latest ----

def test_latest_links():
    need("fusermount3", "rsync")
    store = new_store()
    vm = vm_new(store, "--disk", "ide:8M", "web")
    vm_new(store, "--disk", "ide:8M", "plain")
    for snap in ("one", "two"):
        with open("data.bin", "wb") as f:
            f.write(snap.encode() * 512)
        ok("vm", "write", "--store", store, vm, "0", "0", "data.bin")
        ok("vm", "snapshot", "--store", store, vm, snap)
    # A snapshot named "latest" is told apart, as namesakes are.
    ok("vm", "snapshot", "--store", store, vm, "latest")
    latest_id = [s["id"] for s in show(store, vm)["snapshots"] if s["name"] == "latest"][0]
    renamed = "latest (%s)" % latest_id[:8]
    with Mount(store, "mnt") as m:
        for top in ("snapshots", "raw"):
            folder = os.path.join(m.point, top, "web")
            link = os.path.join(folder, "latest")
            assert os.path.islink(link) and os.readlink(link) == renamed, (top, os.listdir(folder))
            assert os.path.samefile(link, os.path.join(folder, renamed))
            assert os.lstat(link).st_mtime_ns == os.stat(os.path.join(folder, renamed)).st_mtime_ns
        # A VM without snapshots has none.
        assert os.listdir(os.path.join(m.point, "raw", "plain")) == ["current"]
        assert not os.path.exists(os.path.join(m.point, "snapshots", "plain"))
        # by-id holds the VMs and the snapshots, no more.
        by_id = os.listdir(os.path.join(m.point, "by-id"))
        assert len(by_id) == 2 + 3 and all(GUID_RE.match(n) for n in by_id), by_id
        # cp -r and rsync -a copy the link as a link: it leads to the copied folder.
        run(["cp", "-r", os.path.join(m.point, "snapshots", "web"), "by-cp"])
        run(["rsync", "-a", os.path.join(m.point, "snapshots", "web") + "/", "by-rsync/"])
        for copy in ("by-cp", "by-rsync"):
            assert sorted(os.listdir(copy)) == sorted(["latest", "one", "two", renamed]), copy
            assert os.path.islink(os.path.join(copy, "latest"))
            assert os.readlink(os.path.join(copy, "latest")) == renamed


if __name__ == "__main__":
    run_tests(globals())
