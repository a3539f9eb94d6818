#!/usr/bin/env bash
# Real data: convert the Fashion-MNIST IDX files and check sizes, classes and the
# well-known train statistics (mean 0.2860, std 0.3530 on the 0..1 scale).
# Exits 77 (ctest SKIP_RETURN_CODE) when the files are not installed.
# usage: fashion_mnist.sh DLFS_DATA FMNIST_DIR WORKDIR
set -u
DATA=$1 SRC=$2 WORK=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ ! -d "$SRC" ]; then
    echo "SKIPPED: $SRC not found (install the Fashion-MNIST IDX files there)"
    exit 77
fi
rm -rf "$WORK" && mkdir -p "$WORK" || fail "cannot make $WORK"
out=$WORK/fashion-mnist.h5
"$DATA" convert --fashion-mnist "$SRC" -o "$out" || fail "convert"
"$DATA" info "$out" > "$WORK/info.txt" || fail "info"
cat "$WORK/info.txt"
field() { awk -v k="$1:" '$1 == k { print $2; exit }' "$WORK/info.txt"; }
[ "$(field train)" = 60000 ] || fail "train samples: $(field train)"
[ "$(field test)" = 10000 ] || fail "test samples: $(field test)"
[ "$(field classes)" = 10 ] || fail "classes: $(field classes)"
grep -q '^images: *1 x 28 x 28 ' "$WORK/info.txt" || fail "image shape"
grep -q 'Ankle boot' "$WORK/info.txt" || fail "class names"
# Fashion-MNIST is balanced: 6000 train and 1000 test images per class.
n=$(awk '$1 ~ /^[0-9]+$/ && $(NF-1) == 6000 && $NF == 1000' "$WORK/info.txt" | wc -l)
[ "$n" -eq 10 ] || fail "per-class counts: $n of 10 classes have 6000/1000"
awk -v m="$(field mean)" -v s="$(field std)" 'BEGIN {
    if (m - 0.2860 > 0.0005 || 0.2860 - m > 0.0005) { print "FAIL: mean " m > "/dev/stderr"; exit 1 }
    if (s - 0.3530 > 0.0005 || 0.3530 - s > 0.0005) { print "FAIL: std " s > "/dev/stderr"; exit 1 }
}' || exit 1
echo "PASSED"
