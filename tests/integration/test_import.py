"""impex import-settings: the settings Hyper-V would offer for an export
folder. What the document must say is worked out here from the folder
itself: its configurations parsed with xml.etree, its files listed.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import time

from impexlib import (DISKS, SNAPSHOTS, VMS, as_json, call, describe_change, new_store, ok,
                      refused, tree_state)
from taplib import Skip, run, run_tests
from test_mount_snapshots import config_root, modelled_vm
from test_snapshots import first_difference


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


def texts(folder, subs, tag):
    """The texts of every @tag element of the configurations in the folder's @subs."""
    found = set()
    for sub in subs:
        for name in os.listdir(os.path.join(folder, sub)):
            if name.endswith(".xml"):
                for node in config_root(os.path.join(folder, sub, name)).iter(tag):
                    if node.text:
                        found.add(node.text)
    return found


def recorded_disks(folder):
    """Every disk path the folder's configurations (the VM's and the snapshots') record."""
    return texts(folder, (VMS, SNAPSHOTS), "pathname")


def switch_names(folder):
    return texts(folder, (VMS,), "AltSwitchName")


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
    refused("import-settings", "--store", target, "store",
            mentions=["3 VM configurations", "vm = GUID"])
    # A document naming one of them picks it.
    db = as_json(ok("vm", "show", "--json", "--store", "store", "db"))
    write("pick.settings", "vm = %s\n" % db["id"].lower())
    doc = parse(ok("import-settings", "--store", target, "--settings", "pick.settings",
                   "store").stdout)
    assert doc["name"] == "db" and doc["vm"].upper() == db["id"], doc
    assert {r["current"] for r in items(doc, "resource")} == \
        {d["written"] for d in db["disks"]} | {d["written"] for s in db["snapshots"]
                                               for d in s["disks"]}
    write("pick.settings", "vm = 00000000-0000-4000-8000-000000000000\n")
    refused("import-settings", "--store", target, "--settings", "pick.settings", "store",
            mentions=["00000000-0000-4000-8000-000000000000"])
    empty = new_store("empty")
    refused("import-settings", "--store", target, empty, mentions=["no VM configuration"])
    refused("import-settings", "--store", target, "missing", mentions=["missing"])
    refused("import-settings", "--store", target, status=(2,))


# ---- impex compare ----

def compare(store, folder, *args, status=0):
    """impex compare --json: the report; its exit status must be @status, and nothing in
    the store or the folder may change."""
    before = (tree_state(store), tree_state(folder))
    result = call("compare", "--json", "--store", store, *args, folder)
    assert result.returncode == status, result
    after = (tree_state(store), tree_state(folder))
    assert after == before, describe_change(before[0], after[0], "impex compare")
    report = as_json(result)
    assert report["importable"] == (status == 0), report
    for issue in report["issues"]:
        assert issue["severity"] in ("error", "warning") and issue["message"], issue
    return report


def ids(report, severity=None):
    return sorted(i["id"] for i in report["issues"] if severity in (None, i["severity"]))


def exported_blog():
    ok("demo", "store")
    ok("export", "--store", "store", "blog", "exported")
    return os.path.realpath("store"), os.path.realpath("exported")


def blog_target(name="target"):
    """A new store with the switches blog's adapters are on ("External", "Internal")."""
    target = new_store(name)
    ok("switch", "add", "--store", target, "External")
    ok("switch", "add", "--store", target, "Internal")
    return target


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_compare_into_a_new_store():
    _, folder = exported_blog()
    target = new_store("target")
    # Switches this host lacks are errors, as in Compare-VM: one per adapter.
    report = compare(target, folder, status=1)
    assert ids(report) == ["switch-unknown", "switch-unknown"], report
    assert ids(report, "error") == ids(report), report
    text = call("compare", "--store", target, folder).stdout
    assert "the import would fail: 2 errors, 0 warnings" in text, text
    # A switch of that name here: only the other one is unknown.
    ok("switch", "add", "--store", target, "External")
    report = compare(target, folder, status=1)
    mac = [a["mac"] for a in as_json(ok("vm", "show", "--json", "--store", folder, "blog"))[
        "adapters"] if a["switch"] == "Internal"][0]
    assert [i["message"] for i in report["issues"]] == [
        "adapter 'Network Adapter' (%s) is connected to switch 'Internal', which does not "
        "exist here: map it (network.2.target = SWITCH), disconnect it (network.2.target =) "
        "or set disconnect_unknown_switches = true" % mac], report
    # Mapped to the existing switch, or left disconnected on purpose: nothing to say.
    write("map.settings", "network.2.source = Internal\nnetwork.2.target = External\n")
    assert ids(compare(target, folder, "--settings", "map.settings")) == []
    write("off.settings", "network.2.source = Internal\nnetwork.2.target =\n")
    assert ids(compare(target, folder, "--settings", "off.settings")) == []
    # Every unknown switch let go: a warning.
    write("any.settings", "disconnect_unknown_switches = true\n")
    report = compare(target, folder, "--settings", "any.settings")
    assert ids(report, "warning") == ["switch-unknown"], report


def test_compare_into_the_store_it_came_from():
    store, folder = exported_blog()
    report = compare(store, folder)
    # New IDs (the default): the same GUID is no error; the name and the files clash.
    assert "id-exists" not in ids(report)
    assert ids(report, "error") == []
    assert "name-clash" in ids(report)
    renames = [i for i in report["issues"] if i["id"] == "target-exists"]
    # 12 disks, but those named after the VM's or a snapshot's GUID take the new one.
    shown = as_json(ok("vm", "show", "--json", "--store", folder, "blog"))
    old_ids = [shown["id"]] + [s["id"] for s in shown["snapshots"]]
    kept = [n for n in os.listdir(os.path.join(folder, DISKS))
            if not any(g.lower() in n.lower() for g in old_ids)]
    assert len(kept) == 4, kept  # the bases, and the disks of the apply's state
    assert sorted(os.path.basename(i["file"]) for i in renames) == sorted(kept), renames
    for issue in renames:
        path = issue["file"]
        stem, ext = os.path.splitext(path)
        assert os.path.exists(path) and issue["message"].endswith(
            "the copy will be '%s (2)%s'" % (stem, ext)), issue
    # Without new IDs, the VM's GUID is taken.
    write("same-id.settings", "generate_new_id = false\n")
    report = compare(store, folder, "--settings", "same-id.settings", status=1)
    assert ids(report, "error") == ["id-exists"], report
    assert ids(report, "warning").count("target-exists") == 12, report
    assert "generate_new_id" in [i for i in report["issues"] if i["id"] == "id-exists"][0][
        "message"]
    assert "the import would fail: 1 error" in call(
        "compare", "--store", store, "--settings", "same-id.settings", folder).stdout


def test_compare_finds_missing_damaged_and_broken_disks():
    _, folder = exported_blog()
    target = blog_target()
    disks = os.path.join(folder, DISKS)
    # A disk gone: an error naming it; found elsewhere through resource.N.source: none.
    os.rename(os.path.join(disks, "blog_2.vhd"), "blog_2-elsewhere.vhd")
    report = compare(target, folder, status=1)
    missing = [i for i in report["issues"] if i["id"] == "disk-missing"]
    assert [i["file"] for i in missing] == ["Virtual Hard Disks\\blog_2.vhd"], report
    # Its children's chains are broken too.
    assert "chain-broken" in ids(report, "error"), report
    doc = parse(ok("import-settings", "--store", target, folder).stdout)
    n = [r for r in items(doc, "resource") if r["current"].endswith("\\blog_2.vhd")]
    index = items(doc, "resource").index(n[0]) + 1
    write("elsewhere.settings", "resource.%d.current = Virtual Hard Disks\\blog_2.vhd\n"
          "resource.%d.source = %s\n" % (index, index, os.path.realpath("blog_2-elsewhere.vhd")))
    report = compare(target, folder, "--settings", "elsewhere.settings", status=1)
    assert "disk-missing" not in ids(report), report
    os.rename("blog_2-elsewhere.vhd", os.path.join(disks, "blog_2.vhd"))
    assert ids(compare(target, folder)) == []
    # A damaged disk: its footer cut off.
    victim = os.path.join(disks, "blog.vhd")
    size = os.path.getsize(victim)
    shutil.copy(victim, "blog.vhd.keep")
    os.truncate(victim, size - 512)
    report = compare(target, folder, status=1)
    damaged = [i for i in report["issues"] if i["id"] == "disk-damaged"]
    assert damaged and all("blog.vhd" in i["message"] for i in damaged), report


def test_compare_settings_that_do_not_fit_the_export():
    _, folder = exported_blog()
    target = blog_target()
    write("bad.settings", "resource.1.current = Virtual Hard Disks\\nothere.vhd\n")
    refused("compare", "--store", target, "--settings", "bad.settings", folder,
            mentions=["bad.settings", "nothere.vhd", "no disk of the export"])
    write("bad.settings", "network.1.source = Nowhere\nnetwork.1.target = x\n")
    refused("compare", "--store", target, "--settings", "bad.settings", folder,
            mentions=["Nowhere"])
    write("bad.settings", "target_vhd_data_root = disks\n")
    refused("compare", "--store", target, "--settings", "bad.settings", folder,
            mentions=["bad.settings", "target_vhd_data_root", "not an absolute path"])
    elsewhere = new_store("not-a-root")
    write("bad.settings", "target_vm_data_root = %s\n" % elsewhere)
    report = compare(target, folder, "--settings", "bad.settings", status=1)
    assert ids(report, "error") == ["target-not-in-store"], report
    write("bad.settings", "create_copy = maybe\n")
    refused("compare", "--store", target, "--settings", "bad.settings", folder,
            mentions=["bad.settings", "line 1", "true or false"])
    refused("compare", "--store", target, "--settings", "missing.settings", folder,
            mentions=["missing.settings"])


@contextlib.contextmanager
def small_store(size="1m"):
    """A new store on a tmpfs of @size, unmounted at the end."""
    if os.geteuid() != 0:
        raise Skip("a small tmpfs needs root")
    os.mkdir("small")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", "small"],
                   check=True)
    try:
        yield new_store("small/store")
    finally:
        subprocess.run(["umount", "small"], check=False)


def test_compare_finds_too_little_space():
    _, folder = exported_blog()
    with small_store() as target:
        report = compare(target, folder, status=1)
        short = [i for i in report["issues"] if i["id"] == "space-short"]
        assert len(short) == 1 and "free" in short[0]["message"], report


# ---- impex import ----

def cat(path):
    return ok("vhd", "cat", path, text=False).stdout


def assert_states(store, guid, states, names):
    """VM @guid of @store: each snapshot in @names and its current state hold what the
    model @states says, through sound chains."""
    return assert_states_of(as_json(ok("vm", "show", "--json", "--store", store, guid)),
                            states, names)


def assert_states_of(vm, states, names):
    """assert_states() of a VM as vm show --json gives it."""
    guid = vm["id"]
    assert vm["problem"] is None, vm
    got = {"current": vm["disks"]}
    got.update({snap["name"]: snap["disks"] for snap in vm["snapshots"]})
    assert sorted(got) == sorted(names), sorted(got)
    for name in names:
        for i, disk in enumerate(got[name]):
            assert disk["chain_problem"] is None, disk
            fault = first_difference(cat(disk["path"]), states[name][i])
            assert fault is None, (guid, name, i, fault)
    return vm


def files_of_vm(vm):
    paths = {d["path"] for d in vm["disks"]}
    for snap in vm["snapshots"]:
        paths |= {d["path"] for d in snap["disks"]}
    return paths


def test_a_gold_vm_imported_three_times():
    ok("demo", "source")
    states = modelled_vm(os.path.realpath("source"))
    ok("export", "--store", "source", "m", "gold")
    source_id = as_json(ok("vm", "show", "--json", "--store", "source", "m"))["id"]
    run(["chmod", "-R", "a-w", "gold"])  # read-only media
    before = tree_state("gold")
    target = new_store("target")
    guids, files = [], []
    for _ in range(3):
        out = ok("import", "--store", target, "gold").stdout.split()
        assert len(out) == 2 and out[1] == "m", out
        guids.append(out[0])
        vm = assert_states(target, out[0], states, ["current", "s1", "s2", "s3"])
        files.append(files_of_vm(vm))
        assert all(p.startswith(target + "/") for p in files[-1]), files[-1]
    assert len(set(guids)) == 3 and source_id not in guids, guids
    assert not (files[0] & files[1]) and not (files[1] & files[2]) and not (files[0] & files[2])
    assert tree_state("gold") == before, describe_change(before, tree_state("gold"), "import")
    listed = as_json(ok("vm", "list", "--json", "--store", target))
    assert sorted(v["id"] for v in listed) == sorted(guids)
    assert all(v["problem"] is None for v in listed), listed
    # No temporary file is left.
    leftovers = [n for n in os.listdir(os.path.join(target, DISKS)) if "impex-import" in n]
    assert not leftovers, leftovers
    run(["chmod", "-R", "u+w", "gold"])


def test_a_snapshot_exported_and_imported_as_a_vm():
    ok("demo", "source")
    states = modelled_vm(os.path.realpath("source"))
    ok("export", "--store", "source", "m/s2", "one")
    target = new_store("target")
    guid = ok("import", "--store", target, "one").stdout.split()[0]
    vm = assert_states(target, guid, {"current": states["s2"]}, ["current"])
    # One dynamic VHD a disk: qemu-img reads it as the model says.
    for i, disk in enumerate(vm["disks"]):
        assert disk["chain"] == [disk["path"]], disk
        with open("want.raw", "wb") as f:
            f.write(states["s2"][i])
        run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", disk["path"], "want.raw"])


def test_import_maps_switches_and_keeps_ids_when_asked():
    _, folder = exported_blog()
    target = new_store("target")
    lan = ok("switch", "add", "--store", target, "LAN").stdout.split()[0]
    write("keep.settings", "generate_new_id = false\nname = restored\n"
          "network.1.source = Internal\nnetwork.1.target = LAN\n"
          "network.2.source = External\nnetwork.2.target =\n")
    source = as_json(ok("vm", "show", "--json", "--store", folder, "blog"))
    guid = ok("import", "--store", target, "--settings", "keep.settings", folder).stdout.split()[0]
    assert guid == source["id"]
    vm = as_json(ok("vm", "show", "--json", "--store", target, guid))
    assert vm["name"] == "restored"
    switches = {a["mac"]: (a["switch"], a["switch_id"], a["connected"]) for a in vm["adapters"]}
    for adapter in source["adapters"]:
        want = ("LAN", lan, True) if adapter["switch"] == "Internal" else (None, None, False)
        assert switches[adapter["mac"]] == want, (adapter, switches)
    # The same GUID again: refused, and the store is as it was.
    before = tree_state(target)
    refused("import", "--store", target, "--settings", "keep.settings", folder,
            mentions=["id-exists", "generate_new_id"])
    assert tree_state(target) == before, describe_change(before, tree_state(target), "a refusal")


def test_an_import_that_fails_midway_leaves_nothing():
    _, folder = exported_blog()
    target = blog_target()
    doc = parse(ok("import-settings", "--store", target, folder).stdout)
    top = [r for r in items(doc, "resource")
           if r["current"] == as_json(ok("vm", "show", "--json", "--store", folder,
                                         "blog"))["disks"][0]["written"]][0]
    # The current disk sent to another folder than its parent: found out while copying,
    # after the disks below it were written.
    write("split.settings", "resource.1.current = %s\nresource.1.target = %s\n" % (
        top["current"], os.path.join(target, "elsewhere", "top.avhd")))
    before = tree_state(target)
    refused("import", "--store", target, "--settings", "split.settings", folder,
            mentions=["must share a folder"])
    assert tree_state(target) == before, describe_change(before, tree_state(target), "a failure")


def test_an_import_that_cannot_fit_leaves_nothing():
    _, folder = exported_blog()
    with small_store() as target:
        before = tree_state(target)
        refused("import", "--store", target, folder, mentions=["space-short"])
        assert tree_state(target) == before


def test_target_roots_on_three_folders():
    ok("demo", "source")
    states = modelled_vm(os.path.realpath("source"))
    ok("export", "--store", "source", "m", "gold")
    # Three roots of one store: the VM's, the disks', the snapshots'.
    vms, snaps = new_store("vms"), new_store("snaps")
    disks = os.path.join(new_store("disks"), DISKS)
    write("roots.settings", "target_vm_data_root = %s\ntarget_vhd_data_root = %s\n"
          "target_snapshot_data_root = %s\n" % (vms, disks, snaps))
    roots = ["--store", vms, "--store", os.path.dirname(disks), "--store", snaps]
    guid = ok("import", *roots, "--settings", "roots.settings", "gold").stdout.split()[0]
    shown = as_json(ok("vm", "show", "--json", *roots, guid))
    assert shown["config"].startswith(vms + "/" + VMS + "/"), shown["config"]
    assert all(s["config"].startswith(snaps + "/" + SNAPSHOTS + "/") for s in shown["snapshots"])
    assert all(p.startswith(disks + "/") for p in files_of_vm(shown)), files_of_vm(shown)
    for name, disk_list in [("current", shown["disks"])] + \
            [(s["name"], s["disks"]) for s in shown["snapshots"]]:
        for i, disk in enumerate(disk_list):
            assert disk["chain_problem"] is None, disk
            assert first_difference(cat(disk["path"]), states[name][i]) is None, (name, i)


def test_a_configuration_only_export_with_disks_from_elsewhere():
    ok("demo", "source")
    states = modelled_vm(os.path.realpath("source"))
    ok("export", "--store", "source", "--no-vm-storage", "m", "configs")
    target = new_store("target")
    # The configurations name disks outside the folder: not found there.
    report = compare(target, "configs", status=1)
    assert "disk-missing" in ids(report, "error"), report
    # The settings say where each disk is now: the source store's files.
    source = as_json(ok("vm", "show", "--json", "--store", "source", "m"))
    where = {d["written"]: d["path"] for d in source["disks"]}
    for snap in source["snapshots"]:
        where.update({d["written"]: d["path"] for d in snap["disks"]})
    doc = parse(ok("import-settings", "--store", target, "configs").stdout)
    lines = []
    for n, r in enumerate(items(doc, "resource"), 1):
        lines.append("resource.%d.current = %s\nresource.%d.source = %s\n" % (
            n, r["current"], n, where[r["current"]]))
    write("elsewhere.settings", "".join(lines))
    assert ids(compare(target, "configs", "--settings", "elsewhere.settings"), "error") == []
    guid = ok("import", "--store", target, "--settings", "elsewhere.settings",
              "configs").stdout.split()[0]
    assert_states(target, guid, states, ["current", "s1", "s2", "s3"])


def test_registration_in_place():
    ok("demo", "source")
    states = modelled_vm(os.path.realpath("source"))
    ok("export", "--store", "source", "m", "here")
    folder = os.path.realpath("here")
    target = new_store("target")
    write("in-place.settings", "create_copy = false\n")
    guid = ok("import", "--store", target, "--settings", "in-place.settings",
              "here").stdout.split()[0]
    # No disk copied: the configuration names the folder's, outside the store.
    assert os.listdir(os.path.join(target, DISKS)) == []
    vm = as_json(ok("vm", "show", "--json", "--allow-outside", "--store", target, guid))
    assert all(p.startswith(folder + "/") for p in files_of_vm(vm)), files_of_vm(vm)
    assert_states_of(vm, states, ["current", "s1", "s2", "s3"])


def test_a_progress_bar_on_a_terminal_only():
    _, folder = exported_blog()
    target = blog_target()
    quiet = call("import", "--store", target, folder)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet
    # Under a terminal (script(1) gives one), the bar is drawn and ends at 100 %.
    impex = os.environ.get("IMPEX", "impex")
    shown = subprocess.run(["script", "-qec", "%s import --store %s %s" % (impex, target, folder),
                            "/dev/null"], capture_output=True, timeout=120,
                           env=dict(os.environ, CI=""))
    assert shown.returncode == 0, shown
    out = shown.stdout.decode("utf-8", "replace")  # bytes: text mode would turn \r into \n
    frames = re.findall(r"\r *([0-9]+)% \[", out)
    # Redrawn at most four times a second: a quick import may show its last state only.
    assert frames and frames[-1] == "100", out[-500:]
    assert [int(f) for f in frames] == sorted(int(f) for f in frames), frames
    assert len(as_json(ok("vm", "list", "--json", "--store", target))) == 2


def test_a_killed_import_leaves_no_vm_and_the_next_one_sweeps_up():
    store = new_store("source")
    ok("vm", "new", "--store", store, "--disk", "ide:512M", "big")
    with open("data.bin", "wb") as f:
        f.write(os.urandom(96 << 20))
    ok("vm", "write", "--store", store, "big", "0", "0", "data.bin")
    ok("vm", "save", "--store", store, "big")
    ok("export", "--store", store, "big", "big-export")
    target = new_store("target")
    impex = os.environ.get("IMPEX", "impex")
    killed = 0
    for attempt in range(6):
        proc = subprocess.Popen([impex, "import", "--store", target, "big-export"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Killed once its temporary files appear, at a point that moves along.
        deadline = time.time() + 30
        while time.time() < deadline and proc.poll() is None and not any(
                "impex-import" in n for sub in (DISKS, VMS)
                for n in os.listdir(os.path.join(target, sub))):
            time.sleep(0.002)
        time.sleep(0.01 * attempt)
        if proc.poll() is None:
            proc.kill()  # ours, by its id
            killed += 1
        proc.wait()
        listed = as_json(ok("vm", "list", "--json", "--store", target))
        # Either the whole VM or no trace of it in the store's listing.
        for vm in listed:
            shown = as_json(ok("vm", "show", "--json", "--store", target, vm["id"]))
            assert shown["problem"] is None and all(
                d["chain_problem"] is None for d in shown["disks"]), shown
    assert killed >= 3, "only %d imports were killed midway" % killed
    # The next import sweeps what the killed ones left, and succeeds.
    before = {vm["id"] for vm in as_json(ok("vm", "list", "--json", "--store", target))}
    guid = ok("import", "--store", target, "big-export").stdout.split()[0]
    assert guid not in before
    for sub in (DISKS, VMS):
        left = [n for n in os.listdir(os.path.join(target, sub)) if "impex-import" in n]
        assert not left, left
    # Every file of the store belongs to a listed VM.
    listed = as_json(ok("vm", "list", "--json", "--store", target))
    owned = set()
    for vm in listed:
        owned |= files_of_vm(as_json(ok("vm", "show", "--json", "--store", target, vm["id"])))
    on_disk = {os.path.join(target, DISKS, n) for n in os.listdir(os.path.join(target, DISKS))}
    stray = on_disk - owned
    print("# %d imports killed, %d listed VMs" % (killed, len(listed)))
    # Disks placed by an import killed before its commit were removed by the next one's
    # recovery (its journal): no file belongs to no VM.
    assert not stray, sorted(stray)
    journals = [n for n in os.listdir(os.path.join(target, VMS)) if "journal" in n]
    assert not journals, journals


def test_the_journal_of_an_import_killed_before_its_commit_is_undone():
    _, folder = exported_blog()
    target = blog_target()
    # What an import killed between placing its files and its commit leaves.
    placed = os.path.join(target, DISKS, "placed.vhd")
    state = os.path.join(target, VMS, "0F0F0F0F-0000-4000-8000-000000000001")
    os.mkdir(state)
    write(os.path.join(state, "x.vsv"), "state")
    write(placed, "disk")
    # A name the killed import had listed but never placed (its file still under its
    # temporary name), since taken by another VM's file.
    taken = os.path.join(target, DISKS, "taken.vhd")
    temp = os.path.join(target, DISKS, ".taken.vhd.impex-import")
    write(temp, "the killed import's")
    listed_inode = os.lstat(temp)
    write(taken, "another VM's disk")
    journals = os.path.join(target, ".impex-journals")
    os.mkdir(journals, 0o700)
    journal = os.path.join(journals, "0F0F0F0F-0000-4000-8000-000000000001.journal")

    def entry(path, st=None):
        st = st or os.lstat(path)
        return "%d %d %s\n" % (st.st_dev, st.st_ino, path)
    # A file outside the store's roots, listed: never touched.
    outside = os.path.join(os.path.dirname(target), "outside.txt")
    write(outside, "not the store's")
    write(journal, "impex-journal 1\n" + entry(placed) + entry(state) + entry(taken, listed_inode)
          + entry(outside))
    # And a committed one's journal (its VM configuration exists): only the journal goes.
    other = os.path.join(target, DISKS, "kept.vhd")
    write(other, "kept")
    write(os.path.join(target, VMS, "0F0F0F0F-0000-4000-8000-000000000002.xml"), "x")
    done = os.path.join(journals, "0F0F0F0F-0000-4000-8000-000000000002.journal")
    write(done, "impex-journal 1\n" + entry(other))
    # Journal-shaped files anywhere else are nobody's journals: what they list stays.
    forged = os.path.join(target, VMS, ".0F0F0F0F-0000-4000-8000-000000000003.impex-journal")
    victim = os.path.join(target, DISKS, "victim.vhd")
    write(victim, "a disk of the store")
    write(forged, "impex-journal 1\n" + entry(victim))
    result = ok("import", "--store", target, folder)
    assert not os.path.exists(placed) and not os.path.exists(state)
    assert os.path.exists(journal), "a journal that lists a path outside the roots is kept"
    assert "outside.txt" in result.stderr and "left alone" in result.stderr, result.stderr
    assert not os.path.exists(done)
    assert os.path.exists(other) and os.path.exists(victim) and os.path.exists(outside)
    # Only the very files the import made go: another VM's file of a listed name stays.
    with open(taken) as f:
        assert f.read() == "another VM's disk"
    assert not os.path.exists(temp)


def leaves(path):
    """Every leaf of a configuration: element path -> text."""
    out = {}

    def walk(node, prefix):
        children = list(node)
        if not children:
            out[prefix] = node.text or ""
        seen = {}
        for child in children:
            seen[child.tag] = seen.get(child.tag, 0) + 1
            walk(child, "%s/%s[%d]" % (prefix, child.tag, seen[child.tag]))
    walk(config_root(path), "")
    return out


# What an import changes in a configuration, and nothing else.
INTENDED = ("/properties[1]/global_id[1]", "/properties[1]/name[1]", "pathname[1]",
            "SwitchName[1]", "AltSwitchName[1]", "HostResource[1]", "IsConnected[1]",
            "PortName[1]", "/global_settings[1]/snapshots[1]/current[1]",
            "/global_settings[1]/snapshots[1]/parent[1]", "/settings[1]/global[1]/logical_id[1]")


def test_round_trip_export_import_export():
    ok("demo", "source")
    states = modelled_vm(os.path.realpath("source"))
    ok("export", "--store", "source", "m", "first")
    target = new_store("target")
    guid = ok("import", "--store", target, "first").stdout.split()[0]
    ok("export", "--store", target, guid, "second")
    # The same disk contents, state by state.
    assert_states(os.path.realpath("second"), guid, states, ["current", "s1", "s2", "s3"])
    one = as_json(ok("vm", "show", "--json", "--store", "first", "m"))
    two = as_json(ok("vm", "show", "--json", "--store", "second", guid))
    for a, b in zip(one["disks"], two["disks"]):
        if len(a["chain"]) == 1:
            run(["qemu-img", "compare", "-f", "vpc", "-F", "vpc", a["path"], b["path"]])
    assert_only_intended_edits(one, two)


def assert_only_intended_edits(one, two):
    """The configurations of VM @one and VM @two (as vm show --json gives them, snapshots
    matched by name) differ only by the edits an import intends."""
    pairs = [(one["config"], two["config"])]
    by_name = {s["name"]: s["config"] for s in two["snapshots"]}
    pairs += [(s["config"], by_name[s["name"]]) for s in one["snapshots"]]
    for before, after in pairs:
        x, y = leaves(before), leaves(after)
        assert x.keys() == y.keys(), set(x) ^ set(y)
        changed = sorted(k for k in x if x[k] != y[k])
        unintended = [k for k in changed if not k.endswith(INTENDED)]
        assert not unintended, [(k, x[k], y[k]) for k in unintended]
        assert "/properties[1]/global_id[1]" in changed


if __name__ == "__main__":
    run_tests(globals())
