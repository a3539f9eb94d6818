#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Bad options and files to dlfs-train (ctest train_bad_input): one clear message naming the
# file or option, exit 2 for usage errors and 1 for the rest, no crash, no sanitizer report,
# no hang, files unchanged (tests/lib.sh: h_check).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3") mk=$4
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
run=(mpirun -np 1 "$train")

h_expect "missing file" 1 "/nonexistent/x.h5" 120 "${run[@]}" --data /nonexistent/x.h5
h_expect "directory as file" 1 "$T_TMP" 120 "${run[@]}" --data "$T_TMP"
echo "not an hdf5 file" > "$T_TMP/text.h5"
h_expect "not HDF5" 1 "text.h5" 120 "${run[@]}" --data "$T_TMP/text.h5"
head -c 300000 "$fm" > "$T_TMP/trunc.h5"
h_expect "truncated HDF5" 1 "trunc.h5" 120 "${run[@]}" --data "$T_TMP/trunc.h5"
"$mk" not-dlfs "$T_TMP/other.h5" && [ -s "$T_TMP/other.h5" ] || t_fail "mkhostile not-dlfs did not write other.h5"
h_expect "HDF5 but not a dlfs dataset" 1 "other.h5" 120 "${run[@]}" --data "$T_TMP/other.h5"
cp "$fm" "$T_TMP/badlabel.h5" && "$mk" label "$T_TMP/badlabel.h5" 345 12 || t_fail "mkhostile label failed"
h_expect "label outside the classes" 1 "badlabel.h5" 120 "${run[@]}" --data "$T_TMP/badlabel.h5"

h_expect "model input mismatch" 1 "start the spec with in(784)" 120 "${run[@]}" --data "$fm" --model 100-10
h_expect "model class mismatch" 1 "last dense layer 10 wide" 120 "${run[@]}" --data "$fm" --model 784-64-7
for spec in "784-" "784-abc-10" "784-10:swish" "in(784),relu,dense(10)" "in(784),dense(10),relu" "nosuchmodel" \
  "in(1x28x28),conv(8,k5,k3),flatten,dense(10)"; do
  h_expect "malformed spec '$spec'" 2 "--model '$spec'" 120 "${run[@]}" --data "$fm" --model "$spec"
done
h_expect "negative lr" 2 "--lr '-0.1'" 120 "${run[@]}" --data "$fm" --lr -0.1
h_expect "batch 0" 2 "--batch '0'" 120 "${run[@]}" --data "$fm" --batch 0
h_expect "batch larger than the dataset" 2 "larger than the 12800 training samples" 120 "${run[@]}" --data "$fm" --batch 12801
h_expect "unknown precision" 2 "--precision 'fp16': expected one of: fp32 tf32 bf16" 120 "${run[@]}" --data "$fm" --precision fp16
h_expect "unknown option" 2 "--bogus" 120 "${run[@]}" --data "$fm" --bogus
h_expect "missing --data" 2 "--data FILE is required" 120 "${run[@]}" --epochs 1
h_expect "cuda without GPU" 1 "--device cuda" 120 "${run[@]}" --data "$fm" --device cuda
# a loss that becomes NaN (SGD at lr 50) ends the run with exit 1, not a NaN model and exit 0
h_expect "diverging loss" 1 "training diverged: the loss became" 120 \
  "${run[@]}" --data "$fm" --optim sgd --lr 50 --epochs 1 --max-steps 30
h_expect "unwritable metrics" 1 "--metrics /nonexistent/m.jsonl" 120 "${run[@]}" --data "$fm" --metrics /nonexistent/m.jsonl
t_done
