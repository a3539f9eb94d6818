#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The checkpoint directory under attack (a tiny synthetic dataset, a few steps; label
# hostile): links planted at the lock and at the next PATH.tmp (the victim stays
# byte-identical); two concurrent runs on one directory (the second refused naming the
# first, the first's checkpoints intact; DLFS_CKPT_LOCK=off); a stop signal reaching rank 1
# alone while rank 0 writes a slow checkpoint (the write completes, every rank exits 3); a
# format-1 checkpoint says what was not verified.
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2 mk=$4 gen=$5
cd "$T_TMP" || exit 1
"$gen" gen . >/dev/null && "$data" convert --train-images train-images-idx3-ubyte --train-labels \
  train-labels-idx1-ubyte.gz --test-images t10k-images-idx3-ubyte.gz --test-labels t10k-labels-idx1-ubyte \
  -o tiny.h5 >/dev/null || { t_fail "making the tiny dataset"; t_done; }
common=(--data tiny.h5 --model 35-16-10 --batch 4 --epochs 100 --quiet)
mpirun -np 1 "$train" "${common[@]}" --max-steps 5 --checkpoint-dir other >/dev/null 2>&1 \
  || { t_fail "making a checkpoint"; t_done; }

# a link planted at the lock: refused, the victim untouched; at the temporary
# name of the next checkpoint while the run writes one: the victim untouched
echo precious > victim.txt
mkdir sl && ln -s ../victim.txt sl/.dlfs-lock
h_mpi 2 "a symlink at the lock" 1 "sl: cannot open its lock file .dlfs-lock" 60 \
  "$train" "${common[@]}" --max-steps 5 --checkpoint-dir sl
rm sl/.dlfs-lock && ln victim.txt sl/.dlfs-lock
h_mpi 1 "a hard link at the lock" 1 "its lock file .dlfs-lock is not a regular file with one name" 60 \
  "$train" "${common[@]}" --max-steps 5 --checkpoint-dir sl
rm sl/.dlfs-lock
DLFS_FAULT_CKPT_PAUSE=1:1 mpirun -np 2 "$train" "${common[@]}" --max-steps 10 --checkpoint-every 5 --checkpoint-dir sl \
  > sl.out 2>&1 &
job=$!
for _ in $(seq 100); do [ -e sl/ckpt-000000005.h5.tmp ] && break; sleep 0.1; done
ln -s ../victim.txt sl/ckpt-000000010.h5.tmp
wait $job && [ "$(cat victim.txt)" = precious ] && [ -f sl/ckpt-000000010.h5 ] && [ ! -L sl/ckpt-000000010.h5 ] \
  && mpirun -np 1 "$train" "${common[@]}" --eval --resume sl/ckpt-000000010.h5 >/dev/null 2>&1 \
  && t_pass "a symlink planted at the next PATH.tmp: the victim is untouched, ckpt-10 is a checkpoint of ours" \
  || { t_fail "a symlink at PATH.tmp: victim '$(cat victim.txt)'"; ls -la sl; cat sl.out; }

# two runs on one directory: the second is refused naming the first, whose checkpoints stay intact
DLFS_FAULT_CKPT_PAUSE=1:3 mpirun -np 1 "$train" "${common[@]}" --max-steps 10 --checkpoint-every 5 --checkpoint-dir two \
  --metrics first.jsonl > first.out 2>&1 &
job=$!
for _ in $(seq 100); do [ -e two/ckpt-000000005.h5.tmp ] && break; sleep 0.1; done
H_WATCH=(tiny.h5 other victim.txt)   # the first run is writing into two/
h_mpi 2 "a second run on the directory" 2 "--checkpoint-dir two is in use by another run (pid " 60 \
  "$train" "${common[@]}" --max-steps 10 --checkpoint-every 5 --checkpoint-dir two
pid=$(sed -n 's/.*another run (pid \([0-9]*\) on host.*/\1/p' "$H_OUT/err")
[ -n "$pid" ] && grep -q dlfs-train "/proc/$pid/cmdline" 2>/dev/null && t_pass "the pid named ($pid) is the first run's" \
  || t_fail "the pid named, '$pid', is not a running dlfs-train"
[ -e two/ckpt-000000005.h5.tmp ] && t_pass "the first run's checkpoint write was left alone" \
  || t_fail "the second run removed the first one's temporary file"
wait $job && [ "$(t_digest first.jsonl)" = "$(mpirun -np 1 "$train" "${common[@]}" --eval --resume two/ckpt-000000010.h5 \
  --metrics ev.jsonl >/dev/null 2>&1; t_digest ev.jsonl)" ] && [ -n "$(t_digest first.jsonl)" ] \
  && t_pass "the first run ended well; its ckpt-10 holds its final parameters" || { t_fail "the first run"; cat first.out; }
mpirun -np 2 "$train" "${common[@]}" --max-steps 12 --checkpoint-dir two --resume latest >/dev/null 2>&1 \
  && [ -f two/ckpt-000000012.h5 ] && t_pass "the lock went with the first run (a kernel lock, no stale file)" \
  || t_fail "the directory stayed locked after the first run ended"
"$T_PY" -c 'import fcntl, sys, time; f = open(sys.argv[1], "a"); fcntl.lockf(f, fcntl.LOCK_EX); print(1, flush=True); time.sleep(30)' \
  two/.dlfs-lock > held.out &
holder=$!
for _ in $(seq 100); do [ -s held.out ] && break; sleep 0.1; done
DLFS_CKPT_LOCK=off mpirun -np 1 "$train" "${common[@]}" --max-steps 14 --checkpoint-dir two --resume latest >/dev/null 2>&1 \
  && [ -f two/ckpt-000000014.h5 ] && t_pass "DLFS_CKPT_LOCK=off goes past a lock held elsewhere" \
  || t_fail "DLFS_CKPT_LOCK=off"
kill "$holder"; wait "$holder" 2>/dev/null

# a stop signal to rank 1 alone while rank 0 writes a slow checkpoint (6 s, past the
# 5 s grace of a wait): the write completes, both ranks exit 3, and the job requeues
rm -rf "$H_RANKS" && mkdir -p "$H_RANKS"
# shellcheck disable=SC2016 # expanded by the rank's shell
DLFS_FAULT_CKPT_PAUSE=1:6 timeout -k 5 90 mpirun -np 2 bash -c '"$@"; rc=$?; echo $rc > "$H_RANKS/$OMPI_COMM_WORLD_RANK"; exit $rc' \
  rank "$train" "${common[@]}" --checkpoint-every 5 --checkpoint-dir sigone > sig.out 2>&1 &
job=$!
for _ in $(seq 200); do [ -e sigone/ckpt-000000005.h5.tmp ] && break; sleep 0.05; done
for p in $(pgrep -x dlfs-train); do
  tr '\0' '\n' < /proc/"$p"/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && [ "$(readlink /proc/"$p"/cwd)" = "$T_TMP" ] \
    && kill -TERM "$p"
done
wait $job
rc=$?
[ $rc = 3 ] && [ "$(cat "$H_RANKS/0" 2>/dev/null)" = 3 ] && [ "$(cat "$H_RANKS/1" 2>/dev/null)" = 3 ] \
  && grep -q "stopped by SIGTERM at step 6: checkpoint sigone/ckpt-000000006.h5 written" sig.out \
  && [ -f sigone/ckpt-000000005.h5 ] && t_pass "SIGTERM to rank 1 during a slow write: written, every rank exits 3" \
  || { t_fail "SIGTERM to rank 1 during a slow write: rc $rc, ranks $(cat "$H_RANKS"/* 2>/dev/null | xargs)"; cat sig.out; }

# a format-1 checkpoint (no state digest) is read, and says what was not verified
cp other/ckpt-000000005.h5 v1.h5 && "$mk" ckpt-int v1.h5 format_version 1
mpirun -np 1 "$train" "${common[@]}" --max-steps 8 --resume v1.h5 > v1.out 2> v1.err \
  && grep -q "v1.h5 is a format-1 checkpoint (no state_sha256): its parameters were verified, its optimizer state and position (step 5, epoch 1, +20 samples) were not" v1.err \
  && t_pass "format 1: loaded, with the warning" || { t_fail "format 1"; cat v1.out v1.err; }
t_done
