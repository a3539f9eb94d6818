# FindNCCL: NVIDIA's collective communication library.
#
#   find_package(NCCL [version] [REQUIRED])
#
# Result: NCCL_FOUND, NCCL_VERSION (from nccl.h), NCCL_INCLUDE_DIR, NCCL_LIBRARY,
# NCCL_REASON (why it was not found, one sentence; empty when found) and the
# imported target NCCL::NCCL.
#
# The library may be unversioned (libnccl.so, as libnccl-dev installs it) or only
# versioned (libnccl.so.2: the pip wheels nvidia-nccl-cu12/-cu13 ship
# site-packages/nvidia/nccl/{lib/libnccl.so.2,include/nccl.h}, and some runtime-only
# installs have no libnccl.so link); both are found, the unversioned name first.
#
# Where it looks:
#   -DNCCL_ROOT=DIR (or the environment's NCCL_ROOT / NCCL_HOME, which HPC modules
#   set): DIR/include and DIR/lib* only, nothing else, so that the root asked for is
#   the root used. Otherwise: the CUDA toolkit's own tree (a toolkit with NCCL bundled
#   keeps it in /usr/local/cuda/{include,lib}), the distribution's packages
#   (/usr/include, /usr/lib/<multiarch>), then the nvidia/nccl directory of a pip
#   wheel in the site-packages of Python3_EXECUTABLE (or python3 on PATH).

set(_nccl_root ${NCCL_ROOT})
if(NOT _nccl_root)
  if(DEFINED ENV{NCCL_ROOT} AND NOT "$ENV{NCCL_ROOT}" STREQUAL "")
    set(_nccl_root $ENV{NCCL_ROOT})
  elseif(DEFINED ENV{NCCL_HOME} AND NOT "$ENV{NCCL_HOME}" STREQUAL "")
    set(_nccl_root $ENV{NCCL_HOME})
  endif()
endif()
# another root than at the last configure: look again (the cached results are the old root's)
if(NOT "${_nccl_root}" STREQUAL "${_NCCL_ROOT_SEARCHED}")
  unset(NCCL_INCLUDE_DIR CACHE)
  unset(NCCL_LIBRARY CACHE)
endif()
set(_NCCL_ROOT_SEARCHED "${_nccl_root}" CACHE INTERNAL "NCCL_ROOT of the last search")
set(_nccl_names nccl libnccl.so.2)
set(_nccl_lib_suffixes lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu)

if(_nccl_root)
  find_path(NCCL_INCLUDE_DIR nccl.h PATHS ${_nccl_root} PATH_SUFFIXES include NO_DEFAULT_PATH)
  find_library(NCCL_LIBRARY NAMES ${_nccl_names} NAMES_PER_DIR PATHS ${_nccl_root}
    PATH_SUFFIXES ${_nccl_lib_suffixes} NO_DEFAULT_PATH)
  set(_nccl_where "NCCL_ROOT=${_nccl_root}")
else()
  set(_nccl_toolkit ${CUDAToolkit_TARGET_DIR} ${CUDAToolkit_LIBRARY_ROOT} /usr/local/cuda) # empty ones vanish
  # a pip wheel's copy (PyTorch's dependency), asked of the Python in use
  if(Python3_EXECUTABLE)
    set(_nccl_py ${Python3_EXECUTABLE})
  else()
    find_program(NCCL_PYTHON NAMES python3)
    mark_as_advanced(NCCL_PYTHON)
    set(_nccl_py ${NCCL_PYTHON})
  endif()
  set(_nccl_wheel "")
  if(_nccl_py)
    execute_process(COMMAND ${_nccl_py} -c
      "import importlib.util as u; s = u.find_spec('nvidia.nccl'); print(list(s.submodule_search_locations)[0] if s else '')"
      OUTPUT_VARIABLE _nccl_wheel OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET TIMEOUT 20)
  endif()
  find_path(NCCL_INCLUDE_DIR nccl.h
    HINTS ${_nccl_toolkit}
    PATHS /usr ${_nccl_wheel}
    PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY NAMES ${_nccl_names} NAMES_PER_DIR
    HINTS ${_nccl_toolkit}
    PATHS /usr ${_nccl_wheel}
    PATH_SUFFIXES ${_nccl_lib_suffixes})
  set(_nccl_where "the CUDA toolkit (${_nccl_toolkit}), /usr, the default paths")
  if(_nccl_wheel)
    string(APPEND _nccl_where " and the pip wheel ${_nccl_wheel}")
  endif()
endif()

unset(NCCL_VERSION)
if(NCCL_INCLUDE_DIR AND EXISTS "${NCCL_INCLUDE_DIR}/nccl.h")
  file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _nccl_ver REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) +[0-9]+")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX REPLACE ".*#define NCCL_${_part} +([0-9]+).*" "\\1" NCCL_VERSION_${_part} "${_nccl_ver}")
  endforeach()
  set(NCCL_VERSION "${NCCL_VERSION_MAJOR}.${NCCL_VERSION_MINOR}.${NCCL_VERSION_PATCH}")
endif()

# The reason, in words, for a configure error (DLFS_NCCL=ON) or a status line
set(NCCL_REASON "")
if(NOT NCCL_INCLUDE_DIR AND NOT NCCL_LIBRARY)
  set(NCCL_REASON "neither nccl.h nor libnccl.so / libnccl.so.2 was found in ${_nccl_where}")
elseif(NOT NCCL_INCLUDE_DIR)
  set(NCCL_REASON "${NCCL_LIBRARY} was found but not nccl.h (looked in ${_nccl_where})")
elseif(NOT NCCL_LIBRARY)
  set(NCCL_REASON "${NCCL_INCLUDE_DIR}/nccl.h was found but neither libnccl.so nor libnccl.so.2 (looked in ${_nccl_where})")
elseif(NCCL_FIND_VERSION AND NCCL_VERSION VERSION_LESS NCCL_FIND_VERSION)
  set(NCCL_REASON "${NCCL_INCLUDE_DIR}/nccl.h is NCCL ${NCCL_VERSION}; at least ${NCCL_FIND_VERSION} is needed")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NCCL
  REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR
  VERSION_VAR NCCL_VERSION
  REASON_FAILURE_MESSAGE
    "${NCCL_REASON}. Install libnccl-dev (NVIDIA's repository) or the pip wheel nvidia-nccl-cu13, \
'module load nccl', or point -DNCCL_ROOT at a directory with include/nccl.h and lib/libnccl.so[.2]")

if(NCCL_FOUND AND NOT TARGET NCCL::NCCL)
  # a shared library by its full path (versioned or not): linked as it is, and its
  # directory goes into the build tree's RPATH
  if(NCCL_LIBRARY MATCHES "\\.so(\\.[0-9]+)*$")
    add_library(NCCL::NCCL SHARED IMPORTED)
  else()
    add_library(NCCL::NCCL UNKNOWN IMPORTED)
  endif()
  set_target_properties(NCCL::NCCL PROPERTIES
    IMPORTED_LOCATION "${NCCL_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
endif()
mark_as_advanced(NCCL_INCLUDE_DIR NCCL_LIBRARY)
unset(_nccl_root)
unset(_nccl_names)
unset(_nccl_lib_suffixes)
unset(_nccl_toolkit)
unset(_nccl_py)
unset(_nccl_wheel)
unset(_nccl_where)
unset(_nccl_ver)
