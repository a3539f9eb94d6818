#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Outputs and the checkpoint directory under attack (a tiny synthetic dataset, a
# few steps; label hostile): every output option naming every kind of input or
# output (refused before anything is written, one line naming both, exit 2 on
# every rank); links planted at the checkpoint directory's temporary names (the
# victim stays byte-identical); two concurrent runs on one directory (the second
# refused naming the first, the first's checkpoints intact; DLFS_CKPT_LOCK=off);
# a stop signal reaching rank 1 alone while rank 0 writes a slow checkpoint (the
# write completes, every rank exits 3); a format-1 checkpoint says what was not
# verified; launch/hardware-guide and launch/scaling-report refuse -o over an input.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/hostile-lib.sh"
train=$1 data=$2 mk=$4 gen=$5
cd "$T_TMP" || exit 1
"$gen" gen . >/dev/null && "$data" convert --train-images train-images-idx3-ubyte --train-labels \
  train-labels-idx1-ubyte.gz --test-images t10k-images-idx3-ubyte.gz --test-labels t10k-labels-idx1-ubyte \
  -o tiny.h5 >/dev/null || { t_fail "making the tiny dataset"; t_done; }
common=(--data tiny.h5 --model 35-16-10 --batch 4 --epochs 100 --quiet)
mpirun -np 1 "$train" "${common[@]}" --max-steps 10 --checkpoint-every 5 --checkpoint-dir ck >/dev/null 2>&1 \
  && mpirun -np 1 "$train" "${common[@]}" --max-steps 5 --checkpoint-dir other >/dev/null 2>&1 \
  || { t_fail "making checkpoints"; t_done; }
mkdir -p ck/abandoned-20260101T000000Z && cp ck/ckpt-000000005.h5 ck/abandoned-20260101T000000Z/ckpt-000000003.h5
ln -s ck/ckpt-000000010.h5 link.json      # a link to the checkpoint resumed from
ln -s ck/ckpt-000000020.h5 future.json    # a dangling link to the one the run will write
ln ck/ckpt-000000005.h5 hard.json         # a hard link to a kept checkpoint

# every output option over every kind of input and output: the class, not one example
outputs() { # outputs FILE...: each output option naming each FILE (with run, what, other set)
  local opt f want
  for opt in --metrics --trace; do
    for f in "$@"; do
      want="$opt $f is "
      h_expect "$opt $f ($what)" 2 "$want" 30 "$train" "${common[@]}" --max-steps 20 "${run[@]}" "$opt" "$f"
      grep -qF -- "$other" "$H_OUT/err" && t_pass "  ... and names $other" || t_fail "  ... the message lacks '$other'"
    done
  done
}
what="inputs" other="--data" run=(--checkpoint-dir ck --resume latest)
outputs tiny.h5 ./tiny.h5
what="the explicit --resume" other="--resume other/ckpt" run=(--checkpoint-dir new --resume other/ckpt-000000005.h5)
outputs other/ckpt-000000005.h5
what="files of --checkpoint-dir" other="--checkpoint-dir ck" run=(--checkpoint-dir ck --resume latest)
# latest's file, a kept one, the one the run writes, its temporary name, the lock,
# the write probe, an abandoned one, other spellings, links to them
outputs ck/ckpt-000000010.h5 ck/ckpt-000000005.h5 ck/ckpt-000000020.h5 ck/ckpt-000000020.h5.tmp ck/.dlfs-lock \
  ck/.dlfs-write-test.1.0 ck/abandoned-20260101T000000Z/ckpt-000000003.h5 ./ck/../ck/ckpt-000000010.h5 \
  "$T_TMP/ck/ckpt-000000015.h5" link.json future.json hard.json
what="--eval, latest" other="--checkpoint-dir ck" run=(--checkpoint-dir ck --resume latest --eval)
outputs ck/ckpt-000000010.h5
# the two outputs over each other, also when neither is there yet (stat sees nothing)
for pair in "new.json new.json" "new.json ./new.json" "new.json sub/../new.json" "future.json ck/ckpt-000000020.h5"; do
  read -r a b <<<"$pair"
  mkdir -p sub
  h_expect "--metrics $a --trace $b" 2 "--metrics $a and --trace $b name the same file" 30 \
    "$train" "${common[@]}" --max-steps 20 --metrics "$a" --trace "$b"
done
[ ! -e new.json ] && t_pass "nothing was created for the refused runs" || t_fail "new.json was created"
# every rank exits 2 (a few of the class on two ranks)
h_mpi 2 "--trace naming latest's checkpoint" 2 "--trace ck/ckpt-000000010.h5 is a file of --checkpoint-dir ck" 60 \
  "$train" "${common[@]}" --max-steps 20 --checkpoint-dir ck --resume latest --trace ck/ckpt-000000010.h5
h_mpi 2 "--metrics over --trace, not there yet" 2 "name the same file" 60 \
  "$train" "${common[@]}" --max-steps 20 --metrics n.json --trace ./n.json

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
H_WATCH=(tiny.h5 ck)   # the first run is writing into two/
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

# the launch tools' -o over one of their inputs (a file, one an input directory holds,
# through a link, what --measure writes, the guide's .json companion): exit 2, one line
launch=$(cd "$(dirname "$0")/../../launch" && pwd)
mkdir -p py/g py/m py/in && echo '{}' > py/g/scaling.json && echo '{}' > py/x.jsonl && ln -s x.jsonl py/link.md \
  && echo '# old' > py/in/report.md
H_WATCH=(py)
tool() { # tool NAME NEEDLE PROGRAM ARGS...
  local name=$1 needle=$2 prog=$3 rc=0 before; shift 3
  before=$(h_snapshot)
  (cd py && timeout 60 python3 "$launch/$prog" "$@" > "$H_OUT/out" 2> "$H_OUT/err") || rc=$?
  if [ $rc = 2 ] && [ "$(grep -c . "$H_OUT/err")" = 1 ] && grep -q "^$prog: error: " "$H_OUT/err" \
     && grep -qF -- "$needle" "$H_OUT/err" && [ "$before" = "$(h_snapshot)" ]; then
    t_pass "$prog $name: $(cat "$H_OUT/err")"
  else t_fail "$prog $name: exit $rc, or not one line with '$needle', or files changed"; cat "$H_OUT/err"; fi
}
tool "-o naming the input" "-o x.jsonl: writing x.jsonl would destroy the input x.jsonl" hardware-guide x.jsonl -o x.jsonl
tool "-o through a link to the input" "-o link.md: writing link.md would destroy the input x.jsonl" hardware-guide \
  x.jsonl -o link.md
tool "-o whose .json companion is an input" "-o g/scaling.md: writing g/scaling.json would destroy the input" \
  hardware-guide g -o g/scaling.md
tool "-o naming what --measure writes" "-o m/train-cpu-mlp.jsonl: writing m/train-cpu-mlp.jsonl would destroy" \
  hardware-guide --measure m -o m/train-cpu-mlp.jsonl
tool "-o FILE.json (the guide is its own companion)" "-o y.json: the guide and its .json companion would be one file" \
  hardware-guide x.jsonl -o y.json
tool "-o naming the input" "-o g/scaling.json: writing g/scaling.json would destroy the input g/scaling.json" \
  scaling-report g/scaling.json -o g/scaling.json
tool "-o DIR holding an input under an output's name" "-o in: writing in/report.md would destroy the input" \
  scaling-report in/report.md -o in

# a format-1 checkpoint (no state digest) is read, and says what was not verified
cp other/ckpt-000000005.h5 v1.h5 && "$mk" ckpt-int v1.h5 format_version 1
mpirun -np 1 "$train" "${common[@]}" --max-steps 8 --resume v1.h5 > v1.out 2> v1.err \
  && grep -q "v1.h5 is a format-1 checkpoint (no state_sha256): its parameters were verified, its optimizer state and position (step 5, epoch 1, +20 samples) were not" v1.err \
  && t_pass "format 1: loaded, with the warning" || { t_fail "format 1"; cat v1.out v1.err; }
t_done
