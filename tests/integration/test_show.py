"""impex vm show as Hyper-V Manager shows a VM: the snapshot tree drawn with tree lines (one line
a snapshot: name, creation time, "saved state"; siblings in creation order; "Now" under the
snapshot the VM stands on), box drawing or ASCII by the locale or --ascii, the disks' chains only
with -v; and impex vm write taking a disk as vm show names it.

The expected output is built here from the commands run (which snapshot is whose parent) and
from the store's files (names, GUIDs, creation times, disk paths from the configurations decoded
with xml.etree, saved state from the folders, disk contents with qemu-img), never from impex's
own output.
"""

import base64
import os
import struct
import subprocess
import time

from impexlib import (
    IMPEX, SNAPSHOTS, VMS, assert_unchanged, config_path, configs_by_name, need, new_store, ok,
    read_xml, refused, tree_state, vm_new)
from taplib import run, run_tests, sanitizer_clean, Result

MIB = 1024 * 1024
FILETIME_UNIX_EPOCH = 116444736000000000
UNICODE = {"branch": "\u251c\u2500 ", "last": "\u2514\u2500 ", "down": "\u2502  ", "blank": "   "}
ASCII = {"branch": "|- ", "last": "`- ", "down": "|  ", "blank": "   "}
NOW = "Now"


def show(store, *args, env=None, status=0):
    """impex vm show ARGS: its lines, decoded here as UTF-8 (whatever the locale), exit
    @status. @env: LC_ALL, LC_CTYPE, LANG (all set, empty meaning unset)."""
    locale = {"LC_ALL": "", "LC_CTYPE": "", "LANG": "C.UTF-8"}
    locale.update(env or {})
    proc = subprocess.run([IMPEX, "vm", "show", "--store", store] + list(args),
                          env=dict(os.environ, **locale), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    result = Result(proc)
    result.stderr = proc.stderr.decode("utf-8", "replace")
    sanitizer_clean(result)
    assert proc.returncode == status, "vm show %s: %r" % (" ".join(args), result)
    return proc.stdout.decode("utf-8").splitlines()


def created(root):
    """The creation time of a configuration as vm show prints it, from its FILETIME."""
    ticks = struct.unpack("<q", base64.b64decode(root.findtext("properties/creation_time")))[0]
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime((ticks - FILETIME_UNIX_EPOCH)
                                                                // 10000000))


def drive_paths(root):
    """(place, path) of each VHD drive of a configuration, in document order: "ide0:1" from
    the controller and drive of its node."""
    found = []
    for node in root:
        for controller in node:
            if not controller.tag.startswith("controller"):
                continue
            for drive in controller:
                if drive.tag.startswith("drive") and drive.findtext("type") == "VHD" and \
                        drive.findtext("pathname"):
                    bus = "ide" if node.tag == "_83f8638b-8dca-4152-9eda-2ca8b33039b4_" else "scsi"
                    found.append(("%s%s:%s" % (bus, controller.tag[10:], drive.tag[5:]),
                                  drive.findtext("pathname")))
    return found


def has_saved_state(folder):
    return os.path.isdir(folder) and any(n.lower().endswith(".vsv") for n in os.listdir(folder))


class Store:
    """A store with one VM, blog (an IDE and a SCSI disk), and a branched snapshot tree:

        one
        +-- zeta            (taken after one)
        |   +-- three       (saved state)
        |   +-- Now
        +-- alpha           (taken after three, once one was applied)

    made by vm snapshot, vm apply of an older one, and vm snapshot again. Sibling names sort
    against their creation order, so that order, not the names', is what shows."""

    TREE = [("one", [("zeta", [("three", []), (NOW, [])]), ("alpha", [])])]
    PARENT = {"one": None, "zeta": "one", "three": "zeta", "alpha": "one"}

    def __init__(self):
        self.path = new_store()
        vm_new(self.path, "--disk", "ide:8M", "--disk", "scsi:8M", "blog")
        for step in (("snapshot", "one"), ("snapshot", "zeta"), ("save",),
                     ("snapshot", "three"), ("apply", "one"), ("snapshot", "alpha"),
                     ("apply", "zeta")):
            ok("vm", step[0], "--store", self.path, "blog", *step[1:])
        self.guid, self.root = configs_by_name(self.path)["blog"]
        self.snapshots = configs_by_name(self.path, SNAPSHOTS)
        assert sorted(self.snapshots) == ["alpha", "one", "three", "zeta"], self.snapshots

    def line(self, name):
        """A snapshot's line: name, creation time, "saved state" when it has one."""
        if name == NOW:
            return NOW
        guid, root = self.snapshots[name]
        saved = has_saved_state(os.path.join(self.path, SNAPSHOTS, guid))
        return "%s  %s%s" % (name, created(root), "  saved state" if saved else "")

    def chain(self, name, k):
        """The files of disk @k of snapshot @name from it down to its base: each snapshot's
        disk was made over its parent's."""
        files = []
        while name:
            files.append(drive_paths(self.snapshots[name][1])[k][1])
            name = self.PARENT[name]
        return files

    def disk_lines(self, place, path, chain, indent, verbose, index=None):
        lines = ["%s%s%s  %s" % (indent, "" if index is None else "%d  " % index, place, path)]
        if verbose:
            lines += ["%s  file: %s (found as written)" % (indent, path),
                      "%s  format: VHD, %d level%s" % (indent, len(chain),
                                                       "" if len(chain) == 1 else "s")]
            lines += ["%s  parent %d: %s" % (indent, i, p) for i, p in enumerate(chain[1:], 1)]
        return lines

    def tree(self, style, verbose=False):
        """The snapshot tree as it should be drawn."""
        lines = ["snapshots:"]

        def draw(nodes, prefix):
            for i, (name, children) in enumerate(nodes):
                last = i == len(nodes) - 1
                lines.append(prefix + style["last" if last else "branch"] + self.line(name))
                below = prefix + style["blank" if last else "down"]
                if verbose and name != NOW:
                    indent = below + style["down" if children else "blank"]
                    guid, root = self.snapshots[name]
                    lines.append(indent + "id: " + guid)
                    for k, (place, path) in enumerate(drive_paths(root)):
                        lines.extend(self.disk_lines(place, path, self.chain(name, k), indent,
                                                     True))
                draw(children, below)
        draw(self.TREE, "  ")
        return lines

    def whole(self, style, verbose=False):
        """All of vm show's output."""
        lines = ["blog  " + self.guid,
                 "  configuration: " + config_path(self.path, self.guid),
                 "  generation 1, version 1280, created " + created(self.root),
                 "  state: off",
                 "  saved state: none",
                 "disks:"]
        for k, (place, path) in enumerate(drive_paths(self.root)):
            lines += self.disk_lines(place, path, [path] + self.chain("zeta", k), "  ", verbose,
                                     index=k)
        return lines + ["adapters:"] + self.tree(style, verbose)


def assert_lines(got, want, what):
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, "%s, line %d: %r, want %r\n%s" % (what, i + 1, g, w, "\n".join(got))
    assert len(got) == len(want), "%s: %d lines, want %d:\n%s" % (what, len(got), len(want),
                                                                  "\n".join(got))


def test_tree_of_a_branched_store():
    s = Store()
    before = tree_state(s.path)
    assert_lines(show(s.path, "blog"), s.whole(UNICODE), "vm show")
    # Taken in order: zeta before alpha, whatever the names say.
    ticks = {n: struct.unpack("<q", base64.b64decode(r.findtext("properties/creation_time")))[0]
             for n, (_, r) in s.snapshots.items()}
    assert ticks["one"] < ticks["zeta"] < ticks["three"] < ticks["alpha"], ticks
    # By GUID and by a name in another case: the same.
    assert_lines(show(s.path, s.guid.lower()), s.whole(UNICODE), "vm show GUID")
    assert_lines(show(s.path, "BLOG"), s.whole(UNICODE), "vm show BLOG")
    assert_unchanged(before, tree_state(s.path), "vm show")


def test_tree_in_ascii_by_locale_or_on_request():
    s = Store()
    unicode, ascii = s.whole(UNICODE), s.whole(ASCII)
    for env, want in (({"LANG": "C.UTF-8"}, unicode),
                      ({"LANG": "en_US.utf8"}, unicode),
                      ({"LANG": "C"}, ascii),
                      ({"LANG": "POSIX"}, ascii),
                      ({"LANG": ""}, ascii),
                      ({"LANG": "de_DE.ISO-8859-1"}, ascii),
                      ({"LC_ALL": "C", "LANG": "C.UTF-8"}, ascii),
                      ({"LC_ALL": "C.UTF-8", "LANG": "C"}, unicode),
                      ({"LC_CTYPE": "C", "LANG": "C.UTF-8"}, ascii),
                      ({"LC_CTYPE": "C.UTF-8", "LANG": "C"}, unicode)):
        assert_lines(show(s.path, "blog", env=env), want, "vm show with %r" % env)
    assert_lines(show(s.path, "--ascii", "blog"), ascii, "vm show --ascii")
    assert_lines(show(s.path, "--ascii", "blog", env={"LC_ALL": "C"}), ascii, "--ascii in C")
    for line in show(s.path, "blog", env={"LANG": "C"}):
        assert line.isascii(), "not ASCII: %r" % line


def test_verbose_shows_each_disks_chain():
    s = Store()
    for flag in ("-v", "--verbose"):
        assert_lines(show(s.path, flag, "blog"), s.whole(UNICODE, verbose=True),
                     "vm show " + flag)
    assert_lines(show(s.path, "-v", "--ascii", "blog"), s.whole(ASCII, verbose=True),
                 "vm show -v --ascii")
    # Without -v, no chain and no snapshot GUID.
    plain = "\n".join(show(s.path, "blog"))
    for text in ["file: ", "format: ", "parent 1: "] + [g for g, _ in s.snapshots.values()]:
        assert text not in plain, "vm show without -v says %r:\n%s" % (text, plain)


def test_a_vm_without_snapshots_and_now_at_the_top():
    store = new_store()
    guid = vm_new(store, "--disk", "ide:8M", "plain")
    lines = show(store, "plain")
    assert lines[-1] == "snapshots: none" and lines[-2] == "adapters:", lines
    # A snapshot tree whose current snapshot is none of its snapshots: Now is a root, last.
    ok("vm", "snapshot", "--store", store, "plain", "first")
    path = config_path(store, guid)
    snap = configs_by_name(store, SNAPSHOTS)["first"][0]
    with open(path, "rb") as f:
        text = f.read()[2:].decode("utf-16-le")
    assert snap in text
    changed = text.replace('<current type="string">%s</current>' % snap,
                           '<current type="string">11111111-2222-3333-4444-555555555555</current>')
    assert changed != text, "no current snapshot in %s" % path
    text = changed
    with open(path, "wb") as f:
        f.write(b"\xff\xfe" + text.encode("utf-16-le"))
    first = configs_by_name(store, SNAPSHOTS)["first"][1]
    lines = show(store, "plain")
    assert lines[-3:] == ["snapshots:", "  \u251c\u2500 first  " + created(first),
                          "  \u2514\u2500 Now"], lines


def test_a_snapshot_whose_disk_breaks_is_told_without_v():
    store = new_store()
    vm_new(store, "--disk", "ide:8M", "blog")
    ok("vm", "snapshot", "--store", store, "blog", "one")
    ok("vm", "snapshot", "--store", store, "blog", "two")
    snaps = configs_by_name(store, SNAPSHOTS)
    [(_, one)] = drive_paths(snaps["one"][1])
    [(_, two)] = drive_paths(snaps["two"][1])
    os.rename(one, "away.vhd")  # one's disk, the base of two's and of the VM's
    lines = show(store, "blog", status=1)
    tree = lines[lines.index("snapshots:"):]
    want = ["snapshots:",
            "  \u2514\u2500 one  " + created(snaps["one"][1]),
            "     \u2502  ide0:0  " + one,
            ("     \u2502    problem: ", os.path.basename(one)),
            "     \u2514\u2500 two  " + created(snaps["two"][1]),
            "        \u2502  ide0:0  " + two,
            ("        \u2502    problem: ", "parent"),
            "        \u2514\u2500 Now"]
    assert len(tree) == len(want), "\n".join(tree)
    for got, line in zip(tree, want):
        if isinstance(line, tuple):
            assert got.startswith(line[0]) and line[1] in got, "%r, want %r" % (got, line)
        else:
            assert got == line, "%r, want %r\n%s" % (got, line, "\n".join(tree))
    # Back in place: nothing to say without -v.
    os.rename("away.vhd", one)
    lines = show(store, "blog")
    assert lines[lines.index("snapshots:"):] == [
        "snapshots:", "  \u2514\u2500 one  " + created(snaps["one"][1]),
        "     \u2514\u2500 two  " + created(snaps["two"][1]), "        \u2514\u2500 Now"], lines


def raw_of(path):
    """The raw content of the VHD @path (no parent), read by qemu-img."""
    run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", path, "read.raw"])
    with open("read.raw", "rb") as f:
        data = f.read()
    os.unlink("read.raw")
    return data


def test_vm_write_takes_the_disk_as_vm_show_names_it():
    need("qemu-img")
    store = new_store()
    guid = vm_new(store, "--disk", "ide:8M", "--disk", "scsi:8M", "blog")
    drives = drive_paths(read_xml(config_path(store, guid)))
    lines = show(store, "blog")
    listed = lines[lines.index("disks:") + 1:lines.index("adapters:")]
    assert listed == ["  %d  %s  %s" % (k, place, path) for k, (place, path) in enumerate(drives)], \
        listed
    model = [bytearray(8 * MIB), bytearray(8 * MIB)]
    # Each disk by its number, its place (any case) and its file name (any case).
    names = [os.path.basename(path) for _, path in drives]
    writes = [("0", 0), ("1", 1), ("ide0:0", 0), ("SCSI0:0", 1), (names[0].upper(), 0),
              (names[1], 1)]
    for n, (disk, k) in enumerate(writes):
        data = bytes([0x10 + n]) * (64 * 1024)
        with open("in.bin", "wb") as f:
            f.write(data)
        offset = n * MIB
        ok("vm", "write", "--store", store, "blog", disk, str(offset), "in.bin")
        model[k][offset:offset + len(data)] = data
    for k, (_, path) in enumerate(drives):
        assert raw_of(path) == bytes(model[k]), "disk %d does not hold what was written" % k
    before = tree_state(store)
    # A disk the VM lacks is a fact of the store (exit 1); a DISK that starts with '-' goes
    # after '--'.
    for wrong in ("2", "ide1:0", "scsi0:1", "nosuch.vhd", "-1", "0x0"):
        refused("vm", "write", "--store", store, "blog", "--", wrong, "0", "in.bin", status=(1,),
                mentions=["VM 'blog' has no disk '%s'" % wrong, "0 (%s, '%s')" % (drives[0][0],
                                                                                   names[0]),
                          "1 (%s, '%s')" % (drives[1][0], names[1])])
    assert_unchanged(before, tree_state(store), "refused vm write")


if __name__ == "__main__":
    run_tests(globals())
