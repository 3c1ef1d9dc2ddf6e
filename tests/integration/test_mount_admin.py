"""What an administrator and a script see of the two mounts, on real mounts of the
real daemon: the source findmnt, df and mount show (the store's path, as sshfs shows
user@host:path), an fstab line mounted by `mount -a` twice (once), no mount stacked
on an impexfs mount, live or dead, the daemon's messages in syslog once it is in the
background, its exit statuses, --help and the manual page listing the same options,
target roots made when missing, and `impex status` as a script's way to wait.

Runs in a mount namespace of its own (impexlib.private_mounts). The syslog test needs
a /dev/log to listen on: no syslog daemon is assumed, and the system's /dev is not
touched; in this namespace alone /dev is an overlay of itself whose upper layer is
the test's folder, and the test binds its own socket at /dev/log there. The daemon
writes through openlog(3) and syslog(3) to /dev/log, as it does under journald.
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time

from impexlib import DISKS, as_json, call, mounts_under, need, new_store, ok, private_mounts
from taplib import run, run_tests, sanitizer_report
from test_import import small_store, write
from test_import_mount import entry, gold, status, wait_state
from test_mount import IMPEXFS, Mount
from test_mount_options import fstab_field, wait_unmounted

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def findmnt(point, column):
    return run(["findmnt", "-n", "-o", column, "--mountpoint", point]).stdout.strip()


def mount_count(point):
    """How many mounts there are at @point (stacked ones each count)."""
    point = os.path.realpath(point)
    return sum(1 for p in mounts_under(point) if p == point)


def impexfs(*args, timeout=60):
    """impexfs ARGS to its end (a refusal, or a mount gone to the background)."""
    result = run([IMPEXFS, *args], check=False, timeout=timeout)
    assert result.returncode >= 0 and not sanitizer_report(result.stderr), result
    return result


def test_the_source_names_the_store():
    need("fusermount3", "findmnt", "df")
    one, two = new_store("one"), new_store("two")
    # A store named through a link, with a comma and a space: shown by its real path.
    os.makedirs("odd, name")
    shutil.move(new_store("three"), os.path.join("odd, name", "three"))
    os.symlink(os.path.join("odd, name", "three"), "link")
    three = os.path.realpath("link")
    with Mount(one, "a") as a, Mount(two, "b", "-o", "import") as b, Mount("link", "c") as c:
        for m, store in ((a, one), (b, two), (c, three)):
            assert findmnt(m.point, "SOURCE") == store, (m.point, findmnt(m.point, "SOURCE"))
            assert findmnt(m.point, "FSTYPE") == "fuse.impexfs", findmnt(m.point, "FSTYPE")
            shown = run(["df", "--output=source", m.point]).stdout.splitlines()
            assert shown[1:] == [store], shown
        listed = run(["mount", "-t", "fuse.impexfs"]).stdout
        assert "%s on %s type fuse.impexfs" % (one, a.point) in listed, listed
        assert "%s on %s type fuse.impexfs" % (two, b.point) in listed, listed
    # A user's own fsname= is kept.
    with Mount(one, "d", "-o", "fsname=backup-disk") as d:
        assert findmnt(d.point, "SOURCE") == "backup-disk", findmnt(d.point, "SOURCE")
        assert findmnt(d.point, "FSTYPE") == "fuse.impexfs"


def test_mount_all_twice_mounts_each_line_once():
    need("fusermount3", "findmnt")
    export_store, import_store = new_store("exports"), new_store("imports")
    points = [os.path.realpath("export point"), os.path.realpath("import point")]
    for point in points:
        os.mkdir(point)
    with open("fstab", "w") as f:
        f.write("%s  %s  fuse.impexfs  ro,revalidate=3  0  0\n" % (
            fstab_field(export_store), fstab_field(points[0])))
        f.write("%s  %s  fuse.impexfs  import,settle=200  0  0\n" % (
            fstab_field(import_store), fstab_field(points[1])))
    try:
        for _ in range(2):
            result = run(["mount", "-T", "fstab", "-a"], check=False)
            assert result.returncode == 0, result
            for point, store in zip(points, (export_store, import_store)):
                assert mount_count(point) == 1, (point, mounts_under("."))
                assert findmnt(point, "SOURCE") == store
        assert sorted(os.listdir(points[0])) == ["by-id", "raw", "snapshots", "vms"]
        assert os.listdir(points[1]) == [".impex-status"]
    finally:
        for left in mounts_under("."):
            subprocess.run(["fusermount3", "-u", "-z", left], check=False)


def test_no_mount_over_an_impexfs_mount_live_or_dead():
    need("fusermount3")
    store, target = new_store("store"), new_store("target")
    with Mount(store, "mnt") as m:
        for options in ([], ["-o", "import"]):
            result = impexfs(*options, target if options else store, m.point)
            assert result.returncode == 1, (options, result)
            assert "'%s' is an impexfs mount already (of '%s')" % (m.point, store) in \
                result.stderr, result
            assert mount_count(m.point) == 1, mounts_under(".")
    point = os.path.realpath("dead")
    os.mkdir(point)
    daemon = subprocess.Popen([IMPEXFS, "-f", store, point], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not os.path.ismount(point):
            assert daemon.poll() is None and time.time() < deadline, "no mount at %s" % point
            time.sleep(0.05)
        daemon.send_signal(signal.SIGKILL)  # ours, by its id
        daemon.wait()
        # At once: the kernel may still hold the root's attributes in its cache.
        for options in ([], ["-o", "import"]):
            result = impexfs(*options, target if options else store, point)
            assert result.returncode == 1, (options, result)
            assert "the mount point '%s' is a dead mount of '%s' (Transport endpoint is not " \
                "connected): unmount it with 'fusermount3 -u' first" % (point, store) in \
                result.stderr, result
            assert mount_count(point) == 1, mounts_under(".")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        subprocess.run(["fusermount3", "-u", "-z", point], check=False)
    assert mount_count(point) == 0
    # Unmounted, the point takes a mount again.
    with Mount(store, point):
        assert mount_count(point) == 1


class LogSocket:
    """A socket of this test's at /dev/log, in this mount namespace alone: /dev is made
    an overlay of itself whose upper layer is the test's folder (a /dev/log the system
    has is hidden there, not removed); gone at exit."""

    def __enter__(self):
        self.had = os.path.lexists("/dev/log")
        for folder in ("dev-upper", "dev-work"):
            os.mkdir(folder)
        run(["mount", "-t", "overlay", "impex-dev", "-o",
             "lowerdir=/dev,upperdir=%s,workdir=%s" % (os.path.realpath("dev-upper"),
                                                       os.path.realpath("dev-work")), "/dev"])
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if self.had:
                os.unlink("/dev/log")  # in the overlay: a whiteout in the test's folder
            self.sock.bind("/dev/log")
        except OSError:
            self.__exit__()
            raise
        return self

    def lines(self, quiet=2.0):
        """What was sent until the socket has been quiet for @quiet seconds."""
        got = []
        self.sock.settimeout(quiet)
        try:
            while True:
                got.append(self.sock.recv(65536).decode("utf-8", "replace"))
        except socket.timeout:
            return got

    def __exit__(self, *exc):
        self.sock.close()
        if subprocess.run(["umount", "/dev"]).returncode:
            subprocess.run(["umount", "-l", "/dev"], check=False)
        assert os.path.lexists("/dev/log") == self.had


def wait_gone(pid, timeout=30):
    """Until the process @pid has ended (a daemon reaped by whoever adopted it)."""
    deadline = time.time() + timeout
    while True:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (FileNotFoundError, ProcessLookupError):
            return  # gone before the open, or between the open and the read
        assert time.time() < deadline, "process %d still runs" % pid
        time.sleep(0.05)


def test_messages_go_to_syslog_once_in_the_background():
    need("fusermount3")
    store = new_store("store")
    target = new_store("target")
    point = os.path.realpath("mnt")
    os.mkdir(point)
    rolled = "import 'half' was not complete at unmount: rolled back"
    changed = "the store changed; tree made again"
    with LogSocket() as log:
        # In the background: nothing on the terminal, each message in syslog with the pid
        # and the mount point, at its priority (facility daemon, 3).
        for options, act, message, priority in (
                (["-o", "import"], "half", rolled, 3 * 8 + 4),
                (["-o", "verbose,revalidate=1"], "vm", changed, 3 * 8 + 6)):
            result = impexfs(*options, target if "import" in options else store, point)
            assert result.returncode == 0 and result.stderr == "", result
            try:
                if act == "half":
                    os.mkdir(os.path.join(point, "half"))
                    write(os.path.join(point, "half", "part.bin"), "data")
                else:
                    ok("vm", "new", "--store", store, "late")
                    deadline = time.time() + 30
                    while "late" not in os.listdir(os.path.join(point, "vms")):
                        assert time.time() < deadline, os.listdir(os.path.join(point, "vms"))
                        time.sleep(0.1)
            finally:
                run(["fusermount3", "-u", point])
            lines = log.lines()
            found = [re.match(r"^<(\d+)>.*? impexfs\[(\d+)\]: (.*)$", line) for line in lines]
            assert all(found), lines
            want = "%s: %s" % (point, message)
            said = [(int(f.group(1)), f.group(3)) for f in found]
            # Once for the import's roll-back; the tree may be made again more than once.
            times = said.count((priority, want))
            assert times == 1 or (act == "vm" and times > 1), (want, lines)
            assert all(text.startswith(point + ": ") for _, text in said), lines
            wait_gone(int(found[0].group(2)))
            wait_unmounted(point)
        # With -f: on standard error, once, and nothing in syslog.
        with Mount(target, point, "-o", "import") as m:
            os.mkdir(os.path.join(point, "half"))
            write(os.path.join(point, "half", "part.bin"), "data")
        assert m.stderr().count("impexfs: %s\n" % rolled) == 1, m.stderr()
        assert log.lines(quiet=1.0) == []


def test_exit_statuses():
    need("fusermount3")
    store = new_store("store")
    os.mkdir("mnt")
    for mode in ([], ["-o", "import"]):
        for args, status_, words in (
                (["-o", "nonsense", store, "mnt"], 2, ["nonsense"]),
                ([store], 2, ["missing MOUNTPOINT"]),
                ([], 2, ["missing STORE"]),
                ([store, "mnt", "extra"], 2, ["extra"]),
                (["no-such-store", "mnt"], 1, ["no-such-store"]),
                ([store, "no-such-folder"], 1, ["no-such-folder"]),
                ([store, "no/such/folder"], 1, ["no/such/folder"])):
            result = impexfs(*mode, *args)
            assert result.returncode == status_, (mode, args, result)
            assert all(w in result.stderr for w in words), (mode, args, result)
            assert not os.path.ismount("mnt")
    for args in (["-o", "uid=no-such-user"], ["-o", "import,copy_vm_storage=false"]):
        result = impexfs(*args, store, "mnt")
        assert result.returncode == 2, (args, result)
    for args in (["--help"], ["-h"], ["--version"]):
        assert impexfs(*args).returncode == 0, args


# ---- --help and the manual page ----

def troff_text(line):
    """A line of the manual page as it reads: font changes dropped, macros' words joined
    as they are set (.B: with blanks; .BI, .BR...: alternating fonts, without)."""
    words = None
    match = re.match(r"^\.(B|I|BI|BR|IB|IR|RB|RI)\s+(.*)$", line)
    if match:
        words = re.findall(r'"([^"]*)"|(\S+)', match.group(2))
        words = [a or b for a, b in words]
        line = (" " if match.group(1) in ("B", "I") else "").join(words)
    line = re.sub(r"\\f[BIRP]", "", line)
    line = line.replace("\\-", "-").replace("\\e", "\\").replace("\\(oq", "'").replace(
        "\\(cq", "'")
    return line


def manual_options():
    """[(heading, [(option, text)...])...] of the manual page's OPTIONS section: each
    .SS heading, and each .TP entry under it, its text up to the next macro."""
    with open(os.path.join(SOURCE_DIR, "docs", "impexfs.1")) as f:
        lines = f.read().split("\n")
    start = lines.index(".SH OPTIONS")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(".SH "))
    sections, i = [], start + 1
    while i < end:
        line = lines[i]
        if line.startswith(".SS "):
            sections.append((troff_text(line[4:].strip().strip('"')), []))
        elif line == ".TP":
            tag = troff_text(lines[i + 1])
            body = []
            i += 2
            while i < end and not lines[i].startswith("."):
                body.append(troff_text(lines[i]))
                i += 1
            sections[-1][1].append((tag, " ".join(body)))
            continue
        i += 1
    return sections


def help_options():
    """The same of `impexfs --help`: each heading ("...:") and its options, up to
    libfuse's."""
    lines = impexfs("--help").stdout.split("\n")
    sections, option = [], None
    for i, line in enumerate(lines):
        if line == "libfuse options:":
            break
        if re.match(r"^\S.*:$", line) and i + 1 < len(lines) and \
                lines[i + 1].startswith("    -"):
            sections.append((line[:-1], []))
        elif sections and re.match(r"^    \S", line):
            name, _, text = line[4:].partition("  ")
            option = [re.sub(r"^-o ", "", name.strip()), text.strip()]
            sections[-1][1].append(option)
        elif option and re.match(r"^ {40}\S", line):
            option[1] = (option[1] + " " + line.strip()).strip()
        elif line.strip() == "":
            option = None
    return [(h, [tuple(o) for o in opts]) for h, opts in sections]


def test_help_and_the_manual_page_list_the_same_options():
    shown = impexfs("--help")
    assert shown.returncode == 0 and "usage:" in shown.stdout, shown
    for words in ("-o import", "impexfs import", "Export mode", "Import mode",
                  "fusermount3 -u MOUNTPOINT", "libfuse options:"):
        assert words in shown.stdout, (words, shown.stdout)
    helped, manual = help_options(), manual_options()
    assert [h for h, _ in helped] == ["Export options", "Import options (-o import)",
                                      "Options of both modes"], helped
    assert [h for h, _ in manual] == [h for h, _ in helped], (manual, helped)
    for (heading, by_help), (_, by_manual) in zip(helped, manual):
        assert [o for o, _ in by_manual] == [o for o, _ in by_help], (heading, by_manual,
                                                                      by_help)
        for (option, text), (_, page) in zip(by_help, by_manual):
            assert text and page.startswith(text), (option, text, page)
    # Every option the daemon takes is listed, and each mode's only in its own section.
    names = {o.split("=")[0] for _, opts in helped for o, _ in opts}
    for name in ("copy_vm_storage", "uid", "settings", "target_vhd_data_root", "roots",
                 "settle", "pathmap", "fsname", "verbose", "-f", "-h, --help"):
        assert name in names, name


# ---- target roots ----

def test_target_roots_are_made_when_missing():
    need("fusermount3")
    _, folder = gold()
    target = new_store("target")
    disks = os.path.realpath(os.path.join("new", "disks", "here"))
    snaps = os.path.realpath("snaps")
    umask = os.umask(0o077)  # the folders made are 0755 whatever the umask
    try:
        options = "import,roots=%s,target_vhd_data_root=%s,target_snapshot_data_root=%s" % (
            snaps, disks, snaps)
        with Mount(target, "mnt", "-o", options) as m:
            for made in ("new", "new/disks", "new/disks/here", "snaps"):
                st = os.stat(made)
                assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755, \
                    (made, oct(st.st_mode))
            run(["cp", "-r", folder, os.path.join(m.point, "one")])
            guid = wait_state(m.point, "one")["vm"]["id"]
            # A folder's own document makes no folder outside the mount's targets.
            shutil.copytree(folder, "elsewhere")
            write(os.path.join("elsewhere", "impex-import.settings"),
                  "target_vhd_data_root = %s\n" % os.path.realpath("outside/disks"))
            run(["cp", "-r", "elsewhere", os.path.join(m.point, "two")])
            imp = wait_state(m.point, "two", ("waiting",))
            assert [e["id"] for e in imp["errors"]] == ["settings-invalid"], imp
            assert not os.path.exists("outside")
    finally:
        os.umask(umask)
    vm = as_json(ok("vm", "show", "--json", "--store", target, "--store", snaps, guid))
    assert vm["disks"] and all(d["path"].startswith(disks + "/") for d in vm["disks"]), vm
    assert vm["snapshots"], vm
    # impex import: the roots of its --settings document are made; the folder's own
    # document makes none.
    cli = os.path.realpath(os.path.join("cli", "disks"))
    write("mine.settings", "target_vhd_data_root = %s\n" % cli)
    shown = ok("import", "--store", target, "--store", snaps, "--settings", "mine.settings",
               folder).stdout
    assert os.path.isdir(cli) and stat.S_IMODE(os.stat(cli).st_mode) == 0o755
    guid = shown.split()[0]
    vm = as_json(ok("vm", "show", "--json", "--store", target, "--store", snaps, guid))
    assert all(d["path"].startswith(cli + "/") for d in vm["disks"]), vm
    # impex import reads no document in the folder: its disks go to the default root.
    guid = ok("import", "--store", target, "--store", snaps, "elsewhere").stdout.split()[0]
    vm = as_json(ok("vm", "show", "--json", "--store", target, "--store", snaps, guid))
    assert all(d["path"].startswith(os.path.join(target, DISKS) + "/") for d in vm["disks"]), vm
    assert not os.path.exists("outside")


# ---- impex status ----

def copy_files(source, dest):
    """Copy the files of @source into @dest one by one (folders made), as a copy in
    progress does."""
    for folder, _, files in os.walk(source):
        rel = os.path.relpath(folder, source)
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for name in files:
            shutil.copyfile(os.path.join(folder, name), os.path.join(dest, rel, name))


def test_status_waits_times_out_and_its_exit_status_says_how_it_went():
    need("fusermount3")
    _, folder = gold()
    target = new_store("target")
    with Mount(target, "mnt", "-o", "import") as m:
        assert ok("status", m.point).returncode == 0
        assert ok("status", "--wait", "--timeout", "5", m.point).returncode == 0
        for args, words in ((["--timeout", "1"], "--wait"),
                            (["--wait", "--timeout", "soon"], "soon"),
                            (["--wait", "--timeout", "-1"], "-1")):
            result = call("status", *args, m.point)
            assert result.returncode == 2 and words in result.stderr, (args, result)
        # Two VMs in one folder: it waits, with advice to name one (exit 1 without --wait).
        ok("export", "--store", "source", "gateway", "gateway")
        os.makedirs(os.path.join(m.point, "two", "Virtual Machines"))
        for export in (folder, "gateway"):
            configs = os.path.join(export, "Virtual Machines")
            for name in os.listdir(configs):
                if name.endswith(".xml"):
                    shutil.copyfile(os.path.join(configs, name),
                                    os.path.join(m.point, "two", "Virtual Machines", name))
        wait_state(m.point, "two", ("waiting",))
        result = call("status", m.point)
        assert result.returncode == 1 and re.search(r"^  two +waiting ", result.stdout, re.M), \
            result
        assert "vm = GUID" in result.stdout, result
        # Still arriving (a file open for writing): copying, the last check's advice gone.
        with open(os.path.join(m.point, "two", "more.bin"), "wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            shown = ok("status", m.point).stdout
            assert re.search(r"^  two +copying ", shown, re.M), shown
            assert "error" not in shown and "vm = GUID" not in shown, shown
            assert entry(m.point, "two")["errors"] == [], status(m.point)
            began = time.time()
            result = call("status", "--wait", "--timeout", "1.5", m.point)
            took = time.time() - began
            assert result.returncode == 1 and 1.4 < took < 10, (took, result)
            assert "impex: 1 import is still copying or registering after 1.5 seconds" in \
                result.stderr, result
            assert re.search(r"^  two +copying ", result.stdout, re.M), result
        shutil.rmtree(os.path.join(m.point, "two"))
        # A copy made by hand, file by file, then waited for at once: registered, exit 0.
        copy_files(folder, os.path.join(m.point, "one"))
        result = call("status", "--wait", "--timeout", "60", m.point)
        assert result.returncode == 0, result
        assert entry(m.point, "one")["state"] == "registered", status(m.point)
        assert re.search(r"^  one +registered ", result.stdout, re.M), result
    # A failed import: exit 1, with --wait or without.
    with small_store(size="1m") as small:
        with Mount(small, "mnt", "-o", "import") as m:
            os.mkdir(os.path.join(m.point, "big"))
            try:
                write(os.path.join(m.point, "big", "disk.vhd"), "x" * (4 << 20))
                raise AssertionError("4 MiB written to a 1 MiB file system")
            except OSError:
                pass
            wait_state(m.point, "big", ("failed",))
            for args in ([], ["--wait"]):
                result = call("status", *args, m.point)
                assert result.returncode == 1, (args, result)
                assert re.search(r"^  big +failed ", result.stdout, re.M), result


if __name__ == "__main__":
    private_mounts()
    run_tests(globals())
