#!/usr/bin/env bash
# Bad input through the dlfs-data program (ctest data_bad_input): each case must exit with
# the given status, print exactly one line "dlfs-data: ..." on stderr that names the file,
# change no file that was there, end within 30 s (tests/lib.sh: h_check), and leave no
# output file.
# usage: data-cli.sh DLFS_TRAIN DLFS_DATA FMNIST DATA_TESTGEN (dlfs_sh_test's arguments)
. "$(dirname "$0")/../lib.sh"
DATA=$2 GEN=$4
cd "$T_TMP" || exit 1
"$GEN" gen . >/dev/null || { t_fail "generator failed"; t_done; }

# expect RC PHRASE -- ARGS... : dlfs-data ARGS refused as h_check says, no output file left
expect() {
    local want=$1 phrase=$2
    shift 3
    rm -f out.h5 out.h5.tmp
    h_expect "dlfs-data $*" "$want" "$phrase" 30 "$DATA" "$@"
    if [ -e out.h5 ] || [ -e out.h5.tmp ]; then t_fail "dlfs-data $*: output file left behind"; fi
}

# convert with the four gray files, one of them replaced: convert_with SLOT FILE
convert_with() {
    local f=(train-images-idx3-ubyte train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
             t10k-labels-idx1-ubyte)
    f[$1]=$2
    shift 2
    echo convert --train-images "${f[0]}" --train-labels "${f[1]}" --test-images "${f[2]}" \
        --test-labels "${f[3]}" "$@" -o out.h5
}
TEN=--classes=a,b,c,d,e,f,g,h,i,j

# Sanity: the unbroken set converts (so the failures below are about the bad file).
"$DATA" $(convert_with 0 train-images-idx3-ubyte $TEN) >/dev/null || { t_fail "the good set does not convert"; t_done; }
rm -f out.h5

expect 1 "missing.idx"             -- $(convert_with 0 missing.idx)
expect 1 "No such file"            -- $(convert_with 3 missing-labels.gz)
expect 1 "not-idx.txt is not an IDX file" -- $(convert_with 2 not-idx.txt)
expect 1 "cut-images.gz is truncated" -- $(convert_with 0 cut-images.gz)
expect 1 "unsupported IDX element type 0x0d in float-images.idx" -- $(convert_with 0 float-images.idx)
expect 1 "short-labels.idx has 59 labels" -- $(convert_with 1 short-labels.idx)
expect 1 "label12.idx: label 12 at index 37 is outside the 10 classes" -- $(convert_with 1 label12.idx $TEN)
expect 1 "label12.idx: label 12 at index 37 is outside the 10 classes" -- $(convert_with 1 label12.idx --preset=mnist)
# the exact boundary: 12 named classes refuse label 12, 13 take it (12 = K - 1)
expect 1 "label12.idx: label 12 at index 37 is outside the 12 classes" -- \
    $(convert_with 1 label12.idx --classes=a,b,c,d,e,f,g,h,i,j,k,l)
"$DATA" $(convert_with 1 label12.idx --classes=a,b,c,d,e,f,g,h,i,j,k,l,m) >/dev/null \
    && t_pass "label 12 with 13 named classes converts" \
    || t_fail "label 12 with 13 named classes refused"
rm -f out.h5
expect 1 "train-labels-idx1-ubyte.gz has 1 dimensions" -- $(convert_with 0 train-labels-idx1-ubyte.gz)
expect 1 "has 1x7x5 images but rgb-test-images.idx has 3x4x6" -- convert \
    --train-images train-images-idx3-ubyte --train-labels train-labels-idx1-ubyte.gz \
    --test-images rgb-test-images.idx --test-labels rgb-test-labels.idx -o out.h5
expect 1 "no-such-dir/out.h5.tmp"  -- convert --fashion-mnist . -o no-such-dir/out.h5
expect 1 "nowhere"                 -- convert --fashion-mnist nowhere -o out.h5
expect 1 "not-dlfs.h5 is not a dlfs dataset (no 'format' attribute = dlfs-dataset)" -- info not-dlfs.h5
expect 1 "not-idx.txt is not an HDF5 file" -- info not-idx.txt
expect 1 "missing.h5: No such file" -- info missing.h5
expect 1 "const-images.idx: channel 0 of the train images is (nearly) constant" -- $(convert_with 0 const-images.idx)
mkfifo fifo.h5 && expect 1 "fifo.h5: it is a FIFO (named pipe)" -- info fifo.h5
expect 1 "fifo.h5: it is a FIFO (named pipe)" -- $(convert_with 2 fifo.h5)

# -o naming one of the inputs (itself, a symbolic link to it, a hard link to it, or
# another spelling of its path): refused before anything is written, input intact.
in_sum=$(sha256sum train-images-idx3-ubyte | cut -d' ' -f1)
ln -sf train-images-idx3-ubyte link-to-input.h5 && ln -f train-images-idx3-ubyte hard-link.h5
for o in train-images-idx3-ubyte ./train-images-idx3-ubyte link-to-input.h5 hard-link.h5; do
    rm -f out.h5
    "$DATA" $(convert_with 0 train-images-idx3-ubyte) -o "$o" >stdout.txt 2>stderr.txt
    rc=$?
    if [ "$rc" -ne 2 ] || [ "$(wc -l <stderr.txt)" -ne 1 ] || ! grep -qF "is the same file as --train-images" stderr.txt \
        || [ "$(sha256sum train-images-idx3-ubyte | cut -d' ' -f1)" != "$in_sum" ]; then
        t_fail "convert -o $o (an input): exit $rc, or the input changed"
        sed 's/^/    stderr: /' stderr.txt >&2
    else
        t_pass "$(cat stderr.txt)"
    fi
done

# -o naming a file that exists (a dataset converted earlier): refused without --force, the
# file intact; with --force replaced by the new dataset.
rm -f out.h5
"$DATA" $(convert_with 0 train-images-idx3-ubyte $TEN) >/dev/null 2>&1 && cp out.h5 before.h5 && echo keep > other.h5
"$DATA" $(convert_with 0 train-images-idx3-ubyte) -o other.h5 >stdout.txt 2>stderr.txt
rc=$?
if [ "$rc" -ne 2 ] || [ "$(wc -l <stderr.txt)" -ne 1 ] \
    || ! grep -qF "dlfs-data: -o other.h5 exists: give --force to replace it, or another -o" stderr.txt \
    || [ "$(cat other.h5)" != keep ] || [ -e other.h5.tmp ]; then
    echo "FAIL: convert -o EXISTING without --force: exit $rc, or the file changed" >&2
    sed 's/^/    stderr: /' stderr.txt >&2
    nfail=$((nfail + 1))
else
    echo "ok   $(cat stderr.txt)"
fi
if "$DATA" $(convert_with 0 train-images-idx3-ubyte $TEN) --force -o other.h5 >/dev/null 2>&1 \
    && "$DATA" info other.h5 >info-other.txt 2>&1 && "$DATA" info before.h5 >info-before.txt 2>&1 \
    && diff -q <(sed 1d info-other.txt) <(sed 1d info-before.txt) >/dev/null; then
    echo "ok   --force replaces it (dlfs-data info: the same dataset as a fresh convert)"
else
    echo "FAIL: convert --force -o EXISTING" >&2
    nfail=$((nfail + 1))
fi

# Usage errors: status 2, one line.
expect 2 "unknown subcommand 'frobnicate'" -- frobnicate
expect 2 "missing subcommand"      --
expect 2 "unknown option '--bogus'" -- convert --bogus -o out.h5
expect 2 "needs -o"                -- convert --fashion-mnist .
expect 2 "needs --test-labels"     -- convert --train-images a --train-labels b --test-images c -o out.h5
expect 2 "option '-o' needs a value" -- convert --fashion-mnist . -o
expect 2 "unknown --preset 'cifar'" -- convert --fashion-mnist . --preset cifar -o out.h5
expect 2 "not both"                -- convert --fashion-mnist . --train-images x -o out.h5
expect 2 "class name 1 is empty"   -- convert --fashion-mnist . --classes "a,,c" -o out.h5
expect 2 "info takes exactly one"  -- info
expect 2 "info takes exactly one"  -- info a.h5 b.h5

# --help: usage on stdout, status 0, nothing on stderr.
"$DATA" --help >stdout.txt 2>stderr.txt && grep -q 'dlfs-data convert' stdout.txt && [ ! -s stderr.txt ] \
    && t_pass "--help" || t_fail "--help"
"$DATA" convert -h >stdout.txt 2>stderr.txt && grep -q -- '--fashion-mnist' stdout.txt \
    && t_pass "convert -h" || t_fail "convert -h"
t_done
