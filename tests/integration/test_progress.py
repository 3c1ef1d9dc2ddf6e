"""The long jobs of impex (export, import, vhd flatten, vhd cat into a file): a
progress line on standard error when it is a terminal (a real pty here), or
with -p; none on a pipe or under CI=true. Their outputs appear only when
whole: SIGINT mid-copy, or a write that fails, leaves neither the output nor
its temporary name, and the same command run again succeeds. Outputs are
checked with qemu-img against content built here.
"""

import os
import re
import signal
import subprocess
import time

from impexlib import DISKS, VMS, as_json, call, need, new_store, ok, tree_state, describe_change
from taplib import IMPEX, Skip, run, run_tests, sanitizer_clean

SIZE = 512 << 20          # the disk's size
DATA = 256 << 20          # the bytes of it written (not zeros): what the copies take time over
PATTERN = b"\x5a\xa5impex" * 4096

BIG = None  # (store, disk path, export folder, expected raw image), made once


def big():
    """A store with one VM "big", its disk holding DATA bytes of a pattern, its
    export folder, and the raw image the disk must read as, written here."""
    global BIG
    if BIG is None or not os.path.isdir(BIG[0]):
        top = os.path.join(os.path.realpath(os.environ.get("TMPDIR", "/tmp")),
                           "impex-progress-%d" % os.getpid())
        run(["rm", "-rf", top])
        os.mkdir(top)
        store = new_store(os.path.join(top, "store"))
        ok("vm", "new", "--store", store, "--disk", "ide:512M", "big")
        raw = os.path.join(top, "expected.raw")
        with open(raw, "wb") as f:
            for _ in range(DATA // len(PATTERN)):
                f.write(PATTERN)
            f.truncate(SIZE)
        data = os.path.join(top, "data.bin")
        with open(data, "wb") as f:
            for _ in range(DATA // len(PATTERN)):
                f.write(PATTERN)
        ok("vm", "write", "--store", store, "big", "0", "0", data, timeout=300)
        os.unlink(data)
        disk = as_json(ok("vm", "show", "--json", "--store", store, "big"))["disks"][0]["path"]
        ok("export", "--store", store, "big", os.path.join(top, "export"), timeout=300)
        BIG = (store, disk, os.path.join(top, "export"), raw)
    return BIG


def same_disk(vhd, raw):
    run(["qemu-img", "info", "-f", "vpc", vhd])
    result = run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", vhd, raw], check=False)
    assert result.returncode == 0, "qemu-img compare %s %s: %r" % (vhd, raw, result)


def the_jobs(target):
    """(name, args, stdout file or None) of each long job, writing under the current folder."""
    store, disk, export, _ = big()
    return [
        ("export", ["export", "--store", store, "big", "out"], None),
        ("flatten", ["vhd", "flatten", disk, "flat.vhd"], None),
        ("cat", ["vhd", "cat", disk], "raw.img"),
        ("import", ["import", "--store", target, export], None),
    ]


def with_pty(args, stdout_path=None, env=None):
    """impex ARGS, its standard error a new terminal: (exit status, what the terminal got)."""
    master, slave = os.openpty()
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen([IMPEX] + args, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=slave, env=dict(os.environ, **(env or {})))
    finally:
        os.close(slave)
        if stdout_path:
            out.close()
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last holder of the terminal's other end is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.wait(timeout=300), seen.decode("utf-8", "replace")


FRAME = re.compile(r"\r *([0-9]+)% \[(=*) *\] ([0-9.]+)/([0-9.]+) (KiB|MiB|GiB)  "
                   r"[0-9.]+ (KiB|MiB|GiB)/s")


def assert_bar(text, what):
    """@text holds a progress line redrawn in place, ending at 100 % on a line of its own."""
    frames = FRAME.findall(text)
    assert frames, "%s: no progress line in %r" % (what, text[-500:])
    percents = [int(f[0]) for f in frames]
    assert percents == sorted(percents), "%s: %r" % (what, percents)
    last = frames[-1]
    assert last[0] == "100" and last[1] == "=" * 20 and last[2] == last[3], (what, last)
    # Its final state stays, the line ended (a terminal turns "\n" into "\r\n").
    tail = text[text.rindex("\r100%"):]
    assert re.match(r"\r100% [^\r\n]*\r?\n", tail), "%s: the line is not ended: %r" % (what, tail)


def test_a_bar_on_a_terminal_for_each_long_job():
    need("qemu-img")
    _, _, _, raw = big()
    target = new_store("target")
    for name, args, stdout in the_jobs(target):
        status, text = with_pty(args, stdout, env={"CI": ""})
        assert status == 0, (name, status, text[-1000:])
        assert_bar(text, name)
        if name == "export" or name == "import":
            # 256 MiB of data in a 512 MiB disk: counted in MiB, as the output's files are.
            assert FRAME.findall(text)[-1][4] == "MiB", text[-300:]
    same_disk("flat.vhd", raw)
    same_disk(os.path.join("out", DISKS, "big.vhd"), raw)
    run(["cmp", "raw.img", raw])
    # A job refused before its first byte draws no line, only its message.
    store = big()[0]
    status, text = with_pty(["export", "--store", store, "nosuch", "none"], env={"CI": ""})
    assert status == 1 and text.startswith("impex: ") and "%" not in text, (status, text)


def test_no_bar_on_a_pipe_or_in_ci_and_p_forces_one():
    target = new_store("target")
    for name, args, stdout in the_jobs(target):
        # Standard error a pipe: quiet.
        kw = {}
        if stdout:
            kw["stdout"] = open(stdout, "wb")
        result = call(*args, text=False, **kw) if stdout else call(*args)
        if stdout:
            kw["stdout"].close()
        assert result.returncode == 0, (name, result)
        err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
        assert err == "", (name, err)
        clean(name)
        # A terminal, but CI=true: quiet too.
        status, text = with_pty(args, stdout, env={"CI": "true"})
        assert status == 0 and text == "", (name, status, text)
        clean(name)
        # -p (and --progress) forces the line, on a pipe as in CI.
        flag = "-p" if name != "import" else "--progress"
        at = 1 if args[0] != "vhd" else 2
        forced = args[:at] + [flag] + args[at:]
        if stdout:
            with open(stdout, "wb") as f:
                result = subprocess.run([IMPEX] + forced, stdout=f, stderr=subprocess.PIPE,
                                        env=dict(os.environ, CI="true"), timeout=300)
        else:
            result = subprocess.run([IMPEX] + forced, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=dict(os.environ, CI="true"),
                                    timeout=300)
        sanitizer_clean(result)
        assert result.returncode == 0, (name, result)
        assert_bar(result.stderr.decode(), name + " -p")
        clean(name)
    # cat into a pipe draws nothing even on a terminal: its output may be that terminal.
    _, disk, _, _ = big()
    status, text = with_pty(["vhd", "cat", disk], None, env={"CI": ""})
    assert status == 0 and text == "", (status, text[-300:])


def clean(name):
    """Remove what the job @name made here (the import's VMs stay in their store)."""
    for path in ("out", "flat.vhd", "raw.img"):
        run(["rm", "-rf", path])


def leftovers(folder, temp_mark):
    return [n for n in os.listdir(folder) if temp_mark in n]


def interrupt_when(proc, ready, what, sig=signal.SIGINT):
    """@sig to @proc once ready() is true (its temporary output there): stopped
    first, so that the signal lands mid-copy however busy the machine is."""
    deadline = time.time() + 120
    while not ready():
        assert proc.poll() is None, "%s ended before it was interrupted: %r" % (
            what, proc.communicate())
        assert time.time() < deadline, what
    proc.send_signal(signal.SIGSTOP)  # ours, by its id
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    err = err.decode("utf-8", "replace")
    assert proc.returncode == 1, "%s: exit %r: %s" % (what, proc.returncode, err)
    assert "impex: interrupted" in err, "%s: %s" % (what, err)
    assert "Sanitizer" not in err and "runtime error" not in err, err
    return err


def test_a_signal_mid_copy_leaves_nothing_and_a_rerun_succeeds():
    need("qemu-img")
    store, disk, export, raw = big()
    here = os.getcwd()

    # export: no folder, no temporary folder.
    proc = subprocess.Popen([IMPEX, "export", "--store", store, "big", "out"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    interrupt_when(proc, lambda: leftovers(here, ".out.partial-"), "export")
    assert os.listdir(here) == [], os.listdir(here)
    ok("export", "--store", store, "big", "out")
    same_disk(os.path.join("out", DISKS, "big.vhd"), raw)
    assert leftovers(here, "partial") == []

    # vhd flatten, stopped by SIGTERM: no file, no temporary file.
    proc = subprocess.Popen([IMPEX, "vhd", "flatten", disk, "flat.vhd"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    interrupt_when(proc, lambda: leftovers(here, ".flat.vhd.partial-"), "flatten",
                   signal.SIGTERM)
    assert sorted(os.listdir(here)) == ["out"], os.listdir(here)
    ok("vhd", "flatten", disk, "flat.vhd")
    same_disk("flat.vhd", raw)

    # vhd cat into a file the shell made: left empty, as it was.
    with open("raw.img", "wb") as f:
        proc = subprocess.Popen([IMPEX, "vhd", "cat", disk], stdout=f, stderr=subprocess.PIPE)
    interrupt_when(proc, lambda: os.stat("raw.img").st_blocks > 0, "cat")
    assert os.stat("raw.img").st_size == 0
    with open("raw.img", "wb") as f:
        assert subprocess.run([IMPEX, "vhd", "cat", disk], stdout=f).returncode == 0
    run(["cmp", "raw.img", raw])

    # import: no VM, no file in the store; then it imports.
    target = new_store("target")
    before = tree_state(target)
    proc = subprocess.Popen([IMPEX, "import", "--store", target, export],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    interrupt_when(proc, lambda: leftovers(os.path.join(target, DISKS), "impex-import"),
                   "import")
    assert tree_state(target) == before, describe_change(before, tree_state(target), "import")
    assert as_json(ok("vm", "list", "--json", "--store", target)) == []
    guid = ok("import", "--store", target, export).stdout.split()[0]
    shown = as_json(ok("vm", "show", "--json", "--store", target, guid))
    same_disk(shown["disks"][0]["path"], raw)
    assert leftovers(os.path.join(target, DISKS), "impex-import") == []


def test_a_write_that_fails_leaves_nothing():
    if os.geteuid() != 0:
        raise Skip("a small tmpfs needs root")
    store, disk, _, _ = big()
    os.mkdir("small")
    run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", "small"])
    try:
        # 256 MiB of data into 64 MiB: each fails midway, with the file system's word.
        for args, output in [(["export", "--store", store, "big", "small/out"], "small/out"),
                             (["vhd", "flatten", disk, "small/flat.vhd"], "small/flat.vhd")]:
            result = call(*args)
            assert result.returncode == 1, (args, result)
            assert "No space left on device" in result.stderr, (args, result.stderr)
            # Named by the name it would have had.
            assert "'%s" % output in result.stderr, (args, result.stderr)
            assert os.listdir("small") == [], (args, os.listdir("small"))
        # A folder that cannot be written: nothing made, the folder named.
        os.mkdir("small/ro")
        run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", "small/ro"])
        try:
            result = call("vhd", "flatten", disk, "small/ro/flat.vhd")
            assert result.returncode == 1 and "small/ro/flat.vhd" in result.stderr and \
                "Read-only file system" in result.stderr, result
            result = call("export", "--store", store, "big", "small/ro/out")
            assert result.returncode == 1 and "small/ro/out" in result.stderr, result
            assert os.listdir("small/ro") == []
        finally:
            run(["umount", "small/ro"], check=False)
    finally:
        run(["umount", "small"], check=False)


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        if BIG:
            run(["rm", "-rf", os.path.dirname(BIG[0])], check=False)
