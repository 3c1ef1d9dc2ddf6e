"""The export mount's snapshots/, raw/ and by-id/, its export settings, and a
store that changes while it is mounted, on real mounts of impexfs over the
store `impex demo` makes.

What each state of each disk holds is modelled here (the writes of `impex vm
write` applied to byte arrays, as in test_snapshots): the merged VHDs must
compare equal to it with qemu-img (which reads dynamic VHDs well; no packaged
tool reads sector-granular differencing chains right, so the chains are not
the referee), and the raw images must hold it. The kernel's own ext4 driver
reads the demo disk's raw images through a loop device. Every mount is unmounted with fusermount3
-u (loop mounts with umount), also when a test fails.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

from impexlib import DISKS, GUID_RE, SNAPSHOTS, VMS, as_json, digest, need, ok, vm_new
from taplib import Skip, run, run_tests
from test_snapshots import BLOCK, SECTOR, SIZES, Model, first_difference, pattern, vm_write
from test_mount import IMPEXFS, Mount, files_of, holes

BLOG_STATES = ["first post", "installed", "new theme", "running, saved", "version 2"]


def demo():
    ok("demo", "store")
    return os.path.realpath("store")


def show(store, vm):
    return as_json(ok("vm", "show", "--json", "--store", store, vm))


def config_root(path):
    """The parsed configuration at @path (UTF-16 with a BOM, or UTF-8)."""
    with open(path, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8")
    text = text.split("?>", 1)[1] if text.lstrip().startswith("<?xml") else text
    return ET.fromstring(text)


def leaf(root, path):
    node = root.find(path)
    return None if node is None else (node.text or "")


class LoopMount:
    """mount -o loop,ro of an image; unmounted with umount."""

    def __init__(self, image, point):
        self.point = os.path.realpath(point)
        os.makedirs(self.point, exist_ok=True)
        run(["mount", "-o", "loop,ro", image, self.point])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(["umount", self.point], check=False)


def modelled_vm(store):
    """VM "m" with two disks, snapshots s1, s2 (over s1) and s3 (over s1, after
    an apply: a branch), and more writes after: sector-granular, across a
    block, the first and last sectors. Returns the model of every state:
    state name -> [bytes of each disk]."""
    vm = vm_new(store, "--disk", "ide:16M", "--disk", "scsi:8M", "m")
    model = Model(SIZES)
    vm_write(store, vm, model, 0, 0, pattern(1, 4096))
    vm_write(store, vm, model, 0, BLOCK - 1024, pattern(2, 8192))
    vm_write(store, vm, model, 1, SIZES[1] - 4096, pattern(3, 4096))
    model.keep("s1")
    ok("vm", "snapshot", "--store", store, vm, "s1")
    vm_write(store, vm, model, 0, 3 * SECTOR, pattern(4, SECTOR))
    vm_write(store, vm, model, 0, SIZES[0] - SECTOR, pattern(5, SECTOR))
    model.keep("s2")
    ok("vm", "snapshot", "--store", store, vm, "s2")
    ok("vm", "apply", "--store", store, vm, "s1")
    model.restore("s1")
    vm_write(store, vm, model, 1, 0, pattern(6, 3 * SECTOR))
    model.keep("s3")
    ok("vm", "snapshot", "--store", store, vm, "s3")
    vm_write(store, vm, model, 0, BLOCK, pattern(7, SECTOR))
    model.keep("current")
    return model.states


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_each_snapshot_is_an_independent_vm():
    need("fusermount3", "rsync", "qemu-img", "vhdiinfo")
    store = demo()
    states = modelled_vm(store)
    vm = show(store, "m")
    assert sorted(s["name"] for s in vm["snapshots"]) == ["s1", "s2", "s3"]
    ids = set()
    with Mount(store, "mnt") as m:
        assert sorted(os.listdir(os.path.join(m.point, "snapshots"))) == ["blog", "db", "m"]
        assert sorted(os.listdir(os.path.join(m.point, "snapshots", "blog"))) == \
            sorted(BLOG_STATES + ["latest"])
        # "latest" leads to the newest snapshot (the demo's last, on a branch of its own).
        assert os.readlink(os.path.join(m.point, "snapshots", "blog", "latest")) == "new theme"
        for snap in vm["snapshots"]:
            folder = os.path.join(m.point, "snapshots", "m", snap["name"])
            # The same bytes by cp -r, cp -a, rsync -a and impex export.
            ok("export", "--store", store, "m/" + snap["name"], "exported")
            run(["cp", "-r", folder, "by-cp"])
            run(["cp", "-a", folder, "by-cp-a"])
            run(["rsync", "-a", folder + "/", "by-rsync/"])
            want = files_of("exported")
            for copy in ("by-cp", "by-cp-a", "by-rsync"):
                assert files_of(copy) == want, (snap["name"], copy)
            # A VM of its own: a new GUID, the VM's name, no snapshots, disks found.
            configs = os.listdir(os.path.join("by-rsync", VMS))
            xml = [n for n in configs if n.endswith(".xml")]
            assert len(xml) == 1, configs
            guid = xml[0][:-4]
            assert GUID_RE.match(guid) and guid not in (vm["id"], snap["id"]), guid
            ids.add(guid)
            root = config_root(os.path.join("by-rsync", VMS, xml[0]))
            assert leaf(root, "properties/global_id") == guid
            assert leaf(root, "properties/name") == "m"
            assert leaf(root, "properties/type_id") == "Virtual Machines"
            assert leaf(root, "global_settings/snapshots/parent") is None
            copied = show(os.path.realpath("by-rsync"), guid)
            assert copied["snapshots"] == [] and copied["name"] == "m", copied
            assert os.listdir(os.path.join("by-rsync", SNAPSHOTS)) == []
            # Each disk: one dynamic VHD holding what the model says (qemu-img reads it).
            assert len(copied["disks"]) == 2
            for i, disk in enumerate(copied["disks"]):
                assert disk["chain"] == [disk["path"]], disk
                assert disk["written"].startswith("Virtual Hard Disks\\"), disk
                assert "Dynamic" in run(["vhdiinfo", disk["path"]]).stdout
                write_file("want.raw", states[snap["name"]][i])
                run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", disk["path"], "want.raw"])
            for copy in ("exported", "by-cp", "by-cp-a", "by-rsync"):
                shutil.rmtree(copy)
        # The demo's saved state goes with its snapshot, named after the new GUID.
        blog = show(store, "blog")
        saved = [s for s in blog["snapshots"] if s["saved_state"]][0]
        folder = os.path.join(m.point, "snapshots", "blog", saved["name"], VMS)
        guid = [n[:-4] for n in os.listdir(folder) if n.endswith(".xml")][0]
        theirs = sorted(os.listdir(saved["saved_state"]))
        assert sorted(os.listdir(os.path.join(folder, guid))) == \
            sorted(guid + n[36:] for n in theirs)
        for n in theirs:
            assert digest(os.path.join(folder, guid, guid + n[36:])) == \
                digest(os.path.join(saved["saved_state"], n))
    assert len(ids) == 3
    # The same GUIDs on every mount.
    with Mount(store, "mnt") as m:
        again = set()
        for name in ("s1", "s2", "s3"):
            folder = os.path.join(m.point, "snapshots", "m", name, VMS)
            again |= {n[:-4] for n in os.listdir(folder) if n.endswith(".xml")}
        assert again == ids


def test_raw_images_hold_each_state():
    need("fusermount3")
    store = demo()
    states = modelled_vm(store)
    with Mount(store, "mnt") as m:
        raw = os.path.join(m.point, "raw", "m")
        assert sorted(os.listdir(raw)) == ["current", "latest", "s1", "s2", "s3"]
        assert os.readlink(os.path.join(raw, "latest")) == "s3"
        for state, disks in states.items():
            names = sorted(os.listdir(os.path.join(raw, state)))
            assert names == ["m.img", "m_2.img"], names
            for name, want in zip(names, disks):
                with open(os.path.join(raw, state, name), "rb") as f:
                    fault = first_difference(f.read(), want)
                assert fault is None, (state, name, fault)


def test_merged_disks_are_sparse_and_seekable():
    need("fusermount3")
    store = demo()
    with Mount(store, "mnt") as m:
        merged = os.path.join(m.point, "snapshots", "blog", "version 2", DISKS, "blog.vhd")
        raw = os.path.join(m.point, "raw", "blog", "version 2", "blog.img")
        # The merged VHD holds only the blocks some level of the chain allocates.
        assert os.path.getsize(merged) < os.path.getsize(raw) // 2
        for path in (raw,):
            st = os.stat(path)
            runs = holes(path)
            assert runs and sum(e - s for s, e in runs) < st.st_size, (path, runs)
            assert st.st_blocks * 512 < st.st_size, (path, st.st_blocks)
            # The runs hold everything that is not zero.
            with open(path, "rb") as f:
                data = f.read()
            at = 0
            for start, end in runs:
                assert data[at:start].count(0) == start - at, (path, at, start)
                at = end
            assert data[at:].count(0) == len(data) - at
            run(["cp", path, "copy"])
            assert digest("copy") == digest(path)
            assert os.stat("copy").st_blocks <= st.st_blocks + 64
            os.unlink("copy")


# What the demo writes into blog's ext4 disk before each snapshot (tools/cmd_demo.c).
GUEST = {
    "installed": ("Welcome to blog, version 1\n", [], ["hello.txt"]),
    "first post": ("Welcome to blog, version 1\n", ["hello.txt"], ["update.txt"]),
    "running, saved": ("Welcome to blog, version 1\n", ["hello.txt"], ["update.txt"]),
    "version 2": ("Welcome to blog, version 2 (updated)\n", ["hello.txt", "update.txt"], []),
    "new theme": ("Welcome to blog, version 1 with a theme\n", ["hello.txt", "theme.txt"],
                  ["update.txt"]),
    "current": ("Welcome to blog, version 1 with a theme\n", ["hello.txt", "theme.txt"],
                ["update.txt"]),
}


def test_raw_images_loop_mount_at_each_snapshot():
    need("fusermount3", "mount", "umount")
    if os.geteuid() != 0:
        raise Skip("loop mounts need root")
    store = demo()
    with Mount(store, "mnt") as m:
        assert sorted(os.listdir(os.path.join(m.point, "raw", "blog"))) == \
            sorted(list(GUEST) + ["latest"])
        for state, (motd, present, absent) in GUEST.items():
            # The system disk is partitioned (a GPT): its file system is partition 1's.
            folder = os.path.join(m.point, "raw", "blog", state)
            assert sorted(os.listdir(folder)) == ["blog-part1.img", "blog.img", "blog_2.img"]
            image = os.path.join(folder, "blog-part1.img")
            with LoopMount(image, "guest") as g:
                with open(os.path.join(g.point, "motd")) as f:
                    assert f.read() == motd, state
                posts = os.listdir(os.path.join(g.point, "posts"))
                assert all(p in posts for p in present), (state, posts)
                assert not any(p in posts for p in absent), (state, posts)


def test_by_id_links():
    need("fusermount3")
    store = demo()
    vms = as_json(ok("vm", "list", "--json", "--store", store))
    with Mount(store, "mnt") as m:
        by_id = os.path.join(m.point, "by-id")
        want = {}
        for vm in vms:
            want[vm["id"]] = os.path.join("..", "vms", vm["name"])
            for snap in show(store, vm["id"])["snapshots"]:
                want[snap["id"]] = os.path.join("..", "snapshots", vm["name"], snap["name"])
        assert sorted(os.listdir(by_id)) == sorted(want)
        for guid, target in want.items():
            link = os.path.join(by_id, guid)
            assert os.path.islink(link) and os.readlink(link) == target, guid
            assert os.path.isdir(link), guid
            # A VM's link leads to the folder holding its configuration.
            if target.startswith("../vms"):
                assert os.path.exists(os.path.join(link, VMS, guid + ".xml")), guid


def vm_folder(point, *rest):
    return os.path.join(point, "vms", "blog", *rest)


def test_export_settings():
    need("fusermount3")
    store = demo()
    blog = show(store, "blog")
    with Mount(store, "full") as m:
        full = files_of(vm_folder(m.point))
    assert any(n.startswith(DISKS) for n in full)
    assert any(n.startswith(SNAPSHOTS) for n in full)
    assert any(n.startswith(VMS + "/" + blog["id"] + "/") for n in full)
    cases = [
        ("copy_vm_storage=false", ["--no-vm-storage"]),
        ("copy_vm_runtime_information=false", ["--no-runtime-information"]),
        ("copy_snapshot_configuration=none", ["--copy-snapshot-configuration=none"]),
        ("create_vm_export_subdirectory", ["--create-vm-export-subdirectory"]),
    ]
    for option, flags in cases:
        with Mount(store, "mnt", "-o", option) as m:
            got = files_of(vm_folder(m.point))
            ok("export", "--store", store, *flags, "blog", "exported")
            assert got == files_of("exported"), option
            shutil.rmtree("exported")
            if option.startswith("copy_vm_storage"):
                # The configurations only, their disk paths as they were.
                assert {n for n in got if not n.startswith(DISKS)} == \
                    {n for n in full if not n.startswith(DISKS)} - set(), option
                assert not [n for n in got if n.startswith(DISKS)]
                with open(vm_folder(m.point, VMS, blog["id"] + ".xml"), "rb") as f:
                    text = f.read().decode("utf-16")
                assert blog["disks"][0]["written"] in text, option
                # Snapshot folders still merge their disks (as Hyper-V does).
                snap = os.path.join(m.point, "snapshots", "blog", "installed", DISKS)
                assert sorted(os.listdir(snap)) == ["blog.vhd", "blog_2.vhd"]
            elif option.startswith("copy_vm_runtime"):
                assert set(got) == {n for n in full
                                    if not n.startswith(VMS + "/" + blog["id"] + "/")
                                    and not (n.startswith(SNAPSHOTS + "/") and
                                             not n.endswith(".xml"))}, option
                saved = os.path.join(m.point, "snapshots", "blog", "running, saved", VMS)
                assert all(n.endswith(".xml") for n in os.listdir(saved))
            elif option.startswith("copy_snapshot"):
                # No snapshots; each current disk merged, the same content as raw/current.
                assert not [n for n in got if n.startswith(SNAPSHOTS + "/")], got
                assert sorted(n for n in got if n.startswith(DISKS)) == \
                    [DISKS + "/blog.vhd", DISKS + "/blog_2.vhd"]
                root = config_root(vm_folder(m.point, VMS, blog["id"] + ".xml"))
                assert leaf(root, "global_settings/snapshots/current") is None
                for name in ("blog", "blog_2"):
                    run(["qemu-img", "compare", "-f", "vpc", "-F", "raw",
                         vm_folder(m.point, DISKS, name + ".vhd"),
                         os.path.join(m.point, "raw", "blog", "current", name + ".img")])
            else:
                assert got == {os.path.join("blog", n): h for n, h in full.items()}, option
                assert os.listdir(os.path.join(m.point, "snapshots", "blog", "installed")) \
                    == ["blog"]


def test_bad_mount_options_are_refused():
    need("fusermount3")
    store = demo()
    os.makedirs("mnt", exist_ok=True)
    for args, says in [(["-o", "copy_vm_storage=maybe"], "copy_vm_storage=maybe"),
                       (["-o", "copy_snapshot_configuration=some"], "copy_snapshot_configuration"),
                       (["-o", "revalidate=0"], "revalidate"),
                       (["-o", "pathmap=nonsense"], "path map"),
                       (["-o", "import", "-o", "copy_reads"], "'copy_reads' is for the export")]:
        r = subprocess.run([IMPEXFS, *args, store, "mnt"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2 and says in r.stderr, (args, r)
        assert not os.path.ismount("mnt")
    # A mount point inside the store would deadlock the kernel.
    inner = os.path.join(store, "inner")
    os.mkdir(inner)
    r = subprocess.run([IMPEXFS, store, inner], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "one inside the other" in r.stderr, r
    assert not os.path.ismount(inner)


def wait_for(check, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_store_changes_show_up_without_a_remount():
    need("fusermount3")
    store = demo()
    with Mount(store, "mnt", "-o", "revalidate=1") as m:
        vms = os.path.join(m.point, "vms")
        snaps = os.path.join(m.point, "snapshots", "blog")
        # A file held open across the changes keeps reading what it read.
        held = os.path.join(m.point, "snapshots", "blog", "installed", DISKS, "blog.vhd")
        before = digest(held)
        f = open(held, "rb")
        try:
            ok("vm", "new", "--store", store, "--disk", "ide:8M", "fresh")
            assert wait_for(lambda: "fresh" in os.listdir(vms)), os.listdir(vms)
            ok("vm", "snapshot", "--store", store, "blog", "later")
            assert wait_for(lambda: "later" in os.listdir(snaps)), os.listdir(snaps)
            assert os.path.isdir(os.path.join(m.point, "raw", "blog", "later"))
            ok("vm", "delete", "--store", store, "fresh")
            assert wait_for(lambda: "fresh" not in os.listdir(vms)), os.listdir(vms)
            data = f.read()
        finally:
            f.close()
        import hashlib
        assert hashlib.sha256(data).hexdigest() == before
        # The new snapshot's folder is whole: its disks merge to the VM's state then.
        later = os.path.join(snaps, "later", DISKS, "blog.vhd")
        run(["qemu-img", "info", "-f", "vpc", later])


def test_a_source_changing_under_an_open_file_fails_its_reads():
    need("fusermount3")
    store = demo()
    gateway = show(store, "gateway")
    source = gateway["disks"][0]["path"]
    with Mount(store, "mnt", "-o", "revalidate=1") as m:
        path = os.path.join(m.point, "vms", "gateway", DISKS, os.path.basename(source))
        size = os.path.getsize(path)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert len(os.pread(fd, 4096, 0)) == 4096
            # The VM writes to its disk (as a running VM would).
            with open("data", "wb") as f:
                f.write(b"\x5a" * 65536)
            ok("vm", "write", "--store", store, "gateway", "0", "1048576", "data")
            try:
                # Past what the kernel may hold in its cache.
                os.pread(fd, 65536, size - 65536 if size > 1 << 20 else 0)
                os.pread(fd, 1 << 20, 0)
                changed = False
            except OSError as e:
                changed = e.errno == 5
            assert changed, "a read after the source changed did not fail with EIO"
        finally:
            os.close(fd)
        # Opened again (once the tree is made again), the file is the new one.
        assert wait_for(lambda: digest_or_none(path) == digest(source)), "never the new bytes"


def digest_or_none(path):
    try:
        return digest(path)
    except OSError:
        return None


def saved_state_file(store, m, suffix=".vsv"):
    """(the store's file, the mount's path) of blog's own saved state file ending in @suffix."""
    blog = show(store, "blog")
    name = [n for n in os.listdir(blog["saved_state"]) if n.endswith(suffix)][0]
    return (os.path.join(blog["saved_state"], name),
            os.path.join(m.point, "vms", "blog", VMS, blog["id"], name))


def test_a_file_rewritten_with_its_size_and_time_is_served_anew():
    need("fusermount3")
    store = demo()
    with Mount(store, "mnt", "-o", "revalidate=1") as m:
        source, served = saved_state_file(store, m)
        first = digest(served)  # now in the kernel's cache
        st = os.stat(source)
        with open(source, "r+b") as f:
            f.write(b"\xa5" * 512)
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))  # as a restore would
        assert os.stat(source).st_size == st.st_size
        assert digest(source) != first
        # The next opens fail until the tree is made again, then give the new bytes.
        assert wait_for(lambda: digest_or_none(served) == digest(source)), \
            "the mount never served the rewritten file"


def test_a_file_gone_from_the_store_leaves_the_mount():
    need("fusermount3")
    store = demo()
    with Mount(store, "mnt", "-o", "revalidate=1") as m:
        source, served = saved_state_file(store, m, ".bin")
        assert os.path.exists(served)
        os.unlink(source)
        try:
            digest(served)
        except OSError:
            pass
        assert wait_for(lambda: not os.path.exists(served)), "the file is still listed"


def test_a_link_put_in_place_of_a_file_is_not_followed():
    need("fusermount3")
    store = demo()
    with open("outside.bin", "wb") as f:
        f.write(b"OUTSIDE-SECRET" * 1000)
    with Mount(store, "mnt", "-o", "revalidate=1") as m:
        source, served = saved_state_file(store, m)
        os.unlink(source)
        os.symlink(os.path.realpath("outside.bin"), source)
        for _ in range(10):
            try:
                with open(served, "rb") as f:
                    assert b"OUTSIDE-SECRET" not in f.read()
            except OSError:
                pass
            time.sleep(0.3)
        # Made again, the tree leaves the link out.
        assert wait_for(lambda: not os.path.exists(served)), "the link is served"


def test_nothing_outside_the_store_is_served():
    need("fusermount3")
    store = demo()
    os.mkdir("outside")
    ok("vm", "new", "--store", store, "--disk", "ide:8M", "victim")
    victim = show(store, "victim")
    # Its disk becomes a link to a disk outside the store.
    secret = os.path.realpath("outside/secret.vhd")
    ok("vhd", "create", secret, "8M")
    with open("secret.bin", "wb") as f:
        f.write(b"SECRET-BYTES" * 512)
    ok("vhd", "write", secret, "0", "secret.bin")
    os.unlink(victim["disks"][0]["path"])
    os.symlink(secret, victim["disks"][0]["path"])
    shown = as_json(ok("vm", "list", "--json", "--store", store))
    problem = [v for v in shown if v["name"] == "victim"][0]["disks"][0]["problem"]
    assert problem and "outside" in problem, problem
    with Mount(store, "mnt") as m:
        assert "victim" not in os.listdir(os.path.join(m.point, "vms"))
        assert "victim" not in os.listdir(os.path.join(m.point, "raw"))
        for folder, _, files in os.walk(m.point):
            for name in files:
                with open(os.path.join(folder, name), "rb") as f:
                    assert b"SECRET-BYTES" not in f.read(), os.path.join(folder, name)


if __name__ == "__main__":
    if not os.path.exists("/dev/fuse"):
        print("1..0 # SKIP no /dev/fuse")
        sys.exit(0)
    run_tests(globals())
