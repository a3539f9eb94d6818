#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# launch/hardware-guide: --measure on this CPU (mlp: one epoch of training, benches at two
# batches), plus a hand-written input directory "from a GPU machine" (its manifest and
# dlfs-train metrics lines with known numbers: 1-GPU benches at batches 16 and 128, a 2-GPU
# bench, a 1-GPU training with --target-acc's fields), then the guide: the CPU row measured here with the figures of its
# metrics file, the GPU rows measured where the GPU input has them and modelled elsewhere with
# the figures the model gives (recomputed here from launch/study/hardware-model.json), efficiency =
# samples/s(P) / (P x samples/s(1)), the crossovers consistent with the model; then the guide
# from this machine alone (every GPU row modelled), and bad input. A model benched only
# (resnet50: a hand-written CPU bench at batch 4, 400 ms, 24.6 GFLOP per sample): its own
# global batch (32), its CPU row the line through that bench (10 samples/s, modelled), its GPU
# rows the model's, no epoch or time to a target; the mlp's modelled H100 epoch against
# PyTorch's measured 0.45 s (worked out here from the constants, not by the tool's code).
. "$(dirname "$0")/../lib.sh"
train=$1 fmnist=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
guide=$root/launch/hardware-guide
[ -f "$fmnist" ] || { echo "no $fmnist (the fmnist fixture): skipped"; exit 77; }
g=$T_TMP/g
python3 "$guide" --measure "$g" --models mlp --epochs mlp:1 --target-acc 0.80 --cpu-batches "16 64" \
  --bench-steps 3 --data "$fmnist" --train "$train" -o "$T_TMP/here.md" > "$T_TMP/measure.log" 2>&1
rc=$?
cat "$T_TMP/measure.log"
[ $rc -eq 0 ] && [ -f "$g/guide-runs.json" ] && [ -f "$T_TMP/here.md" ] && [ -f "$T_TMP/here.json" ] &&
  t_pass "hardware-guide --measure: runs, manifest, guide and its JSON" || { t_fail "hardware-guide --measure exited $rc"; t_done; }

# the input "from a GPU machine": the same model's spec and flop count, made-up GPU timings
gpu=$T_TMP/gpu-box
mkdir -p "$gpu"
python3 - "$g/bench-cpu-mlp-b64.jsonl" "$gpu" <<'PY'
import json, os, sys
cpu = json.loads(open(sys.argv[1]).readline())
F = cpu["gflops"] * 1e9 * cpu["step_ms"] / 1e3 / cpu["batch"]   # flops per sample
out = sys.argv[2]
runs = []
def bench(name, ranks, batch, ms):
    rec = {"event": "bench", "model": cpu["model"], "params": cpu["params"], "backend": "cuda", "ranks": ranks,
           "batch": batch, "batch_per_rank": batch // ranks, "steps": 10, "step_ms": ms,
           "samples_per_s": batch / ms * 1e3, "gflops": F * batch / ms / 1e6, "comm_wait_share": 0.0,
           "data_share": 0.0, "deterministic": False, "comm": "nccl", "precision": "fp32"}
    open(os.path.join(out, name), "w").write(json.dumps(rec) + "\n")
    runs.append({"file": name, "kind": "bench", "model": "mlp", "device": "cuda", "ranks": ranks, "batch": batch,
                 "command": "dlfs-train --bench", "launcher": "mpirun", "wall_s": 1.0, "rc": 0})
bench("b16.jsonl", 1, 16, 0.06)
bench("b128.jsonl", 1, 128, 0.09)
bench("np2.jsonl", 2, 128, 0.08)
with open(os.path.join(out, "train.jsonl"), "w") as f:   # --target-acc 0.8 --eval-every 117
    for step, t, acc in ((117, 0.15, 0.76), (234, 0.3, 0.81), (351, 0.42, 0.82), (468, 0.55, 0.83)):
        f.write(json.dumps({"event": "eval", "step": step, "epoch": 1, "test_acc": acc, "elapsed_s": t}) + "\n")
    f.write(json.dumps({"epoch": 1, "step": 468, "train_loss": 0.5, "test_loss": 0.45, "test_acc": 0.83,
                        "samples_per_s": 119808.0, "epoch_time_s": 0.5}) + "\n")
    f.write(json.dumps({"event": "final", "epoch": 1, "step": 468, "test_loss": 0.45, "test_acc": 0.83,
                        "params_sha256": "0" * 64, "ranks": 1, "model": cpu["model"], "comm": "none",
                        "backend": "cuda", "precision": "fp32", "target_acc": 0.8, "target_reached": True,
                        "steps_to_target": 234, "time_to_target_s": 0.31}) + "\n")
runs.append({"file": "train.jsonl", "kind": "train", "model": "mlp", "device": "cuda", "ranks": 1, "batch": 128,
             "command": "dlfs-train --data fmnist.h5", "launcher": "mpirun", "wall_s": 2.0, "rc": 0})
json.dump({"format": "dlfs-hardware-guide-runs/1", "machine": {"host": "gpu-box", "cpu": "Big CPU", "cores": 64,
           "gpus": ["NVIDIA H100 80GB HBM3"] * 8, "mpi": "mpirun (Open MPI) 5", "commit": "x"},
           "runs": runs}, open(os.path.join(out, "guide-runs.json"), "w"))
PY
python3 "$guide" "$g" "$gpu" --models mlp --target-acc 0.80 -o "$T_TMP/both.md" > "$T_TMP/both.log" 2>&1 ||
  { cat "$T_TMP/both.log"; t_fail "hardware-guide of both inputs exited non-zero"; }

# check_guide MD MODE: recompute the figures of the guide MD (and MD's .json) from the inputs
# (long: one Python heredoc, the oracle)
check_guide() {
  python3 - "$1" "$2" "$g" "$root/launch/study/hardware-model.json" <<'PY'
import json, math, os, re, sys
md_path, mode, g, cfile = sys.argv[1:5]
md, doc = open(md_path).read(), json.load(open(md_path[:-3] + ".json"))
c = {k: v["value"] for k, v in json.load(open(cfile))["constants"].items()}
host = json.load(open(os.path.join(g, "guide-runs.json")))["machine"]["host"]
bad, B, P8 = [], 128, (1, 2, 4, 8)
mod = doc["models"][0]
rows = {("cpu" if r["kind"] == "cpu" else r["ranks"]): r for r in mod["rows"]}
# the CPU row: this machine's training, as its metrics file says
lines = [json.loads(l) for l in open(os.path.join(g, "train-cpu-mlp.jsonl"))]
ep = [o for o in lines if "epoch_time_s" in o]
sps = ep[0]["step"] * B / ep[0]["epoch_time_s"]
# the time to the target: from evaluations with elapsed_s where dlfs-train writes them, else
# from the per-epoch objects (their training times summed)
ev = [(o["step"], o["elapsed_s"], o["test_acc"]) for o in lines if o.get("event") == "eval" and "elapsed_s" in o]
if not ev:
    ev = [(e["step"], sum(x["epoch_time_s"] for x in ep[:i + 1]), e["test_acc"]) for i, e in enumerate(ep)]
first = next((i for i, e in enumerate(ev) if e[2] >= 0.80), None)
if first is None:
    bad.append(f"precondition: mlp did not reach 0.80 in one epoch ({ev[-1][2]})")
cpu = rows["cpu"]
if cpu["sps"][1] != "measured" or abs(cpu["sps"][0] - sps) > 1e-6 * sps:
    bad.append(f"CPU samples/s {cpu['sps']}, want {sps} measured")
if first is not None and (cpu["ttt"][1] != "measured" or abs(cpu["ttt"][0]["time_s"] - ev[first][1]) > 1e-9):
    bad.append(f"CPU time to target {cpu['ttt']}, want {ev[first][1]} measured")
# the GPU line: fitted to (16, 0.06) and (128, 0.09) ms, or the model from the constants
F = mod["flops_per_sample"]
if mode == "both":
    slope = 0.03 / 112
    t1 = lambda b: 0.06 + slope * (b - 16)
else:
    t1 = lambda b: c["gpu_step_overhead_ms"] + F * b / (c["gemm_tflops_fp32"] * 1e12 * c["gpu_gemm_efficiency"]) * 1e3
calls = math.ceil(4 * mod["params"] / (c["bucket_mib"] * 2 ** 20))
ar = lambda p: 0 if p == 1 else 2 * (p - 1) / p * 4 * mod["params"] / (c["busbw_ring_gbs"] * 1e9) * 1e3 + calls * c["allreduce_latency_us"] / 1e3
measured = {1: 128 / 0.09e-3, 2: 128 / 0.08e-3} if mode == "both" else {}
steps = ev[first][0] if first is not None else 0
for p in P8:
    r = rows[p]
    if p in measured:
        want, how = measured[p], "measured on gpu-box"
    else:
        want, how = B / (t1(B / p) + ar(p)) * 1e3, "modelled"
    if r["sps"][1] != how or abs(r["sps"][0] - want) > 1e-9 * want:
        bad.append(f"{p} GPUs: samples/s {r['sps']}, want {want:.6g} {how}")
    if not (mode == "both" and p == 1):   # the 1-GPU training of the GPU input is measured
        t_eval = c["gpu_step_overhead_ms"] + F / 3 * c["test_samples"] / p / (c["gemm_tflops_fp32"] * 1e12 * c["gpu_gemm_efficiency"]) * 1e3
        want_t = steps * (B / r["sps"][0] * 1e3) / 1e3 + (first + 1) * t_eval / 1e3
        if r["ttt"][1] != "modelled" or abs(r["ttt"][0]["time_s"] - want_t) > 1e-9 * want_t:
            bad.append(f"{p} GPUs: time to target {r['ttt']}, want {want_t:.6g} modelled")
    elif r["ttt"][1] != "measured on gpu-box" or (r["ttt"][0]["steps"], r["ttt"][0]["time_s"]) != (234, 0.31):
        bad.append(f"1 GPU: time to target {r['ttt']}, want the final object's 234 steps, 0.31 s, measured on gpu-box")
# the Markdown: marks, and efficiency = samples/s(P) / (P x samples/s(1)) from its own cells
tab = {}
for line in md.split("## `mlp`", 1)[1].split("\n## ", 1)[0].splitlines():
    cells = [x.strip() for x in line.strip("|").split("|")]
    if len(cells) == 6 and "(" in cells[1]:
        tab[cells[0]] = cells
gpu_rows = [v for k, v in tab.items() if "GPU" in k]
cpu_cells = [v for k, v in tab.items() if k.startswith("CPU")]
if len(gpu_rows) != 4 or len(cpu_cells) != 1 or f"(`{host}`" not in next(iter(tab)):
    bad.append(f"table rows {list(tab)}")
elif not all(x.endswith("(measured)") for x in cpu_cells[0][1:4]):
    bad.append(f"CPU row not marked measured: {cpu_cells[0]}")
num = lambda s: float(s.split(" (")[0].replace(",", ""))
for p, cells in zip(P8, gpu_rows):
    want_mark = "measured on gpu-box" if p in measured else "modelled"
    if not cells[1].endswith(f"({want_mark})"):
        bad.append(f"{p} GPUs: samples/s cell {cells[1]!r}, want ({want_mark})")
    eff = num(cells[1]) / (p * num(gpu_rows[0][1]))
    shown = 100.0 if p == 1 else float(cells[4].split("%")[0])
    if abs(100 * eff - shown) > 1.0:
        bad.append(f"{p} GPUs: efficiency {shown} %, the row's samples/s give {100 * eff:.1f} %")
# the crossovers: the line, and batches for 80 / 90 % consistent with the model
if f"**One GPU vs the CPU of `{host}`**" not in md or "**2, 4, 8 GPUs**" not in md or "**Model size**" not in md:
    bad.append("crossover lines missing")
for m in mod["crossovers"]["multi"]:
    p, t_ar = m["P"], ar(m["P"])
    if abs(m["allreduce_ms"] - t_ar) > 1e-12:
        bad.append(f"{p} GPUs: all-reduce {m['allreduce_ms']} ms, want {t_ar}")
    eff = lambda b: t1(b) / (t1(b) + t_ar)   # one bucket: nothing can be hidden
    for e, b in ((0.8, m["b80"]), (0.9, m["b90"])):
        if not (eff(b) >= e - 1e-12 and (b == 1 or eff(b - 1) < e)):
            bad.append(f"{p} GPUs: batch {b} for {e}: efficiency {eff(b):.4f} there, {eff(b - 1):.4f} one below")
cx = mod["crossovers"]["cpu"][0]
cc, b = cx["cpu_curve"], cx["batch"]
cpu_t = lambda x: cc["t0_ms"] + cc["ms_per_sample"] * x
if b is None or not (t1(b) < cpu_t(b) and (b == 1 or t1(b - 1) >= cpu_t(b - 1))):
    bad.append(f"CPU/GPU crossover batch {b} does not match the two lines")
for needle in ("## How the modelled figures are made", "`gpu_gemm_efficiency`", "nccl-tests/issues/212",
               "## What was run", "dlfs-train --bench", "## Regenerate"):
    if needle not in md:
        bad.append(f"no {needle!r}")
print("; ".join(bad) if bad else "ok")
PY
}
check=$(check_guide "$T_TMP/both.md" both)
[ "$check" = ok ] && t_pass "guide from both machines: CPU measured, 1 and 2 GPUs measured on gpu-box, 4 and 8 modelled as the model says, efficiencies and crossovers consistent" ||
  t_fail "guide from both machines: $check"
check=$(check_guide "$T_TMP/here.md" here)
[ "$check" = ok ] && t_pass "guide from this machine alone: every GPU figure modelled from the constants, consistent" ||
  t_fail "guide from this machine alone: $check"

# one GPU model for both tools, against PyTorch's measured H100 steps (launch/README.md, Targets;
# flops: 6 x parameters per sample): never faster than one of them, within 1 % of each; the guide's
# modelled 1-GPU curve and scaling-report's H100 compute are that same model
python3 - "$root/launch" <<'PY' && t_pass "one GPU model: PyTorch's H100 anchors met (never faster), guide and scaling-report agree" || t_fail "GPU model"
import importlib.machinery, sys, types
sys.path.insert(0, sys.argv[1])
from study import hwguide, perfmodel
mlp, big = 6 * 669706, 6 * 36818954   # 784-512-512-10 and 784-4096-4096-4096-10, by hand
for F, b, prec, ms in ((mlp, 128, "fp32", 0.172), (big, 8192, "fp32", 36.0), (big, 8192, "bf16", 3.53)):
    t = perfmodel.gpu_step_ms(F, b, prec)
    assert ms <= t <= 1.01 * ms, (F, b, prec, t, ms)
report = types.ModuleType("scaling_report")
report.__file__ = sys.argv[1] + "/scaling-report"
exec(compile(open(report.__file__).read().replace('if __name__ == "__main__":', "if False:"), report.__file__, "exec"),
     report.__dict__)
r1 = {"gflops": mlp * 128 / 0.004 / 1e9, "step_ms": 4.0, "batch": 128}   # a CPU bench line: 4 ms a step
for share in (1.0, 0.5, 0.125):
    want = perfmodel.gpu_step_ms(mlp, 128 * share, "fp32")
    assert abs(report.h100_compute_ms(None, r1, share) - want) < 1e-9, (share, want)
curve, measured = hwguide.gpu_curve([], mlp, "fp32", perfmodel.gemm_efficiency("fp32"))
assert not measured and all(abs(curve.t0 + curve.slope * b - perfmodel.gpu_step_ms(mlp, b)) < 1e-9 for b in (1, 128, 4096))
print("mlp at 128: %.4f ms modelled (PyTorch 0.172 ms)" % perfmodel.gpu_step_ms(mlp, 128))
PY

# weak evidence: the GPU input as measured under load 6.7 on 2 cores from a dirty tree (as the
# guide committed before issue 25 was): a box at the top of the guide; refused over a file git
# tracks (the committed guide), which stays as it was; without -o the guide goes to the current
# directory
busy=$T_TMP/busy-box
cp -r "$gpu" "$busy"
python3 - "$busy/guide-runs.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["machine"].update(host="busy-box", cores=2, loadavg=[6.7, 7.1, 6.9], commit="5e68a59501+changes")
json.dump(d, open(sys.argv[1], "w"))
PY
python3 "$guide" "$busy" --models mlp --target-acc 0.80 -o "$T_TMP/busy.md" > "$T_TMP/busy.log" 2>&1 &&
  grep -qF '> **Weak evidence' "$T_TMP/busy.md" && grep -qF 'under load 6.70 on 2 usable core(s)' "$T_TMP/busy.md" &&
  grep -qF 'uncommitted changes (commit 5e68a59501+changes)' "$T_TMP/busy.md" &&
  ! grep -q '^> - `gpu-box`' "$T_TMP/both.md" && t_pass "load and a dirty tree are marked on the guide (not the idle gpu-box)" ||
  { cat "$T_TMP/busy.log"; head -12 "$T_TMP/busy.md"; t_fail "weak evidence not marked"; }
repo=$T_TMP/repo
mkdir -p "$repo/results" && echo "committed guide" > "$repo/results/guide.md" && git -C "$repo" init -q &&
  git -C "$repo" add results/guide.md || t_fail "scratch repository"
python3 "$guide" "$busy" --models mlp --target-acc 0.80 -o "$repo/results/guide.md" > /dev/null 2> "$T_TMP/err"
rc=$?
[ $rc -eq 2 ] && grep -qF "is a committed file and would be replaced by weak evidence" "$T_TMP/err" &&
  [ "$(cat "$repo/results/guide.md")" = "committed guide" ] && [ ! -e "$repo/results/guide.json" ] &&
  t_pass "a committed guide is not replaced by weak evidence: $(cat "$T_TMP/err")" ||
  { cat "$T_TMP/err"; t_fail "weak evidence over a tracked file: exit $rc"; }
python3 "$guide" "$gpu" --models mlp --target-acc 0.80 -o "$repo/results/guide.md" > /dev/null 2>&1 &&
  grep -q "^# Which hardware" "$repo/results/guide.md" && t_pass "... and is by clean evidence" ||
  t_fail "clean evidence over a tracked file refused"
mkdir -p "$T_TMP/cwd"
(cd "$T_TMP/cwd" && python3 "$guide" "$gpu" --models mlp --target-acc 0.80 > "$T_TMP/cwd.log" 2>&1) &&
  [ -f "$T_TMP/cwd/hardware-guide.md" ] && [ -f "$T_TMP/cwd/hardware-guide.json" ] &&
  t_pass "without -o: hardware-guide.md in the current directory" || { cat "$T_TMP/cwd.log"; t_fail "default -o"; }

# a model benched only, and the model against PyTorch's epochs it was not fitted to
r50=$T_TMP/r50-box
mkdir -p "$r50"
python3 - "$r50" <<'PY'
import json, os, sys
F, b, ms = 24.6e9, 4, 400.0
rec = {"event": "bench", "model": "in(3x224x224),conv(64,k7,s2,p3,b0),gap,dense(1000)", "params": 25557032,
       "backend": "cpu", "ranks": 1, "batch": b, "batch_per_rank": b, "steps": 2, "step_ms": ms,
       "samples_per_s": b / ms * 1e3, "gflops": F * b / ms / 1e6, "comm_wait_share": 0.0, "data_share": 0.0,
       "deterministic": False, "comm": "none", "precision": "fp32"}
open(os.path.join(sys.argv[1], "b4.jsonl"), "w").write(json.dumps(rec) + "\n")
json.dump({"format": "dlfs-hardware-guide-runs/1", "machine": {"host": "r50-box", "cpu": "Some CPU", "cores": 2,
           "mpi": "mpirun (Open MPI) 4", "commit": "y"},
           "runs": [{"file": "b4.jsonl", "kind": "bench", "model": "resnet50", "device": "cpu", "ranks": 1, "batch": b,
                     "command": "dlfs-train --bench", "launcher": "mpirun", "wall_s": 1.0, "rc": 0}]},
          open(os.path.join(sys.argv[1], "guide-runs.json"), "w"))
PY
python3 "$guide" "$g" "$r50" --models "mlp resnet50" --target-acc 0.80 -o "$T_TMP/r50.md" > "$T_TMP/r50.log" 2>&1 ||
  { cat "$T_TMP/r50.log"; t_fail "hardware-guide with a model benched only exited non-zero"; }
check=$(python3 - "$T_TMP/r50.md" "$root/launch/study/hardware-model.json" "$T_TMP/r50.json" <<'PY'
import json, re, sys
md, c = open(sys.argv[1]).read(), {k: v["value"] for k, v in json.load(open(sys.argv[2]))["constants"].items()}
step = lambda F, b: c["gpu_step_overhead_ms"] + F * b / (c["gpu_gemm_efficiency"] * c["gemm_tflops_fp32"] * 1e12) * 1e3
bad = []
sec = md.split("## `resnet50`", 1)[1].split("\n## ", 1)[0] if "## `resnet50`" in md else ""
if "global batch 32," not in sec:
    bad.append("resnet50: not at its own global batch 32")
if not re.search(r"\| CPU: Some CPU.*\| 10 \(modelled\) \| — \| — \(`--bench` only", sec):
    bad.append("resnet50 CPU row: want 10 samples/s modelled, no epoch, no time to target")
one = 32 / step(24.6e9, 32) * 1e3
if f"| {float(f'{one:.3g}'):,.0f} (modelled) |" not in sec.split("| 1 GPU ", 1)[-1].split("\n", 1)[0]:
    bad.append(f"resnet50 1 GPU: want {one:.3g} samples/s modelled")
F = next(m["flops_per_sample"] for m in json.load(open(sys.argv[3]))["models"] if m["name"] == "mlp")
ep = 469 * step(F, 128) / 1e3
if not re.search(rf"\| `mlp` \| {F / 1e6:.3g} \| 0.45 s \| {ep:.3g} s \| {0.45 / ep:.1f}x \|", md):
    bad.append(f"no anchor row: mlp {F / 1e6:.3g} MFLOP, modelled epoch {ep:.3g} s, {0.45 / ep:.1f}x")
print("; ".join(bad) if bad else "ok")
PY
)
[ "$check" = ok ] && t_pass "resnet50 benched only: batch 32, CPU row from its bench line, GPU rows modelled; the mlp's H100 epoch against PyTorch's" ||
  { sed -n '/^## .resnet50./,/^Crossovers/p; /^The model against/,/^Constants/p' "$T_TMP/r50.md"; t_fail "model benched only: $check"; }

# bad input: exit 2, one message naming the file or option
for c in "missing|$T_TMP/nope.jsonl|$T_TMP/nope.jsonl" "target|--target-acc|$g --target-acc 85" \
  "model|cnn|$g --models cnn"; do
  IFS='|' read -r name needle args <<< "$c"
  # shellcheck disable=SC2086 # args: words
  python3 "$guide" $args -o "$T_TMP/x.md" > /dev/null 2> "$T_TMP/err"
  rc=$?
  [ $rc -eq 2 ] && [ "$(grep -c '^hardware-guide: error: ' "$T_TMP/err")" -eq 1 ] && grep -qF -- "$needle" "$T_TMP/err" &&
    ! grep -q Traceback "$T_TMP/err" && [ ! -e "$T_TMP/x.md" ] && t_pass "bad input ($name): exit 2, $(cat "$T_TMP/err")" ||
    { cat "$T_TMP/err"; t_fail "bad input ($name): exit $rc, want 2 and one message naming '$needle'"; }
done
t_done
