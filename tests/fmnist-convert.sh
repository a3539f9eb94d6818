#!/usr/bin/env bash
# Fixture: convert Debian's Fashion-MNIST into the build tree once (skip = 77 when absent).
set -eu
data=$1 dir=$2 out=$3
if [ ! -f "$dir/train-images-idx3-ubyte.gz" ] && [ ! -f "$dir/train-images-idx3-ubyte" ]; then
  echo "Fashion-MNIST not found in $dir (apt-get install dataset-fashion-mnist): skipped"
  exit 77
fi
if [ -f "$out" ] && "$data" info "$out" >/dev/null 2>&1; then
  echo "$out is up to date"; exit 0
fi
"$data" convert --fashion-mnist "$dir" -o "$out"
