#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# EasyBuild (launch/easybuild/dlfs-VERSION.eb) end to end, as an HPC admin and a user would
# (a full build: several minutes; label easybuild, run by launch/test --extra only):
#  - the easyconfig's version is project()'s (CMakeLists.txt);
#  - the release tarball (cpack --config CPackSourceConfig.cmake) is built by `eb` with the
#    system toolchain into a scratch prefix, which generates an Lmod module;
#  - `module load dlfs` puts the module's dlfs-train, dlfs-data and man pages on the paths;
#  - the module's programs convert a tiny dataset and train on 2 ranks (mpirun), and the
#    module's slurm/train.sbatch (dry run) runs the module's dlfs-train.
# Skipped without EasyBuild (eb on PATH, $DLFS_EB, or the venv launch/install-deps --easybuild
# makes in build-eb-venv/) or without Lmod (Debian's lmod).
# usage: easybuild.sh TRAIN DATA FMNIST BUILD_DIR SOURCE_DIR
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/install-lib.sh"
build=$4 src=$5
ver=$(sed -n 's/^project(dlfs VERSION \([0-9][0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
ec=$src/launch/easybuild/dlfs-$ver.eb
[ -f "$ec" ] && grep -q "^version = '$ver'$" "$ec" && t_pass "the easyconfig of version $ver: $(basename "$ec")" \
  || { ls "$src/launch/easybuild"; t_fail "no launch/easybuild/dlfs-$ver.eb with version = '$ver' (project()'s)"; t_done; }
eb=${DLFS_EB:-$(command -v eb || true)}
[ -n "$eb" ] || [ ! -x "$src/build-eb-venv/bin/eb" ] || eb=$src/build-eb-venv/bin/eb
[ -n "$eb" ] || { t_skip "no EasyBuild (launch/install-deps --easybuild installs it)"; t_done; }
# eb wants `python` on PATH: its own venv's
PATH="$(dirname "$eb"):$PATH"
export PATH
if ! command -v module >/dev/null 2>&1 || ! module --version >/dev/null 2>&1; then
  for init in "${LMOD_PKG:-/usr/share/lmod/lmod}/init/bash" /usr/share/lmod/lmod/init/bash; do
    # shellcheck disable=SC1090 # Lmod's own init script
    [ -f "$init" ] && . "$init" && break
  done
fi
command -v module >/dev/null 2>&1 || { t_skip "no Lmod (apt-get install lmod)"; t_done; }

cd "$T_TMP" || exit 1
cpack --config "$build/CPackSourceConfig.cmake" -B tarball > cpack.out 2>&1 && [ -f "tarball/dlfs-$ver.tar.gz" ] \
  && t_pass "the release tarball dlfs-$ver.tar.gz" || { cat cpack.out; t_fail "cpack: no source tarball"; t_done; }
root_opt=()
[ "$(id -u)" -ne 0 ] || root_opt=(--allow-use-as-root-and-accept-consequences)   # CI and containers
t0=$SECONDS
if nice -n 10 "$eb" "$ec" --sourcepath="$T_TMP/tarball" --prefix="$T_TMP/eb" --tmpdir="$T_TMP/ebtmp" \
    "${root_opt[@]}" > eb.out 2>&1; then
  t_pass "eb $(basename "$ec"): built and installed in $((SECONDS - t0)) s"
else
  tail -n 40 eb.out; find "$T_TMP" -name 'easybuild-dlfs-*.log' -exec tail -n 60 {} + 2>/dev/null | tail -n 60
  t_fail "eb $(basename "$ec")"; t_done
fi
modfile=$(find "$T_TMP/eb/modules/all/dlfs" -name "$ver*" 2>/dev/null | head -n 1)
[ -n "$modfile" ] && t_pass "module file $(basename "$modfile")" || { t_fail "no module file under eb/modules/all/dlfs"; t_done; }

module use "$T_TMP/eb/modules/all"
module load "dlfs/$ver" || { t_fail "module load dlfs/$ver"; t_done; }
sw=$T_TMP/eb/software/dlfs/$ver
[ "$(command -v dlfs-train)" = "$sw/bin/dlfs-train" ] && [ "$(command -v dlfs-data)" = "$sw/bin/dlfs-data" ] \
  && t_pass "module load dlfs: dlfs-train and dlfs-data from the module" \
  || t_fail "module load dlfs: dlfs-train is '$(command -v dlfs-train)', want $sw/bin/dlfs-train"
[ "$(man -w dlfs-train 2>/dev/null)" = "$sw/share/man/man1/dlfs-train.1" ] && t_pass "man dlfs-train: the module's page" \
  || t_skip "man -w dlfs-train: '$(man -w dlfs-train 2>&1)' (no help2man where eb built?)"
mkdir run && (cd run && i_train "module dlfs" dlfs-data dlfs-train)
out=$(env -u DLFS_TRAIN -u DLFS_ROOT -u SLURM_JOB_ID DLFS_DRY_RUN=1 DLFS_LAUNCHER=mpirun DLFS_DEVICE=cpu \
  "$EBROOTDLFS/share/dlfs/slurm/train.sbatch" --data d.h5 2>&1)
grep -qF "mpirun -np 1 $sw/bin/dlfs-train " <<<"$out" && t_pass "the module's train.sbatch runs the module's dlfs-train" \
  || { echo "$out"; t_fail "the module's train.sbatch"; }
t_done
