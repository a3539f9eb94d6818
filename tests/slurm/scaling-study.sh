#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# launch/scaling-study on the CPU with mpirun, 1 2 4 ranks, weak and strong: the CSV has
# every point with its columns, the PNG is a real image, the report explains the result
# (oversubscription named when 4 ranks exceed the cores) and carries the 8 x H100 model
# with its source; scaling.json holds the same points and the machine.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm-lib.sh"   # s_png_ok, s_need_matplotlib: no cluster here
train=$1
s_need_matplotlib
out=$T_TMP/study
python3 "$S_ROOT/launch/scaling-study" --train "$train" --launcher mpirun --device cpu --ranks "1 2 4" \
  --mode both --model mlp --batch-per-rank 32 --steps 10 --out "$out" > "$T_TMP/study.log" 2>&1
rc=$?
cat "$T_TMP/study.log"
[ $rc -eq 0 ] && t_pass "scaling-study exited 0" || t_fail "scaling-study exited $rc"

csv=$out/scaling.csv
want="ranks,mode,device,batch,batch_per_rank,samples_per_s,step_ms,compute_share,comm_wait_share,data_share,speedup,efficiency"
[ -f "$csv" ] && [ "$(head -n 1 "$csv" | cut -d, -f1-12)" = "$want" ] && t_pass "scaling.csv header" ||
  t_fail "scaling.csv missing or header is not '$want,...'"
check=$(python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
got = [(r["mode"], int(r["ranks"])) for r in rows]
want = [("weak", 1), ("weak", 2), ("weak", 4), ("strong", 1), ("strong", 2), ("strong", 4)]
bad = []
if got != want:
    bad.append(f"points {got}, want {want}")
for r in rows:
    if float(r["samples_per_s"]) <= 0 or float(r["step_ms"]) <= 0:
        bad.append(f"{r['mode']} {r['ranks']}: no throughput")
    shares = sum(float(r[k]) for k in ("compute_share", "comm_wait_share", "data_share"))
    if abs(shares - 1) > 0.01:
        bad.append(f"{r['mode']} {r['ranks']}: shares add up to {shares:.3f}")
    eff = float(r["speedup"]) / int(r["ranks"])
    if abs(eff - float(r["efficiency"])) > 0.002:
        bad.append(f"{r['mode']} {r['ranks']}: efficiency != speedup / ranks")
    if int(r["ranks"]) == 1 and abs(float(r["speedup"]) - 1) > 1e-9:
        bad.append(f"{r['mode']} 1 rank: speedup {r['speedup']}")
    b, bpr = int(r["batch"]), int(r["batch_per_rank"])
    if (r["mode"] == "weak" and (bpr != 32 or b != 32 * int(r["ranks"]))) or \
       (r["mode"] == "strong" and (b != 128 or bpr * int(r["ranks"]) != b)):
        bad.append(f"{r['mode']} {r['ranks']}: batch {b}, per rank {bpr}")
print("; ".join(bad) if bad else "ok")
PY
)
[ "$check" = ok ] && t_pass "scaling.csv: 6 points, shares add up, speedup and efficiency consistent" ||
  t_fail "scaling.csv: $check"

[ -f "$out/scaling.png" ] && s_png_ok "$out/scaling.png" && t_pass "scaling.png is a real PNG image" ||
  t_fail "scaling.png missing or not a plausible PNG"
s_png_ok "$out/scaling-breakdown.png" && t_pass "scaling-breakdown.png is a real PNG image" ||
  t_fail "scaling-breakdown.png missing or not a plausible PNG"
grep -qF "](scaling.png)" "$out/report.md" && grep -qF "](scaling-breakdown.png)" "$out/report.md" &&
  t_pass "report.md shows both plots" || t_fail "report.md does not link scaling.png and scaling-breakdown.png"

# scaling.json: every point of the CSV and the machine it ran on
check=$(python3 - "$out/scaling.json" "$csv" "$(nproc)" <<'PY'
import csv, json, sys
doc = json.load(open(sys.argv[1]))
m, bad = doc["machine"], []
for k in ("host", "cpu", "cores", "loadavg", "mpi", "commit", "date"):
    if m.get(k) in (None, "", "?"):
        bad.append(f"machine lacks {k}")
if m.get("cores") != int(sys.argv[3]) or "Open MPI" not in (m.get("mpi") or ""):
    bad.append(f"machine cores {m.get('cores')} / mpi {m.get('mpi')!r}")
rows = list(csv.DictReader(open(sys.argv[2])))
pts = doc["points"]
if [(p["mode"], p["ranks"]) for p in pts] != [(r["mode"], int(r["ranks"])) for r in rows]:
    bad.append("points differ from the CSV rows")
for p, r in zip(pts, rows):
    if abs(p["samples_per_s"] - float(r["samples_per_s"])) > 0.06 or r["host"] != m["host"]:
        bad.append(f"{p['mode']} {p['ranks']}: samples/s or host differ")
if not doc.get("calibration") or doc["calibration"]["one_bucket"]["ranks"] != 2:
    bad.append("no one-bucket calibration at 2 ranks")
print("; ".join(bad) if bad else "ok")
PY
)
[ "$check" = ok ] && t_pass "scaling.json: the CSV's points, the calibration and the machine (CPU, cores, load, MPI, commit)" ||
  t_fail "scaling.json: $check"

rep=$out/report.md
for section in "## Results" "## Where the time goes" "## What limits scaling" \
  "## The all-reduce, measured" "## Modelled: 8 x H100" "## How close the runs here came" "## CPU vs GPU"; do
  grep -qF "$section" "$rep" 2>/dev/null && t_pass "report: $section" || t_fail "report lacks '$section'"
done
grep -q "github.com/NVIDIA/nccl-tests/issues/212" "$rep" && grep -q "2(P-1)/P" "$rep" &&
  t_pass "report: ring all-reduce formula and the nccl-tests source" || t_fail "report: model formula or source missing"
grep -q "| 370 |" "$rep" && grep -q "| 480 |" "$rep" && t_pass "report: busbw 370 and 480 GB/s rows" ||
  t_fail "report: no 370/480 GB/s rows"
if [ "$(nproc)" -lt 4 ]; then
  grep -q "oversubscription" "$rep" && t_pass "report names oversubscription (4 ranks on $(nproc) cores)" ||
    t_fail "4 ranks on $(nproc) cores, but the report does not say oversubscription"
fi
grep -q "Not measured: no GPU" "$rep" || grep -q "| cuda |" "$rep" &&
  t_pass "report: CPU vs GPU measured or its absence stated" || t_fail "report: CPU vs GPU section unclear"
t_done
