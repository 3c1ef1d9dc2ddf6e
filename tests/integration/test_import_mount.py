"""The import mount (impexfs -o import STORE MNT), on real mounts of the real
daemon: each folder copied in with cp or rsync becomes a VM of the store.
What each imported VM must hold is the model of test_mount_snapshots
(every disk state built independently in Python); the disks are read with
qemu-img and vhdiinfo too.
"""

import json
import os
import re
import stat
import random
import shutil
import subprocess
import time

from impexlib import DISKS, SNAPSHOTS, VMS, as_json, call, describe_change, documented_members, \
    need, new_store, ok, tree_state
from taplib import Skip, run, run_tests, sanitizer_report
from test_import import assert_only_intended_edits, assert_states, assert_states_of, \
    blog_target, files_of_vm, items, parse, small_store, write
from test_mount import IMPEXFS, Mount
from test_mount_snapshots import modelled_vm

STATES = ["current", "s1", "s2", "s3"]


def status(mnt):
    with open(os.path.join(mnt, ".impex-status")) as f:
        return json.load(f)


def entry(mnt, folder):
    found = [i for i in status(mnt)["imports"] if i["folder"] == folder]
    assert len(found) == 1, status(mnt)
    return found[0]


def wait_state(mnt, folder, want=("registered",), timeout=60):
    """The import @folder once it reaches a state in @want (or fails the test)."""
    deadline = time.time() + timeout
    while True:
        imp = entry(mnt, folder)
        if imp["state"] in want:
            return imp
        assert imp["state"] != "failed" or "failed" in want, imp
        assert time.time() < deadline, "import %s still %s: %s" % (folder, imp["state"], imp)
        time.sleep(0.05)


def gold(name="gold"):
    """The modelled VM "m" of a demo store, exported to @name; the model of its states."""
    ok("demo", "source")
    states = modelled_vm(os.path.realpath("source"))
    ok("export", "--store", "source", "m", name)
    return states, os.path.realpath(name)


def check_vm(target, guid, states, names=STATES, referees=True, model_of_base=None):
    """The VM @guid of @target holds the model's states (read through our chains); every
    file of its chains opens in qemu-img (checksums) and vhdiinfo, and each chain's base,
    which qemu-img reads alone, equals @model_of_base (the state it froze)."""
    vm = assert_states(target, guid, states, names)
    # Each parent has the time its child records (cp -r does not keep times): no warning.
    said = ok("vm", "show", "--store", target, guid).stderr
    assert "warning" not in said, said
    if referees:
        for i, disk in enumerate(vm["disks"]):
            for path in disk["chain"]:
                run(["qemu-img", "info", "-f", "vpc", path])
                run(["vhdiinfo", path])
            with open("want.raw", "wb") as f:
                f.write(states[model_of_base or names[-1]][i])
            run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", disk["chain"][-1],
                 "want.raw"])
    return vm


def no_leftovers(target):
    """No temporary name, journal or file of no VM in the store."""
    left = []
    for sub in (DISKS, VMS, SNAPSHOTS):
        folder = os.path.join(target, sub)
        if os.path.isdir(folder):
            left += [os.path.join(sub, n) for n in os.listdir(folder)
                     if "impex-import" in n or "impex-journal" in n]
    assert not left, left
    # The daemon's own folders stay, empty: no import folder, no journal.
    for private in (os.path.join(target, DISKS, ".impex-staging"),
                    os.path.join(target, ".impex-journals")):
        if os.path.lexists(private):
            st = os.lstat(private)
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, private
            assert st.st_uid == os.geteuid(), private
            assert not os.listdir(private), (private, os.listdir(private))
    owned = set()
    for vm in as_json(ok("vm", "list", "--json", "--store", target)):
        owned |= files_of_vm(as_json(ok("vm", "show", "--json", "--store", target, vm["id"])))
    disks = os.path.join(target, DISKS)
    stray = {os.path.join(disks, n) for n in os.listdir(disks) if n != ".impex-staging"} - owned
    assert not stray, sorted(stray)


def vm_ids(target):
    return {vm["id"] for vm in as_json(ok("vm", "list", "--json", "--store", target))}


def test_every_copy_tool_fills_the_mount():
    need("fusermount3", "rsync", "qemu-img", "vhdiinfo")
    states, folder = gold()
    # A user.* attribute, for rsync -X.
    os.setxattr(os.path.join(folder, DISKS, "m_0.vhd") if os.path.exists(
        os.path.join(folder, DISKS, "m_0.vhd")) else os.path.join(
        folder, DISKS, sorted(os.listdir(os.path.join(folder, DISKS)))[0]),
        "user.note", b"gold")
    before = tree_state(folder)
    target = new_store("target")
    tools = {
        "cp-r": ["cp", "-r", folder],
        "cp-a": ["cp", "-a", folder],
        "rsync": ["rsync", "-a", folder + "/"],
        "inplace": ["rsync", "-a", "--inplace", folder + "/"],
        "partial": ["rsync", "-a", "--partial", folder + "/"],
        "xattrs": ["rsync", "-aX", folder + "/"],
    }
    with Mount(target, "mnt", "-o", "import") as m:
        assert os.listdir(m.point) == [".impex-status"]
        assert status(m.point)["imports"] == []
        guids = {}
        for name, command in tools.items():
            run(command + [os.path.join(m.point, name)])
            imp = wait_state(m.point, name)
            assert imp["errors"] == [], imp
            assert imp["files"] >= 10 and imp["bytes"] > 0 and imp["writing"] == 0, imp
            guids[name] = imp["vm"]["id"]
            assert imp["vm"]["name"] == "m", imp
            # The folder stays, read-only: names, sizes and the copy tool's times.
            copied = os.path.join(m.point, name)
            for rel in ("Virtual Machines", DISKS):
                assert sorted(os.listdir(os.path.join(copied, rel))) == \
                    sorted(os.listdir(os.path.join(folder, rel))), rel
            try:
                open(os.path.join(copied, "more"), "w").close()
                raise AssertionError("a registered folder took a new file")
            except OSError as e:
                assert e.errno == 30, e  # EROFS
        # rsync again over a registered folder: nothing to copy, nothing fails.
        out = run(["rsync", "-a", "--itemize-changes", folder + "/",
                   os.path.join(m.point, "rsync") + "/"]).stdout
        assert not [l for l in out.splitlines() if l.startswith(">f")], out
        human = ok("status", m.point).stdout
        assert all(name in human for name in tools) and "registered" in human, human
        raw = ok("status", "--json", m.point).stdout
        assert json.loads(raw) == status(m.point)
        assert statfs_matches(m.point, os.path.join(target, DISKS))
    assert len(set(guids.values())) == len(tools), guids
    assert vm_ids(target) == set(guids.values())
    for name, guid in guids.items():
        vm = check_vm(target, guid, states, referees=name in ("cp-r", "xattrs"),
                      model_of_base="s1")
        if name == "xattrs":
            noted = [p for p in files_of_vm(vm) if b"gold" == getxattr(p, "user.note")]
            assert len(noted) == 1, files_of_vm(vm)
    assert tree_state(folder) == before, describe_change(before, tree_state(folder), "imports")
    no_leftovers(target)


def getxattr(path, name):
    try:
        return os.getxattr(path, name)
    except OSError:
        return None


def statfs_matches(mnt, where):
    a, b = os.statvfs(mnt), os.statvfs(where)
    assert (a.f_blocks * a.f_frsize, a.f_files) == (b.f_blocks * b.f_frsize, b.f_files), (a, b)
    # Free space moves with other writers: within 64 MiB.
    assert abs(a.f_bavail * a.f_frsize - b.f_bavail * b.f_frsize) < 64 << 20, (a, b)
    return True


def test_two_imports_at_once_and_the_mount_wide_settings():
    need("fusermount3", "qemu-img")
    ok("demo", "source")
    ok("export", "--store", "source", "blog", "exported")
    folder = os.path.realpath("exported")
    target = new_store("target")
    lan = ok("switch", "add", "--store", target, "LAN").stdout.split()[0]
    source = as_json(ok("vm", "show", "--json", "--store", "source", "blog"))
    renamed = {a["mac"] for a in source["adapters"] if a["switch"] == "Internal"}
    assert renamed and len(renamed) < len(source["adapters"]), source["adapters"]
    # A switch renamed through the network map, mount-wide: matched by friendly name; the
    # other disconnected on purpose.
    write("mount.settings", "network.1.source = Internal\nnetwork.1.target = LAN\n"
          "network.2.source = External\nnetwork.2.target =\n")
    with Mount(target, "mnt", "-o", "import,settings=%s" % os.path.realpath("mount.settings"),
               "-o", "generate_new_id=true") as m:
        procs = [subprocess.Popen(["cp", "-r", folder, os.path.join(m.point, n)])
                 for n in ("one", "two")]
        assert [p.wait() for p in procs] == [0, 0]
        one, two = wait_state(m.point, "one"), wait_state(m.point, "two")
    assert one["vm"]["id"] != two["vm"]["id"]
    files = []
    for imp in (one, two):
        vm = as_json(ok("vm", "show", "--json", "--store", target, imp["vm"]["id"]))
        assert vm["problem"] is None and len(vm["snapshots"]) == len(source["snapshots"]), vm
        for mine, theirs in zip(vm["disks"], source["disks"]):
            assert mine["chain_problem"] is None, mine
            # The base of each chain, against the source's, by qemu-img.
            run(["qemu-img", "compare", "-f", "vpc", "-F", "vpc", mine["chain"][-1],
                 theirs["chain"][-1]])
            assert ok("vhd", "cat", mine["path"], text=False).stdout == \
                ok("vhd", "cat", theirs["path"], text=False).stdout
        for adapter in vm["adapters"]:
            want = ("LAN", lan) if adapter["mac"] in renamed else (None, None)
            assert (adapter["switch"], adapter["switch_id"]) == want, (adapter, want)
        files.append(files_of_vm(vm))
    assert not files[0] & files[1]
    no_leftovers(target)


def test_a_malformed_configuration_fails_its_close():
    need("fusermount3")
    _, folder = gold()
    target = new_store("target")
    config = [n for n in os.listdir(os.path.join(folder, VMS)) if n.endswith(".xml")][0]
    shutil.copytree(folder, "broken")
    with open(os.path.join("broken", VMS, config), "r+b") as f:
        f.truncate(200)  # an XML document cut short
    with Mount(target, "mnt", "-o", "import") as m:
        result = run(["cp", "-r", "broken", os.path.join(m.point, "x")], check=False)
        assert result.returncode != 0, result
        assert config in result.stderr and ("close" in result.stderr or
                                            "Input/output" in result.stderr), result.stderr
        imp = wait_state(m.point, "x", ("waiting",))
        damaged = [e for e in imp["errors"] if e["id"] == "config-damaged"]
        assert damaged and damaged[0]["file"].endswith(config), imp
        # Every member of the status file is there (docs/JSON.md), null until registered.
        documented = documented_members()
        assert set(imp) == documented["import object"], sorted(imp)
        assert imp["vm"] is None and imp["commit_ms"] is None, imp
        for issue in imp["errors"] + imp["warnings"]:
            assert set(issue) == documented["issue object"], issue
            assert issue["severity"] == ("error" if issue in imp["errors"] else "warning"), \
                issue
            assert issue["file"] != "", issue
        time.sleep(1)
        assert vm_ids(target) == set(), "a malformed import was registered"
        # The same file written again whole: the import goes on.
        run(["cp", os.path.join(folder, VMS, config), os.path.join(m.point, "x", VMS, config)])
        imp = wait_state(m.point, "x")
        assert not [e for e in imp["errors"] if e["id"] == "config-damaged"], imp
        # A settings document that does not parse fails its close() too.
        os.mkdir(os.path.join(m.point, "y"))
        try:
            with open(os.path.join(m.point, "y", "impex-import.settings"), "w") as f:
                f.write("create_copy = maybe\n")
            raise AssertionError("a bad settings document closed without an error")
        except OSError as e:
            assert e.errno == 5, e
        assert [e["id"] for e in entry(m.point, "y")["errors"]] == ["settings-invalid"]
        # Files at the root: only folders are imports.
        try:
            open(os.path.join(m.point, "loose.xml"), "w").close()
            raise AssertionError("a file was made at the root")
        except OSError as e:
            assert e.errno == 1, e
    no_leftovers(target)


def test_never_registered_from_a_name_alone():
    """A disk cut short (what rsync --partial leaves) keeps the import waiting; rsync run
    again finishes it."""
    need("fusermount3", "rsync")
    states, folder = gold()
    target = new_store("target")
    shutil.copytree(folder, "partial")
    disks = sorted(os.listdir(os.path.join("partial", DISKS)))
    victim = os.path.join("partial", DISKS, disks[0])
    os.truncate(victim, os.path.getsize(victim) // 2)
    with Mount(target, "mnt", "-o", "import") as m:
        run(["rsync", "-a", "partial/", os.path.join(m.point, "x") + "/"])
        imp = wait_state(m.point, "x", ("waiting",))
        assert any(e["id"] in ("disk-damaged", "chain-broken") for e in imp["errors"]), imp
        time.sleep(1)
        assert entry(m.point, "x")["state"] == "waiting"
        assert vm_ids(target) == set()
        # The interrupted copy, run again: rsync sends the file whole.
        run(["rsync", "-a", folder + "/", os.path.join(m.point, "x") + "/"])
        guid = wait_state(m.point, "x")["vm"]["id"]
        # A folder made and left empty, given up with rmdir.
        os.mkdir(os.path.join(m.point, "empty"))
        os.rmdir(os.path.join(m.point, "empty"))
        assert "empty" not in os.listdir(m.point)
        # A folder left incomplete at unmount: rolled back.
        os.makedirs(os.path.join(m.point, "left", VMS))
        run(["cp", "-r", os.path.join(folder, DISKS), os.path.join(m.point, "left")])
    check_vm(target, guid, states, referees=False)
    assert vm_ids(target) == {guid}
    no_leftovers(target)


def unmount_dead(point):
    """Unmount the mount of a killed daemon (the copy tool has ended: nothing holds it)."""
    for _ in range(50):
        if subprocess.run(["fusermount3", "-u", point], stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError("fusermount3 -u %s keeps failing" % point)


def big_export(disk, data_mib, chain=False):
    """VM "big" of a new store "source": a @disk disk, @data_mib MiB of random data (and with
    @chain, a snapshot, the same data again further on, and a saved state), exported to
    "export"."""
    store = new_store("source")
    ok("vm", "new", "--store", store, "--disk", "ide:" + disk, "big")
    with open("data.bin", "wb") as f:
        f.write(os.urandom(data_mib << 20))
    ok("vm", "write", "--store", store, "big", "0", "0", "data.bin")
    if chain:
        ok("vm", "snapshot", "--store", store, "big", "s1")
        ok("vm", "write", "--store", store, "big", "0", str(64 << 20), "data.bin")
        ok("vm", "save", "--store", store, "big")
    ok("export", "--store", store, "big", "export")


def test_saved_state_without_its_other_half_waits():
    """rsync sends a .bin before its .vsv: a copy cut between the two must not register a VM
    without its state."""
    need("fusermount3", "rsync")
    ok("demo", "source")
    ok("export", "--store", "source", "blog", "exported")
    bins = [os.path.join(d, n) for d, _, names in os.walk("exported") for n in names
            if n.endswith(".bin")]
    assert bins, "the demo's blog has no saved state"
    target = blog_target()  # with the switches of the demo's adapters
    with Mount(target, "mnt", "-o", "import") as m:
        run(["rsync", "-a", "--exclude=*.vsv", "exported/", os.path.join(m.point, "x") + "/"])
        imp = wait_state(m.point, "x", ("waiting",))
        assert imp["errors"] and {e["id"] for e in imp["errors"]} == {"state-incomplete"}, imp
        assert vm_ids(target) == set()
        run(["rsync", "-a", "exported/", os.path.join(m.point, "x") + "/"])
        guid = wait_state(m.point, "x")["vm"]["id"]
    vm = as_json(ok("vm", "show", "--json", "--store", target, guid))
    source = as_json(ok("vm", "show", "--json", "--store", "source", "blog"))
    # The same states saved as in the source, each with both files.
    assert bool(vm["saved_state"]) == bool(source["saved_state"]), vm
    saved = {s["name"] for s in vm["snapshots"] if s["saved_state"]}
    assert saved == {s["name"] for s in source["snapshots"] if s["saved_state"]}, saved
    for folder in [vm["saved_state"]] + [s["saved_state"] for s in vm["snapshots"]]:
        if folder:
            assert sorted(n[36:] for n in os.listdir(folder)) == [".bin", ".vsv"], folder
    no_leftovers(target)


def test_status_waits_until_the_imports_settle():
    """impex status --wait, run as soon as the copy tool ends, prints the imports once none
    is copying or registering, and exits 0 only if every one is registered."""
    need("fusermount3", "rsync")
    ok("demo", "source")
    ok("export", "--store", "source", "gateway", "exported")
    target = blog_target()  # gateway's adapters are on the demo's two switches too
    with Mount(target, "mnt", "-o", "import") as m:
        run(["cp", "-r", "exported", os.path.join(m.point, "whole")])
        shown = ok("status", "--wait", m.point).stdout
        assert entry(m.point, "whole")["state"] == "registered", status(m.point)
        assert re.search(r"^  whole +registered .* VM %s 'gateway'$" %
                         entry(m.point, "whole")["vm"]["id"], shown, re.M), shown
        # Without its disks the copy waits for them: printed, and exit 1.
        run(["rsync", "-a", "--exclude=*.vhd", "exported/", os.path.join(m.point, "part") + "/"])
        result = call("status", "--wait", m.point)
        assert result.returncode == 1, result
        assert entry(m.point, "part")["state"] == "waiting", status(m.point)
        assert re.search(r"^  part +waiting ", result.stdout, re.M), result
        assert re.search(r"^  whole +registered ", result.stdout, re.M), result


def test_a_waiting_import_goes_on_when_the_store_changes():
    """Kept IDs: the same export twice; the second waits (id-exists) until the first VM is
    deleted, with nothing of it touched in the copied folder."""
    need("fusermount3")
    ok("demo", "source")
    ok("export", "--store", "source", "gateway", "exported")
    target = blog_target()  # with the switches of the demo's adapters
    with Mount(target, "mnt", "-o", "import,generate_new_id=false") as m:
        run(["cp", "-r", "exported", os.path.join(m.point, "first")])
        first = wait_state(m.point, "first")["vm"]["id"]
        run(["cp", "-r", "exported", os.path.join(m.point, "second")])
        imp = wait_state(m.point, "second", ("waiting",))
        assert "id-exists" in [e["id"] for e in imp["errors"]], imp
        ok("vm", "delete", "--store", target, "--disks", first)
        second = wait_state(m.point, "second", timeout=30)["vm"]["id"]
    assert second == first and vm_ids(target) == {first}
    no_leftovers(target)


def test_imports_begin_while_other_imports_sweep_the_store():
    """Every impex import into a store sweeps the temporary folders no mount holds; the
    folders an import mount is filling are never taken for them."""
    need("fusermount3")
    ok("demo", "source")
    ok("export", "--store", "source", "gateway", "exported")
    shutil.copytree("exported", "broken")
    for name in os.listdir(os.path.join("broken", DISKS)):
        os.truncate(os.path.join("broken", DISKS, name), 1024)
    target = blog_target()  # with the switches of the demo's adapters
    impex = os.environ.get("IMPEX", "impex")
    with Mount(target, "mnt", "-o", "import") as m:
        sweeper = subprocess.Popen(
            ["sh", "-c", 'while :; do "$0" import --store "$1" broken >/dev/null 2>&1; done',
             impex, target])
        try:
            for n in range(400):
                folder = os.path.join(m.point, "f%d" % n)
                os.mkdir(folder)
                write(os.path.join(folder, "note"), "x")
                assert os.listdir(folder) == ["note"], n
            run(["cp", "-r", "exported", os.path.join(m.point, "whole")])
            wait_state(m.point, "whole")
        finally:
            sweeper.kill()  # ours, by its id
            sweeper.wait()
        for n in range(400):
            assert os.listdir(os.path.join(m.point, "f%d" % n)) == ["note"], n
    no_leftovers(target)


def test_a_folder_of_two_vms_waits_until_its_settings_name_one():
    need("fusermount3")
    ok("demo", "source")
    ok("export", "--store", "source", "blog", "blog")
    ok("export", "--store", "source", "db", "db")
    db = as_json(ok("vm", "show", "--json", "--store", "source", "db"))
    target = blog_target()  # with the switches of the demo's adapters
    with Mount(target, "mnt", "-o", "import") as m:
        both = os.path.join(m.point, "both")
        run(["cp", "-r", "blog", both])
        run(["cp", "-r", "db/.", both])
        imp = wait_state(m.point, "both", ("waiting",))
        assert any("2 VM configurations" in e["message"] and "vm = GUID" in e["message"]
                   for e in imp["errors"]), imp
        write(os.path.join(both, "impex-import.settings"), "vm = %s\n" % db["id"].lower())
        imp = wait_state(m.point, "both")
    assert imp["vm"]["name"] == "db", imp
    vm = as_json(ok("vm", "show", "--json", "--store", target, imp["vm"]["id"]))
    assert vm["problem"] is None and len(vm["disks"]) == len(db["disks"]), vm
    for mine, theirs in zip(vm["disks"], db["disks"]):
        assert mine["chain_problem"] is None, mine
        assert ok("vhd", "cat", mine["path"], text=False).stdout == \
            ok("vhd", "cat", theirs["path"], text=False).stdout
    # Only the named VM's files were kept: blog's went with the import's folder.
    assert vm_ids(target) == {imp["vm"]["id"]}
    no_leftovers(target)


def written_by(pid):
    with open("/proc/%d/io" % pid) as f:
        return dict(line.split(": ") for line in f.read().splitlines())


def test_the_data_is_written_once():
    """The daemon writes each byte the copy tool sends once: the registration links the
    files into place, it does not copy them (counted by the kernel, /proc/PID/io)."""
    need("fusermount3")
    big_export("256M", 48, chain=True)
    data = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk("export")
               for n in names)
    target = new_store("target")
    with Mount(target, "mnt", "-o", "import") as m:
        before = int(written_by(m.proc.pid)["wchar"])
        run(["cp", "-r", "export", os.path.join(m.point, "x")])
        imp = wait_state(m.point, "x")
        after = int(written_by(m.proc.pid)["wchar"])
    # cp skips the holes: it sends the data (96 MiB written in the VM) and the metadata.
    sent = imp["bytes"]
    assert 96 << 20 <= sent <= data, (sent, data)
    assert after - before < sent * 1.05 + (1 << 20), (after - before, sent)
    print("# %d bytes sent by cp, %d written by the daemon" % (sent, after - before))


def test_killed_at_random_points_the_store_is_whole_or_untouched():
    need("fusermount3")
    big_export("256M", 48, chain=True)
    target = new_store("target")
    # How long a whole copy takes, to spread the kills over it and the registration.
    start = time.time()
    with Mount(target, "mnt", "-o", "import") as m:
        run(["cp", "-r", "export", os.path.join(m.point, "timed")])
        wait_state(m.point, "timed")
    span = time.time() - start + 0.3
    rng = random.Random(20261126)
    outcomes = {"no trace": 0, "whole": 0}
    for attempt in range(20):
        before = vm_ids(target)
        point = os.path.realpath("mnt")
        daemon = subprocess.Popen([IMPEXFS, "-f", "-o", "import", target, point],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while not os.path.ismount(point):
            assert daemon.poll() is None and time.time() < deadline, daemon.stderr.read()
            time.sleep(0.02)
        copy = subprocess.Popen(["cp", "-r", "export", os.path.join(point, "k%d" % attempt)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, span))
        daemon.kill()  # ours, by its id: SIGKILL
        daemon.wait()
        err = daemon.stderr.read().decode("utf-8", "replace")
        assert not sanitizer_report(err), err
        copy.wait(timeout=60)  # it meets ENOTCONN and ends
        unmount_dead(point)
        added = vm_ids(target) - before
        assert len(added) <= 1, added
        for guid in added:
            shown = as_json(ok("vm", "show", "--json", "--store", target, guid))
            assert shown["problem"] is None, shown
            assert all(d["chain_problem"] is None for d in shown["disks"]), shown
            assert shown["saved_state"], shown
        outcomes["whole" if added else "no trace"] += 1
    print("# 20 kills: %(no trace)d left no VM, %(whole)d left a whole one" % outcomes)
    assert outcomes["no trace"] >= 5, outcomes
    # The next mount recovers: no temporary name, no journal, no file of no VM.
    with Mount(target, "mnt", "-o", "import") as m:
        assert status(m.point)["imports"] == []
        try:
            no_leftovers(target)
        except AssertionError as e:
            # Recovery says in the log what it left alone, and why.
            raise AssertionError("%s; the daemon said: %s" % (e, m.stderr())) from e


def test_a_full_target_fails_the_copy_and_rolls_back():
    need("fusermount3")
    big_export("64M", 16)
    with small_store(size="8m") as target:
        with Mount(target, "mnt", "-o", "import") as m:
            # From the mount on (its staging folder is made then).
            before = tree_state(target)
            result = run(["cp", "-r", "export", os.path.join(m.point, "x")], check=False)
            assert result.returncode != 0 and "No space left" in result.stderr, result
            imp = wait_state(m.point, "x", ("failed",))
            assert [e["id"] for e in imp["errors"]] == ["space-short"], imp
            assert vm_ids(target) == set()
        # Nothing registered, no partial file: the store as it was.
        after = tree_state(target)
        assert after == before, describe_change(before, after, "a failed import")


def test_files_never_released_are_freed_when_the_connection_ends():
    """A file closed just before an unmount may never reach the daemon as released (its
    request still queued when the connection ends). Made certain here: the connection is
    aborted (fusectl) while a file of an import is open for writing. The daemon frees what it
    held (no leak in the sanitizers' build), exits 0 and rolls the import back."""
    need("fusermount3")
    if os.geteuid() != 0:
        raise Skip("aborting a FUSE connection needs root")
    control = "/sys/fs/fuse/connections"
    ours = not os.path.ismount(control)
    if ours:
        run(["mount", "-t", "fusectl", "none", control])
    try:
        store = new_store("target")
        m = Mount(store, "mnt", "-o", "import")
        try:
            os.mkdir(os.path.join(m.point, "x"))
            fd = os.open(os.path.join(m.point, "x", "a.bin"), os.O_CREAT | os.O_WRONLY, 0o644)
            try:
                os.write(fd, b"half a file")
                with open(os.path.join(control, str(os.minor(os.stat(m.point).st_dev)),
                                       "abort"), "w") as f:
                    f.write("1")
                m.proc.wait(timeout=30)
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass  # the connection is gone
        finally:
            m.unmount()  # exit status 0, no sanitizer report
        assert m.said("import 'x' was not complete at unmount: rolled back"), m.stderr()
        assert vm_ids(store) == set()
        no_leftovers(store)
    finally:
        if ours:
            run(["umount", control])


def test_bad_mount_settings_are_refused():
    need("fusermount3")
    target = new_store("target")
    os.mkdir("mnt")
    write("bad.settings", "create_copy = maybe\n")
    for options, words in [
            (["-o", "import,settings=%s" % os.path.realpath("bad.settings")],
             ["bad.settings", "line 1"]),
            (["-o", "import,settings=/nonexistent.settings"], ["nonexistent"]),
            (["-o", "import,create_copy=false"], ["create_copy"]),
            (["-o", "import,target_vhd_data_root=relative"], ["absolute"]),
            (["-o", "import,roots=relative"], ["roots", "absolute"]),
            (["-o", "import,copy_vm_storage=false"], ["copy_vm_storage", "export"]),
            (["-o", "settle=100"], ["settle", "import"])]:
        result = run([IMPEXFS, *options, target, "mnt"], check=False)
        assert result.returncode == 2, (options, result)
        assert all(w in result.stderr for w in words), (options, result.stderr)
        assert not os.path.ismount("mnt")


# ---- the scenarios, through the mount ----

def test_a_gold_vm_on_read_only_media_imported_five_times():
    need("fusermount3")
    if os.geteuid() != 0:
        raise Skip("a read-only bind mount needs root")
    states, folder = gold()
    os.mkdir("media")
    run(["mount", "--bind", folder, "media"])
    try:
        run(["mount", "-o", "remount,bind,ro", "media"])
        before = tree_state("media")
        target = new_store("target")
        with Mount(target, "mnt", "-o", "import") as m:
            guids = []
            for n in range(5):
                run(["cp", "-r", "media", os.path.join(m.point, "g%d" % n)])
                guids.append(wait_state(m.point, "g%d" % n)["vm"]["id"])
        assert tree_state("media") == before
    finally:
        subprocess.run(["umount", "media"], check=False)
    assert len(set(guids)) == 5
    files = [files_of_vm(check_vm(target, g, states, referees=False)) for g in guids]
    for i in range(5):
        for k in range(i + 1, 5):
            assert not files[i] & files[k], (i, k)
    no_leftovers(target)


def test_a_snapshot_copied_out_of_the_export_mount_into_the_import_mount():
    need("fusermount3", "qemu-img", "vhdiinfo")
    states, _ = gold()
    source = os.path.realpath("source")
    target = new_store("target")
    with Mount(source, "out") as out, Mount(target, "in", "-o", "import") as m:
        run(["cp", "-r", os.path.join(out.point, "snapshots", "m", "s2"),
             os.path.join(m.point, "s2")])
        guid = wait_state(m.point, "s2")["vm"]["id"]
    vm = check_vm(target, guid, {"current": states["s2"]}, ["current"], referees=False)
    for i, disk in enumerate(vm["disks"]):
        assert disk["chain"] == [disk["path"]], disk
        with open("want.raw", "wb") as f:
            f.write(states["s2"][i])
        run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", disk["path"], "want.raw"])
        run(["vhdiinfo", disk["path"]])


def test_a_configuration_only_export_with_its_settings_document_in_the_folder():
    need("fusermount3")
    ok("demo", "source")
    states = modelled_vm(os.path.realpath("source"))
    ok("export", "--store", "source", "--no-vm-storage", "m", "configs")
    target = new_store("target")
    source = as_json(ok("vm", "show", "--json", "--store", "source", "m"))
    where = {d["written"]: d["path"] for d in source["disks"]}
    for snap in source["snapshots"]:
        where.update({d["written"]: d["path"] for d in snap["disks"]})
    doc = parse(ok("import-settings", "--store", target, "configs").stdout)
    lines = ["name = from-elsewhere\n"]
    for n, r in enumerate(items(doc, "resource"), 1):
        lines.append("resource.%d.current = %s\nresource.%d.source = %s\n" % (
            n, r["current"], n, where[r["current"]]))
    write(os.path.join("configs", "impex-import.settings"), "".join(lines))
    # A document root copied in names sources only under the folders sources= allows.
    with Mount(target, "mnt", "-o", "import") as m:
        run(["cp", "-r", "configs", os.path.join(m.point, "c")])
        imp = wait_state(m.point, "c", ("waiting",))
        assert [e["id"] for e in imp["errors"]] == ["settings-invalid"], imp
        assert "sources=" in imp["errors"][0]["message"], imp
    assert vm_ids(target) == set()
    with Mount(target, "mnt", "-o", "import,sources=" + os.path.realpath("source")) as m:
        run(["cp", "-r", "configs", os.path.join(m.point, "c")])
        imp = wait_state(m.point, "c")
    assert imp["vm"]["name"] == "from-elsewhere", imp
    vm = check_vm(target, imp["vm"]["id"], states, referees=False)
    assert all(p.startswith(target + "/") for p in files_of_vm(vm)), files_of_vm(vm)
    # The document was read, not imported.
    assert not any("impex-import.settings" in n for _, _, names in os.walk(target)
                   for n in names)
    no_leftovers(target)


def test_target_roots_on_three_folders():
    """The VM's configuration, its disks and its snapshots on three folders: a store of three
    roots (STORE and roots=), the disks' folder from the mount's options, the snapshots' from
    the import's own document."""
    need("fusermount3")
    states, folder = gold()
    vms, snaps = new_store("vms"), new_store("snaps")
    disks = os.path.join(new_store("disks"), DISKS)
    other = os.path.join(new_store("other"), DISKS)
    shutil.copytree(folder, "three")
    write(os.path.join("three", "impex-import.settings"),
          "target_snapshot_data_root = %s\n" % snaps)
    options = "import,roots=%s:%s,target_vhd_data_root=%s" % (snaps, os.path.dirname(disks),
                                                            disks)
    with Mount(vms, "mnt", "-o", options) as m:
        run(["cp", "-r", "three", os.path.join(m.point, "r")])
        guid = wait_state(m.point, "r")["vm"]["id"]
        # The data went where the disks go: df on the mount shows that file system.
        assert statfs_matches(m.point, disks)
        # An import's own document may not send files where the mount's settings do not.
        shutil.copytree(folder, "elsewhere")
        write(os.path.join("elsewhere", "impex-import.settings"),
              "target_vhd_data_root = %s\n" % other)
        run(["cp", "-r", "elsewhere", os.path.join(m.point, "e")])
        imp = wait_state(m.point, "e", ("waiting",))
        assert [e["id"] for e in imp["errors"]] == ["settings-invalid"], imp
        assert other in imp["errors"][0]["message"], imp
    roots = ["--store", vms, "--store", snaps, "--store", os.path.dirname(disks)]
    vm = as_json(ok("vm", "show", "--json", *roots, guid))
    assert vm["config"].startswith(vms + "/" + VMS + "/"), vm["config"]
    assert vm["snapshots"] and all(s["config"].startswith(snaps + "/" + SNAPSHOTS + "/")
                                   for s in vm["snapshots"]), vm["snapshots"]
    assert all(p.startswith(disks + "/") for p in files_of_vm(vm)), files_of_vm(vm)
    assert_states_of(vm, states, STATES)
    assert os.listdir(os.path.join(vms, DISKS)) == [] and os.listdir(other) == []
    assert {v["id"] for v in as_json(ok("vm", "list", "--json", *roots))} == {guid}


def test_round_trip_through_both_mounts():
    need("fusermount3", "qemu-img")
    states, _ = gold()
    source = os.path.realpath("source")
    target = new_store("target")
    with Mount(source, "out") as out, Mount(target, "in", "-o", "import") as m:
        run(["cp", "-r", os.path.join(out.point, "vms", "m"), os.path.join(m.point, "m")])
        guid = wait_state(m.point, "m")["vm"]["id"]
    with Mount(source, "out") as one, Mount(target, "out2") as two:
        first = os.path.join(one.point, "vms", "m")
        second = os.path.join(two.point, "vms", "m")
        a = as_json(ok("vm", "show", "--json", "--store", first, "m"))
        b = as_json(ok("vm", "show", "--json", "--store", second, guid))
        assert_states_of(b, states, STATES)
        for x, y in zip(a["disks"], b["disks"]):
            run(["qemu-img", "compare", "-f", "vpc", "-F", "vpc", x["chain"][-1], y["chain"][-1]])
        assert_only_intended_edits(a, b)


if __name__ == "__main__":
    run_tests(globals())
