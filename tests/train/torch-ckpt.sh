#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# dlfs against PyTorch, an independent implementation (launch/torch-ckpt.py rebuilds a
# checkpoint's model with torch.nn and loads its tensors): on a slice of Fashion-MNIST
# (64 training images: the whole split is one batch, so the order of the rows does not
# matter; 500 test images), one SGD step (fp32, momentum 0, batch norm over the batch)
# of `resnet20` and of a small ResNet with a padded max pool and a bottleneck gives the
# parameters of PyTorch's float64 step within 5 % of the step (or 4x PyTorch fp32's own
# error), the same running statistics and the same test accuracy (within one image in
# 500): the tolerances are launch/torch-ckpt.py's. About 60 s at load 20 (torch's start). Skipped (77) without a Python that
# imports torch, numpy and h5py: DLFS_TORCH_PYTHON, else the configured Python.
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2 src=$(cd "$(dirname "$0")/../.." && pwd)
fmdir=${DLFS_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
py=""
for p in "${DLFS_TORCH_PYTHON:-}" "$T_PY"; do
  [ -n "$p" ] && "$p" -c 'import torch, numpy, h5py' >/dev/null 2>&1 && { py=$p; break; }
done
[ -n "$py" ] || { echo "skipped: no Python with torch, numpy and h5py (pip install torch numpy h5py in a venv, then DLFS_TORCH_PYTHON=venv/bin/python)"; exit 77; }
[ -f "$fmdir/train-images-idx3-ubyte.gz" ] || { echo "skipped: no Fashion-MNIST IDX files in $fmdir"; exit 77; }
cd "$T_TMP" || exit 1
"$data" convert --fashion-mnist "$fmdir" --train-limit 64 --test-limit 500 -o s.h5 > conv.out 2>&1 \
  || { cat conv.out; t_fail "dlfs-data convert"; t_done; }
lr=0.1
for model in resnet20 "in(1x28x28),conv(8,k3,s2,p1,b0),batchnorm,relu,maxpool(3,s2,p1),res(8),bottleneck(4,s2),gap,dense(10)"; do
  name=${model%%(*}
  common=(--data s.h5 --model "$model" --batch 64 --epochs 1 --max-steps 1 --optim sgd --momentum 0 --seed 3
          --virtual-shards 1 --device cpu --quiet)  # batch norm over the whole batch, as PyTorch
  # the parameters before the step: a step of lr 1e-12 leaves them as they were
  "$train" "${common[@]}" --lr 1e-12 --checkpoint-dir c0-"$name" > a.out 2>&1 \
    && "$train" "${common[@]}" --lr $lr --checkpoint-dir c1-"$name" --metrics m-"$name".jsonl > b.out 2>&1 \
    || { cat a.out b.out; t_fail "$name: dlfs-train"; continue; }
  acc=$(t_acc m-"$name".jsonl)
  [ -n "$acc" ] || { t_fail "$name: no test accuracy in the metrics"; continue; }
  if "$py" "$src/launch/torch-ckpt.py" step c0-"$name"/ckpt-000000001.h5 c1-"$name"/ckpt-000000001.h5 s.h5 \
      --lr $lr --dlfs-acc "$acc" > t.out 2>&1; then
    t_pass "$name: PyTorch's step and accuracy agree: $(tr '\n' ' ' < t.out)"
  else
    cat t.out; t_fail "$name: PyTorch disagrees"
  fi
done
t_done
