"""The impex command line: exit codes, messages, refusals, input and output.

Exit status: 0 done, 1 failure, 2 usage error (with a "usage:" line). The
conventions every command shares (option order, help, completion):
test_cli_conventions.py.
"""

import json
import os
import random
import re
import subprocess

from taplib import IMPEX, Skip, impex, run_tests, sanitizer_clean

MiB = 1024 * 1024
SECTOR = 512
MIB = 1024 * 1024


def call(*args, input=None, text=True, **kw):
    """Run impex ARGS without insisting on success; no sanitizer report allowed."""
    result = impex(*args, check=False, input=input, text=text, **kw)
    sanitizer_clean(result)
    return result


def ok(*args, **kw):
    result = call(*args, **kw)
    assert result.returncode == 0, "impex %s: %r" % (" ".join(map(str, args)), result)
    return result


def usage_error(*args, mentions=()):
    """impex ARGS exits 2 with a message and a usage line."""
    result = call(*args)
    assert result.returncode == 2, "impex %s: %r" % (" ".join(map(str, args)), result)
    assert result.stdout == "", result
    assert re.search(r"^usage: impex", result.stderr, re.M), \
        "impex %s: no usage line: %r" % (" ".join(map(str, args)), result)
    for text in mentions:
        assert text in result.stderr, "impex %s: %r does not say %r" % (
            " ".join(map(str, args)), result.stderr, text)
    return result


def failure(*args, mentions=(), **kw):
    """impex ARGS exits 1 with a message naming what failed."""
    result = call(*args, **kw)
    assert result.returncode == 1, "impex %s: %r" % (" ".join(map(str, args)), result)
    err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert err.startswith("impex: "), result
    for text in mentions:
        assert text in err, "impex %s: %r does not say %r" % (
            " ".join(map(str, args)), err, text)
    return result


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def cat(path):
    return ok("vhd", "cat", path, text=False).stdout


# ---- usage errors ----

def test_no_arguments():
    result = call()
    assert result.returncode == 2, result
    assert result.stderr.startswith("usage: impex"), result
    assert "impex vhd create" in result.stderr, result


def test_unknown_command():
    usage_error("frobnicate", mentions=["unknown command 'frobnicate'"])
    result = call("vhd", "frobnicate")
    assert result.returncode == 2, result
    assert "unknown vhd command 'frobnicate'" in result.stderr, result
    assert "impex vhd info" in result.stderr, result
    result = call("vhd")
    assert result.returncode == 2, result
    assert "impex vhd create" in result.stderr, result


def test_missing_operands():
    ok("vhd", "create", "d.vhd", "4M")
    for args in (["info"], ["check"], ["cat"], ["create"], ["create", "x.vhd"],
                 ["snapshot"], ["snapshot", "d.vhd"], ["write"], ["write", "d.vhd"],
                 ["flatten"], ["flatten", "d.vhd"]):
        usage_error("vhd", *args, mentions=["missing operand", "usage: impex vhd " + args[0]])
    assert not os.path.exists("x.vhd")


def test_too_many_operands():
    ok("vhd", "create", "d.vhd", "4M")
    for args in (["info", "d.vhd", "d.vhd"], ["cat", "d.vhd", "x"],
                 ["create", "x.vhd", "4M", "y"], ["write", "d.vhd", "0", "a", "b"]):
        usage_error("vhd", *args, mentions=["too many operands"])


def test_unknown_option():
    ok("vhd", "create", "d.vhd", "4M")
    usage_error("vhd", "info", "--bogus", "d.vhd", mentions=["unknown option '--bogus'"])
    usage_error("vhd", "cat", "-x", "d.vhd", mentions=["unknown option '-x'"])
    # Grouped short options: the message names the option, not the command.
    usage_error("vhd", "info", "-xy", "d.vhd", mentions=["'-x"])


def test_option_missing_its_argument():
    for args in (["create", "--type"], ["info", "--pathmap"], ["create", "--block-size"]):
        result = usage_error("vhd", *args, mentions=[args[-1]])
        assert "unknown option" not in result.stderr, \
            "impex vhd %s: a known option is called unknown: %r" % (
                " ".join(args), result.stderr)


def test_bad_size():
    for size in ("12X", "", "-1", "+4M", "1.5M", "M", "4MiBs", "4 M", "0x10", "99999999999T"):
        usage_error("vhd", "create", "--", "d.vhd", size,
                    mentions=["'%s' is not a size" % size])
        assert not os.path.exists("d.vhd"), size


def usage_problems(args, mentions=()):
    """What is wrong with how impex ARGS reports a usage error, or None."""
    result = call(*args)
    problems = []
    if result.returncode != 2:
        problems.append("exit %d" % result.returncode)
    if not re.search(r"^usage: impex", result.stderr, re.M):
        problems.append("no usage line")
    problems += ["no %r" % text for text in mentions if text not in result.stderr]
    if problems:
        return "impex %s: %s (stderr %r)" % (" ".join(args), ", ".join(problems), result.stderr)
    return None


def test_size_not_whole_mib():
    problems = []
    for size, says in (("1000000", "whole number of MiB"), ("1536K", "whole number of MiB"),
                       ("4097K", "whole number of MiB"), ("1048577", "whole number of MiB"),
                       ("0", "smallest disk is 1 MiB")):
        problems.append(usage_problems(["vhd", "create", "d.vhd", size], mentions=[says]))
        if os.path.exists("d.vhd"):
            problems.append("size %s: d.vhd was created" % size)
            os.unlink("d.vhd")
    result = call("vhd", "create", "d.vhd", "0")
    if "try 0)" in result.stderr:
        problems.append("a zero size suggests zero: %r" % result.stderr)
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)


def test_size_over_the_limit():
    result = call("vhd", "create", "d.vhd", "3T")
    assert result.returncode in (1, 2), result
    assert "2040 GiB" in result.stderr, result
    assert not os.path.exists("d.vhd")


def test_bad_type():
    for disk_type in ("sparse", "differencing", "Fixed", ""):
        usage_error("vhd", "create", "--type", disk_type, "d.vhd", "4M",
                    mentions=["'%s'" % disk_type, "fixed or dynamic"])
        assert not os.path.exists("d.vhd")


def test_bad_block_size():
    problems = []
    for block in ("1X", "-2M", "5G"):
        problems.append(usage_problems(["vhd", "create", "--block-size", block, "d.vhd", "4M"],
                                       mentions=["'%s' is not a block size" % block]))
    # Sizes that parse but are no block size: not a power of two, too small,
    # too large, zero.
    for block in ("3M", "1000", "256", "512M", "0"):
        problems.append(usage_problems(["vhd", "create", "--block-size", block, "d.vhd", "4M"],
                                       mentions=["block size"]))
        if os.path.exists("d.vhd"):
            problems.append("block size %s: d.vhd was created" % block)
            os.unlink("d.vhd")
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)


def test_bad_path_map():
    ok("vhd", "create", "d.vhd", "4M")
    for spec in ("C:\\VMs", "C:\\VMs=", "C:\\VMs=relative/dir"):
        result = call("vhd", "cat", "--pathmap", spec, "d.vhd")
        assert result.returncode == 2, (spec, result)
        assert result.stdout == "", result
        assert "path map" in result.stderr and spec in result.stderr, (spec, result)


# ---- help and version ----

def test_version():
    result = ok("--version")
    assert re.fullmatch(r"impex \d+\.\d+(\.\d+)?\S*\n", result.stdout), result
    assert result.stderr == "", result


def test_help():
    result = ok("--help")
    assert result.stdout.startswith("usage: impex"), result
    for command in ("info", "check", "create", "snapshot", "write", "cat", "flatten"):
        assert "impex vhd " + command in result.stdout, (command, result)
        sub = ok("vhd", command, "--help")
        assert sub.stdout.startswith("usage: impex vhd " + command), sub
    assert ok("vhd", "--help").stdout == ok("vhd", "help").stdout


# ---- refusals ----

def test_create_refuses_existing_file():
    ok("vhd", "create", "d.vhd", "4M")
    before = read("d.vhd")
    mtime = os.stat("d.vhd").st_mtime_ns
    for args in (["d.vhd", "8M"], ["--type", "fixed", "d.vhd", "4M"]):
        failure("vhd", "create", *args, mentions=["'d.vhd' already exists"])
        assert read("d.vhd") == before
        assert os.stat("d.vhd").st_mtime_ns == mtime
    write_file("notes.txt", b"keep me\n")
    failure("vhd", "create", "notes.txt", "4M", mentions=["'notes.txt'"])
    assert read("notes.txt") == b"keep me\n"
    failure("vhd", "snapshot", "d.vhd", "notes.txt", mentions=["'notes.txt'"])
    assert read("notes.txt") == b"keep me\n"


def test_flatten_refuses_existing_output():
    ok("vhd", "create", "d.vhd", "4M")
    ok("vhd", "write", "d.vhd", "1M", "-", input=os.urandom(SECTOR), text=False)
    write_file("out.vhd", b"precious\n")
    failure("vhd", "flatten", "d.vhd", "out.vhd", mentions=["'out.vhd'"])
    assert read("out.vhd") == b"precious\n"
    failure("vhd", "flatten", "d.vhd", "d.vhd", mentions=["'d.vhd'"])
    ok("vhd", "check", "d.vhd")
    failure("vhd", "flatten", "d.vhd", "no/such/dir/out.vhd", mentions=["no/such/dir/out.vhd"])


def test_write_unaligned_offset():
    ok("vhd", "create", "d.vhd", "4M")
    write_file("in.bin", os.urandom(SECTOR))
    before = read("d.vhd")
    for offset in ("100", "513", "1000"):
        usage_error("vhd", "write", "d.vhd", offset, "in.bin",
                    mentions=["offset %s is not a multiple of 512" % offset])
    for offset in ("1.5M", "x", "-512"):
        usage_error("vhd", "write", "d.vhd", "--", offset, "in.bin",
                    mentions=["'%s' is not an offset" % offset])
    # Without "--", an operand that starts with '-' is an option, and the message says so.
    usage_error("vhd", "write", "d.vhd", "-512", "in.bin",
                mentions=["unknown option '-5' in '-512'", "'--'"])
    assert read("d.vhd") == before


def test_write_input_not_whole_sectors():
    ok("vhd", "create", "d.vhd", "4M")
    before = read("d.vhd")
    write_file("odd.bin", os.urandom(1000))
    failure("vhd", "write", "d.vhd", "0", "odd.bin",
            mentions=["'odd.bin' is 1000 bytes", "512-byte sectors"])
    assert read("d.vhd") == before
    failure("vhd", "write", "d.vhd", "0", "-", input=os.urandom(1000), text=False,
            mentions=["standard input", "partial sector", "1000 bytes"])
    assert read("d.vhd") == before
    failure("vhd", "write", "d.vhd", "0", "missing.bin", mentions=["'missing.bin'"])


def test_write_past_the_end():
    for disk_type in ("dynamic", "fixed"):
        name = disk_type + ".vhd"
        ok("vhd", "create", "--type", disk_type, name, "4M")
        before = read(name)
        write_file("in.bin", os.urandom(2 * SECTOR))
        for offset in (4 * MiB, 4 * MiB - SECTOR, 4 * MiB + 16 * SECTOR, 1 << 40):
            failure("vhd", "write", name, offset, "in.bin", mentions=["does not fit", name])
            assert read(name) == before, offset
        # Exactly up to the end is fine.
        ok("vhd", "write", name, 4 * MiB - 2 * SECTOR, "in.bin")
        ok("vhd", "check", name)
        assert cat(name)[-2 * SECTOR:] == read("in.bin")


def test_write_not_a_vhd():
    write_file("notes.txt", b"x" * 4096)
    write_file("in.bin", bytes(SECTOR))
    failure("vhd", "write", "notes.txt", "0", "in.bin", mentions=["'notes.txt'"])
    assert read("notes.txt") == b"x" * 4096
    failure("vhd", "write", "none.vhd", "0", "in.bin", mentions=["'none.vhd'"])
    assert not os.path.exists("none.vhd")


def test_write_from_standard_input():
    ok("vhd", "create", "d.vhd", "16M")
    expected = bytearray(16 * MiB)
    rng = random.Random(1)
    # More than one 4 MiB read of standard input, at an odd sector.
    data = rng.randbytes(5 * MiB + 3 * SECTOR)
    ok("vhd", "write", "d.vhd", 3 * MiB + 7 * SECTOR, "-", input=data, text=False)
    expected[3 * MiB + 7 * SECTOR:3 * MiB + 7 * SECTOR + len(data)] = data
    # No INPUT operand reads standard input too.
    data = rng.randbytes(SECTOR)
    ok("vhd", "write", "d.vhd", "15M", input=data, text=False)
    expected[15 * MiB:15 * MiB + SECTOR] = data
    # Sizes with units.
    data = rng.randbytes(2 * SECTOR)
    ok("vhd", "write", "d.vhd", "1KiB", input=data, text=False)
    expected[1024:1024 + len(data)] = data
    # From a pipe that delivers in small pieces.
    data = rng.randbytes(64 * SECTOR)
    proc = subprocess.Popen([IMPEX, "vhd", "write", "d.vhd", "12M", "-"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    for i in range(0, len(data), 700):
        proc.stdin.write(data[i:i + 700])
        proc.stdin.flush()
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert "Sanitizer" not in err and "runtime error" not in err, err
    expected[12 * MiB:12 * MiB + len(data)] = data
    # An empty input writes nothing.
    ok("vhd", "write", "d.vhd", "0", "-", input=b"", text=False)
    assert cat("d.vhd") == bytes(expected)


# ---- output ----

def small_disk():
    """d.vhd, 8 MiB with data in three places; returns its expected content."""
    ok("vhd", "create", "d.vhd", "8M")
    rng = random.Random(2)
    expected = bytearray(8 * MiB)
    for offset, length in ((0, SECTOR), (5 * MiB + SECTOR, 3 * SECTOR),
                           (8 * MiB - SECTOR, SECTOR)):
        data = rng.randbytes(length)
        ok("vhd", "write", "d.vhd", offset, "-", input=data, text=False)
        expected[offset:offset + length] = data
    return bytes(expected)


def test_cat_to_pipe():
    expected = small_disk()
    assert cat("d.vhd") == expected
    proc = subprocess.run("'%s' vhd cat d.vhd | cat > piped.raw" % IMPEX, shell=True,
                          stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc
    assert read("piped.raw") == expected


def test_cat_to_regular_file():
    expected = small_disk()
    # An empty file: holes are left where nothing is allocated.
    with open("plain.raw", "wb") as f:
        ok("vhd", "cat", "d.vhd", stdout=f)
    assert read("plain.raw") == expected
    # A file that holds something, opened for appending (sh: >>).
    write_file("append.raw", b"head")
    with open("append.raw", "ab") as f:
        ok("vhd", "cat", "d.vhd", stdout=f)
    assert read("append.raw") == b"head" + expected


def test_cat_leaves_holes_for_zeros():
    # A fixed disk is allocated everywhere; its zeros still become holes.
    ok("vhd", "create", "--type", "fixed", "f.vhd", "64M")
    write_file("data.bin", b"\x42" * 4096)
    ok("vhd", "write", "f.vhd", str(32 * MIB), "data.bin")
    with open("f.raw", "wb") as f:
        ok("vhd", "cat", "f.vhd", stdout=f)
    st = os.stat("f.raw")
    assert st.st_size == 64 * MIB, st
    assert st.st_blocks * 512 < 4 * MIB, "cat wrote %d bytes of zeros" % (st.st_blocks * 512)
    content = read("f.raw")
    assert content[32 * MIB:32 * MIB + 4096] == b"\x42" * 4096
    assert content.count(0) == 64 * MIB - 4096


def test_cat_appending_to_empty_file():
    expected = small_disk()
    write_file("append.raw", b"")
    with open("append.raw", "ab") as f:
        ok("vhd", "cat", "d.vhd", stdout=f)
    content = read("append.raw")
    assert len(content) == len(expected), len(content)
    assert content == expected, "impex vhd cat d.vhd >> empty.raw misplaces the data"


def test_cat_output_error():
    if not os.path.exists("/dev/full"):
        raise Skip("no /dev/full")
    ok("vhd", "create", "d.vhd", "4M")
    ok("vhd", "write", "d.vhd", "0", "-", input=os.urandom(SECTOR), text=False)
    with open("/dev/full", "wb") as full:
        result = call("vhd", "cat", "d.vhd", stdout=full)
    assert result.returncode == 1 and "cannot write" in result.stderr, result


def test_info_output_error():
    if not os.path.exists("/dev/full"):
        raise Skip("no /dev/full")
    ok("vhd", "create", "d.vhd", "4M")
    for args in (["vhd", "info", "--json", "d.vhd"], ["vhd", "info", "d.vhd"]):
        with open("/dev/full", "wb") as full:
            result = call(*args, stdout=full)
        assert result.returncode == 1, "impex %s > /dev/full: exit %d, stderr %r" % (
            " ".join(args), result.returncode, result.stderr)
        assert "impex: " in result.stderr, result.stderr


TOP_KEYS = {"path", "format", "type", "size", "original_size", "geometry", "creator", "uuid", "timestamp",
            "saved_state", "file_size", "chain", "warnings", "error"}
DYNAMIC_KEYS = {"block_size", "blocks", "allocated_blocks"}


def info(path, expect_rc=0):
    result = call("vhd", "info", "--json", path, text=False)
    assert result.returncode == expect_rc, result
    text = result.stdout.decode("utf-8")
    return json.loads(text)


def footer(path):
    raw = read(path)[-512:]
    assert raw[:8] == b"conectix"
    return raw


def test_info_json():
    ok("vhd", "create", "--type", "fixed", "fixed.vhd", "5M")
    ok("vhd", "create", "--block-size", "512K", "dynamic.vhd", "6M")
    ok("vhd", "write", "dynamic.vhd", "1M", "-", input=os.urandom(SECTOR), text=False)
    ok("vhd", "snapshot", "dynamic.vhd", "child.vhd")

    fixed = info("fixed.vhd")
    # Every member is there for every type, null where the type has none.
    assert set(fixed) == TOP_KEYS | DYNAMIC_KEYS | {"parent"}, sorted(fixed)
    assert all(fixed[k] is None for k in DYNAMIC_KEYS | {"parent"}), fixed
    assert fixed["type"] == "fixed" and fixed["size"] == 5 * MiB, fixed
    assert set(fixed["geometry"]) == {"cylinders", "heads", "sectors"}, fixed
    assert set(fixed["creator"]) == {"application", "version", "host"}, fixed
    assert fixed["creator"]["application"] == "win ", fixed
    raw = footer("fixed.vhd")
    assert fixed["uuid"].replace("-", "") == raw[68:84].hex(), fixed
    assert fixed["geometry"]["cylinders"] == int.from_bytes(raw[56:58], "big"), fixed
    assert fixed["file_size"] == os.path.getsize("fixed.vhd") == 5 * MiB + 512, fixed
    assert fixed["saved_state"] is False and isinstance(fixed["timestamp"], int), fixed
    assert fixed["chain"] == [{"path": "fixed.vhd", "type": "fixed", "uuid": fixed["uuid"],
                               "data_write_guid": None, "found_by": None}], fixed
    assert fixed["warnings"] == [] and fixed["error"] is None, fixed

    dynamic = info("dynamic.vhd")
    assert set(dynamic) == TOP_KEYS | DYNAMIC_KEYS | {"parent"}, sorted(dynamic)
    assert dynamic["parent"] is None, dynamic
    assert dynamic["type"] == "dynamic" and dynamic["size"] == 6 * MiB, dynamic
    assert dynamic["block_size"] == 512 * 1024 and dynamic["blocks"] == 12, dynamic
    assert dynamic["allocated_blocks"] == 1, dynamic

    child = info("child.vhd")
    assert set(child) == TOP_KEYS | DYNAMIC_KEYS | {"parent"}, sorted(child)
    assert child["type"] == "differencing", child
    parent = child["parent"]
    assert set(parent) == {"uuid", "timestamp", "name", "locators"}, parent
    assert parent["uuid"] == dynamic["uuid"] and parent["name"] == "dynamic.vhd", parent
    for locator in parent["locators"]:
        assert set(locator) == {"index", "platform", "path"}, locator
    platforms = [l["platform"] for l in parent["locators"]]
    assert "W2ru" in platforms, parent
    assert [l["type"] for l in child["chain"]] == ["differencing", "dynamic"], child
    assert child["chain"][1]["uuid"] == dynamic["uuid"], child
    assert child["chain"][1]["found_by"], child

    # Failures are JSON too, with exit 1.
    write_file("notes.txt", b"not a disk\n" * 100)
    broken = info("notes.txt", expect_rc=1)
    assert broken["path"] == "notes.txt" and "notes.txt" in broken["error"], broken
    # The members both formats have, null: no key goes missing.
    assert broken == {"path": "notes.txt", "format": None, "type": None, "size": None,
                      "block_size": None, "blocks": None, "file_size": None, "chain": [],
                      "warnings": [], "error": broken["error"]}, broken
    os.unlink("dynamic.vhd")
    orphan = info("child.vhd", expect_rc=1)
    assert "dynamic.vhd" in orphan["error"], orphan


def test_info_json_escapes_names():
    name = 'odd "name"\t\x01 \u00e9.vhd'
    ok("vhd", "create", name, "4M")
    ok("vhd", "snapshot", name, "child.vhd")
    for path in (name, "child.vhd"):
        data = info(path)
        assert data["chain"][-1]["path"].endswith(name), data


def test_snapshot_refuses_backslash_in_parent_path():
    # Windows would read the backslash as a separator: the locators would lie.
    name = "a\\b.vhd"
    ok("vhd", "create", name, "4M")
    failure("vhd", "snapshot", name, "child.vhd", mentions=["backslash"])
    assert not os.path.exists("child.vhd")


def test_check():
    ok("vhd", "create", "d.vhd", "4M")
    result = ok("vhd", "check", "d.vhd")
    assert "'d.vhd': ok" in result.stdout, result
    write_file("notes.txt", b"x" * 2048)
    failure("vhd", "check", "notes.txt", mentions=["'notes.txt'", "not a VHD"])
    failure("vhd", "check", "none.vhd", mentions=["'none.vhd'"])


if __name__ == "__main__":
    run_tests(globals())
