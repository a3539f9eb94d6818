#!/usr/bin/env python3
"""run-notebook.py — execute the course notebook (course/dlfs-course.ipynb) headless with a real
Jupyter kernel (nbclient + ipykernel) and check what it produced.

  tests/notebook/run-notebook.py [--build DIR] [--data FILE] [--keep DIR]      the test (QUICK sizes)
  tests/notebook/run-notebook.py --full --output course/dlfs-course.ipynb     the stored outputs

The test injects, after the cell tagged `parameters`, a cell setting QUICK = True and the paths
(the build, the dataset, a scratch RUNS_DIR), runs every cell with a time limit per cell, and
checks: every code cell ran without an error; every cell tagged `figure` shows a PNG, and every
PNG of the notebook is a real picture (decodes, not tiny, not blank); the notebook's
results.json says the time-to-accuracy run reached its target, the first training reached
--min-acc, the NumPy forward pass agreed with dlfs, and the benches ran; the figures it lists
were shown; no output names the checkout's absolute path or this machine's name. --full runs the notebook with its own parameters (nothing injected) and --output
writes the executed notebook (the kernel name reset to the standard `python3`).

The kernel is a private kernelspec (in a scratch JUPYTER_PATH) for the first Python that has
nbclient, nbformat, ipykernel, numpy, h5py and matplotlib: this one, /usr/bin/python3 or the
python3 on PATH. Exit status: 0 passed, 1 failed, 77 skipped (no such Python, no dataset),
2 bad usage. GPUs are hidden (CUDA_VISIBLE_DEVICES=-1) unless --gpu.
"""
import argparse
import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NEEDED = ["nbclient", "nbformat", "ipykernel", "numpy", "h5py", "matplotlib"]
APT = "apt-get install python3-nbclient python3-nbconvert python3-ipykernel python3-matplotlib python3-h5py"
# the figures every run shows (results.json "figures"); RANKS and the device fill in the rest
WANT_FIGURES = ["images", "curves-mlp-np1", "first-layer-weights", "confusion-matrix", "ranks-compare",
                "bench-bars", "scaling", "scaling-breakdown", "scaling-replot", "time-to-accuracy"]


def missing_in(python):
    code = ("import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] "
            "if importlib.util.find_spec(m) is None))")
    try:
        r = subprocess.run([python, "-c", code] + NEEDED, capture_output=True, text=True, timeout=60)
    except OSError as e:
        return [f"({e.strerror})"]
    return r.stdout.split() if r.returncode == 0 else ["(python fails to start)"]


def ensure_python():
    """Re-run under a Python that has every module; exit 77 when there is none."""
    seen, report = set(), []
    for cand in [sys.executable, "/usr/bin/python3", shutil.which("python3")]:
        if not cand or not os.path.exists(cand) or os.path.realpath(cand) in seen:
            continue
        seen.add(os.path.realpath(cand))
        miss = missing_in(cand)
        if not miss:
            if os.path.realpath(cand) != os.path.realpath(sys.executable):
                os.execv(cand, [cand, os.path.abspath(__file__)] + sys.argv[1:])
            return
        report.append(f"{cand} lacks {' '.join(miss)}")
    print("run-notebook: skipped: no Python with " + ", ".join(NEEDED) + " (" + "; ".join(report)
          + f"); Debian: {APT}", flush=True)
    sys.exit(77)


def options():
    ap = argparse.ArgumentParser(prog="run-notebook.py", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--notebook", default=os.path.join(ROOT, "course", "dlfs-course.ipynb"))
    ap.add_argument("--build", help="build directory with src/dlfs-train (default: the notebook's, build/)")
    ap.add_argument("--data", help="Fashion-MNIST dataset file (default: the notebook's)")
    ap.add_argument("--full", action="store_true", help="the notebook's own parameters (no QUICK)")
    ap.add_argument("--output", help="write the executed notebook here")
    ap.add_argument("--keep", help="keep the scratch directory (runs, executed notebook) here")
    ap.add_argument("--cell-timeout", type=int, default=300, help="seconds per cell (300)")
    ap.add_argument("--min-acc", type=float, help="bound on the first training's test accuracy (QUICK 0.70, full 0.85)")
    ap.add_argument("--gpu", action="store_true", help="let the notebook see the GPUs")
    a = ap.parse_args()
    if a.min_acc is None:
        a.min_acc = 0.85 if a.full else 0.70
    return a


def fail(msg):
    print("FAIL: " + msg, flush=True)
    return 1


def mpi_env():
    """tests/mpi-env.sh's settings (Open MPI for small test machines), for the kernel's mpirun."""
    out = subprocess.run(["bash", "-c", '. "$1" && env -0', "_", os.path.join(ROOT, "tests", "mpi-env.sh")],
                         capture_output=True, text=True, check=True).stdout
    return {k: v for k, _, v in (kv.partition("=") for kv in out.split("\0")) if k.startswith("OMPI_")}


def png_ok(data):
    """None when the PNG bytes are a real picture, else why not."""
    import matplotlib.image as mpimg
    import numpy as np
    if len(data) < 4000:
        return f"only {len(data)} bytes"
    try:
        img = mpimg.imread(io.BytesIO(data), format="png")
    except Exception as e:   # noqa: BLE001  (any decoding error is the finding)
        return f"does not decode ({e})"
    if img.shape[0] < 150 or img.shape[1] < 150:
        return f"{img.shape[1]}x{img.shape[0]} pixels"
    if float(np.asarray(img[..., :3]).std()) < 0.02:
        return "blank (one colour)"
    return None


# long: the run in sequence: options, the kernel, execute, check the results, write them
def main():
    ensure_python()
    a = options()
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if not os.path.exists(a.notebook):
        print(f"run-notebook: --notebook {a.notebook}: no such file")
        return 2
    if a.data and not os.path.exists(a.data):
        print(f"run-notebook: skipped: no dataset {a.data} (the fmnist_convert fixture did not make it: "
              "apt-get install dataset-fashion-mnist)")
        return 77
    if a.build and not os.path.exists(os.path.join(a.build, "src", "dlfs-train")):
        print(f"run-notebook: --build {a.build}: no src/dlfs-train in it")
        return 2
    tmp = a.keep or tempfile.mkdtemp(prefix="dlfs-notebook.")
    os.makedirs(tmp, exist_ok=True)
    runs = os.path.join(tmp, "runs")
    try:
        # a private kernelspec: this Python's ipykernel, whatever "python3" means to Jupyter here
        kdir = os.path.join(tmp, "jupyter", "kernels", "dlfs-notebook-test")
        os.makedirs(kdir, exist_ok=True)
        with open(os.path.join(kdir, "kernel.json"), "w") as f:
            json.dump({"argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f",
                                "{connection_file}"],
                       "display_name": "dlfs notebook test", "language": "python"}, f)
        os.environ.update(JUPYTER_PATH=os.path.join(tmp, "jupyter"), JUPYTER_RUNTIME_DIR=os.path.join(tmp, "rt"),
                          IPYTHONDIR=os.path.join(tmp, "ipython"), MPLCONFIGDIR=os.path.join(tmp, "mpl"))
        os.environ.pop("MPLBACKEND", None)     # the kernel's inline backend makes the PNGs
        os.environ.update(mpi_env())
        if not a.gpu:
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"

        nb = nbformat.read(a.notebook, as_version=4)
        params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        if len(params) != 1 or any(c.cell_type == "code" for c in nb.cells[:params[0]]):
            return fail(f"{a.notebook}: want one cell tagged 'parameters', the first code cell")
        inject = {}
        if not a.full:
            inject = {"QUICK": True, "RUNS_DIR": runs, "INSTALL": "no"}
        if a.build:
            inject["BUILD_DIR"] = os.path.abspath(a.build)
        if a.data:
            inject["DATA"] = os.path.abspath(a.data)
        if inject:
            cell = nbformat.v4.new_code_cell("# injected by tests/notebook/run-notebook.py\n" + "\n".join(
                f"{k} = {v!r}" for k, v in inject.items()))
            cell.metadata["tags"] = ["injected-parameters"]
            nb.cells.insert(params[0] + 1, cell)
        results_path = os.path.join(inject.get("RUNS_DIR", os.path.join(ROOT, "runs", "notebook")), "results.json")
        if os.path.exists(results_path):
            os.remove(results_path)

        t0, marks = time.monotonic(), {}

        def started(cell, cell_index, **_):
            marks[cell_index] = time.monotonic()

        def executed(cell, cell_index, **_):
            print(f"  cell {cell_index:2d}: {time.monotonic() - marks.get(cell_index, t0):6.1f} s  "
                  f"{cell.source.splitlines()[0][:60] if cell.source else ''}", flush=True)

        client = NotebookClient(nb, timeout=a.cell_timeout, kernel_name="dlfs-notebook-test", startup_timeout=120,
                                record_timing=False, allow_errors=False,
                                resources={"metadata": {"path": os.path.dirname(os.path.abspath(a.notebook))}},
                                on_cell_start=started, on_cell_executed=executed)
        print(f"run-notebook: {a.notebook} with {sys.executable} ({'full' if a.full else 'QUICK'}; "
              f"{a.cell_timeout} s per cell); scratch {tmp}", flush=True)
        err = None
        try:
            client.execute()
        except CellTimeoutError as e:
            err = f"a cell ran past {a.cell_timeout} s: {str(e).splitlines()[0]}"
        except CellExecutionError as e:
            err = "a cell failed:\n" + re.sub(r"\x1b\[[0-9;]*m", "", str(e))[-3000:]   # no ANSI colours
        except DeadKernelError as e:
            err = f"the kernel died: {e}"
        wall = time.monotonic() - t0
        executed_path = os.path.join(tmp, "executed.ipynb")
        nbformat.write(nb, executed_path)
        print(f"run-notebook: executed in {wall:.0f} s; the executed notebook: "
              + (executed_path if a.keep else "--keep DIR keeps it"), flush=True)
        if err:
            return fail(err)
        return check(a, nb, results_path, executed_path) or write_output(a, nb, inject)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def leaks(nb):
    """Outputs that name the checkout's absolute path or this machine: a stored notebook must not
    (the committed hardware guide's tables, shown as they are, name the machine they came from)."""
    host, n = socket.gethostname(), 0
    for i, c in enumerate(nb.cells):
        for o in c.get("outputs", []):
            text = o.get("text", "") + "".join(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
            if "### From the committed guide" in text:
                continue   # the committed guide names the machine it was measured on: a record, not this one
            for what, pat in (("the checkout's path " + ROOT, re.escape(ROOT)), ("the host name " + host,
                                                                              r"\b%s\b" % re.escape(host))):
                m = re.search(pat, text)
                if m:
                    n += fail(f"cell {i}: an output names {what}: ...{text[max(0, m.start() - 60):m.end() + 20]!r}")
    return n


def check(a, nb, results_path, executed_path):
    fails = 0
    pngs = 0
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        if c.execution_count is None:
            fails += fail(f"cell {i} did not run")
        for o in c.outputs:
            if o.output_type == "error":
                fails += fail(f"cell {i}: {o.ename}: {o.evalue}")
        imgs = [o for o in c.outputs if "image/png" in o.get("data", {})]
        if "figure" in c.metadata.get("tags", []) and not imgs:
            fails += fail(f"cell {i} (tagged figure) shows no PNG")
        for o in imgs:
            pngs += 1
            why = png_ok(base64.b64decode(o["data"]["image/png"]))
            if why:
                fails += fail(f"cell {i}: a PNG that is not a real figure: {why}")
    fails += leaks(nb)
    if not os.path.exists(results_path):
        return fail(f"the notebook wrote no {results_path}")
    with open(results_path) as f:
        r = json.load(f)
    ranks = next(k for k in r if k.startswith("mlp_np"))[len("mlp_np"):]
    want = WANT_FIGURES + [f"curves-mlp-np{ranks}", f"curves-cnn-{r['device']}", f"curves-target-{r['device']}"]
    if r.get("gpu_usable"):
        want.append("cpu-vs-gpu-curves")
    lacking = [w for w in want if w not in r["figures"]]
    if lacking:
        fails += fail(f"results.json lists no figure {', '.join(lacking)}")
    # a live plot shows one PNG (the last redraw); the study's two PNGs are shown as images
    if pngs < len(r["figures"]):
        fails += fail(f"{pngs} PNG outputs for {len(r['figures'])} figures in results.json")
    t = r.get("target") or {}
    if not (t.get("reached") is True and t.get("test_acc", 0) >= t.get("target_acc", 1)):
        fails += fail(f"the time-to-accuracy run did not reach its target: {t}")
    else:
        print(f"ok: target {t['target_acc']:.0%} reached at step {t['steps']} after {t['time_s']:.1f} s")
    acc = r.get("mlp", {}).get("test_acc", 0)
    if acc < a.min_acc:
        fails += fail(f"the first training reached {acc:.2%}, below {a.min_acc:.0%}")
    nc = r.get("numpy_check", {})
    if abs(nc.get("numpy_acc", -1) - nc.get("dlfs_acc", 1)) > 0.002:
        fails += fail(f"NumPy forward pass vs dlfs: {nc}")
    bench = r.get("bench", {}).get("cpu", {})
    if sorted(bench) != ["cnn", "mlp", "mlp-large"] or min(v["samples_per_s"] for v in bench.values()) <= 0:
        fails += fail(f"CPU benches: {bench}")
    if fails:
        print(f"run-notebook: {fails} check(s) failed" + (f" (executed notebook: {executed_path})" if a.keep else ""))
        return 1
    print(f"ok: {sum(c.cell_type == 'code' for c in nb.cells)} code cells ran, {pngs} PNGs, results.json: "
          f"mlp {acc:.2%}, {len(r['figures'])} figures, {r.get('total_s')} s in the notebook")
    return 0


def write_output(a, nb, inject):
    if not a.output:
        return 0
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat_write(nb, a.output)
    print(f"run-notebook: wrote {a.output}" + (" (the injected cell removed)" if inject else ""))
    return 0


def nbformat_write(nb, path):
    import nbformat
    nbformat.validate(nb)
    nbformat.write(nb, path)


if __name__ == "__main__":
    sys.exit(main())
