"""impex import-settings: the settings Hyper-V would offer for an export
folder. What the document must say is worked out here from the folder
itself: its configurations parsed with xml.etree, its files listed.
"""

import os
import re

from impexlib import DISKS, SNAPSHOTS, VMS, new_store, ok, refused
from taplib import run_tests
from test_mount_snapshots import config_root


def parse(text):
    """The document as a dict of key -> value (each key once)."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, "not KEY = VALUE: %r" % line
        key = key.strip()
        assert key not in out, "%s given twice" % key
        out[key] = value.strip()
    return out


def items(doc, kind):
    """resource.N.* or network.N.* as a list of dicts, in N order, numbered from 1 without gaps."""
    found = {}
    for key, value in doc.items():
        m = re.match(r"^%s\.([0-9]+)\.([a-z]+)$" % kind, key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    assert sorted(found) == list(range(1, len(found) + 1)), sorted(found)
    return [found[i] for i in sorted(found)]


def recorded_disks(folder):
    """Every disk path the folder's configurations (the VM's and the snapshots') record."""
    paths = set()
    for sub in (VMS, SNAPSHOTS):
        for name in os.listdir(os.path.join(folder, sub)):
            if name.endswith(".xml"):
                for node in config_root(os.path.join(folder, sub, name)).iter("pathname"):
                    if node.text:
                        paths.add(node.text)
    return paths


def switch_names(folder):
    names = set()
    for name in os.listdir(os.path.join(folder, VMS)):
        if name.endswith(".xml"):
            for node in config_root(os.path.join(folder, VMS, name)).iter("AltSwitchName"):
                if node.text:
                    names.add(node.text)
    return names


def test_defaults_from_an_export_folder():
    ok("demo", "store")
    ok("export", "--store", "store", "blog", "exported")
    target = new_store("target")
    folder = os.path.realpath("exported")
    doc = parse(ok("import-settings", "--store", target, "exported").stdout)
    assert doc["create_copy"] == "true" and doc["generate_new_id"] == "true", doc
    assert doc["name"] == "blog"
    assert doc["source_vm_data_root"] == folder
    assert doc["source_vhd_data_root"] == os.path.join(folder, DISKS)
    assert doc["source_snapshot_data_root"] == folder
    assert doc["target_vm_data_root"] == target
    assert doc["target_vhd_data_root"] == os.path.join(target, DISKS)
    assert doc["target_snapshot_data_root"] == target
    assert doc["security_scope"] == ""
    resources = items(doc, "resource")
    want = recorded_disks(folder)
    assert len(want) == 12, want  # 2 disks, as the VM and its 5 snapshots record them
    assert {r["current"] for r in resources} == want
    for r in resources:
        name = r["current"].split("\\")[-1]
        assert r["source"] == os.path.join(folder, DISKS, name), r
        assert os.path.isfile(r["source"]), r
        assert r["target"] == os.path.join(target, DISKS, name), r
    networks = items(doc, "network")
    assert {n["source"] for n in networks} == switch_names(folder) == {"External", "Internal"}
    assert all(n["target"] == n["source"] for n in networks), networks


def test_defaults_for_one_snapshot_exported_as_a_vm():
    ok("demo", "store")
    ok("export", "--store", "store", "blog/version 2", "exported")
    doc = parse(ok("import-settings", "--store", "store", "exported").stdout)
    resources = items(doc, "resource")
    assert {r["current"] for r in resources} == \
        {"Virtual Hard Disks\\blog.vhd", "Virtual Hard Disks\\blog_2.vhd"}
    assert doc["name"] == "blog"


def test_folders_that_are_not_exports_of_one_vm():
    ok("demo", "store")
    target = new_store("target")
    refused("import-settings", "--store", target, "store", mentions=["3 VM configurations"])
    empty = new_store("empty")
    refused("import-settings", "--store", target, empty, mentions=["0 VM configurations"])
    refused("import-settings", "--store", target, "missing", mentions=["missing"])
    refused("import-settings", "--store", target, status=(2,))


if __name__ == "__main__":
    run_tests(globals())
