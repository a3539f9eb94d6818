#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# launch/scaling-report, the reporting half of the scaling study: one short study (mlp, 1 and 2
# ranks, measured with --no-report), then a copy of its scaling.json as if from a second
# machine (other host and CPU, twice the throughput); one report from both: the machines
# table, every point of both inputs with its own figures, both studies' sections, the plots,
# and the modelled all-reduce recomputed from launch/study/hardware-model.json. --report-only
# rebuilds the same CSV (from points whose rounded samples_per_s is zeroed); bad inputs get
# one message naming them. The compute-to-communication section against figures worked out
# by hand: a study whose points are rewritten to round numbers (1,000,000 parameters, 32
# samples per rank, 300 MFLOP per sample: 9.6 GFLOP per rank per step against 4 MB of
# gradients, 2,400 flops per byte, 300 per weight and sample; the 2-rank point waited 30 ms,
# 25 %) and the same with 6 flops per weight (an MLP: 48 per byte).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm-lib.sh"   # s_png_ok, s_need_matplotlib: no cluster here
train=$1
s_need_matplotlib
study=$S_ROOT/launch/scaling-study
report=$S_ROOT/launch/scaling-report
a=$T_TMP/a
python3 "$study" --train "$train" --launcher mpirun --device cpu --ranks "1 2" --model mlp \
  --batch-per-rank 16 --steps 3 --warmup 1 --out "$a" --no-report > "$T_TMP/study.log" 2>&1
rc=$?
cat "$T_TMP/study.log"
[ $rc -eq 0 ] && [ -f "$a/scaling.json" ] && [ ! -e "$a/report.md" ] &&
  t_pass "scaling-study --no-report: scaling.json, no report" || t_fail "scaling-study --no-report: exit $rc"

mkdir -p "$T_TMP/b"
python3 - "$a/scaling.json" "$T_TMP/b/scaling.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["machine"].update(host="second-machine", cpu="Other CPU 9000", cores=64)
for p in d["points"] + [d["calibration"]["one_bucket"]]:
    p["samples_per_s"] *= 2
    for k in ("step_ms", "compute_ms", "comm_wait_ms", "data_ms"):
        p[k] /= 2
json.dump(d, open(sys.argv[2], "w"))
PY

m=$T_TMP/merged
python3 "$report" "$a" "$T_TMP/b/scaling.json" -o "$m" > "$T_TMP/report.log" 2>&1
rc=$?
cat "$T_TMP/report.log"
[ $rc -eq 0 ] && t_pass "scaling-report of two studies exited 0" || t_fail "scaling-report exited $rc"
s_png_ok "$m/scaling.png" && s_png_ok "$m/scaling-breakdown.png" && t_pass "both plots are real PNG images" ||
  t_fail "scaling.png or scaling-breakdown.png missing or not a plausible PNG"
check=$(python3 - "$m/report.md" "$a/scaling.json" "$T_TMP/b/scaling.json" "$S_ROOT/launch/study/hardware-model.json" <<'PY'
import json, math, re, sys
rep = open(sys.argv[1]).read()
studies = [json.load(open(f)) for f in sys.argv[2:4]]
consts = {k: v["value"] for k, v in json.load(open(sys.argv[4]))["constants"].items()}
bad = []
if not rep.startswith("# Scaling report: 2 studies") or "## Machines" not in rep:
    bad.append("no title or machines table")
sec = lambda title: rep.split(title, 1)[1].split("\n## ", 1)[0] if title in rep else ""
machines = sec("## Machines")
for d in studies:
    m = d["machine"]
    if not re.search(rf"\| {re.escape(m['host'])} \| {re.escape(m['cpu'])} \| {m['cores']} \|", machines):
        bad.append(f"machines table lacks {m['host']}, {m['cpu']}, {m['cores']} cores")
# every point of both inputs, with its own throughput, in the merged results table
got = {}
for line in sec("## Results").splitlines():
    c = [x.strip() for x in line.strip("|").split("|")]
    if len(c) == 10 and c[4].isdigit():
        got[(c[0].split(": ", 1)[1], c[3], int(c[4]))] = float(c[6])
want = {(d["machine"]["host"], p["mode"], p["ranks"]): p["samples_per_s"] for d in studies for p in d["points"]}
if set(got) != set(want):
    bad.append(f"results rows {sorted(got)}, want {sorted(want)}")
bad += [f"{k}: samples/s {got[k]} != {v:.1f}" for k, v in want.items() if k in got and abs(got[k] - v) > 0.06]
for i, d in enumerate(studies):
    s = sec(f"## Study {i + 1}: {d['machine']['host']}")
    for sub in ("### Results", "### Where the time goes", "### The all-reduce, measured",
                "### Modelled: 8 x H100", "### CPU vs GPU"):
        if sub not in s:
            bad.append(f"study {i + 1} lacks {sub}")
    # the modelled 8-GPU all-reduce: 2(P-1)/P x bytes / busbw + latency per 4 MiB bucket
    grad = 4.0 * d["points"][0]["params"]
    calls = math.ceil(grad / (consts["bucket_mib"] * 2 ** 20))
    for bw in (consts["busbw_ring_gbs"], consts["busbw_nvls_gbs"]["8"]):
        t = 2 * 7 / 8 * grad / (bw * 1e9) * 1e3 + calls * consts["allreduce_latency_us"] / 1e3
        if not re.search(rf"\| {bw:.0f} \| {t:.3f} \|", s):
            bad.append(f"study {i + 1}: no busbw {bw:.0f} row with the all-reduce {t:.3f} ms")
print("; ".join(bad) if bad else "ok")
PY
)
[ "$check" = ok ] && t_pass "merged report: both machines, every point with its own figures, each study's sections, the all-reduce model" ||
  t_fail "merged report: $check"

# --report-only: the study's scaling.json and CSV rebuilt from raw/ alone
# (samples/s comes from the batch and step time: the metrics line rounds it to 0.1, 0.0 for a
# gpt2 step of a minute, so the raw points' samples_per_s are zeroed here)
cp -r "$a" "$T_TMP/again"
rm "$T_TMP/again/scaling.json" "$T_TMP/again/scaling.csv"
for f in "$T_TMP"/again/raw/*.point.json; do
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d["samples_per_s"] = 0.0; json.dump(d, open(sys.argv[1], "w"))' "$f"
done
python3 "$study" --report-only --out "$T_TMP/again" > "$T_TMP/again.log" 2>&1
rc=$?
[ $rc -eq 0 ] && cmp -s "$a/scaling.csv" "$T_TMP/again/scaling.csv" && [ -f "$T_TMP/again/report.md" ] &&
  t_pass "--report-only rebuilt the same scaling.csv and the report (samples/s from batch and step time)" ||
  { cat "$T_TMP/again.log"; t_fail "--report-only: exit $rc, or scaling.csv differs"; }

# bad input: exit 2, one message naming the file or option
echo '{"not": "a study"}' > "$T_TMP/other.json"
for c in "missing:$T_TMP/nope.json" "other:$T_TMP/other.json" "two-no-o:-o DIR"; do
  name=${c%%:*} needle=${c#*:}
  case $name in
    missing) args=("$T_TMP/nope.json" -o "$T_TMP/x") ;;
    other) args=("$T_TMP/other.json" -o "$T_TMP/x") ;;
    two-no-o) args=("$a" "$T_TMP/b/scaling.json") ;;
  esac
  python3 "$report" "${args[@]}" > /dev/null 2> "$T_TMP/err"
  rc=$?
  [ $rc -eq 2 ] && [ "$(grep -c '^scaling-report: error: ' "$T_TMP/err")" -eq 1 ] && grep -qF -- "$needle" "$T_TMP/err" &&
    ! grep -q Traceback "$T_TMP/err" && t_pass "bad input ($name): exit 2, $(cat "$T_TMP/err")" ||
    { cat "$T_TMP/err"; t_fail "bad input ($name): exit $rc, want 2 and one message naming '$needle'"; }
done

# the plots: a load warning on the figure (and in the PNG's text chunks) when other processes
# took > 10 % of the machine during a point, none on a quiet study; a throughput axis with
# several readable ticks (it had a lone "10k" where the data span less than a decade)
python3 - "$T_TMP/b/scaling.json" "$T_TMP/busy/scaling.json" "$T_TMP/quiet/scaling.json" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
for i, p in enumerate(d["points"]):
    p["background"] = 0.8 if i == 0 else 0.0
os.makedirs(os.path.dirname(sys.argv[2])); json.dump(d, open(sys.argv[2], "w"))
d["points"][0]["background"] = 0.0
os.makedirs(os.path.dirname(sys.argv[3])); json.dump(d, open(sys.argv[3], "w"))
PY
pngtext() { # pngtext FILE: the PNG's tEXt chunks as KEY=VALUE lines
  python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
i = 8
while i < len(b):
    n, kind = struct.unpack(">I4s", b[i:i + 8])
    if kind == b"tEXt":
        k, v = b[i + 8:i + 8 + n].split(b"\0", 1)
        print(k.decode("latin-1") + "=" + v.decode("latin-1"))
    i += 12 + n
PY
}
for w in busy quiet; do
  python3 "$report" "$T_TMP/$w/scaling.json" -o "$T_TMP/$w" > "$T_TMP/$w.log" 2>&1 || { cat "$T_TMP/$w.log"; t_fail "report ($w)"; }
done
n=$(grep -c "^\(Warning=WARNING: other processes took up to 80% of the machine during 1 of [0-9]* points\)" \
  <(pngtext "$T_TMP/busy/scaling.png"; pngtext "$T_TMP/busy/scaling-breakdown.png"))
[ "$n" = 2 ] && ! pngtext "$T_TMP/quiet/scaling.png" | grep -q "^Warning=" &&
  t_pass "plots: the load warning on both figures of the busy study, none on the quiet one" ||
  { pngtext "$T_TMP/busy/scaling.png"; t_fail "plots: load warning ($n of 2 figures)"; }
ticks=$(pngtext "$T_TMP/quiet/scaling.png" | sed -n 's/^Throughput ticks=//p')
[ "$(tr ',' '\n' <<< "$ticks" | grep -c .)" -ge 3 ] && t_pass "plots: throughput ticks $ticks" ||
  t_fail "plots: throughput ticks '$ticks', want 3 or more"
# compute to communication, against the hand-worked figures of the header
for k in conv dense; do
  mkdir -p "$T_TMP/ratio-$k"
  python3 - "$a/scaling.json" "$T_TMP/ratio-$k/scaling.json" "$k" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
f = 300e6 if sys.argv[3] == "conv" else 6e6            # flops per sample
d["points"] = [p for p in d["points"] if p["mode"] == "weak"]
for p in d["points"]:
    p.update(params=1000000, batch_per_rank=32, batch=32 * p["ranks"], step_ms=100.0 + 20 * (p["ranks"] - 1),
             comm_wait_ms=30.0 * (p["ranks"] > 1), comm_wait_share=0.25 * (p["ranks"] > 1))
    p["gflops"] = f * p["batch"] / (p["step_ms"] / 1e3) / 1e9
json.dump(d, open(sys.argv[2], "w"))
PY
done
python3 "$report" "$T_TMP/ratio-conv/scaling.json" "$T_TMP/ratio-dense/scaling.json" -o "$T_TMP/ratio" \
  > "$T_TMP/ratio.log" 2>&1 || { cat "$T_TMP/ratio.log"; t_fail "report of the hand-made studies"; }
sec=$(sed -n '/^## Study 1:/,/^## Study 2:/p' "$T_TMP/ratio/report.md" | sed -n '/^### Compute to communication/,/^### /p')
grep -q '\*\*9.6 GFLOP\*\*.*\*\*4 MB\*\*.*\*\*2,400 flops per gradient byte\*\*' <<<"$sec" &&
  grep -q '^| weak | 2 | 32 | 9.6 GFLOP | 4 MB | 2,400 | 30.0 ms (25%) |$' <<<"$sec" &&
  grep -q 'each weight does 300 flops per sample, 50x the 6 of a dense layer' <<<"$sec" &&
  grep -q '2,400 flops per gradient byte against 48 for an MLP.*the model scales\.$' <<<"$sec" &&
  t_pass "compute to communication: 9.6 GFLOP per rank per step, 4 MB, 2,400 flops per byte, 30 ms (25 %) waited" ||
  { echo "$sec"; t_fail "compute to communication: not the figures worked out by hand"; }
sec=$(sed -n '/^## Study 2:/,$p' "$T_TMP/ratio/report.md" | sed -n '/^### Compute to communication/,/^### /p')
grep -q '\*\*192 MFLOP\*\*.*\*\*48 flops per gradient byte\*\*' <<<"$sec" &&
  grep -q 'each weight does 6 flops per sample, as a dense layer.*48 flops per gradient byte against 48 for an MLP.*scales poorly\.$' <<<"$sec" &&
  t_pass "compute to communication of a dense model: 192 MFLOP, 48 flops per byte, scales poorly" ||
  { echo "$sec"; t_fail "compute to communication (dense): not the figures worked out by hand"; }
t_done
