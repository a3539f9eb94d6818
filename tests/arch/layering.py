#!/usr/bin/env python3
"""The library's architecture, checked on the built objects and the sources:

1. no two source files depend on each other both ways, and no longer cycle either:
   file A depends on file B when an object of A refers to a symbol B defines
   (read with nm from the static libraries);
2. the layers: a file of a lower layer never depends on a higher one
   (core -> backend -> nn, comm, data, io, optim -> train -> tools);
3. source files stay under 450 lines and functions under 60, unless the line
   before the function says why ("/* long: ... */");
4. the layers again on the #include lines of every source file and header
   (include/dlfs/ too): no file includes a header of a higher layer, so an
   inversion that costs no symbol (a type, a macro) is caught as well;
5. the same limits for the tests and the launch tools beside src/ (tests/, launch/):
   C files as in src/; Python (*.py and scripts with a python shebang) and shell
   (*.sh and scripts with a bash/sh shebang) files at most 450 lines, their functions
   (a Python def, a shell NAME() { ... }) at most 60 unless the line before says
   "# long: why". Markdown, JSON and data files are not counted;
6. the run's objects keep their insides (src/README.md, Objects of a run): a file of
   src/train/ other than the object's own never reaches two levels into the gradient
   sync, optimizer, pipeline or batcher of the run (r->gs.buckets.zero,
   r->batcher.prefetch.hits, r->pipe.fl[0]) nor takes the address of a part of one
   (&r->opt.cfg): it calls the object's accessors.

usage: layering.py SRC_DIR LIB.a [LIB.a ...]
"""
import os
import re
import subprocess
import sys

LAYER = {"core": 0, "backend": 1, "nn": 2, "comm": 2, "data": 2, "io": 2, "optim": 2, "train": 3, "tools": 4}
MAX_FILE, MAX_FUNC = 450, 60


def module(src):
    parts = src.split("/")
    return parts[parts.index("src") + 1] if "src" in parts else parts[0]


def symbols(libs):
    """object name -> (defined, undefined) symbol sets."""
    defs, undefs = {}, {}
    for lib in libs:
        out = subprocess.run(["nm", "-A", lib], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            m = re.match(r"^[^:]+:([^:]+):\s*(?:[0-9a-f]+)?\s+([A-Za-z])\s+(\S+)$", line)
            if not m:
                continue
            obj, kind, sym = m.groups()
            if kind == "U":
                undefs.setdefault(obj, set()).add(sym)
            elif kind in "TDBR":
                defs.setdefault(obj, set()).add(sym)
    return defs, undefs


def source_of(obj, srcs):
    base = obj.rsplit(".o", 1)[0]          # "step.c" from "step.c.o"
    hits = [s for s in srcs if os.path.basename(s) == base]
    if len(hits) != 1:                     # objects are named by file name alone
        raise SystemExit("FAIL: two source files are called %s: name them apart" % base)
    return hits[0]


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


# The module each public header belongs to (a new header: add its row).
HEADER_MODULE = {"status": "core", "util": "core", "backend": "backend", "model": "nn", "comm": "comm",
                 "gradsync": "comm", "optim": "optim", "dataset": "data", "sampler": "data",
                 "checkpoint": "io", "options": "train", "train": "train", "layer-list": "nn",
                 "tokens": "data"}


def includes(src_dir):
    """Problems of rule 4: (file, its module) includes a header of a higher module."""
    inc_dir = os.path.join(os.path.dirname(os.path.abspath(src_dir)), "include", "dlfs")
    files = [(os.path.join(dp, f), module(os.path.relpath(os.path.join(dp, f), src_dir)))
             for dp, _, fs in os.walk(src_dir) for f in fs if f.endswith((".c", ".cu", ".h", ".cuh"))]
    if os.path.isdir(inc_dir):
        files += [(os.path.join(inc_dir, f), HEADER_MODULE.get(f[:-2], "?")) for f in sorted(os.listdir(inc_dir))
                  if f.endswith(".h")]
    bad = []
    for path, mod in files:
        if mod == "?":
            bad.append("%s: a public header no module owns (add it to HEADER_MODULE in %s)"
                       % (path, os.path.basename(__file__)))
            continue
        for n, line in enumerate(open(path, errors="replace"), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            inc = m.group(1)
            if inc.startswith("dlfs/"):
                other = HEADER_MODULE.get(os.path.basename(inc)[:-2], "?")
            elif "/" in inc and inc.split("/")[0] in LAYER:
                other = inc.split("/")[0]
            else:
                other = mod                    # a header next to the file: its own module
            if other == "?":
                bad.append("%s:%d: includes %s, a public header no module owns" % (path, n, inc))
            elif LAYER.get(other, -1) > LAYER.get(mod, 99):
                bad.append("layering: %s:%d (%s) includes %s (%s), a higher layer"
                           % (os.path.relpath(path, os.path.dirname(os.path.abspath(src_dir))), n, mod, inc, other))
    return bad


# Rule 6: the objects of struct dlfs_run, and the files of src/train/ that own them
# (the gradient sync and the optimizer live in comm/ and optim/: no train/ file owns them).
RUN_OBJECTS = {"gs": (), "opt": (), "pipe": ("pipeline.c",), "batcher": ("batcher.c",)}
REACH = re.compile(r"\br->(%s)\.([A-Za-z_0-9]+)\s*(\.|->|\[)?" % "|".join(RUN_OBJECTS))


def without_comments(text):
    """C comments blanked (their newlines kept: line numbers stay)."""
    return re.sub(r"/\*.*?\*/|//[^\n]*", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)


def reaches(src_dir):
    """Problems of rule 6: r->OBJ.field. (or ->, [) and &r->OBJ.field in a train/ file not OBJ's."""
    train, bad = os.path.join(src_dir, "train"), []
    for f in sorted(os.listdir(train)) if os.path.isdir(train) else []:
        if not f.endswith((".c", ".h")):
            continue
        text = without_comments(open(os.path.join(train, f), errors="replace").read())
        for m in REACH.finditer(text):
            before = text[:m.start()].rstrip()
            address = re.search(r"(^|[^&\w)\]\s])\s*&$", before) is not None  # unary &, not a && b, a & b
            if f in RUN_OBJECTS[m.group(1)] or not (address or m.group(3)):
                continue
            line = text.count("\n", 0, m.start()) + 1
            bad.append("objects: src/train/%s:%d reaches into r->%s.%s: call an accessor of the object "
                       "(src/README.md, Objects of a run)" % (f, line, m.group(1), m.group(2)))
    return bad


def lengths(src_dir):
    bad = []
    for dp, _, files in os.walk(src_dir):
        for f in files:
            if not f.endswith((".c", ".cu", ".h", ".cuh")):
                continue
            p = os.path.join(dp, f)
            lines = open(p, errors="replace").read().split("\n")
            if len(lines) > MAX_FILE:
                bad.append("%s: %d lines (at most %d)" % (p, len(lines), MAX_FILE))
            start = None
            for i, line in enumerate(lines):
                if start is None and (line.startswith("{") or re.match(r"^[A-Za-z_].*\)\s*\{\s*$", line)) \
                        and not re.match(r"^(static const |const )?(struct|enum|union|typedef)\b", line):
                    start = i
                elif start is not None and line.startswith("}"):
                    j = start
                    while j > 0 and "(" not in lines[j]:
                        j -= 1
                    head = lines[max(0, j - 1)]
                    if i - start + 1 > MAX_FUNC and "long:" not in head:
                        name = re.search(r"([A-Za-z_0-9]+)\s*\(", lines[j])
                        bad.append("%s:%d: %s is %d lines (at most %d without a '/* long: why */' above it)"
                                   % (p, j + 1, name.group(1) if name else "?", i - start + 1, MAX_FUNC))
                    start = None
    return bad


def script_kind(path):
    """'c', 'py', 'sh' or None (not a program: docs, data, corpora)."""
    if path.endswith((".c", ".cu", ".h", ".cuh")):
        return "c"
    if path.endswith(".py"):
        return "py"
    if path.endswith(".sh"):
        return "sh"
    try:
        with open(path, "rb") as f:
            first = f.readline(200).decode("utf-8", "replace")
    except OSError:
        return None
    if first.startswith("#!"):
        return "py" if "python" in first else "sh" if re.search(r"\b(ba)?sh\b", first) else None
    return None


def functions_py(text):
    """(name, first line, length) of every def, nested ones too."""
    import ast
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            out.append((node.name, first, node.end_lineno - first + 1))
    return out


def functions_sh(lines):
    """(name, first line, length) of every NAME() { ... } whose body spans lines: it ends
    at the first line that starts with '}' at the indentation of its head."""
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(?:function\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*\(\)\s*\{(.*)$", line)
        if not m or "}" in m.group(3):
            continue
        ind = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j].startswith(ind + "}"):
                out.append((m.group(2), i + 1, j - i + 1))
                break
    return out


def script_lengths(root, dirs=("tests", "launch")):
    """Rule 4 over root/tests and root/launch."""
    bad = []
    for d in dirs:
        top = os.path.join(root, d)
        for dp, dns, fs in os.walk(top):
            dns[:] = [n for n in dns if n != "__pycache__"]
            for f in sorted(fs):
                p = os.path.join(dp, f)
                kind = script_kind(p)
                if kind == "c":
                    continue  # lengths(top) below, as in src/
                if kind is None:
                    continue
                text = open(p, errors="replace").read()
                lines = text.split("\n")
                if len(lines) > MAX_FILE:
                    bad.append("%s: %d lines (at most %d)" % (p, len(lines), MAX_FILE))
                try:
                    fns = functions_py(text) if kind == "py" else functions_sh(lines)
                except SyntaxError as e:
                    bad.append("%s: not valid Python (%s)" % (p, e))
                    continue
                for name, first, n in fns:
                    if n > MAX_FUNC and "long:" not in lines[max(0, first - 2)]:
                        bad.append("%s:%d: %s is %d lines (at most %d without a '# long: why' above it)"
                                   % (p, first, name, n, MAX_FUNC))
        bad += lengths(top)
    return bad


def main():
    src_dir, libs = sys.argv[1], sys.argv[2:]
    srcs = [os.path.join(dp, f) for dp, _, fs in os.walk(src_dir) for f in fs if f.endswith((".c", ".cu"))]
    defs, undefs = symbols(libs)
    owner = {}
    for obj, ss in defs.items():
        for s in ss:
            owner[s] = source_of(obj, srcs)
    edges, problems = {}, []
    for obj, ss in undefs.items():
        a = source_of(obj, srcs)
        for s in ss:
            b = owner.get(s)
            if b and b != a:
                edges.setdefault(a, set()).add(b)
    for comp in cycles(edges):
        problems.append("files depend on each other in a cycle: " + " -> ".join(os.path.relpath(c, src_dir) for c in comp))
    for a, bs in sorted(edges.items()):
        for b in sorted(bs):
            la, lb = LAYER.get(module(a)), LAYER.get(module(b))
            if la is not None and lb is not None and lb > la:
                problems.append("layering: %s (%s) uses %s (%s), a higher layer"
                                % (os.path.relpath(a, src_dir), module(a), os.path.relpath(b, src_dir), module(b)))
    problems += lengths(src_dir) + includes(src_dir) + reaches(src_dir)
    problems += script_lengths(os.path.dirname(os.path.abspath(src_dir)))
    nedges = sum(len(v) for v in edges.values())
    for p in problems:
        print("FAIL:", p)
    print("%d files, %d dependencies between them, %d problems" % (len(srcs), nedges, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
