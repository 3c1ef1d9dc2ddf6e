"""The one door for paths (docs/SECURITY.md): fs/ (both mounts) and the core
modules that act in places others control call no libc file API that
takes a path string and may follow a link; they go through core/beneath
(openat2 beneath a folder descriptor, then the *at() calls).

Reads of sources go through core/fsutil's opens, which honour the thread's
scope (core/asuser.h: the folder beneath its descriptor, trusted roots
beneath theirs, the rest as the document's writer or not at all); a folder
the administrator named is opened once, at mount, by
fsutil_open_trusted_folder(). A line may carry the marker "door: " with its
reason when it names a path that is no one else's (the descriptor's own
/proc/self/fd link) or compares names without opening them.
Prints TAP."""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CHECKED = ["fs/importfs.c", "fs/exportfs.c", "fs/main.c", "fs/help.c", "fs/log.c", "fs/loop.c", "fs/mountinfo.c", "core/import_settings.c", "core/import_run.c", "core/beneath.c", "core/staging.c",
           "core/journal.c", "core/record.c", "core/asuser.c"]
# The import side, split into more files: each is checked as the one it came from was.
CHECKED += ["fs/importfs_names.c", "fs/importfs_files.c", "fs/importfs_checker.c",
            "fs/importfs_view.c", "core/import_compare.c", "core/import_copy.c",
            "core/import_recover.c", "core/import_job.c", "core/import_mount.c",
            "core/rollback.c", "core/savedstate.c"]
# The rest of the export mount (fs/exportfs.c split along its seams).
CHECKED += ["fs/exportfs_inode.c", "fs/exportfs_ops.c", "fs/exportfs_renew.c"]

# Calls that take a path and resolve it from the current folder or follow links.
PATH_CALLS = [
    "open", "open64", "creat", "fopen", "freopen", "opendir", "mkdir", "rmdir", "unlink",
    "remove", "rename", "link", "symlink", "readlink", "chmod", "chown", "lchown", "truncate",
    "stat", "lstat", "access", "euidaccess", "realpath", "statvfs", "statfs", "utime", "utimes",
    "lutimes", "mkfifo", "mknod", "setxattr", "lsetxattr", "getxattr", "lgetxattr", "listxattr",
    "llistxattr", "removexattr", "lremovexattr", "chdir", "chroot", "execve", "system",
    "fsutil_remove_tree", "fsutil_write_atomic", "fsutil_copy_file", "fsutil_fsync_parent",
    "config_save", "export_write_file", "export_write_file_progress", "import_settings_load",
]
CALL = re.compile(r"(?<![\w.>])(%s)\s*\(" % "|".join(PATH_CALLS))
# The *at() calls are fine on a descriptor, not on the current folder.
AT_CWD = re.compile(r"\b\w+at2?\s*\(\s*AT_FDCWD")


def strip_comments(text):
    """The code without its comments, line numbers kept."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def offences(path):
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    raw_lines = raw.split("\n")
    found = []
    for number, line in enumerate(strip_comments(raw).split("\n"), 1):
        marked = "door: " in raw_lines[number - 1] or "door: " in raw_lines[number - 2]
        for match in CALL.finditer(line):
            # A function's own definition or declaration is no call.
            if re.match(r"^\s*(static\s+)?[\w\s\*]+\b%s\s*\(" % match.group(1), line) and \
                    not line.strip().endswith(";") and "=" not in line:
                continue
            if not marked:
                found.append("%s:%d: %s" % (os.path.relpath(path, ROOT), number, line.strip()))
        if AT_CWD.search(line) and not marked:
            found.append("%s:%d: %s" % (os.path.relpath(path, ROOT), number, line.strip()))
    return found


def main():
    print("1..%d" % len(CHECKED))
    failed = 0
    for n, name in enumerate(CHECKED, 1):
        found = offences(os.path.join(ROOT, name))
        if found:
            failed += 1
            print("not ok %d - %s calls no path-taking file API" % (n, name))
            for line in found:
                print("#   %s" % line)
        else:
            print("ok %d - %s calls no path-taking file API" % (n, name))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
