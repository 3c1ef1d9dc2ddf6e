"""Snapshots of VMs in a store: `impex vm snapshot|apply|write|save|delete`
and `impex demo`.

What each state of each disk should hold is computed here, without impex: a
model (one bytearray per disk) takes the same writes as `impex vm write`,
and is copied whenever a snapshot is taken. The disks are then read back with
`impex vhd cat` (whole chains) and, for the base disks, with `qemu-img`.
Configurations are decoded and parsed here (UTF-16LE with a byte-order mark,
xml.etree). A refused command must leave every file of the store as it was.
"""

import json
import os
import random
import re
import uuid
import xml.etree.ElementTree as ET

from impexlib import (
    DISKS, GUID, GUID_RE, SNAPSHOTS, VMS, as_json, assert_unchanged, call, config_path,
    digest, label, need, new_store, ok, refused, tree_state, value, vm_new)
from taplib import Skip, have, run, run_tests

MIB = 1024 * 1024
SECTOR = 512
BLOCK = 2 * MIB     # the block size of the dynamic disks impex makes


SUFFIX_RE = re.compile("_%s$" % GUID)

SIZES = [16 * MIB, 8 * MIB]     # the disks of the VMs below: ide:16M, scsi:8M


# ---- running impex ----


# ---- the store on disk ----


def changed_paths(before, after):
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def snapshot(store, vm, name):
    """impex vm snapshot: the snapshot's GUID, from its output "GUID  NAME"."""
    result = ok("vm", "snapshot", "--store", store, vm, name)
    guid, _, printed = result.stdout.rstrip("\n").partition("  ")
    assert GUID_RE.match(guid) and printed == name, "vm snapshot printed %r" % result.stdout
    return guid


def show(store, vm):
    return as_json(ok("vm", "show", "--json", "--store", store, vm))


# ---- configurations, read here ----

def read_config(path):
    """The root element of a configuration written as Hyper-V writes it."""
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:2] == b"\xff\xfe", "%s has no UTF-16LE byte-order mark: %r" % (path, raw[:8])
    text = raw[2:].decode("utf-16-le")
    assert "\r\n" in text and not re.search(r"(?<!\r)\n", text), "%s: not CRLF" % path
    root = ET.fromstring(text)
    assert root.tag == "configuration", root.tag
    return root


def config_disks(root):
    """The pathnames of the drives of type VHD, in document order."""
    paths = []
    for node in root.iter():
        if re.match(r"^drive\d+$", node.tag) and node.findtext("type") == "VHD":
            path = node.findtext("pathname") or ""
            if path:
                assert os.path.isabs(path), "a drive's path %r is not absolute" % path
                paths.append(path)
    return paths


def vm_disks(store, guid):
    return config_disks(read_config(config_path(store, guid)))


def snapshot_disks(store, guid):
    return config_disks(read_config(config_path(store, guid, SNAPSHOTS)))


def retarget_disk(path, target, index=0):
    """Point drive @index (in document order) of the configuration at @path
    to @target."""
    with open(path, "rb") as f:
        raw = f.read()
    text = raw[2:].decode("utf-16-le")
    escaped = target.replace("&", "&amp;").replace("<", "&lt;")
    found = list(re.finditer(r'(<pathname type="string">)[^<]*(</pathname>)', text))
    assert len(found) > index, "no pathname %d in %s" % (index, path)
    m = found[index]
    text = text[:m.start()] + m.group(1) + escaped + m.group(2) + text[m.end():]
    with open(path, "wb") as f:
        f.write(b"\xff\xfe" + text.encode("utf-16-le"))


def stem(path):
    """A disk's name without its extension and without a snapshot's _GUID."""
    name = os.path.splitext(os.path.basename(path))[0]
    return SUFFIX_RE.sub("", name)


# ---- the model, and the disks read back ----

class Model:
    """What a VM's current disks hold, one bytearray per disk; states[name]
    keeps a copy per snapshot."""

    def __init__(self, sizes):
        self.disks = [bytearray(size) for size in sizes]
        self.states = {}

    def keep(self, name):
        self.states[name] = [bytes(d) for d in self.disks]

    def restore(self, name):
        self.disks = [bytearray(d) for d in self.states[name]]


def pattern(seed, size):
    return random.Random(seed).randbytes(size)


def vm_write(store, vm, model, disk, offset, data, stdin=False):
    """impex vm write, and the same write into the model."""
    if stdin:
        ok("vm", "write", "--store", store, vm, disk, offset, "-", input=data, text=False)
    else:
        with open("data.bin", "wb") as f:
            f.write(data)
        ok("vm", "write", "--store", store, vm, disk, offset, "data.bin")
        os.unlink("data.bin")
    model.disks[disk][offset:offset + len(data)] = data


def first_difference(got, want):
    if len(got) != len(want):
        return "%d bytes, want %d" % (len(got), len(want))
    for start in range(0, len(want), MIB):
        if got[start:start + MIB] != want[start:start + MIB]:
            for i in range(start, min(start + MIB, len(want))):
                if got[i] != want[i]:
                    return "first difference at byte %d (sector %d): %02x, want %02x" % (
                        i, i // SECTOR, got[i], want[i])
    return None


def cat(path):
    result = ok("vhd", "cat", path, text=False)
    return result.stdout


def assert_content(path, want, what):
    fault = first_difference(cat(path), bytes(want))
    assert fault is None, "vhd cat of %s (%s): %s" % (os.path.basename(path), what, fault)


def assert_qemu_content(path, want, what):
    """A base disk, converted by qemu-img, holds @want."""
    run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", path, "qemu.raw"])
    with open("qemu.raw", "rb") as f:
        got = f.read()
    os.unlink("qemu.raw")
    fault = first_difference(got, bytes(want))
    assert fault is None, "qemu-img convert of %s (%s): %s" % (
        os.path.basename(path), what, fault)


def vhdiinfo(path):
    """vhdiinfo's fields: name -> value."""
    fields = {}
    for line in run(["vhdiinfo", path]).stdout.splitlines():
        name, sep, rest = line.partition(":")
        if sep:
            fields[name.strip()] = rest.strip()
    return fields


def assert_child_of(child, parent):
    """@child is a differencing disk whose parent is @parent: by impex's
    chain, and by vhdiinfo's parent name and identifier."""
    info = as_json(ok("vhd", "info", "--json", child))
    assert info["type"] == "differencing", info
    chain = [os.path.realpath(c["path"]) for c in info["chain"]]
    assert chain[:2] == [os.path.realpath(child), os.path.realpath(parent)], \
        "chain of %s: %r, want its parent %s" % (child, chain, parent)
    assert info["error"] is None, info
    if have("vhdiinfo"):
        theirs, mine = vhdiinfo(child), vhdiinfo(parent)
        assert theirs.get("Disk type") == "Differential", theirs
        assert theirs.get("Parent filename") == os.path.basename(parent), theirs
        assert theirs.get("Parent identifier") == mine.get("Identifier"), (theirs, mine)


def assert_sound(vm):
    """Every disk of a VM (vm show --json) and of its snapshots resolves and
    its chain opens."""
    everything = [("current", d) for d in vm["disks"]] + \
        [(s["name"], d) for s in vm["snapshots"] for d in s["disks"]]
    assert vm["problem"] is None, vm
    for s in vm["snapshots"]:
        assert s["problem"] is None, s
    for where, disk in everything:
        assert disk["problem"] is None and disk["chain_problem"] is None, \
            "%s: disk of %s: %r" % (vm["name"], where, disk)
        assert disk["chain"] and disk["chain"][0] == disk["path"], disk
        assert os.path.isfile(disk["path"]), disk


# ---- 1. vm snapshot ----

def small_vm(store, name="v"):
    guid = vm_new(store, "--disk", "ide:16M", "--disk", "scsi:8M", name)
    return guid, Model(SIZES)


def test_snapshot_configuration_and_disks():
    store = new_store()
    vm, model = small_vm(store)
    vm_write(store, vm, model, 0, 0, pattern(1, 4096))
    vm_write(store, vm, model, 0, BLOCK - 1024, pattern(2, 8192))    # across a block
    vm_write(store, vm, model, 1, SIZES[1] - 4096, pattern(3, 4096), stdin=True)
    before = vm_disks(store, vm)
    assert [os.path.basename(p) for p in before] == ["v.vhd", "v_2.vhd"], before
    snap = snapshot(store, vm, "s1")
    model.keep("s1")

    # The snapshot's configuration.
    path = config_path(store, snap, SNAPSHOTS)
    assert os.path.isfile(path), "no %s" % path
    root = read_config(path)
    assert value(root, "properties/global_id") == snap
    assert value(root, "properties/name") == "s1"
    assert value(root, "properties/type_id") == "Snapshots"
    assert value(root, "settings/global/logical_id") == vm
    parent = root.find("global_settings/snapshots/parent")
    assert parent is not None and (parent.text or "") == "", "parent of a root snapshot"
    assert config_disks(root) == before, (config_disks(root), before)
    assert not os.path.exists(os.path.join(store, SNAPSHOTS, snap)), \
        "a saved state for a VM that has none"

    # The VM's configuration: new differencing disks over the frozen ones.
    root = read_config(config_path(store, vm))
    assert value(root, "properties/global_id") == vm
    assert value(root, "properties/type_id") == "Virtual Machines"
    assert value(root, "global_settings/snapshots/current") == snap
    assert value(root, "global_settings/snapshots/list/size") == "1"
    now = config_disks(root)
    want = [os.path.join(os.path.dirname(p), "%s_%s.avhd" % (stem(p), snap)) for p in before]
    assert now == want, (now, want)
    for child, frozen in zip(now, before):
        assert os.path.isfile(child), child
        assert_child_of(child, frozen)
    shown = show(store, vm)
    assert shown["current_snapshot"] == snap, shown
    assert [d["path"] for d in shown["disks"]] == now, shown
    assert [(s["id"], s["name"], s["parent"] or "") for s in shown["snapshots"]] == \
        [(snap, "s1", "")], shown
    assert [d["path"] for d in shown["snapshots"][0]["disks"]] == before, shown
    assert_sound(shown)

    # Writes after the snapshot land in the new disk only.
    frozen = {p: digest(p) for p in before}
    state = tree_state(store)
    vm_write(store, vm, model, 0, 0, pattern(4, 2048))
    vm_write(store, vm, model, 0, BLOCK, pattern(5, 512))
    changed = changed_paths(state, tree_state(store))
    assert changed == [os.path.relpath(now[0], store)], \
        "a write into disk 0 changed %r" % changed
    state = tree_state(store)
    vm_write(store, vm, model, 1, 3 * MIB, pattern(6, 1536))
    changed = changed_paths(state, tree_state(store))
    assert changed == [os.path.relpath(now[1], store)], \
        "a write into disk 1 changed %r" % changed
    assert {p: digest(p) for p in before} == frozen, "a frozen disk changed"
    for i in range(2):
        assert_content(before[i], model.states["s1"][i], "s1")
        assert_content(now[i], model.disks[i], "current")
    if have("qemu-img"):
        for i in range(2):
            assert_qemu_content(before[i], model.states["s1"][i], "s1")

    # A second snapshot stacks on the first: its disks keep the stem.
    snap2 = snapshot(store, vm, "s2")
    later = vm_disks(store, vm)
    assert [os.path.basename(p) for p in later] == \
        ["v_%s.avhd" % snap2, "v_2_%s.avhd" % snap2], later
    for child, frozen_disk in zip(later, now):
        assert_child_of(child, frozen_disk)
    root = read_config(config_path(store, snap2, SNAPSHOTS))
    assert value(root, "global_settings/snapshots/parent") == snap
    assert config_disks(root) == now
    root = read_config(config_path(store, vm))
    assert value(root, "global_settings/snapshots/current") == snap2
    assert value(root, "global_settings/snapshots/list/size") == "2"


def test_snapshot_names_are_kept_exactly():
    store = new_store()
    vm, model = small_vm(store)
    names = ["été ☃", "a<b>&c \"quoted\" 'single'", "../../escape", "n" * 200]
    ids = {}
    for i, name in enumerate(names):
        vm_write(store, vm, model, 0, i * SECTOR, pattern(40 + i, SECTOR))
        ids[name] = snapshot(store, vm, name)
        model.keep(name)
        root = read_config(config_path(store, ids[name], SNAPSHOTS))
        assert value(root, "properties/name") == name, (name, value(root, "properties/name"))
    shown = show(store, vm)
    assert {s["id"]: s["name"] for s in shown["snapshots"]} == {v: k for k, v in ids.items()}
    assert sorted(os.listdir(".")) == ["store"], "a file outside the store: %r" % os.listdir(".")
    # Applied by name.
    ok("vm", "apply", "--store", store, vm, names[1])
    assert show(store, vm)["current_snapshot"] == ids[names[1]]
    assert_content(vm_disks(store, vm)[0], model.states[names[1]][0], names[1])


# ---- 2. a snapshot tree ----

def test_snapshot_tree_with_a_branch():
    store = new_store()
    vm, model = small_vm(store)
    vm_write(store, vm, model, 0, 0, pattern(10, 64 * 1024))
    vm_write(store, vm, model, 1, MIB, pattern(11, 4096))
    s1 = snapshot(store, vm, "s1")
    model.keep(s1)
    vm_write(store, vm, model, 0, 32 * 1024, pattern(12, 64 * 1024))     # over s1's data
    vm_write(store, vm, model, 0, 3 * BLOCK - 512, pattern(13, 1024))    # across a block
    s2 = snapshot(store, vm, "s2")
    model.keep(s2)
    vm_write(store, vm, model, 0, 0, pattern(14, 512))
    vm_write(store, vm, model, 1, MIB + 512, pattern(15, 512))

    # Apply s1: the state left behind goes, nothing else.
    discarded = vm_disks(store, vm)
    assert all(os.path.basename(p).endswith("_%s.avhd" % s2) for p in discarded), discarded
    before = tree_state(store)
    ok("vm", "apply", "--store", store, vm, "s1")
    model.restore(s1)
    after = tree_state(store)
    current = vm_disks(store, vm)
    for path in discarded:
        assert not os.path.exists(path), "the discarded %s is still there" % path
    made = sorted(set(after) - set(before))
    assert made == sorted(os.path.relpath(p, store) for p in current), \
        "apply made %r; the VM's disks are %r" % (made, current)
    vm_config = os.path.relpath(config_path(store, vm), store)
    for path in before:
        if os.path.join(store, path) in discarded or path == vm_config:
            continue
        assert after.get(path) == before[path], "apply changed %s: %r -> %r" % (
            path, before[path], after.get(path))
    for child, frozen in zip(current, snapshot_disks(store, s1)):
        assert child.endswith(".avhd") and os.path.dirname(child) == os.path.dirname(frozen)
        assert_child_of(child, frozen)
    root = read_config(config_path(store, vm))
    assert value(root, "properties/global_id") == vm
    assert value(root, "properties/name") == "v"
    assert value(root, "properties/type_id") == "Virtual Machines"
    assert value(root, "settings/global/logical_id") == vm
    assert value(root, "global_settings/snapshots/current") == s1
    for i in range(2):
        assert_content(current[i], model.disks[i], "just after applying s1")

    # A branch: s3 beside s2, both under s1.
    vm_write(store, vm, model, 0, 16 * 1024, pattern(16, 8192))
    vm_write(store, vm, model, 1, SIZES[1] - 512, pattern(17, 512))
    s3 = snapshot(store, vm, "s3")
    model.keep(s3)
    vm_write(store, vm, model, 0, BLOCK * 5, pattern(18, 4096))

    # The tree, as the configurations record it ...
    parents = {}
    for snap in (s1, s2, s3):
        root = read_config(config_path(store, snap, SNAPSHOTS))
        assert value(root, "settings/global/logical_id") == vm
        assert value(root, "properties/type_id") == "Snapshots"
        parents[snap] = value(root, "global_settings/snapshots/parent")
    assert parents == {s1: "", s2: s1, s3: s1}, parents
    root = read_config(config_path(store, vm))
    assert value(root, "global_settings/snapshots/current") == s3
    assert value(root, "global_settings/snapshots/list/size") == "3"

    # ... and as vm show tells it.
    shown = show(store, vm)
    got = {s["id"]: (s["name"], s["parent"] or "", s["parent_inferred"])
           for s in shown["snapshots"]}
    assert got == {s1: ("s1", "", False), s2: ("s2", s1, False), s3: ("s3", s1, False)}, got
    assert shown["current_snapshot"] == s3, shown
    assert_sound(shown)
    depth = {s1: 1, s2: 2, s3: 2}
    for s in shown["snapshots"]:
        assert [d["path"] for d in s["disks"]] == snapshot_disks(store, s["id"]), s
        for d in s["disks"]:
            assert len(d["chain"]) == depth[s["id"]], (s["name"], d)
    assert [d["path"] for d in shown["disks"]] == vm_disks(store, vm), shown
    assert all(len(d["chain"]) == 3 for d in shown["disks"]), shown["disks"]

    # Every state holds what was written into it.
    for snap in (s1, s2, s3):
        for i, path in enumerate(snapshot_disks(store, snap)):
            assert_content(path, model.states[snap][i], "snapshot %s" % snap)
    for i, path in enumerate(vm_disks(store, vm)):
        assert_content(path, model.disks[i], "current")
    if have("qemu-img"):
        for i, path in enumerate(snapshot_disks(store, s1)):
            assert_qemu_content(path, model.states[s1][i], "s1")


# ---- 3. saved state ----

def saved_state_files(folder, guid):
    return [os.path.join(folder, guid, guid + ext) for ext in (".vsv", ".bin")]


def test_saved_state_follows_snapshots():
    store = new_store()
    vm = vm_new(store, "--memory", "64M", "--disk", "ide:8M", "v")
    vm_folder = os.path.join(store, VMS)
    vsv, bin_ = saved_state_files(vm_folder, vm)
    plain = snapshot(store, vm, "plain")
    assert not os.path.exists(os.path.join(store, SNAPSHOTS, plain))
    assert show(store, vm)["saved_state"] is None

    ok("vm", "save", "--store", store, vm)
    assert os.path.isfile(vsv) and os.path.isfile(bin_), os.listdir(vm_folder)
    assert os.path.getsize(bin_) == 64 * MIB, "the .bin is %d bytes" % os.path.getsize(bin_)
    assert os.path.getsize(vsv) > 0
    assert show(store, vm)["saved_state"] == os.path.join(vm_folder, vm)
    first = [digest(vsv), digest(bin_)]

    saved = snapshot(store, vm, "saved")
    snap_files = saved_state_files(os.path.join(store, SNAPSHOTS), saved)
    assert all(os.path.isfile(p) for p in snap_files), snap_files
    assert [digest(p) for p in snap_files] == first, "the snapshot's saved state differs"
    assert [digest(vsv), digest(bin_)] == first, "the VM's saved state changed"
    shown = show(store, vm)
    by_name = {s["name"]: s for s in shown["snapshots"]}
    assert by_name["saved"]["saved_state"] == os.path.join(store, SNAPSHOTS, saved), shown
    assert by_name["plain"]["saved_state"] is None, shown

    # Saved again: another state, so a restore below cannot be a leftover.
    ok("vm", "save", "--store", store, vm)
    second = [digest(vsv), digest(bin_)]
    assert second != first, "two saves made the same bytes; the test cannot tell them apart"

    ok("vm", "apply", "--store", store, vm, "saved")
    assert [digest(vsv), digest(bin_)] == first, "apply did not restore the snapshot's state"
    assert [digest(p) for p in snap_files] == first

    ok("vm", "apply", "--store", store, vm, plain)
    assert not os.path.exists(vsv) and not os.path.exists(bin_), \
        "applying a snapshot without saved state kept the VM's"
    assert show(store, vm)["saved_state"] is None
    assert [digest(p) for p in snap_files] == first, "the snapshot's saved state changed"

    ok("vm", "apply", "--store", store, vm, saved)
    assert [digest(vsv), digest(bin_)] == first
    assert os.path.getsize(bin_) == 64 * MIB
    assert show(store, vm)["saved_state"] == os.path.join(vm_folder, vm)
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert listed[0]["saved_state"] == os.path.join(vm_folder, vm), listed


# ---- 4. vm delete ----

def test_delete_keeps_disks_without_disks_option():
    store = new_store()
    vm = vm_new(store, "--memory", "64M", "--disk", "ide:8M", "--disk", "scsi:8M", "gone")
    other = vm_new(store, "--disk", "ide:8M", "other")
    first = snapshot(store, vm, "first")
    ok("vm", "save", "--store", store, vm)
    second = snapshot(store, vm, "second")
    disks = sorted(os.path.join(store, DISKS, n) for n in os.listdir(os.path.join(store, DISKS)))
    kept = {p: digest(p) for p in disks}
    other_config = digest(config_path(store, other))
    ok("vm", "delete", "--store", store, vm)
    for path in (config_path(store, vm), os.path.join(store, VMS, vm),
                 config_path(store, first, SNAPSHOTS), config_path(store, second, SNAPSHOTS),
                 os.path.join(store, SNAPSHOTS, second)):
        assert not os.path.exists(path), "vm delete left %s" % path
    assert os.listdir(os.path.join(store, SNAPSHOTS)) == [], \
        os.listdir(os.path.join(store, SNAPSHOTS))
    assert {p: digest(p) for p in disks if os.path.exists(p)} == kept, \
        "vm delete without --disks touched the disks"
    assert digest(config_path(store, other)) == other_config
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert [v["name"] for v in listed] == ["other"], listed
    refused("vm", "show", "--store", store, vm)


def test_delete_disks_spares_a_base_another_vm_uses():
    store = new_store()
    model_a = Model([8 * MIB])
    a = vm_new(store, "--disk", "ide:8M", "a")
    vm_write(store, a, model_a, 0, 0, pattern(20, 4096))
    sa = snapshot(store, a, "sa")
    model_a.keep("sa")
    vm_write(store, a, model_a, 0, 4096, pattern(21, 4096))
    a_base = snapshot_disks(store, sa)[0]
    a_current = vm_disks(store, a)[0]

    # b runs on a differencing disk over a's frozen base.
    b = vm_new(store, "--disk", "ide:8M", "b")
    b_unused = vm_disks(store, b)[0]
    b_disk = os.path.join(store, DISKS, "b_over_a.avhd")
    ok("vhd", "snapshot", a_base, b_disk)
    retarget_disk(config_path(store, b), b_disk)
    model_b = Model([8 * MIB])
    model_b.disks[0][:] = model_a.states["sa"][0]
    vm_write(store, b, model_b, 0, MIB, pattern(22, 4096))
    sb = snapshot(store, b, "sb")
    model_b.keep("sb")
    assert snapshot_disks(store, sb) == [b_disk]
    b_top = vm_disks(store, b)[0]
    vm_write(store, b, model_b, 0, 2 * MIB, pattern(23, 4096))
    c = vm_new(store, "--disk", "scsi:8M", "c")
    assert_sound(show(store, b))

    # a goes with its disks, but its base stays: b's chain needs it.
    base_digest = digest(a_base)
    before = tree_state(store)
    ok("vm", "delete", "--disks", "--store", store, a)
    gone = sorted(set(before) - set(tree_state(store)))
    want = sorted(os.path.relpath(p, store) for p in
                  (config_path(store, a), config_path(store, sa, SNAPSHOTS), a_current))
    assert gone == want, "vm delete --disks a removed %r, want %r" % (gone, want)
    assert digest(a_base) == base_digest
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert sorted(v["name"] for v in listed) == ["b", "c"], listed
    for vm in listed:
        assert vm["problem"] is None and all(d["problem"] is None for d in vm["disks"]), vm
    shown = show(store, b)
    assert_sound(shown)
    assert [os.path.realpath(p) for p in shown["disks"][0]["chain"]] == \
        [os.path.realpath(p) for p in (b_top, b_disk, a_base)], shown
    assert_content(b_top, model_b.disks[0], "b, current")
    assert_content(b_disk, model_b.states["sb"][0], "b, sb")

    # b goes with its chain; a's base now belongs to b alone and goes too,
    # while the disk b no longer points at stays.
    before = tree_state(store)
    ok("vm", "delete", "--disks", "--store", store, b)
    gone = sorted(set(before) - set(tree_state(store)))
    want = sorted(os.path.relpath(p, store) for p in
                  (config_path(store, b), config_path(store, sb, SNAPSHOTS),
                   b_top, b_disk, a_base))
    assert gone == want, "vm delete --disks b removed %r, want %r" % (gone, want)
    assert os.path.isfile(b_unused), "vm delete --disks removed a disk b did not use"
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert [v["name"] for v in listed] == ["c"], listed
    assert_sound(show(store, c))


def test_delete_disks_spares_a_base_another_vms_snapshot_uses():
    """b's snapshot holds a disk over a's base, while b itself has gone on
    with another disk (its settings changed after the snapshot)."""
    store = new_store()
    a = vm_new(store, "--disk", "ide:8M", "a")
    model = Model([8 * MIB])
    vm_write(store, a, model, 0, 0, pattern(24, 4096))
    a_base = vm_disks(store, a)[0]
    b = vm_new(store, "--disk", "ide:8M", "b")
    b_own = vm_disks(store, b)[0]
    b_disk = os.path.join(store, DISKS, "b_over_a.avhd")
    ok("vhd", "snapshot", a_base, b_disk)
    retarget_disk(config_path(store, b), b_disk)
    sb = snapshot(store, b, "sb")
    assert snapshot_disks(store, sb) == [b_disk]
    retarget_disk(config_path(store, b), b_own)
    assert_sound(show(store, b))
    ok("vm", "delete", "--disks", "--store", store, a)
    assert not os.path.exists(config_path(store, a))
    assert os.path.isfile(a_base), \
        "vm delete --disks a removed %s, which b's snapshot sb needs" % os.path.basename(a_base)
    assert_sound(show(store, b))
    assert_content(b_disk, model.disks[0], "b's snapshot sb")


def set_leaf(path, tag, text):
    """Set the (first) string leaf @tag of the UTF-16LE configuration at @path to @text."""
    with open(path, "rb") as f:
        raw = f.read()
    doc = raw[2:].decode("utf-16-le")
    doc, n = re.subn(r'(<%s type="string">)[^<]*(</%s>)' % (tag, tag),
                     lambda m: m.group(1) + text + m.group(2), doc, count=1)
    assert n == 1, "no %s in %s" % (tag, path)
    with open(path, "wb") as f:
        f.write(b"\xff\xfe" + doc.encode("utf-16-le"))


def test_a_vm_naming_another_guid_as_its_own_takes_snapshots():
    """A VM whose own logical_id is not its GUID (an earlier impex import left its
    source's there): its snapshots still name it, and it can be snapshotted, applied and
    deleted."""
    store = new_store()
    vm = vm_new(store, "--disk", "ide:8M", "v")
    set_leaf(config_path(store, vm), "logical_id", str(uuid.uuid4()).upper())
    first = snapshot(store, vm, "first")
    second = snapshot(store, vm, "second")
    for guid in (first, second):
        assert value(read_config(config_path(store, guid, SNAPSHOTS)),
                     "settings/global/logical_id") == vm
    shown = show(store, vm)
    assert shown["problem"] is None and [s["id"] for s in shown["snapshots"]] == \
        [first, second], shown
    ok("vm", "apply", "--store", store, vm, first)
    assert_sound(show(store, vm))
    ok("vm", "delete", "--disks", "--store", store, vm)
    for sub in (VMS, SNAPSHOTS, DISKS):
        assert os.listdir(os.path.join(store, sub)) == [], sub


def test_delete_says_what_it_leaves_behind():
    """A file vm delete cannot remove (in an immutable folder) fails it, naming the file;
    the rest goes, a saved-state folder with every file in it."""
    need("chattr")
    store = new_store()
    vm = vm_new(store, "--memory", "32M", "--disk", "ide:8M", "v")
    ok("vm", "save", "--store", store, vm)
    saved = snapshot(store, vm, "saved")
    with open(os.path.join(store, SNAPSHOTS, saved, "more.txt"), "w") as f:
        f.write("a file an import copied with the saved state")
    state = os.path.join(store, VMS, vm)
    if run(["chattr", "+i", state], check=False).returncode != 0:
        raise Skip("chattr +i is not allowed here")
    try:
        result = refused("vm", "delete", "--disks", "--store", store, vm,
                         mentions=["left behind", os.path.join(state, vm + ".vsv"),
                                   os.path.join(state, vm + ".bin")])
    finally:
        chattr("-i", state)
    assert "is deleted" in result.stderr, result.stderr
    assert sorted(os.listdir(state)) == [vm + ".bin", vm + ".vsv"]
    assert not os.path.exists(config_path(store, vm))
    assert os.listdir(os.path.join(store, SNAPSHOTS)) == [], saved
    assert os.listdir(os.path.join(store, DISKS)) == []
    assert as_json(ok("vm", "list", "--json", "--store", store)) == []


def test_delete_finds_its_snapshots_the_listing_misses():
    """Snapshot configurations the listing gives the VM not: one naming it whose disks a
    crash left the VM's current ones is deleted with it; one naming another GUID (an
    earlier import left the VM's own logical_id at its source's) but the VM's disks is
    named as left behind."""
    store = new_store()
    vm = vm_new(store, "--disk", "ide:8M", "v")
    first = snapshot(store, vm, "first")
    second = snapshot(store, vm, "second")
    stray = config_path(store, second, SNAPSHOTS)
    set_leaf(stray, "logical_id", str(uuid.uuid4()).upper())
    # A snapshot cut short: the VM's configuration, as a snapshot of it, on its disks.
    cut = str(uuid.uuid4()).upper()
    cut_path = config_path(store, cut, SNAPSHOTS)
    with open(config_path(store, vm), "rb") as f:
        raw = f.read()
    with open(cut_path, "wb") as f:
        f.write(raw)
    set_leaf(cut_path, "global_id", cut)
    set_leaf(cut_path, "type_id", "Snapshots")
    os.mkdir(os.path.join(store, SNAPSHOTS, cut))
    with open(os.path.join(store, SNAPSHOTS, cut, cut + ".vsv"), "wb") as f:
        f.write(b"state")
    shown = as_json(call("vm", "show", "--json", "--store", store, vm))
    assert [s["id"] for s in shown["snapshots"]] == [first], shown
    assert "counts 2 snapshots" in shown["problem"], shown
    refused("vm", "delete", "--disks", "--store", store, vm,
            mentions=["left behind: '%s'" % stray, "no VM"])
    assert os.listdir(os.path.join(store, SNAPSHOTS)) == [second + ".xml"]
    assert os.listdir(os.path.join(store, VMS)) == []
    assert os.listdir(os.path.join(store, DISKS)) == []


# ---- 5. refusals change nothing ----

def test_refusals_leave_the_store_unchanged():
    store = new_store()
    vm, model = small_vm(store)
    vm_write(store, vm, model, 0, 0, pattern(30, 4096))
    s1 = snapshot(store, vm, "s1")
    vm_write(store, vm, model, 1, 0, pattern(31, 4096))
    broken = vm_new(store, "--disk", "ide:8M", "--disk", "scsi:8M", "broken")
    missing = vm_disks(store, broken)[1]
    os.unlink(missing)
    data = "data.bin"
    with open(data, "wb") as f:
        f.write(pattern(32, 4096))
    before = tree_state(store)

    def check(*args, **kw):
        refused(*args, **kw)
        assert_unchanged(before, tree_state(store), label(args))

    check("vm", "snapshot", "--store", store, "nosuch", "x", mentions=["nosuch"])
    check("vm", "snapshot", "--store", store, str(uuid.uuid4()).upper(), "x")
    check("vm", "apply", "--store", store, vm, "nosuch", mentions=["nosuch"])
    check("vm", "apply", "--store", store, vm, str(uuid.uuid4()).upper())
    check("vm", "apply", "--store", store, "nosuch", s1)
    check("vm", "snapshot", "--store", store, broken, "s",
          mentions=[os.path.basename(missing)])
    for name in ("bad\x01name", "two\nlines", "tab\there", "escape\x1b[1m", "del\x7f",
                 "", "n" * 201, os.fsdecode(b"not utf-8 \xff")):
        check("vm", "snapshot", "--store", store, vm, name, text=False)
    check("vm", "write", "--store", store, vm, 2, 0, data, status=(1, 2))
    check("vm", "write", "--store", store, vm, -1, 0, data, status=(1, 2))
    check("vm", "write", "--store", store, vm, "x", 0, data, status=(1, 2))
    check("vm", "write", "--store", store, vm, 0, 100, data, status=(1, 2), mentions=["512"])
    check("vm", "write", "--store", store, vm, 0, 513, data, status=(1, 2))
    check("vm", "write", "--store", store, vm, 0, SIZES[0] - 512, data)
    check("vm", "write", "--store", store, vm, 0, -512, data, status=(1, 2))
    check("vm", "write", "--store", store, vm, 0, 0, "nosuchfile")
    check("vm", "write", "--store", store, "nosuch", 0, 0, data)
    check("vm", "save", "--store", store, "nosuch")
    check("vm", "delete", "--store", store, "nosuch")
    check("vm", "delete", "--disks", "--store", store, "nosuch")
    # The store still works.
    shown = show(store, vm)
    assert_sound(shown)
    for i, path in enumerate(vm_disks(store, vm)):
        assert_content(path, model.disks[i], "current")


def chattr(flag, *paths):
    for path in paths:
        run(["chattr", flag, path])


def test_failures_midway_leave_the_store_unchanged():
    """A snapshot or an apply that fails after making some of its files
    removes them, and discards nothing: an immutable folder makes the
    second disk's new differencing disk, or a saved state's copy, fail."""
    need("chattr")
    store = new_store()
    vm = vm_new(store, "--memory", "64M", "--disk", "ide:8M", "--disk", "scsi:8M", "v")
    model = Model([8 * MIB, 8 * MIB])
    # The second disk lives in a folder of its own.
    locked = os.path.join(store, DISKS, "locked")
    os.mkdir(locked)
    second = os.path.join(locked, "v_2.vhd")
    os.rename(vm_disks(store, vm)[1], second)
    retarget_disk(config_path(store, vm), second, 1)
    vm_write(store, vm, model, 0, 0, pattern(50, 4096))
    vm_write(store, vm, model, 1, 0, pattern(51, 4096))
    plain = snapshot(store, vm, "plain")
    model.keep(plain)
    ok("vm", "save", "--store", store, vm)
    saved = snapshot(store, vm, "saved")
    model.keep(saved)
    vm_write(store, vm, model, 0, MIB, pattern(52, 4096))
    vm_write(store, vm, model, 1, MIB, pattern(53, 4096))
    probe = os.path.join(store, "probe")
    os.mkdir(probe)
    if run(["chattr", "+i", probe], check=False).returncode != 0:
        os.rmdir(probe)
        raise Skip("chattr +i is not allowed here")
    chattr("-i", probe)
    os.rmdir(probe)
    before = tree_state(store)
    cases = [
        ([locked], ("vm", "snapshot", "--store", store, vm, "s")),
        ([locked], ("vm", "apply", "--store", store, vm, plain)),
        ([os.path.join(store, SNAPSHOTS)], ("vm", "snapshot", "--store", store, vm, "s")),
        ([os.path.join(store, VMS)], ("vm", "apply", "--store", store, vm, saved)),
        ([os.path.join(store, VMS, vm)], ("vm", "save", "--store", store, vm)),
    ]
    for folders, args in cases:
        chattr("+i", *folders)
        try:
            refused(*args)
        finally:
            chattr("-i", *folders)
        assert_unchanged(before, tree_state(store), label(args) + " (failing midway)")
    # All is well once the folders are writable again.
    assert_sound(show(store, vm))
    for i, path in enumerate(vm_disks(store, vm)):
        assert_content(path, model.disks[i], "current")
    ok("vm", "apply", "--store", store, vm, plain)
    model.restore(plain)
    for i, path in enumerate(vm_disks(store, vm)):
        assert_content(path, model.disks[i], "plain")


# ---- 6. impex demo ----

def demo(folder="demo"):
    os.mkdir(folder)
    ok("demo", folder, timeout=300)
    return os.path.realpath(folder)


def test_demo_needs_an_empty_folder():
    os.mkdir("full")
    with open("full/keep.txt", "w") as f:
        f.write("mine")
    before = tree_state("full")
    refused("demo", "full", mentions=["full"])
    assert_unchanged(before, tree_state("full"), "impex demo on a folder in use")
    store = demo()
    before = tree_state(store)
    refused("demo", store)
    assert_unchanged(before, tree_state(store), "impex demo on a demo store")


def test_demo_store():
    store = demo()
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert len(listed) == 3, [v["name"] for v in listed]
    by_name = {v["name"]: v for v in listed}
    assert "blog" in by_name, list(by_name)
    for vm in listed:
        assert_sound(show(store, vm["id"]))

    blog = show(store, "blog")
    snaps = blog["snapshots"]
    assert len(snaps) == 5, [s["name"] for s in snaps]
    ids = {s["id"] for s in snaps}
    children = {}
    for s in snaps:
        assert (s["parent"] or "") in ids | {""}, s
        assert s["parent_inferred"] is False, s
        children.setdefault(s["parent"] or "", []).append(s["name"])
        root = read_config(config_path(store, s["id"], SNAPSHOTS))
        assert value(root, "settings/global/logical_id") == blog["id"]
        assert value(root, "global_settings/snapshots/parent") == (s["parent"] or "")
    assert len(children.get("", [])) == 1, children
    assert any(len(c) >= 2 for p, c in children.items() if p), \
        "no snapshot with two children: %r" % children
    assert blog["current_snapshot"] in ids, blog
    root = read_config(config_path(store, blog["id"]))
    assert value(root, "global_settings/snapshots/current") == blog["current_snapshot"]
    assert value(root, "global_settings/snapshots/list/size") == "5"

    # Saved state, on the VM and on a snapshot.
    assert blog["saved_state"], blog
    bin_ = saved_state_files(os.path.join(store, VMS), blog["id"])[1]
    memory = int(value(root, "settings/memory/bank/size"))
    assert os.path.getsize(bin_) == memory * MIB, (bin_, memory)
    with_state = [s for s in snaps if s["saved_state"]]
    assert with_state, "no snapshot with a saved state"
    for s in with_state:
        for path in saved_state_files(os.path.join(store, SNAPSHOTS), s["id"]):
            assert os.path.isfile(path), path

    # Two adapters on two switches that the store knows.
    switches = {}
    with open(os.path.join(store, "switches.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                guid, _, name = line.partition(" ")
                switches[guid.upper()] = name
    assert len(blog["adapters"]) == 2, blog["adapters"]
    used = {a["switch_id"].upper() for a in blog["adapters"]}
    assert len(used) == 2, blog["adapters"]
    for adapter in blog["adapters"]:
        assert switches.get(adapter["switch_id"].upper()) == adapter["switch"], adapter


def test_demo_base_disks_open_in_reference_tools():
    need("qemu-img", "vhdiinfo")
    store = demo()
    folder = os.path.join(store, DISKS)
    bases = sorted(n for n in os.listdir(folder) if n.endswith(".vhd"))
    assert len(bases) >= 3, bases
    for name in bases:
        path = os.path.join(folder, name)
        info = json.loads(run(["qemu-img", "info", "-f", "vpc", "--output=json", path]).stdout)
        assert info["format"] == "vpc", info
        fields = vhdiinfo(path)
        assert fields.get("Disk type") in ("Dynamic", "Fixed"), (name, fields)
        match = re.search(r"\((\d+) bytes\)", fields.get("Media size", ""))
        assert match and int(match.group(1)) == info["virtual-size"], (name, fields, info)
        assert_qemu_content(path, cat(path), "the demo")


def debugfs_cat(raw, path):
    """@path in the ext4 of the demo's system disk @raw: in its first partition, where
    sfdisk says it starts."""
    table = json.loads(run(["sfdisk", "--json", raw]).stdout)["partitiontable"]
    assert table["label"] == "gpt" and len(table["partitions"]) == 1, table
    start = table["partitions"][0]["start"] * table.get("sectorsize", 512)
    result = run(["debugfs", "-R", "cat %s" % path, "%s?offset=%d" % (raw, start)])
    return result.stdout


def test_demo_blog_file_system_at_every_snapshot():
    need("debugfs", "sfdisk")
    store = demo()
    blog = show(store, "blog")
    texts = {}
    states = [(s["name"], s["disks"][0]["path"]) for s in blog["snapshots"]]
    states.append(("now", blog["disks"][0]["path"]))
    for name, path in states:
        with open("raw.img", "wb") as f:
            f.write(cat(path))
        texts[name] = debugfs_cat("raw.img", "/motd")
        assert texts[name].startswith("Welcome to blog"), \
            "/motd at %r: %r" % (name, texts[name][:200])
        os.unlink("raw.img")
    for name in ("installed", "version 2", "new theme"):
        assert name in texts, list(texts)
    assert len({texts["installed"], texts["version 2"], texts["new theme"]}) == 3, texts


if __name__ == "__main__":
    run_tests(globals())
