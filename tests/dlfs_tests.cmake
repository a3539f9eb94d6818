# Shared helpers for the test CMake files.
set(DLFS_TEST_ENV_SCRIPT ${PROJECT_SOURCE_DIR}/tests/mpi-env.sh)
set(DLFS_FMNIST_DIR /usr/share/datasets/fashion-mnist CACHE PATH
  "Fashion-MNIST IDX files (Debian package dataset-fashion-mnist)")
# Python for cross-checks (numpy, h5py)
find_package(Python3 COMPONENTS Interpreter)

# dlfs_c_test(NAME SOURCES... LABELS l1 l2): a C test program linked with the library.
function(dlfs_c_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_compile_options(${name} PRIVATE ${DLFS_WARN})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE dlfs)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
endfunction()
