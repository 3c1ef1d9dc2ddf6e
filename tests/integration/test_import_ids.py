"""New IDs on import (generate_new_id, the default), with impex import and
through the import mount: the old GUIDs of the VM and of its snapshots
appear nowhere in what the import writes (the configurations, read as bytes
and decoded, and every file and folder name, in any case, with or without
braces; the saved state's bytes are copied as they are), the differencing
disks name their parents' new files, and the imported VM lives on like any
other: snapshot, apply, export, the export mount, delete.

Two sources: (a) an export folder shaped like Hyper-V 2012 R2's own files,
written here: configurations from hyperv2012.py (UTF-16LE with a BOM and
CRLF, and UTF-8 still declaring UTF-16), disks built byte by byte with
vhdcraft.py, differencing disks named <name>_<SNAPSHOT-GUID>.avhd with W2ku
and W2ru locators, saved state in Virtual Machines/<GUID>/ and
Snapshots/<GUID>/; (b) a VM of impex's own with snapshots and saved state,
exported by impex export. What each state's disks hold is modelled here.
"""

import os
import random
import struct
import sys

import hyperv2012 as hv
import vhdcraft
from impexlib import DISKS, SNAPSHOTS, VMS, as_json, digest, need, new_store, ok
from taplib import run, run_tests
from test_import import assert_states, write
from test_import_mount import wait_state
from test_mount import Mount
from test_mount_snapshots import modelled_vm
from test_snapshots import vhdiinfo

SIZE = 8 << 20
SECTOR = 512
SETTLED = vhdcraft.VHD_EPOCH + vhdcraft.DEFAULT_TIMESTAMP  # the time children record


# ---- the sources ----

def sectors(seed, numbers):
    rnd = random.Random(seed)
    return [(n * SECTOR, rnd.randbytes(SECTOR)) for n in numbers]


def hyperv_folder(top, encodings=("utf-16", "utf-8", "utf-16"), vm_logical_id=None):
    """Write at @top the export of VM "box" as Hyper-V 2012 R2 leaves it: snapshot "first"
    (a root, its disks the bases), snapshot "second" (its child, saved), the VM running on
    from "second" (saved too). Two disks: "box" on IDE with upper-case GUIDs in its
    names, "data" on SCSI with lower-case ones. @encodings: of the VM's configuration and
    the two snapshots'. @vm_logical_id: another GUID in the VM's own logical_id (what an
    earlier impex import left). Returns the model: state -> [bytes of each disk]."""
    vm, first, second = hv.guid(), hv.guid(), hv.guid()
    for sub in (VMS, DISKS, SNAPSHOTS):
        os.makedirs(os.path.join(top, sub))
    model = {"first": [], "second": [], "current": []}
    names = []
    for n, case in enumerate((str.upper, str.lower)):
        stem = ("box", "data")[n]
        chain = ["%s.vhd" % stem, "%s_%s.avhd" % (stem, case(first)),
                 "%s_%s.avhd" % (stem, case(second))]
        raw = bytearray(SIZE)
        images = []
        for level, (state, numbers) in enumerate(
                (("first", [0, 1, 4095, 8000]), ("second", [1, 2, 5000]),
                 ("current", [2, 3, SIZE // SECTOR - 1]))):
            writes = sectors(10 * n + level, numbers)
            if level == 0:
                image = vhdcraft.dynamic(SIZE, writes=writes)
            else:
                parent = chain[level - 1]
                image = vhdcraft.differencing(
                    images[-1], SIZE, parent_name=parent, writes=writes,
                    locators=[("W2ku", hv.windows_path(DISKS, parent)),
                              ("W2ru", ".\\" + parent)])
            images.append(image)
            for offset, data in writes:
                raw[offset:offset + len(data)] = data
            model[state].append(bytes(raw))
        for image, name in zip(images, chain):
            path = image.save(os.path.join(top, DISKS, name))
            os.utime(path, (SETTLED, SETTLED))
        names.append(chain)

    def drives(level):
        return [{"bus": "ide", "path": hv.windows_path(DISKS, names[0][level])},
                {"bus": "scsi", "path": hv.windows_path(DISKS, names[1][level])}]
    adapters = [{"switch_id": hv.guid(), "switch_name": "External"}]
    configs = [
        (VMS, vm, hv.vm_config(vm, "box", disks=drives(2), adapters=adapters, snapshots=2,
                               current=second, memory_mib=16)),
        (SNAPSHOTS, first, hv.vm_config(vm, "first", disks=drives(0), adapters=adapters,
                                        parent="", type_id="Snapshots", snapshot_id=first,
                                        memory_mib=16)),
        (SNAPSHOTS, second, hv.vm_config(vm, "second", disks=drives(1), adapters=adapters,
                                         parent=first, type_id="Snapshots",
                                         snapshot_id=second, memory_mib=16)),
    ]
    if vm_logical_id:
        mine = '<logical_id type="string">%s</logical_id>' % vm
        assert mine in configs[0][2]
        configs[0] = configs[0][:2] + (configs[0][2].replace(
            mine, '<logical_id type="string">%s</logical_id>' % vm_logical_id),)
    for (folder, guid, text), encoding in zip(configs, encodings):
        with open(os.path.join(top, folder, guid + ".xml"), "wb") as f:
            f.write(hv.encode(text, encoding))
    # Saved state: opaque bytes (naming the old GUID: copied as they are).
    for folder, guid in ((VMS, vm), (SNAPSHOTS, second)):
        os.mkdir(os.path.join(top, folder, guid))
        for ext in (".vsv", ".bin"):
            with open(os.path.join(top, folder, guid, guid + ext), "wb") as f:
                f.write(("saved state of %s\n" % guid).encode() + os.urandom(4096))
    return model


def own_folder(name):
    """VM "m" of impex's own (test_mount_snapshots' model: snapshots s1, s2, s3 after an
    apply), saved and snapshotted once more (s4, with the saved state), exported to
    @name. Returns the model: state -> [bytes of each disk]."""
    store = new_store("own")
    states = modelled_vm(store)
    ok("vm", "save", "--store", store, "m")
    ok("vm", "snapshot", "--store", store, "m", "s4")
    states["s4"] = states["current"]
    ok("export", "--store", store, "m", name)
    return states


def old_ids(folder):
    """The source VM (vm show --json of the folder) and its GUIDs and its snapshots'."""
    vms = as_json(ok("vm", "list", "--json", "--store", folder))
    assert len(vms) == 1, vms
    vm = as_json(ok("vm", "show", "--json", "--store", folder, vms[0]["id"]))
    assert vm["problem"] is None, vm
    return vm, [vm["id"]] + [s["id"] for s in vm["snapshots"]]


# ---- what the import wrote ----

def forms(guid):
    """The old GUID as text may hold it: any case, braced or not (the bare form is in
    the braced one: case is folded before searching)."""
    return {guid.lower(), "{%s}" % guid.lower()}


def text_of(raw):
    """A configuration's text: UTF-16 after its byte-order mark, else UTF-8."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16")
    return raw.decode("utf-8", "replace")


def vhd_parent_names(path):
    """What the differencing disk at @path names its parent by, read from the file as the
    VHD specification lays it out: the Parent Unicode Name (UTF-16BE) and each used
    parent locator's path (W2ru/W2ku in UTF-16LE)."""
    with open(path, "rb") as f:
        f.seek(-512, os.SEEK_END)
        footer = f.read(512)
        header_at = struct.unpack_from(">Q", footer, 16)[0]
        f.seek(header_at)
        header = f.read(1024)
        found = [("Parent Unicode Name",
                  header[64:576].decode("utf-16-be").rstrip("\0"))]
        for i in range(8):
            code, _, length, _, offset = struct.unpack_from(">4sIII Q", header, 576 + 24 * i)
            if code == b"\0\0\0\0":
                continue
            f.seek(offset)
            found.append((code.decode(), f.read(length).decode("utf-16-le").rstrip("\0")))
    return found


def assert_no_old_ids(top, old):
    """Nothing the import wrote under @top names an old GUID: no file or folder name, no
    byte of a configuration (as UTF-8 bytes, UTF-16LE bytes, or decoded text), no parent
    name or locator of a disk. Returns how many configurations and disks were read."""
    configs = disks = 0
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(folder, name)
            for guid in old:
                assert guid.lower() not in name.lower(), "%s names the old %s" % (path, guid)
            if name.lower().endswith(".xml"):
                configs += 1
                with open(path, "rb") as f:
                    raw = f.read()
                for guid in old:
                    for form in forms(guid):
                        for encoded in (form.encode(), form.encode("utf-16-le")):
                            assert encoded not in raw.lower(), "%s holds %r" % (path, form)
                        assert form not in text_of(raw).lower(), "%s holds %r" % (path, form)
            elif name.lower().endswith(".avhd"):
                disks += 1
                for what, named in vhd_parent_names(path):
                    for guid in old:
                        assert guid.lower() not in named.lower(), (path, what, named)
    return configs, disks


def check_import(target, guid, folder, states):
    """VM @guid of @target, imported with new IDs from @folder (the model @states): no old
    GUID anywhere, its saved state copied byte for byte under the new GUIDs, every
    disk opened by qemu-img and vhdiinfo, equal to its source (qemu-img compare), naming
    its parent's new file, and every state holding what the model says."""
    source, old = old_ids(folder)
    assert guid.upper() not in old, guid
    names = ["current"] + [s["name"] for s in source["snapshots"]]
    vm = assert_states(target, guid, states, names)
    assert vm["id"] == guid and len(vm["snapshots"]) == len(source["snapshots"]), vm
    configs, disks = assert_no_old_ids(target, old)
    assert configs == 1 + len(source["snapshots"]), configs
    assert disks > 0
    # Saved state: in folders named after the new GUIDs, files too, bytes as they were.
    by_name = {s["name"]: s for s in vm["snapshots"]}
    pairs = [(source["saved_state"], source["id"], vm["saved_state"], vm["id"])]
    pairs += [(s["saved_state"], s["id"], by_name[s["name"]]["saved_state"],
               by_name[s["name"]]["id"]) for s in source["snapshots"]]
    for was, was_id, now, now_id in pairs:
        assert (was is None) == (now is None), (was, now)
        if was is None:
            continue
        assert os.path.basename(now) == now_id, now
        for ext in (".vsv", ".bin"):
            assert digest(os.path.join(now, now_id + ext)) == \
                digest(os.path.join(was, was_id + ext)), (now, ext)
    # Each file of each chain, against the file it was copied from.
    pairs = [(source["disks"], vm["disks"])]
    pairs += [(s["disks"], by_name[s["name"]]["disks"]) for s in source["snapshots"]]
    for was_disks, now_disks in pairs:
        for was, now in zip(was_disks, now_disks):
            assert len(was["chain"]) == len(now["chain"]), (was, now)
            for level, (a, b) in enumerate(zip(was["chain"], now["chain"])):
                run(["qemu-img", "info", "-f", "vpc", b])
                run(["qemu-img", "compare", "-f", "vpc", "-F", "vpc", a, b])
                if level + 1 < len(now["chain"]):
                    parent = os.path.basename(now["chain"][level + 1])
                    assert vhdiinfo(b).get("Parent filename") == parent, b
                    for what, named in vhd_parent_names(b):
                        assert named.split("\\")[-1] == parent, (b, what, named)
                else:
                    run(["vhdiinfo", b])
    return vm


# ---- the imported VM lives on ----

def store_is_empty(target):
    """Nothing of any VM is left in the store: its own files and empty folders only."""
    own_files = {"switches.txt", ".impexfs.lock"}
    own_folders = {VMS, DISKS, SNAPSHOTS, ".impex-journals", os.path.join(DISKS, ".impex-staging")}
    left = []
    for folder, dirs, files in os.walk(target):
        rel = os.path.relpath(folder, target)
        left += [os.path.join(rel, n) for n in files if rel != "." or n not in own_files]
        left += [os.path.join(rel, n) for n in dirs
                 if os.path.normpath(os.path.join(rel, n)) not in own_folders]
    assert not left, left


def lives_on(target, guid, states, first):
    """Snapshot, apply (@first, a snapshot the import brought, then the new one), export,
    the export mount, delete with the disks: each works on the imported VM."""
    vm = as_json(ok("vm", "show", "--json", "--store", target, guid))
    names = ["current"] + [s["name"] for s in vm["snapshots"]]
    ok("vm", "snapshot", "--store", target, guid, "after import")
    states = dict(states, **{"after import": states["current"]})
    vm = assert_states(target, guid, states, names + ["after import"])
    assert len(vm["snapshots"]) == len(names), vm
    ok("vm", "apply", "--store", target, guid, first)
    assert_states(target, guid, dict(states, current=states[first]), names + ["after import"])
    ok("vm", "apply", "--store", target, guid, "after import")
    assert_states(target, guid, states, names + ["after import"])
    ok("export", "--store", target, guid, "out")
    exported = as_json(ok("vm", "show", "--json", "--store", "out", guid))
    assert exported["problem"] is None and len(exported["snapshots"]) == len(names), exported
    need("fusermount3")
    with Mount(target, "emnt") as m:
        assert os.listdir(os.path.join(m.point, "vms")) == [vm["name"]]
        assert os.path.isfile(os.path.join(m.point, "vms", vm["name"], VMS, guid + ".xml"))
        assert sorted(os.listdir(os.path.join(m.point, "by-id"))) == \
            sorted([guid] + [s["id"] for s in vm["snapshots"]])
    result = ok("vm", "delete", "--disks", "--store", target, guid)
    assert result.stderr == "", result
    store_is_empty(target)


# ---- the tests ----

def target_store():
    """A new store whose host has the switches the sources' adapters name."""
    target = new_store("target")
    for switch in ("External", "Internal"):
        ok("switch", "add", "--store", target, switch)
    return target


def imported_by_cli(folder):
    target = target_store()
    return target, ok("import", "--store", target, folder).stdout.split()[0]


def imported_by_mount(folder):
    need("fusermount3")
    target = target_store()
    with Mount(target, "mnt", "-o", "import") as m:
        run(["cp", "-r", folder, os.path.join(m.point, "copied")])
        imp = wait_state(m.point, "copied")
        assert imp["errors"] == [], imp
    return target, imp["vm"]["id"]


def test_hyperv_2012_export_imported_by_cli():
    need("qemu-img", "vhdiinfo")
    states = hyperv_folder("hyperv")
    target, guid = imported_by_cli("hyperv")
    check_import(target, guid, "hyperv", states)
    lives_on(target, guid, states, "first")


def test_hyperv_2012_export_imported_through_the_mount():
    need("qemu-img", "vhdiinfo")
    states = hyperv_folder("hyperv", encodings=("utf-8", "utf-16", "utf-8"))
    target, guid = imported_by_mount("hyperv")
    check_import(target, guid, "hyperv", states)
    lives_on(target, guid, states, "first")


def test_own_export_imported_by_cli():
    need("qemu-img", "vhdiinfo")
    states = own_folder("exported")
    target, guid = imported_by_cli("exported")
    check_import(target, guid, "exported", states)
    lives_on(target, guid, states, "s2")


def test_own_export_imported_through_the_mount():
    need("qemu-img", "vhdiinfo")
    states = own_folder("exported")
    target, guid = imported_by_mount("exported")
    check_import(target, guid, "exported", states)
    lives_on(target, guid, states, "s2")


def test_kept_ids_keep_their_names():
    """generate_new_id = false: the GUIDs, and the names made of them, stay; a VM whose own
    logical_id an earlier impex import left at another GUID is given its own."""
    need("qemu-img", "vhdiinfo")
    stale = hv.guid()
    states = hyperv_folder("hyperv", vm_logical_id=stale)
    source, _ = old_ids("hyperv")
    target = target_store()
    write("keep.settings", "generate_new_id = false\n")
    guid = ok("import", "--store", target, "--settings", "keep.settings",
              "hyperv").stdout.split()[0]
    assert guid == source["id"]
    for sub in (VMS, DISKS, SNAPSHOTS):
        assert sorted(os.listdir(os.path.join(target, sub))) == \
            sorted(os.listdir(os.path.join("hyperv", sub))), sub
    with open(os.path.join(target, VMS, guid + ".xml"), "rb") as f:
        text = text_of(f.read())
    assert '<logical_id type="string">%s</logical_id>' % guid in text, text
    assert stale not in text
    assert_states(target, guid, states, ["current", "first", "second"])
    lives_on(target, guid, states, "first")


if __name__ == "__main__":
    if not os.path.exists("/dev/fuse"):
        print("1..0 # SKIP no /dev/fuse")
        sys.exit(0)
    run_tests(globals())
