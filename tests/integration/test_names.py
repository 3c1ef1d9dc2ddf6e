"""Names as Hyper-V takes them, through the real impex: a VM or snapshot is found by its GUID,
its exact name, or its name in another case when only one has it; an ambiguous name is refused,
naming each candidate with its GUID. And a folder that is not a store is refused by every
command, as not a store, rather than shown as a store without VMs.

Expected GUIDs, names and disk contents come from the store's files, read here (the
configurations decoded with xml.etree, the disks with qemu-img).
"""

import os
import shutil
import subprocess

from impexlib import (
    DISKS, SNAPSHOTS, VMS, as_json, assert_unchanged, call, config_path, configs_by_name,
    need, new_store, ok, read_xml, refused, tree_state, vm_new)
from taplib import run, run_tests

MIB = 1024 * 1024
NOT_A_STORE = "'%s' is not a Hyper-V store: no 'Virtual Machines' folder"


def vm_guid(store, name):
    return configs_by_name(store)[name][0]


def snapshot_guid(store, name):
    return configs_by_name(store, SNAPSHOTS)[name][0]


def current_of(store, vm):
    """The VM's current snapshot, as its configuration records it."""
    return read_xml(config_path(store, vm)).findtext("global_settings/snapshots/current")


def raw_content(disk, out):
    """The raw content of @disk (a whole VHD, no parent) as qemu-img reads it."""
    run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", disk, out])
    with open(out, "rb") as f:
        return f.read()


def write_pattern(store, vm, byte):
    with open("data.bin", "wb") as f:
        f.write(bytes([byte]) * MIB)
    ok("vm", "write", "--store", store, vm, "0", "0", "data.bin")


# ---- VMs ----

def test_vm_names_in_any_case():
    store = new_store()
    vm_new(store, "--disk", "ide:8M", "Blog")
    guid = vm_guid(store, "Blog")
    for name in ("Blog", "blog", "BLOG", "bLoG", guid.lower()):
        shown = as_json(ok("vm", "show", "--json", "--store", store, name))
        assert shown["id"] == guid and shown["name"] == "Blog", (name, shown)
    # Each command that names a VM takes the name in any case.
    ok("vm", "snapshot", "--store", store, "BLOG", "one")
    one = configs_by_name(store, SNAPSHOTS)["one"][1]
    assert one.findtext("settings/global/logical_id") == guid, "snapshot of another VM"
    ok("vm", "save", "--store", store, "blog")
    assert any(n.lower().endswith(".vsv")
               for n in os.listdir(os.path.join(store, VMS, guid))), "vm save BLOG saved nothing"
    ok("vm", "apply", "--store", store, "bLOG", "one")
    assert current_of(store, guid) == snapshot_guid(store, "one")
    write_pattern(store, "BlOg", 0x5A)
    ok("vm", "delete", "--store", store, "BLOG")
    assert not os.path.exists(config_path(store, guid)), "vm delete BLOG left the VM"
    assert configs_by_name(store) == {}


def test_names_fold_beyond_ascii():
    store = new_store()
    vm_new(store, "--disk", "ide:8M", "Ärger")
    guid = vm_guid(store, "Ärger")
    for name in ("ärger", "ÄRGER", "äRgEr"):
        shown = as_json(ok("vm", "show", "--json", "--store", store, name))
        assert shown["id"] == guid, (name, shown)
    ok("vm", "snapshot", "--store", store, "ärger", "Œuvre Σ")
    ok("vm", "snapshot", "--store", store, "ärger", "later")
    ok("vm", "apply", "--store", store, "ÄRGER", "œUVRE σ")
    assert current_of(store, guid) == snapshot_guid(store, "Œuvre Σ")


def test_exact_name_first_then_any_case_else_ambiguous():
    store = new_store()
    vm_new(store, "--disk", "ide:8M", "web")
    vm_new(store, "--disk", "ide:8M", "Web")
    lower, upper = vm_guid(store, "web"), vm_guid(store, "Web")
    assert as_json(ok("vm", "show", "--json", "--store", store, "web"))["id"] == lower
    assert as_json(ok("vm", "show", "--json", "--store", store, "Web"))["id"] == upper
    before = tree_state(store)
    for command in (("vm", "show"), ("vm", "save"), ("vm", "delete")):
        result = refused(*command, "--store", store, "WEB",
                         mentions=["'WEB' matches 2 VMs", "'web' (%s)" % lower,
                                   "'Web' (%s)" % upper, "give the exact name or the GUID"])
        assert result.stdout == "", result
    refused("vm", "snapshot", "--store", store, "wEB", "s", mentions=[lower, upper])
    refused("export", "--store", store, "WEB", "dest", mentions=[lower, upper])
    assert not os.path.exists("dest")
    assert_unchanged(before, tree_state(store), "refused ambiguous names")
    # Snapshots alike: "alpha" and "ALPHA".
    ok("vm", "snapshot", "--store", store, "web", "alpha")
    ok("vm", "snapshot", "--store", store, "web", "ALPHA")
    low, high = snapshot_guid(store, "alpha"), snapshot_guid(store, "ALPHA")
    before = tree_state(store)
    refused("vm", "apply", "--store", store, "web", "Alpha",
            mentions=["'Alpha' matches 2 snapshots", "'alpha' (%s)" % low,
                      "'ALPHA' (%s)" % high])
    refused("export", "--store", store, "web", "Alpha", "dest", mentions=[low, high])
    refused("export", "--store", store, "web/Alpha", "dest", mentions=[low, high])
    assert_unchanged(before, tree_state(store), "refused ambiguous snapshot names")
    ok("vm", "apply", "--store", store, "web", "alpha")
    assert current_of(store, lower) == low
    ok("vm", "apply", "--store", store, "web", "ALPHA")
    assert current_of(store, lower) == high


def test_one_name_on_two_vms_names_both_guids():
    store = new_store()
    first = vm_new(store, "--disk", "ide:8M", "twin")
    second = vm_new(store, "--disk", "ide:8M", "other")
    # Hyper-V lets two VMs have one name: give the second the first's.
    path = config_path(store, second)
    with open(path, "rb") as f:
        text = f.read()[2:].decode("utf-16-le")
    text = text.replace('<name type="string">other</name>', '<name type="string">twin</name>')
    with open(path, "wb") as f:
        f.write(b"\xff\xfe" + text.encode("utf-16-le"))
    assert read_xml(path).findtext("properties/name") == "twin"
    refused("vm", "show", "--store", store, "twin",
            mentions=["2 VMs are named 'twin'", first, second, "give the GUID"])
    refused("vm", "show", "--store", store, "TWIN",
            mentions=["'TWIN' matches 2 VMs", first, second, "give the exact name or the GUID"])
    assert as_json(ok("vm", "show", "--json", "--store", store, second.lower()))["id"] == second


def test_snapshot_names_in_any_case_for_apply_and_export():
    need("qemu-img")
    store = new_store()
    vm_new(store, "--disk", "ide:8M", "blog")
    guid = vm_guid(store, "blog")
    write_pattern(store, "blog", 0x11)
    ok("vm", "snapshot", "--store", store, "blog", "Version 1")
    write_pattern(store, "blog", 0x22)
    ok("vm", "snapshot", "--store", store, "blog", "version 2")
    write_pattern(store, "blog", 0x33)
    ok("vm", "apply", "--store", store, "blog", "VERSION 1")
    assert current_of(store, guid) == snapshot_guid(store, "Version 1")
    # Export "version 2" by a name in another case, both ways of naming it: its disk holds what
    # was written before it was taken.
    for args, dest in ((["BLOG", "VERSION 2"], "v2"), (["Blog/Version 2"], "v2b")):
        ok("export", "--store", store, *args, dest)
        disks = os.listdir(os.path.join(dest, DISKS))
        assert len(disks) == 1, disks
        content = raw_content(os.path.join(dest, DISKS, disks[0]), dest + ".raw")
        assert content[:MIB] == bytes([0x22]) * MIB, "export of %r: not version 2's disk" % args
        assert len(os.listdir(os.path.join(dest, VMS))) >= 1
    # Two operands: the VM itself.
    ok("export", "--store", store, "BLOG", "whole")
    assert os.path.isfile(config_path("whole", guid)), os.listdir(os.path.join("whole", VMS))


def test_unknown_names_are_refused_by_name():
    store = new_store()
    vm_new(store, "--disk", "ide:8M", "blog")
    ok("vm", "snapshot", "--store", store, "blog", "one")
    before = tree_state(store)
    refused("vm", "show", "--store", store, "blug", mentions=["no VM named 'blug'"])
    refused("vm", "apply", "--store", store, "blog", "two",
            mentions=["VM 'blog' has no snapshot 'two'"])
    refused("export", "--store", store, "blog", "two", "dest", mentions=["no snapshot 'two'"])
    refused("export", "--store", store, "blug/one", "dest", mentions=["no VM 'blug/one'"])
    assert_unchanged(before, tree_state(store), "refused unknown names")


# ---- folders that are not stores ----

def assert_not_a_store(folder, *args, shown=None, status=(1,)):
    """impex ARGS on @folder says it is not a store and changes nothing in it."""
    before = tree_state(folder)
    result = refused(*args, status=status)
    want = "impex: " + NOT_A_STORE % (shown or os.path.realpath(folder)) + "\n"
    assert result.stderr == want, "impex %s: %r, want %r" % (" ".join(args), result.stderr, want)
    assert result.stdout == "", result
    assert_unchanged(before, tree_state(folder), "impex %s" % " ".join(args))


def test_a_folder_that_is_not_a_store_is_refused():
    os.mkdir("empty")
    os.makedirs("snaps-only/Snapshots")
    os.makedirs("disks-only/Virtual Hard Disks")
    os.mkdir("exported")
    for folder in ("empty", "snaps-only", "disks-only"):
        assert_not_a_store(folder, "vm", "list", "--store", folder)
        assert_not_a_store(folder, "vm", "list", "--json", "--store", folder)
    assert_not_a_store("/etc", "vm", "list", "--store", "/etc", shown="/etc")
    assert_not_a_store("/etc", "vm", "show", "--store", "/etc", "passwd", shown="/etc")
    # The store may come from IMPEX_STORE.
    before = tree_state("empty")
    result = call("vm", "list", env={"IMPEX_STORE": os.path.abspath("empty")})
    assert result.returncode == 1 and result.stderr == \
        "impex: " + NOT_A_STORE % os.path.realpath("empty") + "\n", result
    assert_unchanged(before, tree_state("empty"), "vm list with IMPEX_STORE")
    # Every command that takes a store.
    source = new_store("source")
    vm_new(source, "--disk", "ide:8M", "blog")
    ok("export", "--store", source, "blog", "exported/blog")
    for command, rest in ((("vm", "show"), ("blog",)),
                          (("vm", "new"), ("--disk", "ide:8M", "blog")),
                          (("vm", "snapshot"), ("blog", "one")),
                          (("vm", "apply"), ("blog", "one")),
                          (("vm", "save"), ("blog",)), (("vm", "delete"), ("blog",)),
                          (("vm", "write"), ("blog", "0", "0", "/dev/null")),
                          (("switch", "add"), ("External",)), (("switch", "list"), ()),
                          (("export",), ("blog", "out")),
                          (("import-settings",), ("exported/blog",)),
                          (("compare",), ("exported/blog",)), (("import",), ("exported/blog",))):
        assert_not_a_store("empty", *command, "--store", "empty", *rest)
    assert not os.path.exists("out")
    # With several roots, the first must be a store; the others are data roots (an import's
    # target_snapshot_data_root may hold only Snapshots/).
    assert_not_a_store("empty", "vm", "list", "--store", "empty", "--store", source)
    ok("vm", "list", "--store", source, "--store", "empty")
    # "Virtual Machines" must be a folder.
    os.mkdir("file")
    with open(os.path.join("file", VMS), "w") as f:
        f.write("not a folder\n")
    result = refused("vm", "list", "--store", "file")
    assert result.stderr == "impex: '%s' is not a Hyper-V store: its 'Virtual Machines' is " \
        "not a folder\n" % os.path.realpath("file"), result
    # An export folder is laid out as a store, and read as one.
    listed = as_json(ok("vm", "list", "--json", "--store", "exported/blog"))
    assert [vm["name"] for vm in listed] == ["blog"], listed


def test_store_init_makes_a_store():
    os.mkdir("empty")
    refused("vm", "list", "--store", "empty", mentions=["not a Hyper-V store"])
    ok("store", "init", "empty")
    assert as_json(ok("vm", "list", "--json", "--store", "empty")) == []
    text = ok("vm", "list", "--store", "empty").stdout
    assert text.splitlines()[0].split() == ["GUID", "NAME", "DISKS", "SNAPSHOTS", "STATE"], text
    assert len(text.splitlines()) == 1, text
    # A store init over a store keeps it a store, VMs and all.
    guid = vm_new("empty", "--disk", "ide:8M", "blog")
    ok("store", "init", "empty")
    assert [vm["id"] for vm in as_json(ok("vm", "list", "--json", "--store", "empty"))] == [guid]


if __name__ == "__main__":
    run_tests(globals())
