"""The export mount under real I/O: cp -a, parallel readers, an unmount while
files are being read, holes left unread, allow_other, a read-only store and
atime, stable inode numbers. Every test mounts the real impexfs daemon
(IMPEXFS) over a store made by impex (IMPEX); every mount is unmounted with
fusermount3 -u in a finally block and the daemon must exit 0 without a
sanitizer report. Only the whole file is skipped, when /dev/fuse or
fusermount3 is missing.
"""

import contextlib
import hashlib
import os
import pwd
import random
import shutil
import stat
import subprocess
import sys
import threading
import time

from impexlib import DISKS, SNAPSHOTS, VMS, digest, new_store, ok, vm_new
from taplib import run, run_tests
from test_mount import Mount, demo, files_of

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


# ---- helpers ----

def mounted(point):
    """Whether /proc/self/mountinfo lists a mount at @point (our paths have no spaces)."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == point for line in f)


def walk(top):
    """Relative path -> os.lstat of everything under @top, @top itself as "."."""
    out = {".": os.lstat(top)}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, top)] = os.lstat(path)
    return out


def sha_of(path, flags=0, chunk=1 << 20):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        while True:
            data = os.read(fd, chunk)
            if not data:
                break
            h.update(data)
    finally:
        os.close(fd)
    return h.hexdigest()


def io_counter(pid, name):
    """A counter of /proc/@pid/io: rchar, the bytes the process has read
    with read(2) and its kin so far, or wchar, those written."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/io" % (name, pid))


def rchar(pid):
    return io_counter(pid, "rchar")


def store_state(top):
    """Relative path -> (mode, size, mtime, ctime, sha256 of a file) of
    everything under @top (like impexlib.tree_state, with ctime, hashing
    big files in pieces)."""
    state = {}
    for rel, st in walk(top).items():
        path = os.path.join(top, rel)
        state[rel] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                      sha_of(path) if stat.S_ISREG(st.st_mode) else None)
    return state


def tree_paths(top, folders):
    """Every file and folder under @top's @folders, and those folders."""
    paths = []
    for sub in folders:
        for folder, _, files in os.walk(os.path.join(top, sub)):
            paths += [folder] + [os.path.join(folder, n) for n in files]
    return paths


def atimes(top, paths):
    """Relative path -> st_atime_ns of each of @paths (stat leaves atimes alone; listing a
    folder, under strictatime, does not: hence a list made beforehand)."""
    return {os.path.relpath(p, top): os.stat(p).st_atime_ns for p in paths}


@contextlib.contextmanager
def bind_mount(source, point, flags):
    """mount --bind @source @point, then remount it with @flags; umount at the end."""
    os.makedirs(point, exist_ok=True)
    point = os.path.realpath(point)
    run(["mount", "--bind", source, point])
    try:
        run(["mount", "-o", "remount,bind," + flags, point])
        yield point
    finally:
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)
            raise AssertionError("the bind mount %s was busy" % point)


def as_nobody(*args):
    return run(NOBODY + list(args), check=False)


# ---- 1. cp -a ----

def test_cp_a_keeps_bytes_times_and_holes():
    store = demo()
    vms = ["blog", "db", "gateway"]
    for vm in vms:
        ok("export", "--store", store, vm, "exported-" + vm)
    with Mount(store, "mnt") as m:
        for vm in vms:
            source = os.path.join(m.point, "vms", vm)
            run(["cp", "-a", source, "copy-" + vm])
            assert files_of("copy-" + vm) == files_of("exported-" + vm), vm
            shown, copied = walk(source), walk("copy-" + vm)
            assert sorted(shown) == sorted(copied), (vm, sorted(shown), sorted(copied))
            sparse = 0
            for rel, st in shown.items():
                got = copied[rel]
                assert got.st_mtime_ns == st.st_mtime_ns, \
                    "%s/%s: the copy's mtime %d, the mount's %d" % (
                        vm, rel, got.st_mtime_ns, st.st_mtime_ns)
                if not os.path.isfile(os.path.join(source, rel)):
                    continue
                assert got.st_size == st.st_size, (vm, rel)
                if st.st_blocks * 512 < st.st_size:
                    sparse += 1
                    # A sparse source gives a sparse copy, no bigger than the source.
                    assert got.st_blocks * 512 < got.st_size and \
                        got.st_blocks <= st.st_blocks + 64, \
                        "%s/%s: size %d, mount st_blocks %d, copy st_blocks %d" % (
                            vm, rel, st.st_size, st.st_blocks, got.st_blocks)
            assert sparse > 0, "%s: no sparse file to check" % vm


# ---- 2. parallel readers ----

def read_whole(path, size, chunk, order, direct):
    """sha256 of @path read in @chunk-byte requests, in @order ("forward",
    "reverse", "shuffled"), with O_DIRECT when @direct (every request then
    reaches the daemon at its own size and offset)."""
    offsets = list(range(0, size, chunk))
    if order == "reverse":
        offsets.reverse()
    elif order == "shuffled":
        random.Random(chunk).shuffle(offsets)
    out = bytearray(size)
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    try:
        for off in offsets:
            want = min(chunk, size - off)
            got = 0
            while got < want:
                data = os.pread(fd, want - got, off + got)
                if not data:
                    raise AssertionError("%s: end of file at %d of %d" % (path, off + got, size))
                out[off + got:off + got + len(data)] = data
                got += len(data)
    finally:
        os.close(fd)
    return hashlib.sha256(out).hexdigest()


READERS = [  # request size, order, O_DIRECT
    (1 << 20, "forward", False),
    (128 * 1024 + 512, "reverse", False),
    (4096, "shuffled", True),
    (65537, "forward", True),
]


def test_parallel_readers_agree():
    store = demo()
    ok("export", "--store", store, "blog", "exported")
    ok("export", "--store", store, "blog/version 2", "exported-snapshot")
    with Mount(store, "mnt") as m:
        folder = os.path.join(m.point, "vms", "blog", DISKS)
        # The base disk, served as it is, the biggest relocated differencing disk, a
        # snapshot's disk merged from its 4-level chain, and its raw image.
        avhd = max((n for n in os.listdir(folder) if n.endswith(".avhd")),
                   key=lambda n: os.path.getsize(os.path.join(folder, n)))
        merged = os.path.join(m.point, "snapshots", "blog", "version 2", DISKS, "blog.vhd")
        raw = os.path.join(m.point, "raw", "blog", "version 2", "blog.img")
        # The raw image holds the merged VHD's content, as qemu-img converts it.
        exported_merged = os.path.join("exported-snapshot", DISKS, "blog.vhd")
        run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", exported_merged, "merged.raw"])
        cases = [(os.path.join(folder, "blog.vhd"),
                  digest(os.path.join("exported", DISKS, "blog.vhd"))),
                 (os.path.join(folder, avhd), digest(os.path.join("exported", DISKS, avhd))),
                 (merged, digest(exported_merged)),
                 (raw, digest("merged.raw"))]
        for path, want in cases:
            name = os.path.relpath(path, m.point)
            size = os.stat(path).st_size
            results = [None] * len(READERS)
            barrier = threading.Barrier(len(READERS))

            def reader(i, chunk, order, direct):
                try:
                    barrier.wait(timeout=30)
                    results[i] = read_whole(path, size, chunk, order, direct)
                except Exception as e:  # reported below
                    results[i] = "error: %r" % e

            threads = [threading.Thread(target=reader, args=(i,) + r)
                       for i, r in enumerate(READERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
                assert not t.is_alive(), "%s: a reader hangs" % name
            alone = read_whole(path, size, 1 << 20, "forward", True)
            assert alone == want, "%s: read alone %s, impex export %s" % (name, alone, want)
            assert results == [alone] * len(READERS), \
                "%s: alone %s, in parallel %s" % (name, alone, list(zip(READERS, results)))


def test_reads_spliced_from_the_store():
    """Disk reads are spliced from the store's files (under leases): the daemon
    itself reads few of the bytes it serves. With -o copy_reads it reads them all.
    Both give the bytes impex export writes, at every request size and order."""
    store = demo()
    ok("export", "--store", store, "blog", "exported")
    ok("export", "--store", store, "blog/version 2", "exported-snapshot")
    exported = os.path.join("exported", DISKS)
    exported_merged = os.path.join("exported-snapshot", DISKS, "blog.vhd")
    run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", exported_merged, "merged.raw"])
    read = {}
    for options in ((), ("-o", "copy_reads")):
        with Mount(store, "mnt", *options) as m:
            folder = os.path.join(m.point, "vms", "blog", DISKS)
            avhd = max((n for n in os.listdir(folder) if n.endswith(".avhd")),
                       key=lambda n: os.path.getsize(os.path.join(folder, n)))
            cases = [(os.path.join(folder, "blog.vhd"), os.path.join(exported, "blog.vhd")),
                     (os.path.join(folder, avhd), os.path.join(exported, avhd)),
                     (os.path.join(m.point, "snapshots", "blog", "version 2", DISKS,
                                   "blog.vhd"), exported_merged),
                     (os.path.join(m.point, "raw", "blog", "version 2", "blog.img"),
                      "merged.raw")]
            for path, want in cases:
                size = os.stat(path).st_size
                for chunk, order, direct in READERS:
                    got = read_whole(path, size, chunk, order, direct)
                    assert got == digest(want), "%s %s: %s read in %d-byte requests (%s)" % (
                        options, os.path.relpath(path, m.point), got, chunk, order)
            # What the daemon reads itself to serve the disks once more, every request
            # reaching it (O_DIRECT; the mount's requests are of 256 KiB).
            before = rchar(m.proc.pid)
            for path, _ in cases:
                read_whole(path, os.stat(path).st_size, 1 << 20, "forward", True)
            read[options] = rchar(m.proc.pid) - before
    spliced, copied = read[()], read[("-o", "copy_reads")]
    base = os.path.getsize(os.path.join(exported, "blog.vhd"))
    print("# the daemon read %d bytes spliced, %d copied (blog.vhd alone is %d)" % (
        spliced, copied, base))
    assert copied >= base, "copied reads: the daemon read %d bytes" % copied
    assert spliced * 10 < copied, "spliced reads: the daemon read %d bytes, %d copied" % (
        spliced, copied)


def test_leased_again_once_a_writer_closes_unchanged():
    """An open disk's reads are spliced under a lease; a writer opening its source breaks it
    (the reads are copied and checked while the writer holds it open); once the writer has
    closed it unchanged, the reads are spliced again, from the same open file."""
    store = demo()
    source = os.path.join(store, DISKS, "blog.vhd")
    want = digest(source)
    with Mount(store, "mnt") as m:
        path = os.path.join(m.point, "vms", "blog", DISKS, "blog.vhd")
        size = os.stat(path).st_size
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)

        def read_all():
            """What the daemon read itself to serve the whole file, and its digest."""
            before, out = rchar(m.proc.pid), bytearray()
            while len(out) < size:
                data = os.pread(fd, 1 << 20, len(out))
                assert data, "end of file at %d of %d" % (len(out), size)
                out += data
            return rchar(m.proc.pid) - before, hashlib.sha256(out).hexdigest()

        try:
            read_all()  # the VMs planned ahead of this lookup are read meanwhile
            leased, got = read_all()
            assert got == want
            writer = os.open(source, os.O_WRONLY)  # breaks the lease, writes nothing
            try:
                broken, got = read_all()
                assert got == want
            finally:
                os.close(writer)
            time.sleep(1.2)  # a lease is tried again at most once a second
            renewed, got = read_all()
            assert got == want
        finally:
            os.close(fd)
    print("# the daemon read %d bytes leased, %d with a writer, %d after it (%d-byte file)" % (
        leased, broken, renewed, size))
    assert broken >= size, "with the source open for writing the reads were not copied"
    assert leased * 10 < size and renewed * 10 < size, "reads not spliced: %d, %d" % (
        leased, renewed)


# ---- 3. unmounting while files are read ----

def start_readers(point):
    """dd with O_DIRECT over the three saved states (256 MiB each) and
    blog.vhd, sha256sum over two disks: their processes and labels."""
    blog = os.path.join(point, "vms", "blog")
    files = [os.path.join(folder, name)
             for folder, _, names in os.walk(blog) for name in names if name.endswith(".bin")]
    assert len(files) == 3, files
    readers = []
    for path in files + [os.path.join(blog, DISKS, "blog.vhd")]:
        readers.append((["dd", "if=" + path, "of=/dev/null", "bs=64k", "iflag=direct",
                         "status=none"], path))
    for name in ("blog.vhd", "blog_2.vhd"):
        readers.append((["sha256sum", os.path.join(blog, DISKS, name)], name))
    return [(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
             what) for args, what in readers]


def finish(readers, timeout=60):
    """Wait for every reader; kill (by its pid) one that hangs and fail."""
    out, deadline = [], time.time() + timeout
    for proc, what in readers:
        try:
            stdout, stderr = proc.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for p, _ in readers:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            raise AssertionError("a reader of %s hangs" % what)
        out.append((what, proc.returncode, stdout, stderr))
    return out


def lazy_unmount(store, with_readers):
    """Mount, open two disks (and start the readers), fusermount3 -u -z while
    they are open and read, then let everything finish: the files still
    read, or fail; the held ones are closed last. Returns how many readers
    were still reading at the unmount."""
    m = Mount(store, "mnt")
    readers, held, running = [], [], 0
    try:
        disks = os.path.join(m.point, "vms", "blog", DISKS)
        for name in ("blog.vhd", "blog_2.vhd"):
            held.append(open(os.path.join(disks, name), "rb"))
            held[-1].read(4096)
        if with_readers:
            readers = start_readers(m.point)
            deadline = time.time() + 30
            while not all(rchar(p.pid) > 1 << 20 or p.poll() is not None for p, _ in readers):
                assert time.time() < deadline, "the readers do not read"
                time.sleep(0.01)
            running = sum(p.poll() is None for p, _ in readers)
        run(["fusermount3", "-u", "-z", m.point])
        assert not mounted(m.point), "still mounted after fusermount3 -u -z"
        ended = finish(readers)
        print("# lazy unmount: %d of %d readers reading; their exits: %s" % (
            running, len(readers), [rc for _, rc, _, _ in ended]))
        for f in held:
            try:
                f.read()  # may fail, must not hang
            except OSError as e:
                print("# a held file after the lazy unmount: %s" % e)
    finally:
        for f in held:
            f.close()  # the last close ends the file system
        if readers:
            finish(readers)
        m.unmount()  # the daemon exits 0, no sanitizer report
    assert not mounted(m.point)
    return running


def test_unmount_during_reads():
    store = demo()
    want = {name: digest(os.path.join(store, DISKS, name)) for name in ("blog.vhd", "blog_2.vhd")}
    # Lazy unmounts while files are open: with readers of big files, then
    # (the end races with the last RELEASE) a few more times with held files only.
    assert lazy_unmount(store, True) > 0, "every reader had finished before the unmount"
    for _ in range(3):
        lazy_unmount(store, False)

    # A plain unmount once the readers are done.
    with Mount(store, "mnt") as m:
        for what, rc, stdout, stderr in finish(start_readers(m.point)):
            assert rc == 0, "reader of %s: exit %d: %s" % (what, rc, stderr)
            if what in want:
                assert stdout.split()[0] == want[what], (what, stdout)
    assert not mounted(m.point)


# ---- 4. holes are not read ----

def copy_out(m, path, dest):
    """cp @path to @dest: the bytes the daemon read meanwhile (from its
    sources, and its requests) and wrote (its replies)."""
    before = (rchar(m.proc.pid), io_counter(m.proc.pid, "wchar"))
    run(["cp", path, dest])
    return rchar(m.proc.pid) - before[0], io_counter(m.proc.pid, "wchar") - before[1]


def test_cp_skips_holes():
    store = new_store()
    vm_new(store, "--disk", "ide:1024M", "--disk", "scsi:1024M", "big")
    with open("mib", "wb") as f:
        f.write(os.urandom(1 << 20))
    with open("chunk", "wb") as f:
        f.write(os.urandom(32 << 10))
    # Disk 0: 4 MiB of data in 1 GiB, served raw in raw/big/current/big.img.
    for i in range(4):
        ok("vm", "write", "--store", store, "big", "0", str(i * (256 << 20)), "mib")
    # Disk 1: 64 blocks of 2 MiB holding 32 KiB each, at their ends: a VHD file of
    # 128 MiB, mostly holes in the source. (Data just after each block's bitmap
    # makes the kernel's readahead, 1 MiB on this mount, read on into the hole.)
    for i in range(64):
        ok("vm", "write", "--store", store, "big", "1",
           str(i * (16 << 20) + (2 << 20) - (32 << 10)), "chunk")
    source = os.path.join(store, DISKS, "big_2.vhd")
    src = os.stat(source)
    assert src.st_size > 100 << 20 and src.st_blocks * 512 < src.st_size // 10, src
    with open("raw-want.img", "wb") as f:
        ok("vhd", "cat", os.path.join(store, DISKS, "big.vhd"), stdout=f, text=False)
    # Reads copied through the daemon, so that its counters see every byte served
    # (spliced bytes pass it by).
    with Mount(store, "mnt", "-o", "copy_reads") as m:
        files = [(os.path.join(m.point, "raw", "big", "current", "big.img"), "raw-want.img"),
                 (os.path.join(m.point, "vms", "big", DISKS, "big_2.vhd"), source)]
        for n, (path, want) in enumerate(files):
            size = os.stat(path).st_size
            assert size == os.stat(want).st_size, (path, size, os.stat(want).st_size)
            read, sent = copy_out(m, path, "copy%d" % n)
            print("# cp of %s (%d bytes): the daemon read %d bytes, sent %d" % (
                os.path.relpath(path, m.point), size, read, sent))
            # The raw view makes up its holes without reading: what it sends tells.
            assert read < size // 10 and sent < size // 10, \
                "%s: the daemon read %d bytes and sent %d of a %d-byte file" % (
                    path, read, sent, size)
            assert sha_of("copy%d" % n) == sha_of(want), path
            copy = os.stat("copy%d" % n)
            assert copy.st_size == size and copy.st_blocks * 512 < size // 10, \
                "%s: copy of %d bytes, %d allocated" % (path, copy.st_size, copy.st_blocks * 512)


# ---- 5. allow_other ----

def test_allow_other_default_permissions():
    store = demo()
    # Only root reads the store; nobody can reach the mount points.
    os.chmod(".", 0o711)
    os.chmod(store, 0o700)
    config = [n for n in os.listdir(os.path.join(store, VMS)) if n.endswith(".xml")][0]
    denied = as_nobody("cat", os.path.join(store, VMS, config))
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied

    # The mount shows the store's modes and owners: what nobody cannot read in the store,
    # nobody cannot read through the mount either.
    with Mount(store, "shared", "-o", "allow_other,default_permissions") as m:
        vm = sorted(os.listdir(os.path.join(m.point, "vms")))[0]
        folder = os.path.join(m.point, "vms", vm, VMS)
        name = [n for n in os.listdir(folder) if n.endswith(".xml")][0]
        for args in (["ls", m.point], ["cat", os.path.join(folder, name)]):
            result = as_nobody(*args)
            assert result.returncode != 0 and "Permission denied" in result.stderr, \
                "%s as nobody, the store being root's 0700: %r" % (" ".join(args), result)

    # Given to nobody (a backup user) with uid=, the same mount lets nobody read.
    uid = str(pwd.getpwnam("nobody").pw_uid)
    with Mount(store, "shared", "-o", "allow_other,default_permissions,uid=" + uid) as m:
        folder = os.path.join(m.point, "vms", vm, VMS)
        name = [n for n in os.listdir(folder) if n.endswith(".xml")][0]
        with open(os.path.join(folder, name), "rb") as f:
            want = f.read()
        listed = as_nobody("ls", "-a", folder)
        assert listed.returncode == 0, listed
        assert sorted(listed.stdout.split()) == sorted([".", ".."] + os.listdir(folder)), listed
        read = run(NOBODY + ["cat", os.path.join(folder, name)], check=False, text=False)
        assert read.returncode == 0 and read.stdout == want, read
        # default_permissions: the kernel checks the modes, and nobody cannot write.
        wrote = as_nobody("touch", os.path.join(folder, "new"))
        assert wrote.returncode != 0, wrote

    with Mount(store, "private") as m:
        folder = os.path.join(m.point, "vms", vm, VMS)
        assert name in os.listdir(folder)  # root still reads it
        for args in (["ls", folder], ["cat", os.path.join(folder, name)],
                     ["ls", m.point]):
            result = as_nobody(*args)
            assert result.returncode != 0 and "Permission denied" in result.stderr, \
                "%s as nobody without allow_other: %r" % (" ".join(args), result)


# ---- 6. the store is not touched ----

def test_read_only_store_unchanged():
    store = demo()
    with bind_mount(store, "ro", "ro") as ro:
        try:
            open(os.path.join(ro, "probe"), "w").close()
            raise AssertionError("the bind mount is writable")
        except OSError:
            pass
        before = store_state(ro)
        time.sleep(0.01)  # any write after this would get a later time
        with Mount(ro, "mnt") as m:
            shown = {rel: st.st_size for rel, st in walk(m.point).items()
                     if stat.S_ISREG(st.st_mode)}
            # All of it with cp, vms/ with rsync (--sparse: not 800 MB of zeros to disk).
            run(["cp", "-r", m.point + "/.", "by-cp"])
            run(["rsync", "-a", "--sparse", os.path.join(m.point, "vms") + "/", "by-rsync/"])
        assert sum(rel.startswith("vms/") for rel in shown) >= 20, sorted(shown)
        for copy, top in (("by-cp", ""), ("by-rsync", "vms/")):
            want = {rel[len(top):]: size for rel, size in shown.items() if rel.startswith(top)}
            got = {rel: st.st_size for rel, st in walk(copy).items() if stat.S_ISREG(st.st_mode)}
            assert got == want, "%s: %r" % (copy, sorted(set(got.items()) ^ set(want.items())))
        after = store_state(ro)
        assert sorted(before) == sorted(after), "files created or removed: %s" % sorted(
            set(before) ^ set(after))
        for rel in before:
            assert before[rel] == after[rel], "%s: %r -> %r" % (rel, before[rel], after[rel])


def test_sources_atime_unchanged():
    store = demo()
    with bind_mount(store, "strict", "strictatime") as strict:
        # strictatime works here: a plain read of a file changes its atime.
        probe = os.path.join(strict, VMS, [n for n in os.listdir(os.path.join(strict, VMS))
                                           if n.endswith(".xml")][0])
        was = os.stat(probe).st_atime_ns
        time.sleep(0.01)
        with open(probe, "rb") as f:
            f.read()
        assert os.stat(probe).st_atime_ns != was, "strictatime has no effect"
        # Disks, saved states, configurations and the folders holding them:
        # impexfs opens them with O_NOATIME, when it mounts and when they are read.
        paths = tree_paths(strict, (DISKS, VMS, SNAPSHOTS))
        time.sleep(0.01)
        before = atimes(strict, paths)
        assert len(before) > 15, before
        time.sleep(0.01)
        with Mount(strict, "mnt") as m:
            mounted_at = atimes(strict, paths)
            # Everything: vms/ as it is, snapshots/ and raw/ merged from the chains.
            run(["cp", "-r", m.point + "/.", "copy"])
        after = atimes(strict, paths)
        changed = sorted(k for k in before if mounted_at[k] != before[k])
        assert not changed, "mounting changed the atime of %s" % changed
        changed = sorted(k for k in before if after[k] != before[k])
        assert not changed, "reading through impexfs changed the atime of %s" % changed
        assert sorted(os.listdir("copy")) == ["by-id", "raw", "snapshots", "vms"], \
            os.listdir("copy")


# ---- 7. inode numbers ----

def inodes(point):
    """Relative path -> st_ino of everything in the mount (vms/ and the
    rest), checked against readdir's d_ino and a second lookup."""
    top = point
    stats = walk(top)
    numbers = {rel: st.st_ino for rel, st in stats.items()}
    for folder, _, _ in os.walk(top):
        for entry in os.scandir(folder):
            rel = os.path.relpath(entry.path, top)
            assert entry.inode() == numbers[rel], \
                "%s: readdir says %d, lookup %d" % (rel, entry.inode(), numbers[rel])
    again = {rel: st.st_ino for rel, st in walk(top).items()}
    assert again == numbers, [r for r in numbers if again.get(r) != numbers[r]]
    for rel, st in stats.items():
        if stat.S_ISREG(st.st_mode):
            with open(os.path.join(top, rel), "rb") as f:
                assert os.fstat(f.fileno()).st_ino == numbers[rel], rel
    assert len(set(numbers.values())) == len(numbers), "two paths share an inode number"
    return numbers


def test_inode_numbers_stable():
    store = demo()
    with Mount(store, "one") as m:
        first = inodes(m.point)
    assert sum(rel.startswith("vms/") for rel in first) > 30, first
    with Mount(store, "two") as a, Mount(store, "three") as b:
        for numbers in (inodes(a.point), inodes(b.point)):
            assert numbers == first, "another mount: %s" % sorted(
                (r, first.get(r), numbers.get(r)) for r in set(first) | set(numbers)
                if first.get(r) != numbers.get(r))


if __name__ == "__main__":
    # meson's TAP protocol takes "1..0 # SKIP" with exit 0 as a skip (77 would be an error).
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("1..0 # SKIP no /dev/fuse or no fusermount3")
        sys.exit(0)
    run_tests(globals())
