"""hwguide — the figures of launch/hardware-guide: its inputs (dlfs-train --metrics files,
scaling studies, the manifest of --measure), the step-time curves of a CPU and a GPU, the
table rows (measured where an input measured them, modelled otherwise) and the crossovers.
Standard library only; the constants and the all-reduce model come from perfmodel."""
import glob
import json
import os
import statistics
import subprocess

from . import perfmodel
from .perfmodel import InputError, const

MANIFEST = "guide-runs.json"
MANIFEST_FORMAT = "dlfs-hardware-guide-runs/1"


# --- inputs ---------------------------------------------------------------------------------
class Inputs:
    """Every bench and training record found in the input files, and what is known of the
    machines they ran on."""

    def __init__(self):
        self.benches, self.trainings, self.machines, self.names, self.files = [], [], {}, {}, []
        self.runs = []   # what --measure ran (from manifests)

    def add_path(self, path):
        if os.path.isdir(path):
            found = [os.path.join(path, MANIFEST)] if os.path.exists(os.path.join(path, MANIFEST)) else []
            found += sorted(glob.glob(os.path.join(path, "scaling.json")))
            listed = self._manifest_files(found[0]) if found and found[0].endswith(MANIFEST) else set()
            found += [f for f in sorted(glob.glob(os.path.join(path, "*.jsonl"))) if f not in listed]
            if not found:
                raise InputError(f"{path}: no {MANIFEST}, scaling.json or *.jsonl metrics file in this directory")
            for f in found:
                self.add_path(f)
        elif not os.path.exists(path):
            raise InputError(f"{path}: no such file")
        elif path.endswith(MANIFEST):
            self._add_manifest(path)
        elif path.endswith(".jsonl"):
            self._add_metrics(path, {})
        else:
            self._add_study(path)

    @staticmethod
    def _manifest_files(path):
        doc = perfmodel.load_json(path, "a manifest of launch/hardware-guide --measure")
        runs = doc.get("runs", [])
        if not isinstance(runs, list) or not all(isinstance(r, dict) and isinstance(r.get("file"), str) for r in runs):
            raise InputError(f"{path}: \"runs\" is not a list of objects with a \"file\"")
        return {os.path.join(os.path.dirname(path), r["file"]) for r in runs}

    def _add_manifest(self, path):
        doc = perfmodel.load_json(path, "a manifest of launch/hardware-guide --measure")
        if doc.get("format") != MANIFEST_FORMAT:
            raise InputError(f"{path}: not a manifest of launch/hardware-guide --measure")
        m = dict(doc["machine"], loadavg_end=doc.get("loadavg_end"))
        self.machines[m["host"]] = m
        for run in doc["runs"]:
            meta = dict(run, host=m["host"])
            self.runs.append(meta)
            f = os.path.join(os.path.dirname(path), run["file"])
            if os.path.exists(f):
                self._add_metrics(f, meta)
        self.files.append(path)

    def _add_study(self, path):
        st = perfmodel.load_study(path)
        m = st["machine"]
        self.machines.setdefault(m["host"], m)
        extra = [r for _, r in (st.get("compare") or {}).get("rows", [])]
        for p in perfmodel.study_rows(st) + extra:
            self.names.setdefault(p["model"], st["args"]["model"])
            self.benches.append(dict(p, spec=p["model"], host=m["host"], source=path,
                                     precision=p.get("precision", "fp32")))
        self.files.append(path)

    def _add_metrics(self, path, meta):
        epochs, evals, final, benches = [], [], None, []
        # the lines of a bounded read (perfmodel.read_input): no FIFO, no /dev/zero
        for n, line in enumerate(perfmodel.read_input(path).splitlines(), 1):
            try:
                o = json.loads(line)
            except (ValueError, RecursionError) as e:
                raise InputError(f"{path}:{n}: not a JSON line of dlfs-train --metrics ({e})") from e
            if not isinstance(o, dict):
                raise InputError(f"{path}:{n}: not a JSON object of dlfs-train --metrics")
            ev = o.get("event")
            if ev == "bench":
                benches.append(o)
            elif ev == "final":
                final = o
            elif ev == "eval" and "elapsed_s" in o:
                evals.append(o)
            elif ev is None and "epoch_time_s" in o:
                epochs.append(o)
        # a file without a manifest: its machine is unknown, named by its directory
        host = meta.get("host") or f"another machine ({os.path.basename(os.path.dirname(os.path.abspath(path)))})"
        for b in benches:
            if isinstance(b.get("step_ms"), (int, float)) and b["step_ms"] > 0 and isinstance(b.get("batch"), int):
                b["samples_per_s"] = b["batch"] / b["step_ms"] * 1e3   # the line rounds it to 0.1 (gpt2: 0.0)
            if meta.get("model"):
                self.names.setdefault(b["model"], meta["model"])
            self.benches.append(dict(b, spec=b["model"], device=b["backend"], host=host, source=path))
        if final is not None and (epochs or evals):
            if meta.get("model"):
                self.names.setdefault(final["model"], meta["model"])
            self.trainings.append({"spec": final["model"], "device": final.get("backend", "?"),
                                   "ranks": final.get("ranks", 1), "precision": final.get("precision", "fp32"),
                                   "batch": meta.get("batch") or batch_from_steps(epochs), "epochs": epochs,
                                   "evals": evals, "final": final, "host": host, "source": path,
                                   "command": meta.get("command"), "threads": meta.get("threads")})
        self.files.append(path)

    def name(self, spec):
        return self.names.get(spec, spec)


def weak_evidence(machines):
    """What makes the inputs weak evidence: a machine measured under load (the 1-minute load
    average at the start above half its usable cores: other programs took CPU time from the
    runs), or from a tree with uncommitted changes (no commit reproduces it). One line each."""
    why = []
    for m in machines:
        load, cores = (m.get("loadavg") or [None])[0], m.get("cores") or m.get("logical_cpus")
        if load is not None and cores and load > 0.5 * cores:
            why.append(f"`{m.get('host', '?')}` was under load {load:.2f} on {cores} usable core(s) when its "
                       f"measurements began: its measured figures are low")
        if str(m.get("commit", "")).endswith("+changes"):
            why.append(f"`{m.get('host', '?')}` measured a tree with uncommitted changes (commit "
                       f"{m['commit']}): no commit reproduces it")
        elif m.get("commit") == "unknown":
            why.append(f"`{m.get('host', '?')}` recorded no commit: no commit is known to reproduce it")
    return why


def tracked(path):
    """Whether git tracks the file at path (a committed result)."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        return False
    r = subprocess.run(["git", "-C", d, "ls-files", "--error-unmatch", os.path.basename(path)],
                       capture_output=True, text=True)
    return r.returncode == 0


def batch_from_steps(epochs):
    """The global batch of a run without a manifest: recorded in its epoch objects (dlfs-train
    writes "batch"), or else the one that gives the first (whole) epoch's steps."""
    if not epochs:
        return None
    if epochs[0].get("batch"):
        return epochs[0]["batch"]
    steps = epochs[0]["step"]
    n = const("train_samples")
    b = n // steps if steps else 0
    return b if b and n // b == steps else None


# --- time to the target accuracy ------------------------------------------------------------
def time_to_target(tr, target):
    """{reached, steps, time_s, evals, best, how} from a training record: the run's own
    target fields, else its evaluations with elapsed time, else its per-epoch objects
    (training time summed, evaluations not counted)."""
    fin = tr["final"]
    if fin.get("target_acc") is not None and abs(fin["target_acc"] - target) < 1e-9:
        n_ev = sum(1 for e in tr["evals"] if e["step"] <= fin.get("steps_to_target", 0)) or None
        return {"reached": bool(fin.get("target_reached")), "steps": fin.get("steps_to_target"),
                "time_s": fin.get("time_to_target_s"), "evals": n_ev, "best": fin.get("test_acc"),
                "how": "the run's own time_to_target_s (wall time since the start, evaluations included)"}
    if tr["evals"]:
        seq = [(e["step"], e["elapsed_s"], e["test_acc"]) for e in tr["evals"]]
        how = "the first evaluation at or above the target (elapsed_s: wall time, evaluations included)"
    else:
        t, seq = 0.0, []
        for e in tr["epochs"]:
            t += e["epoch_time_s"]
            seq.append((e["step"], t, e["test_acc"]))
        how = "the first epoch at or above the target (epoch_time_s summed: training only, evaluations not counted)"
    for i, (step, t, acc) in enumerate(seq):
        if acc >= target:
            return {"reached": True, "steps": step, "time_s": t, "evals": i + 1, "best": acc, "how": how}
    best = max(acc for _, _, acc in seq)
    return {"reached": False, "steps": seq[-1][0], "time_s": seq[-1][1], "evals": len(seq), "best": best,
            "how": how}


def training_rate(tr):
    """(samples/s, seconds per epoch) measured by a training run: full epochs' own times when
    it ran any, else the samples of its (partial) epochs over their time, else (a run stopped
    at its target before an epoch ended) the steps over the time of its last evaluation."""
    B, n = tr["batch"], const("train_samples")
    if not tr["epochs"]:
        last = tr["evals"][-1]
        sps = last["step"] * B / last["elapsed_s"] if last["elapsed_s"] > 0 else 0.0
        return sps, (n / sps if sps else None)
    full = [e for i, e in enumerate(tr["epochs"])
            if e["step"] - (tr["epochs"][i - 1]["step"] if i else 0) == n // B]
    if full:
        t = statistics.median(e["epoch_time_s"] for e in full)
        return (n // B) * B / t, t
    steps = tr["epochs"][-1]["step"] if tr["epochs"] else 0
    t = sum(e["epoch_time_s"] for e in tr["epochs"])
    sps = steps * B / t if t > 0 else 0.0
    return sps, (n / sps if sps else None)


# --- step-time curves -----------------------------------------------------------------------
class Curve:
    """Step time t(b) = t0 + slope x b (ms) against the batch per device, and how it was found."""

    def __init__(self, t0, slope, how):
        self.t0, self.slope, self.how = t0, slope, how

    def ms(self, b):
        return self.t0 + self.slope * b

    @staticmethod
    def fit(points, how):
        """Least squares through (batch, ms) points; one point: through the origin."""
        pts = sorted(points)
        if len(pts) == 1 or len({b for b, _ in pts}) == 1:
            return Curve(0.0, statistics.mean(t / b for b, t in pts), how + ", through the origin")
        mb, mt = statistics.mean(b for b, _ in pts), statistics.mean(t for _, t in pts)
        slope = sum((b - mb) * (t - mt) for b, t in pts) / sum((b - mb) ** 2 for b, _ in pts)
        t0 = mt - slope * mb
        if t0 < 0 or slope <= 0:
            return Curve(0.0, statistics.mean(t / b for b, t in pts), how + ", through the origin")
        return Curve(t0, slope, how)


def flops_per_sample(benches):
    b = benches[0]
    return b["gflops"] * 1e9 * b["step_ms"] / 1e3 / b["batch"]


def gpu_curve(gpu_benches, F, precision, efficiency):
    """One GPU's step time against its batch: fitted to measured 1-GPU benches when there are
    two batch sizes or more, else the model (one measured point sets its slope)."""
    pts = [(b["batch"], b["step_ms"]) for b in gpu_benches if b["ranks"] == 1]
    if len({b for b, _ in pts}) >= 2:
        return Curve.fit(pts, f"fitted to {len(pts)} measured 1-GPU benches"), True
    t0 = const("gpu_step_overhead_ms")
    if pts:
        b, t = pts[0]
        return Curve(t0, max(t - t0, 1e-9) / b, f"overhead {t0} ms (assumed) + slope from the measured "
                                                 f"1-GPU bench at batch {b}"), True
    slope = perfmodel.gpu_step_ms(F, 1, precision, efficiency) - t0
    return Curve(t0, slope, f"modelled: {t0} ms + flops / ({efficiency:g} x {perfmodel.gemm_tflops(precision)} "
                            f"TFLOP/s)"), False


def allreduce_ms(params, p):
    """The modelled all-reduce of the fp32 gradients on p GPUs: ring bus bandwidth (the lower
    one), plus the latency per bucket."""
    return perfmodel.allreduce_ms(4.0 * params, p, perfmodel.busbw_range(p)[0],
                                  const("allreduce_latency_us"))


def weak_efficiency(curve, t_ar, b, hideable):
    """Efficiency on P GPUs at b samples per GPU when every step adds the all-reduce t_ar, of
    which the share `hideable` can hide behind the backward pass (backward_share of the step)."""
    t1 = curve.ms(b)
    return t1 / (t1 + t_ar - min(hideable * t_ar, const("backward_share") * t1))


def batch_for_efficiency(curve, t_ar, eff, hideable):
    """Smallest batch per GPU with weak_efficiency >= eff (it grows with the batch)."""
    lo, hi = 1, 1
    while weak_efficiency(curve, t_ar, hi, hideable) < eff:
        lo, hi = hi + 1, hi * 2
        if hi > 2 ** 40:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if weak_efficiency(curve, t_ar, mid, hideable) < eff else (lo, mid)
    return lo


def crossover_batch(cpu, gpu):
    """The batch from which one GPU is faster than the CPU: None = never, 1 = always."""
    if gpu.ms(1) < cpu.ms(1):
        return 1
    if cpu.slope <= gpu.slope:
        return None
    return max(1, int((gpu.t0 - cpu.t0) / (cpu.slope - gpu.slope)) + 1)


def crossover_flops(cpu_rate, gpu_rate, gpu_t0_ms, batch):
    """Flops per sample from which one GPU beats the CPU at this batch: the CPU computes at
    cpu_rate flop/s, the GPU at gpu_rate after a fixed gpu_t0_ms per step. None: never."""
    denom = batch * (1.0 / cpu_rate - 1.0 / gpu_rate)
    return None if denom <= 0 else gpu_t0_ms / 1e3 / denom


# --- the guide of one model -----------------------------------------------------------------
class Guide:
    """The rows and crossovers of one model at global batch B. Every figure is a pair
    (value, how): how is "measured" (from a run of that configuration) or "modelled"."""

    def __init__(self, inp, spec, opts, primary):
        self.inp, self.spec, self.o, self.primary = inp, spec, opts, primary
        self.B, self.target, self.prec, self.eff = opts.batch, opts.target_acc, opts.precision, opts.gpu_efficiency
        self.benches = [b for b in inp.benches if b["spec"] == spec and b.get("precision", "fp32") == self.prec]
        self.trains = [t for t in inp.trainings if t["spec"] == spec and t["precision"] == self.prec]
        if not self.benches:
            raise InputError(f"model {inp.name(spec)}: no dlfs-train --bench result in the inputs "
                             f"(the guide takes the flops per sample from one)")
        self.F = flops_per_sample(self.benches)
        self.params = self.benches[0]["params"]
        self.notes = []
        # the recipe's steps to the target: from a run at this batch, this host's CPU run first
        at_b = sorted((t for t in self.trains if t["batch"] == self.B),
                      key=lambda t: (t["host"] != primary, t["device"] != "cpu"))
        reached = [t for t in at_b if time_to_target(t, self.target)["reached"]]
        self.ref = (reached or at_b or [None])[0]
        self.ref_ttt = time_to_target(self.ref, self.target) if self.ref else None
        self.gpu, self.gpu_measured = gpu_curve([b for b in self.benches if b["device"] == "cuda"],
                                                self.F, self.prec, self.eff)
        self.rows = self.cpu_rows() + self.gpu_rows()

    def tag(self, host):
        return "measured" if host == self.primary else f"measured on {host}"

    def cpu_hosts(self):
        hosts = {x["host"] for x in self.benches + self.trains if x["device"] == "cpu"}
        return sorted(hosts, key=lambda h: (h != self.primary, h))

    def cpu_rows(self):
        rows = []
        for host in self.cpu_hosts():
            m = self.inp.machines.get(host, {})
            tr = next((t for t in self.trains if t["host"] == host and t["device"] == "cpu" and t["batch"] == self.B), None)
            bench = next((b for b in self.benches if b["host"] == host and b["device"] == "cpu"
                          and b["ranks"] == 1 and b["batch"] == self.B), None)
            how = f", {tr['ranks']} rank x {tr['threads']} threads" if tr and tr.get("threads") else ""
            row = {"kind": "cpu", "host": host, "ranks": tr["ranks"] if tr else 1,
                   "hardware": f"CPU: {m.get('cpu', 'unknown CPU')}, {m.get('cores', '?')} cores (`{host}`{how})"}
            if tr:
                sps, ep = training_rate(tr)
                row.update(sps=(sps, self.tag(host)), epoch_s=(ep, self.tag(host)),
                           ttt=(time_to_target(tr, self.target), self.tag(host)), source=tr["source"])
            elif bench:
                row.update(sps=(bench["samples_per_s"], self.tag(host)),
                           epoch_s=(const("train_samples") / bench["samples_per_s"], self.tag(host)),
                           ttt=self.modelled_ttt(bench["step_ms"], 0.0), source=bench["source"])
            elif self.cpu_curve(host):   # benched at other batches only (a large model, briefly)
                c = self.cpu_curve(host)
                sps = self.B / c.ms(self.B) * 1e3
                row.update(sps=(sps, "modelled"), epoch_s=(const("train_samples") / sps, "modelled"),
                           ttt=self.modelled_ttt(c.ms(self.B), 0.0), source=None)
                self.notes.append(f"`{host}`: the CPU row at batch {self.B} is the line through its benches "
                                  f"({c.how}), not a run at that batch")
            else:
                self.notes.append(f"`{host}`: no CPU run of this model at batch {self.B}")
                continue
            row["eff"] = None
            rows.append(row)
        return rows

    def modelled_ttt(self, step_ms, eval_ms):
        """Time to the target of the recipe's measured steps at this step time."""
        r = self.ref_ttt
        if not r or not r["reached"]:
            return (r, "not reached in the measured run") if r else (None, "no training run at this batch")
        return ({"reached": True, "steps": r["steps"], "evals": r["evals"], "best": r["best"],
                 "time_s": r["steps"] * step_ms / 1e3 + (r["evals"] or 0) * eval_ms / 1e3,
                 "how": f"{r['steps']} steps (measured on {self.ref['host']}, {self.ref['device']}) x the step time"
                        + (f" + {r['evals']} evaluations" if eval_ms else "")}, "modelled")

    def gpu_rows(self):
        rows, sps1 = [], None
        for P in (1, 2, 4, 8):
            if self.B % P:
                self.notes.append(f"{P} GPUs: the batch {self.B} does not split over {P} ranks")
                continue
            mb = next((b for b in self.benches if b["device"] == "cuda" and b["ranks"] == P
                       and b["batch"] == self.B), None)
            mt = next((t for t in self.trains if t["device"] == "cuda" and t["ranks"] == P
                       and t["batch"] == self.B), None)
            if mb:
                step, sps, how = mb["step_ms"], mb["samples_per_s"], self.tag(mb["host"])
            else:
                step = self.gpu.ms(self.B / P) + allreduce_ms(self.params, P)
                sps, how = self.B / step * 1e3, "modelled"
            names = self.inp.machines.get(mb["host"], {}).get("gpus") if mb else None
            row = {"kind": "gpu", "ranks": P, "host": mb["host"] if mb else None, "step_ms": step,
                   "hardware": f"{P} GPU{'s' if P > 1 else ''}" + (
                       f": {names[0] + ' ' if names else ''}(`{mb['host']}`)" if mb else
                       f" ({const('gpu_name')}, modelled)"),
                   "sps": (sps, how), "epoch_s": (const("train_samples") / sps, how)}
            if mt:
                row.update(epoch_s=(training_rate(mt)[1], self.tag(mt["host"])),
                           ttt=(time_to_target(mt, self.target), self.tag(mt["host"])))
            else:
                t_eval = perfmodel.gpu_step_ms(self.F / 3, const("test_samples") / P, self.prec, self.eff)
                row["ttt"] = self.modelled_ttt(step, t_eval)
            sps1 = sps if P == 1 else sps1
            row["eff"] = sps / (P * sps1) if sps1 else None
            rows.append(row)
        return rows

    def cpu_curve(self, host):
        pts = [(b["batch"], b["step_ms"]) for b in self.benches
               if b["host"] == host and b["device"] == "cpu" and b["ranks"] == 1]
        return Curve.fit(pts, f"fitted to {len(pts)} CPU bench(es) on {host}") if pts else None

    def crossovers(self):
        """{cpu: [per CPU host: batch and model-size crossover], multi: [per P: batches]}"""
        out = {"cpu": [], "multi": []}
        for host in self.cpu_hosts():
            cpu = self.cpu_curve(host)
            if cpu is None:
                continue
            cpu_rate = self.F * self.B / (cpu.ms(self.B) / 1e3)
            gpu_rate = self.F / (self.gpu.slope / 1e3)
            f_star = crossover_flops(cpu_rate, gpu_rate, self.gpu.t0, self.B)
            out["cpu"].append({"host": host, "cpu_curve": cpu, "batch": crossover_batch(cpu, self.gpu),
                               "cpu_ms_at_B": cpu.ms(self.B), "gpu_ms_at_B": self.gpu.ms(self.B),
                               "cpu_gflops": cpu_rate / 1e9, "flops": f_star})
        for P in (2, 4, 8):
            t_ar = allreduce_ms(self.params, P)
            h = perfmodel.hideable_share(4.0 * self.params)
            out["multi"].append({"P": P, "allreduce_ms": t_ar, "hideable": h, **{
                f"b{int(100 * e)}{'_overlap' if ov else ''}": batch_for_efficiency(self.gpu, t_ar, e, h if ov else 0.0)
                for e in (0.8, 0.9) for ov in (False, True)}})
        return out
