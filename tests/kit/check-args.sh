#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# launch/gpu-check.sh refuses what it must before any work (about 1 s, no build): a
# build directory that is / or any non-empty directory that is not a dlfs build tree
# (nothing written there), a dlfs tree of another source given with --build-dir; a
# deadline of 0 or not a number (one line, exit 2, no bash error). And its set-up
# helpers (launch/gpu/setup.sh): one default build tree per checkout, a default tree
# of another source started afresh, the commit read from .gpu-kit/commit.txt where
# there is no .git. The helpers of its resnet/GPT rows (launch/gpu/lib.sh): the byte
# unigram entropy of dlfs-data text's validation split (the last ceil(5 %) of each file:
# "ab" x 50 gives "babab", 41 "c" give "ccc": 3 b, 2 a, 3 c of 8 bytes, worked out by hand
# -(3/4 ln 3/8 + 1/4 ln 1/4) = 1.0822 nats), torch_ref.py's lines (model names with
# digits, a failed case left out) and the row dlfs against PyTorch.
# Argument: SOURCE_DIR.
. "$(dirname "$0")/../lib.sh"
src=$1
refuse() { # NAME NEEDLE ARGS...: exit 2, one line on stderr with NEEDLE, no bash error
  local name=$1 needle=$2 rc=0; shift 2
  timeout 60 "$src/launch/gpu-check.sh" "$@" >"$T_TMP/out" 2>"$T_TMP/err" </dev/null || rc=$?
  if [ $rc -ne 2 ]; then t_fail "$name: exit $rc, want 2"; cat "$T_TMP/err" "$T_TMP/out" >&2
  elif [ "$(grep -c . "$T_TMP/err")" -ne 1 ] || ! grep -qF -- "$needle" "$T_TMP/err"; then
    t_fail "$name: want one line with '$needle'"; cat "$T_TMP/err" >&2
  elif grep -q "unbound variable\|syntax error\|command not found" "$T_TMP/err" "$T_TMP/out"; then t_fail "$name: a bash error"
  else t_pass "$name ($(cat "$T_TMP/err"))"; fi
}
[ -e /gpu-check ] && { echo "skipped: /gpu-check exists on this machine"; exit 77; }
refuse "--dry-run --build-dir /" "--build-dir /: not empty and not a dlfs build tree" --dry-run --build-dir / --out "$T_TMP/o"
[ ! -e /gpu-check ] && [ ! -e /.dlfs-gpu-check ] && t_pass "nothing written into /" || t_fail "gpu-check wrote into /"
mkdir -p "$T_TMP/mine" && echo keep >"$T_TMP/mine/notes.txt"
refuse "a non-empty directory that is no build tree" "not a dlfs build tree" --dry-run --build-dir "$T_TMP/mine" --out "$T_TMP/o"
[ "$(ls -A "$T_TMP/mine")" = notes.txt ] && t_pass "that directory untouched" || t_fail "gpu-check wrote into $T_TMP/mine"
mkdir -p "$T_TMP/other"
printf 'CMAKE_PROJECT_NAME:STATIC=dlfs\nCMAKE_HOME_DIRECTORY:INTERNAL=%s\n' "$T_TMP/elsewhere" >"$T_TMP/other/CMakeCache.txt"
mkdir -p "$T_TMP/elsewhere"
refuse "--build-dir of another source" "configured for another source" --dry-run --build-dir "$T_TMP/other" --out "$T_TMP/o"
refuse "--deadline 0" "--deadline 0: at least 60 s" --dry-run --deadline 0 --out "$T_TMP/o"
refuse "--deadline abc" "--deadline 'abc': a number of seconds" --dry-run --deadline abc --out "$T_TMP/o"

. "$src/launch/gpu/setup.sh"
a=$(gc_default_build /x/one) b=$(gc_default_build /x/two)
[ -n "$a" ] && [ "$a" != "$b" ] && [ "$a" = "$(gc_default_build /x/one)" ] && t_pass "one default build tree per checkout ($a, $b)" \
  || t_fail "default build trees: '$a' and '$b'"
gc_build_dir_ok "$T_TMP/other" "$src" 1 2>"$T_TMP/err" && [ -z "$(ls -A "$T_TMP/other")" ] \
  && t_pass "the default tree of another source is started afresh ($(cat "$T_TMP/err"))" || t_fail "default tree of another source"
printf 'CMAKE_PROJECT_NAME:STATIC=dlfs\nCMAKE_HOME_DIRECTORY:INTERNAL=%s\n' "$src" >"$T_TMP/other/CMakeCache.txt"
gc_build_dir_ok "$T_TMP/other" "$src" 0 && [ -f "$T_TMP/other/CMakeCache.txt" ] && t_pass "a dlfs tree of this source is reused" \
  || t_fail "a dlfs tree of this source was refused or emptied"
mkdir -p "$T_TMP/nogit/.gpu-kit" && echo "abc1234 2026-01-01 a commit" >"$T_TMP/nogit/.gpu-kit/commit.txt"
c=$(GIT_CEILING_DIRECTORIES=$T_TMP gc_commit "$T_TMP/nogit")
[ "$c" = "abc1234 2026-01-01 a commit (from .gpu-kit/commit.txt)" ] && t_pass "the commit without .git: $c" || t_fail "commit without .git: '$c'"
rm -rf "$T_TMP/nogit/.gpu-kit"
c=$(GIT_CEILING_DIRECTORIES=$T_TMP gc_commit "$T_TMP/nogit")
[ "$c" = "?" ] && t_pass "no .git, no commit file: ?" || t_fail "no .git, no commit file: '$c'"

. "$src/launch/gpu/lib.sh"
printf 'ab%.0s' $(seq 50) >"$T_TMP/one.md" && printf 'c%.0s' $(seq 41) >"$T_TMP/two.md"
h=$(gc_unigram_nats 5 "$T_TMP/one.md" "$T_TMP/two.md")
[ "$h" = 1.0822 ] && t_pass "unigram entropy of the validation split: $h nats (by hand 1.0822)" || t_fail "unigram entropy '$h', want 1.0822"
LOGS=$T_TMP T0=$SECONDS MD=$T_TMP/md N_PASS=0 N_FAIL=0 N_SKIP=0 N_INFO=0 FAILED=() SKIPPED=()
declare -A PT=() DL=([r50-bf16]=25.0)
printf '%s\n' "torch 2.11 on NVIDIA H100" "torch resnet50 32 bf16 eager 12.5000" "torch gpt2 4 fp32 eager 250.0" \
  "torch gpt2 4 bf16 eager failed: CUDA out of memory" >"$T_TMP/torch-models.log"
gc_torch_lines torch-models
[ "${PT[resnet50-32-bf16]:-}" = 12.5000 ] && [ "${PT[gpt2-4-fp32]:-}" = 250.0 ] && [ ${#PT[@]} -eq 2 ] &&
  t_pass "torch_ref.py's lines: resnet50 and gpt2 read, the failed case left out" || t_fail "torch lines: $(declare -p PT)"
gc_vs_torch "resnet50 bf16" r50-bf16 resnet50 32 bf16 32 images >/dev/null
grep -qxF '| resnet50 bf16 | info | 25.0 ms, 1280 images/s | 12.5000 ms | dlfs / PyTorch: 2.00x | — |' "$MD" &&
  t_pass "the row dlfs against PyTorch: 1280 images/s, 2.00x" || t_fail "row: $(cat "$MD")"
t_done
