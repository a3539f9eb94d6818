# Required and optional dependencies. A missing required package is a configure
# error that names the Debian package (and the usual HPC module) providing it.

find_package(MPI COMPONENTS C)
if(NOT MPI_C_FOUND)
  message(FATAL_ERROR "dlfs needs MPI (Open MPI). Install it with "
    "'apt-get install openmpi-bin libopenmpi-dev' (Debian/Ubuntu) or 'module load openmpi'.")
endif()

find_package(HDF5 COMPONENTS C)
if(NOT HDF5_FOUND)
  message(FATAL_ERROR "dlfs needs the HDF5 C library. Install it with "
    "'apt-get install libhdf5-dev hdf5-tools' (Debian/Ubuntu) or 'module load hdf5'. "
    "The serial API is used; a parallel build (libhdf5-openmpi-dev) works too.")
endif()

set(BLA_VENDOR OpenBLAS)
find_package(BLAS)
find_path(DLFS_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES x86_64-linux-gnu aarch64-linux-gnu openblas)
if(NOT BLAS_FOUND OR NOT DLFS_CBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "dlfs needs OpenBLAS with cblas.h. Install it with "
    "'apt-get install libopenblas-dev' (Debian/Ubuntu) or 'module load openblas'.")
endif()

find_package(ZLIB)
if(NOT ZLIB_FOUND)
  message(FATAL_ERROR "dlfs needs zlib to read gzip-compressed IDX files. Install it with "
    "'apt-get install zlib1g-dev'.")
endif()

find_package(Threads REQUIRED)

# CUDA: optional. AUTO builds it when a CUDA compiler is found.
set(DLFS_HAVE_CUDA OFF)
if(NOT DLFS_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)   # H100/H200; 'native' fails without a GPU
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(DLFS_HAVE_CUDA ON)
  elseif(DLFS_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DLFS_CUDA=ON but no CUDA compiler (nvcc) was found. Install the CUDA "
      "toolkit (or 'module load cuda') and put nvcc on PATH, or configure with -DDLFS_CUDA=OFF.")
  endif()
endif()
