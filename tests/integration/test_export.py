"""impex export: a VM's export folder, as Export-VM lays it out, written from
a store made by `impex demo`. The folder is checked without impex's export
code: configurations parsed here, every disk state read back from the copy
and from the store and compared, parents named by vhdiinfo, every disk
opened by qemu-img; and the folder must itself read as a store.
"""

import os
import shutil
import xml.etree.ElementTree as ET

from impexlib import (
    DISKS, SNAPSHOTS, VMS, as_json, digest, need, ok, refused, tree_state)
from taplib import run, run_tests

STORE = None  # made once: the demo takes a few seconds


def demo_store():
    global STORE
    if STORE is None or not os.path.isdir(STORE):
        STORE = os.path.join(os.path.realpath(os.environ.get("TMPDIR", "/tmp")),
                             "impex-export-demo-%d" % os.getpid())
        shutil.rmtree(STORE, ignore_errors=True)
        ok("demo", STORE)
    return STORE


def read_config(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:2] == b"\xff\xfe", path
    return ET.fromstring(raw[2:].decode("utf-16-le"))


def cat(path):
    return ok("vhd", "cat", path, text=False).stdout


def test_blog_export_is_complete_and_equal():
    need("qemu-img", "vhdiinfo")
    store = demo_store()
    ok("export", "--store", store, "blog", "out")
    vm = as_json(ok("vm", "show", "--json", "--store", store, "blog"))
    # Configurations: the VM's and every snapshot's, disks named relative to the folder.
    configs = [os.path.join("out", VMS, vm["id"] + ".xml")]
    configs += [os.path.join("out", SNAPSHOTS, s["id"] + ".xml") for s in vm["snapshots"]]
    for path in configs:
        root = read_config(path)
        paths = [e.text for e in root.iter("pathname") if e.text]
        assert paths, path
        for written in paths:
            assert written.startswith("Virtual Hard Disks\\"), (path, written)
            assert os.path.isfile(os.path.join("out", DISKS, written.split("\\", 1)[1])), written
    # Every file of every chain is there, and reads as the store's file does.
    folder = os.path.join("out", DISKS)
    for name in sorted(os.listdir(folder)):
        mine = os.path.join(folder, name)
        theirs = os.path.join(store, DISKS, name)
        run(["qemu-img", "info", "-f", "vpc", mine])
        assert cat(mine) == cat(theirs), name
        if name.endswith(".avhd"):
            info = run(["vhdiinfo", mine]).stdout
            parent = [l.split(":", 1)[1].strip() for l in info.splitlines()
                      if "Parent filename" in l]
            assert parent and os.path.isfile(os.path.join(folder, parent[0])), (name, info)
    # Saved state, byte for byte.
    state = os.path.join("out", VMS, vm["id"])
    for name in os.listdir(vm["saved_state"]):
        assert digest(os.path.join(state, name)) == digest(
            os.path.join(vm["saved_state"], name)), name
    # The folder reads as a store: the same VM, tree and sound chains.
    copy = as_json(ok("vm", "show", "--json", "--store", "out", "blog"))
    assert copy["id"] == vm["id"] and copy["current_snapshot"] == vm["current_snapshot"]
    assert [(s["name"], s["parent"]) for s in copy["snapshots"]] == \
        [(s["name"], s["parent"]) for s in vm["snapshots"]]
    for disk in copy["disks"] + [d for s in copy["snapshots"] for d in s["disks"]]:
        assert disk["problem"] is None and disk["chain_problem"] is None, disk


def test_export_is_deterministic():
    store = demo_store()
    ok("export", "--store", store, "db", "one")
    ok("export", "--store", store, "db", "two")
    one, two = tree_state("one"), tree_state("two")
    assert one == two, "two exports of one VM differ"


def test_settings():
    store = demo_store()
    ok("export", "--store", store, "--no-runtime-information", "blog", "lean")
    for folder, _, files in os.walk("lean"):
        assert not [f for f in files if f.endswith((".vsv", ".bin"))], (folder, files)
    ok("export", "--store", store, "--no-vm-storage", "blog", "config-only")
    assert os.listdir(os.path.join("config-only", DISKS)) == []
    vm = as_json(ok("vm", "show", "--json", "--store", store, "blog"))
    root = read_config(os.path.join("config-only", VMS, vm["id"] + ".xml"))
    assert [e.text for e in root.iter("pathname") if e.text][0] == vm["disks"][0]["written"]


def test_refusals():
    store = demo_store()
    os.mkdir("taken")
    before = tree_state("taken")
    refused("export", "--store", store, "blog", "taken", mentions=["taken"])
    assert tree_state("taken") == before
    refused("export", "--store", store, "nobody", "x", mentions=["nobody"])
    assert not os.path.exists("x")


def test_disks_of_one_name():
    # Two disks named alike in different folders: the second gets its UUID in its name.
    ok("store", "init", "s")
    ok("vm", "new", "--store", "s", "--disk", "ide:4M", "--disk", "ide:4M", "v")
    vm = as_json(ok("vm", "show", "--json", "--store", "s", "v"))
    second = vm["disks"][1]["path"]
    os.mkdir(os.path.join("s", "other"))
    moved = os.path.join(os.path.realpath("s"), "other", "v.vhd")
    os.rename(second, moved)
    config = os.path.join("s", VMS, vm["id"] + ".xml")
    with open(config, "rb") as f:
        text = f.read()[2:].decode("utf-16-le")
    text = text.replace(second, moved)
    with open(config, "wb") as f:
        f.write(b"\xff\xfe" + text.encode("utf-16-le"))
    ok("export", "--store", "s", "v", "out")
    names = sorted(os.listdir(os.path.join("out", DISKS)))
    assert len(names) == 2 and "v.vhd" in names, names
    other = [n for n in names if n != "v.vhd"][0]
    assert other.startswith("v_") and other.endswith(".vhd"), names
    root = read_config(os.path.join("out", VMS, vm["id"] + ".xml"))
    assert sorted(e.text for e in root.iter("pathname") if e.text) == \
        sorted("Virtual Hard Disks\\" + n for n in names)


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        if STORE:
            shutil.rmtree(STORE, ignore_errors=True)
