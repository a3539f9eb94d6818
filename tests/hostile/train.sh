#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Hostile runs where the trainer is what protects the data (1 and 2 ranks): training
# that diverges with checkpoints on (the newest finite checkpoint named, nothing
# non-finite written, nothing pruned that matters); outputs over inputs (--metrics,
# --trace over --data; --data inside --checkpoint-dir under a checkpoint's name);
# lineage (a fresh start or an older checkpoint into a directory with newer ones is
# refused, naming --rollback; --rollback moves the newer line aside, never deletes;
# --resume latest passes over a damaged newest checkpoint and says so); a stop signal
# while a wait for a stuck rank lasts; --eval of a checkpoint without optimizer state.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
cd "$T_TMP" || exit 1
cp "$fm" data.h5   # a dataset of the test's own: the cases must leave it byte-identical
common=(--data data.h5 --model 784-64-10 --epochs 1 --quiet)

# class 4: divergence mid-run, checkpoints every 3 steps, keep 2
for np in 1 2; do
  h_mpi $np "diverging run" 1 "training diverged: the loss became non-finite" 120 \
    "$train" "${common[@]}" --optim sgd --lr 20 --max-steps 60 --checkpoint-dir div$np --checkpoint-every 3 --keep 2
  named=$(grep -o "div$np/ckpt-[0-9]*\.h5" "$H_OUT/err" | head -n 1)
  [ -n "$named" ] && [ -f "$named" ] && t_pass "np $np: the newest finite checkpoint it names, $named, is there" \
    || { t_fail "np $np: no finite checkpoint named, or gone: '$named'"; cat "$H_OUT/err"; }
  for f in div$np/ckpt-*.h5; do
    mpirun -np 1 "$train" "${common[@]}" --eval --resume "$f" >/dev/null 2>&1 && t_pass "$f loads (finite)" \
      || t_fail "$f does not load: a non-finite checkpoint was written"
  done
done

# class 6: an output over an input is refused before anything is written
h_train "--metrics over --data" 2 "--metrics data.h5 is the same file as --data data.h5" 60 \
  "$train" "${common[@]}" --max-steps 5 --metrics data.h5
ln -s data.h5 link.h5
h_train "--trace over --data (through a link)" 2 "--trace link.h5 is the same file as --data data.h5" 60 \
  "$train" "${common[@]}" --max-steps 5 --trace link.h5
mkdir inside && cp data.h5 inside/ckpt-000000005.h5
h_train "--data inside --checkpoint-dir under a checkpoint's name" 2 "lies in --checkpoint-dir inside under a checkpoint" 60 \
  "$train" --data inside/ckpt-000000005.h5 --model 784-64-10 --epochs 1 --quiet --max-steps 5 --checkpoint-dir inside

# class 5: lineage
mpirun -np 2 "$train" "${common[@]}" --max-steps 20 --checkpoint-dir line --checkpoint-every 5 --keep 0 >/dev/null 2>&1 \
  || t_fail "making a line of checkpoints"
h_train "resuming ckpt-5 into a directory holding ckpt-20" 2 "--rollback" 60 \
  "$train" "${common[@]}" --max-steps 12 --keep 1 --checkpoint-dir line --resume line/ckpt-000000005.h5
h_train "a fresh start into a directory holding another run's checkpoints" 2 "--rollback" 60 \
  "$train" "${common[@]}" --max-steps 12 --checkpoint-dir line
mpirun -np 2 "$train" "${common[@]}" --max-steps 12 --keep 1 --checkpoint-dir line --resume line/ckpt-000000005.h5 \
  --rollback --metrics roll.jsonl > roll.out 2>&1 && t_pass "--rollback: the older line continues (exit 0)" \
  || { t_fail "--rollback failed"; cat roll.out; }
moved=$(find line -path '*abandoned-*' -name 'ckpt-*.h5' | wc -l)
[ "$moved" = 3 ] && t_pass "--rollback moved the 3 newer checkpoints into line/abandoned-*/" \
  || { t_fail "moved $moved checkpoints, want 3 (10, 15, 20)"; find line; }
[ -f line/ckpt-000000012.h5 ] && [ ! -e line/ckpt-000000020.h5 ] && t_pass "latest is now the continued line's ckpt-12" \
  || { t_fail "the directory after --rollback"; find line; }

# class 3: --resume latest passes over a damaged newest checkpoint and says so
mpirun -np 1 "$train" "${common[@]}" --max-steps 20 --checkpoint-dir dmg --checkpoint-every 10 >/dev/null 2>&1
half=$(( $(stat -c %s dmg/ckpt-000000020.h5) / 2 ))   # inside the parameters: the digests catch it
printf 'garbage' | dd of=dmg/ckpt-000000020.h5 bs=1 seek=$half conv=notrunc status=none
mpirun -np 2 "$train" --data data.h5 --model 784-64-10 --epochs 1 --max-steps 30 --checkpoint-dir dmg --resume latest \
  > dmg.out 2>&1
rc=$?
[ $rc = 0 ] && grep -q "ckpt-000000020.h5" dmg.out && grep -q "^resume: dmg/ckpt-000000010.h5: step 10," dmg.out \
  && t_pass "latest skipped the damaged ckpt-20 (and said so) and went on from ckpt-10" \
  || { t_fail "--resume latest over a damaged newest checkpoint (exit $rc)"; cat dmg.out; }
[ -n "$(find dmg -path '*abandoned-*' -name ckpt-000000020.h5)" ] && [ -f dmg/ckpt-000000030.h5 ] \
  && t_pass "the damaged checkpoint was moved aside, never deleted" || { t_fail "the damaged checkpoint"; find dmg; }

# --eval needs no optimizer state (SGD without momentum has none)
mpirun -np 1 "$train" "${common[@]}" --max-steps 5 --optim sgd --momentum 0 --checkpoint-dir sgd >/dev/null 2>&1
mpirun -np 2 "$train" "${common[@]}" --eval --resume sgd/ckpt-000000005.h5 > ev.out 2>&1 \
  && grep -q "^test_acc" ev.out && t_pass "--eval of a checkpoint without optimizer state" \
  || { t_fail "--eval refused a checkpoint without optimizer state"; cat ev.out; }

# class 7: a stop signal while a wait for a stuck rank lasts ends the job (exit 4), not after the timeout
t0=$SECONDS
DLFS_FAULT_COMM_STALL=1:3:120 mpirun -np 2 "$train" "${common[@]}" --max-steps 20 --comm-timeout 200 > sig.out 2>&1 &
job=$!
for _ in $(seq 1 100); do grep -q "stalls" sig.out && break; sleep 0.1; done
sleep 1
for p in $(pgrep -x dlfs-train); do   # rank 0 of this test's job (its cwd), which waits for the stalled rank 1
  [ "$(readlink /proc/"$p"/cwd)" = "$(realpath "$T_TMP")" ] || continue   # another test's trainer (ctest -j)
  tr '\0' '\n' < /proc/"$p"/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0 && grep -q -- "--comm-timeout" /proc/"$p"/cmdline \
    && kill -TERM "$p"
done
wait $job
rc=$?
el=$((SECONDS - t0))
[ $rc = 4 ] && [ $el -lt 60 ] && grep -q "stopped by SIGTERM while" sig.out \
  && t_pass "SIGTERM during a stuck wait: exit 4 after ${el}s" || { t_fail "SIGTERM during a stuck wait: rc $rc after ${el}s"; cat sig.out; }
t_done
