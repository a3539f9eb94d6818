"""commratio — the compute-to-communication section of launch/scaling-report: per study, the
arithmetic of one rank's step against the gradient bytes it all-reduces, and the share of the
step the ranks waited for that all-reduce, with the reason a model scales or does not."""
from .perfmodel import const, fmt_ms, pct, table

# a dense layer's flops per weight and sample in one training step: 2 forward, 4 backward
DENSE_FLOPS_PER_PARAM = 6


def flops_per_sample(r):
    """dlfs's count of one training step's flops per sample, from a point's GFLOP/s, step time
    and (global) batch."""
    return r["gflops"] * 1e9 * r["step_ms"] / 1e3 / r["batch"]


def ratio(r):
    """{flops: per rank per step, bytes: fp32 gradients all-reduced per step, per_byte,
    per_param: flops per parameter and sample} of a study point."""
    f = flops_per_sample(r)
    flops, grad = f * r["batch_per_rank"], 4.0 * r["params"]
    return {"flops": flops, "bytes": grad, "per_byte": flops / grad, "per_param": f / r["params"]}


def fmt_flop(x):
    for unit, s in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if x >= s:
            return f"{x / s:.3g} {unit}"
    return f"{x:.3g} FLOP"


def words(x, per_param, bpr, mlp_per_byte):
    """Why this ratio lets the model scale, or not, in words."""
    if per_param >= 10 * DENSE_FLOPS_PER_PARAM:
        why = (f"each weight does {per_param:,.0f} flops per sample, {per_param / DENSE_FLOPS_PER_PARAM:,.0f}x the "
               f"{DENSE_FLOPS_PER_PARAM} of a dense layer's weight: a convolution applies its weights at every "
               f"position of its feature map and a transformer at every token of the window, so each byte of "
               f"gradient carries that much more arithmetic")
    else:
        why = (f"each weight does {per_param:.3g} flops per sample, as a dense layer's {DENSE_FLOPS_PER_PARAM} "
               f"(2 forward, 4 backward): the gradient is as large as the model whatever the batch, and the "
               f"arithmetic grows only with the batch")
    verdict = ("so the all-reduce is a small share of a step and the model scales"
               if x["per_byte"] >= 10 * mlp_per_byte else
               "so the all-reduce weighs as much as the arithmetic unless the batch per rank is large, "
               "and the model scales poorly")
    return (f"- In words: {why}; at {bpr} sample{'s' if bpr != 1 else ''} per rank that is {x['per_byte']:,.0f} flops per gradient byte "
            f"against {mlp_per_byte:,.0f} for an MLP at the same batch per rank "
            f"({DENSE_FLOPS_PER_PARAM} x {bpr} / 4 bytes), {verdict}.")


def section(st, h):
    """The lines of the section for a scaling_report.Study st (h: the heading's #s)."""
    L = [f"{h} Compute to communication\n"]
    rows = []
    for mode in st.modes:
        r1 = st.results[mode][0]
        x = ratio(r1)
        for r in st.results[mode]:
            if r["ranks"] > 1:
                rows.append([mode, r["ranks"], r["batch_per_rank"], fmt_flop(ratio(r)["flops"]),
                             f"{x['bytes'] / 1e6:.3g} MB", f"{ratio(r)['per_byte']:,.0f}",
                             f"{fmt_ms(r['comm_wait_ms'])} ms ({pct(r['comm_wait_share'])})"])
    r1 = st.results[st.modes[0]][0]
    x = ratio(r1)
    bpr = r1["batch_per_rank"]
    L.append(f"One rank's step of `{r1['model'][:60]}{'…' if len(r1['model']) > 60 else ''}` at {bpr} sample{'s' if bpr != 1 else ''} "
             f"per rank: **{fmt_flop(x['flops'])}** (dlfs's count, {fmt_flop(x['per_param'] * r1['params'])} per "
             f"sample) against **{x['bytes'] / 1e6:.3g} MB** of fp32 gradients all-reduced "
             f"({r1['params']:,} parameters x 4 bytes): **{x['per_byte']:,.0f} flops per gradient byte**. "
             f"One H100 (fp32 GEMMs at {const('gemm_tflops_fp32')} TFLOP/s, the NVLink ring at "
             f"{const('busbw_ring_gbs'):.0f} GB/s) needs {1e3 * const('gemm_tflops_fp32') / const('busbw_ring_gbs'):,.0f} "
             f"flops per gradient byte for the arithmetic to take as long as the all-reduce.\n")
    if rows:
        L.append(table(["mode", "ranks", "per rank", "FLOP per rank per step", "gradient bytes per step",
                        "FLOP per byte", "measured comm wait per step"], rows))
        L.append("")
    else:
        L.append("No point above 1 rank: no comm wait was measured.\n")
    L.append(words(x, x["per_param"], bpr, DENSE_FLOPS_PER_PARAM * bpr / 4.0))
    return L + [""]
