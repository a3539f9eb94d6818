"""perfmodel — what launch/scaling-study, launch/scaling-report and launch/hardware-guide share:
the model constants (launch/study/hardware-model.json, each with its source), the models built on
them (all-reduce time, GPU step time), the description of the machine a measurement ran on,
the study files (scaling.json, scaling.csv) and Markdown helpers. Standard library only."""
import csv
import importlib.util
import io
import json
import math
import os
import platform
import shutil
import stat
import subprocess
import sys
import time

STUDY_DIR = os.path.dirname(os.path.abspath(__file__))       # launch/study
HERE = os.path.dirname(STUDY_DIR)                             # launch/: the entry scripts
ROOT = os.path.dirname(HERE)                                  # the repository
# Installed (cmake --install, the .deb, EasyBuild), the tree is PREFIX/share/dlfs: the programs
# are in PREFIX/bin, and results go under the working directory, not the installation.
INSTALLED = ROOT.endswith(os.sep + os.path.join("share", "dlfs"))
PREFIX_BIN = os.path.join(os.path.dirname(os.path.dirname(ROOT)), "bin") if INSTALLED else None
RESULTS_DIR = os.path.join(os.getcwd() if INSTALLED else ROOT, "results")  # measured figures, guides
CONSTANTS_FILE = os.path.join(STUDY_DIR, "hardware-model.json")
STUDY_FORMAT = "dlfs-scaling-study/1"
CSV_FIELDS = ["ranks", "mode", "device", "batch", "batch_per_rank", "samples_per_s", "step_ms",
              "compute_share", "comm_wait_share", "data_share", "speedup", "efficiency",
              "model", "params", "gflops", "threads", "launcher", "background_cpu_share",
              "host", "cpu", "cores", "commit"]


class InputError(Exception):
    """Bad input file or option: the message names it and says what to do."""


MAX_INPUT_BYTES = 64 << 20   # a study, manifest or metrics file is kilobytes; this bounds a hostile one


def read_input(path, limit=MAX_INPUT_BYTES):
    """The text of an input file, read with a bound: a regular file only (a FIFO, /dev/zero or
    another device is refused without waiting for a writer), at most `limit` bytes, UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise InputError(f"{path}: cannot open: {e.strerror}") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: not a regular file (a FIFO, device or directory); give a file "
                             f"written by launch/scaling-study, hardware-guide or dlfs-train --metrics")
        chunks, size = [], 0
        while size <= limit:
            b = os.read(fd, min(1 << 20, limit + 1 - size))
            if not b:
                break
            chunks.append(b)
            size += len(b)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from e
    finally:
        os.close(fd)
    if size > limit:
        raise InputError(f"{path}: larger than {limit >> 20} MiB: not an input of these tools")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from e


def load_json(path, what):
    """A JSON object from an input file (read_input's bounds), or InputError naming it."""
    try:
        doc = json.loads(read_input(path))
    except (ValueError, RecursionError) as e:
        raise InputError(f"{path}: not readable as JSON ({e})") from e
    if not isinstance(doc, dict):
        raise InputError(f"{path}: not {what} (a JSON object expected)")
    return doc


def output_dir(path, opt="--out"):
    """Make the output directory `path`, or InputError naming the option (a file in the way,
    no permission)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise InputError(f"{opt} {path}: cannot make the output directory: "
                         f"{e.strerror or e}; give a directory") from e


def load_constants(path=CONSTANTS_FILE):
    try:
        with open(path) as f:
            table = json.load(f)["constants"]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path}: cannot read the model constants ({e}); restore it from git") from e
    return table


CONSTANTS = load_constants()


def const(name):
    return CONSTANTS[name]["value"]


def gemm_tflops(precision="fp32"):
    key = "gemm_tflops_" + precision
    if key not in CONSTANTS:
        raise InputError(f"precision '{precision}': no GEMM ceiling in {CONSTANTS_FILE} "
                         f"(known: fp32, tf32, bf16)")
    return const(key)


def busbw_range(p):
    """(low, high) bus bandwidth in GB/s for p GPUs of the modelled board: ring, NVLink SHARP."""
    nvls = const("busbw_nvls_gbs")
    keys = sorted(int(k) for k in nvls)
    near = max([k for k in keys if k <= p] or [keys[0]])
    lo = const("busbw_ring_gbs")
    return lo, max(lo, nvls[str(near)])


def buckets(grad_bytes):
    """All-reduce calls per step: one per bucket of bucket_mib."""
    return max(1, -(-int(grad_bytes) // int(const("bucket_mib") * 2 ** 20)))


def hideable_share(grad_bytes):
    """The most of the all-reduce that can overlap the backward pass: every bucket but the last,
    which is ready only when the backward pass ends."""
    n = buckets(grad_bytes)
    return (n - 1) / n


def allreduce_ms(grad_bytes, p, busbw_gbs, latency_us=0.0):
    """Time (ms) to all-reduce grad_bytes over p ranks: 2(p-1)/p x bytes / busbw, plus
    latency_us for every bucket (one all-reduce call each)."""
    if p <= 1:
        return 0.0
    return 2.0 * (p - 1) / p * grad_bytes / (busbw_gbs * 1e9) * 1e3 + buckets(grad_bytes) * latency_us / 1e3


def exposed_ms(t_ar, overlap, t_compute):
    """All-reduce time left after overlap: a share `overlap` of it hides behind the backward
    pass, which is at most backward_share of the compute."""
    return t_ar - min(overlap * t_ar, const("backward_share") * t_compute)


def gemm_efficiency(precision="fp32"):
    """The share of the GEMM ceiling a modelled step reaches: fitted to PyTorch's H100 steps
    (fp32; bf16, which tf32 takes too), so that no modelled step beats a measured one."""
    return const("gpu_gemm_efficiency") if precision == "fp32" else const("gpu_gemm_efficiency_bf16")


def gpu_step_ms(flops_per_sample, batch, precision="fp32", efficiency=None):
    """THE model of one training step on one GPU, for every tool: the fixed overhead plus the
    arithmetic at `efficiency` (default: fitted per precision, gemm_efficiency) of the GEMM
    ceiling. Both constants are fitted to PyTorch's measured H100 steps (hardware-model.json)."""
    eff = gemm_efficiency(precision) if efficiency is None else efficiency
    rate = gemm_tflops(precision) * 1e12 * eff
    return const("gpu_step_overhead_ms") + flops_per_sample * batch / rate * 1e3


def sources_md(names):
    """Markdown list: each named constant with its value and source."""
    out = []
    for n in names:
        c = CONSTANTS[n]
        v = c["value"]
        if isinstance(v, dict):
            v = ", ".join(f"{k}: {x:g}" for k, x in v.items())
        out.append(f"- `{n}` = {v} {c['unit']} ({c['kind']}): {c['source']}.")
    return "\n".join(out)


def find_train(given):
    """dlfs-train: the given path (InputError when it is not a program), else $DLFS_TRAIN, the
    PATH, build/src, an installation's bin/; None when none is there."""
    if given:
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            raise InputError(f"--train {given}: not an executable file (the dlfs-train program)")
        return os.path.abspath(given)
    for cand in (os.environ.get("DLFS_TRAIN"), shutil.which("dlfs-train"),
                 os.path.join(ROOT, "build", "src", "dlfs-train"),
                 PREFIX_BIN and os.path.join(PREFIX_BIN, "dlfs-train")):
        if cand and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return None


# --- the machine ----------------------------------------------------------------------------
def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _first_line(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (p.stdout or p.stderr).strip().splitlines()
    return lines[0].strip() if p.returncode == 0 and lines else None


def gpus():
    """Names of the visible NVIDIA GPUs (nvidia-smi -L), [] when there are none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [l.split(":", 1)[1].split("(")[0].strip() for l in out.stdout.splitlines()
            if l.startswith("GPU ")] if out.returncode == 0 else []


def commit():
    if INSTALLED:   # no checkout here (nor the one PREFIX may sit in): the installed trainer's --version
        train = os.path.join(PREFIX_BIN, "dlfs-train")
        try:
            out = subprocess.run([train, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("commit:")), "unknown")
    c = _first_line(["git", "-C", ROOT, "rev-parse", "--short=10", "HEAD"])
    if c is None:
        return "unknown"
    dirty = _first_line(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    return c + ("+changes" if dirty else "")


def machine():
    """What a measurement ran on: host, CPU, cores, load, memory, MPI, GPUs, commit, date."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError):
        pass
    return {"host": platform.node(), "cpu": cpu_name(), "cores": usable_cores(),
            "logical_cpus": os.cpu_count(), "loadavg": load, "memory_gib": mem,
            "os": f"{platform.system()} {platform.release()}",
            "mpi": _first_line(["mpirun", "--version"]) or "not found", "gpus": gpus(),
            "commit": commit(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def machine_line(m):
    load = m.get("loadavg")
    return (f"`{m.get('host', '?')}`: {m.get('cpu', '?')}, {m.get('cores', '?')} usable core(s)"
            + (f", load {load[0]:.2f} at the start" if load else "")
            + (f", GPUs: {', '.join(m['gpus'])}" if m.get("gpus") else ", no GPU")
            + f"; {m.get('mpi', 'MPI ?')}; commit {m.get('commit', '?')}")


# --- study files ----------------------------------------------------------------------------
def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def study_rows(study):
    """The main points of a study (no calibration or comparison runs), in mode, ranks order."""
    return [p for p in study["points"] if not p.get("tag")]


def write_csv(path, study):
    m = study["machine"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for r in study_rows(study):
            w.writerow([r["ranks"], r["mode"], r["device"], r["batch"], r["batch_per_rank"],
                        fmt_sps(r['samples_per_s']), f"{r['step_ms']:.3f}",
                        f"{r['compute_share']:.4f}", f"{r['comm_wait_share']:.4f}",
                        f"{r['data_share']:.4f}", f"{r['speedup']:.3f}", f"{r['efficiency']:.3f}",
                        r["model"], r["params"], f"{r['gflops']:.2f}",
                        "" if r.get("threads") is None else r["threads"], r.get("launcher", ""),
                        "" if r.get("background") is None else f"{r['background']:.3f}",
                        m.get("host", ""), m.get("cpu", ""), m.get("cores", ""), m.get("commit", "")])


def _study_from_csv(path):
    """A study from a scaling.csv: points and what the columns say about the machine."""
    num = {"ranks": int, "batch": int, "batch_per_rank": int, "params": int}
    points = []
    with io.StringIO(read_input(path), newline="") as f:
        for row in csv.DictReader(f):
            try:
                p = {k: (num[k](v) if k in num else v) for k, v in row.items() if k}
                for k in ("samples_per_s", "step_ms", "compute_share", "comm_wait_share",
                          "data_share", "speedup", "efficiency", "gflops"):
                    p[k] = float(row[k])
            except (KeyError, ValueError, TypeError) as e:
                raise InputError(f"{path}: not a scaling.csv of launch/scaling-study ({e})") from e
            p["threads"] = int(row["threads"]) if row.get("threads") else None
            p["background"] = float(row["background_cpu_share"]) if row.get("background_cpu_share") else None
            points.append(p)
    if not points:
        raise InputError(f"{path}: no points (an empty scaling.csv)")
    first = points[0]
    m = {"host": first.get("host") or "unknown", "cpu": first.get("cpu") or "unknown CPU",
         "cores": int(first["cores"]) if first.get("cores") else None, "commit": first.get("commit", "?")}
    modes = list(dict.fromkeys(p["mode"] for p in points))
    args = {"model": first["model"], "device": first["device"], "modes": modes,
            "ranks": sorted({p["ranks"] for p in points}), "threads": first["threads"] or 1,
            "launcher": first.get("launcher", "?"), "batch_per_rank": first["batch_per_rank"],
            "batch": max(p["batch"] for p in points), "steps": None, "warmup": None}
    return {"format": STUDY_FORMAT, "machine": m, "args": args, "cmdline": f"(from {path})",
            "started": "?", "points": points, "calibration": None,
            "compare": {"why": "not in a CSV file"}, "failures": [], "source": path}


def load_study(path):
    """A study from scaling.json, scaling.csv or a study directory holding scaling.json."""
    if os.path.isdir(path):
        cand = os.path.join(path, "scaling.json")
        if not os.path.exists(cand):
            raise InputError(f"{path}: no scaling.json in this directory (rerun launch/scaling-study, "
                             f"or `launch/scaling-study --report-only --out {path}` for an older study)")
        path = cand
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if path.endswith(".csv"):
        return _study_from_csv(path)
    doc = load_json(path, "a scaling.json of launch/scaling-study")
    if doc.get("format") != STUDY_FORMAT:
        raise InputError(f"{path}: not a scaling.json of launch/scaling-study "
                         f"(want \"format\": \"{STUDY_FORMAT}\")")
    check_study(path, doc)
    if not study_rows(doc):
        raise InputError(f"{path}: the study has no measured point")
    doc["source"] = path
    return doc


POINT_NUMBERS = ("ranks", "batch", "batch_per_rank", "samples_per_s", "step_ms", "compute_share",
                 "comm_wait_share", "data_share", "speedup", "efficiency", "params", "gflops")
POINT_TEXTS = ("mode", "device", "model")


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_study(path, doc):
    """The shape a scaling.json must have before anything reads it: objects where objects
    are read, finite numbers and strings in the fields of every point."""
    for key in ("machine", "args"):
        if not isinstance(doc.get(key), dict):
            raise InputError(f"{path}: \"{key}\" is not an object; not a scaling.json of launch/scaling-study")
    pts = doc.get("points")
    if not isinstance(pts, list):
        raise InputError(f"{path}: \"points\" is not a list; not a scaling.json of launch/scaling-study")
    for i, p in enumerate(pts):
        if not isinstance(p, dict):
            raise InputError(f"{path}: points[{i}] is not an object")
        bad = [k for k in POINT_NUMBERS if not _number(p.get(k))] + \
              [k for k in POINT_TEXTS if not isinstance(p.get(k), str)]
        if bad:
            raise InputError(f"{path}: points[{i}]: {', '.join(bad)} missing or not "
                             f"{'a finite number' if bad[0] in POINT_NUMBERS else 'a string'}")
        if p["ranks"] < 1:
            raise InputError(f"{path}: points[{i}]: ranks {p['ranks']} is not a rank count")


# --- Markdown -------------------------------------------------------------------------------
def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def fmt_ms(x):
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def fmt_sps(x):
    """A throughput: one decimal, or 3 significant digits under 10 (gpt2 on a CPU: 0.0215)."""
    return f"{x:.1f}" if x >= 10 else f"{x:.3g}"


def pct(x):
    return f"{100 * x:.0f}%"


def span(lo, hi):
    return f"{lo:.2f}" if abs(hi - lo) < 0.005 else f"{lo:.2f}–{hi:.2f}"


def python_with_matplotlib():
    """Make `import matplotlib` work: in this interpreter, or by running the program again
    under a Python that has it (the PATH python3 may be a bare pyenv). Returns None when it
    works here, else the reason there will be no plots."""
    if importlib.util.find_spec("matplotlib") is not None:
        return None
    if os.environ.get("DLFS_PLOT_REEXEC") != "1":
        for cand in ("/usr/bin/python3", shutil.which("python3")):
            if cand and os.path.realpath(cand) != os.path.realpath(sys.executable) and \
                    subprocess.run([cand, "-c", "import matplotlib"], capture_output=True).returncode == 0:
                print(f"{os.path.basename(sys.argv[0])}: matplotlib is not importable in {sys.executable}; "
                      f"running under {cand}", flush=True)
                os.environ["DLFS_PLOT_REEXEC"] = "1"
                os.execv(cand, [cand] + sys.argv)
    return (f"matplotlib is not installed for {sys.executable} "
            f"(Debian: apt-get install -y python3-matplotlib)")


def output_over_input(outputs, inputs):
    """The first (output, input) pair that names one file, else None: the same resolved
    path (os.path.realpath, also for a file not there yet and through links) or, both
    there, the same device and inode (hard links)."""
    for o in outputs:
        for i in inputs:
            try:
                same = os.path.realpath(o) == os.path.realpath(i) or (
                    os.path.exists(o) and os.path.exists(i) and os.path.samefile(o, i))
            except OSError:
                same = False
            if same:
                return o, i
    return None
