#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The GPU kit suffices on its own: launch/gpu-kit makes (or refreshes: cache-aware)
# a kit, then in a private mount namespace (unshare -m) where every file that the
# kit's packages installed on THIS machine is hidden (directories they own alone:
# an empty tmpfs over them; single files in shared directories: an empty file bound
# over each; docs and man pages left alone), tests/kit/inside.sh configures and
# builds dlfs (CPU backend) with launch/kit-env.sh, as launch/gpu-check.sh --kit
# does, converts the kit's Fashion-MNIST and trains 2 ranks for 20 steps, and runs
# the GPU check's preflight with the kit. The base (libc, gcc, make, coreutils) is
# not in the kit and stays visible.
#
# Arguments: SOURCE_DIR [KIT_DIR]. The kit lives in KIT_DIR, else $DLFS_KIT_DIR, else
# ~/.cache/dlfs/gpu-kit (kept between runs: a rerun downloads nothing). Skipped (77)
# without root or unshare -m, or when no kit can be made (no package registry) and
# none is there yet.
. "$(dirname "$0")/../lib.sh"
src=$1
kit=${2:-${DLFS_KIT_DIR:-${HOME:-/root}/.cache/dlfs/gpu-kit}}
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root (mount namespace, bind mounts)"; exit 77; }
unshare -m true 2>/dev/null || { echo "skipped: unshare -m does not work here"; exit 77; }
command -v dpkg-query >/dev/null || { echo "skipped: not a Debian/Ubuntu machine"; exit 77; }

t0=$(date +%s) rc=0
"$src/launch/gpu-kit" "$kit" >"$T_TMP/kit.log" 2>&1 || rc=$?
if [ $rc -eq 0 ]; then
  t_pass "gpu-kit $kit ($(( $(date +%s) - t0 )) s): $(tail -n 2 "$T_TMP/kit.log" | head -n 1)"
elif [ $rc -eq 4 ] && [ -f "$kit/prefix/.kit-stamp" ]; then  # the download failed: no registry
  tail -n 5 "$T_TMP/kit.log"; echo "note: the kit could not be refreshed (no registry); the one in $kit is used"
elif [ $rc -eq 4 ]; then
  tail -n 5 "$T_TMP/kit.log"; echo "skipped: no kit in $kit and none could be downloaded (package registry unreachable)"; exit 77
else
  cat "$T_TMP/kit.log"; t_fail "launch/gpu-kit $kit: exit $rc"; t_done
fi

# ---- what to hide: the files of the kit's packages installed here ------------------
sed -n 's/^package=\([^=]*\)=.*/\1/p' "$kit/kit.txt" >"$T_TMP/pkgs"
: >"$T_TMP/owned"
n_inst=0
while read -r p; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || continue
  n_inst=$((n_inst + 1))
  dpkg -L "$p" >>"$T_TMP/owned"
done <"$T_TMP/pkgs"
grep -vE '^/(\.|usr|usr/share|usr/lib|usr/bin|usr/include|etc|lib|bin)?$' "$T_TMP/owned" \
  | grep -vE '^/usr/share/(doc|man|lintian|locale|bug|info|doc-base)(/|$)' | sort -u >"$T_TMP/owned.s"
# directories owned by these packages alone (nothing else in them, recursively)
: >"$T_TMP/hide-dirs"
while read -r d; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  grep -qxF -e "$d" -e "$(dirname "$d")" "$T_TMP/hide-dirs" 2>/dev/null && continue
  under=0
  while read -r h; do case $d/ in "$h"/*) under=1; break ;; esac; done <"$T_TMP/hide-dirs"
  [ $under = 1 ] && continue
  [ -z "$(find "$d" -mindepth 1 | sort | comm -23 - "$T_TMP/owned.s" | head -n 1)" ] && echo "$d" >>"$T_TMP/hide-dirs"
done < <(awk '{ print length($0), $0 }' "$T_TMP/owned.s" | sort -n | cut -d' ' -f2-)
# single files (and links) outside those directories
while read -r f; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  [ -d "$f" ] && continue
  under=0
  while read -r h; do case $f in "$h"/*) under=1; break ;; esac; done <"$T_TMP/hide-dirs"
  [ $under = 0 ] && echo "$f"
done <"$T_TMP/owned.s" >"$T_TMP/hide-files"
echo "hiding $(wc -l <"$T_TMP/hide-dirs") directories and $(wc -l <"$T_TMP/hide-files") files of $n_inst installed kit packages"
[ "$n_inst" -gt 0 ] || echo "note: none of the kit's packages is installed here: nothing to hide"

t1=$(date +%s)
if unshare -m bash "$here/inside.sh" "$src" "$kit" "$T_TMP/hide-dirs" "$T_TMP/hide-files" "$T_TMP/in"; then
  t_pass "build and training with only the kit ($(( $(date +%s) - t1 )) s)"
else
  t_fail "inside the namespace (exit $?)"
fi
t_done
