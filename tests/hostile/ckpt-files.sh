#!/usr/bin/env bash
# Bad checkpoints and checkpoint directories (ctest ckpt_bad_input): one clear message,
# exit != 0, files unchanged (tests/lib.sh: h_check), and the previous checkpoint survives a
# failed write.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3") mk=$4
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
common=(--data "$fm" --model 784-64-10 --epochs 1 --max-steps 10 --quiet)
mpirun -np 1 "$train" "${common[@]}" --checkpoint-dir "$T_TMP/ok" >/dev/null 2>&1 || t_fail "making a checkpoint"
ck="$T_TMP/ok/ckpt-000000010.h5"
size=$(stat -c %s "$ck")
head -c $((size / 2)) "$ck" > "$T_TMP/trunc.h5"
h_expect "truncated checkpoint" 1 "trunc.h5" 120 mpirun -np 1 "$train" "${common[@]}" --resume "$T_TMP/trunc.h5"
cp "$ck" "$T_TMP/corrupt.h5"
# flip bytes in the middle of the first weight matrix (the bulk of the file)
printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of="$T_TMP/corrupt.h5" bs=1 seek=$((size / 4)) conv=notrunc status=none
h_expect "corrupt checkpoint" 1 "corrupt.h5" 120 mpirun -np 1 "$train" "${common[@]}" --resume "$T_TMP/corrupt.h5"
h_expect "not a dlfs checkpoint" 1 "is not a dlfs checkpoint" 120 mpirun -np 1 "$train" "${common[@]}" --resume "$fm"
cp "$ck" "$T_TMP/v99.h5" && "$mk" ckpt-int "$T_TMP/v99.h5" format_version 99
h_expect "other format version" 1 "format version 99" 120 mpirun -np 1 "$train" "${common[@]}" --resume "$T_TMP/v99.h5"
h_expect "checkpoint of another model" 1 "resume with --model 'in(784),dense(64),relu,dense(10)'" 120 \
  mpirun -np 1 "$train" "${common[@]}" --model 784-32-10 --resume "$ck"
h_expect "checkpoint of another optimizer" 2 "resume with --optim adam" 120 \
  mpirun -np 1 "$train" "${common[@]}" --optim sgd --resume "$ck"
h_expect "missing checkpoint file" 1 "nonexistent.h5" 120 mpirun -np 1 "$train" "${common[@]}" --resume "$T_TMP/nonexistent.h5"
h_expect "unwritable checkpoint dir" 1 "--checkpoint-dir $fm/sub" 120 mpirun -np 1 "$train" "${common[@]}" --checkpoint-dir "$fm/sub"
h_expect "--resume latest without a directory" 2 "--resume latest needs --checkpoint-dir" 120 \
  mpirun -np 1 "$train" "${common[@]}" --resume latest
h_expect "bad --checkpoint-every" 2 "--checkpoint-every 'x'" 120 mpirun -np 1 "$train" "${common[@]}" \
  --checkpoint-dir "$T_TMP/x" --checkpoint-every x
# full disk: a 1 MiB tmpfs holds one checkpoint of this model (~630 kB) but not a
# second; the second write fails with a message and the first survives untouched
mnt="$T_TMP/tiny"
mkdir -p "$mnt"
if mount -t tmpfs -o size=1m tmpfs "$mnt" 2>/dev/null; then
  trap 'umount "$mnt" 2>/dev/null; rm -rf "$T_TMP"' EXIT
  mpirun -np 1 "$train" "${common[@]}" --checkpoint-dir "$mnt" >/dev/null 2>&1 || t_fail "first checkpoint on tmpfs"
  sum_before=$(sha256sum "$mnt/ckpt-000000010.h5" | cut -d' ' -f1)
  h_expect "disk full" 1 "No space left on device" 120 \
    mpirun -np 1 "$train" "${common[@]}" --max-steps 20 --checkpoint-dir "$mnt" --resume latest
  [ "$(sha256sum "$mnt/ckpt-000000010.h5" | cut -d' ' -f1)" = "$sum_before" ] \
    && t_pass "previous checkpoint survives the failed write" || t_fail "previous checkpoint changed"
  [ "$(ls "$mnt" | wc -l)" -eq 1 ] && t_pass "no partial file left" || t_fail "partial file left: $(ls "$mnt")"
  umount "$mnt"
else
  echo "note: cannot mount a tmpfs here (not root?): the disk-full case was not run"
fi
t_done
