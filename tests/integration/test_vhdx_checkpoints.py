"""A generation 2 VM with checkpoints, as Hyper-V 2012 R2 leaves it, everywhere the
mission goes: the export mount's vms/, snapshots/ and raw/, `impex export`, and the
import (the mount and `impex import`).

Nothing the VM holds is made by impexfs: the configurations come from hyperv2012.py
(UTF-16, Windows paths, a snapshot configuration per checkpoint naming its level of the
chain), every disk file from tests/vhdxcraft.py ([MS-VHDX] alone): two SCSI disks,
"sys" (512-byte logical sectors) and "data" (4096), each a dynamic base.vhdx under two
AVHDX levels named `<stem>_<SNAPSHOT-GUID>.avhdx`, parent locators with every key Hyper-V
writes (parent_linkage, relative_path, volume_path, absolute_win32_path), sector-granular
writes across blocks, the first and last sectors, a ZERO block over the parent's data.
sys's base and data's middle level hold a log (a host that crashed; the middle level's
parent locator lies in its log alone). What each state holds is layered here from the
crafter's models (test_vhdx_chains.merged). Referees: qemu-img (`info`, `check`,
`compare` of dynamic VHDX with 512-byte sectors: it refuses 4096-byte ones and opens no
AVHDX), libvhdi (vhdiinfo for every file, vhdimount for the merged disks: it misreads
relative_path, so no relocated chain), the headers read here, tests/vhdxdump (the
project's reader, alone on one file), and the models. Every mount is unmounted with
fusermount3 -u, also when a test fails.
"""

import json
import os
import re
import struct
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import hyperv2012 as hv  # noqa: E402
import vhdxcraft as vc  # noqa: E402
from impexlib import DISKS, SNAPSHOTS, VMS, as_json, need, new_store, ok, tree_state  # noqa: E402
from taplib import have, run, run_tests  # noqa: E402
from test_import_mount import wait_state  # noqa: E402
from test_mount import Mount, files_of  # noqa: E402
from test_snapshots import first_difference, pattern  # noqa: E402
from test_vhdx_chains import merged  # noqa: E402

MiB = vc.MiB
VHDXDUMP = os.environ.get("VHDXDUMP", "vhdxdump")
STATES = ["first", "second", "current"]
ZERO_GUID = "{00000000-0000-0000-0000-000000000000}"
VOLUME = "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\Users\\vagrant\\box\\"


# ---- the VM, as Hyper-V 2012 R2 leaves it ----

def hyperv_locator(parent, name):
    """Every key Hyper-V writes, naming the parent @parent (an Image) saved as @name."""
    return [("parent_linkage", vc.guid_text(parent.data_write_guid)),
            ("relative_path", ".\\" + name),
            ("volume_path", VOLUME + DISKS + "\\" + name),
            ("absolute_win32_path", hv.windows_path(DISKS, name))]


def dirty(img, sectors):
    """Move the 4 KiB file sectors at @sectors of @img into its log (the file holds zeros
    there): the model stays what the log makes of the file."""
    img.dirty(sectors, sequence=7)
    assert img.header_field(1, "log_guid") != bytes(16)


def sys_chain(names):
    """sys: 40 MiB, 512-byte sectors, a base of Hyper-V's 32 MiB blocks (two, the second
    cut by the disk's end) under two levels of 2 MiB blocks; the base holds a log with
    the BAT sector that allocates block 1 and a sector of block 0's data."""
    size, s = 40 * MiB, 512
    base = vc.build(size, "dynamic", logical=s,
                    writes=[(0, pattern(1, 64 * 1024)), (10 * MiB, pattern(2, MiB)),
                            (31 * MiB, pattern(3, 2 * MiB)),  # across the 32 MiB block edge
                            (size - s, pattern(4, s))])
    dirty(base, [base.layout["bat"], base.layout["blocks"][0] + 8 * 4096])
    mid = vc.build(size, "differencing", logical=s,
                   writes=[(0, pattern(5, s)),  # the first sector
                           (2 * MiB - 2 * s, pattern(6, 4 * s)),  # across a 2 MiB block edge
                           (31 * MiB + 3 * s, pattern(7, 5 * s))],  # over the base's data
                   states={5: vc.ZERO,  # zeros over the base's data at 10 MiB
                           7: vc.FULLY_PRESENT},
                   locator=hyperv_locator(base, names[0]))
    top = vc.build(size, "differencing", logical=s,
                   writes=[(s, pattern(8, 2 * s)), (20 * MiB + 7 * s, pattern(9, 9 * s)),
                           (size - s, pattern(10, s))],  # the last sector
                   locator=hyperv_locator(mid, names[1]))
    return [base, mid, top]


def data_chain(names):
    """data: 24 MiB, 4096-byte sectors; the middle level holds a log with its metadata
    table, its metadata items (the parent locator among them), its BAT sector and its
    sector bitmap sector: the file alone has none of them, so its relocation is made on
    the replayed file."""
    size, s = 24 * MiB, 4096
    base = vc.build(size, "dynamic", logical=s, physical=4096,
                    writes=[(0, pattern(21, 3 * MiB)), (size - s, pattern(22, s))])
    mid = vc.build(size, "differencing", logical=s, physical=4096,
                   writes=[(s, pattern(23, 2 * s)), (2 * MiB - s, pattern(24, 2 * s)),
                           (size - s, pattern(25, s))],
                   locator=hyperv_locator(base, names[0]))
    metadata = mid.layout["metadata"]
    dirty(mid, [metadata, metadata + 64 * 1024, mid.layout["bat"], mid.layout["bitmaps"][0]])
    top = vc.build(size, "differencing", logical=s, physical=4096,
                   writes=[(0, pattern(26, s)), (9 * MiB + 5 * s, pattern(27, 3 * s))],
                   states={1: vc.ZERO}, locator=hyperv_locator(mid, names[1]))
    return [base, mid, top]


class Checkpointed:
    """VM "box" (generation 2), checkpoint "first" (a root: the bases), checkpoint "second"
    (its child: the middle levels), the VM running on from "second" (the tops).

    Attributes: vm, snaps {name: GUID}, names {stem: [file of each level, base first]},
    images {stem: [Image of each level]}, states {state: [bytes of sys, bytes of data]}."""

    STEMS = ("sys", "data")

    def __init__(self):
        self.vm = hv.guid()
        self.snaps = {"first": hv.guid(), "second": hv.guid()}
        self.names, self.images = {}, {}
        for stem, build in (("sys", sys_chain), ("data", data_chain)):
            names = [stem + ".vhdx"] + ["%s_%s.avhdx" % (stem, self.snaps[n])
                                        for n in ("first", "second")]
            self.names[stem] = names
            self.images[stem] = build(names)
        self.states = {}
        for level, state in enumerate(STATES):
            self.states[state] = [merged(self.images[stem][level::-1]) for stem in self.STEMS]

    def level(self, state):
        return STATES.index(state)

    def configs(self):
        """(folder, GUID, text) of the VM's and the snapshots' configurations."""
        def drives(level):
            return [{"bus": "scsi", "controller": 0, "drive": i,
                     "path": hv.windows_path(DISKS, self.names[stem][level])}
                    for i, stem in enumerate(self.STEMS)]
        first, second = self.snaps["first"], self.snaps["second"]
        common = {"adapters": [], "generation": 2, "memory_mib": 16}
        return [
            (VMS, self.vm, hv.vm_config(self.vm, "box", disks=drives(2), snapshots=2,
                                        current=second, **common)),
            (SNAPSHOTS, first, hv.vm_config(self.vm, "first", disks=drives(0), parent="",
                                            type_id="Snapshots", snapshot_id=first, **common)),
            (SNAPSHOTS, second, hv.vm_config(self.vm, "second", disks=drives(1), parent=first,
                                             type_id="Snapshots", snapshot_id=second, **common)),
        ]

    def save(self, top):
        """Write the VM's files into the store or export folder @top."""
        for sub in (VMS, SNAPSHOTS, DISKS):
            os.makedirs(os.path.join(top, sub), exist_ok=True)
        for stem in self.STEMS:
            for img, name in zip(self.images[stem], self.names[stem]):
                img.save(os.path.join(top, DISKS, name))
        for folder, guid, text in self.configs():
            with open(os.path.join(top, folder, guid + ".xml"), "wb") as f:
                f.write(hv.encode(text, "utf-16"))


_BOX = []


def checkpointed():
    """The VM, built once for all the tests (each saves it in its own folder)."""
    if not _BOX:
        _BOX.append(Checkpointed())
    return _BOX[0]


def checkpointed_store():
    box = checkpointed()
    store = new_store()
    box.save(store)
    shown = show(store, box.vm)
    assert shown["problem"] is None, shown
    assert [d["format"] for d in shown["disks"]] == ["VHDX", "VHDX"], shown["disks"]
    assert [len(d["chain"]) for d in shown["disks"]] == [3, 3], shown["disks"]
    assert [s["name"] for s in shown["snapshots"]] == ["first", "second"], shown["snapshots"]
    return store, box


# ---- reading ----

def show(store, vm):
    return as_json(ok("vm", "show", "--json", "--store", store, vm))


def cat(path):
    return ok("vhd", "cat", path, text=False).stdout


def assert_equal(got, want, what):
    problem = first_difference(got, want)
    assert problem is None, "%s: %s" % (what, problem)


def dump_info(path):
    """tests/vhdxdump info: the file as the project's reader opens it, alone."""
    out = run([VHDXDUMP, "info", path]).stdout
    return dict(line.partition("=")[::2] for line in out.splitlines())


def dump_read(path):
    return run([VHDXDUMP, "read", path], text=False).stdout


def locator(info):
    return {k[len("locator."):]: v for k, v in info.items() if k.startswith("locator.")}


def assert_empty_log(info, path):
    """An empty log: LogGuid zero ([MS-VHDX] 2.2.2.1), nothing to replay, in the
    project's reader and in the current header as read here."""
    assert info["log_guid"] == ZERO_GUID and info["log_replayed"] == "0", (path, info)
    assert current_header(path)["log_guid"] == bytes(16), path


def current_header(path):
    """The current header of the VHDX at @path, read here from [MS-VHDX] 2.2.2: both
    headers must carry their signature and a right CRC-32C (a file written whole, not
    one that a crash left half-updated); the one of the greater sequence number wins."""
    raw = []
    with open(path, "rb") as f:
        for at in vc.HEADER_AT:
            f.seek(at)
            raw.append(f.read(4096))
    fields = []
    for at, header in zip(vc.HEADER_AT, raw):
        blank = header[:4] + bytes(4) + header[8:]
        assert header[:4] == b"head", "%s: no header at %d" % (path, at)
        assert vc.crc32c(blank) == int.from_bytes(header[4:8], "little"), \
            "%s: the header at %d has a wrong checksum" % (path, at)
        fields.append({name: struct.unpack_from(fmt, header, offset)[0]
                       for name, (offset, fmt) in vc.HEADER_FIELDS.items()})
    return max(fields, key=lambda h: h["sequence_number"])


def vhdiinfo(path):
    """libvhdi's view of one file: its fields by name ("Disk type", "Parent identifier")."""
    out = run(["vhdiinfo", path]).stdout
    return dict((k.strip(), v.strip()) for k, _, v in
                (line.partition(":") for line in out.splitlines() if ":" in line))


def vhdimount_read(path):
    """The content of the VHDX at @path (no parent) as libvhdi's vhdimount reads it."""
    os.mkdir("vhdi")
    try:
        run(["vhdimount", path, "vhdi"], timeout=60)
        with open(os.path.join("vhdi", "vhdi1"), "rb") as f:
            return f.read()
    finally:
        run(["fusermount3", "-u", "vhdi"], check=False)
        os.rmdir("vhdi")


def config_root(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:2] == b"\xff\xfe", path
    return ET.fromstring(raw[2:].decode("utf-16-le").split("?>", 1)[1])


def drive_paths(path):
    """The pathnames of the drives of configuration @path, in document order."""
    root = config_root(path)
    return [node.findtext("pathname") for node in root.iter()
            if re.match(r"^drive\d+$", node.tag) and node.findtext("pathname")]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def assert_merged_vhdx(path, want, logical):
    """A checkpoint's merged disk: one dynamic VHDX, no parent, an empty log, holding
    @want; qemu-img (512-byte sectors: it refuses 4096), vhdiinfo and the project's
    reader alone agree."""
    info = dump_info(path)
    assert info["type"] == "dynamic" and info["has_parent"] == "0", (path, info)
    assert info["logical_sector_size"] == str(logical) and info["size"] == str(len(want)), info
    assert info["locator_count"] == "0", info
    assert_empty_log(info, path)
    assert_equal(dump_read(path), want, path + " read alone")
    write("want.raw", want)
    if logical == 512:
        shown = json.loads(run(["qemu-img", "info", "--output=json", "-f", "vhdx", path]).stdout)
        assert shown["format"] == "vhdx" and shown["virtual-size"] == len(want), shown
        run(["qemu-img", "check", "-f", "vhdx", path])
        run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", path, "want.raw"])
    if have("vhdiinfo"):
        shown = vhdiinfo(path)
        assert shown["Format"].startswith("VHDX") and shown["Disk type"] == "Dynamic", shown
        assert shown["Bytes per sector"] == "%d bytes" % logical, shown
    if have("vhdimount") and os.path.exists("/dev/fuse"):
        assert_equal(vhdimount_read(path), want, path + " read by vhdimount")
    os.unlink("want.raw")


# ---- the tests ----

def test_vms_folder_holds_the_chains_relocated():
    """vms/box/ by cp -r and rsync -a: every file of the VM; each AVHDX names its parent by
    relative_path alone (no volume or absolute path), parent_linkage kept, an empty log;
    the copied chains read as the model in every state; the configurations name the
    AVHDX and VHDX files in the folder; `impex export` writes the same bytes."""
    need("fusermount3", "rsync")
    store, box = checkpointed_store()
    with Mount(store, "mnt") as m:
        folder = os.path.join(m.point, "vms", "box")
        listed = sorted(os.listdir(os.path.join(folder, DISKS)))
        want = sorted(n for stem in box.STEMS for n in box.names[stem])
        assert listed == want, (listed, want)
        assert sorted(os.listdir(os.path.join(folder, SNAPSHOTS))) == sorted(
            g + ".xml" for g in box.snaps.values()), os.listdir(os.path.join(folder, SNAPSHOTS))
        assert os.listdir(os.path.join(folder, VMS)) == [box.vm + ".xml"]
        run(["cp", "-r", folder, "copy"])
        run(["rsync", "-a", folder + "/", "synced/"])
        # The same sizes and times every time: a second rsync -a has nothing to copy.
        again = run(["rsync", "-a", "--itemize-changes", folder + "/", "synced/"]).stdout
        assert not [line for line in again.splitlines() if line.startswith(">f")], again
        errors = m.stderr()
    assert "impexfs:" not in errors, errors
    assert files_of("copy") == files_of("synced")
    ok("export", "--store", store, box.vm, "exported")
    assert files_of("exported") == files_of("copy")
    # The configurations name the files in the folder, each state its level.
    configs = [os.path.join("copy", VMS, box.vm + ".xml")] + [
        os.path.join("copy", SNAPSHOTS, box.snaps[s] + ".xml") for s in ("first", "second")]
    for path, level in zip(configs, (2, 0, 1)):
        assert drive_paths(path) == [DISKS + "\\" + box.names[stem][level]
                                     for stem in box.STEMS], (path, drive_paths(path))
    for i, stem in enumerate(box.STEMS):
        names, images = box.names[stem], box.images[stem]
        for level, name in enumerate(names):
            path = os.path.join("copy", DISKS, name)
            info = dump_info(path)
            assert_empty_log(info, path)
            assert info["data_write_guid"].lower() == vc.guid_text(
                images[level].data_write_guid), (path, info)
            if level:
                keys = locator(info)
                assert keys == {"parent_linkage": vc.guid_text(images[level - 1].data_write_guid),
                                "relative_path": ".\\" + names[level - 1]}, (path, keys)
            else:
                assert info["has_parent"] == "0" and info["locator_count"] == "0", info
            # libvhdi reads the headers and metadata, and the linkage of each level.
            if have("vhdiinfo"):
                shown = vhdiinfo(path)
                assert shown["Disk type"] == ("Differential" if level else "Dynamic"), shown
                assert shown["Bytes per sector"] == "%d bytes" % images[level].logical, shown
                if level:
                    assert shown["Parent identifier"] == vhdiinfo(os.path.join(
                        "copy", DISKS, names[level - 1]))["Identifier"], shown
            # The file alone (the parent's sectors as zeros) as its level's model.
            assert_equal(dump_read(path), images[level].expected_bytes(), path + " alone")
            # The chain from here down, through the relative paths alone.
            assert_equal(cat(path), box.states[STATES[level]][i], path)
            shown = json.loads(ok("vhd", "info", "--json", path).stdout)
            assert all(lvl["found_by"].startswith("relative_path")
                       for lvl in shown["chain"][1:]), shown["chain"]
    # The copy is a store of its own: the VM, its disks and checkpoints, as in the store.
    copied = show(os.path.realpath("copy"), box.vm)
    assert copied["problem"] is None, copied
    assert [os.path.basename(d["path"]) for d in copied["disks"]] == \
        [box.names[stem][2] for stem in box.STEMS], copied["disks"]
    assert [s["name"] for s in copied["snapshots"]] == ["first", "second"], copied


def test_logs_are_served_replayed_and_empty():
    """sys's base and data's middle level hold a log: vms/ serves each as the log leaves it,
    with an empty log, so that a reader that will not replay reads the replayed content
    (qemu-img checks and compares the copied base); the store's files are not touched."""
    need("fusermount3", "qemu-img")
    store, box = checkpointed_store()
    for stem, level in (("sys", 0), ("data", 1)):
        path = os.path.join(store, DISKS, box.names[stem][level])
        assert dump_info(path)["log_replayed"] == "1", "%s has no log to replay" % path
    before = tree_state(store)
    with Mount(store, "mnt") as m:
        for stem, level in (("sys", 0), ("data", 1)):
            name = box.names[stem][level]
            run(["cp", os.path.join(m.point, "vms", "box", DISKS, name), name])
    assert tree_state(store) == before, "the store changed"
    base, mid = box.names["sys"][0], box.names["data"][1]
    for path, img in ((base, box.images["sys"][0]), (mid, box.images["data"][1])):
        info = dump_info(path)
        assert_empty_log(info, path)
        assert info["sequence_number"] != "0", info
        assert_equal(dump_read(path), img.expected_bytes(), path)
    write("want.raw", box.states["first"][0])
    run(["qemu-img", "check", "-f", "vhdx", base])
    run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", base, "want.raw"])


def test_snapshots_are_merged_vhdx_and_raw_images_hold_each_state():
    """snapshots/box/<checkpoint>/ is a VM of its own whose configuration names one merged
    dynamic VHDX per disk, `<stem>.vhdx`, holding the checkpoint's content (qemu-img,
    vhdiinfo, the project's reader alone); raw/box/<state>/<stem>.img holds each state."""
    need("fusermount3", "qemu-img")
    store, box = checkpointed_store()
    raws = {}
    with Mount(store, "mnt") as m:
        assert sorted(os.listdir(os.path.join(m.point, "snapshots", "box"))) == \
            ["first", "latest", "second"]
        assert os.readlink(os.path.join(m.point, "snapshots", "box", "latest")) == "second"
        for name in ("first", "second"):
            run(["cp", "-r", os.path.join(m.point, "snapshots", "box", name), name])
        assert sorted(os.listdir(os.path.join(m.point, "raw", "box"))) == \
            sorted(STATES + ["latest"])
        for state in STATES:
            folder = os.path.join(m.point, "raw", "box", state)
            assert sorted(os.listdir(folder)) == ["data.img", "sys.img"], os.listdir(folder)
            for stem in box.STEMS:
                with open(os.path.join(folder, stem + ".img"), "rb") as f:
                    raws[state, stem] = f.read()
        errors = m.stderr()
    assert "impexfs:" not in errors, errors
    for state in STATES:
        for i, stem in enumerate(box.STEMS):
            assert_equal(raws[state, stem], box.states[state][i],
                         "raw/box/%s/%s.img" % (state, stem))
    for name in ("first", "second"):
        assert sorted(os.listdir(os.path.join(name, DISKS))) == ["data.vhdx", "sys.vhdx"]
        configs = os.listdir(os.path.join(name, VMS))
        assert len(configs) == 1 and configs[0].endswith(".xml"), configs
        guid = configs[0][:-4]
        assert guid not in (box.vm, box.snaps[name]), guid
        assert drive_paths(os.path.join(name, VMS, configs[0])) == \
            [DISKS + "\\sys.vhdx", DISKS + "\\data.vhdx"]
        for i, (stem, logical) in enumerate((("sys", 512), ("data", 4096))):
            assert_merged_vhdx(os.path.join(name, DISKS, stem + ".vhdx"),
                               box.states[name][i], logical)
        alone = show(os.path.realpath(name), guid)
        assert alone["problem"] is None and alone["snapshots"] == [], alone
        assert [d["format"] for d in alone["disks"]] == ["VHDX", "VHDX"], alone["disks"]
        ok("export", "--store", store, "box/" + name, name + ".exported")
        assert files_of(name + ".exported") == files_of(name), name


def test_the_vm_alone_has_its_chains_merged_into_vhdx():
    """copy_snapshot_configuration=none: vms/box/ holds the VM alone, its GUID kept, each
    current chain merged into one dynamic VHDX `<stem>.vhdx` holding the current state."""
    need("fusermount3", "qemu-img")
    store, box = checkpointed_store()
    with Mount(store, "mnt", "-o", "copy_snapshot_configuration=none") as m:
        run(["cp", "-r", os.path.join(m.point, "vms", "box"), "alone"])
    assert os.listdir(os.path.join("alone", SNAPSHOTS)) == []
    assert os.listdir(os.path.join("alone", VMS)) == [box.vm + ".xml"]
    assert sorted(os.listdir(os.path.join("alone", DISKS))) == ["data.vhdx", "sys.vhdx"]
    assert drive_paths(os.path.join("alone", VMS, box.vm + ".xml")) == \
        [DISKS + "\\sys.vhdx", DISKS + "\\data.vhdx"]
    for i, (stem, logical) in enumerate((("sys", 512), ("data", 4096))):
        assert_merged_vhdx(os.path.join("alone", DISKS, stem + ".vhdx"),
                           box.states["current"][i], logical)


def imported(target, guid, box, states=STATES):
    """The VM @guid of @target holds the model in each state: its disks and its checkpoints'
    read through the copied and relinked chains, in the target's folder."""
    vm = show(target, guid)
    assert vm["problem"] is None, vm
    assert [d["format"] for d in vm["disks"]] == ["VHDX", "VHDX"], vm["disks"]
    new_ids = {s["name"]: s["id"] for s in vm["snapshots"]}
    for i, disk in enumerate(vm["disks"]):
        stem = box.STEMS[i]
        assert disk["path"].startswith(target + "/"), disk
        assert len(disk["chain"]) == len(states), disk
        assert_equal(cat(disk["path"]), box.states[states[-1]][i], disk["path"])
        # Top first: each file named with its new snapshot GUID (" (2)" before the
        # extension where an earlier import took the name), naming its parent's new
        # file by relative_path alone, its parent_linkage the parent's DataWriteGuid.
        want = [stem] + ["%s_%s" % (stem, new_ids[s]) for s in states[:-1]]
        for path, name, ext in zip(disk["chain"][::-1], want, [".vhdx"] + [".avhdx"] * 2):
            assert re.match(r"^%s( \(\d+\))?%s$" % (re.escape(name.lower()), ext),
                            os.path.basename(path).lower()), (path, name)
        infos = [dump_info(path) for path in disk["chain"]]
        for path, info in zip(disk["chain"], infos):
            assert_empty_log(info, path)
        for path, info, parent, parent_info in zip(disk["chain"], infos, disk["chain"][1:],
                                                   infos[1:]):
            keys = locator(info)
            assert keys.get("parent_linkage", "").lower() == \
                parent_info["data_write_guid"].lower(), (path, keys, parent_info)
            assert keys == {"parent_linkage": keys["parent_linkage"],
                            "relative_path": ".\\" + os.path.basename(parent)}, (path, keys)
    assert [s["name"] for s in vm["snapshots"]] == states[:-1], vm["snapshots"]
    for snap in vm["snapshots"]:
        for i, disk in enumerate(snap["disks"]):
            assert_equal(cat(disk["path"]), box.states[snap["name"]][i], snap["name"])
    listed = ok("vm", "show", "-v", "--store", target, guid).stdout
    for disk in vm["disks"]:
        assert disk["path"] in listed and "VHDX" in listed, listed
    return vm


def import_through_the_mount(target, folder, name):
    """cp -r of @folder into the import mount of @target as @name: the new VM's GUID."""
    os.makedirs("imp", exist_ok=True)
    with Mount(target, "imp", "-o", "import") as i:
        run(["cp", "-r", folder, os.path.join(i.point, name)])
        done = wait_state(i.point, name)
        errors = i.stderr()
    assert "impexfs:" not in errors, errors
    return done["vm"]["id"]


def test_the_export_imports_by_the_mount_and_by_impex_import():
    """vms/box/ copied out, then copied into the import mount, and given to `impex
    import`: each registers a VM whose AVHDX chains, copied and relinked, read as the
    model in every state, and `impex vm show` lists its disks."""
    need("fusermount3")
    store, box = checkpointed_store()
    with Mount(store, "mnt") as m:
        run(["cp", "-r", os.path.join(m.point, "vms", "box"), "export"])
    before = tree_state("export")
    target = new_store("target")
    guid = import_through_the_mount(target, os.path.realpath("export"), "box")
    vm = imported(target, guid, box)
    assert guid != box.vm and vm["name"] == "box", vm
    out = ok("import", "--store", target, "export").stdout.split()
    vm = imported(target, out[0], box)
    assert out[0] not in (box.vm, guid), out
    assert any(" (" in os.path.basename(p) for d in vm["disks"] for p in d["chain"]), vm
    assert tree_state("export") == before, "the import changed the export folder"


def test_a_checkpoint_exported_alone_imports():
    """snapshots/box/second/ (an independent VM with merged VHDX disks) imports through the
    mount and by `impex import`: one VHDX per disk holding the checkpoint's content."""
    need("fusermount3")
    store, box = checkpointed_store()
    with Mount(store, "mnt") as m:
        run(["cp", "-r", os.path.join(m.point, "snapshots", "box", "second"), "second"])
    target = new_store("target")
    by_mount = import_through_the_mount(target, os.path.realpath("second"), "second")
    by_cli = ok("import", "--store", target, "second").stdout.split()[0]
    assert by_mount != by_cli
    for guid in (by_mount, by_cli):
        vm = show(target, guid)
        assert vm["problem"] is None and vm["snapshots"] == [], vm
        assert [d["format"] for d in vm["disks"]] == ["VHDX", "VHDX"], vm["disks"]
        for i, disk in enumerate(vm["disks"]):
            assert disk["path"].endswith(".vhdx") and disk["chain"] == [disk["path"]], disk
            assert_equal(cat(disk["path"]), box.states["second"][i], disk["path"])
            assert_empty_log(dump_info(disk["path"]), disk["path"])


def test_a_folder_with_logs_imports_replayed():
    """The VM's folder as Hyper-V left it (logs and all, Windows paths, every locator key),
    copied into the import mount and given to `impex import`: the files whose log was not
    empty are written as the log leaves them, with an empty log (never changed where they
    lie), the chains relinked; the folder given to impex import is not changed."""
    need("fusermount3")
    box = checkpointed()
    box.save("hyperv")
    before = tree_state("hyperv")
    target = new_store("target")
    guid = import_through_the_mount(target, os.path.realpath("hyperv"), "box")
    imported(target, guid, box)
    out = ok("import", "--store", target, "hyperv").stdout.split()
    imported(target, out[0], box)
    assert tree_state("hyperv") == before, "impex import changed the folder"


if __name__ == "__main__":
    run_tests(globals())
