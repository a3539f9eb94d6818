#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The test drivers and the mutation kit pass `bash -n` and `shellcheck -x` (ctest
# tests_shellcheck, label unit; a few seconds). Covered: tests/*.sh and the drivers of
# tests/train, tests/mpi, tests/ckpt, tests/hostile (but train.sh, ckpt-files.sh and
# data-cli.sh, not yet clean), tests/mutants, and launch/mutants, gpu-check.sh (with the
# steps it sources from launch/gpu/) and slurm-local (with launch/slurm/net.sh). The other
# folders' scripts are to join as they are made clean.
# usage: shellcheck.sh SOURCE_DIR
. "$(dirname "$0")/lib.sh"
root=$1
command -v shellcheck >/dev/null || { echo "skipped: no shellcheck (apt-get install shellcheck)"; exit 77; }
cd "$root" || exit 1
n=0
for f in tests/*.sh tests/train/*.sh tests/mpi/*.sh tests/ckpt/*.sh tests/hostile/*.sh tests/mutants/*.sh launch/mutants \
    launch/gpu-check.sh launch/slurm-local; do
  case $f in tests/hostile/train.sh | tests/hostile/ckpt-files.sh | tests/hostile/data-cli.sh) continue ;; esac
  n=$((n + 1))
  if ! out=$(bash -n "$f" 2>&1); then t_fail "$f: bash -n: $out"; continue; fi
  out=$(shellcheck -x "$f" 2>&1) && t_pass "$f" || { t_fail "$f: shellcheck"; echo "$out" >&2; }
done
[ $n -ge 20 ] || t_fail "only $n scripts found under $root"
t_done
