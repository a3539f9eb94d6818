#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Bad input to dlfs-train: one clear message naming the file or option, exit != 0
# (2 for usage errors, 1 for the rest), no crash, no sanitizer report, no hang.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3") mkbad=$4
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
run=(mpirun -np 1 "$train")

t_expect_error "missing file" 1 "/nonexistent/x.h5" "${run[@]}" --data /nonexistent/x.h5
t_expect_error "directory as file" 1 "$T_TMP" "${run[@]}" --data "$T_TMP"
echo "not an hdf5 file" > "$T_TMP/text.h5"
t_expect_error "not HDF5" 1 "text.h5" "${run[@]}" --data "$T_TMP/text.h5"
head -c 300000 "$fm" > "$T_TMP/trunc.h5"
t_expect_error "truncated HDF5" 1 "trunc.h5" "${run[@]}" --data "$T_TMP/trunc.h5"
"$mkbad" not-dlfs "$T_TMP/other.h5" && [ -s "$T_TMP/other.h5" ] || t_fail "mkbad not-dlfs did not write other.h5"
t_expect_error "HDF5 but not a dlfs dataset" 1 "other.h5" "${run[@]}" --data "$T_TMP/other.h5"
cp "$fm" "$T_TMP/badlabel.h5" && "$mkbad" bad-label "$T_TMP/badlabel.h5" 12 || t_fail "mkbad bad-label failed"
t_expect_error "label outside the classes" 1 "badlabel.h5" "${run[@]}" --data "$T_TMP/badlabel.h5"

t_expect_error "model input mismatch" 1 "start the spec with in(784)" "${run[@]}" --data "$fm" --model 100-10
t_expect_error "model class mismatch" 1 "last dense layer 10 wide" "${run[@]}" --data "$fm" --model 784-64-7
for spec in "784-" "784-abc-10" "784-10:swish" "in(784),relu,dense(10)" "in(784),dense(10),relu" "nosuchmodel" \
  "in(1x28x28),conv(8,k5,k3),flatten,dense(10)"; do
  t_expect_error "malformed spec '$spec'" 2 "--model '$spec'" "${run[@]}" --data "$fm" --model "$spec"
done
t_expect_error "negative lr" 2 "--lr '-0.1'" "${run[@]}" --data "$fm" --lr -0.1
t_expect_error "batch 0" 2 "--batch '0'" "${run[@]}" --data "$fm" --batch 0
t_expect_error "batch larger than the dataset" 2 "larger than the 12800 training samples" "${run[@]}" --data "$fm" --batch 12801
t_expect_error "unknown precision" 2 "--precision 'fp16': expected one of: fp32 tf32 bf16" "${run[@]}" --data "$fm" --precision fp16
t_expect_error "unknown option" 2 "--bogus" "${run[@]}" --data "$fm" --bogus
t_expect_error "missing --data" 2 "--data FILE is required" "${run[@]}" --epochs 1
t_expect_error "cuda without GPU" 1 "--device cuda" "${run[@]}" --data "$fm" --device cuda
# a loss that becomes NaN (SGD at lr 50) ends the run with exit 1, not a NaN model and exit 0
t_expect_error "diverging loss" 1 "training diverged: the loss became" \
  "${run[@]}" --data "$fm" --optim sgd --lr 50 --epochs 1 --max-steps 30
t_expect_error "unwritable metrics" 1 "--metrics /nonexistent/m.jsonl" "${run[@]}" --data "$fm" --metrics /nonexistent/m.jsonl
t_done
