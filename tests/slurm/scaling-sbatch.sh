#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# sbatch slurm/scaling.sbatch on the one-node test cluster, CPU, 1 and 2 ranks: the study
# runs its points as srun job steps inside the allocation and writes CSV, PNG and report.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm-lib.sh"
train=$1
s_need_slurm
s_need_matplotlib
s_cluster_up

out=$T_TMP/study
log=$T_TMP/job.out
id=$(DLFS_RUN_DIR=$out DLFS_TRAIN=$train DLFS_DEVICE=cpu DLFS_SCALING_RANKS="1 2 4" DLFS_MODEL=mlp \
  sbatch --parsable --time=10 --ntasks=2 --gpus-per-node=0 --cpus-per-task=1 --output="$log" \
  "$S_ROOT/slurm/scaling.sbatch" --batch-per-rank 32 --steps 10) || { t_fail "sbatch refused the job"; t_done; }
s_wait "$id" 150
cat "$log"

[ "$S_STATE" = COMPLETED ] && [ "$S_EXIT" = 0:0 ] && t_pass "job $id completed" || t_fail "job $id ended $S_STATE $S_EXIT"
grep -q "skipping 4 ranks: the allocation has 2 tasks" "$log" && t_pass "4 ranks skipped in a 2-task allocation" ||
  t_fail "4 ranks were not skipped"
[ "$(grep -c '^+ srun --mpi=pmix' "$log")" -ge 2 ] && t_pass "the points ran as srun --mpi=pmix job steps" ||
  t_fail "no srun --mpi=pmix steps in the job output"
csv=$out/scaling.csv
if [ -f "$csv" ]; then
  rows=$(python3 -c 'import csv, sys
print(" ".join(",".join((r["ranks"], r["mode"], r["device"], r["launcher"])) for r in csv.DictReader(open(sys.argv[1]))))' "$csv")
  [ "$rows" = "1,weak,cpu,srun 2,weak,cpu,srun" ] && t_pass "scaling.csv: 1 and 2 ranks, weak, cpu, srun" ||
    t_fail "scaling.csv rows (ranks,mode,device,launcher): '$rows'"
else
  t_fail "no $csv"
fi
s_png_ok "$out/scaling.png" && t_pass "scaling.png is a PNG image" || t_fail "scaling.png is not a plausible PNG"
grep -q "## Modelled: 8 x H100" "$out/report.md" 2>/dev/null && t_pass "report.md with the modelled 8 x H100 figure" ||
  t_fail "report.md missing or without the model"
t_done
