# shellcheck shell=bash source-path=SCRIPTDIR
# Shared helpers for the shell test drivers (sourced). Each driver gets the
# build's program paths as arguments and a scratch directory from mktemp.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/mpi-env.sh"
# T_FAST_ABORT: the environment of a run that is expected to fail (t_expect_error, the
# hostile suite's h_expect and h_mpi). When one rank exits non-zero, mpirun stops the
# others: SIGCONT, SIGTERM, then SIGKILL, sleeping odls_base_sigkill_timeout seconds
# (default 1) after each signal, 2 s in every failing run, hundreds of which the error
# suites make. Only those runs skip the grace: a run that stops on a signal keeps Open
# MPI's default, as users have it, since its ranks still finish their checkpoint then.
T_FAST_ABORT=(env OMPI_MCA_odls_base_sigkill_timeout=0)
T_FAILS=0
T_SKIPS=0
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dlfs-test.XXXXXX")
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$T_TMP"' EXIT

t_fail() { echo "FAIL: $*" >&2; T_FAILS=$((T_FAILS + 1)); }
t_pass() { echo "ok: $*"; }
# t_skip WHY: a check that cannot run here. The driver then ends with 77 (ctest:
# skipped) unless a check failed: a test with a check not run never reports a pass.
t_skip() { echo "SKIPPED: $*"; T_SKIPS=$((T_SKIPS + 1)); }
t_done() {
  if [ "$T_FAILS" -ne 0 ]; then echo "$T_FAILS check(s) failed" >&2; exit 1; fi
  if [ "$T_SKIPS" -ne 0 ]; then echo "$T_SKIPS check(s) skipped, the others passed: reported as skipped"; exit 77; fi
  echo "all checks passed"; exit 0
}

# The Python the build found with numpy and h5py (tests/dlfs_tests.cmake passes it
# as PYTHON; empty when configured with -DDLFS_PYTHON_CHECKS=OFF and none has them).
# Run by hand without PYTHON: the python3 on PATH.
T_PY=${PYTHON-python3}
# t_have_h5py: whether $T_PY can import numpy and h5py
t_have_h5py() { [ -n "$T_PY" ] && "$T_PY" -c 'import numpy, h5py' >/dev/null 2>&1; }
if [ -n "$T_PY" ]; then T_NO_H5PY="$T_PY cannot import numpy and h5py"; else T_NO_H5PY="no Python with numpy and h5py was found at configure"; fi
T_NO_H5PY="$T_NO_H5PY (apt-get install python3-numpy python3-h5py, or configure with -DPython3_EXECUTABLE=PYTHON)"

# t_small FM: the small slice of the Fashion-MNIST fixture FM (12800 train, 2000 test
# images; tests/fmnist-convert.sh), for checks of bits, messages and files
t_small() { echo "${1%.h5}-small.h5"; }

# t_digest FILE: params_sha256 of the final metrics line
t_digest() { sed -n 's/.*"params_sha256": "\([0-9a-f]*\)".*/\1/p' "$1" | tail -n 1; }
# t_acc FILE: test_acc of the final metrics line
t_acc() { sed -n 's/.*"event": "final".*"test_acc": \([0-9.]*\).*/\1/p' "$1" | tail -n 1; }
# t_train_loss FILE: train_loss of the last epoch line
t_train_loss() { sed -n 's/.*"train_loss": \([0-9.]*\).*/\1/p' "$1" | tail -n 1; }
# t_within NAME VALUE LO HI: LO <= VALUE <= HI (VALUE a number)
t_within() {
  if [ -n "$2" ] && awk -v v="$2" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v >= lo && v <= hi) }'; then
    t_pass "$1 $2 in [$3, $4]"
  else t_fail "$1 '$2' outside [$3, $4]"; fi
}

# ---- the one assertion helper of the error cases (the bad-input suite, tests/hostile/,
# and every driver's error case). A case passes when the program, given one bad input:
#   - exits != 0 (the given status; "nz": any) within a time bound (no hang); for mpirun
#     cases run by h_mpi no rank exits 0: each rank records its own exit status, and a rank
#     that recorded none was ended by mpirun after another rank's non-zero exit (Open MPI's
#     rule), which mpirun's own status then reports;
#   - prints exactly one non-empty line on stderr, "dlfs-…: …", containing the needle (the
#     file or option named, what to do), and nothing else: no HDF5 lines, no sanitizer
#     report, no crash (with H_LINES=dlfs, as t_expect_error runs it: exactly one "dlfs-…: "
#     line, other lines allowed but those of a crash: a test hook's announcement, NCCL's
#     warnings on a GPU machine);
#   - leaves every file that existed before byte-identical (the paths in H_WATCH, T_TMP by
#     default, are hashed before and after).
# Front ends: t_expect_error (bound 120 s, H_LINES=dlfs: the drivers outside the bad-input
# suite, whose runs may print a test hook's line), h_expect (a bound of its own), h_mpi (NP ranks,
# each recording its exit status), h_train (dlfs-train on 1 and 2 ranks).
H_WATCH=("$T_TMP")
H_OUT="$T_TMP/.hostile"   # the suite's own files (outputs, rank exits): not watched
H_RANKS="$H_OUT/ranks"
export H_RANKS
mkdir -p "$H_OUT"

# sha256 of every file under the watched paths, one line each, sorted (not the checkpoint
# directories' lock files .dlfs-lock: each run that takes the lock writes its pid into it)
h_snapshot() {
  find "${H_WATCH[@]}" -path "$H_OUT" -prune -o -name .dlfs-lock -prune -o -type f -print0 2>/dev/null \
    | xargs -0 -r sha256sum | LC_ALL=C sort
}

# h_check NAME WANT_RC NEEDLE NP ERR RC SECONDS BEFORE: the verdict on one run.
h_check() {
  local name=$1 want=$2 needle=$3 np=$4 err=$5 rc=$6 secs=$7 before=$8 lines missing r
  if [ "${H_LINES:-all}" = dlfs ]; then lines=$(grep -c '^dlfs-[a-z]*: ' "$err"); else lines=$(grep -c . "$err"); fi
  missing=$(LC_ALL=C comm -23 <(echo "$before") <(h_snapshot))
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then t_fail "$name: timed out after ${secs}s (a hang)"; return; fi
  if [ "$rc" -eq 0 ] || { [ "$want" != nz ] && [ "$rc" -ne "$want" ]; }; then
    t_fail "$name: exit status $rc, want $want"; cat "$err" >&2; return
  fi
  local recorded=0
  for ((r = 0; r < np; r++)); do
    [ -f "$H_RANKS/$r" ] || continue
    recorded=$((recorded + 1))
    [ "$(cat "$H_RANKS/$r")" != 0 ] || { t_fail "$name: rank $r exited 0"; return; }
  done
  [ "$np" -eq 0 ] || [ "$recorded" -gt 0 ] || { t_fail "$name: no rank recorded its exit status"; return; }
  if [ "$lines" -ne 1 ] || ! grep -q '^dlfs-[a-z]*: ' "$err"; then
    t_fail "$name: $lines line(s) on stderr, want exactly one 'dlfs-…: ' line"; cat "$err" >&2
  elif ! grep -qF -- "$needle" "$err"; then
    t_fail "$name: the message lacks '$needle'"; cat "$err" >&2
  elif grep -qE 'Sanitizer|runtime error|Segmentation|core dumped|Abort|^HDF5|HDF5-DIAG' "$err"; then
    t_fail "$name: crash, sanitizer or HDF5 output"; cat "$err" >&2
  elif [ -n "$missing" ]; then
    t_fail "$name: files that existed before were changed or removed:"; echo "$missing" >&2
  else
    t_pass "$name (${secs}s: $(cut -c1-300 "$err"))"
  fi
}

# h_expect NAME WANT_RC NEEDLE BOUND_S CMD...: a program run as it is.
h_expect() {
  local name=$1 want=$2 needle=$3 bound=$4 rc=0 before t0; shift 4
  before=$(h_snapshot)
  t0=$SECONDS
  timeout -k 5 "$bound" "${T_FAST_ABORT[@]}" "$@" >"$H_OUT/out" 2>"$H_OUT/err" </dev/null || rc=$?
  h_check "$name" "$want" "$needle" 0 "$H_OUT/err" "$rc" $((SECONDS - t0)) "$before"
}

# h_mpi NP NAME WANT_RC NEEDLE BOUND_S PROG ARGS...: PROG on NP ranks, each
# rank's own exit status recorded.
h_mpi() {
  local np=$1 name="$2 (np $1)" want=$3 needle=$4 bound=$5 rc=0 before t0; shift 5
  rm -rf "$H_RANKS" && mkdir -p "$H_RANKS"
  before=$(h_snapshot)
  t0=$SECONDS
  # shellcheck disable=SC2016 # expanded by the rank's shell
  timeout -k 5 "$bound" "${T_FAST_ABORT[@]}" mpirun -np "$np" bash -c '"$@"; rc=$?; echo $rc > "$H_RANKS/$OMPI_COMM_WORLD_RANK"; exit $rc' \
    rank "$@" >"$H_OUT/out" 2>"$H_OUT/err" </dev/null || rc=$?
  h_check "$name" "$want" "$needle" "$np" "$H_OUT/err" "$rc" $((SECONDS - t0)) "$before"
}

# h_train NAME WANT_RC NEEDLE BOUND_S TRAIN ARGS...: dlfs-train on 1 and on 2 ranks.
h_train() {
  local name=$1 want=$2 needle=$3 bound=$4; shift 4
  h_mpi 1 "$name" "$want" "$needle" "$bound" "$@"
  h_mpi 2 "$name" "$want" "$needle" "$bound" "$@"
}

# t_expect_error NAME WANT_RC NEEDLE CMD...: h_expect with a bound of 120 s, H_LINES=dlfs
t_expect_error() { H_LINES=dlfs h_expect "$1" "$2" "$3" 120 "${@:4}"; }

# t_h5_raw FILE DATASET OUT: the dataset's values as raw little-endian bytes (h5dump,
# hdf5-tools); non-zero when h5dump is missing or the dataset is not there
t_h5_raw() { command -v h5dump >/dev/null && h5dump -d "$2" -b LE -o "$3" "$1" >/dev/null 2>&1 && [ -s "$3" ]; }

# t_params FILE: every float of a checkpoint's /params (datasets in h5ls's order, each
# row-major), one per line, through h5dump and od: no Python needed. Empty on failure.
t_params() {
  local d
  h5ls -r "$1" 2>/dev/null | sed -n 's|^\(/params/[^ ]*\) *Dataset .*|\1|p' | while read -r d; do
    h5dump -d "$d" -b LE -o "$T_TMP/param.raw" "$1" >/dev/null 2>&1 && od -An -v -tf4 -w4 "$T_TMP/param.raw"
  done
}
# t_params_close NAME INIT REF GOT TOL: the checkpoints' parameters GOT agree with REF to
# TOL of the largest update of REF (|REF - INIT|), element by element
t_params_close() {
  local name=$1 r
  if ! command -v h5dump >/dev/null; then t_skip "$name: no h5dump (apt-get install hdf5-tools)"; return; fi
  t_params "$2" > "$T_TMP/p0"; t_params "$3" > "$T_TMP/p1"; t_params "$4" > "$T_TMP/p2"
  if r=$(paste "$T_TMP/p0" "$T_TMP/p1" "$T_TMP/p2" | awk -v tol="$5" '
    NF != 3 { bad = 1; exit } { u = $2 - $1; if (u < 0) u = -u; if (u > s) s = u; d = $3 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ }
    END { if (bad || !n || !s) { print "unreadable"; exit 1 }
          printf "%d parameters: max |got - ref| %.3g, largest update %.3g, ratio %.2g", n, m, s, m / s; exit !(m <= tol * s) }')
  then t_pass "$name: $r (tolerance $5)"; else t_fail "$name: $r (tolerance $5)"; fi
}
