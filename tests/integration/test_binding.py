"""Which file a VM's disk is: a copy imported to a folder outside the store
(target_vhd_data_root) is read from that folder, recorded in the store
(docs/FORMAT.md, "The store's record of its folders"), and a disk found by
its file name alone never binds another VM's file or a differencing disk
whose chain does not match. Real commands on real stores and mounts; what
each disk holds is checked with qemu-img, against bytes this test wrote.
"""

import os
import shutil
import stat
import sys
import time

import hyperv2012
from impexlib import DISKS, VMS, as_json, call, digest, need, new_store, ok, refused, vm_new
from taplib import run, run_tests
from test_import_mount import status, wait_state
from test_mount import Mount

JOURNALS = ".impex-journals"
RECORD = os.path.join(JOURNALS, "folders")
MIB = 1 << 20
A_BYTES = bytes(range(256)) * 16          # what VM A's disk holds at 0 (4 KiB)
B_BYTES = b"the copy's own sector " * 186 + b"\0" * 4  # 4096 bytes for the copy


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def raw_head(vhd, length=4096):
    """The first @length bytes of the disk @vhd, as qemu-img reads it."""
    run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", vhd, "head.raw"])
    with open("head.raw", "rb") as f:
        data = f.read(length)
    os.unlink("head.raw")
    return data


def store_with_a():
    """A store with VM "A" made by impex (its disk named by its exact path), A_BYTES at 0."""
    store = new_store("store")
    guid = vm_new(store, "--disk", "ide:8M", "A")
    write("a.bin", A_BYTES)
    ok("vm", "write", "--store", store, guid, "0", "0", "a.bin")
    return store, guid


def store_with_real_shaped_a():
    """A store whose VM "A" has a configuration shaped like Hyper-V 2012 R2's: UTF-16, its disk
    named by a Windows path (C:\\Users\\vagrant\\box\\...\\box.vhd) that only the fallback by
    file name resolves, to the store's Virtual Hard Disks/box.vhd."""
    store = new_store("store")
    disk = os.path.join(store, DISKS, "box.vhd")
    ok("vhd", "create", disk, "8M")
    write("a.bin", A_BYTES)
    ok("vhd", "write", disk, "0", "a.bin")
    guid = hyperv2012.guid()
    text = hyperv2012.vm_config(guid, "A", disks=[{
        "bus": "ide", "path": hyperv2012.windows_path("Virtual Hard Disks", "box.vhd")}],
        adapters=[])
    write(os.path.join(store, VMS, guid + ".xml"), hyperv2012.encode(text, "utf-16"))
    shown = as_json(ok("vm", "show", "--json", "--store", store, guid))
    assert shown["disks"][0]["path"] == disk and shown["disks"][0]["found"] != "as written", \
        shown["disks"]
    return store, guid


def disk_of(store, guid, index=0):
    """Disk @index of VM @guid as vm show sees it (which exits 1 when a disk has a problem)."""
    return as_json(call("vm", "show", "--json", "--store", store, guid))["disks"][index]


def check_record(store, folders):
    """The store's record lists exactly @folders (real paths), in the documented form, as a
    file of root alone (0600) in the daemon's folder (0700)."""
    folder, record = os.path.join(store, JOURNALS), os.path.join(store, RECORD)
    st = os.lstat(folder)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    assert st.st_uid == os.geteuid()
    st = os.lstat(record)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid() and st.st_nlink == 1
    with open(record, "rb") as f:
        text = f.read()
    want = "impex-folders 1\n" + "".join(os.path.realpath(p) + "\n" for p in folders)
    assert text == want.encode(), text


def check_own_disks(store, a_guid, a_disk, b_guid, folder):
    """VM @b_guid (named "B") was imported to @folder: its disk is read there, a write to it
    changes its own file only, and the export mount serves each VM's own data."""
    b = disk_of(store, b_guid)
    assert b["problem"] is None and b["found"] == "as written", b
    assert os.path.dirname(b["path"]) == os.path.realpath(folder), b
    shutil.copyfile(a_disk, "a-before.vhd")
    before = digest(a_disk)
    write("b.bin", B_BYTES)
    ok("vm", "write", "--store", store, b_guid, "0", "0", "b.bin")
    assert digest(a_disk) == before, "writing B's disk changed A's"
    run(["qemu-img", "compare", "-f", "vpc", "-F", "vpc", a_disk, "a-before.vhd"])
    assert raw_head(b["path"]) == B_BYTES
    assert raw_head(a_disk) == A_BYTES
    with Mount(store, "out") as m:
        for name, want in (("A", A_BYTES), ("B", B_BYTES)):
            current = os.path.join(m.point, "raw", name, "current")
            images = os.listdir(current)
            assert len(images) == 1, images
            with open(os.path.join(current, images[0]), "rb") as f:
                assert f.read(len(want)) == want, name
        # The export folder of B holds B's disk.
        exported = os.path.join(m.point, "vms", "B", DISKS)
        (name,) = os.listdir(exported)
        assert raw_head(os.path.join(exported, name)) == B_BYTES


def import_cli(store, folder, target, name="B"):
    write("b.settings", "name = %s\ntarget_vhd_data_root = %s\n" % (name, target))
    return ok("import", "--store", store, "--settings", "b.settings", folder).stdout.split()[0]


def import_mount(store, folder, target, name="B"):
    need("fusermount3")
    shutil.copytree(folder, "copy")
    write(os.path.join("copy", "impex-import.settings"), "name = %s\n" % name)
    with Mount(store, "in", "-o", "import,target_vhd_data_root=" + target) as m:
        run(["cp", "-r", "copy", os.path.join(m.point, "b")])
        guid = wait_state(m.point, "b")["vm"]["id"]
    shutil.rmtree("copy")
    return guid


def test_impex_import_to_a_folder_outside_the_store():
    need("qemu-img", "fusermount3")
    store, a = store_with_a()
    a_disk = disk_of(store, a)["path"]
    ok("export", "--store", store, a, "exp")
    os.mkdir("outside")
    b = import_cli(store, "exp", os.path.realpath("outside"))
    check_record(store, ["outside"])
    # vm show lists the copy's disk in the folder; vm list shows no problem.
    assert all(vm["disks"][0]["problem"] is None
               for vm in as_json(ok("vm", "list", "--json", "--store", store)))
    check_own_disks(store, a, a_disk, b, "outside")
    # The record shares the journals' folder: the next import's recovery leaves it be.
    again = ok("import", "--store", store, "exp")
    assert again.stderr == "", again.stderr
    check_record(store, ["outside"])


def test_the_import_mount_to_a_folder_outside_the_store():
    need("qemu-img", "fusermount3")
    store, a = store_with_a()
    a_disk = disk_of(store, a)["path"]
    ok("export", "--store", store, a, "exp")
    os.mkdir("outside")
    b = import_mount(store, "exp", os.path.realpath("outside"))
    check_record(store, ["outside"])
    check_own_disks(store, a, a_disk, b, "outside")


def test_an_export_mount_running_meanwhile_reads_the_new_folder():
    """The export mount was started before the import recorded its folder: it reads the record
    again when it lists the store, and serves the copy's own disk from there."""
    need("qemu-img", "fusermount3")
    store, a = store_with_a()
    ok("export", "--store", store, a, "exp")
    # The copy's own bytes, written before it is imported (the mount serves files that do not
    # change under it).
    write("b.bin", B_BYTES)
    ok("vhd", "write", os.path.join("exp", DISKS, "A.vhd"), "0", "b.bin")
    os.mkdir("outside")
    with Mount(store, "out", "-o", "revalidate=1") as m:
        assert os.listdir(os.path.join(m.point, "vms")) == ["A"]
        import_mount(store, "exp", os.path.realpath("outside"))
        deadline = time.time() + 30
        while "B" not in os.listdir(os.path.join(m.point, "vms")):
            assert time.time() < deadline, os.listdir(os.path.join(m.point, "vms"))
            time.sleep(0.2)
        current = os.path.join(m.point, "raw", "B", "current")
        (image,) = os.listdir(current)
        with open(os.path.join(current, image), "rb") as f:
            assert f.read(len(B_BYTES)) == B_BYTES
        (name,) = os.listdir(os.path.join(m.point, "vms", "B", DISKS))
        assert raw_head(os.path.join(m.point, "vms", "B", DISKS, name)) == B_BYTES
        current = os.path.join(m.point, "raw", "A", "current")
        (image,) = os.listdir(current)
        with open(os.path.join(current, image), "rb") as f:
            assert f.read(len(A_BYTES)) == A_BYTES


def test_a_real_shaped_vm_copied_to_a_folder_outside_the_store():
    """A's configuration is Hyper-V's own shape; its copies, through impex import and the
    import mount, are each bound to their own file in their folder."""
    need("qemu-img", "fusermount3")
    store, a = store_with_real_shaped_a()
    a_disk = disk_of(store, a)["path"]
    ok("export", "--store", store, a, "exp")
    os.mkdir("one")
    os.mkdir("two")
    b = import_cli(store, "exp", os.path.realpath("one"))
    check_own_disks(store, a, a_disk, b, "one")
    c = import_mount(store, "exp", os.path.realpath("two"), name="C")
    check_record(store, ["one", "two"])
    c_disk = disk_of(store, c)
    assert os.path.dirname(c_disk["path"]) == os.path.realpath("two"), c_disk
    before = {p: digest(p) for p in (a_disk, disk_of(store, b)["path"])}
    write("c.bin", b"C" * 4096)
    ok("vm", "write", "--store", store, c, "0", "0", "c.bin")
    assert {p: digest(p) for p in before} == before, "writing C's disk changed another's"
    assert raw_head(c_disk["path"]) == b"C" * 4096
    assert raw_head(a_disk) == A_BYTES


def test_only_the_administrator_adds_to_the_record():
    """The mount's own target root is recorded; an import's document can neither send disks
    elsewhere nor add its folder to the record; a record inside an export folder is no
    store's."""
    need("fusermount3")
    store, a = store_with_a()
    ok("export", "--store", store, a, "exp")
    outside, other = os.path.realpath("outside"), os.path.realpath("other")
    os.mkdir(outside)
    os.mkdir(other)
    os.mkdir(os.path.join(outside, "sub"))
    with Mount(store, "in", "-o", "import,target_vhd_data_root=" + outside) as m:
        for name, target in (("elsewhere", other), ("under", os.path.join(outside, "sub"))):
            shutil.copytree("exp", name)
            write(os.path.join(name, "impex-import.settings"),
                  "name = %s\ntarget_vhd_data_root = %s\n" % (name, target))
            run(["cp", "-r", name, os.path.join(m.point, name)])
        imp = wait_state(m.point, "elsewhere", ("waiting",))
        assert [e["id"] for e in imp["errors"]] == ["settings-invalid"], imp
        under = wait_state(m.point, "under")["vm"]["id"]
        assert [i["state"] for i in status(m.point)["imports"]] == ["waiting", "registered"]
    check_record(store, [outside])
    assert os.listdir(other) == []
    # The document's folder lies under the mount's: read as the store's through it.
    disk = disk_of(store, under)
    assert disk["problem"] is None and disk["path"].startswith(outside + "/sub/"), disk
    # An export folder that brings a record of its own: never read as the store's.
    secret = os.path.realpath("secret")
    os.mkdir(secret)
    ok("vhd", "create", os.path.join(secret, "x.vhd"), "1M")
    planted = "planted"
    guid = hyperv2012.guid()
    os.makedirs(os.path.join(planted, VMS))
    os.makedirs(os.path.join(planted, DISKS))
    write(os.path.join(planted, VMS, guid + ".xml"), hyperv2012.encode(hyperv2012.vm_config(
        guid, "planted", disks=[{"path": os.path.join(secret, "x.vhd")}], adapters=[])))
    os.mkdir(os.path.join(planted, JOURNALS), 0o700)
    write(os.path.join(planted, RECORD), "impex-folders 1\n%s\n" % secret)
    os.chmod(os.path.join(planted, RECORD), 0o600)
    doc = ok("import-settings", "--store", store, planted).stdout
    assert "resource.1.source = \n" in doc or "resource.1.source =\n" in doc, doc
    report = call("compare", "--store", store, planted)
    assert report.returncode == 1 and "disk-missing" in report.stdout, report


def test_a_record_that_others_could_write_is_not_used():
    store, a = store_with_a()
    ok("export", "--store", store, a, "exp")
    os.mkdir("outside")
    b = import_cli(store, "exp", os.path.realpath("outside"))
    record = os.path.join(store, RECORD)
    for change, undo in ((lambda: os.chmod(record, 0o644), lambda: os.chmod(record, 0o600)),
                         (lambda: os.chmod(os.path.dirname(record), 0o755),
                          lambda: os.chmod(os.path.dirname(record), 0o700))):
        change()
        result = call("vm", "show", "--json", "--store", store, b)
        assert "warning" in result.stderr and JOURNALS in result.stderr, result.stderr
        disk = as_json(result)["disks"][0]
        # Not found where it is (outside the store now), and never bound to A's file.
        assert disk["path"] is None and "not used" in disk["problem"], disk
        undo()
        assert disk_of(store, b)["problem"] is None
    # impex import refuses to add to a record it cannot trust.
    os.chmod(record, 0o644)
    os.mkdir("more")
    write("more.settings", "name = M\ntarget_vhd_data_root = %s\n" % os.path.realpath("more"))
    refused("import", "--store", store, "--settings", "more.settings", "exp",
            mentions=[RECORD, "0644"])
    assert os.listdir("more") == []


def test_a_name_alone_never_binds_another_vms_disk():
    """B's configuration (Hyper-V's shape) names a disk by a Windows path that no path map
    covers; the file of that name in the store is A's, whose configuration names it by its
    path: B's disk is a problem, and nothing of B reaches A's file."""
    need("fusermount3")
    store, a = store_with_a()
    a_disk = disk_of(store, a)["path"]
    b = hyperv2012.guid()
    written = hyperv2012.windows_path("Virtual Hard Disks", os.path.basename(a_disk))
    write(os.path.join(store, VMS, b + ".xml"), hyperv2012.encode(hyperv2012.vm_config(
        b, "B", disks=[{"path": written}], adapters=[])))
    disk = disk_of(store, b)
    assert disk["path"] is None, disk
    for text in ("not used", "found by its name alone", a_disk, "VM 'A'", a):
        assert text in disk["problem"], disk["problem"]
    listed = {vm["name"]: vm for vm in as_json(ok("vm", "list", "--json", "--store", store))}
    assert listed["B"]["disks"][0]["problem"] == disk["problem"]
    assert listed["A"]["disks"][0]["problem"] is None
    assert [line.endswith("problem (impex vm show)") for line in
            ok("vm", "list", "--store", store).stdout.splitlines() if line.startswith(b)] == [True]
    before = digest(a_disk)
    write("b.bin", B_BYTES)
    refused("vm", "write", "--store", store, b, "0", "0", "b.bin",
            mentions=[written, "VM 'A'", a])
    assert digest(a_disk) == before
    with Mount(store, "out") as m:
        assert os.listdir(os.path.join(m.point, "vms")) == ["A"]
        assert not os.path.exists(os.path.join(m.point, "raw", "B", "current"))
        current = os.path.join(m.point, "raw", "A", "current")
        (image,) = os.listdir(current)
        with open(os.path.join(current, image), "rb") as f:
            assert f.read(len(A_BYTES)) == A_BYTES


def test_a_differencing_disk_whose_chain_does_not_match():
    """C's configuration names c.avhd by a Windows path that only its name resolves; the file
    of that name is a differencing disk whose parent is not the one it names (base.vhd was
    made again, a new UUID): a problem, not a disk to write."""
    store = new_store("store")
    disks = os.path.join(store, DISKS)
    base, child = os.path.join(disks, "base.vhd"), os.path.join(disks, "c.avhd")
    ok("vhd", "create", base, "8M")
    ok("vhd", "snapshot", base, child)
    os.rename(base, "base-original.vhd")
    ok("vhd", "create", base, "8M")
    c = hyperv2012.guid()
    written = hyperv2012.windows_path("Virtual Hard Disks", "c.avhd")
    write(os.path.join(store, VMS, c + ".xml"), hyperv2012.encode(hyperv2012.vm_config(
        c, "C", disks=[{"path": written}], adapters=[])))
    disk = disk_of(store, c)
    assert disk["path"] is None, disk
    for text in ("not used", child, "differencing disk whose chain does not match", "UUID"):
        assert text.lower() in disk["problem"].lower(), disk["problem"]
    before = digest(child)
    write("c.bin", B_BYTES)
    refused("vm", "write", "--store", store, c, "0", "0", "c.bin",
            mentions=[written, "chain does not match"])
    assert digest(child) == before
    # With its own parent back, the same file is C's disk.
    os.rename("base-original.vhd", base)
    disk = disk_of(store, c)
    assert disk["problem"] is None and disk["path"] == child, disk


if __name__ == "__main__":
    if not os.path.exists("/dev/fuse"):
        print("1..0 # SKIP no /dev/fuse")
        sys.exit(0)
    run_tests(globals())
