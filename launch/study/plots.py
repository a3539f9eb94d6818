"""plots — the plots of launch/scaling-report (matplotlib, Agg backend): throughput and
efficiency against ranks (scaling.png) and the step time split into compute, all-reduce wait
and data (scaling-breakdown.png). `studies` are scaling-report's Study objects."""
import math
import os

from . import perfmodel


def plots(studies, out):
    """scaling.png and scaling-breakdown.png; returns None or the reason there are none."""
    err = perfmodel.python_with_matplotlib()
    if err:
        return err
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    try:
        plot_scaling(plt, studies, os.path.join(out, "scaling.png"))
        plot_breakdown(plt, studies, os.path.join(out, "scaling-breakdown.png"))
    except (OSError, ValueError) as e:
        return f"matplotlib failed: {e}"
    return None


def load_warning(studies):
    """The line every figure carries when other processes took more than 10 % of the machine
    during some points (their timings are pessimistic), or None."""
    busy = [r for s in studies for r in s.rows if (r.get("background") or 0) > 0.1]
    if not busy:
        return None
    return (f"WARNING: other processes took up to {100 * max(r['background'] for r in busy):.0f}% of the machine "
            f"during {len(busy)} of {sum(len(s.rows) for s in studies)} points (red rings): their timings are "
            f"pessimistic; rerun on a quiet machine")


def finish_(fig, path, warn, extra=None):
    """Lay out, put the load warning on the figure (and in the PNG's text chunks), save."""
    if warn:
        fig.text(0.5, 0.01, warn, ha="center", va="bottom", color="#b00000", fontsize=9, fontweight="bold")
    fig.tight_layout(rect=(0, 0.06 if warn else 0, 1, 1))
    meta = dict(extra or {}, **({"Warning": warn} if warn else {}))
    fig.savefig(path, dpi=100, metadata=meta)


def log_ticks(lo, hi, n=5):
    """About n ticks from lo to hi, evenly spaced on a log axis, at 2 significant digits (a
    range within one decade gets readable ticks, not a lone "10k")."""
    out = []
    for k in range(n):
        v = lo * (hi / lo) ** (k / (n - 1)) if hi > lo else lo
        e = 10 ** math.floor(math.log10(v))
        out.append(round(v / e, 1) * e)
    return sorted(set(out))


def si_(v, _pos=None):
    """Tick labels such as 500, 2k, 1.5M."""
    for div, suf in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{suf}"
    return f"{v:g}"


def plot_scaling(plt, studies, path):
    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ranks = sorted({r["ranks"] for s in studies for r in s.rows})
    warn, ys = load_warning(studies), []
    for i, (s, mode) in enumerate((s, mode) for s in studies for mode in s.modes):
        rows, c = s.results[mode], colors[i % len(colors)]
        name = f"{mode}" if len(studies) == 1 else f"{s.m.get('host', '?')} {s.device} {mode}"
        x = [r["ranks"] for r in rows]
        ax_t.plot(x, [r["samples_per_s"] for r in rows], "o-", color=c, lw=2, label=f"{name}: measured")
        ideal = [rows[0]["samples_per_s"] / rows[0]["ranks"] * p for p in x]
        ax_t.plot(x, ideal, "--", color=c, lw=1.2, label=f"{name}: ideal (linear)")
        ys += [r["samples_per_s"] for r in rows] + ideal
        busy = [r for r in rows if (r.get("background") or 0) > 0.1]
        for ax, key, k in ((ax_t, "samples_per_s", 1), (ax_e, "efficiency", 100)):
            ax.scatter([r["ranks"] for r in busy], [k * r[key] for r in busy], s=220, facecolors="none",
                       edgecolors="#b00000", linewidths=2, zorder=5)
        ax_e.plot(x, [100 * r["efficiency"] for r in rows], "o-", color=c, lw=2, label=name)
    ax_e.axhline(100, ls="--", color="black", lw=1.2, label="ideal (100%)")
    for s in studies:   # CPU: where the ranks run out of cores
        if s.device == "cpu" and ranks[0] <= s.cores // s.threads < ranks[-1]:
            for ax in (ax_t, ax_e):
                ax.axvline(s.cores // s.threads, ls=":", color="gray")
            ax_e.annotate(f"{s.m.get('host', '')}: {s.cores} cores", (s.cores // s.threads, 4), color="gray")
    for ax, title, ylabel in ((ax_t, "Throughput", "samples/s (log scale: the ideal is a straight line)"),
                              (ax_e, "Scaling efficiency", "efficiency (%)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ranks, [str(p) for p in ranks])
        ax.set_xlim(ranks[0] / 1.3, ranks[-1] * 1.3)
        ax.set_xlabel("ranks")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.4)
    ax_t.set_yscale("log")
    ticks = log_ticks(min(ys), max(ys))
    ax_t.set_yticks(ticks, [si_(t) for t in ticks])
    ax_t.yaxis.set_minor_formatter(plt.NullFormatter())
    ax_t.legend(loc="upper left", fontsize=8)
    ax_e.set_ylim(0, max(110, 10 + max(100 * r["efficiency"] for s in studies for r in s.rows)))
    ax_e.legend(loc="lower left", fontsize=8)
    s0 = studies[0]
    fig.suptitle(f"dlfs-train --bench, {s0.a['model']}, {s0.device}, {s0.m.get('host', '?')} ({s0.cores} cores)"
                 if len(studies) == 1 else f"dlfs-train --bench: {len(studies)} studies")
    finish_(fig, path, warn, {"Throughput ticks": ", ".join(si_(t) for t in ticks)})
    plt.close(fig)


def plot_breakdown(plt, studies, path):
    panels = [(s, mode) for s in studies for mode in s.modes]
    cols = min(3, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 4 * rows_n), squeeze=False)
    parts = [("compute_ms", "compute", "#1f77b4"), ("comm_wait_ms", "all-reduce wait", "#d62728"),
             ("data_ms", "data", "#2ca02c")]
    for ax, (s, mode) in zip(axes.flat, panels):
        rows = s.results[mode]
        x = list(range(len(rows)))
        bottom = [0.0] * len(rows)
        for key, label, color in parts:
            vals = [r[key] for r in rows]
            ax.bar(x, vals, bottom=bottom, color=color, label=label, width=0.6)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(x, [str(r["ranks"]) for r in rows])
        ax.set_xlabel("ranks")
        ax.set_ylabel("ms per step")
        ax.set_title(f"{s.m.get('host', '?')}: {s.a['model']}, {s.device}, {mode}", fontsize=10)
        ax.grid(True, axis="y", alpha=0.4)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("Where a step's time goes (median step of dlfs-train --bench)", fontsize=10 if cols < 2 else 12)
    finish_(fig, path, load_warning(studies))
    plt.close(fig)
