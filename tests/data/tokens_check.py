"""dlfs-data text and the window sampler against numpy (an oracle independent of dlfs).

usage: tokens_check.py DLFS_DATA TOKENS_WINDOWS WORKDIR
1. A small corpus (nested directory, files that --ext leaves out, random bytes) is
   converted; h5py reads the file and numpy recomputes both splits from the raw
   files by the documented rule (sorted paths; the last ceil(len*P/100) bytes of
   each file are validation).
2. The windows of two epochs on 1, 2 and 4 ranks: every row is a window
   tokens[k*ctx : k*ctx + ctx + 1] of the numpy train split, the rows of the P
   ranks of each global batch, in rank order, are the rows of 1 rank, and each
   epoch uses distinct windows (a permutation, not draws with replacement).
3. The command's refusals: existing output without --force, a missing input, a
   directory without text files (exit status and one line naming the input).
Exits 77 (skipped) when numpy or h5py is not importable.
"""
import os
import shutil
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"SKIPPED: {e} (install numpy and h5py for {sys.executable})")
    sys.exit(77)

data, windows, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(os.path.join(work, "corpus", "sub", "deeper"))
os.chdir(work)
rng = np.random.default_rng(7)
files = {"corpus/b.txt": 1000, "corpus/a.txt": 333, "corpus/sub/z.txt": 2047, "corpus/sub/deeper/m.txt": 20,
         "corpus/sub/skip.rst": 500, "corpus/A.txt": 1}
for name, n in files.items():
    with open(name, "wb") as f:
        f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())


def run(*args, want=0):
    p = subprocess.run([data, *args], capture_output=True, text=True)
    if p.returncode != want:
        sys.exit(f"FAIL: dlfs-data {' '.join(args)}: exit {p.returncode}, want {want}\n{p.stdout}{p.stderr}")
    return p


run("text", "corpus", "--val-percent", "10", "--source", "random bytes", "--license", "CC0", "-o", "t.h5")

# 1. the splits by the documented rule
paths = sorted(p for p in files if p.endswith(".txt"))
train, val = [], []
for p in paths:
    b = np.fromfile(p, np.uint8).astype(np.uint16)
    nv = -(-len(b) * 10 // 100)
    train.append(b[:len(b) - nv])
    val.append(b[len(b) - nv:])
train, val = np.concatenate(train), np.concatenate(val)
with h5py.File("t.h5", "r") as f:
    assert f.attrs["format"] == "dlfs-tokens", f.attrs["format"]
    assert int(f.attrs["vocab_size"]) == 256
    assert f.attrs["source"] == "random bytes" and f.attrs["license"] == "CC0"
    assert f["train/tokens"].dtype == np.uint16
    got_tr, got_va = f["train/tokens"][...], f["val/tokens"][...]
assert np.array_equal(got_tr, train), f"train split: {len(got_tr)} vs {len(train)} tokens"
assert np.array_equal(got_va, val), f"val split: {len(got_va)} vs {len(val)} tokens"
print(f"ok   splits: {len(train)} train + {len(val)} val tokens as numpy recomputes them")

info = run("info", "t.h5").stdout
for want in (f"train:     {len(train)} tokens", f"val:       {len(val)} tokens", "vocab:     256", "CC0"):
    assert want in info, f"info lacks '{want}':\n{info}"

# 2. windows
ctx, B = 16, 8
nwin = (len(train) - 1) // ctx
starts = {train[k * ctx:k * ctx + ctx + 1].tobytes(): k for k in range(nwin)}
assert len(starts) == nwin, "random corpus has repeated windows: pick another seed"


def rows(P, seed, epoch):
    out = subprocess.run([windows, "t.h5", str(ctx), str(B), str(P), str(seed), str(epoch)], check=True,
                         capture_output=True, text=True).stdout.split("\n")
    table = [list(map(int, line.split())) for line in out if line]
    ranks_in_order = [(b, r) for b, r, *_ in table]
    assert ranks_in_order == sorted(ranks_in_order), "rows out of order"
    for b in range(nwin // B):
        counts = [sum(1 for bb, rr in ranks_in_order if bb == b and rr == r) for r in range(P)]
        assert counts == [(r + 1) * B // P - r * B // P for r in range(P)], f"P={P} batch {b} shares {counts}"
    ks = []
    for b, r, *ids in table:
        key = np.array(ids, np.uint16).tobytes()
        assert key in starts, f"P={P}: batch {b} rank {r}: row is no window of the train split"
        ks.append(starts[key])
    return ks


for seed in (1, 99):
    for epoch in (0, 1):
        k1 = rows(1, seed, epoch)
        assert len(k1) == (nwin // B) * B and len(set(k1)) == len(k1), "an epoch repeats a window"
        for P in (2, 4):
            assert rows(P, seed, epoch) == k1, f"seed {seed} epoch {epoch}: {P} ranks see other windows"
assert rows(1, 1, 0) != rows(1, 99, 0) and rows(1, 1, 0) != rows(1, 1, 1), "order ignores seed or epoch"
print(f"ok   windows: {nwin} windows of {ctx + 1} tokens, same global order on 1/2/4 ranks, 2 seeds x 2 epochs")

# 3. refusals
p = run("text", "corpus", "-o", "t.h5", want=2)
assert "t.h5 exists" in p.stderr and "--force" in p.stderr and p.stderr.count("\n") == 1, p.stderr
run("text", "corpus", "--force", "-o", "t.h5")
p = run("text", "corpus/nothere.txt", "-o", "u.h5", want=1)
assert "corpus/nothere.txt" in p.stderr and p.stderr.count("\n") == 1, p.stderr
os.makedirs("empty")
p = run("text", "empty", "-o", "u.h5", want=1)
assert "empty holds no file" in p.stderr, p.stderr
assert not os.path.exists("u.h5"), "a failed conversion wrote its output"
p = run("text", "corpus", "--val-percent", "0", "-o", "u.h5", want=2)
assert "--val-percent" in p.stderr, p.stderr
print("ok   refusals")
