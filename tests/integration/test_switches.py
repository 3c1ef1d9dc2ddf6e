"""Switches on import, on export folders shaped like real Hyper-V 2012 R2
ones (hyperv2012.py: UTF-16LE with CRLF, or re-encoded to UTF-8; adapters
naming their switch in SwitchName, Connection/AltSwitchName and
Connection/HostResources/HostResource). What an imported configuration must
say is read here with Python's XML parser, from the adapters' MAC addresses
and the store's switches.txt, never from impex's own view.

A switch the store lacks is an error, as in Compare-VM: the adapter is mapped
(network.N.target), disconnected on purpose (an empty network.N.target), or
disconnected by disconnect_unknown_switches = true.
"""

import os
import re
import time

import hyperv2012
from impexlib import DISKS, VMS, GUID_RE, as_json, call, describe_change, need, new_store, ok, \
    refused, tree_state
from taplib import run, run_tests
from test_import import parse, write
from test_import_mount import entry, vm_ids, wait_state
from test_mount import Mount
from test_mount_snapshots import config_root

ENCODINGS = ("utf-16", "utf-8")

# The box's adapters: on "External", on "Internal", and one not connected.
ON_EXTERNAL = "00-15-5D-01-C8-01"
ON_INTERNAL = "00-15-5D-01-C8-02"
SPARE = "00-15-5D-01-C8-03"


def box(name, encoding, extra_text=None):
    """A Vagrant-shaped export folder @name (its configuration named by its GUID, in
    @encoding) with a real disk and three adapters; @extra_text edits its text.
    Returns (folder, the source switches' GUIDs by name)."""
    switches = {"External": hyperv2012.guid(), "Internal": hyperv2012.guid()}
    adapters = [
        {"name": "Front", "mac": ON_EXTERNAL, "switch_id": switches["External"],
         "switch_name": "External"},
        {"name": "Back", "mac": ON_INTERNAL, "switch_id": switches["Internal"],
         "switch_name": "Internal"},
        {"name": "Spare", "mac": SPARE, "connected": False},
    ]
    ok("vhd", "create", name + ".vhd", "8M")
    with open(name + ".vhd", "rb") as f:
        disk = f.read()
    os.remove(name + ".vhd")
    vm_id = hyperv2012.guid()
    _, path = hyperv2012.vagrant_box(name, "box", vm_id=vm_id, encoding=encoding, disk=disk,
                                     adapters=adapters, config_name=vm_id + ".xml")
    if extra_text:
        text = extra_text(hyperv2012.vm_config(vm_id, "box", disks=[{
            "bus": "ide", "path": hyperv2012.windows_path(DISKS, "box.vhd")}],
            adapters=adapters))
        with open(path, "wb") as f:
            f.write(hyperv2012.encode(text, encoding))
    return os.path.realpath(name), switches


def store_switches(store):
    """name -> GUID (upper case), from switches.txt read here."""
    out = {}
    with open(os.path.join(store, "switches.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                guid, _, name = line.partition(" ")
                out[name] = guid.upper()
    return out


def text(node, path):
    """The text of @path under @node; Hyper-V's empty string (a line end and the
    closing tag's indentation) is "". None when there is no such element."""
    found = node.find(path)
    return None if found is None else (found.text or "").strip()


def adapters_in(config):
    """MAC -> the connection fields of each adapter of the configuration file @config."""
    out = {}
    for node in config_root(config):
        if node.find("MacAddress") is None:
            continue
        resources = node.find("Connection/HostResources")
        out[text(node, "MacAddress")] = {
            "SwitchName": text(node, "SwitchName"),
            "AltSwitchName": text(node, "Connection/AltSwitchName"),
            "HostResource": None if resources is None else
            [(r.text or "").strip() for r in resources.findall("HostResource")],
            "HostResources children": None if resources is None else len(list(resources)),
            "IsConnected": text(node, "IsConnected"),
            "PortName": text(node, "PortName"),
            "AltPortName": text(node, "Connection/AltPortName"),
            "TestReplicaSwitchName": text(node, "Connection/TestReplicaSwitchName"),
        }
    return out


def imported(target, guid):
    return adapters_in(os.path.join(target, VMS, guid + ".xml"))


def assert_connected(fields, switch_id, switch_name, label):
    assert fields["SwitchName"].upper() == switch_id, (label, fields)
    assert fields["AltSwitchName"] == switch_name, (label, fields)
    assert [r.upper() for r in fields["HostResource"]] == [switch_id], (label, fields)
    assert fields["IsConnected"] == "True", (label, fields)
    assert GUID_RE.match(fields["PortName"]), (label, fields)


def assert_unconnected(fields, label):
    """As Hyper-V writes an adapter that is not connected."""
    assert fields["SwitchName"] == "" and fields["AltSwitchName"] == "", (label, fields)
    assert fields["HostResources children"] == 0, (label, fields)
    assert fields["PortName"] == "" and fields["IsConnected"] == "False", (label, fields)


def compare(store, folder, *args, status=0):
    """impex compare --json: the report, its exit status @status, nothing changed."""
    before = (tree_state(store), tree_state(folder))
    result = call("compare", "--json", "--store", store, *args, folder)
    assert result.returncode == status, result
    assert (tree_state(store), tree_state(folder)) == before, "impex compare changed files"
    report = as_json(result)
    assert report["importable"] == (status == 0), report
    return report


def issues(report, issue_id):
    return [i for i in report["issues"] if i["id"] == issue_id]


def import_vm(target, folder, *args):
    out = ok("import", "--store", target, *args, folder).stdout.split()
    assert len(out) == 2 and GUID_RE.match(out[0]) and out[1] == "box", out
    return out[0]


# ---- impex compare and impex import ----

def test_every_switch_field_names_the_mapped_switch():
    """Mapped, disconnected on purpose, never connected: each adapter's fields agree."""
    for encoding in ENCODINGS:
        folder, source = box("box-" + encoding, encoding)
        before = adapters_in(os.path.join(folder, VMS, os.listdir(os.path.join(folder, VMS))[0]))
        assert before[ON_EXTERNAL]["HostResource"] == [source["External"]], before
        target = new_store("target-" + encoding)
        ok("switch", "add", "--store", target, "LAN")
        lan = store_switches(target)["LAN"]
        write("map.settings", "network.1.source = External\nnetwork.1.target = LAN\n"
              "network.2.source = Internal\nnetwork.2.target =\n")
        assert issues(compare(target, folder, "--settings", "map.settings"), "switch-unknown") \
            == []
        guid = import_vm(target, folder, "--settings", "map.settings")
        after = imported(target, guid)
        assert sorted(after) == sorted([ON_EXTERNAL, ON_INTERNAL, SPARE]), after
        assert_connected(after[ON_EXTERNAL], lan, "LAN", encoding)
        # Its port on the switch is kept; what names no switch is left as it was.
        assert after[ON_EXTERNAL]["PortName"] == before[ON_EXTERNAL]["PortName"]
        for mac in (ON_EXTERNAL, ON_INTERNAL, SPARE):
            for field in ("AltPortName", "TestReplicaSwitchName"):
                assert after[mac][field] == before[mac][field], (mac, field, after[mac])
        assert_unconnected(after[ON_INTERNAL], encoding + " disconnected on purpose")
        assert_unconnected(after[SPARE], encoding + " never connected")
        # impex's own reading agrees, and finds nothing amiss.
        vm = as_json(ok("vm", "show", "--json", "--store", target, guid))
        shown = {a["mac"]: a for a in vm["adapters"]}
        assert (shown[ON_EXTERNAL]["switch"], shown[ON_EXTERNAL]["switch_id"].upper(),
                shown[ON_EXTERNAL]["connected"]) == ("LAN", lan, True), shown
        assert not shown[ON_INTERNAL]["connected"] and not shown[SPARE]["connected"], shown
        assert all(a["problem"] is None for a in vm["adapters"]), vm["adapters"]


def test_an_unknown_switch_is_an_error_naming_the_adapter_and_the_switch():
    for encoding in ENCODINGS:
        folder, _ = box("box-" + encoding, encoding)
        target = new_store("target-" + encoding)
        ok("switch", "add", "--store", target, "External")
        doc = parse(ok("import-settings", "--store", target, folder).stdout)
        assert doc["disconnect_unknown_switches"] == "false", doc
        assert (doc["network.1.source"], doc["network.2.source"]) == ("External", "Internal")
        report = compare(target, folder, status=1)
        unknown = issues(report, "switch-unknown")
        assert [i["severity"] for i in unknown] == ["error"], report
        message = unknown[0]["message"]
        for said in ("'Back'", ON_INTERNAL, "'Internal'", "network.2.target",
                     "disconnect_unknown_switches"):
            assert said in message, (said, message)
        assert unknown[0]["file"].startswith(os.path.join(folder, VMS)), unknown
        shown = call("compare", "--store", target, folder)
        assert shown.returncode == 1 and "the import would fail: 1 error" in shown.stdout, shown
        assert "'Internal'" in shown.stdout, shown
        # The import refuses, naming them, and leaves the store as it was.
        before = tree_state(target)
        refused("import", "--store", target, folder,
                mentions=["switch-unknown", "adapter 'Back'", "'Internal'"])
        assert tree_state(target) == before, describe_change(before, tree_state(target),
                                                             "a refused import")
        assert as_json(ok("vm", "list", "--json", "--store", target)) == []


def test_explicit_disconnect_and_the_opt_in_import():
    for encoding in ENCODINGS:
        folder, _ = box("box-" + encoding, encoding)
        target = new_store("target-" + encoding)
        # Each switch disconnected on purpose: nothing to report.
        write("off.settings", "network.1.source = External\nnetwork.1.target =\n"
              "network.2.source = Internal\nnetwork.2.target =\n")
        assert compare(target, folder, "--settings", "off.settings")["issues"] == []
        guid = import_vm(target, folder, "--settings", "off.settings")
        for mac, fields in imported(target, guid).items():
            assert_unconnected(fields, "%s %s off" % (encoding, mac))
        # Every unknown switch disconnected: a warning each, and the import goes on.
        write("any.settings", "disconnect_unknown_switches = true\n")
        report = compare(target, folder, "--settings", "any.settings")
        unknown = issues(report, "switch-unknown")
        assert sorted(i["severity"] for i in unknown) == ["warning", "warning"], report
        assert all("will be disconnected" in i["message"] for i in unknown), unknown
        assert any("'External'" in i["message"] and ON_EXTERNAL in i["message"]
                   for i in unknown), unknown
        guid = import_vm(target, folder, "--settings", "any.settings")
        for mac, fields in imported(target, guid).items():
            assert_unconnected(fields, "%s %s opt-in" % (encoding, mac))


def test_a_typo_in_a_switch_remap_refuses():
    folder, _ = box("box", "utf-16")
    target = new_store("target")
    ok("switch", "add", "--store", target, "LAN")
    ok("switch", "add", "--store", target, "Internal")
    # The target misspelt: an error naming it, even with every unknown switch let go.
    for extra in ("", "disconnect_unknown_switches = true\n"):
        write("typo.settings", extra + "network.1.source = External\nnetwork.1.target = LNA\n")
        report = compare(target, folder, "--settings", "typo.settings", status=1)
        unknown = issues(report, "switch-unknown")
        assert [i["severity"] for i in unknown] == ["error"], report
        assert "'LNA'" in unknown[0]["message"] and "network.1.target" in \
            unknown[0]["message"], unknown
        before = tree_state(target)
        refused("import", "--store", target, "--settings", "typo.settings", folder,
                mentions=["'LNA'"])
        assert tree_state(target) == before
    # The source misspelt: the document names no switch of the export.
    write("typo.settings", "network.1.source = Externl\nnetwork.1.target = LAN\n")
    refused("import", "--store", target, "--settings", "typo.settings", folder,
            mentions=["typo.settings", "'Externl'"])


def test_an_adapter_whose_switch_fields_disagree():
    """SwitchName and HostResource naming two switches: reported, and the import writes
    one switch in every field."""
    stray = "0D1E2F3A-4B5C-4D6E-8F7A-8B9C0D1E2F3A"

    def two_guids(config_text):
        out, n = re.subn(r"(<HostResource type=\"string\">)[^<]*(</HostResource>)",
                         r"\g<1>%s\g<2>" % stray, config_text, count=1)
        assert n == 1
        return out

    for encoding in ENCODINGS:
        folder, source = box("box-" + encoding, encoding, extra_text=two_guids)
        shown = as_json(ok("vm", "show", "--json", "--store", folder, "box"))
        bad = [a for a in shown["adapters"] if a["problem"]]
        assert [a["mac"] for a in bad] == [ON_EXTERNAL], shown["adapters"]
        assert source["External"] in bad[0]["problem"] and stray in bad[0]["problem"], bad
        target = new_store("target-" + encoding)
        ok("switch", "add", "--store", target, "External")
        ok("switch", "add", "--store", target, "Internal")
        report = compare(target, folder)
        said = issues(report, "adapter-inconsistent")
        assert len(said) == 1 and ON_EXTERNAL in said[0]["message"], report
        assert said[0]["severity"] == "warning", said
        guid = import_vm(target, folder)
        here = store_switches(target)
        after = imported(target, guid)
        assert_connected(after[ON_EXTERNAL], here["External"], "External", encoding)
        assert_connected(after[ON_INTERNAL], here["Internal"], "Internal", encoding)
        assert_unconnected(after[SPARE], encoding)


# ---- the import mount ----

def wait_error(mnt, folder, issue_id, timeout=60):
    """The import @folder once it waits with the error @issue_id."""
    deadline = time.time() + timeout
    while True:
        imp = wait_state(mnt, folder, ("waiting",), timeout)
        if any(e["id"] == issue_id for e in imp["errors"]):
            return imp
        assert time.time() < deadline, "import %s waits without %s: %s" % (folder, issue_id,
                                                                          imp)
        time.sleep(0.05)


def test_the_import_mount_waits_for_an_unknown_switch():
    need("fusermount3")
    target = new_store("target")
    ok("switch", "add", "--store", target, "LAN")
    lan = store_switches(target)["LAN"]
    folders = {encoding: box("box-" + encoding, encoding)[0] for encoding in ENCODINGS}
    with Mount(target, "mnt", "-o", "import") as m:
        for encoding, folder in folders.items():
            run(["cp", "-r", folder, os.path.join(m.point, encoding)])
            imp = wait_error(m.point, encoding, "switch-unknown")
            unknown = [e for e in imp["errors"] if e["id"] == "switch-unknown"]
            assert len(unknown) == 2, imp
            assert any("'External'" in e["message"] and "'Front'" in e["message"]
                       for e in unknown), unknown
            # An import waiting with errors: impex status says so, and exits 1.
            result = call("status", m.point)
            human = result.stdout
            assert result.returncode == 1, result
            assert "switch-unknown" in human and "'Internal'" in human, human
        assert vm_ids(target) == set(), "an import with unknown switches was registered"
        # Settings put in the folder resolve it: one mapped, one disconnected.
        for encoding in ENCODINGS:
            write(os.path.join(m.point, encoding, "impex-import.settings"),
                  "network.1.source = External\nnetwork.1.target = LAN\n"
                  "network.2.source = Internal\nnetwork.2.target =\n")
            imp = wait_state(m.point, encoding)
            assert imp["errors"] == [], imp
            after = imported(target, imp["vm"]["id"])
            assert_connected(after[ON_EXTERNAL], lan, "LAN", encoding)
            assert_unconnected(after[ON_INTERNAL], encoding)
            assert_unconnected(after[SPARE], encoding)


def test_the_import_mount_wide_opt_in_disconnects_unknown_switches():
    need("fusermount3")
    target = new_store("target")
    folder = box("box", "utf-16")[0]
    with Mount(target, "mnt", "-o", "import,disconnect_unknown_switches=true") as m:
        run(["cp", "-r", folder, os.path.join(m.point, "box")])
        imp = wait_state(m.point, "box")
        warned = [w for w in imp["warnings"] if w["id"] == "switch-unknown"]
        assert len(warned) == 2 and all("will be disconnected" in w["message"]
                                        for w in warned), imp
        guid = imp["vm"]["id"]
        # A typo in a mapping is still an error, the opt-in notwithstanding.
        os.mkdir(os.path.join(m.point, "typo"))
        write(os.path.join(m.point, "typo", "impex-import.settings"),
              "network.1.source = External\nnetwork.1.target = LNA\n")
        run(["cp", "-r", folder + "/.", os.path.join(m.point, "typo")])
        imp = wait_error(m.point, "typo", "switch-unknown")
        assert any(e["id"] == "switch-unknown" and "'LNA'" in e["message"]
                   for e in imp["errors"]), imp
        assert entry(m.point, "typo")["state"] == "waiting"
    for mac, fields in imported(target, guid).items():
        assert_unconnected(fields, mac)
    assert vm_ids(target) == {guid}


if __name__ == "__main__":
    run_tests(globals())
