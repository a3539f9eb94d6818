#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The learning-rate schedule end to end: the "lr" of the metrics' epoch line (%.6g of
# the rate of the last step taken) has the value worked out by hand for cosine (also
# across a resume in the middle of the schedule, which must end with the same digest),
# warm-up, warm-up + cosine + --lr-min, and --lr-scaling linear. The function itself
# is checked exactly in tests/unit/test_optim.c; this checks what the trainer hands it
# (the schedule's length, the step) and what it prints.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
base=(--data "$fm" --model 784-32-10 --batch 128 --epochs 1 --optim sgd --lr 0.1 --seed 2 --eval-batch 2500)
# lr_of FILE: the lr field of the last epoch line
lr_of() { sed -n 's/.*"lr": \([0-9.eE+-]*\),.*/\1/p' "$1" | tail -n 1; }
# expect NAME FILE WANT: the lr field as printed
expect() {
  local got; got=$(lr_of "$2")
  [ "$got" = "$3" ] && t_pass "$1: lr $got" || t_fail "$1: lr '$got', want $3"
}
# run NAME ARGS...: train with the base options, metrics in NAME.jsonl
run() {
  local name=$1; shift
  mpirun -np 1 "$train" "${base[@]}" "$@" --metrics "$T_TMP/$name.jsonl" > "$T_TMP/$name.out" 2>&1 \
    || { cat "$T_TMP/$name.out"; t_fail "$name: run failed"; }
}

# cosine over 10 steps, last step s = 9: 0.1 * (1 + cos(0.9 pi)) / 2 = 0.0024471741...
run cos --schedule cosine --max-steps 10 --checkpoint-dir "$T_TMP/ck" --checkpoint-every 5
expect "cosine, 10 steps" "$T_TMP/cos.jsonl" 0.00244717
want=$(t_digest "$T_TMP/cos.jsonl")
# resumed at step 5 of the same 10-step schedule: the same rate at step 9, the same bits
[ -f "$T_TMP/ck/ckpt-000000005.h5" ] || t_fail "no checkpoint at step 5 to resume from"
run res --schedule cosine --max-steps 10 --resume "$T_TMP/ck/ckpt-000000005.h5"
grep -q "^resume: .*ckpt-000000005.h5: step 5," "$T_TMP/res.out" && t_pass "resumed at step 5" \
  || t_fail "the resumed run did not start at step 5"
# the options that differ from the checkpoint's, and only those (not all 40 of them)
grep -qx "resume: options changed since the checkpoint: checkpoint-dir $T_TMP/ck -> (none), checkpoint-every 5 -> 0" \
  "$T_TMP/res.out" && t_pass "resume names the two options that changed" || { grep "^resume" "$T_TMP/res.out"; t_fail "resume: changed options"; }
expect "cosine, resumed at step 5" "$T_TMP/res.jsonl" 0.00244717
got=$(t_digest "$T_TMP/res.jsonl")
[ -n "$want" ] && [ "$got" = "$want" ] && t_pass "5 + resume + 5 == 10 straight ($want)" \
  || t_fail "resumed digest '$got' != straight '$want'"

# warm-up over 4 steps, 3 steps taken: 0.1 * 3 / 4
run warm --schedule constant --warmup 4 --max-steps 3
expect "warm-up, step 2 of 4" "$T_TMP/warm.jsonl" 0.075
# warm-up 2, then cosine down to --lr-min 0.01 over 4 steps; last step s = 5:
# 0.01 + 0.09 * (1 + cos(0.75 pi)) / 2 = 0.0231801948...
run wcos --schedule cosine --warmup 2 --lr-min 0.01 --max-steps 6
expect "warm-up + cosine + --lr-min" "$T_TMP/wcos.jsonl" 0.0231802
# linear scaling: 0.1 x 128 / 64
run lin --schedule constant --lr-scaling linear --lr-ref-batch 64 --max-steps 2
expect "--lr-scaling linear, batch 128, ref 64" "$T_TMP/lin.jsonl" 0.2
grep -q "^optimizer sgd, lr 0.2 " "$T_TMP/lin.out" && t_pass "the banner shows the scaled lr" \
  || { grep '^optimizer' "$T_TMP/lin.out"; t_fail "the banner does not show lr 0.2"; }
t_done
