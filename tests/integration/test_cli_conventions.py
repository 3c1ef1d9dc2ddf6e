"""The conventions of the impex command line, as its peers (git, qemu-img,
getopt_long) have them, through the real binary:

- options and operands in any order; "--" ends the options, so that an
  operand may start with '-';
- the common options (--store, --pathmap, --allow-outside, --json) anywhere:
  before the command, between a group and its command, after it; a command
  refuses those its usage does not name;
- -h and --help on every command and group: its usage on stdout, exit 0;
  `impex help COMMAND...` the same;
- one exit status: 0 done, 1 failed or problems found, 2 usage (a message and
  the usage on stderr), checked for every command;
- bash completion (tools/impex.bash-completion) run by real bash against a real
  store, its lists the ones the help gives, and installed by `meson install`.

The commands and their expected options are written here, not read from impex.
"""

import json
import os
import re
import shutil
import subprocess

from impexlib import DISKS, as_json, call, need, new_store, ok, vm_new
from taplib import IMPEX, Skip, run_tests

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(SOURCE, "tools", "impex.bash-completion")

# Every command of impex: a group's commands, or None for a command of its own.
COMMANDS = {
    "vhd": ["info", "check", "create", "snapshot", "write", "cat", "flatten"],
    "store": ["init"],
    "vm": ["list", "show", "new", "snapshot", "apply", "write", "save", "delete"],
    "switch": ["add", "list"],
    "export": None,
    "import-settings": None,
    "compare": None,
    "import": None,
    "status": None,
    "demo": None,
}

STORE_OPTIONS = ["--store", "--pathmap", "--allow-outside"]

# The options of some commands, as the manual says them.
OPTIONS = {
    ("vm", "show"): STORE_OPTIONS + ["--json", "--verbose", "--ascii"],
    ("vm", "list"): STORE_OPTIONS + ["--json"],
    ("vm", "delete"): STORE_OPTIONS + ["--disks"],
    ("vhd", "info"): ["--json", "--pathmap"],
    ("vhd", "write"): [],
    ("vhd", "create"): ["--format", "--type", "--block-size", "--sector-size"],
    ("status",): ["--json", "--wait", "--timeout"],
    ("demo",): [],
    ("compare",): STORE_OPTIONS + ["--settings", "--json"],
}


def every_command():
    """Each command as a tuple of words: ("vm", "show"), ("export",)."""
    for group, subs in COMMANDS.items():
        if subs is None:
            yield (group,)
        else:
            for sub in subs:
                yield (group, sub)


def usage_error(*args, mentions=(), env=None):
    """impex ARGS exits 2, nothing on stdout, a message and the usage on stderr."""
    result = call(*args, env=env)
    assert result.returncode == 2, "impex %s: want exit 2: %r" % (" ".join(args), result)
    assert result.stdout == "", "impex %s: %r" % (" ".join(args), result)
    assert re.search(r"^usage: impex", result.stderr, re.M), \
        "impex %s: no usage line: %r" % (" ".join(args), result)
    for text in mentions:
        assert text in result.stderr, "impex %s: does not say %r: %r" % (
            " ".join(args), text, result.stderr)
    return result


def small_store():
    """A store "s" with a switch, VM blog (two disks, snapshots "version 1" and
    "version 2") and VM web; returns its path."""
    store = new_store("s")
    ok("switch", "add", "--store", store, "External")
    vm_new(store, "--disk", "ide:8M", "--disk", "scsi:8M", "--switch", "External", "blog")
    vm_new(store, "--disk", "ide:8M", "web")
    ok("vm", "snapshot", "--store", store, "blog", "version 1")
    ok("vm", "snapshot", "--store", store, "blog", "version 2")
    return store


# ---- 1. options after operands, "--" ----

def test_options_after_operands():
    ok("vhd", "create", "d.vhd", "4M")
    first = ok("vhd", "info", "--json", "d.vhd").stdout
    assert json.loads(first)["size"] == 4 << 20, first
    assert ok("vhd", "info", "d.vhd", "--json").stdout == first
    ok("vhd", "create", "f.vhd", "4M", "--type", "fixed")
    assert as_json(ok("vhd", "info", "f.vhd", "--json"))["type"] == "fixed"
    store = small_store()
    shown = ok("vm", "show", "blog", "--json", "--store", store).stdout
    assert as_json(ok("vm", "show", "--json", "--store", store, "blog")).get("name") == "blog"
    assert ok("vm", "show", "--store", store, "blog", "--json").stdout == shown
    # -h after an operand is the help too.
    result = ok("vm", "show", "blog", "-h")
    assert result.stdout.startswith("usage: impex vm show"), result


def test_double_dash_ends_options():
    # An operand that starts with '-': a file, a VM, an offset.
    ok("vhd", "create", "--", "-odd.vhd", "4M")
    assert os.path.isfile("-odd.vhd")
    assert as_json(ok("vhd", "info", "--json", "--", "-odd.vhd"))["path"] == "-odd.vhd"
    store = small_store()
    vm_id = ok("vm", "new", "--store", store, "--", "-dash").stdout.split()[0]
    shown = as_json(ok("vm", "show", "--json", "--store", store, "--", "-dash"))
    assert shown["id"] == vm_id and shown["name"] == "-dash", shown
    # Options before "--" still count; after it, a word like an option is an operand.
    usage_error("vm", "show", "--store", store, "--", "blog", "--json",
                mentions=["too many operands"])
    ok("vhd", "create", "d.vhd", "4M")
    usage_error("vhd", "write", "d.vhd", "--", "-512", mentions=["'-512' is not an offset"])
    # Without "--" it is an unknown option, and the message says where it goes.
    usage_error("vhd", "write", "d.vhd", "-512", mentions=["'-512'", "'--'"])
    assert not os.path.exists("-512")


# ---- 2. the common options anywhere ----

def test_store_options_anywhere():
    store = small_store()
    expected = ok("vm", "list", "--store", store).stdout
    assert "blog" in expected and "web" in expected, expected
    for args in (["--store", store, "vm", "list"], ["vm", "--store", store, "list"],
                 ["vm", "list", "--store", store], ["--store=" + store, "vm", "list"],
                 ["vm", "--store=" + store, "list"]):
        assert ok(*args).stdout == expected, args
    # --json before the command, and between the group and its command.
    listed = ok("vm", "list", "--json", "--store", store).stdout
    assert sorted(vm["name"] for vm in json.loads(listed)) == ["blog", "web"], listed
    for args in (["--json", "--store", store, "vm", "list"],
                 ["vm", "--json", "list", "--store", store],
                 ["--store", store, "vm", "--json", "list"]):
        assert ok(*args).stdout == listed, args
    # --store repeated across the levels: one store of two folders.
    other = new_store("other")
    vm_new(other, "--disk", "ide:8M", "far")
    both = ok("--store", store, "vm", "list", "--store", other).stdout
    assert "far" in both and "blog" in both, both
    # --allow-outside and --pathmap before the command.
    ok("--allow-outside", "--pathmap", "C:\\VMs=" + store, "vm", "show", "--store", store,
       "web")
    result = call("--pathmap", "C:\\VMs", "vm", "list", "--store", store)
    assert result.returncode == 2 and "'C:\\VMs'" in result.stderr, result


def test_command_found_as_first_word_not_option_value():
    store = small_store()
    # A store named like a command: the value of --store is no command.
    os.rename(store, "list")
    listed = ok("--store", "list", "vm", "list").stdout
    assert "blog" in listed, listed
    assert ok("vm", "--store", "list", "list").stdout == listed
    shown = ok("vm", "--store", "list", "show", "blog").stdout
    assert shown.startswith("blog"), shown
    # Only the common options come before the command.
    usage_error("vm", "--disks", "delete", "web", "--store", "list",
                mentions=["unknown option '--disks'"])
    usage_error("--bogus", "vm", "list", mentions=["unknown option '--bogus'"])
    usage_error("--store", mentions=["'--store' needs a value"])
    assert "web" in ok("vm", "list", "--store", "list").stdout


def test_command_refuses_options_its_usage_does_not_name():
    ok("vhd", "create", "d.vhd", "4M")
    store = small_store()
    usage_error("--store", store, "vhd", "info", "d.vhd",
                mentions=["'impex vhd info' takes no option '--store'"])
    usage_error("vhd", "cat", "d.vhd", "--json", mentions=["takes no option '--json'"])
    usage_error("vm", "new", "--json", "x", "--store", store,
                mentions=["'impex vm new' takes no option '--json'"])
    usage_error("vm", "list", "--disks", "--store", store, mentions=["'--disks'"])
    usage_error("status", "--pathmap", "C:\\x=/tmp", ".", mentions=["'--pathmap'"])
    usage_error("demo", "--store", store, "new", mentions=["'--store'"])
    assert not os.path.exists("new")
    assert "x" not in ok("vm", "list", "--store", store).stdout.split()


# ---- 3. help ----

def check_help(words):
    """-h, --help and `impex help WORDS` print the usage of WORDS on stdout, exit 0."""
    want = "usage: impex " + " ".join(words)
    outputs = []
    for args in (list(words) + ["-h"], list(words) + ["--help"], ["help"] + list(words)):
        result = ok(*args)
        assert result.stdout.startswith(want + (" " if len(words) else "")), \
            "impex %s: %r" % (" ".join(args), result.stdout[:200])
        assert result.stderr == "", result
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == outputs[2], (words, outputs)
    return outputs[0]


def test_help_of_every_command():
    top = check_help(())
    for group, subs in COMMANDS.items():
        if subs is None:
            text = check_help((group,))
            assert "impex %s" % group in top, group
            continue
        text = check_help((group,))
        for sub in subs:
            usage = check_help((group, sub)).splitlines()[0][len("usage: "):]
            assert "  %s\n" % usage in text, "impex %s --help lacks %r" % (group, usage)
            assert "  %s\n" % usage in top, "impex --help lacks %r" % usage
    # The top-level help names every command and no other.
    named = set(re.findall(r"^  impex ([a-z-]+)", top, re.M))
    assert named == set(COMMANDS), named ^ set(COMMANDS)
    for group, subs in COMMANDS.items():
        if subs:
            listed = re.findall(r"^  impex %s ([a-z-]+)" % group, top, re.M)
            assert listed == subs, (group, listed)
    # A group's help after its own options, and help with options before the command.
    assert ok("vm", "--store", "x", "--help").stdout == ok("vm", "--help").stdout
    assert ok("--json", "vm", "show", "--help").stdout == ok("help", "vm", "show").stdout
    assert ok("vhd", "help").stdout == ok("vhd", "--help").stdout
    usage_error("help", "vm", "bogus", mentions=["'impex vm bogus'"])


def test_help_says_the_common_options_and_the_exit_status():
    top = ok("--help").stdout
    for option in STORE_OPTIONS + ["--json", "--help", "--version"]:
        assert re.search(r"^  (-h, )?%s\b" % option, top, re.M), (option, top)
    assert "Exit status: 0 done; 1 failed, or problems found" in top, top
    assert "2 a usage\nerror" in top or "2 a usage error" in top, top
    page = open(os.path.join(SOURCE, "docs", "impex.1")).read()
    section = page.split(".SH EXIT STATUS", 1)[1].split("\n.SH ", 1)[0]
    for text in ("vhd check", "compare", "vm show", "export", "\\-\\-wait"):
        assert text in section, "impex.1 EXIT STATUS does not name %r" % text


# ---- 4. usage errors and the exit status of every command ----

def test_usage_errors_exit_2():
    ok("vhd", "create", "d.vhd", "4M")
    store = small_store()
    usage_error(mentions=[])
    usage_error("bogus", mentions=["unknown command 'bogus'"])
    for group, subs in COMMANDS.items():
        if subs:
            usage_error(group, mentions=["missing %s command" % group])
            usage_error(group, "bogus", mentions=["unknown %s command 'bogus'" % group])
    for words in every_command():
        usage_error(*words, "--no-such-option", "x",
                    mentions=["unknown option '--no-such-option'",
                              "usage: impex " + " ".join(words)])
    # A missing operand, too many, a missing value.
    env = {"IMPEX_STORE": store}
    for args in (["vhd", "info"], ["vhd", "write", "d.vhd"], ["store", "init"],
                 ["vm", "show"], ["vm", "apply", "blog"], ["export", "blog"],
                 ["compare"], ["import"], ["import-settings"], ["status"], ["demo"],
                 ["switch", "add"], ["vm", "write", "blog", "0", "0"]):
        usage_error(*args, env=env)
    for args in (["vhd", "info", "d.vhd", "d.vhd"], ["vm", "list", "x"],
                 ["switch", "list", "x"], ["demo", "a", "b"], ["status", "a", "b"]):
        usage_error(*args, env=env)
    for args in (["vhd", "create", "--format"], ["vm", "list", "--store"],
                 ["export", "--copy-snapshot-configuration"]):
        usage_error(*args, mentions=["needs a value"], env=env)


def corrupt(path):
    """Damage the footer of the VHD at @path: its checksum no longer matches."""
    with open(path, "r+b") as f:
        f.seek(-512 + 40, os.SEEK_END)
        f.write(b"\xff\xff\xff\xff")
        f.seek(0)
        f.write(b"x" * 512)


def write_status(folder, states):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".impex-status"), "w") as f:
        json.dump({"store": "/srv/x", "imports": [
            {"folder": "vm%d" % i, "state": s, "files": 0, "bytes": 0, "errors": [],
             "warnings": []} for i, s in enumerate(states)]}, f)


FOUND = "problems found"


def test_exit_status_of_every_command():
    """For each command: a case that is done (0), one that fails (1, a message on stderr)
    or finds problems (FOUND: 1, the report on stdout), and a usage error (2)."""
    store = small_store()
    ok("switch", "add", "--store", store, "Internal")
    broken = vm_new(store, "--disk", "ide:8M", "broken")
    os.unlink(os.path.join(store, DISKS, "broken.vhd"))
    ok("vhd", "create", "d.vhd", "4M")
    ok("vhd", "snapshot", "d.vhd", "child.vhd")
    ok("vhd", "create", "base.vhd", "4M")
    ok("vhd", "snapshot", "base.vhd", "orphan.vhd")
    os.unlink("base.vhd")
    ok("vhd", "create", "damaged.vhd", "4M")
    corrupt("damaged.vhd")
    with open("sector.bin", "wb") as f:
        f.write(os.urandom(512))
    with open("file", "w") as f:
        f.write("x")
    target = new_store("t")
    ok("switch", "add", "--store", target, "External")
    ok("export", "--store", store, "blog", "exported")
    ok("export", "--store", store, "web", "lacking")
    for name in os.listdir(os.path.join("lacking", DISKS)):
        os.unlink(os.path.join("lacking", DISKS, name))
    write_status("mount-done", ["registered"])
    write_status("mount-failed", ["registered", "failed"])
    S = ["--store", store]
    T = ["--store", target]
    cases = [
        # (args, exit status)
        (["vhd", "info", "child.vhd"], 0), (["vhd", "info", "orphan.vhd"], 1),
        (["vhd", "info"], 2),
        (["vhd", "check", "child.vhd"], 0), (["vhd", "check", "orphan.vhd"], 1),
        (["vhd", "check", "damaged.vhd"], 1), (["vhd", "check", "--type", "x", "d.vhd"], 2),
        (["vhd", "create", "new.vhd", "4M"], 0), (["vhd", "create", "d.vhd", "4M"], 1),
        (["vhd", "create", "x.vhd", "4X"], 2),
        (["vhd", "snapshot", "d.vhd", "c2.vhd"], 0),
        (["vhd", "snapshot", "nosuch.vhd", "c3.vhd"], 1), (["vhd", "snapshot", "d.vhd"], 2),
        (["vhd", "write", "d.vhd", "0", "sector.bin"], 0),
        (["vhd", "write", "d.vhd", "0", "nosuch.bin"], 1),
        (["vhd", "write", "d.vhd", "100", "sector.bin"], 2),
        (["vhd", "cat", "child.vhd"], 0), (["vhd", "cat", "orphan.vhd"], 1), (["vhd", "cat"], 2),
        (["vhd", "flatten", "child.vhd", "flat.vhd"], 0),
        (["vhd", "flatten", "child.vhd", "d.vhd"], 1),
        (["vhd", "flatten", "--format", "qcow2", "child.vhd", "f2.vhd"], 2),
        (["store", "init", "new-store"], 0), (["store", "init", "file"], 1),
        (["store", "init", "a", "b"], 2),
        # vm list lists a store with a broken VM: that VM's problem is vm show's to find.
        (["vm", "list"] + S, 0), (["vm", "list", "--store", "nowhere"], 1),
        (["vm", "list", "--json", "x"] + S, 2),
        (["vm", "show", "blog"] + S, 0), (["vm", "show", "broken"] + S, FOUND),
        (["vm", "show", "nosuch"] + S, 1), (["vm", "show"] + S, 2),
        (["vm", "new", "--disk", "ide:8M", "fresh"] + S, 0), (["vm", "new", "blog"] + S, 1),
        (["vm", "new", "--generation", "3", "x"] + S, 2),
        (["vm", "snapshot", "web", "one"] + S, 0), (["vm", "snapshot", "nosuch", "x"] + S, 1),
        (["vm", "snapshot", "web"] + S, 2),
        (["vm", "apply", "web", "one"] + S, 0), (["vm", "apply", "web", "nosuch"] + S, 1),
        (["vm", "apply", "web"] + S, 2),
        (["vm", "write", "web", "0", "0", "sector.bin"] + S, 0),
        (["vm", "write", "web", "5", "0", "sector.bin"] + S, 1),
        (["vm", "write", "web", "x", "0", "sector.bin"] + S, 1),  # a disk it lacks, by name
        (["vm", "write", "web", "0", "sector.bin"] + S, 2),
        (["vm", "save", "web"] + S, 0), (["vm", "save", "nosuch"] + S, 1),
        (["vm", "save"] + S, 2),
        (["vm", "delete", "fresh"] + S, 0), (["vm", "delete", "nosuch"] + S, 1),
        (["vm", "delete", "--disks"] + S, 2),
        (["switch", "add", "Third"] + S, 0), (["switch", "add", "External"] + S, 1),
        (["switch", "add"] + S, 2),
        (["switch", "list"] + S, 0), (["switch", "list", "--store", "nowhere"], 1),
        (["switch", "list", "x"] + S, 2),
        (["export", "blog", "out"] + S, 0), (["export", "broken", "out2"] + S, 1),
        (["export", "blog", "out"] + S, 1), (["export", "blog"] + S, 2),
        (["import-settings", "exported"] + T, 0), (["import-settings", "nowhere"] + T, 1),
        (["import-settings"] + T, 2),
        (["compare", "exported"] + T, 0), (["compare", "lacking"] + T, FOUND),
        (T + ["compare", "--settings"], 2),
        (["import", "lacking"] + T, 1), (["import", "exported"] + T, 0),
        (["import", "a", "b"] + T, 2),
        (["status", "mount-done"], 0), (["status", "mount-failed"], FOUND),
        (["status", "--wait", "mount-done"], 0), (["status", "--wait", "mount-failed"], FOUND),
        (["status", "nowhere"], 1), (["status"], 2),
        (["demo", "file"], 1), (["demo"], 2),
    ]
    if shutil.which("mkfs.ext4") or shutil.which("/sbin/mkfs.ext4"):
        cases.append((["demo", "demo-store"], 0))
    wrong = []
    for args, status in cases:
        result = call(*args, stdout=subprocess.DEVNULL) if args[:2] == ["vhd", "cat"] \
            else call(*args)
        problem = None
        found = status == FOUND
        status = 1 if found else status
        if result.returncode != status:
            problem = "exit %d, want %d" % (result.returncode, status)
        elif found and not result.stdout:
            problem = "no report on stdout"
        elif status and not found and not result.stderr.startswith("impex: ") and not (
                status == 2 and result.stderr.startswith("usage: ")):
            problem = "no message on stderr"
        elif status == 2 and not re.search(r"^usage: impex", result.stderr, re.M):
            problem = "no usage line"
        if problem:
            wrong.append("impex %s: %s: %s" % (" ".join(args), problem,
                                               result.stderr.strip()[:300]))
    assert not wrong, "\n".join(wrong)
    assert broken


# ---- 5. bash completion ----

def complete(words, env=None, cwd=None, prelude=""):
    """What bash's completion of impex offers for the last of @words (the others before
    it), as the script sets COMPREPLY."""
    need("bash")
    script = prelude + 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); ' \
        'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _impex; printf "%s\\n" "${COMPREPLY[@]}"'
    result = subprocess.run(["bash", "--norc", "-c", script, "bash", SCRIPT, IMPEX] + words,
                            env=dict(os.environ, **(env or {})), cwd=cwd, timeout=60,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 0 and result.stderr == "", (words, result.stderr)
    return [line for line in result.stdout.split("\n") if line]


def test_completion_of_commands_and_options():
    assert complete([""]) == list(COMMANDS) + ["help"]
    assert complete(["v"]) == ["vhd", "vm"]
    assert complete(["vm", ""]) == COMMANDS["vm"] + ["help"]
    assert complete(["--store", "/x", "vm", "s"]) == ["show", "snapshot", "save"]
    assert complete(["help", "vm", "a"]) == ["apply"]
    for words, options in OPTIONS.items():
        offered = complete(list(words) + ["-"])
        assert sorted(offered) == sorted(options + ["--help"]), (words, offered)
    assert complete(["vm", "delete", "--d"]) == ["--disks"]
    assert complete(["-"]) == ["--store", "--pathmap", "--allow-outside", "--json",
                               "--help", "--version"]
    # Option values: the choices the usage gives.
    assert complete(["vhd", "create", "--format", ""]) == ["vhd", "vhdx"]
    assert complete(["vhd", "create", "--type=f"]) == ["fixed"]
    assert complete(["export", "--copy-snapshot-configuration", "="]) == ["all", "none"]
    assert complete(["vm", "new", "--generation", ""]) == ["1", "2"]


def test_completion_of_files_and_folders():
    os.mkdir("folder")
    for name in ("disk one.vhd", "disk2.vhd"):
        open(name, "w").close()
    assert complete(["vhd", "info", "dis"]) == ["disk one.vhd", "disk2.vhd"]
    assert complete(["vhd", "info", "--json", "f"]) == ["folder"]
    # Folders only where a folder is wanted.
    assert complete(["store", "init", ""]) == ["folder"]
    assert complete(["vm", "list", "--store", ""]) == ["folder"]
    assert complete(["vm", "list", "--store=f"]) == ["folder"]
    assert complete(["vhd", "write", "disk2.vhd", "0", "disk2"]) == ["disk2.vhd"]


def test_completion_of_store_names():
    store = small_store()
    vm_new(store, "--disk", "ide:8M", "my web")
    names = sorted(complete(["vm", "show", "--store", store, ""]))
    assert names == ["blog", "my\\ web", "web"], names
    # The store before the command, after the operand, as --store=DIR, from $IMPEX_STORE.
    assert complete(["--store", store, "vm", "show", "b"]) == ["blog"]
    assert complete(["vm", "--store=" + store, "show", "b"]) == ["blog"]
    assert complete(["vm", "show", "w"], env={"IMPEX_STORE": store}) == ["web"]
    assert complete(["vm", "show", "b"], env={"IMPEX_STORE": ""}) == []
    # Snapshots of the VM named before, a VM's disks, VM/SNAPSHOT for export.
    assert complete(["vm", "apply", "--store", store, "blog", "v"]) == \
        ["version\\ 1", "version\\ 2"]
    assert complete(["vm", "apply", "--store", store, "blog", "'v"]) == \
        ["version 1", "version 2"]
    assert complete(["vm", "write", "--store", store, "blog", ""]) == ["0", "1"]
    assert complete(["export", "--store", store, "blog/"]) == \
        ["blog/version\\ 1", "blog/version\\ 2"]
    # Then DEST, a folder.
    assert complete(["export", "--store", store, "blog/version\\ 2", ""]) == ["s"]
    # Switch names for --switch.
    assert complete(["vm", "new", "--store", store, "--switch", ""]) == ["External"]
    # The same under bash-completion's own functions, where it is installed.
    loader = "/usr/share/bash-completion/bash_completion"
    if os.path.exists(loader):
        assert complete(["vm", "show", "--store", store, "b"],
                        prelude='source %s >/dev/null 2>&1; ' % loader) == ["blog"]


def test_completion_lists_are_the_helps():
    """Every command the help lists is completed, and each command's options are those
    its usage line names, each of them accepted by the command."""
    top = ok("--help").stdout
    listed = list(dict.fromkeys(re.findall(r"^  impex ([a-z-]+)", top, re.M)))
    assert complete([""]) == listed + ["help"], listed
    for words in every_command():
        usage = ok(*words, "--help").stdout.split("\n\n")[0][len("usage: "):]
        named = re.findall(r"\[(?:-[a-zA-Z0-9]\|)?(--[a-z-]+)(?:[ =]([^\]]+))?\]", usage)
        options = [name for name, _ in named]
        if "[STORE OPTIONS]" in usage:
            options += STORE_OPTIONS
            named += [("--store", "DIR"), ("--pathmap", "WIN=DIR")]
        offered = complete(list(words) + ["--"])
        assert sorted(offered) == sorted(options + ["--help"]), (words, offered, usage)
        if words in OPTIONS:
            assert sorted(options) == sorted(OPTIONS[words]), (words, options)
        # Each option the usage names is one the command takes, and those with a value
        # need one.
        for name, value in named:
            given = "C:\\VMs=/tmp" if name == "--pathmap" else "x"
            if value and re.fullmatch(r"[a-z0-9|]+", value):
                given = value.split("|")[0]
            elif value == "SECONDS":
                given = "1.5"
            args = list(words) + [name] + ([given] if value else []) + ["--help"]
            result = call(*args)
            assert result.returncode == 0, "impex %s: %r" % (" ".join(args), result)
            if value:
                usage_error(*words, name, mentions=["'%s' needs a value" % name])


def test_meson_install_puts_the_completion_in_place():
    need("meson")
    build = os.path.dirname(os.path.dirname(os.path.realpath(IMPEX)))
    if not os.path.exists(os.path.join(build, "meson-info")):
        raise Skip("impex is not in a meson build folder")
    dest = os.path.realpath("dest")
    result = subprocess.run(["meson", "install", "-C", build, "--destdir", dest,
                             "--no-rebuild", "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=300)
    assert result.returncode == 0, result.stdout
    options = {o["name"]: o["value"] for o in json.loads(subprocess.run(
        ["meson", "introspect", "--buildoptions", build], stdout=subprocess.PIPE,
        text=True, check=True).stdout)}
    share = os.path.join(options["prefix"], options["datadir"])
    folder = os.path.join(share, "bash-completion", "completions")
    has_pc = shutil.which("pkg-config") and subprocess.run(
        ["pkg-config", "--exists", "bash-completion"]).returncode == 0
    if has_pc:
        folder = subprocess.run(
            ["pkg-config", "--define-variable=datadir=" + share,
             "--variable=completionsdir", "bash-completion"],
            stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    installed = dest + os.path.join(folder, "impex")
    assert os.path.isfile(installed), "no %s; installed: %s" % (installed, [
        os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs])
    with open(installed) as a, open(SCRIPT) as b:
        assert a.read() == b.read()
    # bash-completion finds it there by the command's name, as it loads completions.
    loader = "/usr/share/bash-completion/bash_completion"
    if has_pc and os.path.exists(loader):
        script = ('source %s >/dev/null 2>&1; __load_completion impex; complete -p impex'
                  % loader)
        shown = subprocess.run(["bash", "--norc", "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=60,
                               env=dict(os.environ, XDG_DATA_DIRS=dest + share))
        assert "-F _impex impex" in shown.stdout, shown


if __name__ == "__main__":
    run_tests(globals())
