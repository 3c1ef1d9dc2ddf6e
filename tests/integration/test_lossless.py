"""Configurations that impexfs rewrites keep every byte it does not mean to
change. The sources are shaped like real Hyper-V 2012 R2 files
(hyperv2012.py: UTF-16LE with a byte-order mark and CRLF, bare LFs ending
base64 values, empty strings written as a line end and spaces; or UTF-8
with LF, still declaring UTF-16). What a rewrite may change is found here
with Python's own XML parsers on the output; the expected bytes are the
source's with those values replaced (and elements added or removed) by
plain byte edits, and must equal the output exactly.
"""

import os
import re
import xml.etree.ElementTree as ET
from xml.parsers import expat

import hyperv2012
from impexlib import DISKS, SNAPSHOTS, as_json, config_path, new_store, ok
from taplib import run_tests


def decode(raw):
    """(form, text) of a configuration's bytes: the byte-order mark is part of the form."""
    if raw.startswith(b"\xff\xfe"):
        return "utf-16", raw[2:].decode("utf-16-le")
    if raw[:2] == b"<\x00":
        return "utf-16 without a mark", raw.decode("utf-16-le")
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8 with a mark", raw[3:].decode("utf-8")
    return "utf-8", raw.decode("utf-8")


def elements(data):
    """Every element of the UTF-8 bytes @data: path ("/configuration[1]/properties[1]")
    -> (start, content start, content end, end), byte offsets, found by expat."""
    parser = expat.ParserCreate("UTF-8")  # whatever the declaration says
    stack, counts, found = [], [{}], {}

    def start(tag, attrs):
        at = parser.CurrentByteIndex
        counts[-1][tag] = counts[-1].get(tag, 0) + 1
        path = "%s/%s[%d]" % (stack[-1][0] if stack else "", tag, counts[-1][tag])
        stack.append((path, at, data.index(b">", at) + 1))  # no '>' in these attributes
        counts.append({})

    def end(tag):
        path, at, opened = stack.pop()
        counts.pop()
        closing = parser.CurrentByteIndex
        if data[opened - 2:opened] == b"/>":
            found[path] = (at, opened, opened, opened)
        else:
            found[path] = (at, opened, closing, data.index(b">", closing) + 1)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(data, True)
    return found


def read_tree(data):
    """path -> (attributes, value or None for an element with children), by ElementTree.
    A value of only whitespace with a line end is "", as Hyper-V means it."""
    root = ET.fromstring(data, parser=ET.XMLParser(encoding="utf-8"))
    out = {}

    def walk(node, path):
        children = list(node)
        text = node.text or ""
        if not children and text.strip(" \t\r\n") == "" and "\n" in text:
            text = ""
        out[path] = (dict(node.attrib), None if children else text)
        seen = {}
        for child in children:
            seen[child.tag] = seen.get(child.tag, 0) + 1
            walk(child, "%s/%s[%d]" % (path, child.tag, seen[child.tag]))
    walk(root, "/%s[1]" % root.tag)
    return out


def escape(value, line_end):
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;").replace("\n", line_end).encode("utf-8"))


def cut(data, spans, paths):
    """@data without the elements at @paths and the whitespace before each."""
    for start, _, _, end in sorted((spans[p] for p in paths), reverse=True):
        while start > 0 and data[start - 1:start] in (b" ", b"\t", b"\r", b"\n"):
            start -= 1
        data = data[:start] + data[end:]
    return data


def outermost(paths, others):
    """The paths of @paths whose parent is in @others (a new or a removed subtree's top)."""
    return [p for p in paths if p.rsplit("/", 1)[0] in others]


def assert_only_intended(before, after, intended):
    """The configuration bytes @after are @before with only these edits: leaves whose
    path ends with one of @intended take new values (escaped; a line end in a value
    written as the old value wrote its first one, else as the file's line ends),
    elements whose path ends with one of @intended are added or removed (with the
    whitespace before them). Returns the changed, added and removed paths."""
    form, text = decode(before)
    after_form, after_text = decode(after)
    assert after_form == form, "written as %s, read as %s" % (after_form, form)
    old, new = text.encode("utf-8"), after_text.encode("utf-8")
    old_tree, new_tree = read_tree(old), read_tree(new)
    old_spans, new_spans = elements(old), elements(new)
    assert old_spans.keys() == old_tree.keys() and new_spans.keys() == new_tree.keys()
    removed = outermost(old_tree.keys() - new_tree.keys(), new_tree)
    added = outermost(new_tree.keys() - old_tree.keys(), old_tree)
    changed = sorted(p for p in old_tree.keys() & new_tree.keys() if old_tree[p] != new_tree[p])
    unintended = [p for p in changed + removed + added if not p.endswith(intended)]
    assert not unintended, "unintended changes: %r" % [
        (p, old_tree.get(p), new_tree.get(p)) for p in unintended]
    file_end = "\r\n" if "\r\n" in text else "\n"
    want = old
    for path in sorted(changed, key=lambda p: old_spans[p][1], reverse=True):
        (old_attrs, old_value), (new_attrs, value) = old_tree[path], new_tree[path]
        assert old_attrs == new_attrs and old_value is not None and value is not None, \
            "%s: %r became %r" % (path, old_tree[path], new_tree[path])
        _, start, end, _ = old_spans[path]
        line = re.search(rb"\r?\n", want[start:end])
        value_end = line.group(0).decode() if line else file_end
        want = want[:start] + escape(value, value_end) + want[end:]
    # Removed elements go from the source, added ones from the output: what is
    # left must be the same bytes.
    want = cut(want, elements(want), removed)
    got = cut(new, new_spans, added)
    if got != want:
        at = next(i for i in range(min(len(got), len(want)) + 1)
                  if i == min(len(got), len(want)) or got[i] != want[i])
        raise AssertionError("%s differs from the expected bytes at byte %d:\n got  %r\n want %r"
                             % (form, at, got[max(0, at - 80):at + 80],
                                want[max(0, at - 80):at + 80]))
    return changed, added, removed


def box(encoding):
    """A Vagrant-shaped export folder "box" (its configuration named by its GUID) with
    a disk, one adapter on the switch "External" and one not connected. Returns (VM
    GUID, configuration path)."""
    ok("vhd", "create", "disk.vhd", "8388608")
    with open("disk.vhd", "rb") as f:
        disk = f.read()
    vm_id = hyperv2012.guid()
    adapters = [{"switch_id": hyperv2012.guid(), "switch_name": "External"},
                {"connected": False, "mac": "00-15-5D-01-C8-0B"}]
    return hyperv2012.vagrant_box(os.path.realpath("box"), "box", vm_id=vm_id,
                                  encoding=encoding, disk=disk, adapters=adapters,
                                  config_name=vm_id + ".xml")


def read(path):
    with open(path, "rb") as f:
        return f.read()


# What an import changes in a configuration (docs/IMPORT.md).
IMPORT_EDITS = ("/properties[1]/global_id[1]", "/properties[1]/name[1]", "/pathname[1]",
                "/SwitchName[1]", "/AltSwitchName[1]", "/HostResource[1]",
                "/settings[1]/global[1]/logical_id[1]", "/properties[1]/security_scope[1]")


def test_an_import_changes_only_what_it_means_to():
    for encoding in ("utf-16", "utf-8"):
        os.makedirs(encoding)
        os.chdir(encoding)
        vm_id, source = box(encoding)
        target = new_store("target")
        switch = ok("switch", "add", "--store", target, "External").stdout.split()[0]
        guid = ok("import", "--store", target, "box").stdout.split()[0]
        written = read(config_path(target, guid))
        changed, _, _ = assert_only_intended(read(source), written, IMPORT_EDITS)
        # The edits the import means happened, so the bytes around them were spliced.
        tree = read_tree(decode(written)[1].encode("utf-8"))
        for path, value in tree.items():
            if path.endswith("/properties[1]/global_id[1]"):
                assert value[1] == guid != vm_id, (value, guid)
            elif path.endswith("/SwitchName[1]") and value[1]:
                assert value[1] == switch, (value, switch)
        assert any(p.endswith("/pathname[1]") for p in changed), changed
        assert any(p.endswith("/SwitchName[1]") for p in changed), changed
        # The bare LF ending creation_time in a CRLF file is still there.
        assert re.search(r"=\n</creation_time>", decode(written)[1]), encoding
        os.chdir("..")


# What vm snapshot and vm apply change (docs/FORMAT.md, the snapshot tree).
SNAPSHOT_EDITS = ("/pathname[1]", "/global_settings[1]/snapshots[1]/current[1]",
                  "/global_settings[1]/snapshots[1]/list[1]/size[1]",
                  "/global_settings[1]/snapshots[1]/parent[1]",
                  "/properties[1]/global_id[1]", "/properties[1]/name[1]",
                  "/properties[1]/type_id[1]", "/properties[1]/creation_time[1]")


def test_snapshot_and_apply_keep_the_rest_of_a_store_vm():
    for encoding in ("utf-16", "utf-8"):
        os.makedirs(encoding)
        os.chdir(encoding)
        # A VM of a store whose configuration Hyper-V wrote (a copied data root).
        target = new_store("target")
        disk = os.path.join(target, DISKS, "box.vhd")
        ok("vhd", "create", disk, "8388608")
        guid = hyperv2012.guid()
        text = hyperv2012.vm_config(guid, "box", disks=[{"path": disk}],
                                    adapters=[{"connected": False}])
        with open(config_path(target, guid), "wb") as f:
            f.write(hyperv2012.encode(text, encoding))
        path = config_path(target, guid)
        vm_before = read(path)
        snapshot = ok("vm", "snapshot", "--store", target, guid, "s1").stdout.split()[0]
        # The VM: its disk moved to a differencing disk, its current snapshot and count.
        changed, added, removed = assert_only_intended(
            vm_before, read(path),
            ("/pathname[1]", "/global_settings[1]/snapshots[1]/current[1]",
             "/global_settings[1]/snapshots[1]/list[1]/size[1]"))
        assert len(changed) == 3 and not added and not removed, (changed, added, removed)
        # The snapshot: the VM's configuration with its identity and place in the tree.
        shown = as_json(ok("vm", "show", "--json", "--store", target, guid))
        assert shown["problem"] is None, shown
        snap_path = [s["config"] for s in shown["snapshots"] if s["name"] == "s1"][0]
        assert snap_path == config_path(target, snapshot, SNAPSHOTS), snap_path
        snap = read(snap_path)
        changed, added, removed = assert_only_intended(vm_before, snap, SNAPSHOT_EDITS)
        assert "creation_time" in " ".join(changed) and added and removed, (changed, added,
                                                                            removed)
        # Applied: the snapshot's configuration becomes the VM's again.
        ok("vm", "apply", "--store", target, guid, "s1")
        changed, added, removed = assert_only_intended(snap, read(path), SNAPSHOT_EDITS)
        assert "creation_time" in " ".join(changed) and added and removed, (changed, added,
                                                                            removed)
        assert as_json(ok("vm", "show", "--json", "--store", target, guid))["problem"] is None
        os.chdir("..")


if __name__ == "__main__":
    run_tests(globals())
