#!/usr/bin/env python3
"""A dlfs checkpoint rebuilt in PyTorch: the independent check of dlfs's layers.

    launch/torch-ckpt.py eval CKPT DATA
    launch/torch-ckpt.py step CKPT0 CKPT1 DATA --lr LR [--dlfs-acc A]

The model is built from the checkpoint's `model_spec` (the canonical layer list:
in, conv with or without bias, maxpool with padding, batchnorm, the activations,
flatten, dense, gap, add(K) and from(K), so every resnet20/resnet50 block) with
torch.nn modules, and its /params and /buffers are loaded tensor by tensor. DATA is
a dlfs dataset file (HDF5); its images are normalised as dlfs-train does,
(pixel / 255 - mean[c]) / std[c], with the file's training mean and std.

eval: the test accuracy in evaluation mode (batch norm's running statistics).

step: CKPT0 holds the parameters before one SGD step, CKPT1 those after it, taken
by dlfs-train on the WHOLE training split as one batch (SGD, momentum 0, no weight
decay, fp32, batch norm in training mode over the batch), so the order of the rows
does not matter (dlfs-train --virtual-shards 1: batch norm over the whole batch).
PyTorch takes the same step from CKPT0 (running statistics from their initial 0 and
1) in float64, the reference, and in float32, and the script checks, per tensor:
  - every parameter: |dlfs - float64| <= 1e-7 + max(5 % of the step's largest
    change of the tensor, 4 x |PyTorch float32 - float64|): dlfs's fp32 step is as
    close to the exact one as PyTorch's own fp32 step, or within 5 % of the step.
    Measured on resnet20 (64 images): dlfs's tensors 0.1-0.7 % of the step from
    float64, PyTorch fp32's 0.001-0.01 %, and one tensor pair at 2.3 % / 1.2 %
    (layer 41's conv weight and layer 42's batch-norm shift): a pre-activation within
    rounding of 0 takes the other side of a ReLU after 40 layers of fp32 differences,
    which moves the shift's gradient (sum of dz) but not the scale's (sum of dz *
    xhat, xhat ~ 0 there). Small ResNets of the same blocks agree with PyTorch fp32
    to its own error. A wrong gradient is off by tens of per cent;
  - the running statistics: |dlfs - float64| <= 1e-6 (1 + max |value|) + 4 x
    PyTorch float32's error;
  - with --dlfs-acc, the test accuracy of CKPT1 in evaluation mode equals A within
    one test image in 500 (ties in the arg max may fall either way).
It prints one line per check and exits 1 if any fails (2 for a usage error).
"""
import argparse
import re
import sys

import h5py
import numpy as np
import torch

ACTS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
        "gelu": lambda: torch.nn.GELU(approximate="tanh")}


def split_top(spec):
    """The spec's items: commas outside parentheses."""
    items, depth, cur = [], 0, ""
    for ch in spec:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    items.append(cur)
    return items


def ref(s):
    return -1 if s == "in" else int(s)


class Net(torch.nn.Module):
    """The layer list: layer i reads outs[src0] (-1: the input) and, for add, outs[src1]."""

    def __init__(self, spec):
        super().__init__()
        items = split_top(spec)
        m = re.fullmatch(r"in\((\d+)(?:x(\d+)x(\d+))?\)", items[0])
        if not m:
            raise SystemExit(f"torch-ckpt: the spec does not start with in(): {items[0]}")
        shape = (int(m[1]), int(m[2]), int(m[3])) if m[2] else (int(m[1]), 1, 1)
        self.in_shape = shape
        self.mods, self.kinds, self.src, self.acts, self.names = torch.nn.ModuleList(), [], [], [], []
        shapes, pending = [], None
        for it in items[1:]:
            name, _, arg = it.partition("(")
            arg = arg.rstrip(")")
            if name in ACTS:
                self.acts[-1] = ACTS[name]()
                continue
            if name == "from":
                pending = ref(arg)
                continue
            i = len(self.kinds)
            s0 = pending if pending is not None else i - 1
            pending = None
            c, h, w = self.in_shape if s0 < 0 else shapes[s0]
            mod, src, out = self.layer_(name, arg, (c, h, w), i, shapes)
            self.mods.append(mod)
            self.kinds.append(name)
            self.src.append((s0,) + src)
            self.acts.append(None)
            self.names.append(f"{i}_{name}")
            shapes.append(out)

    @staticmethod
    def layer_(name, arg, shape, i, shapes):
        c, h, w = shape
        a = arg.split(",") if arg else []
        kv = {x[0]: int(x[1:]) for x in a[1:]}
        nn = torch.nn
        if name == "dense":
            return nn.Linear(c * h * w, int(a[0])), (), (int(a[0]), 1, 1)
        if name == "conv":
            oc, k, s, p = int(a[0]), kv["k"], kv.get("s", 1), kv.get("p", 0)
            mod = nn.Conv2d(c, oc, k, stride=s, padding=p, bias=kv.get("b", 1) == 1)
            return mod, (), (oc, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        if name == "maxpool":
            k = int(a[0])
            s, p = kv.get("s", k), kv.get("p", 0)
            return nn.MaxPool2d(k, s, p), (), (c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        if name == "batchnorm":  # per channel of an image; per feature of a flat input
            return (nn.BatchNorm2d(c) if h * w > 1 else nn.BatchNorm1d(c)), (), shape
        if name == "gap":
            return nn.Identity(), (), (c, 1, 1)
        if name == "flatten":
            return nn.Flatten(), (), (c * h * w, 1, 1)
        if name == "add":
            return nn.Identity(), (ref(arg),), shape
        if name == "dropout":
            return nn.Dropout(float(arg)), (), shape
        raise SystemExit(f"torch-ckpt: layer {i} '{name}' is not known here")

    def forward(self, x):
        outs = []
        for i, (mod, kind) in enumerate(zip(self.mods, self.kinds)):
            src = self.src[i]
            y = x if src[0] < 0 else outs[src[0]]
            if kind == "dense":
                y = mod(y.flatten(1))
            elif kind == "batchnorm" and isinstance(mod, torch.nn.BatchNorm1d):
                y = mod(y.flatten(1)).view(y.shape)
            elif kind == "gap":
                y = y.mean(dim=(2, 3), keepdim=True)
            elif kind == "add":
                y = y + (x if src[1] < 0 else outs[src[1]])
            else:
                y = mod(y)
            if self.acts[i] is not None:
                y = self.acts[i](y)
            outs.append(y)
        return outs[-1].flatten(1)


def load(path):
    f = h5py.File(path, "r")
    net = Net(f.attrs["model_spec"])
    with torch.no_grad():
        for name, mod in zip(net.names, net.mods):
            if name in f.get("params", {}):
                g = f["params"][name]
                mod.weight.copy_(torch.from_numpy(np.asarray(g["weight"])).reshape(mod.weight.shape))
                if "bias" in g:
                    mod.bias.copy_(torch.from_numpy(np.asarray(g["bias"])))
                elif getattr(mod, "bias", None) is not None:
                    raise SystemExit(f"torch-ckpt: {path}: {name} has no bias in the checkpoint")
            if "buffers" in f and name in f["buffers"]:
                mod.running_mean.copy_(torch.from_numpy(np.asarray(f["buffers"][name]["running_mean"])))
                mod.running_var.copy_(torch.from_numpy(np.asarray(f["buffers"][name]["running_var"])))
    return net, f


def images(data, split):
    f = h5py.File(data, "r")
    x = torch.from_numpy(np.asarray(f[split]["images"]).astype(np.float32) / 255.0)
    mean = torch.tensor(np.asarray(f.attrs["mean"]), dtype=torch.float64).float().view(1, -1, 1, 1)
    std = torch.tensor(np.asarray(f.attrs["std"]), dtype=torch.float64).float().view(1, -1, 1, 1)
    y = torch.from_numpy(np.asarray(f[split]["labels"]).astype(np.int64))
    return (x - mean) / std, y


def accuracy(net, data):
    x, y = images(data, "test")
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum()) for i in range(0, len(y), 500))
    return correct / len(y)


def sgd_step(path, data, lr, dtype):
    """The model of checkpoint `path` after one full-batch SGD step in `dtype`."""
    net, _ = load(path)
    for mod in net.mods:  # the statistics before the step: dlfs's initial ones
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            mod.reset_running_stats()
    net = net.to(dtype)
    x, y = images(data, "train")
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.0)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x.to(dtype)), y).backward()
    opt.step()
    return net


def step(args):
    fails = 0
    before, _ = load(args.ckpt0)
    after, _ = load(args.ckpt1)
    t32 = sgd_step(args.ckpt0, args.data, args.lr, torch.float32)
    t64 = sgd_step(args.ckpt0, args.data, args.lr, torch.float64)
    worst, n = 0.0, 0
    for (name, p0), q, p32, p64 in zip(before.named_parameters(), after.parameters(), t32.parameters(),
                                       t64.parameters()):
        ref = p64.detach()
        change = float((ref - p0.detach().double()).abs().max())
        err = float((q.detach().double() - ref).abs().max())
        err32 = float((p32.detach().double() - ref).abs().max())
        bound = 1e-7 + max(5e-2 * change, 4 * err32)
        worst, n = max(worst, err / bound), n + 1
        if err > bound:
            print(f"FAIL parameter {name}: |dlfs - float64| {err:.3g} > {bound:.3g} (PyTorch fp32's error "
                  f"{err32:.3g}; the step moved it by {change:.3g})")
            fails += 1
    print(f"{'ok' if not fails else 'FAIL'}: one SGD step, {n} tensors against PyTorch in float64: worst error "
          f"{worst:.3f} of its bound (1e-7 + 5 % of the step, or 4x PyTorch fp32's own error)")
    bad = 0
    for name, mod, mod1, mod32 in zip(t64.names, t64.mods, after.mods, t32.mods):
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            for b in ("running_mean", "running_var"):
                ref, d, f32 = getattr(mod, b), getattr(mod1, b).double(), getattr(mod32, b).double()
                err, err32 = float((d - ref).abs().max()), float((f32 - ref).abs().max())
                bound = 1e-6 * (1 + float(ref.abs().max())) + 4 * err32
                if err > bound:
                    print(f"FAIL {name}/{b}: |dlfs - float64| {err:.3g} > {bound:.3g}")
                    bad += 1
    print(f"{'ok' if not bad else 'FAIL'}: running statistics after the step (1e-6 relative, or 4x PyTorch fp32's "
          f"error)")
    fails += bad
    if args.dlfs_acc is not None:
        acc = accuracy(after, args.data)
        n = len(images(args.data, "test")[1])
        ok = abs(acc - args.dlfs_acc) <= max(1, n // 500) / n + 1e-9
        print(f"{'ok' if ok else 'FAIL'}: test accuracy after the step: torch {acc:.6f}, dlfs {args.dlfs_acc:.6f}")
        fails += not ok
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("ckpt")
    e.add_argument("data")
    s = sub.add_parser("step")
    s.add_argument("ckpt0")
    s.add_argument("ckpt1")
    s.add_argument("data")
    s.add_argument("--lr", type=float, required=True)
    s.add_argument("--dlfs-acc", type=float)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    if args.cmd == "eval":
        net, _ = load(args.ckpt)
        print(f"torch test_acc {accuracy(net, args.data):.6f}")
        return 0
    return step(args)


if __name__ == "__main__":
    sys.exit(main())
