#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# A language model end to end on a tiny text written here (random words of a small
# vocabulary; seconds):
#  - learning: after 3 epochs the validation loss (nats per byte) is below the byte
#    unigram entropy of the validation text, worked out here by awk from the raw bytes —
#    a model that learned nothing of the order of bytes cannot beat it — and below
#    ln 256 (where it starts);
#  - deterministic mode with --clip-grad: the same params_sha256 on 1, 2 and 4 ranks,
#    also with --accum-steps 2 and with --zero 1, and across a resume from 1 to 2 ranks;
#  - AdamW's weight decay touches the block's matrices only (counts worked out by hand);
#  - --clip-grad against its definition: one plain SGD step with lr 0.1 and clip 1e-3
#    moves the parameters by exactly lr x clip in L2 norm (awk on the checkpoints);
#  - generation (--eval --sample): the same text for the same seed on 1 and 2 ranks,
#    another text for another seed, N tokens; greedy (--top-k 1) text of the trained
#    model is made of the text's own bytes (lower-case letters and blanks);
#  - --bench of a language model with a vocabulary under 256 (synthetic ids below it) and
#    of one of 300 (uint16 ids);
#  - token ids above 255: a uint16 file of vocabulary 300 (written by h5py) trains, and
#    numpy's forward pass of the checkpoint on the file's validation windows gives the
#    trainer's test loss and accuracy;
#  - --eval-batch's default for a language model keeps gpt-tiny's evaluation under 1 GiB;
#  - refusals: a token file with an image model, an image dataset with gpt-tiny, --sample
#    without --eval.
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2 fm=$(t_small "$3")
cd "$T_TMP" || exit 1
words=(the cat sat on a mat and dog ran to it with red hat)
RANDOM=7
for ((i = 0; i < 5000; i++)); do printf '%s ' "${words[RANDOM % ${#words[@]}]}"; done > text.txt
"$data" text text.txt -o t.h5 > conv.out 2>&1 || { cat conv.out; t_fail "dlfs-data text"; t_done; }
model="in(33),embed(256,32),block(32,h2),lnorm,lmhead"
mpirun -np 1 "$train" --data t.h5 --model "$model" --epochs 3 --batch 16 --optim adamw --lr 3e-3 --seed 2 \
  --metrics learn.jsonl --checkpoint-dir ck > learn.out 2>&1 || { cat learn.out; t_fail "training failed"; t_done; }
loss=$(sed -n 's/.*"event": "final".*"test_loss": \([0-9.]*\).*/\1/p' learn.jsonl | tail -n 1)
# the byte unigram entropy (nats) of the last ceil(5 %) of the text: the validation split
ent=$(tail -c "$(( ($(wc -c < text.txt) * 5 + 99) / 100 ))" text.txt | od -An -v -tu1 | tr -s ' ' '\n' | grep -v '^$' |
  awk '{c[$1]++; n++} END {for (k in c) h -= c[k] / n * log(c[k] / n); printf "%.4f", h}')
[ -n "$loss" ] && [ -n "$ent" ] && awk -v l="$loss" -v e="$ent" 'BEGIN {exit !(l < e && l < log(256))}' \
  && t_pass "validation loss $loss nats/byte < unigram entropy $ent" \
  || t_fail "validation loss '$loss' not below the unigram entropy '$ent'"
det=(--data t.h5 --model "$model" --epochs 1 --max-steps 6 --batch 16 --optim adamw --lr 3e-3 --seed 4 --quiet
     --deterministic --virtual-shards 8 --clip-grad 0.5)
ref=""
for run in "1" "2" "4" "2 --accum-steps 2" "2 --zero 1" "4 --zero 1 --accum-steps 2"; do
  read -r np extra <<<"$run"
  # shellcheck disable=SC2086 # extra: options split on purpose
  mpirun -np "$np" "$train" "${det[@]}" $extra --metrics "d.jsonl" > d.out 2>&1 || { cat d.out; t_fail "np $run"; continue; }
  d=$(t_digest d.jsonl)
  if [ -z "$ref" ]; then ref=$d; [ -n "$d" ] && t_pass "reference digest ${d:0:16} (1 rank)" || t_fail "no digest"
  elif [ "$d" = "$ref" ]; then t_pass "np $run: same digest"
  else t_fail "np $run: digest ${d:0:16} != ${ref:0:16}"; fi
done
gen() { # NP SEED [TOP-K]: the sample's text line
  mpirun -np "$1" "$train" --data t.h5 --model "$model" --eval --resume latest --checkpoint-dir ck --eval-batch 64 \
    --sample 80 --prompt "the " --seed "$2" ${3:+--top-k "$3"} 2>&1 | sed -n '/^sample:/{n;p;}'
}
a=$(gen 1 5) b=$(gen 2 5) c=$(gen 1 6) g=$(gen 1 5 1)
[ ${#a} -ge 84 ] && [ "$a" = "$b" ] && t_pass "sample: the same text on 1 and 2 ranks: ${a:0:40}..." \
  || t_fail "samples differ or are short: '$a' / '$b'"
[ "$a" != "$c" ] && t_pass "another seed, another text" || t_fail "seed 6 gave the same text as seed 5"
[ ${#g} -eq 84 ] && [ -z "$(tr -d 'a-z ' <<<"$g")" ] && t_pass "greedy text of the corpus' bytes: $g" \
  || t_fail "greedy sample '$g' is not 84 bytes of letters and blanks"
# clipping's oracle: || p(step 1) - p(init) || = lr * clip when the gradient is clipped
one=(--data t.h5 --model "$model" --epochs 1 --max-steps 1 --batch 16 --optim sgd --seed 4 --quiet)
mpirun -np 1 "$train" "${one[@]}" --lr 1e-12 --checkpoint-dir c0 > c.out 2>&1 \
  && mpirun -np 2 "$train" "${one[@]}" --lr 0.1 --clip-grad 1e-3 --checkpoint-dir c1 --zero 1 >> c.out 2>&1 \
  || { cat c.out; t_fail "clip runs failed"; }
if command -v h5dump >/dev/null; then
  t_params c0/ckpt-000000001.h5 > p0; t_params c1/ckpt-000000001.h5 > p1
  step=$(paste p0 p1 | awk 'NF == 2 { d = $2 - $1; s += d * d; n++ } END { if (n) printf "%.6e", sqrt(s) }')
  awk -v s="$step" 'BEGIN { exit !(s != "" && s > 0.99e-4 && s < 1.01e-4) }' \
    && t_pass "one clipped SGD step moves the parameters by $step = 0.1 x 1e-3 (2 ranks, ZeRO-1)" \
    || t_fail "clipped step moved the parameters by '$step', want 1e-4"
else
  t_skip "clip oracle: no h5dump"
fi
# weight decay on the matrices only: one AdamW step with and without --weight-decay differs in
# exactly the 12 C^2 = 12288 matrix entries of the block; the 9216 + 416 + 64 = 9696 others
# (embedding tables; the block's norms and biases, 13 C; the final norm, 2 C) are the same
wd=(--data t.h5 --model "$model" --epochs 1 --max-steps 1 --batch 16 --optim adamw --lr 0.01 --seed 4 --quiet)
if mpirun -np 2 "$train" "${wd[@]}" --zero 1 --checkpoint-dir w0 > w.out 2>&1 &&
   mpirun -np 2 "$train" "${wd[@]}" --weight-decay 0.5 --zero 1 --checkpoint-dir w1 >> w.out 2>&1 &&
   command -v h5dump >/dev/null; then
  t_params w0/ckpt-000000001.h5 > q0; t_params w1/ckpt-000000001.h5 > q1
  counts=$(paste q0 q1 | awk 'NF == 2 { if ($1 == $2) same++; else diff++ } END { printf "%d %d", diff, same }')
  [ "$counts" = "12288 9696" ] && t_pass "weight decay moved the 12288 matrix entries and none of the 9696 others" \
    || t_fail "weight decay: changed/unchanged '$counts', want '12288 9696'"
else
  cat w.out; t_fail "weight-decay runs failed (or no h5dump)"
fi
# resume on another rank count: 3 steps on 1 rank, the other 3 on 2 ranks = the reference
mpirun -np 1 "$train" "${det[@]}" --max-steps 3 --checkpoint-dir rck --checkpoint-every 3 > r1.out 2>&1 \
  && mpirun -np 2 "$train" "${det[@]}" --checkpoint-dir rck --resume latest --metrics r.jsonl > r2.out 2>&1 \
  && [ "$(t_digest r.jsonl)" = "$ref" ] && t_pass "resume 1 -> 2 ranks: the same digest" \
  || { cat r1.out r2.out; t_fail "resume 1 -> 2 ranks: digest '$(t_digest r.jsonl)' != '$ref'"; }
# --bench on synthetic tokens: ids below a vocabulary of 100 (bytes reduced mod V)
mpirun -np 1 "$train" --bench --model "in(17),embed(100,16),block(16,h2),lnorm,lmhead" --batch 8 --steps 3 \
  --metrics b.jsonl > b.out 2>&1 && grep -q "^bench: .*median step .* ms, [0-9.]* tokens/s, [0-9.]* samples/s" b.out \
  && t_pass "--bench of a language model (vocabulary 100): tokens/s" || { cat b.out; t_fail "--bench of a language model"; }
# its GEMM operations, by hand: T = 16, C = 16, V = 100, 8 windows. Multiply-adds a window:
# the block's qkv, proj, fc, fc2 T x 12 C^2 = 49152 and attention's two products T^2 C each
# (all heads, the full T x T) = 8192; the tied head T C V = 25600; 82944 in all. Forward 2
# flops a multiply-add, backward 4 (the embedding's input gets no GEMM): 6 x 8 x 82944.
g=$(sed -n 's/.*"gemm_flops_per_rank_step": \([0-9]*\).*/\1/p' b.jsonl)
[ "$g" = 3981312 ] && t_pass "GEMM operations of a small GPT by hand" \
  || t_fail "GEMM operations per step: '$g', want 3981312 (worked out by hand)"
# token ids above 255 (uint16 files): a token file of vocabulary 300 written by h5py, its
# ids 200..299 from a full-period generator (each id fixes the next); a model without blocks
# learns the pairs, and numpy's forward pass of its checkpoint over the validation windows,
# read from the file, gives the trainer's final test loss and accuracy: an id that reaches
# the model other than it is in the file (cut to 8 bits, say) moves them apart
if t_have_h5py; then
  "$T_PY" - t16.h5 <<'PY' || t_fail "writing the uint16 token file"
import sys, h5py, numpy as np
def ids(n, s):
    out = []
    for _ in range(n):
        s = (s * 21 + 13) % 100  # full period: 21 - 1 is a multiple of 2, 4 and 5
        out.append(200 + s)
    return np.array(out, np.uint16)
with h5py.File(sys.argv[1], "w") as f:
    f["train/tokens"], f["val/tokens"] = ids(4000, 1), ids(400, 5)
    for k, v in (("format", "dlfs-tokens"), ("tokenizer", "lcg"), ("split", "separate"), ("source", "lm.sh"),
                 ("license", "CC0-1.0")):
        f.attrs[k] = v
    f.attrs["format_version"], f.attrs["vocab_size"] = np.int32(1), np.int32(300)
PY
  mpirun -np 1 "$train" --data t16.h5 --model "in(17),embed(300,16),lnorm,lmhead" --epochs 3 --batch 16 \
    --optim adamw --lr 1e-2 --seed 2 --checkpoint-dir ck16 --metrics v.jsonl > v.out 2>&1 \
    || { cat v.out; t_fail "training on uint16 ids"; }
  lv=$(sed -n 's/.*"event": "final".*"test_loss": \([0-9.]*\), "test_acc": \([0-9.]*\).*/\1 \2/p' v.jsonl)
  "$T_PY" - t16.h5 ck16/ckpt-000000045.h5 16 "$lv" <<'PY' \
    && t_pass "uint16 ids: numpy's loss and accuracy of the checkpoint = the trainer's ($lv), below ln 100" \
    || t_fail "uint16 ids: the trainer's test loss, accuracy '$lv' against numpy's"
import sys, h5py, numpy as np
d, c, T = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), int(sys.argv[3])
got_loss, got_acc = map(float, sys.argv[4].split())
ids = np.asarray(d["val/tokens"], np.int64)
win = np.stack([ids[k * T:k * T + T + 1] for k in range((len(ids) - 1) // T)])
p = c["params"]
E, P = np.asarray(p["0_embed/weight"], np.float64), np.asarray(p["0_embed/bias"], np.float64).reshape(T, -1)
g, b = np.asarray(p["1_lnorm/weight"], np.float64), np.asarray(p["1_lnorm/bias"], np.float64)
x = E[win[:, :T]] + P                      # token row + position row
h = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b
z = h @ E.T                                # the head tied to the token table
z -= z.max(-1, keepdims=True)
lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
y = win[:, 1:]
loss, acc = -np.take_along_axis(lp, y[..., None], -1).mean(), (z.argmax(-1) == y).mean()
print(f"numpy: loss {loss:.6f} accuracy {acc:.6f}; trainer: {got_loss} {got_acc}; ids {ids.min()}..{ids.max()}")
sys.exit(0 if ids.max() > 255 and abs(got_loss - loss) < 1e-5 and abs(got_acc - acc) < 1e-6 and
         loss < np.log(100) else 1)
PY
else
  t_skip "uint16 ids: $T_NO_H5PY"
fi
mpirun -np 1 "$train" --bench --model "in(17),embed(300,16),block(16,h2),lnorm,lmhead" --batch 8 --steps 3 \
  > b16.out 2>&1 && grep -q "^bench: .*median step" b16.out && t_pass "--bench of a language model (vocabulary 300)" \
  || { cat b16.out; t_fail "--bench of a language model with uint16 ids"; }
# --eval-batch's default for a language model: the windows whose activations fit in 512 MiB
# (gpt-tiny: 83), not 1000 (6.5 GB of gpt-tiny's). ~290 validation windows of gpt-tiny: the
# banner's chunks are fewer, and the run's peak resident memory (the kernel's count, by GNU
# time) stays under 1 GiB, where chunks of all of them took 2.0 GB.
awk 'BEGIN { srand(5); n = split("the cat sat on a mat and dog ran to it with red hat", w)
             for (i = 0; i < 200000; i++) printf "%s ", w[int(rand() * n) + 1] }' > big.txt
if [ ! -x /usr/bin/time ]; then
  t_skip "--eval-batch default of gpt-tiny: no GNU time (/usr/bin/time) to measure the peak memory"
elif "$data" text big.txt -o big.h5 > bigc.out 2>&1 \
  && /usr/bin/time -f "maxrss %M" -o big.rss mpirun -np 1 "$train" --data big.h5 --model gpt-tiny --batch 8 \
       --max-steps 1 > big.out 2>&1; then
  chunk=$(sed -n 's/^pipeline: .*evaluation in chunks of \([0-9]*\) windows.*/\1/p' big.out)
  rss=$(sed -n 's/^maxrss \([0-9]*\)$/\1/p' big.rss)
  nval=$(sed -n 's/^data .* train \/ \([0-9]*\) test samples.*/\1/p' big.out)
  [ "${nval:-0}" -ge 250 ] && [ -n "$chunk" ] && [ "$chunk" -ge 8 ] && [ "$chunk" -lt "$nval" ] \
    && [ -n "$rss" ] && [ "$rss" -lt 1048576 ] \
    && t_pass "gpt-tiny's default evaluation chunks: $chunk of $nval windows, peak ${rss} KiB resident" \
    || { cat big.out big.rss; t_fail "gpt-tiny's default evaluation chunks '$chunk' (of '$nval'), peak '$rss' KiB"; }
else cat bigc.out big.out; t_fail "gpt-tiny with the default --eval-batch"; fi
t_expect_error "--sample without --eval" 2 "--sample N" mpirun -np 1 "$train" --data t.h5 --model "$model" --sample 5
t_expect_error "token file, image model" 1 "is a token file" mpirun -np 1 "$train" --data t.h5 --model mlp
[ -f "$fm" ] && t_expect_error "image dataset, language model" 1 "start the spec with in(784)" \
  mpirun -np 1 "$train" --data "$fm" --model gpt-tiny
t_done
