#!/usr/bin/env python3
"""Rules 5 and 6 of layering.py against trees whose verdicts are known by construction.
Rule 5 (the file and function limits of tests/ and launch/): each file breaks one limit by
one line or keeps to it by one line, or carries a "long:" comment, or is not a program.
Rule 6 (train/ files keep out of the run's objects): each line of a src/train/ file either
reaches into an object it does not own or does not (its owner, one level, a comment, the
object itself, &&). The problems reported must be exactly the broken ones (ctest
arch_layering_self, well under a second)."""
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


# rule 6: (file, line) -> reported?  Lines are numbered from 1 in each file.
REACH_CASES = {
    "step.c": [("    bool z = r->gs.buckets.zero;", True),          # two levels into the gradient sync
               ("    long h = r->batcher.prefetch . hits;", True),  # ... spaced
               ("    s = r->pipe.fl[0].stats;", True),              # ... an array of the pipeline's
               ("    p = g->r->opt.shard.seg;", True),              # ... through another pointer
               ("    f(&r->opt.cfg, 0);", True),                    # the address of a part
               ("    f(&r->opt, 0);", False),                       # the object itself
               ("    x = r->gs.nbuf;", False),                      # one level (an accessor is better)
               ("    y = t && r->opt.m;", False),                   # && is no address
               ("    /* r->gs.buckets.zero */", False),             # a comment
               ("    z = q->gs.buckets.zero;", False),              # not the run
               ("    w = r->ds.train.n;", False)],                  # the dataset: a record, not an object
    "pipeline.c": [("    s = r->pipe.fl[0].stats;", False),         # its own
                   ("    h = r->batcher.prefetch.hits;", True)],
    "batcher.c": [("    h = r->batcher.prefetch.hits;", False)],
    "notes.txt": [("    r->gs.buckets.zero", False)],                # not a C file
}


def check_reaches(root):
    """Rule 6 against REACH_CASES: True when exactly the cases marked True are reported."""
    os.makedirs(os.path.join(root, "src", "train"))
    want = set()
    for f, lines in REACH_CASES.items():
        with open(os.path.join(root, "src", "train", f), "w") as out:
            out.write("\n".join(text for text, _ in lines) + "\n")
        want |= {(f, i + 1) for i, (_, bad) in enumerate(lines) if bad}
    got = set()
    for problem in layering.reaches(os.path.join(root, "src")):
        m = re.match(r"^objects: src/train/([^:]+):(\d+) reaches into ", problem)
        if not m:
            print("FAIL: a problem this test cannot read: " + problem)
            return False
        got.add((m.group(1), int(m.group(2))))
    for f, n in sorted(want - got):
        print("FAIL: rule 6 did not report %s:%d: %s" % (f, n, REACH_CASES[f][n - 1][0].strip()))
    for f, n in sorted(got - want):
        print("FAIL: rule 6 reported %s:%d, which keeps out: %s" % (f, n, REACH_CASES[f][n - 1][0].strip()))
    print("rule 6: %d reaches reported, %d expected" % (len(got), len(want)))
    return got == want


def main():
    with tempfile.TemporaryDirectory() as root:
        ok6 = check_reaches(root)
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
        print("rule 5: %d problems reported, %d expected%s" % (len(got), len(want), "" if ok else ": FAILED"))
        return 0 if ok and ok6 else 1


if __name__ == "__main__":
    sys.exit(main())
