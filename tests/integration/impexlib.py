"""Helpers shared by the integration tests of stores: running impex, its
refusals, and snapshots of whole folders to prove that nothing changed."""

import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from taplib import IMPEX, Result, Skip, have, impex, sanitizer_clean

TIMEOUT = 60  # seconds: every command on these small stores answers far sooner
VMS = "Virtual Machines"
SNAPSHOTS = "Snapshots"
DISKS = "Virtual Hard Disks"
GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
GUID_RE = re.compile("^%s$" % GUID)


def call(*args, timeout=TIMEOUT, env=None, **kw):
    """impex ARGS, whatever its exit status; no sanitizer report allowed.
    @env: variables to set for this run."""
    if env is None:
        result = impex(*args, check=False, timeout=timeout, **kw)
    else:
        result = Result(subprocess.run(
            [IMPEX] + [str(a) for a in args], env=dict(os.environ, **env), timeout=timeout,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    sanitizer_clean(result)
    return result


def label(args):
    return "impex " + " ".join(repr(a) if isinstance(a, str) and not a.isprintable()
                               else str(a) for a in args)


def ok(*args, **kw):
    result = call(*args, **kw)
    assert result.returncode == 0, "%s: %r" % (label(args), result)
    return result


def refused(*args, status=(1,), mentions=(), **kw):
    """impex ARGS fails with one of @status and says why on standard error,
    naming each of @mentions (any case)."""
    result = call(*args, **kw)
    if isinstance(result.stderr, bytes):
        result.stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode in status, "%s: want exit %s: %r" % (
        label(args), " or ".join(map(str, status)), result)
    assert result.stderr.startswith(("impex: ", "usage: ")), \
        "%s: no message: %r" % (label(args), result)
    for text in mentions:
        assert text.lower() in result.stderr.lower(), "%s: does not say %r: %r" % (
            label(args), text, result.stderr)
    return result


def as_json(result):
    try:
        return json.loads(result.stdout)
    except ValueError as e:
        raise AssertionError("not JSON (%s): %r" % (e, result.stdout[:2000]))


def need(*tools):
    missing = [t for t in tools if not have(t)]
    if missing:
        raise Skip("no %s" % ", ".join(missing))


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_state(top="."):
    """Everything under @top: relative path -> (kind, size, mtime_ns, sha256
    or link target)."""
    state = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            if os.path.islink(path):
                state[rel] = ("link", 0, st.st_mtime_ns, os.readlink(path))
            elif os.path.isdir(path):
                state[rel] = ("dir", 0, 0, None)
            elif os.path.isfile(path):
                state[rel] = ("file", st.st_size, st.st_mtime_ns, digest(path))
            else:
                state[rel] = (oct(st.st_mode), 0, st.st_mtime_ns, None)
    return state


def describe_change(before, after, what="the command"):
    lines = ["%s changed the files:" % what]
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            lines.append("  %s: %r -> %r" % (path, before.get(path), after.get(path)))
    return "\n".join(lines)


def assert_unchanged(before, after, what):
    assert before == after, describe_change(before, after, what)


def new_store(name="store"):
    ok("store", "init", name)
    return os.path.realpath(name)


def config_path(store, guid, folder=VMS):
    return os.path.join(store, folder, guid + ".xml")


def documented_members():
    """What docs/JSON.md documents: the heading of each table ("VM object", ...) -> the set of
    members its rows name."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                        "JSON.md")
    tables, heading = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("### "):
                heading = line[4:].strip()
            m = re.match(r"^\| `([a-z_]+)` \|", line)
            if m and heading:
                tables.setdefault(heading, set()).add(m.group(1))
    return tables


def read_xml(path):
    """The root element of a configuration file, UTF-16 with a byte-order mark (as Hyper-V and
    impex write them) or UTF-8, decoded here."""
    import xml.etree.ElementTree as ET
    with open(path, "rb") as f:
        raw = f.read()
    text = raw[2:].decode("utf-16-le") if raw[:2] == b"\xff\xfe" else raw.decode("utf-8-sig")
    return ET.fromstring(text)


def edit_config(path, change):
    """Rewrite the configuration @path (UTF-16LE with a byte-order mark) as change(text);
    the change must change something."""
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:2] == b"\xff\xfe", path
    text = raw[2:].decode("utf-16-le")
    changed = change(text)
    assert changed != text, "nothing changed in %s" % path
    with open(path, "wb") as f:
        f.write(b"\xff\xfe" + changed.encode("utf-16-le"))


def configs_by_name(store, folder=VMS):
    """name -> (GUID, root element) of every configuration in @folder of @store, read here."""
    found = {}
    for file in sorted(os.listdir(os.path.join(store, folder))):
        if file.lower().endswith(".xml"):
            root = read_xml(os.path.join(store, folder, file))
            found[root.findtext("properties/name")] = (root.findtext("properties/global_id"),
                                                        root)
    return found


def value(root, path):
    node = root.find(path)
    assert node is not None, "no %s in the configuration" % path
    return node.text or ""


def vm_new(store, *args):
    """impex vm new: the VM's GUID, from its output "GUID  NAME"."""
    result = ok("vm", "new", "--store", store, *args)
    guid, _, name = result.stdout.rstrip("\n").partition("  ")
    assert GUID_RE.match(guid) and name == args[-1], "vm new printed %r" % result.stdout
    return guid


# The PATH a shell has when its caller gave none (dash's and bash's default): where
# mount.fuse3 finds the program of a fuse.TYPE line, since mount(8) drops the caller's PATH.
DEFAULT_SHELL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def private_mounts():
    """Go on in a mount namespace of this program's own (unshare(1) runs it again
    there), with the impexfs and impex under test in /usr/local/bin for that namespace
    alone (a read-only overlay), where `mount` finds a fuse.impexfs line's program as
    it finds an installed one. Mounts made here are seen only here and go with the
    namespace. Where that cannot be had (no /dev/fuse, no unshare or overlay), prints a
    TAP plan that skips every test and exits."""
    def skip_all(why):
        print("1..0 # SKIP %s" % why, flush=True)
        sys.exit(0)

    if not os.path.exists("/dev/fuse"):
        skip_all("no /dev/fuse")
    if os.environ.get("IMPEX_PRIVATE_MOUNTS") != "1":
        if not have("unshare") or subprocess.run(["unshare", "--mount", "true"]).returncode:
            skip_all("no mount namespace (unshare --mount)")
        os.environ["IMPEX_PRIVATE_MOUNTS"] = "1"
        sys.stdout.flush()
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                              sys.executable] + sys.argv)
    links = tempfile.mkdtemp(prefix="impex-bin-")
    for name, variable in (("impexfs", "IMPEXFS"), ("impex", "IMPEX")):
        program = shutil.which(os.environ.get(variable, name))
        assert program, "no %s to test" % name
        os.symlink(os.path.realpath(program), os.path.join(links, name))
    made = subprocess.run(["mount", "-t", "overlay", "impex-bin", "-o",
                           "lowerdir=%s:/usr/local/bin" % links, "/usr/local/bin"],
                          stderr=subprocess.PIPE, text=True)
    if made.returncode:
        shutil.rmtree(links)
        skip_all("cannot overlay /usr/local/bin: %s" % made.stderr.strip())
    found = shutil.which("impexfs", path=DEFAULT_SHELL_PATH)
    assert found and os.path.realpath(found) == os.readlink(os.path.join(links, "impexfs")), \
        "mount would run %s, not the impexfs under test" % found

    def done():
        subprocess.run(["umount", "/usr/local/bin"], check=False)
        shutil.rmtree(links, ignore_errors=True)
    atexit.register(done)


def mounts_under(top):
    """The mount points at or under @top in this namespace, deepest first."""
    top = os.path.realpath(top)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # Field 5 is the mount point, its spaces and backslashes octal-escaped.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == top or point.startswith(top + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)
