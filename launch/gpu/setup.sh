# shellcheck shell=bash
# shellcheck disable=SC2015 # `a && b || { message; return 1; }`: the message never fails
# Sourced by launch/gpu-check.sh: the checks of its set-up that come before any work
# (build directory, deadline, kit archive, commit, environment report). Each function
# prints one line on stderr and returns non-zero when it refuses.

# gc_default_build SRC: the default build tree, one per checkout (two checkouts on one
# machine must not share a CMake cache: CMake refuses a cache of another source)
gc_default_build() {
  echo "${TMPDIR:-/tmp}/dlfs-gpu-check-build-$(printf '%s' "$1" | cksum | cut -d' ' -f1)"
}

# gc_build_dir_ok DIR SRC IS_DEFAULT: DIR may be used as the build tree: absent, empty,
# or a dlfs build tree (CMakeCache.txt of project dlfs, or made by this check) of SRC.
# A dlfs cache of another source: the default tree is started afresh; a tree given
# with --build-dir is refused (it may be someone's).
gc_build_dir_ok() {
  local dir=$1 src=$2 def=$3 home
  [ -e "$dir" ] || return 0
  [ -d "$dir" ] || { echo "gpu-check: --build-dir $dir: not a directory" >&2; return 1; }
  [ -z "$(ls -A "$dir" 2>/dev/null)" ] && return 0
  if ! grep -qx 'CMAKE_PROJECT_NAME:STATIC=dlfs' "$dir/CMakeCache.txt" 2>/dev/null && [ ! -f "$dir/.dlfs-gpu-check" ]; then
    echo "gpu-check: --build-dir $dir: not empty and not a dlfs build tree: give an empty or new directory" >&2
    return 1
  fi
  home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$dir/CMakeCache.txt" 2>/dev/null)
  [ -z "$home" ] || [ "$(cd "$home" 2>/dev/null && pwd -P)" = "$(cd "$src" && pwd -P)" ] && return 0
  if [ "$def" = 1 ]; then
    echo "gpu-check: $dir was configured for $home, not $src: starting it afresh" >&2
    rm -rf "${dir:?}"/* "$dir"/.[!.]* 2>/dev/null
    return 0
  fi
  echo "gpu-check: --build-dir $dir was configured for another source ($home): give another directory" >&2
  return 1
}

# gc_deadline_ok S: a whole number of seconds, enough for the build and one row
gc_deadline_ok() {
  case $1 in '' | *[!0-9]*) echo "gpu-check: --deadline '$1': a number of seconds (default 420)" >&2; return 1 ;; esac
  [ "$1" -ge 60 ] && return 0
  echo "gpu-check: --deadline $1: at least 60 s (configure and build alone take about a minute with a built tree;" \
       "420 s, the default, fits one 600 s device call)" >&2
  return 1
}

# gc_kit_dir KIT BUILD: a kit directory for KIT: KIT itself, or where the archive
# KIT (*.tar.xz, from launch/gpu-kit) was unpacked: BUILD/kit, again only when the
# archive changed. Prints the directory.
gc_kit_dir() {
  local kit=$1 build=$2 key
  case $kit in
  *.tar.xz)
    [ -f "$kit" ] || { echo "gpu-check: --kit $kit: no such file" >&2; return 1; }
    key=$(stat -c '%s %Y' "$kit")
    if [ "$(cat "$build/kit/.unpacked" 2>/dev/null)" != "$key" ]; then
      rm -rf "$build/kit" && mkdir -p "$build/kit" && tar -C "$build/kit" -xJf "$kit" \
        || { echo "gpu-check: --kit $kit: cannot unpack it into $build/kit" >&2; return 1; }
      echo "$key" >"$build/kit/.unpacked"
    fi
    echo "$build/kit/dlfs-gpu-kit" ;;
  *) echo "$kit" ;;
  esac
}

# gc_image_lacks: what the image itself lacks of the kit's contents (nothing: empty)
gc_image_lacks() {
  local ma miss=() d found
  ma=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
  # (working programs and non-empty files: not merely names)
  timeout 10 mpicc --showme:version >/dev/null 2>&1 && timeout 10 mpirun --version >/dev/null 2>&1 || miss+=("Open MPI")
  found=0; for d in /usr/include/hdf5/serial/hdf5.h /usr/include/hdf5.h; do [ -s "$d" ] && found=1; done
  [ $found = 1 ] || miss+=(HDF5)
  found=0; for d in "/usr/include/$ma/cblas.h" /usr/include/cblas.h /usr/include/openblas/cblas.h; do [ -s "$d" ] && found=1; done
  [ $found = 1 ] || miss+=(OpenBLAS)
  [ -s /usr/include/zlib.h ] || miss+=(zlib)
  [ -s /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -n "${FMNIST_DIR:-}" ] || miss+=(Fashion-MNIST)
  echo "${miss[*]}"
}

# gc_commit SRC: the commit, from git, else from SRC/.gpu-kit/commit.txt (written by
# launch/gpu/prepare where .git is, because .git does not travel), else "?"
gc_commit() {
  local c
  if c=$(git -C "$1" rev-parse --short HEAD 2>/dev/null); then
    [ -n "$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null)" ] && c="$c (with local changes)"
    echo "$c"
  elif [ -s "$1/.gpu-kit/commit.txt" ]; then
    echo "$(head -n 1 "$1/.gpu-kit/commit.txt") (from .gpu-kit/commit.txt)"
  else echo "?"; fi
}

# gc_env_report: the machine, driver, toolkit and versions, one "key: value" a line
gc_env_report() {
  local v
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: $(hostname 2>/dev/null)"
  echo "os: $( . /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}") ($(uname -srm))"
  echo "cpus: $(nproc 2>/dev/null) ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1))"
  echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)"
  v=$(timeout 10 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>/dev/null)
  echo "gpus: ${v:-none (nvidia-smi: $(command -v nvidia-smi >/dev/null && echo "lists none" || echo "absent"))}"
  echo "cuda driver: $(timeout 10 nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: \([0-9.]*\).*/\1/p' | head -n 1)"
  echo "nvcc: $(timeout 10 "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "cmake: $(timeout 5 cmake --version 2>/dev/null | head -n 1)"
  echo "cc: $(timeout 5 cc --version 2>/dev/null | head -n 1)"
  echo "mpirun: $(command -v mpirun) $(timeout 5 mpirun --version 2>/dev/null | head -n 1)"
  echo "python: $(command -v python3) $(timeout 20 python3 -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
  echo "torch: $(timeout 30 python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>/dev/null || echo none)"
  echo "CUDA_VISIBLE_DEVICES: ${CUDA_VISIBLE_DEVICES-unset}"
}
