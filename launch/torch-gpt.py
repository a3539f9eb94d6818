#!/usr/bin/env python3
"""A dlfs language-model checkpoint rebuilt in PyTorch: the independent check of the GPT layers.

    launch/torch-gpt.py loss CKPT DATA [--split train|val]
    launch/torch-gpt.py step CKPT0 CKPT1 DATA --lr LR --weight-decay W [--beta1 B1]
                        [--beta2 B2] [--eps E] [--dlfs-loss L] [--dlfs-val-loss L]
    launch/torch-gpt.py train CKPT0 DATA --batch B --max-steps N --lr LR --weight-decay W
                        [--beta1 B1] [--beta2 B2] [--eps E] [--warmup N] [--lr-min X]
                        [--clip-grad N] [--seed S] [--eval-every N] [--threads N]
                        [--dlfs-metrics FILE] [--tolerance F]

The model is built from the checkpoint's `model_spec` (in(T+1), embed(V,C),
block(C,hH) any number of times, lnorm, lmhead: src/README.md, "Language models")
with plain torch operations written here — layer norm (eps 1e-5), causal attention
over H heads scaled by 1/sqrt(C/H), the tanh GELU, the head tied to the token table —
and its /params are loaded tensor by tensor (a block's one 1-D weight cut into its
twelve tensors in the documented order). DATA is the token file (`dlfs-data text`):
the split's windows of T + 1 ids (window k = tokens [kT, kT + T]), the first T the
inputs, the last T the targets; the loss is the mean cross-entropy over every
position of every window (nats per token), as dlfs-train's.

loss: the mean loss over all windows of the split, in float64.

step: CKPT0 holds the parameters before one AdamW step, CKPT1 those after it, taken by
dlfs-train on ALL the training windows as one batch (so their order does not matter).
PyTorch takes the same step from CKPT0 with torch.optim.AdamW in float64 (the
reference) and in float32, with two parameter groups mirroring dlfs's rule: weight
decay on the blocks' four matrices (qkv, proj, fc, fc2 weights) only, none on the
tables, layer norms and biases. It checks:
  - with --dlfs-loss, the loss dlfs-train reported for that step against PyTorch's
    float64 loss at CKPT0: |dlfs - torch| <= 1e-5 x torch (fp32 arithmetic over a few
    thousand terms is good to ~1e-6);
  - with --dlfs-val-loss, the validation loss dlfs-train reported after the step (its
    evaluation pass) against PyTorch's float64 loss of CKPT1 on the val windows, as above;
  - every tensor: |dlfs - float64| <= 1e-8 + max(1 % of the step's largest change of
    the tensor, 4 x |PyTorch float32 - float64|). A wrong gradient, decay on a tensor
    that has none (or none where it belongs), a wrong attention scale or epsilon is
    off by far more than 1 % of the step (the test picks an Adam eps near the
    gradients' size, so the step follows the gradient's value, not only its sign).
It prints one line per check and exits 1 if any fails (2 for a usage error).

train: dlfs-train's run of --optim adamw --schedule cosine on one rank, retraced in PyTorch
float32 from CKPT0 (the initial parameters dlfs drew for the seed), fed the same windows in
the same order: the epoch's order is recomputed here in numpy from the documented rule
(src/README.md, "Sampler"; datasets/README.md) — a Fisher-Yates shuffle of the window
indices 0..n-1, i from n down to 2 swapping a[i-1] with a[hash64(key, i) mod i], key =
key3(seed, 0x5a3b, epoch) (epochs counted from 1, as dlfs-train prints them), key3(a, b,
c) = hash64(hash64(a, b), c), hash64(k, c) = mix(mix(k + 0x9e3779b97f4a7c15) ^ (c *
0xd1b54a32d192ed03 + 0x632be59bd9b4e019)) with splitmix64's finaliser mix, all modulo
2^64 — and global batch s of an epoch is windows
perm[sB .. sB + B - 1] (the last n mod B of each epoch unused). The same AdamW (decay on
the matrices only), the same schedule (step t from 0: lr (t + 1) / warmup during the
warm-up, then lr_min + (lr - lr_min)(1 + cos(pi min(1, (t - warmup) / (N - warmup)))) / 2),
the same clipping (the gradient scaled by N / norm when its global L2 norm exceeds N).
Every --eval-every steps and at the end it prints the validation loss (nats per token and
bits per byte). With --dlfs-metrics (dlfs-train's --metrics file of the same run) it
compares its validation losses with dlfs's at the same steps and exits 1 if any differs by
more than --tolerance (default 0.02, relative).
"""
import argparse
import math
import re
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

LN_EPS = 1e-5
# a block's tensors in the order of its 1-D checkpoint weight (shape as multiples of C)
BLOCK = (("ln1.g", (1,)), ("ln1.b", (1,)), ("qkv.w", (3, 1)), ("qkv.b", (3,)), ("proj.w", (1, 1)),
         ("proj.b", (1,)), ("ln2.g", (1,)), ("ln2.b", (1,)), ("fc.w", (4, 1)), ("fc.b", (4,)),
         ("fc2.w", (1, 4)))
DECAY = ("qkv.w", "proj.w", "fc.w", "fc2.w")


def parse(spec):
    """(T, V, C, [heads of each block]) of a language-model spec; SystemExit otherwise."""
    items = re.findall(r"[a-z0-9]+(?:\([^)]*\))?", spec)
    m = [re.fullmatch(r"in\((\d+)\)", items[0]), re.fullmatch(r"embed\((\d+),(\d+)\)", items[1])] if \
        len(items) > 3 else [None]
    if not all(m) or items[-2:] != ["lnorm", "lmhead"]:
        raise SystemExit(f"torch-gpt: not a language-model spec (in(T+1),embed(V,C),block...,lnorm,lmhead): {spec}")
    t, v, c = int(m[0][1]) - 1, int(m[1][1]), int(m[1][2])
    heads = []
    for it in items[2:-2]:
        b = re.fullmatch(r"block\((\d+),h(\d+)\)", it)
        if not b or int(b[1]) != c:
            raise SystemExit(f"torch-gpt: '{it}' is not block({c},hH)")
        heads.append(int(b[2]))
    return t, v, c, heads


class GPT(torch.nn.Module):
    """Parameters by dlfs's names: wte (V, C), wpe (T, C), b{i}.{tensor} of block i
    (BLOCK, plus fc2.b), lnf.g, lnf.b. Initialised as GPT-2 (normal 0.02), or loaded."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.T, self.V, C, self.heads = parse(spec)
        p = torch.nn.ParameterDict()
        p["wte"] = torch.nn.Parameter(torch.randn(self.V, C) * 0.02)
        p["wpe"] = torch.nn.Parameter(torch.randn(self.T, C) * 0.02)
        for i in range(len(self.heads)):
            for name, shape in BLOCK + (("fc2.b", (1,)),):
                full = tuple(k * C for k in shape)
                init = torch.ones(full) if name.endswith(".g") else \
                    torch.randn(full) * 0.02 if name.endswith(".w") else torch.zeros(full)
                p[f"b{i}_{name.replace('.', '_')}"] = torch.nn.Parameter(init)
        p["lnf_g"], p["lnf_b"] = torch.nn.Parameter(torch.ones(C)), torch.nn.Parameter(torch.zeros(C))
        self.p = p

    def groups(self, weight_decay):
        """AdamW's parameter groups: decay on the blocks' matrices only (dlfs's nodecay ranges)."""
        dec = [v for k, v in self.p.items() if k.split("_", 1)[-1].replace("_", ".") in DECAY]
        ids = {id(v) for v in dec}
        return [{"params": dec, "weight_decay": weight_decay},
                {"params": [v for v in self.p.values() if id(v) not in ids], "weight_decay": 0.0}]

    def block_(self, i, x):
        p, h = self.p, self.heads[i]
        g = lambda n: p[f"b{i}_{n}"]  # noqa: E731
        B, T, C = x.shape
        a = F.layer_norm(x, (C,), g("ln1_g"), g("ln1_b"), LN_EPS) @ g("qkv_w").t() + g("qkv_b")
        q, k, v = (t.view(B, T, h, C // h).transpose(1, 2) for t in a.split(C, dim=2))
        s = (q @ k.transpose(2, 3)) / math.sqrt(C // h)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        y = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
        x = x + y.transpose(1, 2).reshape(B, T, C) @ g("proj_w").t() + g("proj_b")
        m = F.gelu(F.layer_norm(x, (C,), g("ln2_g"), g("ln2_b"), LN_EPS) @ g("fc_w").t() + g("fc_b"),
                   approximate="tanh")
        return x + m @ g("fc2_w").t() + g("fc2_b")

    def forward(self, ids):
        """Logits (B, T, V) of inputs ids (B, T)."""
        x = self.p["wte"][ids] + self.p["wpe"]
        for i in range(len(self.heads)):
            x = self.block_(i, x)
        x = F.layer_norm(x, (x.shape[-1],), self.p["lnf_g"], self.p["lnf_b"], LN_EPS)
        return x @ self.p["wte"].t()

    def loss(self, windows):
        logits = self.forward(windows[:, :-1])
        return F.cross_entropy(logits.reshape(-1, self.V), windows[:, 1:].reshape(-1))


def load(path, dtype=torch.float64):
    with h5py.File(path, "r") as f:
        if "model_spec" not in f.attrs or "params" not in f:
            raise SystemExit(f"torch-gpt: {path} is not a dlfs checkpoint (no model_spec attribute or /params)")
        spec = f.attrs["model_spec"]
        spec = spec.decode() if isinstance(spec, bytes) else str(spec)
        net = GPT(spec).to(dtype)
        prm = f["params"]
        names = [n for n in prm]

        def get(kind, i):
            return np.asarray(prm[f"{i}_{kind}"]["weight"]), np.asarray(prm[f"{i}_{kind}"]["bias"])

        def idx(kind):
            return sorted(int(n.split("_")[0]) for n in names if n.endswith("_" + kind))
        emb, blocks, lnf = idx("embed"), idx("block"), idx("lnorm")
        if len(emb) != 1 or len(blocks) != len(net.heads) or len(lnf) != 1:
            raise SystemExit(f"torch-gpt: {path}: /params does not hold the layers of {spec}")
        vals = {}
        vals["wte"], vals["wpe"] = get("embed", emb[0])
        C = net.p["wte"].shape[1]
        for i, layer in enumerate(blocks):
            w, b = get("block", layer)
            at = 0
            for name, shape in BLOCK:
                full = tuple(k * C for k in shape)
                n = int(np.prod(full))
                vals[f"b{i}_{name.replace('.', '_')}"] = w[at:at + n].reshape(full)
                at += n
            if at != w.size:
                raise SystemExit(f"torch-gpt: {path}: block {layer} holds {w.size} weights, not {at}")
            vals[f"b{i}_fc2_b"] = b
        vals["lnf_g"], vals["lnf_b"] = get("lnorm", lnf[0])
    with torch.no_grad():
        for k, v in net.p.items():
            t = torch.from_numpy(np.ascontiguousarray(vals[k]).astype(np.float64))
            if t.numel() != v.numel():  # biases are stored flat: the count must match
                raise SystemExit(f"torch-gpt: {path}: {k} holds {t.numel()} values, not {v.numel()}")
            v.copy_(t.reshape(v.shape))
    return net


def windows(data, split, T):
    with h5py.File(data, "r") as f:
        tok = np.asarray(f[split]["tokens"]).astype(np.int64)
    n = (len(tok) - 1) // T
    if n < 1:
        raise SystemExit(f"torch-gpt: {data}: /{split}/tokens holds no window of {T + 1} tokens")
    return torch.from_numpy(np.stack([tok[k * T:k * T + T + 1] for k in range(n)]))


def adamw_step(a, dtype):
    """The model of CKPT0 after one full-batch AdamW step in dtype, and its loss before the step."""
    net = load(a.ckpt0).to(dtype)
    opt = torch.optim.AdamW(net.groups(a.weight_decay), lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    loss = net.loss(windows(a.data, "train", net.T))
    loss.backward()
    opt.step()
    return net, float(loss.detach())


def step(a):
    fails = 0
    before, after = load(a.ckpt0), load(a.ckpt1)
    t32, _ = adamw_step(a, torch.float32)
    t64, loss64 = adamw_step(a, torch.float64)
    if a.dlfs_loss is not None:
        ok = abs(a.dlfs_loss - loss64) <= 1e-5 * loss64
        print(f"{'ok' if ok else 'FAIL'}: loss before the step: dlfs {a.dlfs_loss:.7f}, torch float64 {loss64:.7f}")
        fails += not ok
    if a.dlfs_val_loss is not None:
        with torch.no_grad():
            val = float(after.loss(windows(a.data, "val", after.T)))
        ok = abs(a.dlfs_val_loss - val) <= 1e-5 * val
        print(f"{'ok' if ok else 'FAIL'}: validation loss after the step: dlfs {a.dlfs_val_loss:.7f}, torch float64 "
              f"{val:.7f}")
        fails += not ok
    worst, n, bad = 0.0, 0, 0
    for k, p0 in before.p.items():
        ref = t64.p[k].detach()
        change = float((ref - p0.detach()).abs().max())
        err = float((after.p[k].detach() - ref).abs().max())
        err32 = float((t32.p[k].detach().double() - ref).abs().max())
        bound = 1e-8 + max(1e-2 * change, 4 * err32)
        worst, n = max(worst, err / bound), n + 1
        if err > bound:
            print(f"FAIL {k}: |dlfs - float64| {err:.3g} > {bound:.3g} (PyTorch fp32's error {err32:.3g}; "
                  f"the step moved it by {change:.3g})")
            bad += 1
    print(f"{'ok' if not bad else 'FAIL'}: one AdamW step, {n} tensors against PyTorch in float64: worst error "
          f"{worst:.3f} of its bound (1e-8 + 1 % of the step, or 4x PyTorch fp32's own error)")
    return 1 if fails + bad else 0


MASK64 = (1 << 64) - 1


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK64
    return z ^ (z >> 31)


def hash64(key, counters):
    """hash64(key, c) for a numpy uint64 array of counters (wrapping arithmetic)."""
    k = np.uint64(mix64((key + 0x9e3779b97f4a7c15) & MASK64))
    with np.errstate(over="ignore"):
        c = counters * np.uint64(0xd1b54a32d192ed03) + np.uint64(0x632be59bd9b4e019)
        z = k ^ c
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return z ^ (z >> np.uint64(31))


def permutation(seed, epoch, n):
    """The epoch's order of n windows (the docstring's rule)."""
    key = int(hash64(int(hash64(seed, np.array([0x5a3b], np.uint64))[0]), np.array([epoch], np.uint64))[0])
    i = np.arange(n, 1, -1, dtype=np.uint64)
    js = (hash64(key, i) % i).tolist()
    a = list(range(n))
    for i, j in zip(range(n, 1, -1), js):
        a[i - 1], a[j] = a[j], a[i - 1]
    return a


def lr_at(a, t):
    if a.warmup > 0 and t < a.warmup:
        return a.lr * (t + 1) / a.warmup
    span = a.max_steps - a.warmup
    x = min(1.0, (t - a.warmup) / span) if span > 0 else 1.0
    return a.lr_min + (a.lr - a.lr_min) * 0.5 * (1.0 + math.cos(math.pi * x))


def val_loss(net, val, chunk=256):
    with torch.no_grad():
        return sum(float(net.loss(val[i:i + chunk])) * len(val[i:i + chunk]) for i in range(0, len(val), chunk)) \
            / len(val)


def dlfs_losses(path):
    """{step: validation loss} of a dlfs-train --metrics file (its eval and final events)."""
    out = {}
    for line in open(path):
        m = re.search(r'"event": "(eval|final)".*?"step": (\d+), "test_loss": ([0-9.]+)', line)
        if m:
            out[int(m[2])] = float(m[3])
    return out


def train(a):
    torch.set_num_threads(a.threads)
    net = load(a.ckpt0).to(torch.float32)
    with h5py.File(a.data, "r") as f:
        tok = torch.from_numpy(np.asarray(f["train"]["tokens"]).astype(np.int64))
    n, T, B = (len(tok) - 1) // net.T, net.T, a.batch
    if n < B or a.max_steps < 1:
        raise SystemExit(f"torch-gpt: {a.data}: {n} training windows of {T + 1} make no batch of {B}, or "
                         f"--max-steps {a.max_steps} < 1")
    val = windows(a.data, "val", T)
    opt = torch.optim.AdamW(net.groups(a.weight_decay), lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    print(f"torch {torch.__version__}, {a.threads} thread(s): {n} windows of {T + 1}, batch {B}, "
          f"{n // B} steps/epoch, {a.max_steps} steps")
    offs, perm, mine, t0 = torch.arange(T + 1), None, {}, time.time()
    for t in range(a.max_steps):
        epoch, s = divmod(t, n // B)
        if s == 0:
            perm = torch.tensor(permutation(a.seed, epoch + 1, n), dtype=torch.int64)
        batch = tok[(perm[s * B:(s + 1) * B] * T)[:, None] + offs]
        for g in opt.param_groups:
            g["lr"] = lr_at(a, t)
        opt.zero_grad(set_to_none=True)
        loss = net.loss(batch)
        loss.backward()
        loss = float(loss.detach())
        if a.clip_grad:
            norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in net.p.values()))
            if norm > a.clip_grad:
                for p in net.p.values():
                    p.grad.mul_(a.clip_grad / norm)
        opt.step()
        step = t + 1
        if (a.eval_every and step % a.eval_every == 0) or step == a.max_steps:
            mine[step] = v = val_loss(net, val)
            print(f"step {step:6d}  train_loss {loss:.4f}  val_loss {v:.4f} nats  {v / math.log(2):.4f} bits/byte  "
                  f"{time.time() - t0:.0f} s", flush=True)
    return compare(mine, a) if a.dlfs_metrics else 0


def compare(mine, a):
    """Our validation losses against dlfs-train's at the same steps (read once we are done)."""
    ref = dlfs_losses(a.dlfs_metrics)
    both = sorted(set(ref) & set(mine))
    if not both:
        print(f"FAIL: {a.dlfs_metrics} holds no validation loss at the steps evaluated here")
        return 1
    fails = 0
    for step in both:
        d = abs(mine[step] - ref[step]) / ref[step]
        fails += d > a.tolerance
        print(f"{'ok' if d <= a.tolerance else 'FAIL'}: step {step}: validation loss dlfs {ref[step]:.6f}, "
              f"torch {mine[step]:.6f} (relative difference {d:.1e}, at most {a.tolerance:g})")
    return 1 if fails else 0


def train_args(sub):
    r = sub.add_parser("train")
    r.add_argument("ckpt0")
    r.add_argument("data")
    r.add_argument("--batch", type=int, required=True)
    r.add_argument("--max-steps", type=int, required=True)
    r.add_argument("--lr", type=float, required=True)
    r.add_argument("--weight-decay", type=float, required=True)
    r.add_argument("--beta1", type=float, default=0.9)
    r.add_argument("--beta2", type=float, default=0.999)
    r.add_argument("--eps", type=float, default=1e-8)
    r.add_argument("--warmup", type=int, default=0)
    r.add_argument("--lr-min", type=float, default=0.0)
    r.add_argument("--clip-grad", type=float, default=0.0)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--eval-every", type=int, default=0)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--dlfs-metrics")
    r.add_argument("--tolerance", type=float, default=0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("loss")
    e.add_argument("ckpt")
    e.add_argument("data")
    e.add_argument("--split", choices=["train", "val"], default="train")
    s = sub.add_parser("step")
    s.add_argument("ckpt0")
    s.add_argument("ckpt1")
    s.add_argument("data")
    s.add_argument("--lr", type=float, required=True)
    s.add_argument("--weight-decay", type=float, required=True)
    s.add_argument("--beta1", type=float, default=0.9)
    s.add_argument("--beta2", type=float, default=0.999)
    s.add_argument("--eps", type=float, default=1e-8)
    s.add_argument("--dlfs-loss", type=float)
    s.add_argument("--dlfs-val-loss", type=float)
    train_args(sub)
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    if a.cmd == "loss":
        net = load(a.ckpt)
        with torch.no_grad():
            print(f"torch loss {float(net.loss(windows(a.data, a.split, net.T))):.7f}")
        return 0
    return train(a) if a.cmd == "train" else step(a)


if __name__ == "__main__":
    sys.exit(main())
