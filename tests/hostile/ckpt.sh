#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Hostile checkpoints and checkpoint directories through dlfs-train (--resume,
# --eval, --checkpoint-dir) on 1 and 2 ranks. Each case: exit != 0 on every rank
# within its bound, one line naming the file or option and what to do, every
# file that existed before byte-identical (tests/lib.sh: h_check).
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3") mk=$4
H_WATCH+=("$fm")
cd "$T_TMP" || exit 1
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model 784-64-10 --epochs 1 --quiet)
mpirun -np 1 "$train" "${common[@]}" --max-steps 10 --checkpoint-dir ok >/dev/null 2>&1 || { t_fail "making a checkpoint"; t_done; }
ck=ok/ckpt-000000010.h5
mkdir c
resume() { h_train "$1" "$2" "$3" 60 "$train" "${common[@]}" --max-steps 20 --resume "$4"; }

# class 2: attributes out of their ranges, a huge model spec
for a in "samples_in_epoch -5" "epoch 0" "step -1" "global_batch 0" "world_size 0" "seed 99999999999"; do
  read -r name v <<<"$a"
  cp "$ck" "c/$name.h5" && "$mk" ckpt-int "c/$name.h5" "$name" "$v"
  resume "checkpoint with $name $v" 1 "c/$name.h5: checkpoint attribute '$name' is $v, outside" "c/$name.h5"
done
cp "$ck" c/spec-huge.h5 && "$mk" ckpt-str c/spec-huge.h5 model_spec 200000
resume "checkpoint with a 200000-byte model_spec" 1 "spec-huge.h5: checkpoint is damaged or incomplete (its 'model_spec'" c/spec-huge.h5
cp "$ck" c/spec-junk.h5 && "$mk" ckpt-str c/spec-junk.h5 model_spec 60000
resume "checkpoint with a 60000-byte junk model_spec" 1 "spec-junk.h5: checkpoint holds an unreadable model spec" c/spec-junk.h5
# class 3: flipped bytes outside the parameters
cp "$ck" c/m.h5 && "$mk" ckpt-float c/m.h5 /optimizer/m/0_dense/weight 1000 0.125
resume "flipped value in /optimizer/m" 1 "m.h5: checkpoint is corrupt (its training state" c/m.h5
cp "$ck" c/v.h5 && "$mk" ckpt-float c/v.h5 /optimizer/v/1_dense/bias 3 7
resume "flipped value in /optimizer/v" 1 "v.h5: checkpoint is corrupt (its training state" c/v.h5
# class 4: NaN parameters whose digests match
cp "$ck" c/nan.h5 && "$mk" ckpt-nan c/nan.h5
resume "NaN parameters, digests match" 1 "nan.h5: non-finite values in /params/0_dense/weight: the run had diverged" c/nan.h5
h_train "NaN parameters, digests match (--eval)" 1 "nan.h5: non-finite values in /params/0_dense/weight" 60 \
  "$train" "${common[@]}" --eval --resume c/nan.h5
# class 7: a FIFO or a directory as --resume
mkfifo c/fifo.h5 && mkdir c/dir.h5
resume "FIFO as --resume" 1 "cannot read checkpoint c/fifo.h5: it is a FIFO (named pipe)" c/fifo.h5
resume "directory as --resume" 1 "cannot read checkpoint c/dir.h5: it is a directory" c/dir.h5
# class 9: a damaged superblock, a truncated file
cp "$ck" c/sb.h5 && printf '\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of=c/sb.h5 bs=1 seek=104 conv=notrunc status=none
resume "checkpoint with a damaged superblock" 1 "c/sb.h5 is not a readable HDF5 file" c/sb.h5
head -c 300000 "$ck" > c/half.h5
resume "checkpoint cut in half" 1 "c/half.h5" c/half.h5
# a 5000-character --checkpoint-dir: refused before a single directory is made
long="$T_TMP/x"; for _ in $(seq 25); do long="$long/$(printf 'y%.0s' {1..199})"; done
h_train "a 5000-character --checkpoint-dir" 2 "PATH_MAX" 60 "$train" "${common[@]}" --max-steps 2 --checkpoint-dir "$long"
[ ! -e "$T_TMP/x" ] && t_pass "no directory was created for it" || t_fail "directories were created under $T_TMP/x"
h_train "--model conv(8,k5,k3)" 2 "the kernel size is given twice" 60 "$train" --data "$fm" \
  --model "in(1x28x28),conv(8,k5,k3),flatten,dense(10)" --max-steps 1

# names that look like checkpoints but do not parse are ignored (with a warning),
# never an overflow: --resume latest continues from the real one
mkdir junk && cp "$ck" junk/ && touch junk/ckpt-12345678901234567890123.h5 junk/ckpt-5.h5
if mpirun -np 2 "$train" "${common[@]}" --max-steps 20 --checkpoint-dir junk --resume latest > junk.out 2> junk.err \
   && grep -q "ignored junk/ckpt-12345678901234567890123.h5" junk.err && [ -f junk/ckpt-000000020.h5 ] \
   && [ -f junk/ckpt-12345678901234567890123.h5 ] && ! grep -qE 'runtime error|Sanitizer' junk.err; then
  t_pass "--resume latest beside ckpt-<23 digits>.h5: resumed from step 10, junk kept, warned"
else t_fail "--resume latest beside junk names"; cat junk.err >&2; fi
t_done
