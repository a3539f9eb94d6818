#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Hostile inputs to the launch tools and the SLURM scripts (issue 26), no cluster and no
# training (a few seconds): launch/scaling-report, hardware-guide and scaling-study on
# /dev/zero, a FIFO (bounded by `timeout`: a regression fails, never hangs), JSON that is
# not an object, non-numeric and nested fields, a truncated study.json, -o/--out naming a
# file, --batch 0: each one line "TOOL: error: …" naming the file or option, no traceback,
# exit 2 (1 for an unwritable output). slurm/train.sbatch and scaling.sbatch: DLFS_ARGS and
# the other lists split without globbing (a file named --rollback in the working directory
# stays out of the command), SLURM_NTASKS=abc one message (both scripts run as they are,
# DLFS_DRY_RUN=1 for train.sbatch; no SLURM needed).
. "$(dirname "$0")/../lib.sh"
train=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${T_PY:-python3}
command -v "$py" >/dev/null || { echo "no $py: skipped"; exit 77; }
cd "$T_TMP" || exit 1
report=$root/launch/scaling-report guide=$root/launch/hardware-guide study=$root/launch/scaling-study

# py_expect NAME WANT_RC NEEDLE TOOL ARGS...: one "tool: error: " line with NEEDLE, no traceback
py_expect() {
  local name=$1 want=$2 needle=$3 rc=0 tool; shift 3
  tool=$(basename "$1")
  timeout -k 2 20 "$py" "$@" >"$H_OUT/out" 2>"$H_OUT/err" </dev/null || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then t_fail "$name: timed out (a hang)"
  elif [ "$rc" -ne "$want" ]; then t_fail "$name: exit $rc, want $want"; cat "$H_OUT/err" >&2
  elif [ "$(grep -c . "$H_OUT/err")" -ne 1 ] || ! grep -q "^$tool: error: " "$H_OUT/err"; then
    t_fail "$name: want exactly one '$tool: error: ' line on stderr"; cat "$H_OUT/err" >&2
  elif ! grep -qF -- "$needle" "$H_OUT/err"; then t_fail "$name: the message lacks '$needle'"; cat "$H_OUT/err" >&2
  else t_pass "$name ($(cat "$H_OUT/err"))"; fi
}

# a well-formed study of two points (the shape launch/scaling-study writes), then broken copies
"$py" - <<'PY' || t_fail "writing the studies"
import copy, json
pt = {"ranks": 1, "mode": "weak", "device": "cpu", "model": "m", "batch": 16, "batch_per_rank": 16,
      "samples_per_s": 1000.0, "step_ms": 16.0, "compute_share": 0.9, "comm_wait_share": 0.05,
      "data_share": 0.05, "speedup": 1.0, "efficiency": 1.0, "params": 1000, "gflops": 1.0}
ok = {"format": "dlfs-scaling-study/1", "machine": {"host": "h", "cpu": "c", "cores": 2}, "cmdline": "x",
      "started": "?", "args": {"model": "mlp", "device": "cpu", "modes": ["weak"], "ranks": [1, 2],
      "threads": 1, "launcher": "mpirun", "batch_per_rank": 16, "batch": 32},
      "points": [pt, dict(pt, ranks=2, batch=32, samples_per_s=1800.0, speedup=1.8, efficiency=0.9)],
      "calibration": None, "compare": {"why": "none"}, "failures": []}
def put(name, doc):
    json.dump(doc, open(name, "w"))
put("ok.json", ok)
d = copy.deepcopy(ok); d["points"][1]["samples_per_s"] = "fast"; put("text.json", d)
d = copy.deepcopy(ok); d["points"][0]["step_ms"] = {"ms": [16]}; put("nested.json", d)
d = copy.deepcopy(ok); d["points"][0] = [1, 2]; put("list-point.json", d)
d = copy.deepcopy(ok); del d["args"]["device"]; put("no-device.json", d)
put("array.json", [ok])
PY
mkfifo fifo fifo.jsonl
ln -s /dev/zero zero.json && ln -s /dev/zero zero.jsonl
for f in zero.json fifo; do
  py_expect "scaling-report $f" 2 "$f: not a regular file" "$report" "$f" -o r
done
for f in zero.jsonl fifo.jsonl; do
  py_expect "hardware-guide $f" 2 "$f: not a regular file" "$guide" "$f" -o g/guide.md
done
py_expect "scaling-report, a non-numeric field" 2 "text.json: points[1]: samples_per_s missing or not a finite number" "$report" text.json -o r
py_expect "scaling-report, a nested field" 2 "nested.json: points[0]: step_ms missing or not a finite number" "$report" nested.json -o r
py_expect "scaling-report, a point that is a list" 2 "list-point.json: points[0] is not an object" "$report" list-point.json -o r
py_expect "scaling-report, an option missing" 2 "no-device.json: not a study this tool can read (KeyError" "$report" no-device.json -o r
py_expect "scaling-report, JSON not an object" 2 "array.json: not a scaling.json" "$report" array.json -o r
touch afile
py_expect "scaling-report -o FILE" 2 "-o afile: cannot make the output directory" "$report" ok.json -o afile
py_expect "scaling-study --out FILE" 1 "--out $T_TMP/afile: cannot write: Not a directory" "$study" --out afile --train "$train" --ranks 1 --steps 1
py_expect "hardware-guide -o FILE/x.md" 1 "-o afile/x.md: cannot write" "$guide" ok.json -o afile/x.md
printf '{"event": "bench"}\n[1]\n' > bad.jsonl
py_expect "hardware-guide, a line that is no object" 2 "bad.jsonl:2: not a JSON object" "$guide" bad.jsonl -o g/guide.md
printf '{"event": "bench", "model": "m"}\n' > nobackend.jsonl
py_expect "hardware-guide, a bench line without its fields" 2 "nobackend.jsonl: an input this tool cannot read (KeyError" "$guide" nobackend.jsonl -o g/guide.md
py_expect "scaling-study --batch 0" 2 "--batch 0: must be a whole number, at least 1" "$study" --batch 0 --dry-run --train "$train"
mkdir -p s1 s2 s3
printf '{"args": {"ranks": "1 2", "mode": "weak", "device": "cpu"}, "cmdline": "x"}' > s1/study.json
py_expect "scaling-study --report-only, ranks a string" 2 "s1/study.json: not the study.json of launch/scaling-study" "$study" --report-only --out s1
printf '{"args": {"ranks": [1' > s2/study.json
py_expect "scaling-study --report-only, truncated JSON" 2 "s2/study.json: not readable as JSON" "$study" --report-only --out s2
mkfifo s3/study.json
py_expect "scaling-study --report-only, a FIFO" 2 "s3/study.json: not a regular file" "$study" --report-only --out s3
if out=$(timeout 60 "$py" "$report" ok.json -o r 2>&1) && [ -s r/report.md ]; then t_pass "the well-formed study reports"
else t_fail "scaling-report of the well-formed study: $out"; fi

# the SLURM scripts: no globbing of DLFS_ARGS (a file named like an option), SLURM_NTASKS checked
mkdir w && touch w/--rollback w/--eval
if out=$(cd w && DLFS_DRY_RUN=1 DLFS_LAUNCHER=mpirun DLFS_DATA=x DLFS_TRAIN=$train DLFS_RUN_DIR=$T_TMP/run \
  DLFS_ARGS='--* --seed 7' DLFS_MPIRUN_ARGS='-* --oversubscribe' bash "$root/slurm/train.sbatch" 2>&1) \
  && line=$(grep '^+ ' <<<"$out") && [[ $line == *" --\\* --seed 7"* ]] && [[ $line == *"-np 1 -\\* --oversubscribe "* ]] \
  && [[ $line != *--rollback* ]] && [[ $line != *--eval* ]]; then
  t_pass "train.sbatch: DLFS_ARGS and DLFS_MPIRUN_ARGS split on blanks, never globbed ($line)"
else t_fail "train.sbatch globbed or mis-split its lists: $out"; fi
for s in train scaling; do
  out=$(cd w && SLURM_NTASKS=abc DLFS_DRY_RUN=1 DLFS_DATA=x DLFS_TRAIN=$train DLFS_RUN_DIR=$T_TMP/run \
    bash "$root/slurm/$s.sbatch" 2>&1)
  rc=$?
  [ $rc = 2 ] && [ "$(grep -c . <<<"$out")" = 1 ] && grep -q "^$s.sbatch: error: SLURM_NTASKS='abc' is not a number" <<<"$out" \
    && t_pass "$s.sbatch SLURM_NTASKS=abc: one line ($out)" || t_fail "$s.sbatch SLURM_NTASKS=abc: exit $rc: $out"
done
out=$(cd w && SLURM_NTASKS=2 DLFS_SCALING_RANKS='1 *' DLFS_TRAIN=$train DLFS_RUN_DIR=$T_TMP/run \
  bash "$root/slurm/scaling.sbatch" 2>&1)
rc=$?
[ $rc = 2 ] && grep -q "DLFS_SCALING_RANKS: '\*' is not a rank count" <<<"$out" \
  && t_pass "scaling.sbatch: DLFS_SCALING_RANKS='1 *' refused, not globbed" || t_fail "scaling.sbatch DLFS_SCALING_RANKS='1 *': exit $rc: $out"
t_done
