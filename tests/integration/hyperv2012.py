"""Configurations and export folders shaped like the real Hyper-V 2012 R2
files that Vagrant's Hyper-V boxes ship, written here from what those files
hold (shared reference: "Seen in real 2012 R2 files"), never by impexfs:

- UTF-16LE with a byte-order mark and CRLF line ends, declared UTF-16; or
  the same text re-encoded to UTF-8 with LF line ends, still declaring
  UTF-16 (copies committed to git);
- `type="bytes"` values (base64) and `creation_time` end in a bare LF inside
  the element, although every other line ends in CRLF;
- empty strings are written as a line end followed by the closing tag's
  indentation;
- a connected synthetic adapter names its switch three times: `SwitchName`
  (GUID), `Connection/AltSwitchName` (friendly name) and
  `Connection/HostResources/HostResource` (GUID again), beside `IsConnected`,
  `PortName` and `Connection/TestReplicaSwitchName` (empty);
- the configuration of a box is `Virtual Machines/vm.XML`, not named by its
  GUID; the GUID is in `properties/global_id` and `settings/global/logical_id`.

    text = vm_config(vm_id, "box", disks=[...], adapters=[...])
    data = encode(text, "utf-16")            # the bytes of the file
    vagrant_box(top, "box", disk_bytes=...)  # a whole export folder
"""

import base64
import os
import struct
import uuid as uuidlib

IDE = "83f8638b-8dca-4152-9eda-2ca8b33039b4"
SCSI = "d422512d-2bf2-4752-809d-7b82b5fcb1b4"
NIC = "2fc216b0-d2e2-4967-9b6d-b8a5c9ca2778"
FILETIME_EPOCH = 116444736000000000  # 1601-01-01 to 1970-01-01 in 100 ns


def guid(upper=True):
    text = str(uuidlib.uuid4())
    return text.upper() if upper else text


def filetime(unix_seconds):
    """Base64 of the 8-byte little-endian FILETIME, as Hyper-V stores times."""
    ticks = FILETIME_EPOCH + int(unix_seconds) * 10_000_000
    return base64.b64encode(struct.pack("<Q", ticks)).decode()


class _Doc:
    """Lines of the document, LF-joined; `encode` makes the line ends."""

    def __init__(self):
        self.lines = ['<?xml version="1.0" encoding="UTF-16" standalone="yes"?>']

    def open(self, depth, tag):
        self.lines.append("  " * depth + f"<{tag}>")

    def close(self, depth, tag):
        self.lines.append("  " * depth + f"</{tag}>")

    def leaf(self, depth, tag, kind, value):
        pad = "  " * depth
        if kind == "bytes":
            # The base64 ends in a bare LF, kept apart from the CRLF line ends.
            self.lines.append(f'{pad}<{tag} type="bytes">{value}\x00LF</{tag}>')
        elif value == "" and kind == "string":
            # An empty string: a line end, then the closing tag indented.
            self.lines.append(f'{pad}<{tag} type="string">')
            self.lines.append(f"{pad}</{tag}>")
        else:
            self.lines.append(f'{pad}<{tag} type="{kind}">{value}</{tag}>')


def _adapter(doc, node, adapter):
    connected = adapter.get("connected", True)
    switch_id = adapter.get("switch_id", "") if connected else ""
    switch_name = adapter.get("switch_name", "") if connected else ""
    doc.open(1, node)
    doc.leaf(2, "AllowIeeePriorityTag", "bool", "False")
    doc.leaf(2, "ChannelInstanceGuid", "string", "{" + guid(False) + "}")
    doc.open(2, "Connection")
    doc.leaf(3, "AltPortName", "string", adapter.get("name", "Network Adapter"))
    doc.leaf(3, "AltSwitchName", "string", switch_name)
    doc.leaf(3, "AuthorizationScope", "string", "")
    doc.leaf(3, "ChimneyOffloadWeight", "integer", "0")
    doc.open(3, "HostResources")
    if connected:
        doc.leaf(4, "HostResource", "string", switch_id)
    doc.close(3, "HostResources")
    doc.leaf(3, "TestReplicaSwitchName", "string", "")
    doc.close(2, "Connection")
    doc.leaf(2, "FriendlyName", "string", adapter.get("name", "Network Adapter"))
    doc.leaf(2, "IsConnected", "bool", "True" if connected else "False")
    doc.leaf(2, "MacAddress", "string", adapter.get("mac", "00-15-5D-01-C8-0A"))
    doc.leaf(2, "MacAddressIsStatic", "bool", "True" if adapter.get("static_mac") else "False")
    doc.leaf(2, "PortName", "string", guid() if connected else "")
    doc.leaf(2, "SwitchName", "string", switch_id)
    doc.close(1, node)


def vm_config(vm_id, name, disks=(), adapters=(), snapshots=(), current="",
              parent=None, type_id="Virtual Machines", created=1425168000,
              generation=1, memory_mib=512, snapshot_id=None):
    """The text of a 2012 R2 configuration (LF line ends, `\\x00LF` where a
    bare LF stands; `encode` makes the bytes).

    disks: dicts with bus ("ide" or "scsi"), controller, drive, path
    ("" for an empty drive), kind ("VHD", "ISO"; "VHD" by default).
    adapters: dicts with switch_id, switch_name, connected, mac, static_mac.
    snapshots: how many snapshots the VM counts (global_settings list size).
    current: the snapshot the VM runs from ("" for none).
    parent: for a snapshot's configuration (type_id "Snapshots"), its parent
    snapshot GUID ("" for the first); the VM's GUID is vm_id, the snapshot's
    snapshot_id (a new one when not given).
    """
    doc = _Doc()
    doc.open(0, "configuration")
    scsi_instance = guid(False)
    nics = [(guid(False), a) for a in adapters]
    for bus, node in (("ide", IDE), ("scsi", scsi_instance)):
        mine = [d for d in disks if d.get("bus", "ide") == bus]
        if not mine:
            continue
        doc.open(1, f"_{node}_")
        if bus == "scsi":
            doc.leaf(2, "ChannelInstanceGuid", "string", "{" + guid(False) + "}")
        for c in sorted({d.get("controller", 0) for d in mine}):
            doc.open(2, f"controller{c}")
            for d in sorted((d for d in mine if d.get("controller", 0) == c),
                            key=lambda d: d.get("drive", 0)):
                tag = f"drive{d.get('drive', 0)}"
                doc.open(3, tag)
                doc.leaf(4, "iops_limit", "integer", "0")
                doc.leaf(4, "iops_reservation", "integer", "0")
                doc.leaf(4, "pathname", "string", d.get("path", ""))
                doc.leaf(4, "persistent_reservations_supported", "bool", "False")
                doc.leaf(4, "type", "string", d.get("kind", "VHD"))
                doc.leaf(4, "weight", "integer", "100")
                doc.close(3, tag)
            doc.close(2, f"controller{c}")
        doc.close(1, f"_{node}_")
    for node, adapter in nics:
        _adapter(doc, f"_{node}_", adapter)
    doc.open(1, "global_settings")
    doc.open(2, "devices")
    doc.leaf(3, "allow_reduced_fc_redunancy", "bool", "False")
    doc.close(2, "devices")
    doc.open(2, "snapshots")
    doc.leaf(3, "current", "string", current)
    doc.open(3, "list")
    doc.leaf(4, "size", "integer", str(snapshots))
    doc.close(3, "list")
    if parent is not None:
        doc.leaf(3, "parent", "string", parent)
    doc.close(2, "snapshots")
    doc.open(2, "storage")
    doc.leaf(3, "external_data_root", "string", "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V")
    doc.leaf(3, "external_snapshot_root", "string", "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V")
    doc.close(2, "storage")
    doc.close(1, "global_settings")
    doc.open(1, "manifest")
    entries = []
    if any(d.get("bus", "ide") == "ide" for d in disks):
        entries.append((IDE, IDE, "Microsoft Emulated IDE Controller"))
    if any(d.get("bus", "ide") == "scsi" for d in disks):
        entries.append((SCSI, scsi_instance, "Microsoft Synthetic SCSI Controller"))
    entries += [(NIC, node, "Microsoft Synthetic Ethernet Port") for node, _ in nics]
    doc.leaf(2, "size", "integer", str(len(entries)))
    for n, (device, instance, dname) in enumerate(entries, 1):
        doc.open(2, f"vdev{n:03d}")
        doc.leaf(3, "device", "string", device)
        doc.leaf(3, "flags", "integer", "1")
        doc.leaf(3, "instance", "string", instance)
        doc.leaf(3, "name", "string", dname)
        doc.close(2, f"vdev{n:03d}")
    doc.close(1, "manifest")
    doc.open(1, "properties")
    doc.leaf(2, "creation_time", "bytes", filetime(created))
    doc.leaf(2, "global_id", "string", vm_id if parent is None else (snapshot_id or guid()))
    doc.leaf(2, "highly_available", "bool", "False")
    doc.leaf(2, "last_powered_off_time", "integer", "130698393456250000")
    doc.leaf(2, "name", "string", name)
    doc.leaf(2, "notes", "string", "")
    doc.leaf(2, "subtype", "integer", "1" if generation == 2 else "0")
    doc.leaf(2, "type_id", "string", type_id)
    doc.leaf(2, "version", "integer", "1280")
    doc.close(1, "properties")
    doc.open(1, "settings")
    doc.open(2, "global")
    doc.leaf(3, "logical_id", "string", vm_id)
    doc.close(2, "global")
    doc.open(2, "memory")
    doc.open(3, "bank")
    doc.leaf(4, "dynamic_memory_enabled", "bool", "False")
    doc.leaf(4, "limit", "integer", "1048576")
    doc.leaf(4, "reservation", "integer", "512")
    doc.leaf(4, "size", "integer", str(memory_mib))
    doc.leaf(4, "weight", "integer", "5000")
    doc.close(3, "bank")
    doc.close(2, "memory")
    doc.open(2, "processors")
    doc.leaf(3, "count", "integer", "1")
    doc.close(2, "processors")
    doc.leaf(2, "vnuma", "bytes", base64.b64encode(bytes(range(48))).decode())
    doc.close(1, "settings")
    doc.close(0, "configuration")
    return "\n".join(doc.lines) + "\n"


def encode(text, encoding="utf-16"):
    """The file's bytes: "utf-16" is UTF-16LE with a BOM and CRLF line ends
    (bare LFs where the text says so), "utf-8" is UTF-8 with LF line ends,
    no BOM, still declaring UTF-16."""
    if encoding == "utf-16":
        text = text.replace("\n", "\r\n").replace("\x00LF", "\n")
        return b"\xff\xfe" + text.encode("utf-16-le")
    if encoding == "utf-8":
        return text.replace("\x00LF", "\n").encode("utf-8")
    raise ValueError(encoding)


def windows_path(*parts):
    """A Windows path as Vagrant's box builders leave them."""
    return "\\".join(("C:\\Users\\vagrant\\box",) + parts)


def vagrant_box(top, name="box", vm_id=None, encoding="utf-16", disk=None,
                adapters=None, config_name="vm.XML"):
    """Write a Vagrant-shaped export folder at @top: `Virtual Machines/vm.XML`,
    `Virtual Hard Disks/<name>.vhd` (the bytes @disk, a VHD made elsewhere),
    an empty `Snapshots/`. Returns (vm_id, config path)."""
    vm_id = vm_id or guid()
    if adapters is None:
        adapters = [{"switch_id": guid(), "switch_name": "External"}]
    disks = []
    if disk is not None:
        disks.append({"bus": "ide", "controller": 0, "drive": 0,
                      "path": windows_path("Virtual Hard Disks", f"{name}.vhd")})
    for sub in ("Virtual Machines", "Virtual Hard Disks", "Snapshots"):
        os.makedirs(os.path.join(top, sub), exist_ok=True)
    if disk is not None:
        with open(os.path.join(top, "Virtual Hard Disks", f"{name}.vhd"), "wb") as f:
            f.write(disk)
    path = os.path.join(top, "Virtual Machines", config_name)
    with open(path, "wb") as f:
        f.write(encode(vm_config(vm_id, name, disks=disks, adapters=adapters), encoding))
    return vm_id, path
