#!/usr/bin/env python3
"""PyTorch reference for dlfs's benchmarks: the same models, the same optimizer step.

    launch/study/torch_ref.py --device cpu|cuda [--threads N] [--steps S] [--warmup W]
                        CASE [CASE ...]

A CASE is MODEL:BATCH[:PRECISION[:MODE]] with MODEL in mlp, mlp-large, cnn, cnn-bn,
resnet20, resnet50 (3x224x224 inputs, 1000 classes; the others 1x28x28, 10),
gpt-tiny or gpt2 (dlfs's presets, the model of launch/torch-gpt.py: BATCH windows of
T + 1 random ids below the vocabulary, the loss at each of the T positions; gpt-tiny:
T 128, vocabulary 256; gpt2: T 1024, vocabulary 50257, 124 M parameters),
PRECISION fp32 (default; TF32 off, as dlfs's default math) or bf16 (autocast,
fp32 master weights, as dlfs's --precision bf16) and MODE eager (default) or
graph (the whole step captured in one CUDA graph; CUDA only).

Each case prints one line that launch/gpu-check.sh and launch/bench-vs-torch parse:

    torch MODEL BATCH PRECISION MODE MEDIAN_MS

Data is random and already resident where the model runs; Adam lr 1e-3,
cross-entropy, 10 classes. Timing: CUDA events around each step on a GPU,
perf_counter on the CPU; the median over the timed steps. Cases that cannot run
(e.g. graph capture failing) print `torch ... failed: REASON` and the script goes on.
"""
import argparse
import importlib.util
import os
import statistics
import sys
import time

import torch

GPT = {"gpt-tiny": "in(129),embed(256,128)" + ",block(128,h4)" * 4 + ",lnorm,lmhead",   # dlfs's presets
       "gpt2": "in(1025),embed(50257,768)" + ",block(768,h12)" * 12 + ",lnorm,lmhead"}


def gpt_class():
    """launch/torch-gpt.py's GPT (the file name has a hyphen: loaded by path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch-gpt.py")
    spec = importlib.util.spec_from_file_location("torch_gpt", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.GPT


def build(name):
    nn = torch.nn
    if name in GPT:
        return gpt_class()(GPT[name])
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, 10))
    if name == "mlp-large":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                             nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 10))
    if name == "cnn":  # dlfs's `cnn` preset
        return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(64 * 7 * 7, 1024), nn.ReLU(), nn.Linear(1024, 10))
    if name == "cnn-bn":  # dlfs's `cnn-bn` preset (batch statistics over the whole batch here)
        return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(1024, 10))
    if name == "resnet20":  # dlfs's `resnet20`: 3 stages of 3 basic blocks on 1x28x28
        layers = [nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
        c = 16
        for oc, s in ((16, 1), (16, 1), (16, 1), (32, 2), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1)):
            layers.append(Block(c, oc, s, bottleneck=False))
            c = oc
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    if name == "resnet50":  # dlfs's `resnet50` = torchvision's resnet50 (stride on the 3x3)
        layers = [nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                  nn.MaxPool2d(3, 2, 1)]
        c = 64
        for width, n, s in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(n):
                layers.append(Block(c, width, s if i == 0 else 1, bottleneck=True))
                c = 4 * width
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))
    raise SystemExit(f"torch-ref: unknown model '{name}' (mlp, mlp-large, cnn, cnn-bn, resnet20, resnet50, "
                     "gpt-tiny)")


class Block(torch.nn.Module):
    """dlfs's res(C,sS) (bottleneck=False) and bottleneck(C,sS): convs without bias,
    batch norm, the projection shortcut when the shape changes, relu after the add."""

    def __init__(self, c, width, stride, bottleneck):
        super().__init__()
        nn = torch.nn
        oc = 4 * width if bottleneck else width
        if bottleneck:
            self.main = nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU(), nn.Conv2d(width, oc, 1, bias=False), nn.BatchNorm2d(oc))
        else:
            self.main = nn.Sequential(nn.Conv2d(c, oc, 3, stride, 1, bias=False), nn.BatchNorm2d(oc), nn.ReLU(),
                                      nn.Conv2d(oc, oc, 3, 1, 1, bias=False), nn.BatchNorm2d(oc))
        self.short = (nn.Sequential(nn.Conv2d(c, oc, 1, stride, bias=False), nn.BatchNorm2d(oc))
                      if stride != 1 or c != oc else nn.Identity())

    def forward(self, x):
        return torch.relu(self.main(x) + self.short(x))


SHAPES = {"resnet50": ((3, 224, 224), 1000)}  # input shape and classes; the others 1x28x28, 10


def bench(dev, name, batch, precision, mode, steps, warmup):
    torch.manual_seed(0)
    model = build(name).to(dev)
    graph = mode == "graph"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graph)
    lossf = torch.nn.CrossEntropyLoss()
    shape, classes = SHAPES.get(name, ((1, 28, 28), 10))
    if name.startswith("gpt"):  # windows of T + 1 ids: inputs and targets both come from them
        x = torch.randint(0, model.V, (batch, model.T + 1), device=dev)

        def loss_of():
            return model.loss(x)
    else:
        x = torch.rand(batch, *shape, device=dev)
        y = torch.randint(0, classes, (batch,), device=dev)

        def loss_of():
            return lossf(model(x), y)
    cast = torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        opt.zero_grad(set_to_none=not graph)
        with cast:
            loss = loss_of()
        loss.backward()
        opt.step()

    run = step
    if graph:
        if dev != "cuda":
            raise RuntimeError("graph mode needs --device cuda")
        side = torch.cuda.Stream()  # warm up on a side stream, as the CUDA graphs docs ask
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        run = g.replay
    for _ in range(warmup):
        run()
    times = []
    if dev == "cuda":
        torch.cuda.synchronize()
        for _ in range(steps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            run()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
    else:
        for _ in range(steps):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("cases", nargs="+", metavar="MODEL:BATCH[:PRECISION[:MODE]]")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("torch-ref: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 1
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    where = torch.cuda.get_device_name() if a.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {where}", flush=True)
    for case in a.cases:
        parts = case.split(":")
        if len(parts) < 2 or not parts[1].isdigit():
            print(f"torch-ref: bad case '{case}': MODEL:BATCH[:fp32|bf16[:eager|graph]]", file=sys.stderr)
            return 2
        name, batch = parts[0], int(parts[1])
        precision = parts[2] if len(parts) > 2 else "fp32"
        mode = parts[3] if len(parts) > 3 else "eager"
        if precision not in ("fp32", "bf16") or mode not in ("eager", "graph"):
            print(f"torch-ref: bad case '{case}': precision fp32|bf16, mode eager|graph", file=sys.stderr)
            return 2
        try:
            ms = bench(a.device, name, batch, precision, mode, a.steps, a.warmup)
            print(f"torch {name} {batch} {precision} {mode} {ms:.4f}", flush=True)
        except Exception as e:  # one case failing (e.g. capture) must not hide the others
            print(f"torch {name} {batch} {precision} {mode} failed: {e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
