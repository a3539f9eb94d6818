#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The loss lag (dlfs_run_step returns the previous step's loss; on a GPU with the
# step in a CUDA graph it is on by default: no host wait per step) changes no
# number the user sees: DLFS_STEP_LAG=1 forces it on the CPU, where the loss is
# still read synchronously, and every epoch's train_loss (printed with %.6f and
# compared as text), test_loss and the digest must equal the run with it off,
# over a full epoch and one cut short by --max-steps, on 1 and 2 ranks; the
# progress lines trail by exactly one step.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 1024 --epochs 2 --max-steps 70 --seed 11 --eval-batch 2500
        --progress-seconds 0.000001)
# run NAME NP LAG: metrics without the timings, and the progress losses
run() {
  DLFS_STEP_LAG=$3 mpirun -np "$2" "$train" "${common[@]}" --metrics "$T_TMP/$1.jsonl" > "$T_TMP/$1.out" 2>&1 \
    || { cat "$T_TMP/$1.out"; t_fail "$1: run failed"; }
  sed -e 's/"samples_per_s[^}]*"lr"/"lr"/' "$T_TMP/$1.jsonl" > "$T_TMP/$1.cmp"
  # (one line per \r-rewrite where mpirun gives the program a terminal)
  tr '\r' '\n' < "$T_TMP/$1.out" \
    | sed -n 's/^  epoch \([0-9]*\)  step \([0-9]*\)\/[0-9]*  loss \([0-9.naif-]*\) .*/\1 \2 \3/p' > "$T_TMP/$1.progress"
}
for np in 1 2; do
  run "off-$np" "$np" 0
  run "on-$np" "$np" 1
  grep -q "^pipeline: .*loss read 1 step late" "$T_TMP/on-$np.out" && t_pass "np=$np: DLFS_STEP_LAG=1 is on" \
    || t_fail "np=$np: the banner does not say the loss lags: $(grep pipeline "$T_TMP/on-$np.out")"
  grep -q "^pipeline: .*step late" "$T_TMP/off-$np.out" && t_fail "np=$np: DLFS_STEP_LAG=0 still lags"
  n=$(grep -c '"train_loss"' "$T_TMP/on-$np.cmp")
  [ "$n" = 2 ] || t_fail "np=$np: $n epoch lines, want 2"
  if cmp -s "$T_TMP/off-$np.cmp" "$T_TMP/on-$np.cmp"; then
    t_pass "np=$np: train_loss, test_loss, digest identical with the lag ($(grep -o '"train_loss": [0-9.]*' \
      "$T_TMP/on-$np.cmp" | tr '\n' ' '))"
  else
    t_fail "np=$np: metrics differ with the lag"; diff "$T_TMP/off-$np.cmp" "$T_TMP/on-$np.cmp" >&2
  fi
  if [ "$np" = 1 ]; then
    # with the lag, the line after step s shows the mean of steps up to s-1: the same
    # numbers one line later (the first step of each epoch prints none)
    a=$(awk '{ print $1, $2 + 1, $3 }' "$T_TMP/off-1.progress" | sort) b=$(sort "$T_TMP/on-1.progress")
    c=$(comm -13 <(echo "$a") <(echo "$b"))
    [ -s "$T_TMP/on-1.progress" ] && [ -z "$c" ] && t_pass "progress lines: the same losses, one step later" \
      || t_fail "progress lines with the lag not found among those without: $c"
  fi
done
t_done
