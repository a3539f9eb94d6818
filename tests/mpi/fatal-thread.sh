#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# A fatal error on a helper thread (src/core/status.c end_job_): the whole job ends,
# every rank, with exit != 0, one message naming the rank, no crash, no hang.
. "$(dirname "$0")/../lib.sh"
prog=$4
t0=$(date +%s) rc=0
timeout 120 mpirun -np 2 "$prog" >"$T_TMP/out" 2>"$T_TMP/err" </dev/null || rc=$?
el=$(( $(date +%s) - t0 ))
if [ "$rc" -eq 0 ]; then t_fail "the job exited 0"
elif [ "$rc" -eq 124 ]; then t_fail "the job hung (killed by timeout after ${el} s)"
else t_pass "the job ended with exit $rc after ${el} s"; fi
n=$(grep -c "error: rank 0 ([^)]*): a helper thread failed (test)" "$T_TMP/err")
[ "$n" -eq 1 ] && t_pass "one message naming rank 0" || { t_fail "$n messages, want 1"; cat "$T_TMP/err" >&2; }
grep -qE 'AddressSanitizer|runtime error|Segmentation|core dumped' "$T_TMP/err" \
  && { t_fail "crash or sanitizer output"; cat "$T_TMP/err" >&2; } || t_pass "no crash output"
t_done
