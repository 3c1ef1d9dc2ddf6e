"""VMs with VHDX disks everywhere the mission goes: the export mount's vms/,
snapshots/ and raw/, `impex export`, and the import (CLI and mount).

The VMs are generation 2 VMs made by impex (VHDX disks, AVHDX checkpoints);
what each state holds is modelled here from the writes (the model of
test_snapshots), and a VHDX whose log is not empty is crafted by
tests/vhdxcraft.py with its model. Referees: qemu-img (`check`, `compare` of
the merged dynamic VHDX; it opens no AVHDX), vhdiinfo, and the models. Every
mount is unmounted with fusermount3 -u, also when a test fails.
"""

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import vhdxcraft as vc  # noqa: E402
from impexlib import DISKS, as_json, need, new_store, ok, vm_new  # noqa: E402
from taplib import have, run, run_tests  # noqa: E402
from test_mount import IMPEXFS, Mount  # noqa: E402
from test_snapshots import Model, first_difference, pattern, vm_write  # noqa: E402

MiB = 1024 * 1024
SIZE = 40 * MiB  # more than one 32 MiB block


def show(store, vm):
    return as_json(ok("vm", "show", "--json", "--store", store, vm))


def info(path):
    return json.loads(ok("vhd", "info", "--json", path).stdout)


def cat(path):
    return ok("vhd", "cat", path, text=False).stdout


def assert_content(path, want, what):
    problem = first_difference(cat(path), want)
    assert problem is None, "%s: %s" % (what, problem)


def assert_merged_vhdx(path, want):
    """A merged disk: a dynamic VHDX with no parent and an empty log, that qemu-img
    checks clean and finds equal to @want, and vhdiinfo opens."""
    shown = info(path)
    assert shown["format"] == "VHDX" and shown["type"] == "dynamic", shown
    assert not shown["log_replayed"] and shown["parent_locator"] is None, shown
    with open("want.raw", "wb") as f:
        f.write(want)
    if have("qemu-img"):
        run(["qemu-img", "check", "-f", "vhdx", path])
        run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", path, "want.raw"])
    if have("vhdiinfo"):
        out = run(["vhdiinfo", path]).stdout
        assert "VHDX" in out and "Dynamic" in out, out
    assert_content(path, want, path)
    os.unlink("want.raw")


def generation_2_vm(store):
    """VM "g2": one 40 MiB VHDX, checkpoints "c1" and "c2" (AVHDX), writes around
    them at sector granularity, across the 32 MiB block edge, the first and last
    sectors. Returns (GUID, model)."""
    guid = vm_new(store, "--generation", "2", "--disk", "scsi:40M", "g2")
    model = Model([SIZE])
    vm_write(store, guid, model, 0, 0, pattern(1, 8192))
    vm_write(store, guid, model, 0, 32 * MiB - 1024, pattern(2, 4096))
    model.keep("c1")
    ok("vm", "snapshot", "--store", store, guid, "c1")
    vm_write(store, guid, model, 0, 512, pattern(3, 512))
    vm_write(store, guid, model, 0, SIZE - 512, pattern(4, 512))
    model.keep("c2")
    ok("vm", "snapshot", "--store", store, guid, "c2")
    vm_write(store, guid, model, 0, 5 * MiB + 512 * 7, pattern(5, 512 * 9))
    model.keep("now")
    return guid, model


def test_export_mount_serves_vhdx_vms():
    """vms/ carries the VHDX and its AVHDX levels relocated (relative_path alone,
    parent_linkage kept), snapshots/ each checkpoint merged into one dynamic
    VHDX, raw/ the content; impex export writes the same bytes as the mount."""
    need("qemu-img")
    store = new_store()
    guid, model = generation_2_vm(store)
    vm = show(store, guid)
    top = vm["disks"][0]["path"]
    assert top.endswith(".avhdx") and vm["disks"][0]["format"] == "VHDX", vm
    with Mount(store, "mnt") as m:
        folder = os.path.join(m.point, "vms", "g2")
        names = sorted(os.listdir(os.path.join(folder, DISKS)))
        assert names[0] == "g2.vhdx" and len(names) == 3, names
        assert all(n.endswith(".avhdx") for n in names[1:]), names
        run(["cp", "-r", folder, "copy"])
        run(["rsync", "-a", folder + "/", "synced/"])
        for name in ("c1", "c2"):
            snap = os.path.join(m.point, "snapshots", "g2", name)
            run(["cp", "-r", snap, "snap-" + name])
            raw = os.path.join(m.point, "raw", "g2", name, "g2.img")
            with open(raw, "rb") as f:
                problem = first_difference(f.read(), model.states[name][0])
            assert problem is None, "raw/g2/%s: %s" % (name, problem)
        errors = m.stderr()
    assert "error" not in errors.lower(), errors
    # The copies: a chain that names its parents by relative_path alone.
    copy_top = os.path.join("copy", DISKS, os.path.basename(top))
    shown = info(copy_top)
    assert set(shown["parent_locator"]) == {"parent_linkage", "relative_path"}, shown
    assert all(level["found_by"].startswith("relative_path")
               for level in shown["chain"][1:]), shown
    assert shown["parent_locator"]["parent_linkage"] == shown["chain"][1]["data_write_guid"]
    assert_content(copy_top, model.states["now"][0], "the copied chain")
    run(["diff", "-r", "copy", "synced"])
    ok("vm", "show", "--store", "copy", "g2")
    # Each checkpoint, an independent VM with a merged VHDX its configuration names.
    for name in ("c1", "c2"):
        merged = os.path.join("snap-" + name, DISKS, "g2.vhdx")
        assert_merged_vhdx(merged, model.states[name][0])
        alone = show(os.path.realpath("snap-" + name), "g2")
        assert alone["disks"][0]["path"] == os.path.realpath(merged), alone
    # impex export: the same bytes as the mount.
    ok("export", "--store", store, "g2", "exported")
    run(["diff", "-r", "copy", "exported"])


def test_import_copies_and_relinks_vhdx_chains():
    """An export of a generation 2 VM imported by impex import and by the import
    mount: a new VM whose AVHDX chain reads as the model, in the store's folder."""
    need("qemu-img")
    store = new_store()
    guid, model = generation_2_vm(store)
    ok("export", "--store", store, "g2", "exported")
    target = new_store("target")
    out = ok("import", "--store", target, "exported").stdout.split()
    new = out[0]
    vm = show(target, new)
    top = vm["disks"][0]["path"]
    assert top.startswith(target) and top.endswith(".avhdx"), vm
    assert vm["disks"][0]["format"] == "VHDX" and len(vm["disks"][0]["chain"]) == 3, vm
    assert_content(top, model.states["now"][0], "the imported chain")
    assert [s["name"] for s in vm["snapshots"]] == ["c1", "c2"], vm
    for snap in vm["snapshots"]:
        assert_content(snap["disks"][0]["path"], model.states[snap["name"]][0], snap["name"])
    # The import mount: a checkpoint copied in, merged VHDX and all.
    with Mount(store, "exp") as e:
        os.makedirs("imp")
        with Mount(target, "imp", "-o", "import") as i:
            run(["cp", "-r", os.path.join(e.point, "snapshots", "g2", "c1"),
                 os.path.join(i.point, "c1")])
            status = os.path.join(i.point, ".impex-status")
            for _ in range(300):
                with open(status) as f:
                    state = json.load(f)
                mine = [x for x in state["imports"] if x["folder"] == "c1"]
                if mine and mine[0]["state"] == "registered":
                    break
                time.sleep(0.1)
            assert mine and mine[0]["state"] == "registered", state
            imported = show(target, mine[0]["vm"]["id"])
    disk = imported["disks"][0]["path"]
    assert disk.endswith(".vhdx") and imported["disks"][0]["format"] == "VHDX", imported
    assert_merged_vhdx(disk, model.states["c1"][0])


def test_dirty_log_served_replayed_with_an_empty_log():
    """A VM whose VHDX holds a log (a host that crashed): vms/ serves it as the log
    leaves it, with an empty log, so a reader that will not replay (qemu-img) reads
    the replayed content; the store's file is not touched."""
    need("qemu-img")
    store = new_store()
    guid = vm_new(store, "--generation", "2", "--disk", "scsi:24M", "crashed")
    disk = show(store, guid)["disks"][0]["path"]
    img = vc.build(24 * MiB, "dynamic", block_size=MiB,
                   writes=[(0, pattern(10, 4096)), (3 * MiB, pattern(11, 8192)),
                           (20 * MiB, pattern(12, 512))])
    # The log holds the BAT sector that allocates block 3: the file alone lacks it.
    index = img.payload_index(3)
    sector = img.layout["bat"] + index * 8 // vc.LOG_SECTOR * vc.LOG_SECTOR
    old = bytearray(img.get(sector, vc.LOG_SECTOR))
    at = img.layout["bat"] + index * 8 - sector
    old[at:at + 8] = bytes(8)
    img.dirty([sector], old={sector: bytes(old)}, sequence=5)
    img.save(disk)
    want = img.expected_bytes()
    before = open(disk, "rb").read()
    assert info(disk)["log_replayed"], "the crafted file has no log to replay"
    with Mount(store, "mnt") as m:
        served = os.path.join(m.point, "vms", "crashed", DISKS, os.path.basename(disk))
        shutil.copy(served, "copy.vhdx")
    assert open(disk, "rb").read() == before, "the store's file changed"
    shown = info("copy.vhdx")
    assert not shown["log_replayed"], shown
    with open("want.raw", "wb") as f:
        f.write(want)
    run(["qemu-img", "check", "-f", "vhdx", "copy.vhdx"])
    run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", "copy.vhdx", "want.raw"])
    assert_content("copy.vhdx", want, "the served file")


if __name__ == "__main__":
    run_tests(globals())
