#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The checkpoint opens in h5py with readable names, its parameters hash to the
# params_sha256 that dlfs-train reports (float32 little-endian, layer order), and
# state_sha256 is the digest src/io/README.md documents, recomputed here.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
t_have_h5py || { echo "skipped: $T_NO_H5PY"; exit 77; }
mpirun -np 2 "$train" --data "$fm" --model 784-48-10:tanh --epochs 1 --max-steps 30 --quiet \
  --checkpoint-dir "$T_TMP/c" --metrics "$T_TMP/m.jsonl" > "$T_TMP/o" 2>&1 || { cat "$T_TMP/o"; t_fail "training"; t_done; }
want=$(t_digest "$T_TMP/m.jsonl")
"$T_PY" - "$T_TMP/c/ckpt-000000030.h5" "$want" <<'PY' && t_pass "h5py reads it; digest matches" || t_fail "h5py check"
import hashlib, sys
import h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
a = f.attrs
assert a["format"] == "dlfs-checkpoint" and int(a["format_version"]) == 2, dict(a)
assert a["model_spec"] == "in(784),dense(48),tanh,dense(10)", a["model_spec"]
assert int(a["step"]) == 30 and int(a["world_size"]) == 2 and a["optimizer"] == "adam"
h = hashlib.sha256()
names = sorted(f["params"].keys(), key=lambda k: int(k.split("_")[0]))
assert names == ["0_dense", "1_dense"], names
for n in names:
    w, b = f["params"][n]["weight"], f["params"][n]["bias"]
    assert w.dtype == np.float32 and b.dtype == np.float32
    h.update(np.asarray(w).astype("<f4").tobytes())
    h.update(np.asarray(b).astype("<f4").tobytes())
assert f["params/0_dense/weight"].shape == (48, 784)
assert h.hexdigest() == sys.argv[2] == a["params_sha256"], (h.hexdigest(), sys.argv[2])
for k in ("m", "v"):
    assert f["optimizer"][k]["1_dense"]["weight"].shape == (10, 48)
# state_sha256, as src/io/README.md defines it
s = hashlib.sha256(b"dlfs-state-v2\n")
def text(k):
    v = a[k].encode()
    s.update(b"%s=%d:%s\n" % (k.encode(), len(v), v))
def num(k, v=None):
    s.update(b"%s=%d\n" % (k.encode(), int(a[k]) if v is None else v))
slab = lambda g: b"".join(np.asarray(f[g][n][p]).astype("<f4").tobytes() for n in names for p in ("weight", "bias"))
text("model_spec"); text("optimizer"); num("num_params"); num("num_buffers", 0)
for k in ("step", "epoch", "samples_in_epoch", "global_batch", "seed", "deterministic", "virtual_shards", "world_size"):
    num(k)
text("run_id"); text("parent"); num("parent_step")
s.update(b"moments=2:mv\n")
for g in ("params", "optimizer/m", "optimizer/v"):
    s.update(slab(g))
assert s.hexdigest() == a["state_sha256"], (s.hexdigest(), a["state_sha256"])
print("h5py: ok", h.hexdigest(), "state", s.hexdigest())
PY
t_done
