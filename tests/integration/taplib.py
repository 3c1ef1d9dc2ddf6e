"""Shared helpers for the integration tests: TAP output, temporary folders,
running impex and the reference tools (qemu-img, vhdiinfo).

Each test script calls `run_tests(globals())`: every function whose name starts
with `test_` runs in its own temporary folder and prints one TAP line.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import traceback

IMPEX = os.environ.get("IMPEX", "impex")


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def __repr__(self):
        return "exit %d\nstdout: %r\nstderr: %r" % (
            self.returncode, self.stdout[-2000:], self.stderr[-2000:])


def run(args, check=True, input=None, timeout=300, text=True, cwd=None, stdout=None):
    """Run a command; with check, fail the test unless it exits 0."""
    proc = subprocess.run(
        [str(a) for a in args], input=input, cwd=cwd, timeout=timeout,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE, text=text)
    result = Result(proc)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed: %r" % (" ".join(map(str, args)), result))
    return result


def impex(*args, check=True, **kw):
    return run([IMPEX] + list(args), check=check, **kw)


def sanitizer_report(text):
    """Whether @text holds a sanitizer's report: AddressSanitizer, LeakSanitizer and
    ThreadSanitizer ("WARNING: ThreadSanitizer: data race") name themselves, UBSan
    says "runtime error"."""
    return "Sanitizer" in text or "runtime error" in text


def sanitizer_clean(result):
    """No sanitizer report and no death by signal."""
    err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(
        "utf-8", "replace")
    assert result.returncode >= 0, "killed by signal %d: %r" % (-result.returncode, result)
    assert not sanitizer_report(err), "sanitizer report: %s" % err


def have(tool):
    return shutil.which(tool) is not None


class Skip(Exception):
    pass


def run_tests(namespace):
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    tests.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
    print("1..%d" % len(tests), flush=True)
    failed = 0
    for i, (name, func) in enumerate(tests, 1):
        folder = tempfile.mkdtemp(prefix="impex-test-")
        old = os.getcwd()
        try:
            os.chdir(folder)
            func()
            print("ok %d - %s" % (i, name), flush=True)
        except Skip as skip:
            print("ok %d - %s # SKIP %s" % (i, name, skip), flush=True)
        except Exception:
            failed += 1
            print("not ok %d - %s" % (i, name), flush=True)
            for line in traceback.format_exc().splitlines():
                print("# " + line, flush=True)
        finally:
            os.chdir(old)
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(1 if failed else 0)
