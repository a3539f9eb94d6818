#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# test_cuda_ops runs each op family in a child of its own: one family's failed
# comparisons and another's crash are reported, the families after them still run,
# and the exit status is non-zero. Uses the --self mode (CPU against CPU) and its
# test hooks, so it runs anywhere. Argument: the test_cuda_ops program.
. "$(dirname "$0")/../lib.sh"
ops=$1
rc=0
DLFS_TEST_OPS_BREAK=gemm DLFS_TEST_OPS_CRASH=pool timeout 300 "$ops" --self vec gemm pool batchnorm \
  >"$T_TMP/out" 2>&1 || rc=$?
grep -E '^(family|op families|FAIL)' "$T_TMP/out" | head -n 20
[ "$rc" -eq 1 ] && t_pass "exit status 1" || t_fail "exit status $rc, want 1"
want() { grep -qF -- "$1" "$T_TMP/out" && t_pass "$2" || t_fail "$2: no '$1'"; }
want "family vec: ok" "the family before the failures passed"
want "family gemm: FAIL (exit 1)" "the broken comparisons failed their family"
grep -q "^FAIL gemm" "$T_TMP/out" && t_pass "the failed comparisons are printed" || t_fail "no 'FAIL gemm ...' line"
want "family pool: FAIL: crashed (signal 6" "the crash is reported as such"
want "family batchnorm: ok" "the family after the crash still ran and passed"
want "op families: 2 ok, 2 failed (gemm pool), 0 skipped, of 4" "the summary names the failed families"
# the hooks are for --self only, and an unknown family is a usage error
rc=0; DLFS_TEST_OPS_BREAK=vec timeout 120 "$ops" --self vec >"$T_TMP/one" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && t_pass "one broken family alone: exit 1" || { cat "$T_TMP/one"; t_fail "one broken family: exit $rc"; }
rc=0; timeout 60 "$ops" --self nosuch >"$T_TMP/bad" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "unknown op family 'nosuch'" "$T_TMP/bad" && t_pass "unknown family: usage error" \
  || { cat "$T_TMP/bad"; t_fail "unknown family: exit $rc"; }
t_done
