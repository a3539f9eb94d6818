# Installation (cmake --install BUILD --prefix P), the man pages and the packages (cpack).
#   P/bin                  dlfs-train, dlfs-data
#   P/share/man/man1       dlfs-train.1, dlfs-data.1: help2man, from --help and --version at build time
#   P/share/dlfs/slurm     the SLURM scripts (and their README)
#   P/share/dlfs/launch    the launch tools that work outside a checkout (installed_launch_tools below)
#   P/share/dlfs           README.md and the other docs
# The installed scripts find the installed programs: P/share/dlfs mirrors the checkout's
# layout, and the scripts look for dlfs-train in ../../bin of it (slurm/README.md).
include(GNUInstallDirs)
# The installed programs keep the paths of the libraries they were linked with outside
# the system's (Open MPI, HDF5, CUDA, NCCL under a module or /usr/local/cuda): no
# LD_LIBRARY_PATH needed to run them.
set_target_properties(dlfs-train dlfs-data PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS dlfs-train dlfs-data RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(DLFS_SHARE ${CMAKE_INSTALL_DATADIR}/dlfs)
install(PROGRAMS slurm/train.sbatch slurm/train-multinode.sbatch slurm/scaling.sbatch
  DESTINATION ${DLFS_SHARE}/slurm)
install(FILES slurm/README.md DESTINATION ${DLFS_SHARE}/slurm)
install(FILES README.md DESTINATION ${DLFS_SHARE})
install(FILES datasets/README.md DESTINATION ${DLFS_SHARE}/datasets)
# The launch tools that work outside a checkout (the others build, test or package the
# checkout itself), with their package launch/study; on PATH as dlfs-<tool>.
install(PROGRAMS launch/mpi-env.sh launch/scaling-study launch/scaling-report launch/hardware-guide
  DESTINATION ${DLFS_SHARE}/launch)
install(FILES launch/README.md DESTINATION ${DLFS_SHARE}/launch)
install(DIRECTORY launch/study DESTINATION ${DLFS_SHARE}/launch FILES_MATCHING PATTERN "*.py" PATTERN "*.json"
  PATTERN __pycache__ EXCLUDE)
foreach(tool scaling-study scaling-report hardware-guide)
  install(CODE "file(MAKE_DIRECTORY \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
    file(CREATE_LINK ../${DLFS_SHARE}/launch/${tool}
      \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/dlfs-${tool}\" SYMBOLIC)")
endforeach()

# Man pages from the programs' own --help and --version, so that they never drift.
# help2man (Debian's help2man) runs the built programs: not in cross or sanitizer builds.
find_program(DLFS_HELP2MAN help2man)
if(NOT DLFS_HELP2MAN)
  message(STATUS "dlfs: help2man not found: no man pages (apt-get install help2man)")
elseif(DLFS_SANITIZE OR DLFS_TSAN OR DLFS_FUZZ OR CMAKE_CROSSCOMPILING)
  message(STATUS "dlfs: no man pages in a sanitizer, fuzz or cross build")
else()
  set(_dlfs_man_train "data-parallel neural-network trainer (MPI ranks, CPU or CUDA)")
  set(_dlfs_man_data "convert IDX image files to dlfs datasets (HDF5) and describe them")
  foreach(prog dlfs-train dlfs-data)
    set(page ${CMAKE_BINARY_DIR}/man/${prog}.1)
    string(REPLACE "dlfs-" "_dlfs_man_" _var ${prog})
    add_custom_command(OUTPUT ${page}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${DLFS_HELP2MAN} --no-info --section=1 --name=${${_var}} --output=${page} $<TARGET_FILE:${prog}>
      DEPENDS ${prog} VERBATIM COMMENT "help2man: ${prog}.1")
    list(APPEND _dlfs_pages ${page})
  endforeach()
  add_custom_target(dlfs-man ALL DEPENDS ${_dlfs_pages})
  install(FILES ${_dlfs_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  message(STATUS "dlfs: man pages with ${DLFS_HELP2MAN}")
endif()

# cpack -G DEB: the programs' shared libraries become Depends (dpkg-shlibdeps), with
# mpirun's package; libraries no package owns (the CUDA toolkit under /usr/local/cuda)
# are the site's to provide. cpack --config CPackSourceConfig.cmake: the source tarball.
set(CPACK_PACKAGE_NAME dlfs)
set(CPACK_PACKAGE_VENDOR "dlfs")
set(CPACK_PACKAGE_CONTACT "dlfs maintainers <dlfs@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "data-parallel neural-network trainer (MPI, OpenBLAS, CUDA, HDF5)")
set(CPACK_PACKAGE_INSTALL_DIRECTORY dlfs)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
if(DLFS_HAVE_CUDA)
  set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "Built with the CUDA backend: the CUDA ${CUDAToolkit_VERSION} runtime and cuBLAS
(and NCCL when found) come from NVIDIA's installation, which this package does not declare.")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "openmpi-bin")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "slurm-wlm, python3-matplotlib, dataset-fashion-mnist")
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_PACKAGE_FILE_NAME dlfs-${PROJECT_VERSION})
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git" "/build[^/]*/" "/build[^/]*\\\\.log$" "/runs/" "/datasets/.*\\\\.h5$"
  "__pycache__" "/gpu-check-out/" "/\\\\.gpu-kit/")
include(CPack)
