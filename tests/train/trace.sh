#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# --trace FILE: Chrome trace JSON with every rank, spans nested per track, per-layer
# forward/backward spans inside each step, each bucket's all-reduce on a track of its
# own starting before the backward pass ends (the overlap), the --trace-steps window,
# the evaluation between traced steps (none after them: the timeline ends with the last
# traced step), the bucket tracks named "bucket 0", "bucket 1", ...; the trace changes no
# bits; "trace written to FILE" is printed; a path that cannot be written is refused at
# the start.
. "$(dirname "$0")/../lib.sh"
train=$1 fm=$(t_small "$3")
[ -f "$fm" ] || { echo "no $fm: skipped"; exit 77; }
py=${PYTHON:-python3}
"$py" -c 'import json' 2>/dev/null || { echo "no python3: skipped"; exit 77; }
common=(--data "$fm" --model mlp --batch 128 --epochs 1 --max-steps 12 --seed 3 --bucket-mb 0.5 --quiet --eval-every 4)
mpirun -np 2 "$train" "${common[@]}" --trace "$T_TMP/t.json" --trace-steps 3 --metrics "$T_TMP/t.jsonl" \
  > "$T_TMP/t.out" 2>&1 || { cat "$T_TMP/t.out"; t_fail "traced run failed"; t_done; }
"$py" - "$T_TMP/t.json" <<'PY' && t_pass "trace: JSON, ranks, nesting, layers, buckets overlap backward, window" || t_fail "trace content"
import json, sys
d = json.load(open(sys.argv[1]))
ev = d["traceEvents"]
spans = [e for e in ev if e["ph"] == "X"]
names = {e["pid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
assert sorted(names) == [0, 1], names
assert d["otherData"]["window"] == [2, 5] and d["otherData"]["ranks"] == 2, d["otherData"]
for pid in (0, 1):
    steps = [e for e in spans if e["pid"] == pid and e["name"] == "step"]
    assert [e["args"]["i"] for e in steps] == [2, 3, 4], steps
    # nesting per (pid, tid): sorted by start, every span ends before its parent does
    for tid in {e["tid"] for e in spans if e["pid"] == pid}:
        if tid >= 10:
            continue  # buckets: one track each, spans of successive steps
        stack = []
        for e in sorted((e for e in spans if e["pid"] == pid and e["tid"] == tid), key=lambda e: (e["ts"], -e["dur"])):
            while stack and e["ts"] >= stack[-1]["ts"] + stack[-1]["dur"] - 1e-3:
                stack.pop()
            assert not stack or e["ts"] + e["dur"] <= stack[-1]["ts"] + stack[-1]["dur"] + 1e-3, (e, stack[-1])
            stack.append(e)
    for st in steps:
        inside = [e for e in spans if e["pid"] == pid and e["tid"] == 0 and st["ts"] <= e["ts"] <= st["ts"] + st["dur"]]
        for layer in ("0_dense", "1_dense", "2_dense"):
            assert any(e["name"] == "fwd " + layer for e in inside), layer
            assert any(e["name"] == "bwd " + layer for e in inside), layer
        bwd = [e for e in inside if e["name"] == "backward"][0]
        buckets = [e for e in spans if e["pid"] == pid and e["tid"] >= 10 and st["ts"] <= e["ts"] <= st["ts"] + st["dur"]]
        assert len(buckets) >= 2, buckets
        assert min(b["ts"] for b in buckets) < bwd["ts"] + bwd["dur"], (buckets, bwd)
    assert any(e["name"] == "evaluate" for e in spans if e["pid"] == pid)
    last = max(e["ts"] + e["dur"] for e in steps)
    late = [e for e in spans if e["pid"] == pid and e["ts"] + e["dur"] > last + 1e-3]
    assert not late, ("spans after the last traced step", late[:3])
    tracks = sorted(e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == pid)
    buckets = [t for t in tracks if t.startswith("bucket")]
    assert buckets == ["bucket %d" % i for i in range(len(buckets))] and len(buckets) >= 2, tracks
print("%d spans, %d per rank per step" % (len(spans), len([e for e in spans if e["pid"] == 0]) // 3))
PY
mpirun -np 2 "$train" "${common[@]}" --metrics "$T_TMP/n.jsonl" >/dev/null 2>&1
[ "$(t_digest "$T_TMP/t.jsonl")" = "$(t_digest "$T_TMP/n.jsonl")" ] && t_pass "tracing changes no bits" \
  || t_fail "digest with --trace differs"
mpirun -np 1 "$train" --bench --model 784-64-10 --batch 64 --steps 6 --bench-warmup 2 --trace "$T_TMP/b.json" \
  >"$T_TMP/b.out" 2>&1 && "$py" -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['otherData']['window'] == [2, 7]" \
  "$T_TMP/b.json" && t_pass "bench: the timed steps are traced" || t_fail "bench trace"
grep -qx "trace written to $T_TMP/b.json: steps 2 to 6 of 1 rank(s); open it in https://ui.perfetto.dev" "$T_TMP/b.out" \
  && t_pass "says where the trace is" || { cat "$T_TMP/b.out"; t_fail "no 'trace written to' line"; }
t_expect_error "unwritable trace path" 1 "--trace $T_TMP/no/such/dir/t.json" \
  mpirun -np 2 "$train" "${common[@]}" --trace "$T_TMP/no/such/dir/t.json"
t_done
