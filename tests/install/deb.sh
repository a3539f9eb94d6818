#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# `cpack -G DEB` (cmake/DlfsInstall.cmake), unpacked into a scratch root with dpkg -x (the
# machine's own packages are never touched; about 15 s):
#  - the package's Depends, against dpkg's own database: every shared library the programs
#    link (readelf: NEEDED, found with ldd) that a Debian package provides comes from a package of Depends (or from one
#    that such a package depends on, as libopenblas0 does on its variants); libraries no
#    package owns (the CUDA toolkit) are listed; every package of Depends is installed here;
#  - the unpacked dlfs-data and dlfs-train convert a tiny dataset and train on 2 ranks;
#  - the unpacked slurm/train.sbatch (dry run, no dlfs-train on PATH) runs the unpacked
#    dlfs-train, and the man pages are in the package when the build made them.
# usage: deb.sh TRAIN DATA FMNIST BUILD_DIR MAN(ON|NOTMADE|OFF: tests/install/CMakeLists.txt)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/install-lib.sh"
build=$4 man=$5
for tool in cpack dpkg-deb dpkg-query dpkg-shlibdeps; do
  command -v $tool >/dev/null || { t_skip "no $tool here (apt-get install dpkg-dev): no .deb to test"; t_done; }
done
cd "$T_TMP" || exit 1
cpack -G DEB --config "$build/CPackConfig.cmake" -B pkg > cpack.out 2>&1 \
  || { cat cpack.out; t_fail "cpack -G DEB"; t_done; }
debs=(pkg/*.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] && t_pass "cpack -G DEB: $(basename "${debs[0]}")" \
  || { ls pkg; t_fail "cpack made no single .deb"; t_done; }
deb=${debs[0]}
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
root=$T_TMP/root
dpkg -x "$deb" "$root" || { t_fail "dpkg -x"; t_done; }

# the packages of Depends (any alternative), and the packages they depend on in turn
names() { tr ',|' '\n' | sed 's/(.*)//; s/:.*//; s/[[:space:]]//g' | grep . | sort -u; }
dep_pkgs=$(names <<<"$depends")
uninstalled=""
for alts in $(tr -d ' ' <<<"$depends" | tr ',' ' '); do
  ok=0
  for a in $(names <<<"$alts"); do
    dpkg-query -W -f='${Status}' "$a" 2>/dev/null | grep -q "install ok installed" && ok=1
  done
  [ $ok = 1 ] || uninstalled="$uninstalled $alts"
done
[ -z "$uninstalled" ] && t_pass "every package of Depends is installed here" || t_fail "Depends not installed here:$uninstalled"
closure=$dep_pkgs
for d in $dep_pkgs; do
  closure="$closure $(dpkg-query -W -f='${Depends} ${Pre-Depends}' "$d" 2>/dev/null | names)"
done
# the file names of those packages, once
for c in $closure; do dpkg-query -L "$c" 2>/dev/null; done | sed 's|.*/||' | sort -u > closure-files
site="" undeclared="" n=0
for prog in "$root/usr/bin/dlfs-train" "$root/usr/bin/dlfs-data"; do
  ldd "$prog" | sed -n 's/^[[:space:]]*\([^ ]*\) => \(\/[^ ]*\) .*/\1 \2/p' > ldd.out
  for lib in $(readelf -d "$prog" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do   # its own, not its libraries'
    path=$(awk -v l="$lib" '$1 == l {print $2}' ldd.out)
    [ -n "$path" ] || { t_fail "$(basename "$prog"): $lib is not found (ldd)"; continue; }
    n=$((n + 1))
    owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(realpath "$path")" 2>/dev/null) \
      || { site="$site $lib"; continue; }
    grep -qxF "$lib" closure-files || undeclared="$undeclared $lib(${owner%%:*})"
  done
done
[ "$n" -gt 3 ] || t_fail "ldd found only $n libraries of the programs"
[ -z "$undeclared" ] && t_pass "all $n libraries the programs load that Debian packages provide come with Depends" \
  || t_fail "libraries whose packages Depends does not bring:$undeclared"
[ -z "$site" ] || echo "libraries no package owns (the site provides them):$(tr ' ' '\n' <<<"$site" | sort -u | tr '\n' ' ')"

(mkdir run && cd run && i_train "unpacked .deb" "$root/usr/bin/dlfs-data" "$root/usr/bin/dlfs-train")
out=$(env -u DLFS_TRAIN -u DLFS_ROOT -u SLURM_JOB_ID PATH=/usr/bin:/bin DLFS_DRY_RUN=1 DLFS_LAUNCHER=mpirun \
  DLFS_DEVICE=cpu "$root/usr/share/dlfs/slurm/train.sbatch" --data d.h5 2>&1)
grep -qF "mpirun -np 1 $root/usr/bin/dlfs-train " <<<"$out" \
  && t_pass "the packaged train.sbatch runs the packaged dlfs-train" || { echo "$out"; t_fail "packaged train.sbatch"; }
if [ "$man" = ON ]; then
  [ -f "$root/usr/share/man/man1/dlfs-train.1" ] && [ -f "$root/usr/share/man/man1/dlfs-data.1" ] \
    && t_pass "the man pages are in the package" || t_fail "no man pages in the package"
elif [ "$man" = NOTMADE ]; then
  echo "(no man pages in a sanitizer, fuzz or cross build: not checked)"
else
  t_skip "no man pages: help2man was not found at configure"
fi
t_done
