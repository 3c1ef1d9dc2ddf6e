"""Stores of Hyper-V VMs: `impex store init`, `impex switch add|list`,
`impex vm new|list|show`.

What impex writes is checked without impex: the configurations are decoded
and parsed here (UTF-16LE with a byte-order mark, CRLF, xml.etree), the
disks are opened with `qemu-img` and `vhdiinfo`. Damaged and hostile stores
are made by hand: a broken VM must never hide the others, must be named
with its problem, and nothing in the store may change by being read.
"""

import base64
import json
import os
import re
import shutil
import struct
import time
import uuid
import xml.etree.ElementTree as ET

from impexlib import (
    DISKS, GUID_RE, SNAPSHOTS, TIMEOUT, VMS, as_json, assert_unchanged, call,
    config_path, describe_change, need, new_store, ok, refused, tree_state, value,
    vm_new)
from taplib import run, run_tests

MIB = 1024 * 1024
FIFO_TIMEOUT = 20   # for the cases where a blocking open() would hang

IDE_TYPE = "83f8638b-8dca-4152-9eda-2ca8b33039b4"
SCSI_TYPE = "d422512d-2bf2-4752-809d-7b82b5fcb1b4"
NIC_TYPE = "2fc216b0-d2e2-4967-9b6d-b8a5c9ca2778"
IDE_NODE = "_%s_" % IDE_TYPE


MAC_RE = re.compile(r"^00-15-5D(-[0-9A-F]{2}){3}$")
LEAF_TYPES = ("string", "integer", "bool", "bytes")
FILETIME_UNIX_EPOCH = 116444736000000000


# ---- running impex ----


# ---- the store on disk ----


def switches_txt(store):
    """name -> GUID, from switches.txt read here."""
    found = {}
    with open(os.path.join(store, "switches.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            guid, sep, name = line.partition(" ")
            assert sep and GUID_RE.match(guid), "switches.txt line %r" % line
            found[name] = guid
    return found


# ---- configurations, read and written here ----

def decode(raw):
    """(encoding, text) of a configuration's bytes."""
    if raw.startswith(b"\xff\xfe"):
        return "utf-16", raw[2:].decode("utf-16-le")
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-bom", raw[3:].decode("utf-8")
    return "utf-8", raw.decode("utf-8")


def encode(text, encoding):
    if encoding == "utf-16":
        return b"\xff\xfe" + text.encode("utf-16-le")
    if encoding == "utf-8-bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    return text.encode("utf-8")


def read_config(path):
    with open(path, "rb") as f:
        raw = f.read()
    encoding, text = decode(raw)
    return raw, text, ET.fromstring(text)


def write_config(path, text, encoding="utf-16"):
    with open(path, "wb") as f:
        f.write(encode(text, encoding))


def edit_config(path, change, encoding=None, to=None):
    """Rewrite the configuration at @path (or into @to) with change(text)."""
    with open(path, "rb") as f:
        was, text = decode(f.read())
    new = change(text)
    assert new != text, "the edit changed nothing in %s" % path
    write_config(to or path, new, encoding or was)


def set_leaf(path, value):
    """An edit: the first leaf <tag type="...">...</tag> gets @value; @path
    is "tag" or "container/tag" (the first <tag> inside <container>)."""
    container, _, tag = path.rpartition("/")
    leaf = re.compile(r"(<%s type=\"[a-z]+\">)[^<]*(</%s>)" % (tag, tag))

    def change(text):
        start, end = 0, len(text)
        if container:
            start = text.index("<%s>" % container)
            end = text.index("</%s>" % container, start)
        return text[:start] + leaf.sub(lambda m: m.group(1) + value + m.group(2),
                                       text[start:end], count=1) + text[end:]
    return change


def filetime_to_unix(ft):
    return (ft - FILETIME_UNIX_EPOCH) // 10000000


def unix_to_filetime_base64(t):
    return base64.b64encode(struct.pack("<q", t * 10000000 + FILETIME_UNIX_EPOCH)).decode()


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def hyperv_config(guid, name, drives, type_id="Virtual Machines", logical_id=None,
                  created=1400000000, extra=""):
    """A configuration in Hyper-V's formatting (2012 R2): two-space indents,
    CRLF, every leaf typed, keys impexfs does not know. @drives: (controller,
    drive, type, pathname) on the IDE controller."""
    by_controller = {}
    for controller, drive, kind, path in drives:
        by_controller.setdefault(controller, []).append((drive, kind, path))
    ide = []
    for controller in sorted(by_controller):
        ide.append("    <controller%d>" % controller)
        for drive, kind, path in sorted(by_controller[controller]):
            ide += ["      <drive%d>" % drive,
                    '        <iops_limit type="integer">0</iops_limit>',
                    '        <pathname type="string">%s</pathname>' % escape(path),
                    '        <type type="string">%s</type>' % kind,
                    "      </drive%d>" % drive]
        ide.append("    </controller%d>" % controller)
    lines = [
        '<?xml version="1.0" encoding="UTF-16" standalone="yes"?>',
        "<configuration>",
        "  <%s>" % IDE_NODE] + ide + [
        "  </%s>" % IDE_NODE,
        "  <global_settings>",
        "    <devices>",
        '      <allow_reduced_fc_redundancy type="bool">False</allow_reduced_fc_redundancy>',
        "    </devices>",
        "    <metrics>",
        '      <enabled type="bool">False</enabled>',
        "    </metrics>",
        "  </global_settings>",
        "  <manifest>",
        '    <size type="integer">1</size>',
        "    <vdev001>",
        '      <device type="string">%s</device>' % IDE_TYPE,
        '      <flags type="integer">1</flags>',
        '      <instance type="string">%s</instance>' % IDE_TYPE,
        '      <name type="string">Microsoft Emulated IDE Controller</name>',
        "    </vdev001>",
        "  </manifest>",
        "  <properties>",
        '    <creation_time type="bytes">%s\n</creation_time>' % unix_to_filetime_base64(created),
        '    <global_id type="string">%s</global_id>' % guid,
        '    <highly_available type="bool">False</highly_available>',
        '    <last_powered_off_time type="integer">130470893165480000</last_powered_off_time>',
        '    <name type="string">%s</name>' % escape(name),
        '    <notes type="string"></notes>',
        '    <subtype type="integer">0</subtype>',
        '    <type_id type="string">%s</type_id>' % type_id,
        '    <version type="integer">1280</version>',
        "  </properties>",
        "  <settings>",
        "    <global>",
        '      <logical_id type="string">%s</logical_id>' % (logical_id or guid),
        "    </global>",
        "    <memory>",
        "      <bank>",
        '        <size type="integer">1024</size>',
        "      </bank>",
        "    </memory>",
        "  </settings>",
        extra,
        "</configuration>",
        ""]
    return "\r\n".join(line for line in lines if line != "")


def new_guid():
    return str(uuid.uuid4()).upper()


# ---- reference tools ----


def qemu_virtual_size(path):
    fmt = "vhdx" if path.lower().endswith(".vhdx") else "vpc"
    info = json.loads(run(["qemu-img", "info", "-f", fmt, "--output=json", path]).stdout)
    assert info["format"] == fmt, info
    return info["virtual-size"]


def vhdiinfo_media_size(path):
    out = run(["vhdiinfo", path]).stdout
    match = re.search(r"Media size\s*:.*\((\d+) bytes\)", out)
    assert match, "vhdiinfo shows no media size for %s: %r" % (path, out)
    return int(match.group(1))


def assert_disk(path, size):
    assert os.path.isfile(path), "no disk at %s" % path
    assert qemu_virtual_size(path) == size, "qemu-img: %s is not %d bytes" % (path, size)
    assert vhdiinfo_media_size(path) == size, "vhdiinfo: %s is not %d bytes" % (path, size)


# ---- checking a configuration that impex wrote, independently ----

def check_hyperv_form(path):
    """Bytes, declaration, identity and typing of a VM configuration.
    Returns (guid, root)."""
    raw, text, root = read_config(path)
    name = os.path.basename(path)
    guid = name[:-4]
    assert name.endswith(".xml") and GUID_RE.match(guid), name
    assert guid == guid.upper(), "%s: the GUID of the file name is not upper case" % name
    assert raw[:2] == b"\xff\xfe", "%s does not start with a UTF-16LE byte-order mark: %r" % (
        name, raw[:8])
    assert len(raw) % 2 == 0, name
    assert "\r\n" in text, "%s has no CRLF" % name
    bare = re.findall(r"(?<!\r)\n", text)
    assert not bare, "%s has %d bare LF line ends" % (name, len(bare))
    first = text.split("\r\n", 1)[0]
    assert re.match(r'<\?xml version="1\.0" encoding="UTF-16"', first, re.I), \
        "%s declares %r" % (name, first)
    assert root.tag == "configuration" and not root.attrib, root.tag
    assert value(root, "properties/global_id") == guid, "global_id is not the file's GUID"
    assert value(root, "settings/global/logical_id") == guid, "logical_id is not the GUID"
    assert value(root, "properties/type_id") == "Virtual Machines"
    int(value(root, "properties/version"))
    for node in root.iter():
        if node is root:
            continue
        if len(node):
            assert "type" not in node.attrib, "container <%s> has a type" % node.tag
        else:
            assert node.attrib.get("type") in LEAF_TYPES, \
                "leaf <%s> has type %r" % (node.tag, node.attrib.get("type"))
    ft = base64.b64decode(value(root, "properties/creation_time"))
    assert len(ft) == 8, "creation_time holds %d bytes" % len(ft)
    created = filetime_to_unix(struct.unpack("<q", ft)[0])
    assert abs(created - time.time()) < 3600, "creation_time %d is not now" % created
    return guid, root


def manifest(root):
    """The manifest's entries, in order: dicts of device, instance, name, flags."""
    size = int(value(root, "manifest/size"))
    entries = [child for child in root.find("manifest") if child.tag != "size"]
    assert len(entries) == size, "manifest/size is %d, with %d entries" % (size, len(entries))
    for i, entry in enumerate(entries, 1):
        assert entry.tag == "vdev%03d" % i, "manifest entry %d is <%s>" % (i, entry.tag)
    result = []
    for entry in entries:
        fields = {leaf.tag: leaf.text or "" for leaf in entry}
        node = root.find("_%s_" % fields["instance"])
        assert node is not None, "no node for manifest instance %s" % fields["instance"]
        assert fields["instance"] == fields["instance"].lower()
        result.append(fields)
    return result


def controller_disks(root, node_name):
    """(controller, drive, pathname, type) of every drive under @node_name."""
    node = root.find(node_name)
    assert node is not None, "no controller node %s" % node_name
    disks = []
    for controller in node:
        assert re.match(r"^controller\d+$", controller.tag), controller.tag
        for drive in controller:
            assert re.match(r"^drive\d+$", drive.tag), drive.tag
            disks.append((int(controller.tag[10:]), int(drive.tag[5:]),
                          value(drive, "pathname"), value(drive, "type")))
    return disks


def adapters(root):
    """Every synthetic NIC of the manifest: (node, fields)."""
    found = []
    for entry in manifest(root):
        if entry["device"] == NIC_TYPE:
            node = root.find("_%s_" % entry["instance"])
            found.append(node)
    return found


# ---- 1. store init ----

def test_store_init_creates_the_layout():
    result = ok("store", "init", "store")
    assert "store" in result.stdout, result
    for folder in (VMS, SNAPSHOTS, DISKS):
        assert os.path.isdir(os.path.join("store", folder)), "no '%s'" % folder
    assert os.path.isfile("store/switches.txt")
    assert switches_txt("store") == {}
    # Again: fine, and what it holds stays.
    ok("switch", "add", "--store", "store", "LAN")
    vm_new("store", "--disk", "ide:8M", "kept")
    before = tree_state("store")
    ok("store", "init", "store")
    assert_unchanged(before, tree_state("store"), "a second store init")
    # In a folder that exists already and is empty.
    os.mkdir("empty")
    ok("store", "init", "empty")
    assert os.path.isdir("empty/" + VMS)


def test_store_init_refusals():
    with open("file", "w") as f:
        f.write("x")
    refused("store", "init", "file")
    refused("store", "init", "missing/parent/store")
    assert not os.path.exists("missing")
    result = call("store", "init")
    assert result.returncode == 2, result
    # A command on a folder that is not there.
    refused("vm", "list", "--store", "nowhere", mentions=["nowhere"])
    result = call("vm", "list", env={"IMPEX_STORE": ""})
    assert result.returncode == 2 and "store" in result.stderr, result


# ---- 2. switches ----

def test_switch_add_and_list():
    store = new_store()
    first = ok("switch", "add", "--store", store, "External LAN")
    second = ok("switch", "add", "--store", store, "Internal")
    ids = {}
    for result, name in ((first, "External LAN"), (second, "Internal")):
        guid, _, printed = result.stdout.rstrip("\n").partition("  ")
        assert GUID_RE.match(guid) and printed == name, result
        ids[name] = guid
    assert ids["External LAN"].upper() != ids["Internal"].upper()
    on_disk = switches_txt(store)
    assert {k: v.upper() for k, v in on_disk.items()} == \
        {k: v.upper() for k, v in ids.items()}, on_disk
    listed = as_json(ok("switch", "list", "--json", "--store", store))
    assert [(s["name"], s["id"].upper()) for s in listed] == \
        [("External LAN", ids["External LAN"].upper()), ("Internal", ids["Internal"].upper())], \
        listed
    text = ok("switch", "list", "--store", store).stdout
    assert "External LAN" in text and ids["Internal"] in text, text
    # The store may come from IMPEX_STORE.
    listed_env = as_json(call("switch", "list", "--json", env={"IMPEX_STORE": store}))
    assert listed_env == listed, listed_env


def test_switch_refusals_change_nothing():
    store = new_store()
    ok("switch", "add", "--store", store, "LAN")
    before = tree_state(store)
    refused("switch", "add", "--store", store, "LAN", mentions=["LAN"])
    refused("switch", "add", "--store", store, "two\nlines")
    refused("switch", "add", "--store", store, "carriage\rreturn")
    refused("switch", "add", "--store", store, "")
    assert_unchanged(before, tree_state(store), "a refused switch add")
    assert list(switches_txt(store)) == ["LAN"]
    assert len(as_json(ok("switch", "list", "--json", "--store", store))) == 1


def test_switch_add_never_makes_the_list_unreadable():
    """A long name is refused, or read back as it was written; either way the
    store's switches stay usable."""
    store = new_store()
    ok("switch", "add", "--store", store, "LAN")
    before = tree_state(store)
    long_name = "n" * 1100
    result = call("switch", "add", "--store", store, long_name)
    if result.returncode != 0:
        assert result.returncode == 1 and result.stderr.startswith("impex: "), result
        assert_unchanged(before, tree_state(store), "a refused switch add")
    listed = call("switch", "list", "--json", "--store", store)
    assert listed.returncode == 0, "switch list after adding a %d-character name: %r" % (
        len(long_name), listed)
    names = [s["name"] for s in as_json(listed)]
    assert names in (["LAN"], ["LAN", long_name]), [n[:20] for n in names]
    ok("switch", "add", "--store", store, "WAN")
    vm_new(store, "--switch", "WAN", "--disk", "ide:8M", "after")


# ---- 3. vm new, checked without impex ----

def make_blog_and_web(store):
    ok("switch", "add", "--store", store, "A")
    ok("switch", "add", "--store", store, "B")
    blog = vm_new(store, "--disk", "ide:64M", "--disk", "scsi:32M", "--switch", "A",
                  "--switch", "B", "--memory", "1G", "blog")
    web = vm_new(store, "--generation", "2", "--disk", "scsi:16M", "web")
    return blog, web


def test_vm_new_generation_1_configuration():
    need("qemu-img", "vhdiinfo")
    store = new_store()
    blog, _ = make_blog_and_web(store)
    path = config_path(store, blog)
    assert os.path.isfile(path), "no %s" % path
    guid, root = check_hyperv_form(path)
    assert guid == blog
    assert value(root, "properties/name") == "blog"
    assert value(root, "properties/subtype") == "0"
    assert value(root, "settings/memory/bank/size") == "1024"
    entries = manifest(root)
    assert len(entries) == 4, entries   # IDE, SCSI, two adapters
    devices = [e["device"] for e in entries]
    assert devices.count(IDE_TYPE) == 1 and devices.count(SCSI_TYPE) == 1, devices
    assert devices.count(NIC_TYPE) == 2, devices
    # IDE: the node carries the device type GUID; 64 MiB disk on 0:0.
    ide = [e for e in entries if e["device"] == IDE_TYPE][0]
    assert ide["instance"] == IDE_TYPE, ide
    ide_disks = controller_disks(root, IDE_NODE)
    assert [(c, d, t) for c, d, _, t in ide_disks] == [(0, 0, "VHD")], ide_disks
    ide_path = ide_disks[0][2]
    assert os.path.isabs(ide_path) and os.path.isfile(ide_path), ide_path
    assert os.path.dirname(ide_path) == os.path.join(store, DISKS), ide_path
    assert_disk(ide_path, 64 * MIB)
    # SCSI: a node named after its own instance GUID; 32 MiB disk on 0:0.
    scsi = [e for e in entries if e["device"] == SCSI_TYPE][0]
    assert GUID_RE.match(scsi["instance"]) and scsi["instance"] != SCSI_TYPE, scsi
    scsi_disks = controller_disks(root, "_%s_" % scsi["instance"])
    assert [(c, d, t) for c, d, _, t in scsi_disks] == [(0, 0, "VHD")], scsi_disks
    scsi_path = scsi_disks[0][2]
    assert os.path.isfile(scsi_path) and scsi_path != ide_path, scsi_path
    assert os.path.dirname(scsi_path) == os.path.join(store, DISKS), scsi_path
    assert_disk(scsi_path, 32 * MIB)
    assert {"blog.vhd", "blog_2.vhd"} == {os.path.basename(ide_path),
                                         os.path.basename(scsi_path)}, (ide_path, scsi_path)
    # Adapters: one per switch, in order, with Hyper-V's keys.
    switches = switches_txt(store)
    nics = adapters(root)
    assert len(nics) == 2
    macs = []
    for node, name in zip(nics, ("A", "B")):
        mac = value(node, "MacAddress")
        assert MAC_RE.match(mac), mac
        macs.append(mac)
        assert value(node, "SwitchName").upper() == switches[name].upper(), name
        assert value(node, "Connection/AltSwitchName") == name
        # As Hyper-V 2012 R2 writes a connected adapter: the GUID again in HostResources.
        assert [r.text.upper() for r in node.findall("Connection/HostResources/HostResource")] \
            == [switches[name].upper()], name
        assert value(node, "Connection/TestReplicaSwitchName") == ""
        assert value(node, "IsConnected") == "True"
        assert GUID_RE.match(value(node, "PortName")), name
        assert value(node, "MacAddressIsStatic") in ("True", "False")
    assert macs[0] != macs[1], macs


def test_vm_new_generation_2_configuration():
    need("qemu-img", "vhdiinfo")
    store = new_store()
    _, web = make_blog_and_web(store)
    guid, root = check_hyperv_form(config_path(store, web))
    assert value(root, "properties/name") == "web"
    assert value(root, "properties/subtype") == "1"
    assert root.find(IDE_NODE) is None, "a generation 2 VM with an IDE controller"
    entries = manifest(root)
    assert [e["device"] for e in entries] == [SCSI_TYPE], entries
    disks = controller_disks(root, "_%s_" % entries[0]["instance"])
    assert len(disks) == 1 and disks[0][3] == "VHD", disks
    # Hyper-V 2012 R2's default for generation 2: a VHDX (the drive type stays "VHD").
    assert disks[0][2].endswith(".vhdx"), disks
    assert_disk(disks[0][2], 16 * MIB)
    assert adapters(root) == []
    # Default memory: present and sane.
    assert int(value(root, "settings/memory/bank/size")) >= 32


def test_vm_new_names_are_kept_exactly():
    store = new_store()
    names = ["Überblog ☃", "a<b>&c \"quoted\" 'single'", "../../escape", "dots.in.name"]
    for name in names:
        guid = vm_new(store, "--disk", "ide:8M", name)
        _, root = check_hyperv_form(config_path(store, guid))
        assert value(root, "properties/name") == name, (name, value(root, "properties/name"))
        for _, _, path, _ in controller_disks(root, IDE_NODE):
            real = os.path.realpath(path)
            assert os.path.dirname(real) == os.path.join(store, DISKS), \
                "disk of %r at %s" % (name, path)
        shown = as_json(ok("vm", "show", "--json", "--store", store, guid))
        assert shown["name"] == name, shown
    assert sorted(os.listdir(".")) == ["store"], os.listdir(".")


def test_vm_new_refusals_leave_nothing_behind():
    store = new_store()
    make_blog_and_web(store)
    before = tree_state(store)
    refused("vm", "new", "--store", store, "--generation", "2", "--disk", "ide:16M",
            "--disk", "scsi:16M", "gen2ide", status=(1, 2), mentions=["IDE"])
    assert_unchanged(before, tree_state(store), "generation 2 with IDE")
    refused("vm", "new", "--store", store, "--disk", "ide:16M", "--switch", "A",
            "--switch", "no such switch", "lost", mentions=["no such switch"])
    assert_unchanged(before, tree_state(store), "an unknown switch")
    refused("vm", "new", "--store", store, "--disk", "ide:16M", "blog", mentions=["blog"])
    assert_unchanged(before, tree_state(store), "a duplicate VM name")
    for args in (["--generation", "3"], ["--disk", "floppy:8M"], ["--disk", "ide:x"],
                 ["--memory", "12K"]):
        result = call("vm", "new", "--store", store, *(args + ["usage"]))
        assert result.returncode == 2 and "usage: impex vm new" in result.stderr, result
    refused("vm", "new", "--store", store, "")
    refused("vm", "new", "--store", store, "x" * 201)
    refused("vm", "new", "--store", store, "--disk", "ide:8M", "control\x01char")
    assert_unchanged(before, tree_state(store), "refused vm new commands")


def test_vm_new_disk_name_taken_gets_another():
    store = new_store()
    # The second disk's file name is taken (by another VM's name, say): it
    # gets the VM's GUID in its name, and the file there is left alone.
    with open(os.path.join(store, DISKS, "clash_2.vhd"), "wb") as f:
        f.write(b"not mine")
    guid = vm_new(store, "--disk", "ide:8M", "--disk", "scsi:8M", "clash")
    with open(os.path.join(store, DISKS, "clash_2.vhd"), "rb") as f:
        assert f.read() == b"not mine"
    vm = as_json(ok("vm", "show", "--json", "--store", store, guid))
    paths = [d["path"] for d in vm["disks"]]
    assert paths[0] == os.path.join(store, DISKS, "clash.vhd"), paths
    assert paths[1] == os.path.join(store, DISKS, "clash_2_%s.vhd" % guid[:8]), paths


def test_vm_new_disk_that_cannot_be_made_leaves_nothing_behind():
    store = new_store()
    # The second disk is too large for the format: the first must go again.
    with open(os.path.join(store, DISKS, "clash_2.vhd"), "wb") as f:
        f.write(b"not mine")
    before = tree_state(store)
    refused("vm", "new", "--store", store, "--disk", "ide:8M", "--disk", "scsi:3T", "clash",
            mentions=["2040 GiB"])
    assert_unchanged(before, tree_state(store), "a failed vm new")


def test_vm_new_ide_drives_fit_the_ide_controllers():
    """Hyper-V's emulated IDE has two channels (controller0, controller1) of
    two locations each (drive0, drive1)."""
    store = new_store()
    guid = vm_new(store, "--disk", "ide:8M", "--disk", "ide:8M", "--disk", "ide:8M", "three")
    _, root = check_hyperv_form(config_path(store, guid))
    places = [(c, d) for c, d, _, _ in controller_disks(root, IDE_NODE)]
    assert len(set(places)) == 3, places
    assert all(c in (0, 1) and d in (0, 1) for c, d in places), \
        "IDE drives at %s: Hyper-V has controller0-1, drive0-1" % places
    before = tree_state(store)
    refused("vm", "new", "--store", store, *(["--disk", "ide:8M"] * 5 + ["five"]),
            status=(1, 2), mentions=["IDE"])
    assert_unchanged(before, tree_state(store), "five IDE disks")


# ---- 4. vm list and vm show ----

def expected_view(store, guid):
    """What vm list should say of a VM, from its configuration read here."""
    _, root = check_hyperv_form(config_path(store, guid))
    disks = []
    if root.find(IDE_NODE) is not None:
        for c, d, path, _ in controller_disks(root, IDE_NODE):
            disks.append(("ide", c, d, path))
    for entry in manifest(root):
        if entry["device"] == SCSI_TYPE:
            for c, d, path, _ in controller_disks(root, "_%s_" % entry["instance"]):
                disks.append(("scsi", c, d, path))
    nics = [(value(n, "MacAddress"), value(n, "SwitchName").upper(),
             value(n, "Connection/AltSwitchName")) for n in adapters(root)]
    return {
        "id": guid, "name": value(root, "properties/name"),
        "generation": int(value(root, "properties/subtype")) + 1,
        "version": int(value(root, "properties/version")),
        "disks": sorted(disks), "adapters": nics,
    }


def actual_view(vm):
    return {
        "id": vm["id"], "name": vm["name"], "generation": vm["generation"],
        "version": vm["version"],
        "disks": sorted((d["bus"], d["controller"], d["drive"], d["path"]) for d in vm["disks"]),
        "adapters": [(a["mac"], a["switch_id"].upper(), a["switch"]) for a in vm["adapters"]],
    }


def without_chains(vm):
    """vm show's JSON less what only vm show adds (each disk's chain): vm list's."""
    vm = json.loads(json.dumps(vm))
    for disk in vm["disks"] + [d for s in vm["snapshots"] for d in s["disks"]]:
        disk.pop("chain", None)
        disk.pop("chain_problem", None)
        disk.pop("format", None)
    return vm


def test_vm_list_and_show():
    store = new_store()
    blog, web = make_blog_and_web(store)
    before = tree_state(store)
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert [vm["name"] for vm in listed] == ["blog", "web"], listed
    for vm, guid in zip(listed, (blog, web)):
        assert vm["id"] == guid, vm
        assert actual_view(vm) == expected_view(store, guid), (vm, expected_view(store, guid))
        assert vm["config"] == config_path(store, guid), vm
        assert vm["problem"] is None and vm["snapshots"] == [], vm
        assert vm["current_snapshot"] in ("", None), vm
        assert all(d["problem"] is None for d in vm["disks"]), vm
    # creation_time: the FILETIME of the configuration, in Unix seconds.
    _, root = check_hyperv_form(config_path(store, blog))
    ft = struct.unpack("<q", base64.b64decode(value(root, "properties/creation_time")))[0]
    assert listed[0]["creation_time"] == filetime_to_unix(ft), listed[0]
    # vm show: by name, by GUID, by lower-case GUID.
    for key in ("blog", blog, blog.lower()):
        shown = as_json(ok("vm", "show", "--json", "--store", store, key))
        for disk in shown["disks"]:
            assert disk["chain"] == [disk["path"]] and disk["chain_problem"] is None, disk
            assert disk["format"] == "VHD", disk
        assert without_chains(shown) == listed[0], (key, shown)
    text = ok("vm", "show", "--store", store, web.lower()).stdout
    assert "web" in text and web in text, text
    text = ok("vm", "show", "--store", store, "blog").stdout
    for adapter in listed[0]["adapters"]:
        assert adapter["mac"] in text, text
    text = ok("vm", "list", "--store", store).stdout
    assert blog in text and web in text and "blog" in text, text
    # The store may come from IMPEX_STORE.
    env_listed = as_json(call("vm", "list", "--json", env={"IMPEX_STORE": store}))
    assert env_listed == listed
    # A VM that is not there.
    refused("vm", "show", "--store", store, "nosuchvm", mentions=["nosuchvm"])
    refused("vm", "show", "--store", store, new_guid())
    assert_unchanged(before, tree_state(store), "vm list and vm show")


def test_vm_list_of_an_empty_store():
    store = new_store()
    assert as_json(ok("vm", "list", "--json", "--store", store)) == []
    refused("vm", "show", "--store", store, "anything")


def test_two_stores_together():
    one = new_store("one")
    two = new_store("two")
    a = vm_new(one, "--disk", "ide:8M", "alpha")
    b = vm_new(two, "--disk", "ide:8M", "beta")
    listed = as_json(ok("vm", "list", "--json", "--store", one, "--store", two))
    assert sorted((vm["name"], vm["id"]) for vm in listed) == [("alpha", a), ("beta", b)]
    for vm in listed:
        assert vm["problem"] is None and vm["disks"][0]["problem"] is None, vm
    # New VMs go to the first store.
    c = vm_new(one, "--disk", "ide:8M", "gamma")
    assert os.path.isfile(config_path(one, c))
    refused("vm", "new", "--store", one, "--store", two, "beta", mentions=["beta"])


# ---- 5. the path map ----

def test_path_map_writes_windows_paths_and_reads_them_back():
    store = new_store()
    pathmap = "C:\\VMs=%s" % store
    guid = vm_new(store, "--pathmap", pathmap, "--disk", "ide:16M", "--disk", "scsi:8M", "x")
    _, root = check_hyperv_form(config_path(store, guid))
    written = sorted(p for _, _, p, _ in controller_disks(root, IDE_NODE))
    scsi = [e for e in manifest(root) if e["device"] == SCSI_TYPE][0]
    written += [p for _, _, p, _ in controller_disks(root, "_%s_" % scsi["instance"])]
    assert written == ["C:\\VMs\\Virtual Hard Disks\\x.vhd",
                       "C:\\VMs\\Virtual Hard Disks\\x_2.vhd"], written
    assert os.path.isfile(os.path.join(store, DISKS, "x.vhd"))
    # With the same path map: found through it.
    vm = as_json(ok("vm", "list", "--json", "--store", store, "--pathmap", pathmap))[0]
    for disk, name in zip(sorted(vm["disks"], key=lambda d: d["bus"]), ("x.vhd", "x_2.vhd")):
        assert disk["found"] == "through the path map", disk
        assert disk["path"] == os.path.join(store, DISKS, name), disk
        assert disk["written"] == "C:\\VMs\\Virtual Hard Disks\\" + name, disk
        assert disk["problem"] is None, disk
    ok("vm", "show", "--store", store, "--pathmap", pathmap, "x")
    # Without it: still found in the store's "Virtual Hard Disks".
    vm = as_json(ok("vm", "list", "--json", "--store", store))[0]
    for disk in vm["disks"]:
        assert disk["found"] == "in Virtual Hard Disks", disk
        assert disk["problem"] is None, disk
    ok("vm", "show", "--store", store, "x")
    # Moved elsewhere: found again, with or without a path map for the new place.
    shutil.move(store, "moved")
    moved = os.path.realpath("moved")
    vm = as_json(ok("vm", "list", "--json", "--store", moved))[0]
    assert {d["found"] for d in vm["disks"]} == {"in Virtual Hard Disks"}, vm
    assert {os.path.dirname(d["path"]) for d in vm["disks"]} == {os.path.join(moved, DISKS)}
    vm = as_json(ok("vm", "list", "--json", "--store", moved,
                    "--pathmap", "C:\\VMs=%s" % moved))[0]
    assert {d["found"] for d in vm["disks"]} == {"through the path map"}, vm
    # Next to the configuration, when it lies there.
    os.rename(os.path.join(moved, DISKS, "x.vhd"), os.path.join(moved, VMS, "x.vhd"))
    vm = as_json(ok("vm", "list", "--json", "--store", moved))[0]
    ide = [d for d in vm["disks"] if d["bus"] == "ide"][0]
    assert ide["found"] == "next to the configuration", ide
    assert ide["path"] == os.path.join(moved, VMS, "x.vhd"), ide


def test_path_map_used_only_where_it_covers_the_disk():
    store = new_store()
    guid = vm_new(store, "--pathmap", "D:\\Elsewhere=%s" % os.path.realpath("."),
                  "--disk", "ide:8M", "y")
    # The map covers the store too (it lies under the mapped folder).
    _, root = check_hyperv_form(config_path(store, guid))
    path = controller_disks(root, IDE_NODE)[0][2]
    assert path == "D:\\Elsewhere\\store\\Virtual Hard Disks\\y.vhd", path
    os.mkdir("other")
    guid = vm_new(store, "--pathmap", "D:\\Elsewhere=%s" % os.path.realpath("other"),
                  "--disk", "ide:8M", "z")
    _, root = check_hyperv_form(config_path(store, guid))
    path = controller_disks(root, IDE_NODE)[0][2]
    assert path == os.path.join(store, DISKS, "z.vhd"), path


# ---- 6. broken VMs never hide the others ----

def healthy_store():
    """A store with a sound VM "good" and a VM "victim" to damage. Returns
    (store, good GUID, victim GUID)."""
    store = new_store()
    ok("switch", "add", "--store", store, "LAN")
    good = vm_new(store, "--disk", "ide:8M", "--switch", "LAN", "good")
    victim = vm_new(store, "--disk", "ide:8M", "--disk", "scsi:8M", "victim")
    return store, good, victim


def assert_broken(store, broken, problem, show_as=None, timeout=TIMEOUT):
    """vm list (text and JSON) exits 0, lists every VM with the sound ones
    sound and the VM @broken (a GUID) with a problem holding every string of
    @problem (any case); vm show of it exits 1 and says the same; the store
    is left as it was."""
    before = tree_state(store)
    problems = []
    opts = ["--store", store]
    listed = as_json(ok("vm", "list", "--json", *opts, timeout=timeout))
    configs = [n for n in os.listdir(os.path.join(store, VMS)) if n.endswith(".xml")]
    assert len(listed) == len(configs), "vm list shows %d of %d VMs: %r" % (
        len(listed), len(configs), [vm["name"] for vm in listed])
    entry = [vm for vm in listed if vm["id"].upper() == broken.upper()]
    assert len(entry) == 1, "vm list does not show %s: %r" % (broken, listed)
    entry = entry[0]
    said = [entry["problem"] or ""] + [d["problem"] or "" for d in entry["disks"]]
    said = " | ".join(s for s in said if s)
    if not said:
        problems.append("vm list --json shows no problem for %s: %r" % (broken, entry))
    for text in problem:
        if text.lower() not in said.lower():
            problems.append("vm list --json: problem %r does not say %r" % (said, text))
    for vm in listed:
        if vm is entry or vm["name"] not in ("good", "victim"):
            continue
        if vm["problem"] or any(d["problem"] for d in vm["disks"]):
            problems.append("sound VM %s shows a problem: %r" % (vm["name"], vm))
    text = ok("vm", "list", *opts, timeout=timeout).stdout
    for vm in listed:
        if vm["id"] not in text:
            problems.append("vm list does not show %s: %r" % (vm["id"], text))
    line = [ln for ln in text.splitlines() if broken.upper() in ln.upper()]
    if not line or "problem" not in line[0]:
        problems.append("vm list does not mark %s: %r" % (broken, text))
    result = call("vm", "show", *opts, show_as or broken, timeout=timeout)
    if result.returncode != 1:
        problems.append("vm show %s: exit %d, want 1: %r" % (show_as or broken,
                                                              result.returncode, result))
    shown = result.stdout + result.stderr
    for text in problem:
        if text.lower() not in shown.lower():
            problems.append("vm show does not say %r: %r" % (text, shown))
    good = [vm for vm in listed if vm["name"] == "good"]
    if good:
        ok("vm", "show", *opts, good[0]["id"], timeout=timeout)
    after = tree_state(store)
    if after != before:
        problems.append(describe_change(before, after, "reading a broken store"))
    assert not problems, "\n".join(problems)
    return entry


def test_malformed_xml():
    store, good, victim = healthy_store()
    broken = new_guid()
    with open(config_path(store, broken), "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-16"?>\n<configuration>\n<properties>\n')
    entry = assert_broken(store, broken, [broken + ".xml"])
    assert entry["problem"], entry
    # The same damage in UTF-16, made from a sound configuration.
    edit_config(config_path(store, victim), lambda t: t.replace("</properties>", "</propertie>"))
    assert_broken(store, victim, [victim + ".xml", "line"])


def test_global_id_not_a_guid():
    store, good, victim = healthy_store()
    edit_config(config_path(store, victim), set_leaf("global_id", "not-a-guid"))
    entry = assert_broken(store, victim, ["not-a-guid", victim + ".xml"])
    assert entry["problem"], entry


def test_global_id_missing():
    store, good, victim = healthy_store()
    edit_config(config_path(store, victim),
                lambda t: re.sub(r"\s*<global_id[^>]*>[^<]*</global_id>", "", t))
    entry = assert_broken(store, victim, ["global_id", victim + ".xml"])
    assert entry["problem"], entry


def test_two_configurations_claim_one_guid():
    # A copy of a VM's configuration under another file name: the copy names
    # the first VM's GUID, so it is the broken one, and the first stays sound.
    store, good, victim = healthy_store()
    other = new_guid()
    edit_config(config_path(store, victim), set_leaf("properties/name", "a copy"),
                to=config_path(store, other))
    entry = assert_broken(store, other, [victim], show_as=other.lower())
    assert entry["problem"], entry


def test_global_id_differs_from_the_file_name():
    store, good, victim = healthy_store()
    other = new_guid()

    def change(text):
        return set_leaf("properties/name", "copy")(set_leaf("logical_id", other)(text))
    edit_config(config_path(store, victim), change, to=config_path(store, other))
    entry = assert_broken(store, other, [victim], show_as=other.lower())
    assert entry["problem"] and other in entry["problem"].upper(), entry
    # A UTF-8 copy of it is read the same way.
    with open(config_path(store, other), "rb") as f:
        write_config(config_path(store, other), decode(f.read())[1], "utf-8")
    assert_broken(store, other, [victim, other])


def test_missing_disk_lists_the_places_tried():
    store, good, victim = healthy_store()
    edit_config(config_path(store, victim),
                set_leaf("pathname", "C:\\VMs\\Virtual Hard Disks\\gone.vhd"))
    entry = assert_broken(store, victim, [
        "gone.vhd",
        os.path.join(store, VMS, "gone.vhd"),
        os.path.join(store, DISKS, "gone.vhd")])
    problem = [d for d in entry["disks"] if d["problem"]]
    assert len(problem) == 1 and problem[0]["path"] is None, entry
    # The other disk of the VM is still found.
    assert [d["problem"] for d in entry["disks"]].count(None) == 1, entry


def test_disk_symlink_out_of_the_store():
    store, good, victim = healthy_store()
    os.mkdir("outside")
    ok("vhd", "create", "outside/secret.vhd", "8M")
    link = os.path.join(store, DISKS, "link.vhd")
    os.symlink(os.path.realpath("outside/secret.vhd"), link)
    edit_config(config_path(store, victim), set_leaf("pathname", link))
    entry = assert_broken(store, victim, ["outside"])
    assert all(d["path"] != os.path.realpath("outside/secret.vhd") for d in entry["disks"]), \
        entry
    vm = as_json(ok("vm", "show", "--json", "--allow-outside", "--store", store, victim))
    paths = [d["path"] for d in vm["disks"]]
    assert os.path.realpath("outside/secret.vhd") in paths, vm
    assert all(d["problem"] is None for d in vm["disks"]), vm


def test_disk_with_a_linux_path_out_of_the_store():
    store, good, victim = healthy_store()
    os.mkdir("outside")
    ok("vhd", "create", "outside/elsewhere.vhd", "8M")
    target = os.path.realpath("outside/elsewhere.vhd")
    edit_config(config_path(store, victim), set_leaf("pathname", target))
    assert_broken(store, victim, ["outside", target])
    vm = as_json(ok("vm", "show", "--json", "--allow-outside", "--store", store, victim))
    assert target in [d["path"] for d in vm["disks"]], vm
    found = [d for d in vm["disks"] if d["path"] == target][0]
    assert found["found"] == "as written", found


def test_path_map_cannot_climb_out_of_its_folder():
    store, good, victim = healthy_store()
    os.mkdir("outside")
    ok("vhd", "create", "outside/o.vhd", "8M")
    edit_config(config_path(store, victim),
                set_leaf("pathname", "C:\\VMs\\..\\outside\\o.vhd"))
    pathmap = "C:\\VMs=%s" % store
    entry = assert_broken(store, victim, ["o.vhd"])
    vm = as_json(call("vm", "show", "--json", "--store", store, "--pathmap", pathmap, victim))
    for listed in (entry, vm):
        assert os.path.realpath("outside/o.vhd") not in [d["path"] for d in listed["disks"]], \
            listed
    result = call("vm", "show", "--store", store, "--pathmap", pathmap, victim)
    assert result.returncode == 1 and "o.vhd" in result.stdout, result


def test_damaged_vhdx_disk_is_reported():
    """A VHDX disk is read as VHDX: a damaged one (a file identifier and nothing
    else) is a problem of that disk, in VHDX terms, and the VM's other disk stays."""
    store, good, victim = healthy_store()
    vhdx = os.path.join(store, DISKS, "new.vhdx")
    with open(vhdx, "wb") as f:
        f.write(b"vhdxfile" + bytes(65536 - 8))

    def change(text):
        # Only the SCSI disk: the IDE disk must stay usable.
        head, sep, tail = text.partition("</_%s_>" % IDE_TYPE)
        return head + sep + set_leaf("pathname", "C:\\VMs\\Virtual Hard Disks\\new.vhdx")(tail)
    edit_config(config_path(store, victim), change)
    before = tree_state(store)
    # The disk lies in the store: vm list sees no problem (it opens no disk) ...
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    entry = [vm for vm in listed if vm["id"].upper() == victim.upper()][0]
    disks = {d["bus"]: d for d in entry["disks"]}
    assert disks["scsi"]["path"].endswith("new.vhdx") and disks["ide"]["path"], entry
    # ... vm show opens it as VHDX and names the file and the fault.
    result = call("vm", "show", "--store", store, victim)
    assert result.returncode == 1, result
    said = result.stdout + result.stderr
    assert "new.vhdx" in said and "header" in said, said
    assert "VHD file" not in said, "read as a VHD: %r" % said
    ok("vm", "show", "--store", store, good)
    assert_unchanged(before, tree_state(store), "vm show of a damaged VHDX")


def test_doctype_with_external_entity_is_refused():
    store, good, victim = healthy_store()
    broken = new_guid()
    text = ('<?xml version="1.0" encoding="UTF-16" standalone="no"?>\r\n'
            '<!DOCTYPE configuration [\r\n'
            '  <!ENTITY secret SYSTEM "file:///etc/passwd">\r\n'
            ']>\r\n'
            '<configuration>\r\n'
            '  <properties>\r\n'
            '    <global_id type="string">%s</global_id>\r\n'
            '    <name type="string">&secret;</name>\r\n'
            '  </properties>\r\n'
            '</configuration>\r\n' % broken)
    write_config(config_path(store, broken), text, "utf-8")
    entry = assert_broken(store, broken, [broken + ".xml"])
    assert entry["problem"], entry
    everything = json.dumps(as_json(ok("vm", "list", "--json", "--store", store)))
    everything += call("vm", "show", "--store", store, broken).stdout
    assert "root:" not in everything, "/etc/passwd was read: %r" % everything
    # The same in UTF-16, and an entity pointing at a FIFO: reading it would
    # hang, so a refusal must come without opening it.
    os.mkfifo("pipe")
    write_config(config_path(store, broken),
                 text.replace("/etc/passwd", os.path.realpath("pipe")), "utf-16")
    assert_broken(store, broken, [broken + ".xml"], timeout=FIFO_TIMEOUT)
    # Internal entities (expansion bombs) are refused too.
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE configuration [\n'
            '<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">\n' +
            "".join('<!ENTITY %s "%s">\n' % (chr(ord("b") + i), ("&%s;" % chr(ord("a") + i)) * 10)
                    for i in range(8)) +
            ']>\n<configuration><properties><global_id type="string">%s</global_id>'
            '<name type="string">&i;</name></properties></configuration>\n' % broken)
    write_config(config_path(store, broken), bomb, "utf-8")
    assert_broken(store, broken, [broken + ".xml"], timeout=FIFO_TIMEOUT)


def test_differencing_disk_with_parent_out_of_the_store():
    store, good, victim = healthy_store()
    os.mkdir("outside")
    ok("vhd", "create", "outside/base.vhd", "8M")
    child = os.path.join(store, DISKS, "child.avhd")
    ok("vhd", "snapshot", "outside/base.vhd", child)
    edit_config(config_path(store, victim), set_leaf("pathname", child))
    before = tree_state(".")
    # The disk itself lies in the store: vm list sees no problem yet ...
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert len(listed) == 2, listed
    # ... vm show opens the chain and names its problem.
    result = call("vm", "show", "--store", store, victim)
    assert "outside" in result.stdout + result.stderr, result
    assert os.path.realpath("outside/base.vhd") in result.stdout + result.stderr, result
    ok("vm", "show", "--store", store, good)
    assert result.returncode == 1, "vm show of a VM whose chain is broken: %r" % result
    result = call("vm", "show", "--json", "--store", store, victim)
    assert result.returncode == 1, "vm show --json of a VM whose chain is broken: %r" % result
    # Allowed: the chain opens.
    result = ok("vm", "show", "-v", "--allow-outside", "--store", store, victim)
    assert os.path.realpath("outside/base.vhd") in result.stdout, result
    assert_unchanged(before, tree_state("."), "vm show of a broken chain")


def test_disk_is_a_fifo():
    store, good, victim = healthy_store()
    path = os.path.join(store, DISKS, "victim.vhd")
    os.unlink(path)
    os.mkfifo(path)
    result = call("vm", "show", "--store", store, victim, timeout=FIFO_TIMEOUT)
    assert "victim.vhd" in result.stdout + result.stderr, result
    assert result.returncode == 1, "vm show of a VM whose disk is a FIFO: %r" % result
    ok("vm", "list", "--store", store, timeout=FIFO_TIMEOUT)


def test_config_files_that_are_not_files():
    store, good, victim = healthy_store()
    fifo, folder, link = new_guid(), new_guid(), new_guid()
    os.mkfifo(config_path(store, fifo))
    os.mkdir(config_path(store, folder))
    os.symlink("/etc/passwd", config_path(store, link))
    for broken in (fifo, folder, link):
        assert_broken(store, broken, [broken], timeout=FIFO_TIMEOUT)
    everything = ok("vm", "list", "--json", "--store", store, timeout=FIFO_TIMEOUT).stdout
    assert "root:" not in everything, everything


def test_every_kind_of_damage_at_once():
    """All the broken VMs above in one store, with two sound ones."""
    store, good, victim = healthy_store()
    os.mkdir("outside")
    ok("vhd", "create", "outside/o.vhd", "8M")
    base = config_path(store, victim)
    kinds = {}

    def copy(name, change, encoding=None):
        guid = new_guid()

        def full(text):
            text = set_leaf("global_id", guid)(text)
            text = set_leaf("logical_id", guid)(text)
            return change(set_leaf("properties/name", name)(text))
        edit_config(base, full, encoding=encoding, to=config_path(store, guid))
        kinds[name] = guid
        return guid

    copy("notguid", set_leaf("global_id", "zzz"))
    copy("differs", set_leaf("global_id", new_guid()))
    copy("missing", set_leaf("pathname", "C:\\x\\missing.vhd"), encoding="utf-8")
    copy("absolute", set_leaf("pathname", os.path.realpath("outside/o.vhd")))
    os.symlink(os.path.realpath("outside/o.vhd"), os.path.join(store, DISKS, "l.vhd"))
    copy("symlink", set_leaf("pathname", os.path.join(store, DISKS, "l.vhd")), "utf-8-bom")
    copy("doctype", lambda t: t.replace(
        "<configuration>", '<!DOCTYPE configuration [<!ENTITY x SYSTEM "/etc/passwd">]>'
        "\r\n<configuration>", 1))
    malformed = new_guid()
    with open(config_path(store, malformed), "wb") as f:
        f.write(b"\xff\xfe" + "<configuration><".encode("utf-16-le"))
    kinds["malformed"] = malformed
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert len(listed) == 2 + len(kinds), [vm["name"] for vm in listed]
    by_id = {vm["id"]: vm for vm in listed}
    for name, guid in kinds.items():
        vm = by_id.get(guid)
        assert vm, "%s (%s) is not listed" % (name, guid)
        said = [vm["problem"]] + [d["problem"] for d in vm["disks"]]
        assert any(said), "%s shows no problem: %r" % (name, vm)
        result = call("vm", "show", "--store", store, guid)
        assert result.returncode == 1, "vm show %s: %r" % (name, result)
    for name in ("good", "victim"):
        vm = [v for v in listed if v["name"] == name][0]
        assert vm["problem"] is None and all(d["problem"] is None for d in vm["disks"]), vm
        ok("vm", "show", "--store", store, name)


def test_utf8_configurations_are_read():
    """UTF-8 copies (with a byte-order mark, without, and still declaring
    UTF-16) read as the UTF-16 original."""
    store, good, victim = healthy_store()
    original = as_json(ok("vm", "show", "--json", "--store", store, victim))
    path = config_path(store, victim)
    with open(path, "rb") as f:
        raw = f.read()
    text = decode(raw)[1]
    for encoding, body in (("utf-8", text),
                           ("utf-8-bom", text),
                           ("utf-8", text.replace("\r\n", "\n")),
                           ("utf-8", text.replace('encoding="UTF-16"', 'encoding="UTF-8"'))):
        write_config(path, body, encoding)
        shown = as_json(ok("vm", "show", "--json", "--store", store, victim))
        assert shown == original, (encoding, shown)
    # UTF-8 content behind a UTF-16 byte-order mark is not UTF-16: refused, named.
    with open(path, "wb") as f:
        f.write(b"\xff\xfe" + text.encode("utf-8"))
    assert_broken(store, victim, [victim + ".xml"])


# ---- 7. a store made as Hyper-V makes one ----

HYPERV_DISKS = "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V\\Virtual Hard Disks\\"


def hyperv_store(levels):
    """A store written by hand: base.vhd under a chain of @levels - 1
    differencing disks (level1.avhd ...), one snapshot per frozen disk, the
    VM on the top one. Returns (store, VM GUID, snapshot GUIDs, oldest first)."""
    store = os.path.realpath("hv")
    for folder in (VMS, SNAPSHOTS, DISKS):
        os.makedirs(os.path.join(store, folder))
    disks = os.path.join(store, DISKS)
    names = ["base.vhd"] + ["level%d.avhd" % i for i in range(1, levels)]
    ok("vhd", "create", "base.vhd", "8M", cwd=disks)
    for below, above in zip(names, names[1:]):
        ok("vhd", "snapshot", below, above, cwd=disks)
    vm = new_guid()
    snaps = [new_guid() for _ in names[:-1]]
    write_config(config_path(store, vm),
                 hyperv_config(vm, "hv", [(0, 0, "VHD", HYPERV_DISKS + names[-1]),
                                          (0, 1, "NONE", ""),
                                          (1, 0, "ISO", "")]))
    for i, (snap, disk) in enumerate(zip(snaps, names)):
        write_config(config_path(store, snap, SNAPSHOTS),
                     hyperv_config(snap, "hv - (%d)" % (i + 1),
                                   [(0, 0, "VHD", HYPERV_DISKS + disk)],
                                   type_id="Snapshots", logical_id=vm,
                                   created=1400000000 + 60 * i))
    return store, vm, snaps


def test_hyperv_store_snapshot_tree_inferred_from_the_chain():
    store, vm, (snap,) = hyperv_store(2)
    before = tree_state(store)
    shown = as_json(ok("vm", "show", "--json", "--store", store, "hv"))
    assert shown["id"] == vm and shown["name"] == "hv" and shown["problem"] is None, shown
    assert shown["generation"] == 1 and shown["version"] == 1280, shown
    assert shown["creation_time"] == 1400000000, shown
    assert len(shown["disks"]) == 1, "empty and ISO drives listed as disks: %r" % shown
    disk = shown["disks"][0]
    assert disk["path"] == os.path.join(store, DISKS, "level1.avhd"), disk
    assert disk["found"] == "in Virtual Hard Disks" and disk["problem"] is None, disk
    assert len(shown["snapshots"]) == 1, shown
    s = shown["snapshots"][0]
    assert s["id"] == snap and s["name"] == "hv - (1)", s
    assert s["parent_inferred"] is True and s["parent"] in ("", None), s
    assert s["creation_time"] == 1400000000, s
    assert s["config"] == config_path(store, snap, SNAPSHOTS), s
    assert [d["path"] for d in s["disks"]] == [os.path.join(store, DISKS, "base.vhd")], s
    assert s["problem"] is None, s
    assert shown["current_snapshot"] == snap, shown
    text = ok("vm", "show", "--verbose", "--store", store, vm.lower()).stdout
    assert "hv - (1)" in text and snap in text, text
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert listed == [without_chains(shown)], listed
    # With a path map for Hyper-V's folder: found through it.
    shown = as_json(ok("vm", "show", "--json", "--store", store, "--pathmap",
                       "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V=%s" % store, "hv"))
    assert shown["disks"][0]["found"] == "through the path map", shown
    assert shown["current_snapshot"] == snap, shown
    assert_unchanged(before, tree_state(store), "reading a Hyper-V store")


def test_hyperv_store_nearest_ancestor_is_the_parent():
    store, vm, snaps = hyperv_store(4)
    shown = as_json(ok("vm", "show", "--json", "--store", store, vm))
    got = [(s["id"], s["parent"] or "", s["parent_inferred"]) for s in shown["snapshots"]]
    want = [(snaps[0], "", True), (snaps[1], snaps[0], True), (snaps[2], snaps[1], True)]
    assert got == want, "snapshot tree %r, want %r" % (got, want)
    assert shown["current_snapshot"] == snaps[2], shown
    text = ok("vm", "show", "-v", "--store", store, "hv").stdout
    positions = [text.find(s) for s in snaps]
    assert -1 not in positions and positions == sorted(positions), text


def test_hyperv_store_orphan_snapshot_hides_nothing():
    store, vm, (snap,) = hyperv_store(2)
    # A snapshot of a VM that is not there, and an unreadable one.
    write_config(config_path(store, new_guid(), SNAPSHOTS),
                 hyperv_config(new_guid(), "orphan", [], type_id="Snapshots",
                               logical_id=new_guid()))
    with open(config_path(store, new_guid(), SNAPSHOTS), "w") as f:
        f.write("<configuration>")
    listed = as_json(ok("vm", "list", "--json", "--store", store))
    assert [vm["name"] for vm in listed] == ["hv"], listed
    assert [s["id"] for s in listed[0]["snapshots"]] == [snap], listed


if __name__ == "__main__":
    run_tests(globals())
