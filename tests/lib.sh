# Shared helpers for the shell test drivers (sourced). Each driver gets the
# build's program paths as arguments and a scratch directory from mktemp.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/mpi-env.sh"
T_FAILS=0
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dlfs-test.XXXXXX")
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$T_TMP"' EXIT

t_fail() { echo "FAIL: $*" >&2; T_FAILS=$((T_FAILS + 1)); }
t_pass() { echo "ok: $*"; }
t_done() { if [ "$T_FAILS" -eq 0 ]; then echo "all checks passed"; exit 0; else echo "$T_FAILS check(s) failed" >&2; exit 1; fi; }

# t_digest FILE: params_sha256 of the final metrics line
t_digest() { sed -n 's/.*"params_sha256": "\([0-9a-f]*\)".*/\1/p' "$1" | tail -n 1; }
# t_acc FILE: test_acc of the final metrics line
t_acc() { sed -n 's/.*"event": "final".*"test_acc": \([0-9.]*\).*/\1/p' "$1" | tail -n 1; }

# t_expect_error NAME WANT_RC NEEDLE CMD...: CMD must exit WANT_RC (or any non-zero
# if WANT_RC is "nz"), print exactly one "dlfs-…: " line on stderr containing
# NEEDLE, and no sanitizer/crash output.
t_expect_error() {
  local name=$1 want=$2 needle=$3; shift 3
  local out="$T_TMP/err.$$.txt" rc=0
  timeout 120 "$@" >"$out.stdout" 2>"$out" </dev/null || rc=$?
  local lines; lines=$(grep -c '^dlfs-[a-z]*: ' "$out")
  if [ "$rc" -eq 0 ] || { [ "$want" != nz ] && [ "$rc" -ne "$want" ]; }; then
    t_fail "$name: exit code $rc, want $want"; cat "$out" >&2
  elif [ "$rc" -eq 124 ]; then
    t_fail "$name: timed out (hang)"
  elif [ "$lines" -ne 1 ]; then
    t_fail "$name: $lines error lines on stderr, want exactly 1"; cat "$out" >&2
  elif ! grep -qF -- "$needle" "$out"; then
    t_fail "$name: message lacks '$needle'"; cat "$out" >&2
  elif grep -qE 'AddressSanitizer|runtime error|Segmentation|core dumped|Abort|HDF5-DIAG' "$out"; then
    t_fail "$name: crash or sanitizer output"; cat "$out" >&2
  else
    t_pass "$name ($(grep '^dlfs-' "$out"))"
  fi
}
