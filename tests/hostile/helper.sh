#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The bad-input suite's one assertion helper (tests/lib.sh: h_check and its front ends)
# against cases whose verdict is known by construction: small bash programs that break
# exactly one rule (exit 0, another status, a second stderr line, no "dlfs-" prefix, no
# needle, crash output, a watched file changed or removed, a hang, a rank exiting 0), and
# programs that break none. A helper that let any of them pass would let a real bug pass.
# About 5 s (two mpirun starts); ctest hostile_helper.
. "$(dirname "$0")/../lib.sh"
cd "$T_TMP" || exit 1
echo "kept" > watched.txt

# want NAME pass|fail HELPER-CALL...: the helper call, in a subshell of its own, must
# record no failure (pass) or at least one (fail)
want() {
  local name=$1 w=$2 got
  shift 2
  got=$( (T_FAILS=0; "$@" >/dev/null 2>&1; [ "$T_FAILS" -eq 0 ] && echo pass || echo fail) )
  [ "$got" = "$w" ] && t_pass "$name: $got" || t_fail "$name: the helper says $got, want $w"
}
say='echo "dlfs-x: error: f.h5 is bad; give another" >&2'
want "one line, status 1" pass h_expect good 1 f.h5 10 bash -c "$say; exit 1"
want "exit 0" fail h_expect zero 1 f.h5 10 bash -c "$say; exit 0"
want "status 2, want 1" fail h_expect status 1 f.h5 10 bash -c "$say; exit 2"
want "status 3, want any (nz)" pass h_expect nz nz f.h5 10 bash -c "$say; exit 3"
want "a second line" fail h_expect two 1 f.h5 10 bash -c "$say; echo warning >&2; exit 1"
want "no dlfs- prefix" fail h_expect prefix 1 f.h5 10 bash -c 'echo "error: f.h5 is bad" >&2; exit 1'
want "no needle" fail h_expect needle 1 g.h5 10 bash -c "$say; exit 1"
want "a watched file changed" fail h_expect changed 1 f.h5 10 bash -c "$say; echo x >> watched.txt; exit 1"
echo "kept" > watched.txt
want "a watched file removed" fail h_expect removed 1 f.h5 10 bash -c "$say; rm watched.txt; exit 1"
echo "kept" > watched.txt
want "a new file (allowed)" pass h_expect new 1 f.h5 10 bash -c "$say; echo y > new.txt; exit 1"
want "a hang past the bound" fail h_expect hang 1 f.h5 1 bash -c "sleep 20; $say; exit 1"
# t_expect_error (H_LINES=dlfs): other lines allowed, but not a second dlfs- line or a crash
hook='echo "dlfs: DLFS_FAULT_X: rank 1 stalls 60 s (test hook)" >&2'
want "t_expect_error: a test hook's line" pass t_expect_error hook 1 f.h5 bash -c "$hook; $say; exit 1"
want "t_expect_error: two dlfs- lines" fail t_expect_error two 1 f.h5 bash -c "$say; $say; exit 1"
want "t_expect_error: sanitizer output" fail t_expect_error asan 1 f.h5 \
  bash -c "$say; echo '==1==ERROR: AddressSanitizer: heap-buffer-overflow' >&2; exit 1"
# h_mpi: every rank's own status. Rank 0 says why and exits 1, rank 1 waits and exits 1
# (mpirun ends it first: no status recorded, Open MPI's rule), or rank 1 exits 0 at once
# while rank 0 waits, then says why and exits 1 (rank 1's 0 is recorded: a failure)
# shellcheck disable=SC2016 # expanded by the rank's shell
good='if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then echo "dlfs-x: error: f.h5 is bad" >&2; exit 1; fi; sleep 5; exit 1'
# shellcheck disable=SC2016 # expanded by the rank's shell
zero='if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then exit 0; fi; sleep 2; echo "dlfs-x: error: f.h5 is bad" >&2; exit 1'
want "h_mpi: rank 0 says why, rank 1 ended by mpirun" pass h_mpi 2 mpi-good 1 f.h5 30 bash -c "$good"
want "h_mpi: rank 1 exits 0" fail h_mpi 2 mpi-zero 1 f.h5 30 bash -c "$zero"
t_done
