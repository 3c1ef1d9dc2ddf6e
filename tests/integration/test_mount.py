"""The export mount, mounted for real: impexfs serves a store made by
`impex demo`; `cp -r` and `rsync -a` copy VM folders out of it, and the
copies must hold the same bytes as `impex export` writes; qemu-img and
vhdiinfo read the disks through the mount. Every mount is unmounted with
fusermount3 -u, also when a test fails, and the daemon must exit 0.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

from impexlib import DISKS, SNAPSHOTS, VMS, as_json, digest, need, new_store, ok
from taplib import run, run_tests, sanitizer_report

IMPEXFS = os.environ.get("IMPEXFS", "impexfs")


def files_of(top):
    """Relative path -> sha256 of every file under @top (times left aside: cp -r sets its own)."""
    out = {}
    for folder, _, files in os.walk(top):
        for name in files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, top)] = digest(path)
    return out


class Mount:
    """impexfs STORE MOUNTPOINT in the foreground, ready when entered."""

    def __init__(self, store, point, *options):
        self.point = os.path.realpath(point)
        os.makedirs(self.point, exist_ok=True)
        self.proc = subprocess.Popen([IMPEXFS, "-f", *options, store, self.point],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Its output is read as it comes: a daemon that logs much (a sanitizer's report, a
        # message per failed open under load) must not fill the pipe and block in write(2).
        self.output = {"stdout": [], "stderr": []}
        self.drains = [threading.Thread(target=self._drain, args=(name,), daemon=True)
                       for name in self.output]
        for drain in self.drains:
            drain.start()
        deadline = time.time() + 30
        while not os.path.ismount(self.point):
            if self.proc.poll() is not None or time.time() > deadline:
                self.unmount()
                raise AssertionError("impexfs did not mount: %s" % self.stderr())
            time.sleep(0.05)

    def _drain(self, name):
        for line in getattr(self.proc, name):
            self.output[name].append(line)

    def stderr(self):
        """What the daemon wrote to its standard error so far."""
        return "".join(self.output["stderr"])

    def said(self, text, timeout=10):
        """Whether the daemon writes @text to its standard error within @timeout seconds:
        it logs before it replies, but the line reaches this process through a pipe and
        a reading thread, after the reply."""
        end = time.monotonic() + timeout
        while text not in self.stderr():
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def unmount(self):
        """Unmount, and check that the daemon exits 0 with no sanitizer report."""
        if os.path.ismount(self.point):
            subprocess.run(["fusermount3", "-u", self.point], check=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # ours, by its id
            self.proc.wait()
            # The dead daemon's mount goes too ("Transport endpoint is not connected").
            subprocess.run(["fusermount3", "-u", "-z", self.point], check=False)
            raise AssertionError("impexfs did not exit after fusermount3 -u: %s" %
                                 shorten(self.stderr()))
        for drain in self.drains:
            drain.join(timeout=30)
        err = self.stderr()
        rc = self.proc.returncode
        assert rc == 0, "impexfs exited %d: %s" % (rc, shorten(err))
        if sanitizer_report(err):
            # From the report on: a long log before it must not hide it.
            at = min(i for i in (err.find("Sanitizer"), err.find("runtime error")) if i >= 0)
            raise AssertionError(shorten(err[max(0, at - 200):]))

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        self.unmount()


def shorten(text):
    return text if len(text) < 6000 else text[:5000] + "\n[...]\n" + text[-1000:]


def demo():
    ok("demo", "store")
    return os.path.realpath("store")


def test_copies_equal_impex_export():
    need("fusermount3", "rsync")
    store = demo()
    ok("export", "--store", store, "blog", "exported")
    with Mount(store, "mnt") as m:
        assert sorted(os.listdir(m.point)) == ["by-id", "raw", "snapshots", "vms"]
        assert sorted(os.listdir(os.path.join(m.point, "vms"))) == ["blog", "db", "gateway"]
        shutil.copytree(os.path.join(m.point, "vms", "blog"), "by-python")
        run(["cp", "-r", os.path.join(m.point, "vms", "blog"), "by-cp"])
        run(["rsync", "-a", os.path.join(m.point, "vms", "blog") + "/", "by-rsync/"])
        want = files_of("exported")
        for copy in ("by-cp", "by-rsync", "by-python"):
            assert files_of(copy) == want, copy
        # Sizes and times are exact before any read.
        for rel in want:
            st = os.stat(os.path.join(m.point, "vms", "blog", rel))
            assert st.st_size == os.path.getsize(os.path.join("exported", rel)), rel
            assert st.st_mtime_ns == os.stat(os.path.join("exported", rel)).st_mtime_ns, rel
    # rsync -a kept the times: a second run has nothing to copy.
    with Mount(store, "mnt"):
        out = run(["rsync", "-a", "--itemize-changes", os.path.join("mnt", "vms", "blog") + "/",
                   "by-rsync/"]).stdout
        assert out.strip() == "", out


def test_reference_tools_read_through_the_mount():
    need("fusermount3", "qemu-img", "vhdiinfo")
    store = demo()
    with Mount(store, "mnt") as m:
        folder = os.path.join(m.point, "vms", "blog", DISKS)
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            run(["qemu-img", "info", "-f", "vpc", path])
            if name.endswith(".avhd"):
                info = run(["vhdiinfo", path]).stdout
                assert "Parent filename" in info, info
        # The mounted folder reads as a store.
        shown = as_json(ok("vm", "show", "--json", "--store", os.path.join(m.point, "vms", "blog"),
                           "blog"))
        assert all(d["chain_problem"] is None for d in shown["disks"]), shown


def holes(path):
    """The data runs of @path as lseek's SEEK_DATA and SEEK_HOLE give them."""
    runs, fd = [], os.open(path, os.O_RDONLY)
    try:
        size, at = os.fstat(fd).st_size, 0
        while at < size:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            runs.append((start, end))
            at = end
    finally:
        os.close(fd)
    return runs


def test_holes_and_allocation():
    need("fusermount3")
    store = demo()
    with Mount(store, "mnt") as m:
        folder = os.path.join(m.point, "vms", "blog", DISKS)
        base = os.path.join(folder, "blog.vhd")
        source = os.path.join(store, DISKS, "blog.vhd")
        # A base disk is served as it is: its holes and allocation are the source's.
        assert os.stat(base).st_blocks == os.stat(source).st_blocks
        assert holes(base) == holes(source) and len(holes(base)) > 1, holes(base)
        # cp skips the holes: the copy is as sparse as the source.
        run(["cp", base, "copy.vhd"])
        assert digest("copy.vhd") == digest(source)
        assert os.stat("copy.vhd").st_blocks <= os.stat(source).st_blocks + 64, \
            (os.stat("copy.vhd").st_blocks, os.stat(source).st_blocks)
        # A relocated differencing disk: the same data runs as its source.
        for name in os.listdir(folder):
            if name.endswith(".avhd"):
                assert holes(os.path.join(folder, name)) == \
                    holes(os.path.join(store, DISKS, name)), name


def test_read_only():
    need("fusermount3")
    store = demo()
    with Mount(store, "mnt") as m:
        vm = os.path.join(m.point, "vms", "gateway", VMS)
        config = [n for n in os.listdir(vm) if n.endswith(".xml")][0]
        for attempt in (lambda: open(os.path.join(vm, config), "r+b"),
                        lambda: open(os.path.join(vm, "new.txt"), "w"),
                        lambda: os.mkdir(os.path.join(vm, "folder"))):
            try:
                attempt()
            except OSError:
                continue
            raise AssertionError("the mount took a write")


def test_unmount_right_after_mounting():
    """A script may unmount as soon as impexfs has returned: the daemon sends its mount
    no request of its own (one in flight keeps the mount busy: EBUSY), and raises the
    mount's readahead at the first lookup all the same."""
    need("fusermount3")
    store = demo()
    point = os.path.realpath("mnt")
    os.mkdir(point)
    for attempt in range(1, 21):
        run([IMPEXFS, store, point])
        result = run(["fusermount3", "-u", point], check=False)
        if result.returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", point], check=False)
            raise AssertionError("unmount %d right after mounting: %r" % (attempt, result))
    if os.geteuid() != 0:
        return  # the readahead is raised by root only
    run([IMPEXFS, store, point])
    try:
        assert "blog" in os.listdir(os.path.join(point, "vms"))
        device = os.stat(point).st_dev
        with open("/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(device),
                                                          os.minor(device))) as f:
            assert f.read().strip() == "1024", "the readahead was not raised"
    finally:
        run(["fusermount3", "-u", point])


def folder_times(top):
    """Relative path ("." for @top) -> mtime (ns) of each folder under @top, and what each
    should have by the rule: the newest time of what it holds, or None when it holds nothing."""
    shown, rule = {}, {}
    for folder, dirs, files in os.walk(top):
        rel = os.path.relpath(folder, top)
        shown[rel] = os.stat(folder).st_mtime_ns
        times = [os.lstat(os.path.join(folder, n)).st_mtime_ns for n in dirs + files]
        rule[rel] = max(times) if times else None
    return shown, rule


def test_folder_times_come_from_their_sources():
    """Every folder of the export mount (and of impex export) has the newest time of what it
    holds, an empty one its VM's configuration's (a snapshot's export: the snapshot's), and
    the top folders of an empty store the store folder's: never 1970, which cp -a and rsync -a
    would copy into a backup."""
    need("fusermount3", "rsync")
    store = demo()
    vm_new_bare = ok("vm", "new", "--store", store, "bare").stdout.split()[0]
    show = {vm: as_json(ok("vm", "show", "--json", "--store", store, vm))
            for vm in ("gateway", "bare", "blog")}
    snapshot = [s for s in show["blog"]["snapshots"] if s["name"] == "version 2"][0]
    assert show["bare"]["id"] == vm_new_bare and not show["bare"]["disks"], show["bare"]
    # Every file of the store an old time of its own. rsync (3.5.0 here) leaves a folder's
    # time alone when it already matches to the second, and the copies below are made
    # within a second of a store made just now: a folder made then would keep its own time.
    for i, path in enumerate(sorted(os.path.join(d, n) for d, _, names in os.walk(store)
                                    for n in names)):
        t = (1200000000 + i * 3600) * 10**9 + 987654321
        os.utime(path, ns=(t, t), follow_symlinks=False)
    # Each configuration an old time of its own (with nanoseconds): an empty folder's time
    # tells whose it took, and is no folder's newest by chance.
    configs = {"gateway": show["gateway"]["config"], "bare": show["bare"]["config"],
               "version 2": snapshot["config"]}
    when = {}
    for i, (name, path) in enumerate(sorted(configs.items())):
        when[name] = (1000000000 + i * 86400) * 10**9 + 123456789
        os.utime(path, ns=(when[name], when[name]))
    # The folders that hold nothing, and whose configuration dates each.
    empty = {("vms/gateway", SNAPSHOTS): "gateway", ("vms/bare", SNAPSHOTS): "bare",
             ("vms/bare", DISKS): "bare", ("raw/bare", "current"): "bare",
             ("snapshots/blog/version 2", SNAPSHOTS): "version 2"}
    exports = sorted({top for top, _ in empty})
    copies = {}
    with Mount(store, "mnt") as m:
        for top in exports:
            shown, rule = folder_times(os.path.join(m.point, top))
            for rel, t in shown.items():
                dated_by = empty.get((top, rel))
                want = when[dated_by] if dated_by else rule[rel]
                assert want is not None, "%s/%s holds nothing and is not expected to" % (top, rel)
                assert t == want, "%s/%s: %d, not %d" % (top, rel, t, want)
                assert t > 10**9 * 10**9, "%s/%s dated %d" % (top, rel, t)
            copies[top] = shown
            # The copies keep them.
            for tool in (["cp", "-a"], ["rsync", "-a"]):
                dest = os.path.realpath("copy-%s-%s" % (tool[0], top.replace("/", "-")))
                run(tool + [os.path.join(m.point, top) + ("/" if tool[0] == "rsync" else ""),
                            dest])
                assert folder_times(dest)[0] == shown, "%s of %s: %s, not %s" % (
                    " ".join(tool), top, folder_times(dest)[0], shown)
    # impex export writes the same times.
    ok("export", "--store", store, "gateway", "exported")
    assert folder_times("exported")[0] == copies["vms/gateway"], folder_times("exported")[0]
    ok("export", "--store", store, "blog/version 2", "exported-snapshot")
    assert folder_times("exported-snapshot")[0] == copies["snapshots/blog/version 2"]
    # A store of no VMs: the root and the top folders have the store folder's time.
    bare_store = new_store("none")
    os.utime(bare_store, ns=(when["bare"] + 7, when["bare"] + 7))
    with Mount(bare_store, "mnt-none") as m:
        for rel in (".", "vms", "snapshots", "raw", "by-id"):
            t = os.stat(os.path.join(m.point, rel)).st_mtime_ns
            assert t == when["bare"] + 7, "%s of an empty store: %d" % (rel, t)


def mounted_at(point):
    """Whether /proc/mounts lists a mount at @point (its blanks and backslashes octal-escaped)."""
    with open("/proc/mounts") as f:
        return any(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[1])
                   == point for line in f)


def test_a_folder_that_is_not_a_store_is_not_mounted():
    os.mkdir("empty")
    os.makedirs("disks-only/Virtual Hard Disks")
    point = os.path.realpath("mnt")
    os.mkdir(point)
    for source in ("/etc", "empty", "disks-only"):
        for foreground in ([], ["-f"], ["-o", "import"], ["-f", "-o", "import"]):
            try:
                proc = subprocess.run([IMPEXFS] + foreground + [source, point],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      timeout=60)
            finally:
                mounted = mounted_at(point)
                if mounted:
                    subprocess.run(["fusermount3", "-u", point], check=False)
            what = "impexfs %s%s MOUNTPOINT" % ("".join(w + " " for w in foreground), source)
            assert not mounted, "%s mounted" % what
            assert not sanitizer_report(proc.stderr), proc.stderr
            assert proc.returncode == 1, "%s: exit %d: %r" % (what, proc.returncode, proc.stderr)
            want = "impexfs: '%s' is not a Hyper-V store: no 'Virtual Machines' folder\n" % \
                os.path.realpath(source)
            assert proc.stderr == want, "%s said %r, want %r" % (what, proc.stderr, want)
            assert os.listdir(point) == [], "%s left %r" % (what, os.listdir(point))
    assert os.listdir("empty") == [] and os.listdir("disks-only") == [DISKS]
    # Made a store by impex store init, it mounts, and shows no VM.
    ok("store", "init", "empty")
    with Mount("empty", "mnt") as m:
        assert sorted(os.listdir(m.point)) == ["by-id", "raw", "snapshots", "vms"], \
            os.listdir(m.point)
        assert os.listdir(os.path.join(m.point, "vms")) == []


if __name__ == "__main__":
    if not os.path.exists("/dev/fuse"):
        print("1..0 # SKIP no /dev/fuse")
        sys.exit(0)
    run_tests(globals())
