# shellcheck shell=bash
# Helpers of the hostile-input suite (sourced after tests/lib.sh). A case passes
# when the program, given one hostile input:
#   - exits != 0 (the given status) within a time bound (no hang); for mpirun
#     cases no rank exits 0: each rank records its own exit status, and a rank
#     that recorded none was ended by mpirun after another rank's non-zero exit
#     (Open MPI's rule), which mpirun's own status then reports;
#   - prints exactly one non-empty line on stderr, "dlfs-…: …", containing the
#     needle (the file or option named, what to do), and nothing else: no HDF5
#     lines, no sanitizer report, no crash;
#   - leaves every file that existed before byte-identical (the directories in
#     H_WATCH, and the real dataset, are hashed before and after).

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
  lines=$(grep -c . "$err")
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
