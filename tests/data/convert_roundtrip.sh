#!/usr/bin/env bash
# Round trip: synthetic IDX files -> dlfs-data convert -> load (data_testgen
# compare) must give identical bytes, shapes and classes; the file must show the
# documented names to h5ls/h5dump; `dlfs-data info` must run.
# usage: convert_roundtrip.sh DLFS_DATA DATA_TESTGEN WORKDIR [H5LS] [H5DUMP]
set -u
DATA=$1 GEN=$2 WORK=$3 H5LS=${4:-} H5DUMP=${5:-}
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK" || fail "cannot make $WORK"
cd "$WORK" || exit 1
"$GEN" gen . || fail "generator failed"

# Gray set, explicit files and class names.
CLASSES=(c0 c1 c2 "class three" c4 c5 c6 c7 c8 "c9/last")
"$DATA" convert --train-images train-images-idx3-ubyte --train-labels train-labels-idx1-ubyte.gz \
    --test-images t10k-images-idx3-ubyte.gz --test-labels t10k-labels-idx1-ubyte \
    --classes "c0,c1,c2, class three ,c4,c5,c6,c7,c8,c9/last" --source "synthetic" \
    --license "CC0" -o gray.h5 || fail "convert gray"
[ -e gray.h5.tmp ] && fail "gray.h5.tmp left behind"
"$GEN" compare gray.h5 train-images-idx3-ubyte train-labels-idx1-ubyte.gz \
    t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte "${CLASSES[@]}" || fail "gray differs"

# RGB set, 4-D [N,3,4,6], no class names: classes "0".."4" from max label + 1.
"$DATA" convert --train-images rgb-train-images.idx --train-labels rgb-train-labels.idx \
    --test-images rgb-test-images.idx --test-labels rgb-test-labels.idx -o rgb.h5 \
    || fail "convert rgb"
"$GEN" compare rgb.h5 rgb-train-images.idx rgb-train-labels.idx rgb-test-images.idx \
    rgb-test-labels.idx 0 1 2 3 4 || fail "rgb differs"

# --fashion-mnist DIR shortcut on the synthetic files (same names): same bytes,
# Fashion-MNIST class names; converting again with --force replaces the file.
"$DATA" convert --fashion-mnist . -o fm.h5 >/dev/null || fail "convert --fashion-mnist (1)"
"$DATA" convert --fashion-mnist . --force -o fm.h5 >/dev/null || fail "convert --fashion-mnist --force (2)"
"$GEN" compare fm.h5 train-images-idx3-ubyte train-labels-idx1-ubyte.gz \
    t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte "T-shirt/top" Trouser Pullover Dress \
    Coat Sandal Shirt Sneaker Bag "Ankle boot" || fail "fm differs"

# info: runs, and shows what it should.
"$DATA" info rgb.h5 > info.txt || fail "info rgb.h5"
cat info.txt
grep -q '^images: *3 x 4 x 6' info.txt || fail "info: image shape"
grep -q '^train: *30 samples' info.txt || fail "info: train count"
grep -q '^classes: *5' info.txt || fail "info: class count"
"$DATA" info fm.h5 | grep -q 'Ankle boot' || fail "info fm.h5: class names"
"$DATA" info fm.h5 | grep -q '^source: *Fashion-MNIST' || fail "info fm.h5: source"

# The documented layout, as other tools see it.
if [ -n "$H5LS" ] && [ -x "$H5LS" ] && [ -n "$H5DUMP" ] && [ -x "$H5DUMP" ]; then
    ls_out=$("$H5LS" -r gray.h5) || fail "h5ls failed"
    for obj in "/train/images *Dataset {60, 1, 7, 5}" "/train/labels *Dataset {60}" \
               "/test/images *Dataset {20, 1, 7, 5}" "/test/labels *Dataset {20}"; do
        grep -q "^$obj" <<<"$ls_out" || fail "h5ls -r: no '$obj' in: $ls_out"
    done
    attrs=$("$H5DUMP" -A gray.h5) || fail "h5dump -A failed"
    for a in format format_version classes source license mean std; do
        grep -q "ATTRIBUTE \"$a\"" <<<"$attrs" || fail "h5dump -A: no attribute $a"
    done
    grep -q '"dlfs-dataset"' <<<"$attrs" || fail "h5dump -A: format value"
    grep -q '"class three"' <<<"$attrs" || fail "h5dump -A: class names"
    props=$("$H5DUMP" -p -H -d /train/images gray.h5) || fail "h5dump -p failed"
    grep -q 'H5T_STD_U8LE' <<<"$props" || fail "images are not uint8"
    grep -q 'CHUNKED' <<<"$props" || fail "images are not chunked"
    grep -q 'DEFLATE { LEVEL 4 }' <<<"$props" || echo "note: no gzip filter in this HDF5"
else
    echo "note: h5ls/h5dump not found, layout check skipped"
fi
echo "PASSED"
