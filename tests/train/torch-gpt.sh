#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The language model against PyTorch, an independent implementation (launch/torch-gpt.py
# rebuilds a checkpoint's GPT with plain torch operations and loads its tensors): on a
# tiny text written here, a 2-block GPT (context 32, 4 heads) takes one AdamW step with
# weight decay on ALL the training windows as one batch (1 rank, --deterministic); the
# loss dlfs-train reports for that step equals PyTorch's float64 loss at the starting
# checkpoint within 1e-5 (relative), its validation loss after the step PyTorch's of the
# checkpoint after it (the one val window), and every tensor after the step equals PyTorch's
# float64 AdamW step (decay on the blocks' matrices only, as two parameter groups)
# within 1 % of the step or 4x PyTorch fp32's own error: the tolerances are
# launch/torch-gpt.py's. Adam's eps (1e-4) is near the gradients' size, so the step
# follows each gradient's value and not only its sign. Then a short run retraced
# (torch-gpt.py train): 20 steps of batch 4 over four epochs of the 22 windows, warm-up,
# cosine, clipping that acts (--clip-grad 0.05): PyTorch's float32 run from dlfs's initial
# checkpoint, fed the windows in the order it recomputes from the seed, has dlfs's
# validation loss at steps 5, 10, 15 and 20 within 1e-4 (relative; fp32 rounding is ~1e-6,
# a window order off by an epoch or no clipping is off by 1e-3 or more). A few
# seconds (torch's start) plus ~3 s.
# Skipped (77) without a Python that imports torch, numpy and h5py: DLFS_TORCH_PYTHON,
# else the configured Python.
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2 src=$(cd "$(dirname "$0")/../.." && pwd)
py=""
for p in "${DLFS_TORCH_PYTHON:-}" "$T_PY"; do
  [ -n "$p" ] && "$p" -c 'import torch, numpy, h5py' >/dev/null 2>&1 && { py=$p; break; }
done
[ -n "$py" ] || { echo "skipped: no Python with torch, numpy and h5py (pip install torch numpy h5py in a venv, then DLFS_TORCH_PYTHON=venv/bin/python)"; exit 77; }
cd "$T_TMP" || exit 1
words=(the cat sat on a mat and dog ran to it with red hat)
RANDOM=11
for ((i = 0; i < 240; i++)); do printf '%s ' "${words[RANDOM % ${#words[@]}]}"; done > text.txt
"$data" text text.txt -o t.h5 > conv.out 2>&1 || { cat conv.out; t_fail "dlfs-data text"; t_done; }
# the training windows: floor((N - 1) / 32) of the N = len - ceil(5 % of len) training bytes
len=$(wc -c < text.txt)
n=$(( (len - (len * 5 + 99) / 100 - 1) / 32 ))
model="in(33),embed(256,32),block(32,h4),block(32,h4),lnorm,lmhead"
lr=1e-3 wd=2 eps=1e-4
common=(--data t.h5 --model "$model" --batch "$n" --epochs 1 --max-steps 1 --optim adamw --weight-decay "$wd"
        --beta1 0.9 --beta2 0.999 --eps "$eps" --seed 5 --deterministic --virtual-shards 1 --device cpu --quiet)
# the parameters before the step: a step of lr 1e-12 leaves them as they were
mpirun -np 1 "$train" "${common[@]}" --lr 1e-12 --checkpoint-dir c0 > a.out 2>&1 \
  && mpirun -np 1 "$train" "${common[@]}" --lr $lr --checkpoint-dir c1 --metrics m.jsonl > b.out 2>&1 \
  || { cat a.out b.out; t_fail "dlfs-train"; t_done; }
loss=$(t_train_loss m.jsonl)
val=$(sed -n 's/.*"event": "final".*"test_loss": \([0-9.]*\).*/\1/p' m.jsonl | tail -n 1)
[ -n "$loss" ] && [ -n "$val" ] || { t_fail "no train_loss or test_loss in the metrics"; t_done; }
if "$py" "$src/launch/torch-gpt.py" step c0/ckpt-000000001.h5 c1/ckpt-000000001.h5 t.h5 --lr $lr \
    --weight-decay $wd --eps $eps --dlfs-loss "$loss" --dlfs-val-loss "$val" > t.out 2>&1; then
  t_pass "$n windows: PyTorch's loss and AdamW step agree: $(tr '\n' ' ' < t.out)"
else
  cat t.out; t_fail "PyTorch disagrees"
fi
# the run: 20 % validation for a few val windows; starting point = a step of lr 1e-12
"$data" text text.txt --val-percent 20 -o r.h5 > conv.out 2>&1 || { cat conv.out; t_fail "dlfs-data text"; t_done; }
run=(--data r.h5 --model "$model" --batch 4 --optim adamw --weight-decay 0.1 --beta2 0.95 --warmup 3
     --schedule cosine --lr-min 1e-4 --clip-grad 0.05 --seed 3 --deterministic --virtual-shards 1 --device cpu --quiet)
mpirun -np 1 "$train" "${run[@]}" --lr 1e-12 --max-steps 1 --checkpoint-dir r0 > c.out 2>&1 \
  && mpirun -np 1 "$train" "${run[@]}" --lr 3e-3 --max-steps 20 --eval-every 5 --metrics r.jsonl > d.out 2>&1 \
  || { cat c.out d.out; t_fail "dlfs-train run"; t_done; }
if "$py" "$src/launch/torch-gpt.py" train r0/ckpt-000000001.h5 r.h5 --batch 4 --max-steps 20 --lr 3e-3 \
    --weight-decay 0.1 --beta2 0.95 --warmup 3 --lr-min 1e-4 --clip-grad 0.05 --seed 3 --eval-every 5 \
    --dlfs-metrics r.jsonl --tolerance 1e-4 > u.out 2>&1 && [ "$(grep -c '^ok: step' u.out)" = 4 ]; then
  t_pass "20 steps over 4 epochs: PyTorch's validation losses match: $(grep '^ok' u.out | tr '\n' ' ')"
else
  cat u.out; t_fail "PyTorch's run differs from dlfs's"
fi
t_done
