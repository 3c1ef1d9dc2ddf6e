"""Every example of README.md and of the manual pages (docs/impexfs.1, docs/impex.1)
runs as written, against the store `impex demo` makes, with real mounts, each
unmounted after. The examples are read from the files themselves:

- README.md: each fenced block, shell commands (```sh) or fstab lines (type
  fuse.impexfs), except in the sections that set this repository up (SETUP: they
  install packages, build it and run this very suite; CI runs tools/test.sh);
- a manual page: each .nf block, as groff renders it for man(1) (it must render
  as ASCII, which a shell reads as typed): fstab lines in FSTAB, shell commands
  elsewhere.

One substitution, the only one: the folders the examples name as the user's own
(FOLDERS) lie under a folder of the test's: /srv/hyperv is the demo's store,
/srv/new does not exist yet (the examples make it), the others are empty folders.
An example naming any other absolute path fails, so that it is added here
knowingly (README.md says so).

Each document runs in a folder of its own: its shell blocks one after another in
document order, sharing their files, each in bash -e -o pipefail (every command must
succeed); each fstab line is mounted with `mount -T FILE MOUNTPOINT` (util-linux
mount through mount.fuse3), looked at, and unmounted. Nothing may be left mounted.
The whole runs in a mount namespace of its own, where the impexfs and impex under
test are in /usr/local/bin, as `meson install` puts them (impexlib.private_mounts).
"""

import os
import re
import subprocess
import time

from impexlib import mounts_under, need, ok, private_mounts
from taplib import run, run_tests

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The README's sections about building this repository, not about using impexfs.
SETUP = ("Set-up on a fresh Debian 12 machine", "Building by hand")

# The user's own folders the examples name: what each is when the examples start.
FOLDERS = {
    "/srv/hyperv": "the demo's store",
    "/srv/new": "absent",
    "/mnt/export": "empty",
    "/mnt/import": "empty",
    "/mnt/guest": "empty",
    "/backup": "empty",
}
FOLDER_RE = re.compile(r"(?<![\w.~/\\-])(%s)(?=$|[/\s\"',;])" % "|".join(
    re.escape(f) for f in sorted(FOLDERS, key=len, reverse=True)))
ABSOLUTE_RE = re.compile(r"(?<![\w.~/\\-])/[\w.-][^\s\"',;]*")


class Example:
    def __init__(self, where, kind, text):
        self.where = where  # "README.md line 24"
        self.kind = kind    # "sh" or "fstab"
        self.text = text


def is_fstab(text):
    lines = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    return bool(lines) and all(len(l.split()) == 6 and l.split()[2].startswith("fuse")
                               for l in lines)


def readme_examples(path):
    examples, section, lines, i = [], None, open(path).read().split("\n"), 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        fence = re.match(r"^```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        text, where = "\n".join(lines[i + 1:end]), "README.md line %d" % (i + 1)
        if section not in SETUP:
            kind = "fstab" if is_fstab(text) else fence.group(1)
            assert kind in ("sh", "fstab"), \
                "%s: a block neither of shell commands (```sh) nor of fstab lines" % where
            examples.append(Example(where, kind, text))
        i = end + 1
    return examples


def render(roff, where):
    """The lines of the no-fill block @roff as man(1) shows them."""
    page = run(["groff", "-man", "-Tutf8", "-P-cbou"],
               input=".TH X 1\n.nf\n%s\n.fi\n" % roff).stdout.split("\n")
    # Less the page's header ("X(1)  General Commands Manual  X(1)") and footer ("X(1)").
    assert "X(1)" in page[0], page
    while page and page[-1].strip() in ("", "X(1)"):
        page.pop()
    text = "\n".join(page[1:]).strip("\n")
    bad = sorted({c for c in text if ord(c) > 126})
    assert not bad, "%s renders %r, which a shell does not read as typed: %r" % (
        where, bad, text)
    return text


def manual_examples(path):
    examples, section, block, name = [], None, None, os.path.basename(path)
    for number, line in enumerate(open(path).read().split("\n"), 1):
        if line.startswith(".SH "):
            section = line[4:].strip().strip('"')
        elif line.strip() == ".nf":
            block, start = [], number
        elif line.strip() == ".fi" and block is not None:
            where = "docs/%s line %d (%s)" % (name, start, section)
            text = render("\n".join(block), where)
            kind = "fstab" if is_fstab(text) else "sh"
            assert (kind == "fstab") == (section == "FSTAB"), "%s: %s in %s" % (
                where, "fstab lines" if kind == "fstab" else "shell commands", section)
            examples.append(Example(where, kind, text))
            block = None
        elif block is not None:
            block.append(line)
    return examples


def substitute(example, root):
    """@example's text with the user's folders under @root; any other absolute path fails."""
    for m in ABSOLUTE_RE.finditer(example.text):
        assert FOLDER_RE.match(example.text, m.start()), (
            "%s names %s, not one of the folders tests/integration/test_examples.py "
            "stands in for (%s)" % (example.where, m.group(0), ", ".join(FOLDERS)))
    return FOLDER_RE.sub(lambda m: root + m.group(1), example.text)


def prepare(root):
    for folder, what in FOLDERS.items():
        place = root + folder
        os.makedirs(os.path.dirname(place), exist_ok=True)
        if what == "the demo's store":
            ok("demo", place, timeout=300)
        elif what == "empty":
            os.mkdir(place)
    os.mkdir(os.path.join(root, "work"))


def run_shell(example, root):
    script = substitute(example, root)
    env = dict(os.environ, PATH="/usr/local/bin:" + os.environ.get("PATH", ""))
    result = subprocess.run(["bash", "-e", "-x", "-o", "pipefail", "-c", script],
                            cwd=os.path.join(root, "work"), env=env, timeout=600,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    assert result.returncode == 0, "%s failed (exit %d):\n%s\n-- output:\n%s\n-- errors " \
        "(each command after a +):\n%s" % (example.where, result.returncode, script,
                                           result.stdout[-3000:], result.stderr[-5000:])


def fstab_unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_fstab(example, root):
    text = substitute(example, root)
    fstab = os.path.join(root, "fstab")
    with open(fstab, "w") as f:
        f.write(text + "\n")
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        point, kind = fstab_unescape(line.split()[1]), line.split()[2]
        result = run(["mount", "-T", fstab, point], check=False)
        assert result.returncode == 0, "%s: mount -T FILE %s: %r" % (example.where, point,
                                                                     result)
        try:
            shown = run(["findmnt", "-n", "-o", "FSTYPE", point]).stdout.strip()
            assert shown == kind, "%s: mounted as %r" % (example.where, shown)
            vms = os.listdir(os.path.join(point, "vms"))
            assert sorted(vms) == ["blog", "db", "gateway"], "%s: vms/ holds %s" % (
                example.where, vms)
        finally:
            run(["fusermount3", "-u", point])
        deadline = time.time() + 30
        while os.path.ismount(point):
            assert time.time() < deadline, "%s still mounted" % point
            time.sleep(0.05)


def run_examples(examples, least):
    """Run @examples (at least @least of them, else the reading went wrong) in order."""
    need("fusermount3", "rsync", "groff", "findmnt")
    assert len(examples) >= least, "only %d examples found: %s" % (
        len(examples), [e.where for e in examples])
    root = os.path.realpath("examples")
    assert not re.search(r"\s", root), root
    prepare(root)
    try:
        for example in examples:
            print("# %s: %s" % (example.where, example.kind), flush=True)
            (mount_fstab if example.kind == "fstab" else run_shell)(example, root)
        left = mounts_under(root)
        assert not left, "the examples left mounted: %s" % left
    finally:
        for point in mounts_under(root):
            subprocess.run(["umount", "-l", point], check=False)


def test_readme_examples():
    run_examples(readme_examples(os.path.join(SOURCE, "README.md")), 4)


def test_impexfs_manual_examples():
    run_examples(manual_examples(os.path.join(SOURCE, "docs", "impexfs.1")), 2)


def test_impex_manual_examples():
    run_examples(manual_examples(os.path.join(SOURCE, "docs", "impex.1")), 1)


if __name__ == "__main__":
    private_mounts()
    run_tests(globals())
