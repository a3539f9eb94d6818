#!/usr/bin/env python3
"""Rule 4 of layering.py (the file and function limits of tests/ and launch/) against a
tree whose verdicts are known by construction: each file breaks one limit by one line or
keeps to it by one line, or carries a "long:" comment, or is not a program. The problems
reported must be exactly the broken ones (ctest arch_layering_self, well under a second)."""
import os
import re
import sys
import tempfile

import layering  # tests/arch/layering.py: this script's own directory comes first on sys.path

N, F = layering.MAX_FILE, layering.MAX_FUNC


def py_def(name, n, long_=False):
    """a def of exactly n lines"""
    return (["# long: a table"] if long_ else []) + ["def %s():" % name] + ["    x = 1"] * (n - 2) + ["    return x"]


def sh_fn(name, n, long_=False):
    return (["# long: a heredoc"] if long_ else []) + ["%s() {" % name] + ["  :"] * (n - 2) + ["}"]


def c_fn(name, n):
    return ["static int %s(void)" % name, "{"] + ["    int x = 1;"] * (n - 3) + ["    return 0;", "}"]


def tree(root):
    files = {
        "tests/a.py": py_def("too_long", F + 1) + py_def("fits", F),
        "tests/b.py": py_def("excused", F + 1, long_=True),
        "launch/tool": ["#!/usr/bin/env python3"] + ["x = 1"] * N,                   # N + 1 lines
        "launch/fits": ["#!/usr/bin/env python3"] + ["x = 1"] * (N - 1),             # N lines
        "tests/c.sh": ["#!/usr/bin/env bash"] + sh_fn("sh_too_long", F + 1) + sh_fn("sh_fits", F)
                      + sh_fn("sh_excused", F + 1, long_=True),
        "launch/run": ["#!/bin/bash"] + ["echo x"] * N,
        "launch/run-fits": ["#!/bin/bash"] + ["echo x"] * (N - 1),
        "tests/d.c": c_fn("c_too_long", F + 1) + c_fn("c_fits", F),
        "launch/big.json": ["{}"] * (3 * N),
        "tests/notes.md": ["text"] * (3 * N),
    }
    for path, lines in files.items():
        p = os.path.join(root, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("\n".join(lines))   # no final newline: the line counts are the lists'
    # the reported problems by construction: (file, what)
    return {("tests/a.py", "too_long"), ("launch/tool", "lines"), ("tests/c.sh", "sh_too_long"),
            ("launch/run", "lines"), ("tests/d.c", "c_too_long")}


def main():
    with tempfile.TemporaryDirectory() as root:
        want = tree(root)
        got = set()
        for problem in layering.script_lengths(root):
            m = re.match(r"^(.*?):(?:\d+: (\S+) is \d+ lines| \d+ lines \(at most)", problem)
            if not m:
                print("FAIL: a problem this test cannot read: " + problem)
                return 1
            got.add((os.path.relpath(m.group(1), root), m.group(2) or "lines"))
        ok = True
        for case in sorted(want - got):
            print("FAIL: not reported: %s (%s)" % case)
            ok = False
        for case in sorted(got - want):
            print("FAIL: reported but within the limits: %s (%s)" % case)
            ok = False
        print("%d problems reported, %d expected%s" % (len(got), len(want), "" if ok else ": FAILED"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
