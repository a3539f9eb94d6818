#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# Sharded checkpoints (--ckpt-sharded, --zero 1): written by 4 ranks, resumed on 1 and
# 2 ranks without ZeRO and on 2 with it to the uninterrupted run's params_sha256
# (deterministic mode), on 3 ranks (fast mode) to the same bits as from the gathered
# single file of the same state; h5py reassembles the moments from the shards and
# compares them with that single file; dlfs-data ckpt-merge gives a file whose
# state_sha256, recomputed here as src/io/README.md defines it, verifies; --keep prunes
# whole directories; a missing or damaged shard, a manifest naming a wrong digest are
# refused with one line naming the file; --resume latest passes over a directory
# without its manifest. Synthetic data, a 50k-parameter model: about 15 s.
. "$(dirname "$0")/../lib.sh"
train=$1 data=$2
"$data" synth --size 2 --test 200 -o "$T_TMP/syn.h5" >/dev/null || { t_fail "dlfs-data synth"; t_done; }
c=(--data "$T_TMP/syn.h5" --model 784-64-10:tanh --batch 96 --epochs 1 --max-steps 20 --seed 3 --quiet
   --eval-batch 200 --bucket-mb 0.05)
d=("${c[@]}" --deterministic --virtual-shards 8)
mpirun -np 1 "$train" "${d[@]}" --metrics "$T_TMP/ref.jsonl" >/dev/null 2>&1
ref=$(t_digest "$T_TMP/ref.jsonl")
[ -n "$ref" ] || { t_fail "no reference digest"; t_done; }
# 4 ranks, ZeRO-1, sharded, every 5 steps, keep 2: ckpt-10.d and ckpt-15.d remain
mpirun -np 4 "$train" "${d[@]}" --max-steps 15 --zero 1 --ckpt-sharded --checkpoint-dir "$T_TMP/cs" \
  --checkpoint-every 5 --keep 2 > "$T_TMP/s.out" 2>&1 || { cat "$T_TMP/s.out"; t_fail "sharded write"; t_done; }
mpirun -np 4 "$train" "${d[@]}" --max-steps 15 --zero 1 --checkpoint-dir "$T_TMP/cf" >/dev/null 2>&1 \
  || t_fail "single-file write"
s15=$T_TMP/cs/ckpt-000000015.d
[ "$(cd "$T_TMP/cs" && echo ckpt-*)" = "ckpt-000000010.d ckpt-000000015.d" ] \
  && [ "$(cd "$s15" && echo ./*)" = "./manifest.h5 ./rank-0.h5 ./rank-1.h5 ./rank-2.h5 ./rank-3.h5" ] \
  && t_pass "--keep 2: two whole checkpoint directories, each a manifest and 4 shards" \
  || { ls -R "$T_TMP/cs"; t_fail "the sharded checkpoint directories"; }
resume() { # NAME NP DIR ARGS...: resume latest of a copy of DIR; its digest
  rm -rf "$T_TMP/r-$1" && cp -r "$3" "$T_TMP/r-$1"
  mpirun -np "$2" "$train" "${@:4}" --checkpoint-dir "$T_TMP/r-$1" --resume latest --metrics "$T_TMP/$1.jsonl" \
    > "$T_TMP/$1.out" 2>&1 || cat "$T_TMP/$1.out" >&2
  t_digest "$T_TMP/$1.jsonl"
}
for np in 1 2; do
  got=$(resume "np$np" $np "$T_TMP/cs" "${d[@]}")
  [ "$got" = "$ref" ] && t_pass "written on 4 ranks (ZeRO, sharded), resumed on $np: the uninterrupted digest" \
    || t_fail "np=$np resume: '$got' != $ref"
done
got=$(resume z2 2 "$T_TMP/cs" "${d[@]}" --zero 1 --ckpt-sharded)
[ "$got" = "$ref" ] && [ -f "$T_TMP/r-z2/ckpt-000000020.d/rank-1.h5" ] \
  && t_pass "resumed on 2 ranks with ZeRO, written sharded again: the uninterrupted digest" \
  || t_fail "np=2 ZeRO resume: '$got' != $ref"
# 3 ranks in fast mode (uneven parts, bucket remainders every rank updates), written again
a=$(resume f3s 3 "$T_TMP/cs" "${c[@]}" --zero 1 --ckpt-sharded) b=$(resume f3f 3 "$T_TMP/cf" "${c[@]}" --zero 1)
[ -n "$a" ] && [ "$a" = "$b" ] && t_pass "3 ranks (fast mode): sharded and single-file checkpoints resume to the same bits" \
  || t_fail "3 ranks: sharded '$a' != single file '$b'"
for m in "$s15 merged" "$T_TMP/r-f3s/ckpt-000000020.d merged3"; do
  "$data" ckpt-merge "${m% *}" -o "$T_TMP/${m#* }.h5" > "$T_TMP/merge.out" 2>&1 || { cat "$T_TMP/merge.out"; t_fail "ckpt-merge ${m% *}"; }
done
mpirun -np 1 "$train" "${d[@]}" --resume "$T_TMP/merged.h5" --metrics "$T_TMP/merged.jsonl" > "$T_TMP/m.out" 2>&1 \
  || cat "$T_TMP/m.out"
got=$(t_digest "$T_TMP/merged.jsonl")
[ "$got" = "$ref" ] && t_pass "ckpt-merge: the merged file resumes to the uninterrupted digest" \
  || t_fail "merged resume: '$got' != $ref"
if t_have_h5py; then
  "$T_PY" - "$s15" "$T_TMP/cf/ckpt-000000015.h5" "$T_TMP/merged.h5" "$T_TMP/merged3.h5" \
    "$T_TMP/r-f3f/ckpt-000000020.h5" <<'PY' \
    && t_pass "h5py: shards reassemble to the single file's moments; the merged file's state_sha256 verifies" \
    || t_fail "h5py checks of the shards and the merged file"
import hashlib, sys
import h5py, numpy as np
man = h5py.File(sys.argv[1] + "/manifest.h5", "r")
one, merged = h5py.File(sys.argv[2], "r"), h5py.File(sys.argv[3], "r")
names = sorted(one["params"].keys(), key=lambda k: int(k.split("_")[0]))
flat = lambda f, g: np.concatenate([np.asarray(f[g][n][p]).ravel() for n in names for p in ("weight", "bias")])
n = flat(one, "params").size
assert int(man.attrs["shards"]) == 4 and man.attrs["moments"] == "mv" and "optimizer/m" not in man
seen = np.zeros(n, np.int32)
got = {k: np.full(n, np.nan, np.float32) for k in "mv"}
for r in range(4):
    s = h5py.File("%s/rank-%d.h5" % (sys.argv[1], r), "r")
    assert int(s.attrs["rank"]) == r and s.attrs["shard_sha256"] == man.attrs["shard_sha256"][r]
    at = 0
    for o, l in zip(s["offset"][()].tolist(), s["length"][()].tolist()):
        seen[o:o + l] += 1
        for k in "mv":
            got[k][o:o + l] = s[k][at:at + l]
        at += l
assert (seen == 1).all(), "shards overlap or leave gaps"
for k in "mv":
    assert np.array_equal(got[k], flat(one, "optimizer/" + k)), k
    assert np.array_equal(got[k], flat(merged, "optimizer/" + k)), k
assert np.array_equal(flat(man, "params"), flat(one, "params"))
a = merged.attrs
s = hashlib.sha256(b"dlfs-state-v2\n")
def text(k):
    v = a[k].encode()
    s.update(b"%s=%d:%s\n" % (k.encode(), len(v), v))
def num(k, v=None):
    s.update(b"%s=%d\n" % (k.encode(), int(a[k]) if v is None else v))
text("model_spec"); text("optimizer"); num("num_params"); num("num_buffers", 0)
for k in ("step", "epoch", "samples_in_epoch", "global_batch", "seed", "deterministic", "virtual_shards", "world_size"):
    num(k)
text("run_id"); text("parent"); num("parent_step")
s.update(b"moments=2:mv\n")
for g in ("params", "optimizer/m", "optimizer/v"):
    s.update(flat(merged, g).astype("<f4").tobytes())
assert s.hexdigest() == a["state_sha256"], (s.hexdigest(), a["state_sha256"])
assert a["run_id"] == man.attrs["run_id"] and int(a["step"]) == 15
# written on 3 ranks in fast mode (shared remainders): merged == gathered, bit for bit
m3, g3 = h5py.File(sys.argv[4], "r"), h5py.File(sys.argv[5], "r")
for g in ("params", "optimizer/m", "optimizer/v"):
    assert np.array_equal(flat(m3, g), flat(g3, g)), g
PY
  # a manifest naming a wrong digest for rank 3
  cp -r "$s15" "$T_TMP/wrong.d"
  "$T_PY" -c 'import h5py, sys
f = h5py.File(sys.argv[1], "r+"); v = list(f.attrs["shard_sha256"]); v[3] = "0" * 64; f.attrs["shard_sha256"] = v' \
    "$T_TMP/wrong.d/manifest.h5"
  t_expect_error "a manifest naming a wrong digest" 1 "wrong.d/rank-3.h5: checkpoint shard is corrupt" \
    mpirun -np 1 "$train" "${d[@]}" --resume "$T_TMP/wrong.d"
  # a damaged shard: one value of rank 1's m changed
  cp -r "$s15" "$T_TMP/bad.d"
  "$T_PY" -c 'import h5py, sys
f = h5py.File(sys.argv[1], "r+"); f["m"][0] = f["m"][0] + 1' "$T_TMP/bad.d/rank-1.h5"
  t_expect_error "a damaged shard" 1 "bad.d/rank-1.h5: checkpoint shard is corrupt" \
    mpirun -np 1 "$train" "${d[@]}" --resume "$T_TMP/bad.d"
else
  t_skip "h5py checks: $T_NO_H5PY"
fi
cp -r "$s15" "$T_TMP/gone.d" && rm "$T_TMP/gone.d/rank-2.h5"
t_expect_error "a missing shard" 1 "gone.d/rank-2.h5" mpirun -np 2 "$train" "${d[@]}" --resume "$T_TMP/gone.d"
t_expect_error "--ckpt-sharded without --zero 1" 2 "needs --zero 1" mpirun -np 1 "$train" "${d[@]}" --ckpt-sharded \
  --checkpoint-dir "$T_TMP/nz"
# a link planted at the name of the next checkpoint's directory is never written through
mkdir -p "$T_TMP/victim" "$T_TMP/lk" && cp -r "$s15" "$T_TMP/lk/" && ln -s "$T_TMP/victim" "$T_TMP/lk/ckpt-000000020.d"
t_expect_error "a link at the sharded checkpoint's name" nz "ckpt-000000020.d: the name is taken" \
  mpirun -np 2 "$train" "${d[@]}" --zero 1 --ckpt-sharded --checkpoint-dir "$T_TMP/lk" --resume latest
[ -z "$(ls -A "$T_TMP/victim")" ] && t_pass "nothing written into the link's target" || t_fail "files in the link's target"
# no manifest: no checkpoint; latest takes the previous one (step 10), says so, and continues
rm -rf "$T_TMP/inc" && cp -r "$T_TMP/cs" "$T_TMP/inc" && rm "$T_TMP/inc/ckpt-000000015.d/manifest.h5"
got=$(resume inc 2 "$T_TMP/inc" "${d[@]}")
[ "$got" = "$ref" ] && grep -q "skipped .*ckpt-000000015.d: sharded checkpoint is incomplete" "$T_TMP/inc.out" \
  && t_pass "latest passes over a directory without manifest (message), resumes step 10 to the same digest" \
  || { cat "$T_TMP/inc.out"; t_fail "incomplete sharded checkpoint: '$got' != $ref"; }
t_done
