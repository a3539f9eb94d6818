#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# `cmake --install BUILD --prefix P` (cmake/DlfsInstall.cmake), then the installed copy alone
# (a few seconds):
#  - the programs, the SLURM scripts, the docs and (when help2man was found) the man pages
#    are where the README says; the programs name no library path of the build tree;
#  - the installed dlfs-data converts a tiny dataset and the installed dlfs-train trains on
#    it on 2 ranks, to the same parameters as the build tree's dlfs-train;
#  - each man page documents every long option of its program's --help;
#  - the installed slurm/train.sbatch (dry run, dlfs-train on no PATH) runs the installed
#    dlfs-train, not a checkout's; so does the installed dlfs-scaling-study (on PATH as a link
#    to PREFIX/share/dlfs/launch, with its package launch/study), and it writes its report,
#    with the commit of the installed dlfs-train's --version.
# usage: tree.sh TRAIN DATA FMNIST BUILD_DIR MAN(ON|NOTMADE|OFF: tests/install/CMakeLists.txt)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/install-lib.sh"
build_train=$1 build=$4 man=$5
p=$T_TMP/prefix
cmake --install "$build" --prefix "$p" > "$T_TMP/install.out" 2>&1 \
  && t_pass "cmake --install --prefix: $(grep -c Installing "$T_TMP/install.out") files" \
  || { cat "$T_TMP/install.out"; t_fail "cmake --install"; t_done; }
missing=""
for f in bin/dlfs-train bin/dlfs-data share/dlfs/slurm/train.sbatch share/dlfs/slurm/train-multinode.sbatch \
    share/dlfs/slurm/scaling.sbatch share/dlfs/slurm/README.md share/dlfs/README.md share/dlfs/launch/mpi-env.sh \
    share/dlfs/launch/study/perfmodel.py share/dlfs/launch/study/hardware-model.json bin/dlfs-scaling-study \
    bin/dlfs-scaling-report bin/dlfs-hardware-guide; do
  [ -e "$p/$f" ] || missing="$missing $f"
done
[ -z "$missing" ] && t_pass "the programs, the SLURM scripts and the docs are installed" \
  || t_fail "not installed:$missing"
[ -x "$p/bin/dlfs-train" ] && [ -x "$p/share/dlfs/slurm/train.sbatch" ] && t_pass "programs and scripts executable" \
  || t_fail "the installed programs or scripts are not executable"
build_abs=$(cd "$build" && pwd -P)
if readelf -d "$p/bin/dlfs-train" "$p/bin/dlfs-data" | grep -E 'R(UN)?PATH' | grep -qF "$build_abs"; then
  t_fail "the installed programs' RUNPATH names the build tree: $(readelf -d "$p/bin/dlfs-train" | grep PATH)"
else
  t_pass "no RUNPATH into the build tree"
fi

cd "$T_TMP" && mkdir inst tree || exit 1
(cd inst && i_train "installed" "$p/bin/dlfs-data" "$p/bin/dlfs-train")
(cd tree && i_train "build tree" "$2" "$build_train" >/dev/null)
a=$(t_digest inst/m.jsonl) b=$(t_digest tree/m.jsonl)
[ -n "$a" ] && [ "$a" = "$b" ] && t_pass "installed and build-tree trainings agree (params ${a:0:12})" \
  || t_fail "the installed copy trains to params '$a', the build tree's to '$b'"

if [ "$man" = ON ]; then
  for prog in dlfs-train dlfs-data; do
    page=$p/share/man/man1/$prog.1
    [ -f "$page" ] || { t_fail "$page not installed"; continue; }
    text=$(MANWIDTH=200 man -l "$page" 2>/dev/null || groff -man -Tutf8 "$page")
    opts=$("$p/bin/$prog" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u)
    [ "$(wc -l <<<"$opts")" -ge 3 ] || { t_fail "$prog --help names fewer than 3 options"; continue; }
    gone=""
    for o in $opts; do grep -qF -- "$o" <<<"$text" || gone="$gone $o"; done
    [ -z "$gone" ] && t_pass "$prog(1) documents all $(wc -l <<<"$opts") long options of --help" \
      || t_fail "$prog(1) lacks:$gone"
  done
elif [ "$man" = NOTMADE ]; then
  echo "(no man pages in a sanitizer, fuzz or cross build: not checked)"
else
  t_skip "no man pages: help2man was not found at configure (apt-get install help2man)"
fi

# the installed script, submitted from elsewhere, with no dlfs-train on PATH
out=$(cd "$T_TMP" && env -u DLFS_TRAIN -u DLFS_ROOT -u SLURM_JOB_ID PATH=/usr/bin:/bin DLFS_DRY_RUN=1 DLFS_LAUNCHER=mpirun \
  DLFS_DEVICE=cpu "$p/share/dlfs/slurm/train.sbatch" --data d.h5 2>&1)
grep -qF "mpirun -np 1 $p/bin/dlfs-train " <<<"$out" \
  && t_pass "the installed train.sbatch runs the installed dlfs-train" \
  || { echo "$out"; t_fail "the installed train.sbatch does not run $p/bin/dlfs-train"; }
out=$(cd "$T_TMP" && env -u DLFS_TRAIN PATH=/usr/bin:/bin "$p/bin/dlfs-scaling-study" --ranks 1 --mode weak \
  --device cpu --model "in(12),dense(8),relu,dense(3)" --batch-per-rank 8 --steps 2 --warmup 1 --out study 2>&1)
grep -qF "mpirun -np 1 --bind-to none $p/bin/dlfs-train " <<<"$out" && [ -s "$T_TMP/study/report.md" ] \
  && t_pass "the installed dlfs-scaling-study runs the installed dlfs-train and writes its report" \
  || { echo "$out"; t_fail "the installed dlfs-scaling-study"; }
want=$("$p/bin/dlfs-train" --version | sed -n 's/^commit: //p')
grep -qF "\"commit\": \"$want\"" "$T_TMP/study/scaling.json" && t_pass "the study records the installed trainer's commit ($want)" \
  || { grep -o '"commit": "[^"]*"' "$T_TMP/study/scaling.json"; t_fail "scaling.json's commit is not the trainer's $want"; }
t_done
