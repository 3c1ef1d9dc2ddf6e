"""VHDX made and written by impex: `vhd create --format vhdx`, `vhd snapshot` of a
VHDX, `vhd write`, `vm new` (VHDX by default for generation 2, `--disk-format`),
`vm snapshot`, `vm apply` and `vm delete --disks` of VMs with VHDX disks.

The expected content is a bytearray that takes the same writes here; the files
are refereed by qemu-img (`info`, `check`, `compare` of fixed and dynamic VHDX
with 512-byte sectors: QEMU 7.2 opens no differencing VHDX and no 4096-byte
sectors); test_vhdx_write has libvhdi read the writer's chains.
"""

import json
import os
import random

from impexlib import config_path, new_store, ok, refused, vm_new
from taplib import have, run, run_tests

MiB = 1024 * 1024


def data(n, seed):
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(n))


def write(path, offset, payload):
    with open("input.bin", "wb") as f:
        f.write(payload)
    ok("vhd", "write", path, str(offset), "input.bin")


def cat(path):
    return ok("vhd", "cat", path, text=False).stdout


def info(path):
    return json.loads(ok("vhd", "info", "--json", path).stdout)


def test_create_snapshot_write_both_sector_sizes():
    """A dynamic VHDX and two AVHDX levels over it, written at sector granularity
    across blocks, read back equal to the model; the base passes qemu-img check
    and compare. (libvhdi reads impex's chains in test_vhdx_write.)"""
    for sector in (512, 4096):
        size = 40 * MiB
        expected = bytearray(size)
        ok("vhd", "create", "--sector-size", str(sector), "base.vhdx", "40M")
        shown = info("base.vhdx")
        assert shown["format"] == "VHDX" and shown["type"] == "dynamic", shown
        assert shown["block_size"] == 32 * MiB, shown  # Hyper-V's default
        assert shown["logical_sector_size"] == sector and shown["physical_sector_size"] == 4096
        writes = [(0, [(0, data(3 * sector, 1)), (32 * MiB - sector, data(2 * sector, 2))]),
                  (1, [(sector, data(sector, 3)), (2 * MiB - sector, data(4 * sector, 4))]),
                  (2, [(0, data(sector, 5)), (size - sector, data(sector, 6)),
                       (5 * MiB, data(2 * MiB, 7))])]
        names = ["base.vhdx", "mid.avhdx", "top.avhdx"]
        for level, pieces in writes:
            if level:
                ok("vhd", "snapshot", names[level - 1], names[level])
            for offset, payload in pieces:
                write(names[level], offset, payload)
                expected[offset:offset + len(payload)] = payload
            if level == 0 and sector == 512 and have("qemu-img"):
                with open("base.raw", "wb") as f:
                    f.write(expected)
                run(["qemu-img", "check", "-f", "vhdx", "base.vhdx"])
                run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", "base.vhdx", "base.raw"])
        top = info("top.avhdx")
        assert [level["found_by"] for level in top["chain"]][1:] == [
            "relative_path '.\\mid.avhdx'", "relative_path '.\\base.vhdx'"], top
        assert top["parent_locator"]["parent_linkage"] == top["chain"][1]["data_write_guid"]
        assert cat("top.avhdx") == bytes(expected)
        # An unaligned write is refused naming the sector size.
        if sector == 4096:
            result = refused("vhd", "write", "top.avhdx", "512", "input.bin")
            assert "4096" in result.stderr, result.stderr
        for name in names:
            os.unlink(name)


def test_create_fixed_and_format_by_name():
    """--format and the name's extension choose the format; a fixed VHDX is what
    qemu-img reads as one; wrong sizes are usage errors that make nothing."""
    ok("vhd", "create", "--type", "fixed", "fixed.vhdx", "8M")
    assert info("fixed.vhdx")["type"] == "fixed"
    if have("qemu-img"):
        out = run(["qemu-img", "info", "--output=json", "-f", "vhdx", "fixed.vhdx"]).stdout
        assert json.loads(out)["virtual-size"] == 8 * MiB, out
        run(["qemu-img", "check", "-f", "vhdx", "fixed.vhdx"])
    ok("vhd", "create", "--format", "vhdx", "named.vhd", "8M")
    assert info("named.vhd")["format"] == "VHDX"
    ok("vhd", "create", "plain.vhd", "8M")
    assert info("plain.vhd")["format"] == "VHD"
    refused("vhd", "create", "--sector-size", "4096", "bad.vhd", "8M", status=(2,),
            mentions=("512",))
    refused("vhd", "create", "--format", "qcow2", "bad.vhdx", "8M", status=(2,))
    refused("vhd", "create", "--sector-size", "1024", "bad.vhdx", "8M", status=(2,))
    assert not os.path.exists("bad.vhd") and not os.path.exists("bad.vhdx")


def test_generation_2_vm_has_vhdx_disks_and_checkpoints():
    """vm new makes VHDX disks for generation 2 (VHD for generation 1, either by
    --disk-format); vm snapshot stacks AVHDX checkpoints; apply and delete --disks
    handle them."""
    store = new_store()
    gen2 = vm_new(store, "--generation", "2", "--disk", "scsi:16M", "db")
    gen1 = vm_new(store, "--disk", "ide:16M", "web")
    forced = vm_new(store, "--generation", "2", "--disk-format", "vhd", "--disk", "scsi:16M",
                    "old")
    shown = {n: json.loads(ok("vm", "show", "--json", "--store", store, n).stdout)
             for n in ("db", "web", "old")}
    assert shown["db"]["disks"][0]["path"].endswith("db.vhdx"), shown["db"]
    assert shown["web"]["disks"][0]["path"].endswith("web.vhd"), shown["web"]
    assert shown["old"]["disks"][0]["path"].endswith("old.vhd"), shown["old"]
    disk = shown["db"]["disks"][0]["path"]
    write(disk, 0, data(8192, 11))
    ok("vm", "snapshot", "--store", store, "db", "first")
    now = json.loads(ok("vm", "show", "--json", "--store", store, "db").stdout)
    top = now["disks"][0]["path"]
    assert top.endswith(".avhdx") and os.path.basename(top).startswith("db_"), top
    assert info(top)["type"] == "differencing"
    write(top, 4096, data(4096, 12))
    ok("vm", "snapshot", "--store", store, "db", "second")
    ok("vm", "apply", "--store", store, "db", "first")
    now = json.loads(ok("vm", "show", "--json", "--store", store, "db").stdout)
    expected = bytearray(16 * MiB)
    expected[0:8192] = data(8192, 11)
    assert cat(now["disks"][0]["path"]) == bytes(expected)
    ok("vm", "delete", "--disks", "--store", store, "db")
    left = [n for n in os.listdir(os.path.join(store, "Virtual Hard Disks")) if "db" in n]
    assert left == [], left
    assert not os.path.exists(config_path(store, gen2))
    assert os.path.exists(config_path(store, gen1)) and os.path.exists(config_path(store, forced))
    refused("vm", "new", "--store", store, "--disk-format", "raw", "x", status=(2,))


if __name__ == "__main__":
    run_tests(globals())
