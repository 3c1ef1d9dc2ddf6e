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
        assert len(tops["by-id"]) == 3 + 7, tops  # 3 VMs, 7 snapshots

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
            # The daemon's own limit was met (configurations, made in memory, hold no
            # descriptor: more files than that may be open).
            assert 0 < state["held"] < 5000, state
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


# ---- 2. modes and owners ----

def chains(store, vm):
    """{(state, disk stem): [paths of the chain, top first]} of @vm: state "current" and
    each snapshot's name, disk named after its chain's base."""
    shown_vm = as_json(ok("vm", "show", "--json", "--store", store, vm))
    out = {}
    for state, disks in [("current", shown_vm["disks"])] + [
            (s["name"], s["disks"]) for s in shown_vm["snapshots"]]:
        for disk in disks:
            stem = os.path.splitext(os.path.basename(disk["chain"][-1]))[0]
            out[(state, stem)] = disk["chain"]
    return shown_vm, out


def anded(paths, extra=0):
    """What a file made of @paths shows: the AND of their permission bits without the
    write bits, their common owner and group, else root's."""
    sts = [os.stat(p) for p in paths]
    mode = 0o7777
    for st in sts:
        mode &= stat.S_IMODE(st.st_mode) | extra
    uids, gids = {st.st_uid for st in sts}, {st.st_gid for st in sts}
    return (mode & 0o555, uids.pop() if len(uids) == 1 else 0,
            gids.pop() if len(gids) == 1 else 0)


def test_modes_and_owners_of_the_sources():
    user = attacker()
    other = nobody()
    os.chmod(".", 0o711)
    store = demo()
    disks = os.path.join(store, DISKS)
    blog, blog_chains = chains(store, "blog")
    db, _ = chains(store, "db")
    gateway, _ = chains(store, "gateway")
    # blog: a 0600 base disk; its second disk's files 0644 but for a 0604 base and one 0640
    # level owned by the attacker's group.
    os.chmod(os.path.join(disks, "blog.vhd"), 0o600)
    os.chmod(os.path.join(disks, "blog_2.vhd"), 0o604)
    level = sorted(n for n in os.listdir(disks) if n.startswith("blog_2_"))[0]
    os.chmod(os.path.join(disks, level), 0o640)
    os.chown(os.path.join(disks, level), 0, user[1])
    # A 0700 saved-state folder (whichever VM has one).
    holder = [v for v in (blog, db, gateway) if v["saved_state"]][0]
    os.chmod(holder["saved_state"], 0o700)
    # db: its disk 0640, readable by the group given with gid=.
    os.chmod(os.path.join(disks, "db.vhdx"), 0o640)
    # gateway: all of it the attacker's, 0600.
    for path in [gateway["config"]] + [d["path"] for d in gateway["disks"]]:
        os.chown(path, user[0], user[1])
        os.chmod(path, 0o600)

    served_blog = os.path.join("vms", "blog", DISKS, "blog.vhd")
    with Daemon(store, "mnt", "-o", "allow_other") as m:
        # The daemon adds default_permissions to allow_other: the kernel checks the modes.
        assert "default_permissions" in mount_options(m.point), mount_options(m.point)
        at = lambda *rel: os.path.join(m.point, *rel)
        # The top folders: the store's own folder's.
        for rel in ("", "vms", "raw", "snapshots", "by-id"):
            assert shown(at(rel)) == (0o555, 0, 0), (rel, oct(shown(at(rel))[0]))
        # Files of the store as they are: their modes without write bits, their owners.
        for name in os.listdir(at("vms", "blog", DISKS)):
            source = os.path.join(disks, name)
            if os.path.exists(source) and name.endswith(".vhd"):
                st = os.stat(source)
                assert shown(at("vms", "blog", DISKS, name)) == (
                    stat.S_IMODE(st.st_mode) & 0o555, st.st_uid, st.st_gid), name
        assert shown(at(served_blog)) == (0o400, 0, 0)
        assert shown(at("vms", "blog", DISKS, "blog_2.vhd")) == (0o404, 0, 0)
        # A relocated differencing disk: its file's.
        assert shown(at("vms", "blog", DISKS, level)) == (0o440, 0, user[1])
        # Merged disks and raw images: the AND of their chain's levels.
        for (state, stem), chain in blog_chains.items():
            want = anded(chain)
            if state != "current":
                assert shown(at("snapshots", "blog", state, DISKS, stem + ".vhd")) == want, (
                    state, stem, shown(at("snapshots", "blog", state, DISKS, stem + ".vhd")),
                    want)
            assert shown(at("raw", "blog", state, stem + ".img")) == want, (state, stem)
        # Chains of blog.vhd (0600) or the 0640 level show 0400, the others 0644 & 0604.
        kinds = {anded(chain)[0] for chain in blog_chains.values()}
        assert kinds == {0o400, 0o404}, kinds
        # Saved state: its folder's own mode.
        folder = at("vms", holder["name"], VMS, holder["id"])
        assert shown(folder) == (0o500, 0, 0), oct(shown(folder)[0])
        # A VM folder: the AND of what it holds, x where r; the attacker's gateway is theirs.
        assert shown(at("vms", "blog")) == (0o500, 0, 0), oct(shown(at("vms", "blog"))[0])
        assert shown(at("vms", "gateway")) == (0o500, user[0], user[1])
        assert shown(at("vms", "gateway", DISKS, "gateway.vhd")) == (0o400, user[0], user[1])
        assert shown(at("raw", "gateway", "current", "gateway.img")) == (0o400, user[0], user[1])
        assert shown(at("vms", "db", DISKS, "db.vhdx")) == (0o440, 0, 0)
        assert shown(at("vms", "db")) == (0o550, 0, 0), oct(shown(at("vms", "db"))[0])
        # by-id links: their folder's owner.
        link = at("by-id", gateway["id"])
        assert os.readlink(link) == "../vms/gateway" and os.lstat(link).st_uid == user[0]

        # What the kernel allows: the attacker reads its own VM, nothing of root's 0600 disk,
        # saved state or merged disks; root reads everything, the same bytes as the store.
        denied = [served_blog, os.path.join("raw", "blog", "current", "blog.img"),
                  os.path.join("snapshots", "blog", "installed", DISKS, "blog.vhd"),
                  os.path.join("vms", holder["name"], VMS, holder["id"]),
                  os.path.join("vms", "blog"), os.path.join("vms", "db", DISKS, "db.vhdx")]
        allowed = [os.path.join("vms", "gateway", DISKS, "gateway.vhd"),
                   os.path.join("raw", "gateway", "current", "gateway.img"), "vms", "by-id"]
        got = access(user, *[at(rel) for rel in denied + allowed])
        assert got == ["EACCES"] * len(denied) + ["OK"] * len(allowed), list(
            zip(denied + allowed, got))
        got = access(other, *[at(rel) for rel in allowed[:2]])
        assert got == ["EACCES"] * 2, got
        assert digest(at(served_blog)) == digest(os.path.join(disks, "blog.vhd"))

        # A source chmodded while mounted: its next open fails rather than go by the old
        # mode, and the tree soon shows the new one.
        served_db = at("vms", "db", DISKS, "db.vhdx")
        os.chmod(os.path.join(disks, "db.vhdx"), 0o600)
        try:
            open(served_db, "rb").close()
            raise AssertionError("a chmodded source opened by its old mode")
        except OSError as e:
            assert e.errno == errno.EIO, e
        deadline = time.time() + 15
        while shown(served_db)[0] != 0o400 and time.time() < deadline:
            time.sleep(0.2)
        assert shown(served_db) == (0o400, 0, 0), oct(shown(served_db)[0])
        assert shown(at("vms", "db")) == (0o500, 0, 0), oct(shown(at("vms", "db"))[0])
        os.chmod(os.path.join(disks, "db.vhdx"), 0o640)

    # uid=, gid=, umask=: for a backup user, everything is theirs, masked.
    with Daemon(store, "mnt", "-o", "allow_other,uid=%d,gid=%d,umask=027" % user) as m:
        at = lambda *rel: os.path.join(m.point, *rel)
        assert shown(at("")) == (0o550, user[0], user[1])
        assert shown(at(served_blog)) == (0o400, user[0], user[1])
        assert shown(at("vms", "db", DISKS, "db.vhdx")) == (0o440, user[0], user[1])
        assert shown(at("vms", "blog", VMS, blog["id"] + ".xml")) == (0o440, user[0], user[1])
        got = access(user, at(served_blog), at("vms", holder["name"], VMS, holder["id"]))
        assert got == ["OK", "OK"], got
        assert access(other, at("vms"))[0] == "EACCES"  # umask took the others' bits
        run(["cmp", at(served_blog), os.path.join(disks, "blog.vhd")])
    # gid= alone: the group's bits now let the attacker read db's 0640 disk, not blog's.
    with Daemon(store, "mnt", "-o", "allow_other,default_permissions,gid=%d" % user[1]) as m:
        at = lambda *rel: os.path.join(m.point, *rel)
        assert shown(at("vms", "db", DISKS, "db.vhdx")) == (0o440, 0, user[1])
        got = access(user, at("vms", "db", DISKS, "db.vhdx"), at(served_blog))
        assert got == ["OK", "EACCES"], got
    # Without allow_other, nobody but root (who mounted) gets in, whatever the modes.
    with Daemon(store, "mnt", "-o", "uid=%d" % user[0]) as m:
        assert access(user, os.path.join(m.point, "vms")) == ["EACCES"]


# ---- 3. bad values ----

def test_bad_owner_options_are_refused():
    store = demo()
    os.makedirs("mnt", exist_ok=True)
    for option in ("uid=", "uid=-1", "uid=12x", "uid=4294967295", "uid=99999999999",
                   "uid=impex-no-such-user", "gid=", "gid=-5", "gid=impex-no-such-group",
                   "gid=4294967295", "umask=", "umask=8", "umask=0o22", "umask=1000",
                   "umask=-1", "umask=abc"):
        r = subprocess.run([IMPEXFS, "-o", option, store, "mnt"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 2, (option, r.returncode, r.stderr)
        key = option.partition("=")[0]
        assert r.stderr.startswith("impexfs: ") and key in r.stderr, (option, r.stderr)
        assert not os.path.ismount("mnt"), option
    # Good ones: a name, a number, an octal mask.
    for option in ("uid=root,gid=root,umask=0", "uid=0,gid=0,umask=0777", "umask=22"):
        with Daemon(store, "mnt", "-o", option) as m:
            assert os.listdir(os.path.join(m.point, "vms")) or True


if __name__ == "__main__":
    # meson's TAP protocol takes "1..0 # SKIP" with exit 0 as a skip (77 would be an error).
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        print("1..0 # SKIP no /dev/fuse or no fusermount3")
        sys.exit(0)
    run_tests(globals())
