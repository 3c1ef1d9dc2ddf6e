"""Configurations found by their content, whatever their file name: Vagrant's
Hyper-V boxes ship `Virtual Machines/vm.XML` (hyperv2012.py writes folders of
that shape, in UTF-16LE+BOM+CRLF and in UTF-8). Stores and export folders
alike: `vm list`, import-settings, compare, `impex import`, the import mount
and the export mount; files that look like configurations and cannot be read
are reported, naming the file; writers' temporary names are not VMs.
"""

import os
import shutil
import subprocess

import hyperv2012
import vhdcraft
from impexlib import DISKS, SNAPSHOTS, VMS, as_json, need, new_store, ok, refused
from taplib import run_tests
from test_import_mount import wait_state
from test_mount import Mount

DATA = b"\x5a" * 4096 + bytes(range(256)) * 16


def box(top, encoding="utf-16", config_name="vm.XML", switch="External"):
    """A Vagrant-shaped export folder with one disk holding DATA at 0; its VM's GUID."""
    disk = bytes(vhdcraft.dynamic(8 << 20, writes=[(0, DATA)]).data)
    vm_id, _ = hyperv2012.vagrant_box(top, "box", encoding=encoding, disk=disk,
                                      adapters=[{"switch_id": hyperv2012.guid(),
                                                 "switch_name": switch}],
                                      config_name=config_name)
    return vm_id


def target_store(name="target"):
    store = new_store(name)
    ok("switch", "add", "--store", store, "External")
    return store


def listed(store):
    return as_json(ok("vm", "list", "--json", "--store", store))


def test_a_box_is_a_vm_whatever_its_file_name():
    for encoding in ("utf-16", "utf-8"):
        for name in ("vm.XML", "Box.Xml", "settings.xml"):
            top = "box-%s-%s" % (encoding, name)
            vm_id = box(top, encoding, name)
            vms = listed(top)
            assert [(v["id"], v["name"]) for v in vms] == [(vm_id, "box")], vms
            shown = as_json(ok("vm", "show", "--json", "--store", top, vm_id))
            assert shown["config"].endswith("/" + name), shown
            assert not shown.get("problem"), shown
            # The import settings name it, compare says it would import.
            settings = ok("import-settings", "--store", target_store("t-" + top), top).stdout
            assert ("vm = %s" % vm_id) in settings, settings
            shutil.rmtree("t-" + top)


def test_impex_import_of_a_box():
    for encoding in ("utf-16", "utf-8"):
        top = "box-" + encoding
        vm_id = box(top, encoding)
        target = target_store("target-" + encoding)
        ok("compare", "--store", target, top)
        ok("import", "--store", target, top)
        vms = listed(target)
        assert len(vms) == 1 and vms[0]["name"] == "box" and vms[0]["id"] != vm_id, vms
        # Registered on the final name: <GUID>.xml.
        assert os.listdir(os.path.join(target, VMS)) == [vms[0]["id"] + ".xml"], \
            os.listdir(os.path.join(target, VMS))
        raw = ok("vm", "show", "--json", "--store", target, vms[0]["id"])
        disk = as_json(raw)["disks"][0]["chain"][-1]
        got = subprocess.run(["qemu-img", "dd", "-f", "vpc", "-O", "raw", "if=" + disk,
                              "of=got.raw", "bs=%d" % len(DATA), "count=1"],
                             capture_output=True, text=True)
        assert got.returncode == 0, got.stderr
        with open("got.raw", "rb") as f:
            assert f.read() == DATA


def test_a_store_whose_vm_is_vm_xml():
    """A store holding a box's folder as it is: listed, exported by the export mount, its
    empty Snapshots/ dated by the configuration (rsync -a keeps that date)."""
    need("fusermount3", "rsync")
    store = "boxstore"
    vm_id = box(store)
    assert [v["id"] for v in listed(store)] == [vm_id]
    ok("export", "--store", store, "box", "exported")
    assert os.listdir(os.path.join("exported", VMS)) == [vm_id + ".xml"]
    # The configuration dated long ago: the empty Snapshots/ of its export takes that time.
    when = 1425168000
    os.utime(os.path.join(store, VMS, "vm.XML"), (when, when))
    with Mount(store, "emnt") as m:
        folder = os.path.join(m.point, "vms", "box")
        assert os.listdir(os.path.join(folder, VMS)) == [vm_id + ".xml"], os.listdir(folder)
        assert os.listdir(os.path.join(folder, SNAPSHOTS)) == []
        assert os.stat(os.path.join(folder, SNAPSHOTS)).st_mtime == when
        subprocess.run(["rsync", "-a", folder + "/", "backup/"], check=True)
        assert os.stat(os.path.join("backup", SNAPSHOTS)).st_mtime == when
        with open(os.path.join(m.point, "by-id", vm_id, VMS, vm_id + ".xml"), "rb") as f:
            assert b"<configuration>" in f.read().decode("utf-16").encode()


def test_a_box_through_the_import_mount():
    need("fusermount3")
    for encoding in ("utf-16", "utf-8"):
        top = "mbox-" + encoding
        box(top, encoding)
        target = target_store("mtarget-" + encoding)
        with Mount(target, "imnt", "-o", "import") as m:
            subprocess.run(["cp", "-r", top, os.path.join(m.point, "b")], check=True)
            imp = wait_state(m.point, "b")
            assert imp["state"] == "registered", imp
        vms = listed(target)
        assert [v["name"] for v in vms] == ["box"], vms


def test_unreadable_files_that_look_like_configurations():
    # Damaged: the file and the fault are named, by vm list and by the import.
    top = "damaged"
    box(top)
    path = os.path.join(top, VMS, "vm.XML")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    vms = listed(top)
    assert len(vms) == 1 and vms[0]["name"] == "vm.XML" and vms[0]["problem"], vms
    assert "vm.XML" in vms[0]["problem"], vms
    target = target_store()
    refused("import-settings", "--store", target, top, mentions=["vm.XML", "cannot be read"])
    refused("import", "--store", target, top, mentions=["vm.XML"])
    # A snapshot's configuration in Virtual Machines is not a VM.
    top = "snapshot-as-vm"
    box(top)
    path = os.path.join(top, VMS, "vm.XML")
    text = open(path, "rb").read().decode("utf-16")
    with open(path, "wb") as f:
        f.write(b"\xff\xfe" + text.replace(">Virtual Machines<", ">Snapshots<")
                .encode("utf-16-le"))
    vms = listed(top)
    assert vms and "type_id" in vms[0]["problem"], vms
    # Two files describing one VM: which one is it? Reported, not guessed.
    top = "twice"
    vm_id = box(top)
    shutil.copy(os.path.join(top, VMS, "vm.XML"), os.path.join(top, VMS, vm_id + ".xml"))
    vms = listed(top)
    assert len(vms) == 1 and "both describe" in (vms[0]["problem"] or ""), vms
    # An empty folder: no advice to pick one of none.
    os.makedirs(os.path.join("empty", VMS))
    result = refused("import-settings", "--store", target, "empty",
                     mentions=["no VM configuration"])
    assert "vm = GUID" not in result.stderr, result.stderr


def test_temporary_names_are_not_vms():
    """What writers leave while they write (rsync's hidden names, a temporary file beside
    the final name) is not a VM, even with a whole configuration inside."""
    top = "temporaries"
    vm_id = box(top)
    src = os.path.join(top, VMS, "vm.XML")
    for name in (".vm.XML.Ab12Cd", ".%s.xml.tmp-0000abcd" % vm_id, "%s.xml.tmp-Xy12Zq" % vm_id,
                 "vm.XML~"):
        shutil.copy(src, os.path.join(top, VMS, name))
    assert [v["id"] for v in listed(top)] == [vm_id]
    for sub in (SNAPSHOTS, DISKS):
        assert os.path.isdir(os.path.join(top, sub))


if __name__ == "__main__":
    run_tests(globals())
