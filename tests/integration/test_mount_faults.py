"""No disk hides a VM: a VM with a sound system disk and a data disk that
cannot be read as a disk (a file of garbage named .vhdx, a damaged VHD, a
differencing VHD whose parent is gone) stays in the export mount, mounted for
real. vms/ carries every file of the VM as it lies, so that `rsync -a
--delete` into a backup that holds the VM keeps every file; raw/ and
snapshots/ serve the sound disk and leave the unreadable one out; by-id/
keeps the VM and its snapshot; the daemon logs each fault once, without
-o verbose, however often the files are listed and read and the tree is
made again. A reader that runs the daemon out of descriptors changes none
of it. `impex export` writes what it can, as the mount shows it, and exits 1
naming each disk it could not read.

Expected contents are built here: the bytes written into the disks are
known, the raw images and merged disks are compared with them (the merged
disk read by qemu-img), and the files served as they lie with the store's
files byte for byte.
"""

import errno
import os
import re
import resource
import shutil
import subprocess
import sys
import time

from impexlib import (DISKS, SNAPSHOTS, VMS, as_json, call, digest, edit_config, need, new_store,
                      ok)
from taplib import run, run_tests
from test_mount import IMPEXFS, Mount, files_of

MIB = 1 << 20
SYSTEM_BEFORE = bytes(range(256)) * 256   # 64 KiB at offset 0, before the snapshot
SYSTEM_AFTER = b"after the snapshot, " * 1024  # at 1 MiB, after it (the current state only)
DATA = b"data disk bytes " * 4096      # 64 KiB at offset 0 of the data disk
NOFILE = 256  # the daemon's descriptor limit in the EMFILE test

# The daemon's line for a disk it cannot read (fs/exportfs.c).
FAULT = re.compile(r"^impexfs: disk '(.*)' cannot be read: (.+)$")


# ---- a VM with a sound system disk and a data disk ----

def configs(store):
    """Every configuration of the store."""
    return [os.path.join(store, folder, n) for folder in (VMS, SNAPSHOTS)
            for n in sorted(os.listdir(os.path.join(store, folder))) if n.endswith(".xml")]


def make_vm(store, name="web", snapshots=1):
    """VM @name: system disk (IDE, 8 MiB) and data disk (SCSI, 4 MiB) with known bytes,
    @snapshots snapshots "s1", "s2"..., and more written to the system disk after them.
    Returns vm show --json."""
    with open("system-before", "wb") as f:
        f.write(SYSTEM_BEFORE)
    with open("system-after", "wb") as f:
        f.write(SYSTEM_AFTER)
    with open("data", "wb") as f:
        f.write(DATA)
    ok("vm", "new", "--store", store, "--disk", "ide:8M", "--disk", "scsi:4M", name)
    ok("vm", "write", "--store", store, name, "0", "0", "system-before")
    ok("vm", "write", "--store", store, name, "1", "0", "data")
    for i in range(snapshots):
        ok("vm", "snapshot", "--store", store, name, "s%d" % (i + 1))
    ok("vm", "write", "--store", store, name, "0", str(MIB), "system-after")
    return as_json(ok("vm", "show", "--json", "--store", store, name))


def system_image(current):
    """The raw system disk: SYSTEM_BEFORE at 0, and in the current state SYSTEM_AFTER at 1 MiB."""
    image = bytearray(8 * MIB)
    image[0:len(SYSTEM_BEFORE)] = SYSTEM_BEFORE
    if current:
        image[MIB:MIB + len(SYSTEM_AFTER)] = SYSTEM_AFTER
    return bytes(image)


def back_up(store, backup):
    """rsync -a of vms/web/ of a mount of the sound store into @backup."""
    with Mount(store, "mnt") as m:
        run(["rsync", "-a", os.path.join(m.point, "vms", "web") + "/", backup + "/"])
    assert os.path.isfile(os.path.join(backup, DISKS, "web_2.vhd")), os.listdir(backup)


def garbage(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))


# ---- the faults ----

def vhdx_garbage(store, vm):
    """The data disk made files of garbage named as Hyper-V names a VHDX and its
    snapshot's AVHDX: "web_data.vhdx" in the snapshot's configuration, "web_data_<GUID>.avhdx"
    in the VM's."""
    snap = vm["snapshots"][0]
    base = os.path.join(store, DISKS, "web_data.vhdx")
    top = os.path.join(store, DISKS, "web_data_%s.avhdx" % snap["id"])
    garbage(base, MIB + 4096)
    garbage(top, 3 * 4096)
    was_top = [d["path"] for d in vm["disks"] if d["bus"] == "scsi"][0]
    was_base = [d["path"] for d in snap["disks"] if d["bus"] == "scsi"][0]
    for path in configs(store):
        edit_config(path, lambda text: text.replace(was_top, top).replace(was_base, base))
    return {"carried": [top, base], "faults": {top, base}, "changed": [top, base]}


def damaged_vhd(store, vm):
    """The data disk's base (the snapshot's data disk) damaged: both copies of its footer
    overwritten. The current data disk, a differencing disk over it, opens; its parent
    does not."""
    base = os.path.join(store, DISKS, "web_2.vhd")
    size = os.path.getsize(base)
    with open(base, "r+b") as f:
        f.write(b"\xa5" * 512)
        f.seek(size - 512)
        f.write(b"\x5a" * 512)
    # Damaged later than the backup was made (rsync compares times to the second).
    later = time.time() + 10
    os.utime(base, (later, later))
    top = [d["path"] for d in vm["disks"] if d["bus"] == "scsi"][0]
    return {"carried": [top, base], "faults": {top, base}, "changed": [base]}


def missing_parent(store, vm):
    """The data disk's base removed: the current data disk's parent is missing, and so is
    the snapshot's data disk."""
    base = os.path.join(store, DISKS, "web_2.vhd")
    os.unlink(base)
    top = [d["path"] for d in vm["disks"] if d["bus"] == "scsi"][0]
    return {"carried": [top], "faults": {top, base}, "changed": []}


# ---- what the mount must show ----

def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def qemu_raw(path, out):
    run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", path, out])
    return read_all(out)


def fault_lines(text):
    """The daemon's lines about disks it cannot read: [(disk, reason)]."""
    return [FAULT.match(line).groups() for line in text.splitlines() if FAULT.match(line)]


def check_served(m, store, vm, fault):
    """What the mount at @m shows of VM web whose data disk has @fault (see above)."""
    point = m.point
    assert "web" in os.listdir(os.path.join(point, "vms")), os.listdir(os.path.join(point, "vms"))
    snap = vm["snapshots"][0]
    # by-id keeps the VM and its snapshot.
    assert os.readlink(os.path.join(point, "by-id", vm["id"])) == "../vms/web"
    assert os.readlink(os.path.join(point, "by-id", snap["id"])) == "../snapshots/web/s1"
    folder = os.path.join(point, "vms", "web")
    # Every configuration, and every file of the sound disk's chains.
    served = files_of(folder)
    assert os.path.join(VMS, vm["id"] + ".xml") in served, sorted(served)
    assert os.path.join(SNAPSHOTS, snap["id"] + ".xml") in served, sorted(served)
    system = [d for d in vm["disks"] if d["bus"] == "ide"][0]
    for path in system["chain"]:
        assert os.path.join(DISKS, os.path.basename(path)) in served, (path, sorted(served))
    # The unreadable disk's files, as they lie.
    for path in fault["carried"]:
        rel = os.path.join(DISKS, os.path.basename(path))
        assert rel in served, (rel, sorted(served))
        assert served[rel] == digest(path), "%s is not served as it lies" % rel
    # raw/: the sound disk in each state, and nothing of the other.
    for state, current in (("current", True), ("s1", False)):
        names = sorted(os.listdir(os.path.join(point, "raw", "web", state)))
        assert names == ["web.img"], (state, names)
        assert read_all(os.path.join(point, "raw", "web", state, "web.img")) == \
            system_image(current), state
    # snapshots/: s1 as a VM of its own with the sound disk merged, the other left out.
    s1 = os.path.join(point, "snapshots", "web", "s1")
    assert sorted(os.listdir(os.path.join(s1, DISKS))) == ["web.vhd"], os.listdir(s1)
    assert len(os.listdir(os.path.join(s1, VMS))) == 1, os.listdir(os.path.join(s1, VMS))
    assert qemu_raw(os.path.join(s1, DISKS, "web.vhd"), "merged.raw") == system_image(False)
    os.unlink("merged.raw")


def busy(m, store, rounds=3):
    """List and read everything a few times, and have the tree made again."""
    for _ in range(rounds):
        run(["ls", "-lR", m.point])
        for folder, _, files in os.walk(m.point):
            for name in files:
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    run(["cat", path], stdout=subprocess.DEVNULL, text=False)
        # The store's folder changes: the mount plans its tree again (revalidate=1).
        probe = os.path.join(store, VMS, "probe")
        open(probe, "w").close()
        os.unlink(probe)
        time.sleep(2.5)


def check_fault(make_fault):
    need("fusermount3", "rsync", "qemu-img")
    store = new_store()
    vm = make_vm(store)
    back_up(store, "backup")
    fault = make_fault(store, vm)
    before = {p: digest(p) for p in fault["carried"]}
    with Mount(store, "mnt", "-o", "revalidate=1") as m:
        check_served(m, store, vm, fault)
        busy(m, store)
        check_served(m, store, vm, fault)
        # A backup that holds the VM keeps every file of it, the unreadable disk's too.
        had = files_of("backup")
        served = files_of(os.path.join(m.point, "vms", "web"))
        source = os.path.join(m.point, "vms", "web") + "/"
        run(["rsync", "-a", "--delete", source, "backup/"])
        now = files_of("backup")
        assert sorted(now) == sorted(served), (sorted(now), sorted(served))
        for rel in served:
            # A file whose time and size did not change keeps its copy (rsync's quick check):
            # a differencing disk whose parent fails is served as it lies, no longer relocated.
            assert now[rel] in (served[rel], had.get(rel)), rel
        for path in fault["changed"]:  # new, or written: rsync copies them
            assert now[os.path.join(DISKS, os.path.basename(path))] == before[path], path
        # Compared by content, the copy is what the mount serves.
        run(["rsync", "-a", "-c", "--delete", source, "backup/"])
        assert files_of("backup") == served
        for path in fault["carried"]:
            assert digest(os.path.join("backup", DISKS, os.path.basename(path))) == before[path]
    # Logged once each, without -o verbose, naming the disk and why.
    lines = fault_lines(m.stderr())
    assert len(lines) == len(set(lines)), "logged more than once: %s" % m.stderr()
    assert {disk for disk, _ in lines} == fault["faults"], m.stderr()
    for disk, reason in lines:
        assert "vms/ serves" in reason, reason


def test_vhdx_of_garbage():
    check_fault(vhdx_garbage)


def test_damaged_vhd():
    check_fault(damaged_vhd)


def test_missing_parent():
    check_fault(missing_parent)


def test_chain_served_as_far_as_it_opens():
    """A data disk of three levels whose base is gone, the middle one named by no
    configuration: vms/ serves the top relocated over the middle, and the middle as it
    lies."""
    need("fusermount3", "vhdiinfo")
    store = new_store()
    vm = make_vm(store, snapshots=0)
    base = [d["path"] for d in vm["disks"] if d["bus"] == "scsi"][0]
    middle = os.path.join(store, DISKS, "web_2_middle.avhd")
    top = os.path.join(store, DISKS, "web_2_top.avhd")
    ok("vhd", "snapshot", base, middle)
    ok("vhd", "snapshot", middle, top)
    for path in configs(store):
        edit_config(path, lambda text: text.replace(base, top))
    os.unlink(base)
    with Mount(store, "mnt") as m:
        folder = os.path.join(m.point, "vms", "web", DISKS)
        names = sorted(os.listdir(folder))
        assert "web_2_top.avhd" in names and "web_2_middle.avhd" in names, names
        assert digest(os.path.join(folder, "web_2_middle.avhd")) == digest(middle)
        # The top names its parent in its own folder.
        shutil.copy(os.path.join(folder, "web_2_top.avhd"), "top.avhd")
        shutil.copy(os.path.join(folder, "web_2_middle.avhd"), "web_2_middle.avhd")
        info = run(["vhdiinfo", "top.avhd"]).stdout
        assert re.search(r"Parent filename\s*:\s*web_2_middle\.avhd", info), info
    lines = fault_lines(m.stderr())
    assert [disk for disk, _ in lines] == [top], m.stderr()
    assert "web_2.vhd" in lines[0][1], lines


def test_copy_snapshot_configuration_none():
    """With copy_snapshot_configuration=none, vms/ merges the sound disk and carries the
    unreadable one as it lies."""
    need("fusermount3", "qemu-img")
    store = new_store()
    vm = make_vm(store)
    fault = vhdx_garbage(store, vm)
    top = fault["carried"][0]
    name = os.path.basename(top)
    with Mount(store, "mnt", "-o", "copy_snapshot_configuration=none") as m:
        folder = os.path.join(m.point, "vms", "web", DISKS)
        assert sorted(os.listdir(folder)) == ["web.vhd", name], os.listdir(folder)
        assert digest(os.path.join(folder, name)) == digest(top)
        assert qemu_raw(os.path.join(folder, "web.vhd"), "merged.raw") == system_image(True)
        config = read_all(os.path.join(m.point, "vms", "web", VMS, vm["id"] + ".xml"))
        assert ("Virtual Hard Disks\\" + name).encode("utf-16-le") in config
    lines = fault_lines(m.stderr())
    assert sorted(disk for disk, _ in lines) == sorted(fault["faults"]), m.stderr()


def test_impex_export_writes_what_it_can():
    """impex export of the VM writes the folder the mount shows and exits 1 naming the
    disk; of the snapshot, the folder without that disk."""
    need("fusermount3")
    store = new_store()
    vm = make_vm(store)
    fault = vhdx_garbage(store, vm)
    top, base = fault["carried"]
    for what, dest, said in (("web", "out", [top, base]), ("web/s1", "out-s1", [base])):
        result = subprocess.run([os.environ.get("IMPEX", "impex"), "export", "--store", store,
                                 what, dest], capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, (what, result.returncode, result.stderr)
        lines = result.stderr.splitlines()
        assert all(l.startswith("impex: ") for l in lines), (what, result.stderr)
        assert sorted(re.match(r"impex: disk '([^']*)'", l).group(1) for l in lines) == \
            sorted(said), (what, result.stderr)
    for path in (top, base):
        assert digest(os.path.join("out", DISKS, os.path.basename(path))) == digest(path)
    assert sorted(os.listdir(os.path.join("out-s1", DISKS))) == ["web.vhd"]
    # Imported, the snapshot's folder says which disk it lacks.
    target = new_store("target")
    result = call("compare", "--store", target, "out-s1")
    assert result.returncode == 1 and "disk-missing" in result.stdout and base in result.stdout, \
        result
    with Mount(store, "mnt") as m:
        assert files_of("out") == files_of(os.path.join(m.point, "vms", "web"))
        assert files_of("out-s1") == files_of(os.path.join(m.point, "snapshots", "web", "s1"))


def limited_daemon():
    """A program that runs the daemon under test with NOFILE descriptors at most, soft and
    hard (prlimit execs it: the pid Mount knows is the daemon's)."""
    import test_mount
    daemon = shutil.which(test_mount.IMPEXFS)
    with open("limited-impexfs", "w") as f:
        f.write('#!/bin/sh\nexec prlimit --nofile=%d:%d %s "$@"\n' % (NOFILE, NOFILE, daemon))
    os.chmod("limited-impexfs", 0o755)
    return os.path.realpath("limited-impexfs")


def names(top):
    out = []
    for folder, dirs, files in os.walk(top):
        out += [os.path.relpath(os.path.join(folder, n), top) for n in dirs + files]
    return sorted(out)


def test_descriptors_run_out():
    """A reader holding every descriptor the daemon has while the tree is made again
    drops nothing: the VM with the unreadable disk keeps every file."""
    need("fusermount3", "prlimit")
    store = new_store()
    vm = make_vm(store)
    make_vm(store, "other")
    fault = missing_parent(store, vm)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # its own limit is never met
    import test_mount
    daemon, test_mount.IMPEXFS = test_mount.IMPEXFS, limited_daemon()
    try:
        m = Mount(store, "mnt", "-o", "revalidate=1")
    finally:
        test_mount.IMPEXFS = daemon
    held = []
    with m:
        every = names(m.point)
        assert "vms/web" in every and "by-id/" + vm["id"] in every, every
        rel = os.path.join("vms", "web", DISKS, os.path.basename(fault["carried"][0]))
        assert rel in every, every
        files = [os.path.join(m.point, p) for p in every
                 if os.path.isfile(os.path.join(m.point, p)) and
                 not os.path.islink(os.path.join(m.point, p))]
        try:
            # Open files until every one in a row fails: the daemon has no descriptor left.
            errors, misses, i = set(), 0, 0
            while misses < len(files) and len(held) < 5000:
                try:
                    held.append(os.open(files[i % len(files)], os.O_RDONLY))
                    misses = 0
                except OSError as e:
                    errors.add(errno.errorcode.get(e.errno, str(e.errno)))
                    misses += 1
                i += 1
            assert 0 < len(held) < 5000 and errors == {"EMFILE"}, (len(held), errors)
            for _ in range(3):
                probe = os.path.join(store, VMS, "probe")
                open(probe, "w").close()
                os.unlink(probe)
                time.sleep(2.5)
                now = names(m.point)
                assert now == every, (sorted(set(every) - set(now)), sorted(set(now) - set(every)))
        finally:
            for fd in held:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        time.sleep(3)
        assert names(m.point) == every
        assert digest(os.path.join(m.point, rel)) == digest(fault["carried"][0])


def web_damaged_and_other(name):
    """A store @name: web with a damaged disk (damaged_vhd) and other, a VM with a disk.
    Returns the store and web."""
    need("fusermount3")
    store = new_store(name)
    vm = make_vm(store)
    ok("vm", "new", "--store", store, "--disk", "ide:4M", "other")
    damaged_vhd(store, vm)
    return store, vm


def test_a_vm_is_planned_when_first_looked_up():
    """The mount lists the store's VMs from their configurations and plans a VM when one
    of its names is first looked up: listing vms/, raw/, snapshots/ and by-id/ reads none
    of web's disks (its damaged disk is not said), looking at web plans it (said once),
    and every name listed before is there, with what a plan of the whole store shows."""
    store, vm = web_damaged_and_other("lazy")
    with Mount(store, "mnt") as m:
        listed = {top: sorted(os.listdir(os.path.join(m.point, top)))
                  for top in ("vms", "raw", "snapshots", "by-id")}
        assert listed["vms"] == ["other", "web"] and listed["raw"] == ["other", "web"], listed
        assert listed["snapshots"] == ["web"], listed
        assert sorted(listed["by-id"]) == sorted([vm["id"], vm["snapshots"][0]["id"],
                                                  show_id(store, "other")]), listed
        time.sleep(0.5)
        assert not fault_lines(m.stderr()), "listing planned web: %s" % m.stderr()
        # Looked at, web is planned: its damaged disk is said, and its folders hold what
        # they hold when everything is planned (test_unreadable_disks_hide_no_vm).
        assert sorted(os.listdir(os.path.join(m.point, "snapshots", "web"))) == ["latest", "s1"]
        assert m.said("cannot be read"), m.stderr()
        assert {path for path, _ in fault_lines(m.stderr())} == {
            [d["path"] for d in vm["disks"] if d["bus"] == "scsi"][0],
            os.path.join(store, DISKS, "web_2.vhd")}, m.stderr()
        # Each name listed is there; by-id links lead to folders.
        for top, names in listed.items():
            for name in names:
                assert os.path.lexists(os.path.join(m.point, top, name)), (top, name)
        for name in listed["by-id"]:
            assert os.path.isdir(os.path.join(m.point, "by-id", name)), name
        assert os.path.isfile(os.path.join(m.point, "raw", "other", "current", "other.img"))


def test_a_lookup_plans_the_next_vms_ahead():
    """A lookup that plans a VM has the next VMs of the listing planned in the background
    (a walk looks at them next): looking at other alone plans web too, whose damaged disk
    is then said though nothing looked at web; web is then served as planned."""
    store, vm = web_damaged_and_other("ahead")
    with Mount(store, "mnt") as m:
        assert sorted(os.listdir(os.path.join(m.point, "vms"))) == ["other", "web"]
        time.sleep(0.5)
        assert not fault_lines(m.stderr()), "listing planned web: %s" % m.stderr()
        assert os.path.isdir(os.path.join(m.point, "vms", "other"))
        assert m.said("cannot be read"), "web was not planned ahead: %s" % m.stderr()
        assert {path for path, _ in fault_lines(m.stderr())} == {
            [d["path"] for d in vm["disks"] if d["bus"] == "scsi"][0],
            os.path.join(store, DISKS, "web_2.vhd")}, m.stderr()
        assert sorted(os.listdir(os.path.join(m.point, "snapshots", "web"))) == ["latest", "s1"]


def show_id(store, name):
    return as_json(ok("vm", "show", "--json", "--store", store, name))["id"]


if __name__ == "__main__":
    if not os.path.exists("/dev/fuse"):
        print("1..0 # SKIP no /dev/fuse")
        sys.exit(0)
    run_tests(globals())
