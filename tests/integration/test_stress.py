"""The daemons' threads under load, on real mounts: a registered import whose
attributes are read and changed from many threads at once, and an export
mount whose tree is planned again and swapped while readers read it. Each
runs for about ten seconds and ends with the daemon exiting 0 with no
sanitizer report (the suite runs under AddressSanitizer and ThreadSanitizer
builds alike: tools/test.sh).
"""

import ctypes
import errno
import hashlib
import os
import random
import shutil
import stat
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree

from impexlib import as_json, need, new_store, ok, vm_new
from taplib import run, run_tests
from test_import import files_of_vm
from test_import_mount import status, wait_state
from test_mount import Mount, files_of
from test_mount_snapshots import wait_for

SECONDS = 10  # of load in each test

FILE_MODES = (0o644, 0o640, 0o600, 0o444)
FOLDER_MODES = (0o755, 0o750, 0o700, 0o555)
# Times the writers give, atime and mtime alike: a stat that sees them differ saw half a change.
TIMES = [1500000000 * 10**9 + k * 1000001 for k in range(64)]

LIBC = ctypes.CDLL(None, use_errno=True)
AT_SYMLINK_NOFOLLOW, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS = 0x100, 0x2000, 0x7ff


class Synced:
    """What statx(2) with AT_STATX_FORCE_SYNC tells of a file: the daemon's answer to this
    very call, not the attributes the kernel keeps. The kernel fills a cached stat without
    a lock while it stores a change's times one after the other, so a stat racing a
    utimensat may show half of it on any Linux file system (ext4 and tmpfs alike); only
    an answer that comes whole from the daemon tells whether the daemon gave half a change."""

    def __init__(self, path):
        buf = ctypes.create_string_buffer(256)
        if LIBC.statx(-100, os.fsencode(path), AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC,
                      STATX_BASIC_STATS, buf) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        word = lambda fmt, at: int.from_bytes(buf.raw[at:at + fmt], "little")
        self.st_nlink, self.st_uid, self.st_gid = word(4, 16), word(4, 20), word(4, 24)
        self.st_mode, self.st_size = word(2, 28), word(8, 40)
        self.st_atime_ns = word(8, 64) * 10**9 + word(4, 72)
        self.st_mtime_ns = word(8, 112) * 10**9 + word(4, 120)


def small_vm(store, name, disks=("ide:8M", "scsi:4M")):
    """A VM of @disks with data in them and a snapshot: its GUID."""
    args = []
    for disk in disks:
        args += ["--disk", disk]
    guid = vm_new(store, *args, name)
    with open("data", "wb") as f:
        f.write(random.Random(name).randbytes(65536))
    ok("vm", "write", "--store", store, guid, "0", "4096", "data")
    ok("vm", "snapshot", "--store", store, guid, "s1")
    ok("vm", "write", "--store", store, guid, str(len(disks) - 1), "0", "data")
    return guid


class Load:
    """Workers that run until stopped; each failure is kept, with its worker's name."""

    def __init__(self):
        self.stop = threading.Event()
        self.failures = []
        self.counts = {}
        self.lock = threading.Lock()
        self.threads = []

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def fail(self, who, text):
        with self.lock:
            if len(self.failures) < 20:
                self.failures.append("%s: %s" % (who, text))

    def start(self, name, body, *args):
        def loop():
            try:
                while not self.stop.is_set():
                    body(*args)
            except Exception as e:  # reported by finish()
                self.fail(name, repr(e))

        thread = threading.Thread(target=loop, name=name)
        thread.start()
        self.threads.append(thread)

    def finish(self, seconds, enough=lambda counts: True):
        """Stop the workers after @seconds, or later (a minute at most) while the counts
        are not @enough: a slow build does as much as a fast one."""
        self.stop.wait(seconds)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.lock:
                if enough(self.counts):
                    break
            time.sleep(0.1)
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "%s hangs" % thread.name
        assert not self.failures, "\n".join(self.failures)


# ---- a registered import: getattr, chmod and utimens at once ----

def attributes(st):
    return (stat.S_IFMT(st.st_mode), st.st_size, st.st_nlink, st.st_uid, st.st_gid)


def check_stat(load, path, st, first, since=0):
    """@st of @path is one a writer could have left: kind, size, links and owner as
    first seen, a mode some writer gave (or the first), times set together (each one a
    writer gave, on or after @since, when @st is not a Synced answer: see there)."""
    kind, size, nlink, uid, gid = attributes(first)
    if attributes(st) != (kind, size, nlink, uid, gid):
        load.fail("stat", "%s: %r, first %r" % (path, attributes(st), attributes(first)))
    modes = FOLDER_MODES if stat.S_ISDIR(st.st_mode) else FILE_MODES
    if stat.S_IMODE(st.st_mode) not in modes + (stat.S_IMODE(first.st_mode),):
        load.fail("stat", "%s: mode %o" % (path, stat.S_IMODE(st.st_mode)))
    torn = st.st_atime_ns != st.st_mtime_ns and \
        (st.st_atime_ns, st.st_mtime_ns) != (first.st_atime_ns, first.st_mtime_ns)
    if isinstance(st, Synced):
        if torn:
            load.fail("stat", "%s: atime %d, mtime %d: half a change" % (
                path, st.st_atime_ns, st.st_mtime_ns))
        load.count("stat, synced")
    else:
        for t in st.st_atime_ns, st.st_mtime_ns:
            if t not in TIMES and t not in (first.st_atime_ns, first.st_mtime_ns) and t < since:
                load.fail("stat", "%s: time %d, which no writer gave" % (path, t))
        if torn:
            load.count("stat, kernel's times apart")
    load.count("stat")


def test_attributes_of_a_registered_import_under_load():
    need("fusermount3", "ls")
    source = new_store("source")
    small_vm(source, "small")
    ok("export", "--store", source, "small", "gold")
    target = new_store("target")
    with Mount(target, "mnt", "-o", "import") as m:
        run(["cp", "-r", "gold", os.path.join(m.point, "small")])
        imp = wait_state(m.point, "small")
        assert imp["errors"] == [], imp
        top = os.path.join(m.point, "small")
        paths = [top] + [os.path.join(folder, name) for folder, dirs, files in os.walk(top)
                         for name in dirs + files]
        files = [p for p in paths if os.path.isfile(p)]
        first = {p: os.lstat(p) for p in paths}
        assert len(files) >= 4 and len(paths) > len(files), paths
        vm = as_json(ok("vm", "show", "--json", "--store", target, imp["vm"]["id"]))
        stored = {p: os.lstat(p) for p in files_of_vm(vm)}
        load = Load()
        since = time.time_ns()

        def stats(rng):
            path = rng.choice(paths)
            st = Synced(path) if rng.random() < 0.5 else os.lstat(path)
            check_stat(load, path, st, first[path], since)

        def walks():
            for folder, dirs, names in os.walk(top):
                for name in dirs + names:
                    path = os.path.join(folder, name)
                    check_stat(load, path, os.lstat(path), first[path], since)
            load.count("walk")

        def listings():
            out = run(["ls", "-lR", top]).stdout
            shown = sum(1 for line in out.splitlines() if line[:1] in ("-", "d"))
            if shown != len(paths) - 1:
                load.fail("ls -lR", "%d entries, want %d:\n%s" % (shown, len(paths) - 1, out))
            load.count("ls -lR")

        def opened(rng):
            # The attributes of an open file (getattr with its handle), changed through it.
            path = rng.choice(files)
            fd = os.open(path, os.O_RDONLY)
            try:
                for _ in range(8):
                    check_stat(load, path, os.fstat(fd), first[path], since)
                    os.fchmod(fd, rng.choice(FILE_MODES))
                    t = rng.choice(TIMES)
                    os.utime(fd, ns=(t, t))
                    load.count("fchmod+futimens")
            finally:
                os.close(fd)

        def chmods(rng):
            path = rng.choice(paths)
            os.chmod(path, rng.choice(FOLDER_MODES if os.path.isdir(path) else FILE_MODES))
            load.count("chmod")

        def utimes(rng):
            path = rng.choice(paths)
            if rng.random() < 0.1:
                os.utime(path)  # now, for both
            else:
                t = rng.choice(TIMES)
                os.utime(path, ns=(t, t))
            load.count("utimens")

        def chowns(rng):
            path = rng.choice(paths)
            os.chown(path, first[path].st_uid, first[path].st_gid)
            load.count("chown")

        def refusals(rng):
            # What a registered import refuses, and how.
            path = rng.choice(files)
            for attempt in (lambda: os.truncate(path, 0),
                            lambda: os.close(os.open(path, os.O_WRONLY)),
                            lambda: os.mkdir(os.path.join(top, "more"))):
                try:
                    attempt()
                    load.fail("refusals", "%s: a registered import took a change" % path)
                except OSError as e:
                    if e.errno != errno.EROFS:
                        load.fail("refusals", "%s: %r, want EROFS" % (path, e))
            load.count("refused")

        for i in range(2):
            load.start("stat-%d" % i, stats, random.Random(i))
        load.start("walk", walks)
        load.start("ls -lR", listings)
        load.start("open", opened, random.Random(10))
        for i in range(2):
            load.start("chmod-%d" % i, chmods, random.Random(20 + i))
            load.start("utimens-%d" % i, utimes, random.Random(30 + i))
        load.start("chown", chowns, random.Random(40))
        load.start("refusals", refusals, random.Random(50))
        load.finish(SECONDS)
        for what in ("stat", "stat, synced", "walk", "ls -lR", "chmod", "utimens", "fchmod+futimens"):
            assert load.counts.get(what, 0) > 0, load.counts
        print("# %s" % ", ".join("%s %d" % kv for kv in sorted(load.counts.items())))
        # Last changes, one at a time: each shows as it was made.
        for i, path in enumerate(paths):
            mode = (FOLDER_MODES if os.path.isdir(path) else FILE_MODES)[i % 4]
            os.chmod(path, mode)
            os.utime(path, ns=(TIMES[i % 64], TIMES[i % 64]))
        for i, path in enumerate(paths):
            st = os.lstat(path)
            mode = (FOLDER_MODES if os.path.isdir(path) else FILE_MODES)[i % 4]
            assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_atime_ns) == \
                (mode, TIMES[i % 64], TIMES[i % 64]), (path, st)
            assert attributes(st) == attributes(first[path]), (path, st, first[path])
        imp = status(m.point)["imports"][0]
        assert imp["state"] == "registered" and imp["errors"] == [], imp
    # The view took the changes; the store's files did not.
    for path, st in stored.items():
        now = os.lstat(path)
        assert (now.st_mode, now.st_mtime_ns, now.st_size) == \
            (st.st_mode, st.st_mtime_ns, st.st_size), (path, st, now)


# ---- an export mount: trees swapped under readers ----

def sha_of(path, chunk):
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while True:
            data = f.read(chunk)
            if not data:
                return h.hexdigest()
            h.update(data)


# What a reader may be told while the tree changes under it: the file is gone or changed.
CLEAN = (errno.EIO, errno.ENOENT)


def whole_and_sound(path, data):
    """Whether @data, all of @path as read, is a file of its kind: a VHD with its
    footer (and, dynamic, its copy at the start), a configuration that parses."""
    if path.endswith((".vhd", ".avhd")):
        return len(data) >= 512 and data[-512:-504] == b"conectix" and \
            (len(data) == 512 or data[:8] == b"conectix" or
             int.from_bytes(data[-512 + 60:-512 + 64], "big") == 2)
    if path.endswith(".xml"):
        try:
            ElementTree.fromstring(data)
        except ElementTree.ParseError:
            return False
    return True


def test_tree_swaps_under_readers():
    need("fusermount3")
    store = new_store("store")
    small_vm(store, "steady")
    ok("export", "--store", store, "steady", "exported")
    want = files_of("exported")
    with Mount(store, "mnt", "-o", "revalidate=1") as m:
        steady = os.path.join(m.point, "vms", "steady")
        assert files_of(steady) == want, "the mount and impex export differ"
        # The same VM's merged snapshot and raw images: as read before the changes.
        for extra in ("snapshots", "raw"):
            for rel, sha in files_of(os.path.join(m.point, extra, "steady")).items():
                want[os.path.join("..", "..", extra, "steady", rel)] = sha
        steady_files = sorted(want)
        vms = os.path.join(m.point, "vms")
        load = Load()
        seen_churn = set()

        def read_steady(rng):
            rel = rng.choice(steady_files)
            try:
                got = sha_of(os.path.join(steady, rel), rng.choice((4096, 65536, 1 << 20)))
            except OSError as e:
                if e.errno not in CLEAN:
                    load.fail("steady", "%s: %r" % (rel, e))
                load.count("steady: %s" % errno.errorcode[e.errno])
                return
            if got != want[rel]:
                load.fail("steady", "%s: other bytes than impex export's" % rel)
            load.count("steady reads")

        def hold_steady(rng):
            # One file held open across several swaps, read slowly: the bytes it opened.
            rel = rng.choice(steady_files)
            h = hashlib.sha256()
            try:
                with open(os.path.join(steady, rel), "rb", buffering=0) as f:
                    while not load.stop.is_set():
                        data = f.read(16384)
                        if not data:
                            break
                        h.update(data)
                        time.sleep(0.02)
                    else:
                        return
            except OSError as e:
                if e.errno not in CLEAN:
                    load.fail("held", "%s: %r" % (rel, e))
                load.count("held: %s" % errno.errorcode[e.errno])
                return
            if h.hexdigest() != want[rel]:
                load.fail("held", "%s: other bytes than impex export's" % rel)
            load.count("held reads")

        def read_churn(rng):
            # The VMs that come and go: whole and sound, or a clean error.
            try:
                names = [n for n in os.listdir(vms) if n != "steady"]
            except OSError as e:
                load.fail("churn", "vms/: %r" % e)
                return
            if not names:
                time.sleep(0.05)
                return
            name = rng.choice(names)
            seen_churn.add(name)
            try:
                for folder, _, files in os.walk(os.path.join(vms, name)):
                    for file in files:
                        path = os.path.join(folder, file)
                        with open(path, "rb", buffering=0) as f:
                            size = os.fstat(f.fileno()).st_size
                            data = f.read()
                        if len(data) != size or not whole_and_sound(path, data):
                            load.fail("churn", "%s: %d bytes read of %d, not a whole %s" % (
                                path, len(data), size, "VHD" if path.endswith("hd") else
                                "configuration"))
                        load.count("churn reads")
            except OSError as e:
                if e.errno not in CLEAN:
                    load.fail("churn", "%s: %r" % (name, e))
                load.count("churn: %s" % errno.errorcode[e.errno])

        made = []

        def change_store(rng):
            # A VM made, written to (a source changed under its readers), every other one
            # deleted: each a new tree.
            name = "churn-%d" % len(made)
            made.append(name)
            for step in (lambda: vm_new(store, "--disk", "ide:4M", name),
                         lambda: ok("vm", "write", "--store", store, name, "0", "0", "data"),
                         lambda: len(made) % 2 and ok("vm", "delete", "--store", store,
                                                      "--disks", name)):
                step()
                load.count("store changes")
                time.sleep(rng.uniform(0.2, 0.6))

        for i in range(3):
            load.start("steady-%d" % i, read_steady, random.Random(i))
        load.start("held", hold_steady, random.Random(5))
        for i in range(2):
            load.start("churn-%d" % i, read_churn, random.Random(10 + i))
        load.start("store", change_store, random.Random(20))
        load.finish(SECONDS, lambda counts: counts.get("store changes", 0) >= 6)
        print("# %s" % ", ".join("%s %d" % kv for kv in sorted(load.counts.items())))
        assert load.counts.get("steady reads", 0) > 0 and load.counts.get("churn reads", 0) > 0, \
            load.counts
        assert seen_churn, "no VM made was ever seen"
        # Once quiet, the tree is the store's: the VMs left, the steady one as it was.
        left = {vm["name"] for vm in as_json(ok("vm", "list", "--json", "--store", store))}
        assert wait_for(lambda: set(os.listdir(vms)) == left, 30), (os.listdir(vms), left)
        for rel in steady_files:
            assert sha_of(os.path.join(steady, rel), 1 << 20) == want[rel], rel


if __name__ == "__main__":
    # meson's TAP protocol takes "1..0 # SKIP" with exit 0 as a skip (77 would be an error).
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("1..0 # SKIP no /dev/fuse or no fusermount3")
        sys.exit(0)
    run_tests(globals())
