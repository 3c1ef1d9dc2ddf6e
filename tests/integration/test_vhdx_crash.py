"""Crash safety of the VHDX writer (core/vhdx_write.c), driven through
tests/vhdxwrite: the writer is cut off at every system call that writes or
syncs (cut mid-write; unsynced writes lost at random; unsynced writes but the
newest lost, as a disk that reorders; every call failing from one on), killed
with SIGKILL at random moments, and run out of space on a small file system.
Every time, the file opens in the project's reader (tests/vhdxdump), in
tests/vhdxread.py (written from [MS-VHDX] alone) and, for dynamic disks, in
qemu-img check (after its own replay of the log where one is left; QEMU 7.2
opens no differencing file: "Operation not supported"), and each
sector reads what it held before the write that was cut off or what that
write put there; a writer started again replays what is left and finishes.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vhdxwritelib import (MiB, VHDXWRITE, Progress, assert_clean,  # noqa: E402
                          check_crashed, crash_scenarios, make_parent, read, save_plan, vr,
                          vw)
from taplib import Skip, have, run, run_tests  # noqa: E402


def test_cut_off_at_every_call():
    """The writer cut off at each of its system calls that write or sync, in turn: in the
    middle of the call (half a pwrite written), with the writes not yet synced lost at
    random 4 KiB by 4 KiB (a host losing its power), or with that call and all after it
    failing (EIO). Each time the file opens everywhere and each sector is old or new;
    a writer started again then finishes the plan, and the file is the model's."""
    qemu_ok = have("qemu-img")
    total_runs = 0
    for name, make, logical, plan, qemu in crash_scenarios():
        if os.environ.get("ONLY") and name != os.environ["ONLY"]:
            continue
        started = time.time()
        os.mkdir(name)
        os.chdir(name)
        base, parent = make()
        save_plan(plan)
        shutil.copy("base.vhdx", "count.vhdx")
        calls = int(vw("pattern", "count.vhdx", "plan.txt", env={"IMPEX_FAIL_COUNT": "1"})
                    .stderr.split("calls=")[1])
        dirty_left = 0
        for n in range(1, calls + 1):
            for mode in ("crash", "lose", "reorder", "eio"):
                shutil.copy("base.vhdx", "w.vhdx")
                spec = "%d:%s:%d" % (n, mode, n)
                result = vw("pattern", "w.vhdx", "plan.txt", check=False,
                            env={"IMPEX_FAIL_AT": spec})
                assert result.returncode == (1 if mode == "eio" else 3), (spec, result.stderr)
                done = len(result.stdout.split())
                what = "(%s, cut at call %d of %d, %s, after %d writes)" % (
                    name, n, calls, mode, done)
                old, new = Progress(base, plan, logical).at(done)
                # qemu-img referees the ways that leave the file most different.
                dirty_left += check_crashed("w.vhdx", old, new, logical, parent,
                                            qemu and qemu_ok and mode in ("crash", "lose"),
                                            what)
                if mode == "lose" and n % 2 == 0:
                    # Started again, the writer replays what is left and finishes.
                    vw("pattern", "w.vhdx", "plan.txt", done)
                    assert_clean("w.vhdx", both=False)
                    final = vr.VhdxFile("w.vhdx").read(parent=parent)
                    assert final == Progress(base, plan, logical).at(len(plan))[0], (
                        "not finished " + what)
                total_runs += 1
        print("# %s: %d calls, each cut four ways; %d times a log was left to replay "
              "(%.0f s)" % (name, calls, dirty_left, time.time() - started))
        os.chdir("..")
    assert total_runs > 100, total_runs


def test_killed_at_random_moments():
    """A writer working through a long plan is killed with SIGKILL at random moments, then
    started again from where it was, 30 times per disk: each time the file opens
    everywhere, each sector old or new."""
    rng = random.Random(1234)
    for name, logical, make in (("dynamic", 512, None), ("differencing", 512, True)):
        os.mkdir(name)
        os.chdir(name)
        size = 64 * MiB
        parent = None
        if make:
            base = make_parent("parent.vhdx", size, logical, 90).bytes()
            vw("diff", "w.vhdx", "parent.vhdx")
            parent = vr.VhdxFile("parent.vhdx")
        else:
            vw("create", "w.vhdx", size, "dynamic", MiB)
            base = bytes(size)
        total = size // logical
        plan = []
        for _ in range(1500):
            count = rng.choice((1, 1, 3, 8, 64, 2048, 4100))
            plan.append((rng.randrange(total - count), count))
        save_plan(plan)
        progress = Progress(base, plan, logical)
        done, kills = 0, 0
        while kills < 30 and done < len(plan):
            proc = subprocess.Popen([VHDXWRITE, "pattern", "w.vhdx", "plan.txt", str(done)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # Killed after a number of writes (it says each one done), then a moment more:
            # the moment falls anywhere, in the open or its replay, a write or its log, and
            # 30 kills come before the plan's end however fast the disk.
            said = 0
            for _ in range(rng.randrange(40)):
                if not proc.stdout.readline():
                    break
                said += 1
            time.sleep(rng.uniform(0, 0.004))
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate()
            if proc.returncode == 0:
                done = len(plan)
                break
            assert proc.returncode == -signal.SIGKILL, (proc.returncode, err)
            done += said + len(out.split())
            kills += 1
            old, new = progress.at(done)
            check_crashed("w.vhdx", old, new, logical,
                          parent, qemu=not make and have("qemu-img"),
                          what="(%s, kill %d, after %d writes)" % (name, kills, done))
        # Started again, it goes on from where it was.
        save_plan(plan[:done + 40], "rest.txt")
        vw("pattern", "w.vhdx", "rest.txt", done)
        assert_clean("w.vhdx", both=False)
        assert vr.VhdxFile("w.vhdx").read(parent=parent) == progress.at(
            min(done + 40, len(plan)))[0]
        print("# %s: killed %d times" % (name, kills))
        assert kills == 30, kills
        os.chdir("..")


def test_file_system_full():
    """A dynamic disk on a file system too small for its writes: the write that finds no
    room fails with a clear message, the file opens everywhere with each sector old or
    new, and once there is room again the writer finishes."""
    if os.geteuid() != 0:
        raise Skip("mounting a small tmpfs needs root")
    os.mkdir("small")
    run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", "small"])
    try:
        vw("create", "small/w.vhdx", 64 * MiB, "dynamic", MiB)
        spb = MiB // 512
        plan = [(b * spb + 3, spb - 7) for b in range(0, 40, 2)]
        save_plan(plan)
        progress = Progress(bytes(64 * MiB), plan, 512)
        result = vw("pattern", "small/w.vhdx", "plan.txt", check=False)
        assert result.returncode == 1 and "No space left on device" in result.stderr, result
        assert "'small/w.vhdx'" in result.stderr, result.stderr
        print("# %s" % result.stderr.strip())
        done = len(result.stdout.split())
        assert 0 < done < len(plan)
        old, new = progress.at(done)
        check_crashed("small/w.vhdx", old, new, 512,
                      qemu=have("qemu-img"), what="(after %d writes)" % done)
        run(["mount", "-o", "remount,size=100m", "small"])
        vw("pattern", "small/w.vhdx", "plan.txt", done)
        assert read("small/w.vhdx") == progress.at(len(plan))[0]
        assert_clean("small/w.vhdx")
    finally:
        run(["umount", "small"])


run_tests(globals())
