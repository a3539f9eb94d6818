#!/usr/bin/env python3
"""PyTorch reference for dlfs's benchmarks: the same models, the same optimizer step.

    launch/study/torch_ref.py --device cpu|cuda [--threads N] [--steps S] [--warmup W]
                        CASE [CASE ...]

A CASE is MODEL:BATCH[:PRECISION[:MODE]] with MODEL in mlp, mlp-large, cnn, cnn-bn,
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
import statistics
import sys
import time

import torch


def build(name):
    nn = torch.nn
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
    raise SystemExit(f"torch-ref: unknown model '{name}' (mlp, mlp-large, cnn, cnn-bn)")


def bench(dev, name, batch, precision, mode, steps, warmup):
    torch.manual_seed(0)
    model = build(name).to(dev)
    graph = mode == "graph"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graph)
    lossf = torch.nn.CrossEntropyLoss()
    x = torch.rand(batch, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    cast = torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        opt.zero_grad(set_to_none=not graph)
        with cast:
            loss = lossf(model(x), y)
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
