#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Resources sized by an option or a file, and outputs that cannot be written (issue 26),
# on a tiny dataset of the test's own (mkhostile dataset: 200 + 50 images) and a
# checkpoint of a 784-16-10 model: --accum-steps over its whole range 1..4096 and past
# it; the memory estimate refusing a batch that cannot fit before anything is allocated
# (and naming RLIMIT_AS when that is the bound), --eval-batch sized by the test split, a
# model spec of too many parameters; HDF5 objects whose values live outside the file
# (external storage on /dev/zero or a FIFO, a virtual dataset, an external link) in
# checkpoints and dataset files; --trace, --metrics and the standard output on
# /dev/full; --rollback without --checkpoint-dir; dlfs-data info escaping the control
# bytes of class names, source and license. Every refusal: one line, files unchanged
# (tests/lib.sh: h_check). Singleton runs (no mpirun: each start costs seconds
# here) but for one case on 2 ranks.
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2 mk=$4 gen=$5
cd "$T_TMP" || exit 1
"$mk" dataset d.h5 || { t_fail "making the dataset"; t_done; }
common=(--data d.h5 --model 784-16-10 --device cpu --quiet)
"$train" "${common[@]}" --batch 20 --max-steps 2 --checkpoint-dir ck >/dev/null 2>&1 \
  || { t_fail "making a checkpoint"; t_done; }
ck=ck/ckpt-000000002.h5
bench=(--bench --model 784-16-10 --device cpu --steps 1 --bench-warmup 0)
# lim KB CMD...: CMD with its address space limited to KB KiB (a regression that allocates
# first fails fast instead of taking the machine's memory)
# shellcheck disable=SC2016 # expanded by that bash
lim=(bash -c 'ulimit -v "$0" && exec "$@"')
# AddressSanitizer reserves terabytes of shadow address space at start: no ulimit -v there
asan=0
if ldd "$train" 2>/dev/null | grep -q libasan; then asan=1; lim=(bash -c 'exec "$@"'); fi

# --accum-steps: the documented range 1..4096 works (64 was an internal limit: exit 70)
for n in 1 64 65 4096; do
  if out=$("$train" "${bench[@]}" --batch "$n" --accum-steps "$n" 2>&1) && grep -q "^bench: 1 steps" <<<"$out"; then
    t_pass "--accum-steps $n (batch $n): one step"
  else t_fail "--accum-steps $n: $out"; fi
done
out=$(mpirun -np 2 "$train" "${bench[@]}" --batch 130 --accum-steps 65 2>&1) && grep -q "^bench: 1 steps" <<<"$out" \
  && t_pass "--accum-steps 65 on 2 ranks" || t_fail "--accum-steps 65 on 2 ranks: $out"
h_expect "--accum-steps 4097" 2 "--accum-steps '4097': must be between 1 and 4096" 60 "$train" "${bench[@]}" --batch 4097 --accum-steps 4097

# memory: refused from the estimate, before the allocation (fast, under a 4 GiB address space).
# The estimate by hand for 784-16-10, per row: activations x 784*4, ids and labels 8, d0 and d1
# 2*784*4, dense(16) z and a 2*16*4, dense(10) z 40, the batch of images 784 = 10368 bytes;
# host staging 784 + 4 and the synthetic image and label 785 = 1573 bytes; 16777216 rows x
# 11941 bytes = 186.58 GiB (the parameters, 12730 x 4 bytes a copy, do not show).
h_expect "--bench --batch 16777216" 1 "--batch 16777216: this run needs an estimated 186.58 GiB" 30 \
  "${lim[@]}" 4194304 "$train" "${bench[@]}" --batch 16777216
# ~2.9 GiB estimated: fits this machine's memory, not a 2 GiB address space; the bound is named
if [ $asan = 0 ]; then
  h_expect "--batch 262144 under ulimit -v 2 GiB" 1 "of host memory (RLIMIT_AS (ulimit -v))" 30 \
    "${lim[@]}" 2097152 "$train" "${bench[@]}" --batch 262144
else t_skip "the RLIMIT_AS bound: AddressSanitizer cannot start under ulimit -v"; fi
if out=$("${lim[@]}" 4194304 "$train" "${common[@]}" --batch 20 --max-steps 2 --eval-batch 1048576 2>&1) \
  && grep -q "^test_acc" <<<"$out"; then
  t_pass "--eval-batch 1048576 on a 50-sample test split: sized by the split (under 4 GiB)"
else t_fail "--eval-batch 1048576: $out"; fi
h_expect "a model spec of 2^40 parameters" 2 "parameters, more than the 1073741824 dlfs supports" 60 \
  "${lim[@]}" 4194304 "$train" "${bench[@]}" --batch 16 --model 784-1048576-1048576-10

# HDF5 values outside the file: in a checkpoint and in a dataset file
mkfifo fifo
mkdir -p out
for c in "external /params/0_dense/weight /dev/zero" "external /params/1_dense/bias fifo" \
  "virtual /params/0_dense/bias $ck" "link /optimizer/m/0_dense/weight $ck"; do
  read -r kind dset src <<<"$c"
  f=out/ck-$kind-${src//\//_}.h5
  cp "$ck" "$f" && "$mk" outside "$kind" "$f" "$dset" "$src" || t_fail "making $f"
  h_expect "checkpoint: $dset $kind ($src)" 1 "$f: $dset keeps its values outside the file" 60 \
    "$train" "${common[@]}" --batch 20 --max-steps 4 --resume "$f"
done
for c in "external /train/images fifo" "external /test/labels /dev/zero" "virtual /train/labels d.h5" \
  "link /test/images d.h5"; do
  read -r kind dset src <<<"$c"
  f=out/ds-$kind-${src//\//_}.h5
  cp d.h5 "$f" && "$mk" outside "$kind" "$f" "$dset" "$src" || t_fail "making $f"
  if [ "$src" = fifo ]; then
    h_mpi 2 "dataset: $dset $kind ($src)" 1 "$f: $dset keeps its values outside the file" 60 \
      "$train" --data "$f" --model 784-16-10 --device cpu --max-steps 2
  fi
  h_expect "dlfs-data info: $dset $kind ($src)" 1 "$f: $dset keeps its values outside the file" 60 "$data" info "$f"
done

# outputs that cannot be written: a non-zero exit naming them, never a silent loss
# 10 steps: a timeline over stdio's 4 KiB buffer, whose failed writes fclose alone does not report
h_expect "--trace /dev/full" 1 "--trace /dev/full: write failed" 30 "$train" "${common[@]}" --batch 20 --max-steps 10 --trace /dev/full
h_expect "--bench --metrics /dev/full" 1 "--metrics /dev/full: write failed" 30 "$train" "${bench[@]}" --batch 16 --metrics /dev/full
h_expect "--eval --metrics /dev/full" 1 "--metrics /dev/full: write failed" 30 "$train" "${common[@]}" --eval --resume "$ck" --metrics /dev/full
h_expect "dlfs-train > /dev/full" 1 "cannot write the standard output" 30 \
  bash -c 'exec "$@" > /dev/full' out "$train" "${common[@]}" --batch 20 --max-steps 2
h_expect "dlfs-data info > /dev/full" 1 "cannot write output" 30 bash -c 'exec "$@" > /dev/full' out "$data" info d.h5
h_expect "--rollback without --checkpoint-dir" 2 "--rollback moves checkpoints within --checkpoint-dir" 60 \
  "$train" "${common[@]}" --max-steps 2 --rollback

# dlfs-data info: control bytes of names stored in the file are escaped, never sent raw
mkdir idx && "$gen" gen idx >/dev/null || t_fail "making IDX files"
classes=$'T\e]0;owned\a,B\e[31mred,\x9b2J,back\\slash,4,5,6,7,8,Zoë'
"$data" convert --train-images idx/train-images-idx3-ubyte --train-labels idx/train-labels-idx1-ubyte.gz \
  --test-images idx/t10k-images-idx3-ubyte.gz --test-labels idx/t10k-labels-idx1-ubyte --classes "$classes" \
  --source $'src\e[2J' -o esc.h5 >/dev/null 2>&1 || t_fail "converting with hostile class names"
"$data" info esc.h5 > info.txt 2>&1 || t_fail "dlfs-data info esc.h5 exited $?"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f\x9b]' info.txt; then t_fail "info printed control bytes raw"; cat -v info.txt
elif grep -qF 'T\x1b]0;owned\x07' info.txt && grep -qF 'B\x1b[31mred' info.txt && grep -qF '\x9b2J' info.txt \
  && grep -qF 'back\\slash' info.txt && grep -qF 'Zoë' info.txt && grep -qF 'src\x1b[2J' info.txt; then
  t_pass "info escapes ESC, BEL, a raw C1 byte and the backslash, keeps UTF-8"
else t_fail "info's escaped names"; cat -v info.txt; fi
t_done
