"""The export mount attacked by an unprivileged local user (docs/SECURITY.md's
readers of an allow_other mount), on real mounts of the real daemon.

- A reader who holds files open until the daemon runs out of descriptors
  must get EMFILE for what it cannot open, and must not make VMs leave the
  tree: not while it holds them, not after it closes them, not when the
  store changes meanwhile (a nightly `rsync -a --delete` of vms/ would
  delete the backups of VMs that vanish).
- The mount serves the sources' own modes and owners (write bits removed),
  so that a 0600 disk is no more readable through the mount than in the
  store; files and folders made of several sources get the AND of their
  modes and their common owner, else root; uid=, gid= and umask= change what
  is shown and what the kernel allows; allow_other always comes with
  default_permissions.

The attacker is the system user impex-attacker (made here if missing; the
README's test command makes it too). Every mount is unmounted with
fusermount3 -u, and the daemon must exit 0 without a sanitizer report.
"""

import errno
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import threading
import time

from impexlib import DISKS, VMS, as_json, digest, ok
from taplib import run, run_tests
from test_mount import IMPEXFS, Mount, demo

ATTACKER = "impex-attacker"
NOFILE = 256  # the daemon's descriptor limit, soft and hard: raising it cannot help


# ---- helpers ----

def attacker():
    """The attacker's (uid, gid), making the user if it is missing."""
    try:
        pw = pwd.getpwnam(ATTACKER)
    except KeyError:
        # Another test may make it at the same time: its failure is fine if the user exists.
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             ATTACKER], check=False)
        pw = pwd.getpwnam(ATTACKER)
    return pw.pw_uid, pw.pw_gid


def as_user(uid, gid):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups"]


def nobody():
    return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid


# What the attacker runs: open(2) of @path and the errno it got ("OK" when none).
PROBE = r"""
import errno, os, sys
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            os.close(os.open(path, os.O_RDONLY))
        print("OK")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
"""


def access(user, *paths):
    """What @user (uid, gid) gets opening (files) or listing (folders) each of @paths."""
    result = run(as_user(*user) + [sys.executable, "-I", "-c", PROBE] + list(paths))
    return result.stdout.split()


def shown(path):
    """(permission bits, uid, gid) of @path in the mount."""
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def names(top):
    """Every path under @top (folders, files, links), relative, sorted."""
    out = []
    for folder, dirs, files in os.walk(top):
        out += [os.path.relpath(os.path.join(folder, n), top) for n in dirs + files]
    return sorted(out)


def mount_options(point):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == point:
                return set(fields[5].split(",")) | set(fields[fields.index("-") + 3].split(","))
    raise AssertionError("%s is not mounted" % point)


class Daemon(Mount):
    """impexfs STORE MOUNTPOINT in the foreground, run by @prefix (as `prlimit
    --nofile=N:N`, which execs it: the pid is the daemon's), its standard error read
    as it comes: an attack may have it log much more than a pipe holds, and a daemon
    blocked in write(2) would hang the test."""

    def __init__(self, store, point, *options, prefix=()):
        self.point = os.path.realpath(point)
        os.makedirs(self.point, exist_ok=True)
        self.proc = subprocess.Popen([*prefix, IMPEXFS, "-f", *options, store, self.point],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.err = []
        self.drainer = threading.Thread(target=lambda: self.err.append(self.proc.stderr.read()))
        self.drainer.start()
        deadline = time.time() + 30
        while not os.path.ismount(self.point):
            if self.proc.poll() is not None or time.time() > deadline:
                self.unmount()
                raise AssertionError("impexfs did not mount")
            time.sleep(0.05)

    def unmount(self):
        if os.path.ismount(self.point):
            subprocess.run(["fusermount3", "-u", self.point], check=False)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # ours, by its id
            self.proc.wait()
            raise AssertionError("impexfs did not exit after fusermount3 -u")
        finally:
            self.drainer.join()
        err = "".join(self.err)
        report = err if len(err) < 6000 else err[:5000] + "\n[...]\n" + err[-1000:]
        assert rc == 0, "impexfs exited %d: %s" % (rc, report)
        assert "Sanitizer" not in err and "runtime error" not in err, report
        return err


# The attacker's reader: opens files of the mount until the daemon refuses, holds them,
# closes some or all when told. Each command's answer is a line of JSON: how many files
# it holds, and the errno names of the opens that failed, with their counts.
READER = r"""
import errno, json, os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # its own limit is never the one met
top = sys.argv[1]
paths = sorted(os.path.join(d, n) for sub in ("vms", "snapshots", "raw")
               for d, _, ns in os.walk(os.path.join(top, sub)) for n in ns)
held, errors = [], {}

def fill():
    misses, i = 0, 0
    # Until every file in a row failed to open: the daemon holds no descriptor more.
    while misses < len(paths) and len(held) < 5000:
        path = paths[i % len(paths)]
        i += 1
        try:
            held.append(os.open(path, os.O_RDONLY))
            misses = 0
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            errors[name] = errors.get(name, 0) + 1
            misses += 1

print(json.dumps({"files": len(paths)}), flush=True)
for line in sys.stdin:
    command = line.split()
    if command[0] == "fill":
        fill()
    elif command[0] == "close":
        n = len(held) if command[1] == "all" else int(command[1])
        for _ in range(min(n, len(held))):
            os.close(held.pop())
    print(json.dumps({"held": len(held), "errors": errors}), flush=True)
"""


class Reader:
    """READER run as @user over the mount at @point."""

    def __init__(self, user, point):
        self.proc = subprocess.Popen(as_user(*user) + [sys.executable, "-I", "-c", READER, point],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.files = self.answer()["files"]

    def answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the reader ended: %s" % self.proc.stderr.read())
        return json.loads(line)

    def tell(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def end(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # ours, by its id
                self.proc.wait()


def poke(store):
    """Change the store's "Virtual Machines" folder (a file made and removed): the
    mount plans its tree again at its next look."""
    probe = os.path.join(store, VMS, "probe")
    open(probe, "w").close()
    os.unlink(probe)


# ---- 1. a reader out of the daemon's descriptors ----

def test_descriptor_exhaustion_keeps_every_vm():
    user = attacker()
    os.chmod(".", 0o711)  # the attacker reaches the mount point, not the store's files
    store = demo()
    with Daemon(store, "mnt", "-o", "allow_other,revalidate=1",
                prefix=["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE)]) as m:
        every = names(m.point)
        tops = {top: sorted(os.listdir(os.path.join(m.point, top)))
                for top in ("vms", "raw", "snapshots", "by-id")}
        assert tops["vms"] == ["blog", "db", "gateway"], tops
        assert len(tops["by-id"]) == 3 + 6, tops  # 3 VMs, 6 snapshots

        def same(when):
            now = names(m.point)
            for top, want in tops.items():
                got = sorted(os.listdir(os.path.join(m.point, top)))
                assert got == want, "%s: %s/ lists %s, not %s" % (when, top, got, want)
            assert now == every, "%s: the tree changed: gone %s, new %s" % (
                when, sorted(set(every) - set(now)), sorted(set(now) - set(every)))

        reader = Reader(user, m.point)
        try:
            state = reader.tell("fill")
            # The daemon's own limit was met, well before the reader's.
            assert 0 < state["held"] < NOFILE, state
            assert set(state["errors"]) == {"EMFILE"}, state
            time.sleep(3)  # a few looks at the store (revalidate=1)
            same("with every descriptor held")
            # Some room left: the tree is planned again (the store changed) while opens
            # in it fail; however few descriptors it has, every VM stays.
            for room in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24):
                reader.tell("close %d" % room)
                poke(store)
                time.sleep(2.5)
                same("with %d descriptors free" % room)
                state = reader.tell("fill")
                assert set(state["errors"]) == {"EMFILE"}, (room, state)
            # Nothing free while a VM is added: the tree stays as it was, then gains it.
            ok("vm", "new", "--store", store, "--disk", "ide:8M", "fresh")
            time.sleep(3)
            same("with a VM added and every descriptor held")
            state = reader.tell("close all")
            assert set(state["errors"]) == {"EMFILE"}, state
        finally:
            reader.end()
        deadline = time.time() + 15
        while "fresh" not in os.listdir(os.path.join(m.point, "vms")) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(3)
        now = names(m.point)
        gone = sorted(set(every) - set(now))
        assert not gone, "after the files were closed, gone: %s" % gone
        assert "vms/fresh" in now and "raw/fresh" in now, sorted(set(now) - set(every))
        # Closed and re-planned: every file opens again, the attacker's too.
        for rel in every:
            path = os.path.join(m.point, rel)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    f.read(4096)


if __name__ == "__main__":
    # meson's TAP protocol takes "1..0 # SKIP" with exit 0 as a skip (77 would be an error).
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("1..0 # SKIP no /dev/fuse or no fusermount3")
        sys.exit(0)
    run_tests(globals())
