"""--json everywhere a script needs it, through the real impex: vm list and vm show (each VM's
state, snapshot count and current snapshot), vhd check, vhd info, switch list and compare.
Every document is parsed with python's json and checked member by member: each object has
exactly the members docs/JSON.md lists for it (no member missing, none undocumented), and an
absent value is null, never "".

Expected values come from the store's files, read here (configurations decoded with xml.etree,
switches.txt, the saved-state folders), and from the disks made for the test.
"""

import json
import os
import re
import shutil

from impexlib import (
    DISKS, SNAPSHOTS, VMS, as_json, call, config_path, configs_by_name, documented_members,
    edit_config, new_store, ok, read_xml, refused, vm_new)
from taplib import run_tests

MIB = 1024 * 1024
DOC = documented_members()
SHOW_ONLY = {"chain", "format", "chain_problem"}  # what vm show adds to each disk


def members(obj, table, less=frozenset()):
    """@obj has exactly the members of @table in docs/JSON.md (less @less)."""
    want = DOC[table] - set(less)
    assert isinstance(obj, dict) and set(obj) == want, "%s: members %s, want %s: %r" % (
        table, sorted(obj) if isinstance(obj, dict) else obj, sorted(want), obj)


def no_empty_strings(value, where="document"):
    """No "" anywhere: an absent value is null."""
    if isinstance(value, dict):
        for key, item in value.items():
            no_empty_strings(item, "%s.%s" % (where, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            no_empty_strings(item, "%s[%d]" % (where, i))
    else:
        assert value != "", "%s is \"\", not null" % where


def check_vm(vm, show=False):
    """Every object of a VM as docs/JSON.md lists it."""
    members(vm, "VM object")
    less = () if show else SHOW_ONLY
    for disk in vm["disks"]:
        members(disk, "disk object", less)
    for adapter in vm["adapters"]:
        members(adapter, "adapter object")
    for snap in vm["snapshots"]:
        members(snap, "snapshot object")
        for disk in snap["disks"]:
            members(disk, "disk object", less)
    no_empty_strings(vm, vm["name"])


def set_times(path, **times):
    """Add Hyper-V's power times (integers) to a VM's properties."""
    leaves = "".join('<%s type="integer">%d</%s>' % (k, v, k) for k, v in times.items())
    edit_config(path, lambda t: t.replace("<properties>", "<properties>" + leaves, 1))


def switches(store):
    with open(os.path.join(store, "switches.txt")) as f:
        return {line.split(" ", 1)[1].rstrip("\n"): line.split(" ", 1)[0]
                for line in f if line.strip() and not line.startswith("#")}


# ---- vm list, vm show ----

def test_vm_list_json_states_counts_and_nulls():
    store = new_store()
    ok("switch", "add", "--store", store, "External")
    made = {}
    for name in ("off", "saved", "snapped", "running", "running-saved", "saved-after-run",
                 "stopped"):
        made[name] = vm_new(store, "--disk", "ide:8M", "--switch", "External", name)
    for name in ("saved", "running-saved", "saved-after-run"):
        ok("vm", "save", "--store", store, name)
    ok("vm", "snapshot", "--store", store, "snapped", "first")
    ok("vm", "snapshot", "--store", store, "snapped", "second")
    ok("vm", "apply", "--store", store, "snapped", "first")
    # Hyper-V's times (FILETIMEs): started after it was last turned off is running, unless it
    # was saved after it started.
    set_times(config_path(store, made["running"]), last_powered_on_time=200,
              last_powered_off_time=100)
    set_times(config_path(store, made["running-saved"]), last_powered_on_time=200,
              last_powered_off_time=100, last_state_change_time=200)
    set_times(config_path(store, made["saved-after-run"]), last_powered_on_time=200,
              last_powered_off_time=100, last_state_change_time=300)
    set_times(config_path(store, made["stopped"]), last_powered_on_time=100,
              last_powered_off_time=200, last_state_change_time=200)
    configs = configs_by_name(store)
    # A configuration that cannot be read, not named by its GUID.
    with open(os.path.join(store, VMS, "vm.XML"), "w") as f:
        f.write("<configuration>")
    want_state = {"off": "off", "saved": "saved", "snapped": "off", "running": "running",
                  "running-saved": "running", "saved-after-run": "saved", "stopped": "off"}
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert [vm["name"] for vm in listed] == sorted(want_state) + ["vm.XML"], listed
    snaps = configs_by_name(store, SNAPSHOTS)
    external = switches(store)["External"]
    for vm in listed:
        check_vm(vm)
        name = vm["name"]
        if name == "vm.XML":
            assert vm["id"] is None and vm["state"] is None and vm["problem"], vm
            assert vm["generation"] is None and vm["version"] is None, vm
            assert vm["creation_time"] is None and vm["saved_state"] is None, vm
            assert vm["current_snapshot"] is None and vm["current_snapshot_name"] is None, vm
            assert vm["snapshot_count"] == 0 and vm["disks"] == vm["snapshots"] == [], vm
            assert vm["config"] == os.path.join(store, VMS, "vm.XML"), vm
            continue
        guid, root = configs[name]
        assert vm["id"] == guid == made[name] and vm["problem"] is None, vm
        assert vm["state"] == want_state[name], (name, vm["state"])
        assert vm["generation"] == 1 and vm["version"] == int(root.findtext(
            "properties/version")), vm
        saved = os.path.join(store, VMS, guid)
        assert vm["saved_state"] == (saved if os.path.isdir(saved) else None), vm
        [disk] = vm["disks"]
        assert (disk["index"], disk["label"], disk["bus"], disk["controller"], disk["drive"]) \
            == (0, "ide0:0", "ide", 0, 0), disk
        assert disk["path"] == disk["written"] and disk["found"] == "as written", disk
        [adapter] = vm["adapters"]
        assert adapter["switch"] == "External" and adapter["switch_id"] == external, adapter
        assert adapter["connected"] is True and adapter["problem"] is None, adapter
        if name == "snapped":
            assert vm["snapshot_count"] == 2, vm
            first, second = snaps["first"][0], snaps["second"][0]
            assert vm["current_snapshot"] == first, vm
            assert vm["current_snapshot_name"] == "first", vm
            got = {s["name"]: (s["id"], s["parent"], s["parent_inferred"], s["saved_state"])
                   for s in vm["snapshots"]}
            assert got == {"first": (first, None, False, None),
                           "second": (second, first, False, None)}, got
        else:
            assert vm["snapshot_count"] == 0 and vm["snapshots"] == [], vm
            assert vm["current_snapshot"] is None and vm["current_snapshot_name"] is None, vm
    # The text listing says the same states.
    text = ok("vm", "list", "--store", store).stdout
    for name, guid in made.items():
        [line] = [ln for ln in text.splitlines() if guid in ln]
        assert line.split()[-1] == want_state[name], line
    # vm show says what vm list says, and more.
    for name in made:
        shown = as_json(ok("vm", "show", "--json", "--store", store, name))
        check_vm(shown, show=True)
        assert shown["state"] == want_state[name], shown


def test_vm_show_json_of_missing_disks_and_broken_chains():
    store = new_store()
    guid = vm_new(store, "--disk", "ide:8M", "--disk", "scsi:8M", "blog")
    ok("vm", "snapshot", "--store", store, "blog", "one")
    # The SCSI disk's file goes; the IDE disk's parent (blog.vhd) goes away too.
    _, root = configs_by_name(store)["blog"]
    paths = [n.text for n in root.iter("pathname")]
    assert len(paths) == 2, paths
    one_root = configs_by_name(store, SNAPSHOTS)["one"][1]
    base_ide, base_scsi = [n.text for n in one_root.iter("pathname")]
    os.rename(paths[1], "moved.avhd")
    os.rename(base_ide, "moved.vhd")
    result = call("vm", "show", "--json", "--store", store, "blog")
    assert result.returncode == 1, result
    shown = as_json(result)
    check_vm(shown, show=True)
    ide, scsi = shown["disks"]
    assert ide["path"] == paths[0] and ide["problem"] is None, ide
    assert ide["chain"] == [] and ide["format"] is None, ide
    assert "blog.vhd" in ide["chain_problem"], ide
    assert scsi["path"] is None and scsi["found"] is None and scsi["problem"], scsi
    assert os.path.basename(paths[1]) in scsi["problem"], scsi
    assert scsi["chain"] == [] and scsi["format"] is None and scsi["chain_problem"] is None, scsi
    [snap] = shown["snapshots"]
    ide1, scsi1 = snap["disks"]
    assert ide1["path"] is None and ide1["problem"], ide1
    assert scsi1["path"] == base_scsi and scsi1["chain"] == [base_scsi], scsi1
    assert scsi1["format"] == "VHD" and scsi1["chain_problem"] is None, scsi1
    # Back in place: every chain opens.
    os.rename("moved.avhd", paths[1])
    os.rename("moved.vhd", base_ide)
    shown = as_json(ok("vm", "show", "--json", "--store", store, guid))
    check_vm(shown, show=True)
    assert [d["chain"] for d in shown["disks"]] == [[paths[0], base_ide], [paths[1], base_scsi]]


def test_switches_and_adapters_json():
    store = new_store()
    ok("switch", "add", "--store", store, "External")
    listed = as_json(ok("switch", "list", "--json", "--store", store))
    assert listed == [{"id": switches(store)["External"], "name": "External"}], listed
    for switch in listed:
        members(switch, "switch object")
    guid = vm_new(store, "--disk", "ide:8M", "--switch", "External", "blog")

    def disconnect(text):
        text = re.sub(r'(<SwitchName type="string">)[^<]*(</SwitchName>)', r"\1\2", text)
        text = re.sub(r'(<AltSwitchName type="string">)[^<]*(</AltSwitchName>)', r"\1\2", text)
        text = re.sub(r'(<PortName type="string">)[^<]*(</PortName>)', r"\1\2", text)
        text = re.sub(r'<HostResource type="string">[^<]*</HostResource>', "", text)
        return re.sub(r'(<IsConnected type="bool">)True(</IsConnected>)', r"\1False\2", text)
    edit_config(config_path(store, guid), disconnect)
    root = read_xml(config_path(store, guid))
    [node] = [n for n in root if n.find("MacAddress") is not None]
    [vm] = as_json(ok("vm", "list", "--json", "--store", store))
    check_vm(vm)
    [adapter] = vm["adapters"]
    assert adapter == {"name": node.findtext("FriendlyName"), "mac": node.findtext("MacAddress"),
                       "static_mac": node.findtext("MacAddressIsStatic") == "True",
                       "switch_id": None, "switch": None, "connected": False,
                       "problem": None}, adapter
    # Exported, compared with a store that lacks the switch: an issue naming the adapter.
    ok("switch", "add", "--store", store, "Internal")
    other = vm_new(store, "--disk", "ide:8M", "--switch", "Internal", "web")
    ok("export", "--store", store, "web", "exported")
    target = new_store("target")
    result = call("compare", "--json", "--store", target, "exported")
    assert result.returncode == 1, result
    report = as_json(result)
    members(report, "compare object")
    assert report["importable"] is False, report
    unknown = [i for i in report["issues"] if i["id"] == "switch-unknown"]
    assert unknown and os.path.realpath(config_path("exported", other)) in [
        os.path.realpath(i["file"]) for i in unknown], report
    for issue in report["issues"]:
        members(issue, "issue object")
        assert issue["severity"] in ("error", "warning"), issue
    no_empty_strings(report)


# ---- vhd check, vhd info ----

def test_vhd_check_json():
    ok("vhd", "create", "base.vhd", "8M")
    os.mkdir("sub")
    ok("vhd", "snapshot", "base.vhd", "sub/child.vhd")
    ok("vhd", "snapshot", "sub/child.vhd", "top.vhd")
    checked = as_json(ok("vhd", "check", "--json", "top.vhd"))
    members(checked, "check object")
    levels = checked.pop("chain")
    assert checked == {"path": "top.vhd", "ok": True, "format": "VHD", "type": "differencing",
                       "size": 8 * MIB, "levels": 3, "warnings": [], "error": None}, checked
    assert [os.path.realpath(l["path"]) for l in levels] == \
        [os.path.realpath(p) for p in ("top.vhd", "sub/child.vhd", "base.vhd")], levels
    assert [(l["format"], l["type"]) for l in levels] == \
        [("VHD", "differencing"), ("VHD", "differencing"), ("VHD", "dynamic")], levels
    assert all(set(l) == {"path", "format", "type"} for l in levels), levels
    # A VHDX, a fixed VHD.
    ok("vhd", "create", "disk.vhdx", "8M")
    assert as_json(ok("vhd", "check", "--json", "disk.vhdx")) == {
        "path": "disk.vhdx", "ok": True, "format": "VHDX", "type": "dynamic", "size": 8 * MIB,
        "levels": 1, "chain": [{"path": "disk.vhdx", "format": "VHDX", "type": "dynamic"}],
        "warnings": [], "error": None}
    ok("vhd", "create", "--type", "fixed", "fixed.vhd", "4M")
    assert as_json(ok("vhd", "check", "--json", "fixed.vhd"))["type"] == "fixed"
    # The footer copy at the start of a dynamic VHD differs from its footer: a warning.
    with open("base.vhd", "r+b") as f:
        f.seek(511)  # the last reserved byte of the copy
        f.write(b"\x01")
    checked = as_json(ok("vhd", "check", "--json", "base.vhd"))
    assert checked["ok"] is True and checked["warnings"] == [
        "the footer copy at the start of 'base.vhd' differs from its footer"], checked
    # A parent gone: ok false, exit 1, nothing known but why.
    os.rename("base.vhd", "elsewhere.vhd")
    result = call("vhd", "check", "--json", "top.vhd")
    assert result.returncode == 1 and result.stderr.startswith("impex: "), result
    broken = as_json(result)
    members(broken, "check object")
    assert "base.vhd" in broken["error"], broken
    broken["error"] = None
    assert broken == {"path": "top.vhd", "ok": False, "format": None, "type": None, "size": None,
                      "levels": None, "chain": [], "warnings": [], "error": None}, broken
    # Without --json, as before: one line.
    os.rename("elsewhere.vhd", "base.vhd")
    text = ok("vhd", "check", "sub/child.vhd").stdout
    assert text == "'sub/child.vhd': ok, differencing VHD of 8 MiB, 2 levels\n", text


def test_vhd_info_json_members_are_always_there():
    ok("vhd", "create", "--type", "fixed", "fixed.vhd", "4M")
    ok("vhd", "create", "dynamic.vhd", "4M")
    ok("vhd", "snapshot", "dynamic.vhd", "child.vhd")
    ok("vhd", "create", "base.vhdx", "8M")
    ok("vhd", "snapshot", "base.vhdx", "child.avhdx")
    for name in ("fixed.vhd", "dynamic.vhd", "child.vhd", "base.vhdx", "child.avhdx"):
        vhdx = name.endswith("vhdx")
        info = as_json(ok("vhd", "info", "--json", name))
        members(info, "VHDX object" if vhdx else "VHD object")
        for level in info["chain"]:
            members(level, "chain level object")
            # A VHD level has a UUID and no DataWriteGuid; a VHDX level the other way round.
            ids = (level["data_write_guid"], level["uuid"])
            assert ids[not vhdx] and ids[vhdx] is None, level
        if vhdx:
            assert (info["parent_locator"] is None) == (name == "base.vhdx"), info
        else:
            assert (info["block_size"] is None) == (name == "fixed.vhd"), info
            assert (info["parent"] is None) == (name != "child.vhd"), info
        no_empty_strings(info, name)
    with open("notes.txt", "w") as f:
        f.write("not a disk\n" * 100)
    result = call("vhd", "info", "--json", "notes.txt")
    assert result.returncode == 1, result
    failure = as_json(result)
    members(failure, "failure object")
    assert failure["path"] == "notes.txt" and "notes.txt" in failure["error"], failure


if __name__ == "__main__":
    run_tests(globals())
