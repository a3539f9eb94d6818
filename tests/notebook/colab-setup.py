#!/usr/bin/env python3
"""colab-setup.py — the course notebook's set-up cells as Colab runs them, headless: a
`google.colab` module stub, a working directory outside any checkout, REPO_URL set to this
checkout's git URL (file://, no network), and `apt-get` replaced on PATH by a script that
records each call and fails (the simulated Colab has no root apt here).

Executes the parameters cell, the sizes cell, the helpers cell, "Get dlfs" and "Install what is
missing" (up to the build) in this Python, and checks: the notebook saw Colab; it cloned
REPO_URL into ./dlfs and took that as its checkout; it ran launch/install-deps to install (not
--check) and that found nothing to install, so apt-get was never called.

  tests/notebook/colab-setup.py            exit 0 passed, 1 failed, 77 skipped (no git checkout,
                                           no git, or this Python lacks numpy/h5py/matplotlib/IPython)
"""
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
from contextlib import redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NB = os.path.join(ROOT, "course", "dlfs-course.ipynb")
# the cells, by the first line of their source (robust to cells added around them)
CELLS = ["EPOCHS = ", "import time", "%matplotlib inline", "def is_checkout(d):", "ON_COLAB = "]


def skip(why):
    print(f"colab-setup: skipped: {why}")
    sys.exit(77)


def main():
    missing = [m for m in ("numpy", "h5py", "matplotlib", "IPython") if importlib.util.find_spec(m) is None]
    if missing:
        skip(f"{sys.executable} lacks {', '.join(missing)}")
    if subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        skip(f"{ROOT} is not a git checkout (or git is missing): nothing to clone")
    cells = json.load(open(NB))["cells"]
    src = {}
    for c in cells:
        text = "".join(c["source"])
        for head in CELLS:
            if c["cell_type"] == "code" and text.startswith(head) and head not in src:
                src[head] = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
    lacking = [h for h in CELLS if h not in src]
    if lacking:
        print(f"FAIL: no code cell starting with {lacking}")
        return 1
    work = tempfile.mkdtemp(prefix="dlfs-colab.")
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir)
    log = os.path.join(work, "apt-get.calls")
    with open(os.path.join(bindir, "apt-get"), "w") as f:
        f.write(f'#!/bin/sh\necho "apt-get $*" >> {log}\nexit 1\n')
    os.chmod(os.path.join(bindir, "apt-get"), 0o755)
    os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]
    os.environ["MPLBACKEND"] = "Agg"
    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    sys.modules["google"], sys.modules["google.colab"] = google, google.colab
    os.chdir(work)
    ns, out, fails = {}, io.StringIO(), 0
    try:
        with redirect_stdout(out):
            exec(src[CELLS[0]], ns)
            ns["REPO_URL"] = "file://" + ROOT
            for head in CELLS[1:]:
                exec(src[head], ns)
    except Exception as e:   # a failing cell: the test's failure, with what the cells printed
        print(out.getvalue())
        print(f"FAIL: the set-up cells raised {type(e).__name__}: {e}")
        return 1
    text = out.getvalue()
    print(text)
    checks = [(ns.get("ON_COLAB") is True, "the notebook saw Colab (google.colab)"),
              (ns.get("ROOT") == os.path.join(work, "dlfs") and os.path.isfile(os.path.join(work, "dlfs", "CMakeLists.txt")),
               "REPO_URL cloned into ./dlfs and used as the checkout"),
              ("+ bash launch/install-deps\n" in text and "everything is installed" in text,
               "launch/install-deps ran to install (not --check) and found nothing missing"),
              (not os.path.exists(log), "apt-get was never called")]
    for ok, what in checks:
        print(("ok: " if ok else "FAIL: ") + what)
        fails += not ok
    if os.path.exists(log):
        print(open(log).read())
    os.chdir("/")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
