# shellcheck shell=bash
# shellcheck disable=SC2034 # the KIT_* variables are for the caller
# Sourced: the environment that builds and runs dlfs from a kit made by launch/gpu-kit
# (launch/gpu-check.sh --kit DIR uses it, and so does the kit's test, tests/kit/).
#
#   . launch/gpu/kit-env.sh && dlfs_kit_env DIR || exit 1
#
# Puts the kit's prefix first: PATH (cmake in a full kit, mpirun, mpicc), LD_LIBRARY_PATH
# (Open MPI, HDF5, OpenBLAS and what they load; last, a slim kit's copies of base
# libraries, lib/MULTIARCH/kit-base), CMAKE_PREFIX_PATH and PKG_CONFIG_PATH, and tells
# the unpacked Open MPI and PMIx where they now live (OPAL_PREFIX, OPAL_SYSCONFDIR,
# PMIX_INSTALL_PREFIX: they were built for /usr and relocate by these). Sets, without
# exporting:
#   KIT_DIR KIT_PREFIX KIT_MULTIARCH KIT_OS  where and what the kit is
#   KIT_CMAKE_ARGS   the configure options that name the kit's HDF5 (HDF5_ROOT: its
#                    h5cc wrapper has /usr written in it, so it is not used), OpenBLAS,
#                    cblas.h, zlib and mpicc
#   KIT_FMNIST_DIR   the kit's Fashion-MNIST IDX files ("" when it has none)
#   KIT_NCCL_WHEEL   an nvidia-nccl wheel in DIR/wheels ("" when none)
#   KIT_BUILD_LD_LIBRARY_PATH  LD_LIBRARY_PATH without kit-base: for configure and build,
#                    so that the image's compiler and CMake load the image's own libraries
#   KIT_ORIG_LD_LIBRARY_PATH   LD_LIBRARY_PATH before (for the image's Python)
# Returns 1 with one line on stderr when DIR is not such a kit.
dlfs_kit_env() {
  local dir=$1
  if [ ! -f "$dir/kit.txt" ] || [ ! -d "$dir/prefix/usr" ]; then
    echo "kit $dir: not a kit made by launch/gpu-kit (no kit.txt or prefix/usr in it)" >&2
    return 1
  fi
  KIT_DIR=$(cd "$dir" && pwd)
  KIT_PREFIX=$KIT_DIR/prefix
  KIT_MULTIARCH=$(sed -n 's/^multiarch=//p' "$KIT_DIR/kit.txt")
  KIT_OS=$(sed -n 's/^os_name=//p' "$KIT_DIR/kit.txt")
  local p=$KIT_PREFIX/usr ma=$KIT_MULTIARCH
  if [ -z "$ma" ] || [ ! -d "$p/lib/$ma" ]; then
    echo "kit $dir: kit.txt names multiarch '$ma' but $p/lib/$ma does not exist" >&2
    return 1
  fi
  export PATH="$p/bin${PATH:+:$PATH}"
  KIT_ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
  KIT_BUILD_LD_LIBRARY_PATH="$p/lib/$ma:$KIT_PREFIX/lib/$ma:$p/lib/$ma/openblas-pthread:$p/lib/$ma/openmpi/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local base=$p/lib/$ma/kit-base
  if [ -d "$base" ]; then export LD_LIBRARY_PATH="$KIT_BUILD_LD_LIBRARY_PATH:$base"
  else export LD_LIBRARY_PATH=$KIT_BUILD_LD_LIBRARY_PATH; fi
  export CMAKE_PREFIX_PATH="$p${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_PATH="$p/lib/$ma/pkgconfig:$p/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export OPAL_PREFIX=$p
  [ -d "$KIT_PREFIX/etc/openmpi" ] && export OPAL_SYSCONFDIR=$KIT_PREFIX/etc/openmpi
  local pmix
  for pmix in "$p/lib/$ma"/pmix*; do [ -d "$pmix/lib" ] && export PMIX_INSTALL_PREFIX=$pmix; done
  # mpicc is a kit program: it runs with the kit's library path (kit-base too), also when
  # CMake runs it from a build without kit-base on its path
  local mpicc=$p/bin/mpicc w
  w=$KIT_DIR/.run   # next to the kit when it is writable, else a temporary folder
  mkdir -p "$w" 2>/dev/null && [ -w "$w" ] || w=$(mktemp -d "${TMPDIR:-/tmp}/dlfs-kit-mpicc.XXXXXX") || w=""
  if [ -d "$base" ] && [ -n "$w" ]; then
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$LD_LIBRARY_PATH" "$p/bin/mpicc" >"$w/mpicc"
    chmod +x "$w/mpicc" && mpicc=$w/mpicc
  fi
  KIT_CMAKE_ARGS=(
    "-DMPI_C_COMPILER=$mpicc"
    "-DHDF5_ROOT=$p/lib/$ma/hdf5/serial"
    "-DBLAS_openblas_LIBRARY=$p/lib/$ma/openblas-pthread/libopenblas.so"
    "-DDLFS_CBLAS_INCLUDE_DIR=$p/include/$ma/openblas-pthread"
    "-DZLIB_INCLUDE_DIR=$p/include"
    "-DZLIB_LIBRARY=$p/lib/$ma/libz.so"
  )
  # the slim kit's copies of base libraries: found by the linker (-rpath-link: for the
  # kit's own libraries' DT_NEEDED), not loaded by the image's compiler or CMake
  [ -d "$base" ] && KIT_CMAKE_ARGS+=("-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$base"
                                     "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath-link,$base")
  KIT_FMNIST_DIR=""
  [ -d "$p/share/datasets/fashion-mnist" ] && KIT_FMNIST_DIR=$p/share/datasets/fashion-mnist
  KIT_NCCL_WHEEL=""
  local w
  for w in "$KIT_DIR"/wheels/nvidia_nccl_*.whl; do [ -f "$w" ] && KIT_NCCL_WHEEL=$w; done
  return 0
}
