#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The GPU kit suffices on its own: launch/gpu-kit makes (or refreshes: cache-aware)
# a kit and its slim archive, checks the archive (with the source tree at most the 56
# MiB a device call carries, Fashion-MNIST in it, no absolute or dangling link, every
# DT_NEEDED of every ELF file resolvable in the kit or glibc/libgcc/libstdc++: readelf),
# unpacks it, then in a private mount namespace (unshare -m) where this machine's copy
# of every file the kit holds is hidden (an empty file bound over each: libraries,
# headers, programs, the dataset; also the base libraries the kit copied, e.g.
# libz.so.1), tests/kit/inside.sh configures and builds dlfs (CPU backend) with
# launch/gpu/kit-env.sh, as launch/gpu-check.sh --kit does, converts the kit's
# Fashion-MNIST and trains 2 ranks for 20 steps, and runs the GPU check's preflight
# with the kit. glibc, gcc, make, coreutils and CMake are not in the kit and stay
# visible (the GPU image brings CMake).
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
elif [ $rc -eq 4 ] && [ -f "$kit/dlfs-gpu-kit.tar.xz" ]; then  # the download failed: no registry
  tail -n 5 "$T_TMP/kit.log"; echo "note: the kit could not be refreshed (no registry); the one in $kit is used"
elif [ $rc -eq 4 ]; then
  tail -n 5 "$T_TMP/kit.log"; echo "skipped: no kit in $kit and none could be downloaded (package registry unreachable)"; exit 77
else
  cat "$T_TMP/kit.log"; t_fail "launch/gpu-kit $kit: exit $rc"; t_done
fi

# ---- the slim archive: size, links, DT_NEEDED closure -------------------------------
arc=$kit/dlfs-gpu-kit.tar.xz
[ -f "$arc" ] || { t_fail "no $arc"; t_done; }
x=$T_TMP/x
mkdir -p "$x" && tar -C "$x" -xJf "$arc" || { t_fail "tar -xJf $arc"; t_done; }
x=$x/dlfs-gpu-kit
# what a device call carries: the tree (tracked and untracked files git does not ignore)
# and the archive (the dataset is in it): at most 56 MiB
if tree=$(git -C "$src" ls-files -co --exclude-standard -z 2>/dev/null | (cd "$src" && du -cb --files0-from=- 2>/dev/null) | tail -n 1 | cut -f1) \
   && [ -n "$tree" ]; then
  a=$(stat -c %s "$arc") total=$((tree + a))
  [ "$total" -le $((56 * 1024 * 1024)) ] && t_pass "archive $((a / 1024)) KiB + tree $((tree / 1024)) KiB = $((total / 1048576)) MiB <= 56 MiB" \
    || t_fail "archive $((a / 1024)) KiB + tree $((tree / 1024)) KiB = $((total / 1048576)) MiB > 56 MiB"
else
  echo "note: no git checkout: the tree's size is not counted"
fi
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -s "$x/prefix/usr/share/datasets/fashion-mnist/$f" ] || t_fail "the archive lacks Fashion-MNIST's $f"
done
abs=$(find "$x" -type l -lname '/*' | head -n 5) dangling=$(find -L "$x" -type l | head -n 5)
[ -z "$abs" ] && t_pass "no absolute link" || t_fail "absolute links: $abs"
[ -z "$dangling" ] && t_pass "no dangling link" || t_fail "dangling links: $dangling"
# every DT_NEEDED of every ELF file resolves in the directories the kit's environment puts
# on LD_LIBRARY_PATH (or the file's own RUNPATH inside the kit), or is glibc, libgcc_s or
# libstdc++: what every image has
command -v readelf >/dev/null || { t_fail "no readelf (binutils)"; t_done; }
ld_dirs=$( . "$src/launch/gpu/kit-env.sh" && LD_LIBRARY_PATH="" && dlfs_kit_env "$x" >/dev/null && tr ':' '\n' <<<"$LD_LIBRARY_PATH")
base=" ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libresolv.so.2 libutil.so.1 libanl.so.1 libmvec.so.1 libgcc_s.so.1 libstdc++.so.6 "
n_elf=0 n_need=0 unresolved=()
while IFS= read -r -d '' f; do
  [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
  n_elf=$((n_elf + 1))
  dyn=$(readelf -d "$f" 2>/dev/null)
  dirs=$ld_dirs
  rp=$(sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p' <<<"$dyn" | tr ':' '\n' | sed "s|\$ORIGIN|$(dirname "$f")|")
  [ -n "$rp" ] && dirs=$(printf '%s\n%s' "$dirs" "$rp")
  while IFS= read -r so; do
    n_need=$((n_need + 1))
    case $base in *" $so "*) continue ;; esac
    ok=0
    while IFS= read -r d; do case $d in "$x"/*) [ -e "$d/$so" ] && { ok=1; break; } ;; esac; done <<<"$dirs"
    [ $ok = 1 ] || unresolved+=("${f#"$x"/} needs $so")
  done < <(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$dyn")
done < <(find "$x" -type f -print0)
[ "$n_elf" -gt 20 ] || t_fail "only $n_elf ELF files in the kit"
[ ${#unresolved[@]} -eq 0 ] && t_pass "DT_NEEDED closure: $n_need entries of $n_elf ELF files resolve in the kit or glibc/libgcc/libstdc++" \
  || t_fail "${#unresolved[@]} DT_NEEDED entries unresolved: ${unresolved[*]:0:5}"

# ---- what to hide: this machine's copy of every file the kit holds ---------------------
# but the libraries the toolchain itself loads (compiler, linker, CMake, make, ninja):
# every image that builds has its own, and gpu-check builds without the kit's kit-base
: >"$T_TMP/hide-dirs"
for prog in "$(gcc -print-prog-name=cc1)" "$(gcc -print-prog-name=collect2)" "$(command -v ld)" "$(command -v as)" \
            "$(command -v cmake)" "$(command -v ctest)" "$(command -v make)" "$(command -v ninja)" "$(command -v gcc)"; do
  [ -n "$prog" ] && [ -x "$prog" ] && ldd "$prog" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
done | xargs -r realpath | sort -u >"$T_TMP/toolchain-libs"
while IFS= read -r -d '' f; do
  rel=${f#"$x/prefix/"}
  case $rel in */kit-base/*) rel=${rel%%/kit-base/*}/$(basename "$rel") ;; esac  # copied from /usr/lib/MA
  for c in "/$rel" "/${rel/#usr\/lib\//lib/}"; do
    [ -e "$c" ] || continue
    r=$(realpath "$c")
    [ -f "$r" ] && echo "$r"
  done
done < <(find "$x/prefix" \( -type f -o -type l \) -print0) | sort -u | comm -23 - "$T_TMP/toolchain-libs" >"$T_TMP/hide-files"
echo "hiding this machine's copies of $(wc -l <"$T_TMP/hide-files") files the kit holds (not the $(wc -l <"$T_TMP/toolchain-libs") libraries the toolchain loads)"
kit=$x

t1=$(date +%s)
if unshare -m bash "$here/inside.sh" "$src" "$kit" "$T_TMP/hide-dirs" "$T_TMP/hide-files" "$T_TMP/in"; then
  t_pass "build and training with only the kit ($(( $(date +%s) - t1 )) s)"
else
  t_fail "inside the namespace (exit $?)"
fi
# the device recipe's command (launch/README.md), as written, in a namespace of its own
t1=$(date +%s)
if unshare -m bash "$here/recipe.sh" "$src" "$arc" "$T_TMP/hide-files" "$T_TMP/recipe"; then
  t_pass "the device recipe, dry run with only the kit ($(( $(date +%s) - t1 )) s)"
else
  t_fail "the device recipe (exit $?)"
fi
t_done
