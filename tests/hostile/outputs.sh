#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Outputs over inputs (a tiny synthetic dataset; label hostile): every output option of
# dlfs-train naming every kind of input or checkpoint-directory file, and the two outputs
# naming one file not there yet, are refused before anything is written (one line naming
# both, exit 2 on every rank); launch/hardware-guide and launch/scaling-report refuse -o
# over an input.
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2 gen=$5
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

t_done
