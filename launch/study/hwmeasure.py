"""hwmeasure — the measurements of launch/hardware-guide --measure: short trainings on
Fashion-MNIST and `dlfs-train --bench` runs on this machine, each run's metrics in DIR and the
list of runs in DIR/guide-runs.json (hwguide.MANIFEST)."""
import os
import shlex
import subprocess
import sys
import time

from . import hwguide, perfmodel
from .perfmodel import const

# models that train on synthetic data only (3x224x224 images, 1024-token windows): --measure
# benches them on the CPU, briefly, at cpu_batch, and their rows split a global batch of `batch`
BENCH_ONLY = {"resnet50": {"batch": 32, "cpu_batch": 4, "steps": 2},
              "gpt2": {"batch": 8, "cpu_batch": 1, "steps": 2}}


def die(msg, code=2):
    print("hardware-guide: error: " + msg, file=sys.stderr)
    sys.exit(code)


def log(msg):
    print("hardware-guide: " + msg, flush=True)


def find_train(given):
    try:
        path = perfmodel.find_train(given)
    except perfmodel.InputError as e:
        die(str(e))
    if path is None:
        die("dlfs-train not found: pass --train PATH or set DLFS_TRAIN")
    return path


def mpirun(p):
    cmd = ["mpirun", "-np", str(p), "--bind-to", "none"]
    if os.geteuid() == 0 and not os.environ.get("OMPI_ALLOW_RUN_AS_ROOT"):
        cmd.append("--allow-run-as-root")
    return cmd


def run(a, runs, meta, cmd):
    """One dlfs-train run, its metrics file named in meta; appends its record to runs."""
    path = os.path.join(a.measure, meta["file"])
    cmd = cmd + ["--metrics", path, "--quiet"]
    print("+ " + shlex.join(cmd), flush=True)
    t0 = time.monotonic()
    with open(path[:-len(".jsonl")] + ".log", "w") as logf:
        rc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    here = perfmodel.ROOT + os.sep
    runs.append(dict(meta, command=shlex.join(cmd[cmd.index(a.train):]).replace(a.train, "dlfs-train")
                     .replace(here, ""),
                     launcher=shlex.join(cmd[:cmd.index(a.train)]), wall_s=round(wall, 1), rc=rc))
    log(f"{meta['file']}: exit {rc}, {wall:.1f} s")


def measure_model(a, runs, model, device, n_gpus, has_eval_every):
    if model in BENCH_ONLY:
        return measure_bench_only(a, runs, model, device, n_gpus)
    B = a.batch
    train = [a.train, "--data", a.data, "--model", model, "--batch", str(B), "--device", device,
             "--epochs", str(a.epochs_of.get(model, 1)), "--seed", "1"]
    if has_eval_every:   # evaluations 4 times an epoch, for the time to the target; all epochs run
        train += ["--eval-every", str(max(1, const("train_samples") // B // 4))]
    cores = perfmodel.usable_cores()
    base = {"model": model, "device": device, "batch": B, "threads": cores if device == "cpu" else None}
    run(a, runs, dict(base, file=f"train-{device}-{model}.jsonl", kind="train", ranks=1), mpirun(1) + train)
    for b in (a.cpu_b if device == "cpu" else a.gpu_b):
        run(a, runs, dict(base, file=f"bench-{device}-{model}-b{b}.jsonl", kind="bench", ranks=1, batch=b),
            mpirun(1) + [a.train, "--bench", "--model", model, "--batch", str(b), "--device", device,
                         "--steps", str(a.bench_steps), "--bench-warmup", "2"])
    for p in ([2, 4, 8] if device == "cuda" else []):
        if p <= n_gpus and B % p == 0:
            run(a, runs, dict(base, file=f"bench-{device}-{model}-np{p}.jsonl", kind="bench", ranks=p),
                mpirun(p) + [a.train, "--bench", "--model", model, "--batch", str(B), "--device", device,
                             "--steps", str(a.bench_steps), "--bench-warmup", "2"])


def measure_bench_only(a, runs, model, device, n_gpus):
    """A model without a dataset here: short benches (CPU: one small batch; GPU: the global batch
    on 1, 2, 4, 8 GPUs), no training."""
    o, B = BENCH_ONLY[model], a.batch_of.get(model, BENCH_ONLY[model]["batch"])
    cores = perfmodel.usable_cores()
    base = {"model": model, "device": device, "kind": "bench", "threads": cores if device == "cpu" else None}
    for p in ([1] if device == "cpu" else [1, 2, 4, 8]):
        b = o["cpu_batch"] if device == "cpu" else B
        if p <= max(1, n_gpus) and b % p == 0:
            run(a, runs, dict(base, file=f"bench-{device}-{model}-b{b}-np{p}.jsonl", ranks=p, batch=b),
                mpirun(p) + [a.train, "--bench", "--model", model, "--batch", str(b), "--device", device,
                             "--steps", str(o["steps"]), "--bench-warmup", "1"])


def measure(a):
    """Run the measurements into a.measure; returns the number of failed runs."""
    a.train = find_train(a.train)
    if not os.path.exists(a.data):
        conv = "dlfs-data" if perfmodel.INSTALLED else "build/src/dlfs-data"
        die(f"--data {a.data}: no such file (convert it first: {conv} convert --fashion-mnist "
            f"/usr/share/datasets/fashion-mnist -o datasets/fashion-mnist.h5)")
    os.makedirs(a.measure, exist_ok=True)
    help_text = subprocess.run([a.train, "--help"], capture_output=True, text=True).stdout
    has_eval_every = "--eval-every" in help_text
    gpus = perfmodel.gpus()
    devices = ["cpu", "cuda"] if a.device == "both" else [a.device]
    if "cuda" in devices and not gpus:
        die("--device cuda: no GPU is visible here (nvidia-smi -L lists none)")
    machine, t0, runs = perfmodel.machine(), time.monotonic(), []
    log(f"measuring {' '.join(a.model_list)} on {', '.join(devices)} into {a.measure}"
        + ("" if has_eval_every else " (this dlfs-train has no --eval-every: time to the target from the "
                                     "per-epoch objects)"))
    for model in a.model_list:
        for device in devices:
            measure_model(a, runs, model, device, len(gpus), has_eval_every)
    perfmodel.write_json(os.path.join(a.measure, hwguide.MANIFEST), {
        "format": hwguide.MANIFEST_FORMAT, "machine": machine, "command": "launch/hardware-guide "
        + shlex.join(sys.argv[1:]), "target_acc": a.target_acc, "wall_s": round(time.monotonic() - t0, 1),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()], "runs": runs})
    log(f"measured in {time.monotonic() - t0:.0f} s")
    return sum(1 for r in runs if r["rc"] != 0)
