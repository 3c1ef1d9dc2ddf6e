"""The export mount's pathmap= as users write it: Windows paths taken as written
(backslashes and all) on the command line, in one pathmap= or several, alone or
among other options in one -o; and from an fstab line (each backslash written
\\134, as fstab decodes octal escapes) mounted by util-linux mount through
mount.fuse3, from a private fstab file (mount -T FILE). The store's VMs keep their
disks outside it, in folders that only the path map reaches: a VM's disk is in
vms/ only if its entry was read as written (the VM is there without it else). Runs
in a mount namespace of its own, where the impexfs under test is in /usr/local/bin,
as `meson install` puts it (impexlib).
"""

import os
import shutil
import subprocess
import time

from impexlib import DISKS, VMS, as_json, digest, mounts_under, new_store, ok, private_mounts, \
    vm_new
from taplib import run, run_tests
from test_mount import IMPEXFS, Mount

# E:\2012 begins with what fstab and libfuse's option parser read as an octal escape (\201).
FOLDERS = (("d", "D:\\Hyper-V", "hyperv"), ("e", "E:\\2012", "e2012"))


def mapped_store():
    """A store with VMs "d" (with saved state) and "e", whose disks were made as
    D:\\Hyper-V\\store\\... and E:\\2012\\store\\... and then moved out of the store into
    folders of their own. Returns the store and, for each VM, its path map entry and
    its disk's digest."""
    root = os.path.realpath(".")
    store = new_store()
    vms = {}
    for vm, windows, folder in FOLDERS:
        made_with = "%s=%s" % (windows, root)
        vm_new(store, "--pathmap", made_with, "--disk", "ide:8M", vm)
        if vm == "d":
            ok("vm", "save", "--store", store, vm)
        shown = as_json(ok("vm", "list", "--json", "--store", store, "--pathmap", made_with))
        disk = [v for v in shown if v["name"] == vm][0]["disks"][0]
        assert disk["written"] == "%s\\store\\%s\\%s.vhd" % (windows, DISKS, vm), disk
        moved = os.path.join(root, folder, "store", DISKS)
        os.makedirs(moved)
        shutil.move(disk["path"], moved)
        vms[vm] = ("%s=%s" % (windows, os.path.join(root, folder)),
                   digest(os.path.join(moved, vm + ".vhd")))
    return store, vms


def assert_shows(point, vms, want, saved_state=True):
    """The mount at @point shows the disks of exactly the VMs @want (the others without
    their disk: a disk found nowhere does not hide its VM), and "d" with its saved state
    or without."""
    shown = sorted(os.listdir(os.path.join(point, "vms")))
    assert shown == sorted(vms), "vms/ holds %s, not %s" % (shown, sorted(vms))
    with_disks = sorted(vm for vm in vms if os.listdir(os.path.join(point, "vms", vm, DISKS)))
    assert with_disks == sorted(want), "disks of %s, not of %s" % (with_disks, sorted(want))
    for vm in want:
        assert digest(os.path.join(point, "vms", vm, DISKS, vm + ".vhd")) == vms[vm][1], vm
    if "d" in vms:
        folders = [n for n in os.listdir(os.path.join(point, "vms", "d", VMS))
                   if os.path.isdir(os.path.join(point, "vms", "d", VMS, n))]
        assert len(folders) == (1 if saved_state else 0), folders


def test_pathmap_on_the_command_line():
    store, vms = mapped_store()
    d, e = vms["d"][0], vms["e"][0]
    # Without a path map neither VM's disk is found: each entry below is what shows them.
    with Mount(store, "mnt") as m:
        assert_shows(m.point, vms, [])
    cases = [
        (["-o", "pathmap=" + d], ["d"], True),
        (["-o", "pathmap=" + e], ["e"], True),
        (["-o", "pathmap=" + d, "-o", "pathmap=" + e], ["d", "e"], True),
        (["-opathmap=%s;%s" % (d, e)], ["d", "e"], True),
        (["-o", "ro,pathmap=%s,copy_vm_runtime_information=false,pathmap=%s,revalidate=3"
          % (d, e)], ["d", "e"], False),
        (["-o", "copy_vm_runtime_information=false,pathmap=" + d], ["d"], False),
    ]
    for options, want, saved_state in cases:
        try:
            with Mount(store, "mnt", *options) as m:
                assert_shows(m.point, vms, want, saved_state)
        except AssertionError as failure:
            raise AssertionError("impexfs %s: %s" % (" ".join(options), failure))
    # An entry libfuse would have unescaped is still refused as written, naming it.
    result = run([IMPEXFS, "-f", "-o", "pathmap=D:\\Hyper-V", store, "mnt"], check=False)
    assert result.returncode == 2, result
    assert "'D:\\Hyper-V'" in result.stderr, result


def fstab_field(text):
    """@text as an fstab field: what fstab decodes (a space, a tab, a backslash) as
    an octal escape."""
    return "".join("\\%03o" % ord(c) if c in " \t\n\\" else c for c in text)


def wait_unmounted(point):
    deadline = time.time() + 30
    while os.path.ismount(point):
        assert time.time() < deadline, "%s still mounted" % point
        time.sleep(0.05)


def test_pathmap_from_fstab():
    store, vms = mapped_store()
    point = os.path.realpath("mnt")
    os.mkdir(point)
    options = "ro,pathmap=%s,copy_vm_runtime_information=false,pathmap=%s" % (
        vms["d"][0], vms["e"][0])
    with open("fstab", "w") as f:
        f.write("# a private fstab\n%s  %s  fuse.impexfs  %s  0  0\n" % (
            fstab_field(store), fstab_field(point), fstab_field(options)))
    assert "D:\\134Hyper-V=" in open("fstab").read()
    assert "E:\\1342012=" in open("fstab").read()
    try:
        run(["mount", "-T", "fstab", point])
        kind = run(["findmnt", "-n", "-o", "FSTYPE", point]).stdout.strip()
        assert kind == "fuse.impexfs", kind
        assert_shows(point, vms, ["d", "e"], saved_state=False)
        run(["fusermount3", "-u", point])
        wait_unmounted(point)
        # A backslash written as it is gets fstab's decoding (\201 is one byte): refused,
        # the entry named, nothing mounted.
        with open("fstab", "w") as f:
            f.write("%s  %s  fuse.impexfs  ro,pathmap=%s  0  0\n" % (
                store, point, vms["e"][0]))
        result = run(["mount", "-T", "fstab", point], check=False, text=False)
        assert result.returncode != 0, result
        assert b"impexfs: path map entry 'E:\x812=" in result.stderr, result
        assert not os.path.ismount(point)
    finally:
        for left in mounts_under("."):
            subprocess.run(["fusermount3", "-u", "-z", left], check=False)


if __name__ == "__main__":
    private_mounts()
    run_tests(globals())
