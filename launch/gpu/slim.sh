# shellcheck shell=bash
# Sourced by launch/gpu-kit: the slim kit, the closure of what the GPU check's build and
# runs need, out of the full unpacked prefix.
#
#   kit_slim FULL_PREFIX SLIM_PREFIX MULTIARCH LOG
#
# Copies into SLIM_PREFIX (same relative paths, links kept as links):
#   - the programs: mpirun/mpiexec (orterun), orted, mpicc (opal_wrapper), ompi_info;
#     Open MPI's and PMIx's help texts, wrapper data and configuration. Not CMake: with
#     what it loads (libarchive, libxml2, ICU's 31 MB of data) it would not fit in the
#     size a device call carries; the GPU image brings CMake 4 (3.25 or later needed);
#   - the headers and link libraries of Open MPI, HDF5 (serial), OpenBLAS (pthread) and
#     zlib; Open MPI's and PMIx's plug-ins, less those for fabrics a one-node check never
#     uses (OFI, UCX, verbs/openib, PSM, portals, usnic) and Java;
#   - the Fashion-MNIST IDX files;
#   - then, until nothing is added, every shared library one of those ELF files names in
#     DT_NEEDED that is not glibc, libgcc_s or libstdc++: from the full prefix when it is
#     there, else this machine's copy (the kit's base packages, e.g. libz.so.1: absent
#     from the debs, and not on every image), put into usr/lib/MULTIARCH/kit-base under
#     its soname: a directory of its own, which launch/kit-env.sh puts on the library
#     path of the runs only, never of the image's compiler and CMake.
# Links: an absolute one, or one whose target did not come along, is made relative to
# the library of the same soname in the kit (libz.so -> libz.so.1), else dropped with a
# line in LOG. Returns 1 with a reason on stderr when a needed library is nowhere.

# the libraries every image has (glibc, GCC's runtime): never copied into a kit
KIT_BASE_SONAMES="ld-linux-x86-64.so.2 ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 \
librt.so.1 libresolv.so.2 libutil.so.1 libanl.so.1 libmvec.so.1 libgcc_s.so.1 libstdc++.so.6"

# kit_add FULL SLIM REL: copy FULL/REL into SLIM (a link: the link and what it points to)
kit_add() {
  local full=$1 slim=$2 rel=$3 t
  [ -e "$slim/$rel" ] || [ -L "$slim/$rel" ] && return 0
  [ -e "$full/$rel" ] || [ -L "$full/$rel" ] || return 1
  (cd "$full" && cp -a --parents "$rel" "$slim/")
  if [ -L "$full/$rel" ]; then
    t=$(readlink "$full/$rel")
    case $t in /*) return 0 ;; esac   # absolute: kit_fix_links deals with it
    t=$(realpath -m -s --relative-to="$full" "$(dirname "$full/$rel")/$t")
    case $t in ../*) return 0 ;; esac
    kit_add "$full" "$slim" "$t" || true
  fi
}

# kit_elves DIR: every ELF file under DIR (regular files), one a line
kit_elves() {
  local f
  while IFS= read -r -d '' f; do
    [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] && echo "$f"
  done < <(find "$1" -type f -size +1k -print0)
}

kit_slim() {
  local full=$1 slim=$2 ma=$3 log=$4 rel g n added soname hit sys
  local lib=usr/lib/$ma
  mkdir -p "$slim"
  : >"$log"
  local seeds=(usr/bin/mpirun usr/bin/mpiexec usr/bin/mpirun.openmpi usr/bin/mpiexec.openmpi
    usr/bin/orterun usr/bin/orted usr/bin/mpicc usr/bin/mpicc.openmpi usr/bin/opal_wrapper usr/bin/ompi_info
    usr/share/openmpi etc/openmpi "$lib/openmpi/include" "$lib/openmpi/lib/libmpi.so" "$lib/libmpi.so"
    "$lib/pmix2/share" usr/include/hdf5/serial "$lib/hdf5/serial/libhdf5.so" "$lib/hdf5/serial/libhdf5_hl.so" "$lib/hdf5/serial/include" "$lib/hdf5/serial/lib"
    "$lib/hdf5/serial/libhdf5.settings" "usr/include/$ma/openblas-pthread" "$lib/openblas-pthread/libopenblas.so"
    "$lib/openblas-pthread/libopenblas.so.0" "$lib/libopenblas.so" "$lib/libopenblas.so.0" "usr/include/$ma/cblas.h"
    usr/include/zlib.h usr/include/zconf.h "$lib/libz.so" usr/share/datasets/fashion-mnist)
  for rel in "${seeds[@]}"; do
    kit_add "$full" "$slim" "$rel" || { echo "gpu-kit: the full kit lacks $rel" >&2; return 1; }
  done
  # the plug-ins Open MPI and PMIx load at run time
  for g in "$full/$lib"/openmpi/lib/openmpi3/*.so "$full/$lib"/pmix2/lib/pmix/*.so; do
    case $(basename "$g") in *ofi* | *ucx* | *openib* | *verbs* | *psm* | *portals* | *usnic* | *java*) continue ;; esac
    kit_add "$full" "$slim" "${g#"$full"/}"
  done
  # the DT_NEEDED closure
  mkdir -p "$slim/$lib/kit-base"
  for ((n = 0; n < 20; n++)); do
    added=0
    while IFS= read -r soname; do
      case " $KIT_BASE_SONAMES " in *" $soname "*) continue ;; esac
      [ -n "$(find "$slim" -name "$soname" \( -type f -o -type l \) -print -quit)" ] && continue
      hit=$(find "$full" -name "$soname" \( -type f -o -type l \) -print -quit)
      if [ -n "$hit" ] && [ -e "$hit" ]; then
        kit_add "$full" "$slim" "${hit#"$full"/}"; echo "closure: $soname from the full kit (${hit#"$full"/})" >>"$log"
      elif sys=$(ldconfig -p 2>/dev/null | awk -v s="$soname" '$1 == s && /x86-64|AArch64|64bit/ && !n++ { print $NF }') \
           && [ -n "$sys" ]; then
        cp -L "$sys" "$slim/$lib/kit-base/$soname"; echo "closure: $soname from this machine ($sys)" >>"$log"
      else
        echo "gpu-kit: no $soname anywhere (needed by the kit's libraries)" >&2; return 1
      fi
      added=$((added + 1))
    done < <(kit_elves "$slim" | xargs -r readelf -d 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)
    [ $added -eq 0 ] && break
  done
  kit_fix_links "$slim" "$lib" "$log"
}

# kit_fix_links SLIM LIBDIR LOG: no absolute or dangling link stays
kit_fix_links() {
  local slim=$1 lib=$2 log=$3 l t base so hit
  while IFS= read -r -d '' l; do
    t=$(readlink "$l")
    case $t in /*) ;; *) [ -e "$l" ] && continue ;; esac
    base=$(basename "$l")
    # libX.so or libX.so.N.M -> the library of soname libX.so.N in the kit
    so=$(sed -n 's/^\(lib.*\.so\.[0-9]*\).*/\1/p' <<<"$base")
    [ -n "$so" ] || so=$(basename "$t" | sed -n 's/^\(lib.*\.so\.[0-9]*\).*/\1/p')
    hit=""
    [ -n "$so" ] && [ "$so" != "$base" ] && hit=$(find "$slim/$lib" "$slim/$lib/kit-base" "$slim/lib" -maxdepth 1 -name "$so" -print -quit 2>/dev/null)
    if [ -n "$hit" ]; then
      ln -sfn "$(realpath -s --relative-to="$(dirname "$l")" "$hit")" "$l"
      echo "link: ${l#"$slim"/} -> $(readlink "$l") (was $t)" >>"$log"
    else
      rm -f "$l"; echo "link: ${l#"$slim"/} dropped (pointed to $t, not in the kit)" >>"$log"
    fi
  done < <(find "$slim" -type l -print0)
}
