#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Hostile inputs to the data path: IDX files (dlfs-data convert), dataset files
# (dlfs-data info, dlfs-train --data on 1 and 2 ranks). Each case: exit != 0 on
# every rank within its bound, one line naming the file and what to do, and
# every file that existed before byte-identical (tests/lib.sh: h_check).
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2 fm=$3 mk=$4 gen=$5
H_WATCH+=("$fm")
cd "$T_TMP" || exit 1
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }

# good IDX inputs (tests/data/data_testgen.c: 60 + 20 images of 7x5) to combine with one hostile file
"$gen" gen . >/dev/null || { t_fail "making IDX files"; t_done; }
cp train-images-idx3-ubyte imgs.idx
conv() { # conv SLOT FILE: the convert arguments with one input replaced, into C
  local f=(imgs.idx train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte); f[$1]=$2
  C=(convert --train-images "${f[0]}" --train-labels "${f[1]}" --test-images "${f[2]}" --test-labels "${f[3]}")
}
conv 0 imgs.idx
"$data" "${C[@]}" -o ok.h5 >/dev/null || t_fail "the good IDX set does not convert"
rm -f ok.h5

# class 1: sizes. The header declares 2^31 bytes, ~2 MB of gzip holds 100 MB of
# zeros: refused as truncated, memory bounded by what was inflated.
"$mk" idx big.gz 8192 512 512 104857600
conv 0 big.gz
h_expect "IDX declaring 2^31 bytes, holding 100 MB" 1 "big.gz is truncated: expected 2147483648 bytes" 60 \
  "$data" "${C[@]}" -o out.h5
"$mk" idx wide.gz 2 32768 32768 16
conv 0 wide.gz
h_expect "IDX items of 2^30 values" 1 "wide.gz: the IDX header declares items of more than 1048576 values" 20 \
  "$data" "${C[@]}" -o out.h5
# class 8: a gzip member without its trailer (CRC, length)
"$mk" idx notrailer.gz 60000 28 28 47040000 && truncate -s -8 notrailer.gz
conv 0 notrailer.gz
h_expect "gzip without its trailer" 1 "notrailer.gz is truncated: the gzip stream ends early" 20 \
  "$data" "${C[@]}" -o out.h5
cp t10k-images-idx3-ubyte.gz junk.gz && printf 'junk' >> junk.gz
conv 2 junk.gz
h_expect "gzip with trailing junk" 1 "junk.gz has trailing data after its gzip stream" 20 "$data" "${C[@]}" -o out.h5
# class 4: constant images (std 0)
conv 0 const-images.idx
h_expect "constant images" 1 "const-images.idx: channel 0 of the train images is (nearly) constant" 20 \
  "$data" "${C[@]}" -o out.h5
# class 6: -o over an input, through links and other spellings
ln -s imgs.idx sym.h5 && ln imgs.idx hard.h5
for o in imgs.idx ./imgs.idx sym.h5 hard.h5 "$T_TMP/imgs.idx"; do
  conv 0 imgs.idx
  h_expect "convert -o $o (an input)" 2 "is the same file as --train-images" 20 "$data" "${C[@]}" -o "$o"
done
# ... but a link to a file that is no input is replaced, never written through
ln -s "$fm" link-to-fm.h5
conv 0 imgs.idx
if "$data" "${C[@]}" --force -o link-to-fm.h5 >/dev/null 2>&1 && [ ! -L link-to-fm.h5 ]; then
  t_pass "convert -o LINK replaces the link, not its target"
else t_fail "convert -o LINK"; fi
# class 7: a FIFO as an IDX input and as a dataset (must not wait for a writer)
mkfifo fifo
conv 1 fifo
h_expect "FIFO as an IDX input" 1 "cannot read IDX file fifo: it is a FIFO (named pipe)" 10 "$data" "${C[@]}" -o out.h5
h_expect "FIFO to dlfs-data info" 1 "cannot read dataset fifo: it is a FIFO (named pipe)" 10 "$data" info fifo
h_train "FIFO as --data" 1 "cannot read dataset fifo: it is a FIFO" 30 "$train" --data fifo --max-steps 1 --quiet
h_expect "a directory to dlfs-data info" 1 "it is a directory" 10 "$data" info "$T_TMP"

# datasets that declare more than they hold, or more than dlfs reads
"$mk" dataset small.h5 || { t_fail "making a dataset"; t_done; }
cp small.h5 wide.h5 && "$mk" ds-declare wide.h5 1 1 65536 32768
h_expect "dataset [1,1,65536,32768] in $(stat -c %s wide.h5) bytes (info)" 1 "wide.h5: /train/images declares images of [1, 65536, 32768]" 20 "$data" info wide.h5
h_train "dataset [1,1,65536,32768]" 1 "dlfs takes images of at most 1048576 values" 30 "$train" --data wide.h5 --max-steps 1 --quiet
cp small.h5 many.h5 && "$mk" ds-declare many.h5 3000000000 1 28 28
h_expect "dataset declaring 3e9 images (info)" 1 "many.h5: /train/images declares 3000000000 images" 20 "$data" info many.h5
h_train "dataset declaring 3e9 images" 1 "dlfs reads at most 2147483647 images" 30 "$train" --data many.h5 --max-steps 1 --quiet
cp small.h5 hollow.h5 && "$mk" ds-declare hollow.h5 200 1 28 28
h_train "dataset declaring images it does not store" 1 "hollow.h5: /train/images declares 156800 bytes but the file holds only 0" 30 \
  "$train" --data hollow.h5 --max-steps 1 --quiet
# class 4: normalisation that divides by ~0 or overflows float
cp small.h5 std0.h5 && "$mk" ds-attr std0.h5 std 0
h_expect "std 0 (info)" 1 "std0.h5: channel 0 of the train images is (nearly) constant" 20 "$data" info std0.h5
h_train "std 0" 1 "std0.h5: channel 0 of the train images is (nearly) constant" 30 "$train" --data std0.h5 --max-steps 1 --quiet
cp small.h5 mean.h5 && "$mk" ds-attr mean.h5 mean 1e300
h_train "mean 1e300" 1 "mean.h5: channel 0 has mean 1e+300" 30 "$train" --data mean.h5 --max-steps 1 --quiet
cp small.h5 std-tiny.h5 && "$mk" ds-attr std-tiny.h5 std 1e-42
h_expect "std 1e-42 (info)" 1 "std-tiny.h5: channel 0 of the train images is (nearly) constant" 20 "$data" info std-tiny.h5
# class 9: a damaged superblock (bytes 104-111 of fmnist.h5 made HDF5 print at exit before)
cp "$fm" sb.h5 && printf '\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of=sb.h5 bs=1 seek=104 conv=notrunc status=none
h_expect "damaged superblock (info)" 1 "sb.h5 cannot be opened as HDF5" 20 "$data" info sb.h5
h_train "damaged superblock" 1 "sb.h5 cannot be opened as HDF5" 30 "$train" --data sb.h5 --max-steps 1 --quiet
# a message longer than the buffer keeps its end (what to do)
long="$T_TMP/$(printf 'd%.0s' {1..200})"; for _ in $(seq 20); do long="$long/$(printf 'e%.0s' {1..200})"; done
h_expect "a 4000-character path" 1 "File name too long" 20 "$data" info "$long/x.h5"
grep -q ' \[\.\.\.\] ' "$H_OUT/err" && t_pass "the long message lost its middle, not its end" || t_fail "long message"
t_done
