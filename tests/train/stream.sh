#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Streaming (--data-cache) end to end, on synthetic datasets that `dlfs-data synth`
# writes here:
#  - the same params_sha256 streamed (the train images read chunk by chunk through a
#    4 MiB cache) as in memory with the same windowed order (DLFS_DATA_RESIDENT=1),
#    in deterministic mode on 1, 2 and 4 ranks, over an epoch boundary; a run
#    without --data-cache (a full permutation) differs;
#  - resume at step 45 (mid-epoch, mid-window) on 2 ranks ends with the straight
#    run's digest: the stream restarts at the right place;
#  - bad input: a cache too small for the batch, a chunk damaged in mid-file;
#  - the memory bound: on 2 ranks over 64 MiB of images with --data-cache 8, each
#    rank's peak RSS (VmHWM, DLFS_REPORT_RSS) stays within 8 + 6 MiB of a run on a
#    1 MiB dataset (6 MiB: the labels, the epoch's order, HDF5's chunk cache and
#    decompression buffer), while the in-memory run of the same file takes 60 MiB more.
# The windowed shuffle and the cache themselves: tests/unit/test_stream.c.
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2
"$data" synth --size 8 --seed 3 -o "$T_TMP/s8.h5" > /dev/null || t_fail "synth 8 MiB"
common=(--data "$T_TMP/s8.h5" --model 784-32-10 --batch 128 --epochs 2 --max-steps 100 --seed 5 --deterministic
        --eval-batch 1000)
# run NAME NP ARGS...: metrics in NAME.jsonl, output in NAME.out
run() {
  local name=$1 np=$2; shift 2
  mpirun -np "$np" "$train" "${common[@]}" "$@" --metrics "$T_TMP/$name.jsonl" > "$T_TMP/$name.out" 2>&1 \
    || { cat "$T_TMP/$name.out"; t_fail "$name: run failed"; }
}
DLFS_DATA_RESIDENT=1 run mem 1 --data-cache 4
grep -q "^pipeline: .*in memory, windows of 2048 samples" "$T_TMP/mem.out" && t_pass "in memory: windows of 2048" \
  || t_fail "in-memory twin: banner $(grep '^pipeline' "$T_TMP/mem.out")"
want=$(t_digest "$T_TMP/mem.jsonl")
for np in 1 2 4; do
  run "st$np" "$np" --data-cache 4
  grep -q "^pipeline: .*streamed, windows of 2048 samples" "$T_TMP/st$np.out" \
    || t_fail "np=$np: not streamed: $(grep '^pipeline' "$T_TMP/st$np.out")"
  got=$(t_digest "$T_TMP/st$np.jsonl")
  [ -n "$want" ] && [ "$got" = "$want" ] && t_pass "np=$np streamed == in memory ($got)" \
    || t_fail "np=$np streamed digest '$got' != in memory '$want'"
done
run full 1
full=$(t_digest "$T_TMP/full.jsonl")
[ -n "$full" ] && [ "$full" != "$want" ] && t_pass "a full permutation gives another digest" \
  || t_fail "without --data-cache: digest '$full' (windowed '$want')"

run ck 2 --data-cache 4 --checkpoint-dir "$T_TMP/ck" --checkpoint-every 45
run res 2 --data-cache 4 --resume "$T_TMP/ck/ckpt-000000045.h5"
grep -q "^resume: .*ckpt-000000045.h5: step 45," "$T_TMP/res.out" || t_fail "the resumed run did not start at 45"
got=$(t_digest "$T_TMP/res.jsonl")
[ -n "$want" ] && [ "$got" = "$want" ] && t_pass "45 + resume + 55 streamed == straight ($got)" \
  || t_fail "resumed digest '$got' != straight '$want'"

# bad input: a cache too small for the batch (refused at set-up, naming the size it needs);
# a chunk damaged in the middle of the file (found by the reader in mid-run: one line)
t_expect_error "cache too small" 2 "give --data-cache 5 or more" \
  mpirun -np 2 "$train" "${common[@]}" --batch 2048 --data-cache 2
cp "$T_TMP/s8.h5" "$T_TMP/bad.h5"
printf '%032d' 7 | dd of="$T_TMP/bad.h5" bs=1 seek=$(($(stat -c %s "$T_TMP/bad.h5") / 2)) conv=notrunc 2>/dev/null
t_expect_error "damaged chunk, streamed" 1 "bad.h5: cannot read samples" \
  mpirun -np 2 "$train" "${common[@]/s8.h5/bad.h5}" --data-cache 4

# rss NAME FILE ARGS...: the larger peak RSS (VmHWM, KiB) of 2 ranks as training ends
# (DLFS_REPORT_RSS: read before the take-down, whose own allocations would blur it)
rss() {
  local name=$1 file=$2; shift 2
  DLFS_REPORT_RSS="$T_TMP/$name.rss" mpirun -np 2 "$train" --data "$file" --model 784-32-10 --batch 256 --epochs 1 \
    --max-steps 40 --eval-batch 1000 "$@" > "$T_TMP/$name.out" 2>&1 || { cat "$T_TMP/$name.out"; t_fail "$name: run failed"; }
  sort -n "$T_TMP/$name.rss.0" "$T_TMP/$name.rss.1" | tail -n 1
}
"$data" synth --size 1 -o "$T_TMP/s1.h5" > /dev/null && "$data" synth --size 64 -o "$T_TMP/s64.h5" > /dev/null \
  || t_fail "synth 1 and 64 MiB"
base=$(rss base "$T_TMP/s1.h5")
st=$(rss st "$T_TMP/s64.h5" --data-cache 8)
mem=$(DLFS_DATA_RESIDENT=1 rss mem64 "$T_TMP/s64.h5" --data-cache 8)
grep -q "^pipeline: .*streamed" "$T_TMP/st.out" || t_fail "64 MiB with --data-cache 8 not streamed"
echo "peak RSS per rank (KiB): 1 MiB dataset $base, 64 MiB streamed (8 MiB cache) $st, 64 MiB in memory $mem"
if ldd "$train" 2>/dev/null | grep -q libasan; then # its shadow memory and quarantine are in every RSS
  t_skip "the peak RSS bounds: AddressSanitizer's shadow memory and quarantine blur them (the runs above still ran)"
else
  t_within "streamed peak RSS - 1 MiB run's (KiB)" "$((st - base))" -4096 $(((8 + 6) * 1024))
  t_within "in-memory peak RSS - 1 MiB run's (KiB)" "$((mem - base))" $((60 * 1024)) $((200 * 1024))
fi

# Token files (dlfs-data text --chunk 16384: streamed chunks of 1092 windows of 16 ids; 1.1 MB of
# text, 1.13 MiB of windows through a 1 MiB cache: windows of 30 chunks, 32760 windows): the
# same digest streamed as in memory on 1, 2, 4 ranks over 12 steps (every batch draws from most
# of the 30 chunks of the first window, and reads ahead into the second), and resumed at step 6
# on 2 ranks. Window and epoch boundaries of a token file: test_stream (as for images, here).
awk 'BEGIN { srand(7); n = split("the cat sat on a mat and dog ran to it with red hat", w, " ")
             for (i = 0; i < 300000; i++) printf "%s ", w[int(rand() * n) + 1] }' > "$T_TMP/text.txt"
"$data" text "$T_TMP/text.txt" --chunk 16384 -o "$T_TMP/t.h5" > /dev/null || t_fail "dlfs-data text --chunk"
lm=(--model "in(16),embed(256,8),block(8,h1),lnorm,lmhead" --batch 512 --epochs 1 --seed 3 --deterministic
    --optim adamw --lr 3e-3 --eval-batch 512)
common=(--data "$T_TMP/t.h5" "${lm[@]}" --max-steps 12)
DLFS_DATA_RESIDENT=1 run tmem 1 --data-cache 1
grep -q "^pipeline: .*in memory, windows of 32760 samples" "$T_TMP/tmem.out" && t_pass "tokens in memory: windows of 32760" \
  || t_fail "tokens, in-memory twin: banner $(grep '^pipeline' "$T_TMP/tmem.out")"
want=$(t_digest "$T_TMP/tmem.jsonl")
for np in 1 2 4; do
  ck=()
  [ "$np" = 2 ] && ck=(--checkpoint-dir "$T_TMP/tck" --checkpoint-every 6)
  run "tst$np" "$np" --data-cache 1 "${ck[@]}"
  grep -q "^pipeline: .*streamed, windows of 32760 samples" "$T_TMP/tst$np.out" \
    || t_fail "tokens np=$np: not streamed: $(grep '^pipeline' "$T_TMP/tst$np.out")"
  got=$(t_digest "$T_TMP/tst$np.jsonl")
  [ -n "$want" ] && [ "$got" = "$want" ] && t_pass "tokens np=$np streamed == in memory ($got)" \
    || t_fail "tokens np=$np streamed digest '$got' != in memory '$want'"
done
run tres 2 --data-cache 1 --resume "$T_TMP/tck/ckpt-000000006.h5"
grep -q "^resume: .*ckpt-000000006.h5: step 6," "$T_TMP/tres.out" || t_fail "tokens: the resumed run did not start at 6"
got=$(t_digest "$T_TMP/tres.jsonl")
[ -n "$want" ] && [ "$got" = "$want" ] && t_pass "tokens: 6 + resume + 6 streamed == straight ($got)" \
  || t_fail "tokens: resumed digest '$got' != straight '$want'"

# the memory bound of a token file: 16 times the text (17.8 M tokens, 19 MiB of windows, 36 MiB
# of ids) streamed through 1 MiB takes at most 8 MiB more than the 1.1 MB file (the labels, the
# val windows); in memory, 20 MiB more or over (27 MiB measured)
for _ in $(seq 16); do cat "$T_TMP/text.txt"; done > "$T_TMP/big.txt"
"$data" text "$T_TMP/big.txt" --chunk 16384 --val-percent 1 -o "$T_TMP/tb.h5" > /dev/null \
  || t_fail "dlfs-data text big.txt" # (1 %: the final evaluation stays short)
trss() { # NAME FILE ARGS...: the larger peak RSS (KiB) of 2 ranks
  local name=$1 file=$2; shift 2
  DLFS_REPORT_RSS="$T_TMP/$name.rss" mpirun -np 2 "$train" --data "$file" "${lm[@]}" --max-steps 3 "$@" \
    > "$T_TMP/$name.out" 2>&1 || { cat "$T_TMP/$name.out"; t_fail "$name: run failed"; }
  sort -n "$T_TMP/$name.rss.0" "$T_TMP/$name.rss.1" | tail -n 1
}
base=$(trss tbase "$T_TMP/t.h5" --data-cache 1)
st=$(trss tbig "$T_TMP/tb.h5" --data-cache 1)
mem=$(DLFS_DATA_RESIDENT=1 trss tbigmem "$T_TMP/tb.h5" --data-cache 1)
grep -q "^pipeline: .*streamed" "$T_TMP/tbig.out" || t_fail "tokens: 19 MiB of windows with --data-cache 1 not streamed"
echo "token files, peak RSS per rank (KiB): 1.1 MB text $base, 17.8 MB streamed $st, 17.8 MB in memory $mem"
if ldd "$train" 2>/dev/null | grep -q libasan; then
  t_skip "the token peak RSS bounds: AddressSanitizer's shadow memory and quarantine blur them"
else
  t_within "tokens: streamed peak RSS - 1.1 MB run's (KiB)" "$((st - base))" -4096 $((8 * 1024))
  t_within "tokens: in-memory peak RSS - 1.1 MB run's (KiB)" "$((mem - base))" $((20 * 1024)) $((200 * 1024))
fi
t_done
