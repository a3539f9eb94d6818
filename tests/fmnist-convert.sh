#!/usr/bin/env bash
# Fixture: convert Debian's Fashion-MNIST into the build tree once (skip = 77 when
# absent): OUT, the whole dataset, and OUT-small.h5 (t_small in lib.sh), its first
# 12800 train and 2000 test images, for the tests that check bits, messages and
# files rather than how far a model learns: a process loads it and evaluates its
# test split 5 times faster.
set -eu
data=$1 dir=$2 out=$3
small=${out%.h5}-small.h5
if [ ! -f "$dir/train-images-idx3-ubyte.gz" ] && [ ! -f "$dir/train-images-idx3-ubyte" ]; then
  echo "Fashion-MNIST not found in $dir (apt-get install dataset-fashion-mnist): skipped"
  exit 77
fi
if [ -f "$out" ] && "$data" info "$out" >/dev/null 2>&1; then
  echo "$out is up to date"
else
  "$data" convert --fashion-mnist "$dir" --force -o "$out"
fi
if [ -f "$small" ] && "$data" info "$small" >/dev/null 2>&1; then
  echo "$small is up to date"
else
  "$data" convert --fashion-mnist "$dir" --train-limit 12800 --test-limit 2000 --force -o "$small"
fi
