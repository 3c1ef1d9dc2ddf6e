"""Write a store of VMS VMs with SNAPSHOTS snapshots each into DIR, in
Hyper-V's layout: configurations in UTF-16LE with CRLF, a 16 MiB dynamic
base disk and a chain of small differencing disks per VM, built byte by
byte (tests/vhdcraft.py). Usage: make_store.py DIR VMS SNAPSHOTS
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import vhdcraft  # noqa: E402

IDE = "83f8638b-8dca-4152-9eda-2ca8b33039b4"
DISK_SIZE = 16 << 20


def leaf(name, type_, value, depth):
    return "%s<%s type=\"%s\">%s</%s>" % ("  " * depth, name, type_, value, name)


def config(guid, name, type_id, disk, vm_guid, current="", parent=None, count=0):
    lines = [
        '<?xml version="1.0" encoding="UTF-16" standalone="yes"?>',
        "<configuration>",
        "  <_%s_>" % IDE,
        "    <controller0>",
        "      <drive0>",
        leaf("pathname", "string", disk, 4),
        leaf("type", "string", "VHD", 4),
        "      </drive0>",
        "    </controller0>",
        "  </_%s_>" % IDE,
        "  <global_settings>",
        "    <snapshots>",
    ]
    if parent is None:
        lines += [leaf("current", "string", current, 3), "      <list>",
                  leaf("size", "integer", str(count), 4), "      </list>"]
    else:
        lines.append(leaf("parent", "string", parent, 3))
    lines += [
        "    </snapshots>",
        "  </global_settings>",
        "  <manifest>",
        leaf("size", "integer", "1", 2),
        "    <vdev001>",
        leaf("device", "string", IDE, 3),
        leaf("instance", "string", IDE, 3),
        "    </vdev001>",
        "  </manifest>",
        "  <properties>",
        leaf("creation_time", "bytes", "gF3bnYmLzwE=\n", 2),
        leaf("global_id", "string", guid, 2),
        leaf("name", "string", name, 2),
        leaf("subtype", "integer", "0", 2),
        leaf("type_id", "string", type_id, 2),
        leaf("version", "integer", "1280", 2),
        "  </properties>",
        "  <settings>",
        "    <global>",
        leaf("logical_id", "string", vm_guid, 3),
        "    </global>",
        "  </settings>",
        "</configuration>",
        "",
    ]
    return b"\xff\xfe" + "\r\n".join(lines).encode("utf-16-le")


def main():
    root, vms, snapshots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for folder in ("Virtual Machines", "Snapshots", "Virtual Hard Disks"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    disks = os.path.join(root, "Virtual Hard Disks")
    for v in range(vms):
        vm = str(uuid.uuid4()).upper()
        name = "vm%04d" % v
        files = ["%s.vhd" % name]
        image = vhdcraft.dynamic(DISK_SIZE)
        image.save(os.path.join(disks, files[0]))
        snaps = [str(uuid.uuid4()).upper() for _ in range(snapshots)]
        for s, snap in enumerate(snaps):
            child = "%s_%s.avhd" % (name, snap)
            image = vhdcraft.differencing(image, DISK_SIZE, parent_name=files[-1],
                                          locators=[("W2ru", ".\\" + files[-1])],
                                          writes=[(s * 512, bytes([s + 1]) * 512)])
            image.save(os.path.join(disks, child))
            # The snapshot keeps the disk it froze; the VM goes on in the child.
            with open(os.path.join(root, "Snapshots", snap + ".xml"), "wb") as f:
                f.write(config(snap, "%s snapshot %d" % (name, s + 1), "Snapshots",
                               os.path.join(disks, files[-1]), vm,
                               parent=snaps[s - 1] if s else ""))
            files.append(child)
        with open(os.path.join(root, "Virtual Machines", vm + ".xml"), "wb") as f:
            f.write(config(vm, name, "Virtual Machines", os.path.join(disks, files[-1]), vm,
                           current=snaps[-1] if snaps else "", count=snapshots))


if __name__ == "__main__":
    main()
