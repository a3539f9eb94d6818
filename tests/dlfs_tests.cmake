# Shared helpers for the test CMake files.
set(DLFS_TEST_ENV_SCRIPT ${PROJECT_SOURCE_DIR}/tests/mpi-env.sh)
set(DLFS_FMNIST_DIR /usr/share/datasets/fashion-mnist CACHE PATH
  "Fashion-MNIST IDX files (Debian package dataset-fashion-mnist)")
# Python for the cross-checks (numpy, h5py): the first candidate that imports both —
# the one given with -DPython3_EXECUTABLE=... (only that one, when given), else the
# python3 on PATH, /usr/bin/python3, python3.N on PATH — so that a bare python3 first
# on PATH (a pyenv shim, a venv) is passed over. DLFS_PYTHON_CHECKS: AUTO (default)
# takes one when there is one and otherwise goes on, saying so, with the checks that
# need it reporting "skipped" (exit 77), so that a machine set up by launch/quickstart
# (no numpy) configures the tests; ON stops the configure without one (launch/test
# gives its Python); OFF never looks. The tests get the choice as PYTHON (empty: none).
set(DLFS_PYTHON_CHECKS AUTO CACHE STRING
  "the cross-checks' Python (numpy, h5py): AUTO (skipped without one), ON (required), OFF (not used)")
set_property(CACHE DLFS_PYTHON_CHECKS PROPERTY STRINGS AUTO ON OFF)
function(dlfs_find_python out_good out_any)
  if(Python3_EXECUTABLE)
    set(cands "${Python3_EXECUTABLE}")
  else()
    set(cands "")
    find_program(_dlfs_py_path NAMES python3 NO_CACHE)
    foreach(c "${_dlfs_py_path}" /usr/bin/python3)
      if(c AND EXISTS "${c}")
        list(APPEND cands "${c}")
      endif()
    endforeach()
    foreach(minor RANGE 20 8 -1)
      find_program(_dlfs_py_minor NAMES python3.${minor} NO_CACHE)
      if(_dlfs_py_minor)
        list(APPEND cands "${_dlfs_py_minor}")
      endif()
      unset(_dlfs_py_minor)
    endforeach()
    list(REMOVE_DUPLICATES cands)
  endif()
  set(good "")
  set(any "")
  foreach(c IN LISTS cands)
    execute_process(COMMAND "${c}" -c "import sys" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(NOT rc EQUAL 0)
      continue()
    endif()
    if(NOT any)
      set(any "${c}")
    endif()
    execute_process(COMMAND "${c}" -c "import numpy, h5py" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      set(good "${c}")
      break()
    endif()
    message(STATUS "dlfs tests: ${c} cannot import numpy and h5py: passed over")
  endforeach()
  set(${out_good} "${good}" PARENT_SCOPE)
  set(${out_any} "${any}" PARENT_SCOPE)
  set(_dlfs_py_cands "${cands}" PARENT_SCOPE)
endfunction()
if(NOT DLFS_PYTHON_CHECKS MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "DLFS_PYTHON_CHECKS=${DLFS_PYTHON_CHECKS}: give AUTO, ON or OFF")
endif()
set(DLFS_PYTHON "")
set(_dlfs_py_any "")
if(NOT DLFS_PYTHON_CHECKS STREQUAL "OFF")
  dlfs_find_python(DLFS_PYTHON _dlfs_py_any)
endif()
string(REPLACE ";" ", " _c "${_dlfs_py_cands}")
if(DLFS_PYTHON)
  message(STATUS "dlfs tests: cross-checks with ${DLFS_PYTHON} (numpy, h5py)")
elseif(DLFS_PYTHON_CHECKS STREQUAL "ON")
  message(FATAL_ERROR "dlfs tests: no Python with numpy and h5py (tried: ${_c}). Install them "
    "(apt-get install python3-numpy python3-h5py), or name one with -DPython3_EXECUTABLE=PYTHON, "
    "or configure with -DDLFS_PYTHON_CHECKS=AUTO: the checks that need them then report skipped.")
elseif(DLFS_PYTHON_CHECKS STREQUAL "AUTO")
  message(STATUS "dlfs tests: no Python with numpy and h5py (tried: ${_c}): the cross-checks that need them "
    "will report skipped (apt-get install python3-numpy python3-h5py to run them)")
else()
  message(STATUS "dlfs tests: DLFS_PYTHON_CHECKS=OFF: the cross-checks that need numpy and h5py report skipped")
endif()
# Python3_EXECUTABLE for the CMake files that run a Python script directly (their
# scripts exit 77 without numpy/h5py): the good one, else any Python there is.
if(DLFS_PYTHON)
  set(Python3_EXECUTABLE "${DLFS_PYTHON}")
elseif(_dlfs_py_any)
  set(Python3_EXECUTABLE "${_dlfs_py_any}")
endif()

# dlfs_c_test(NAME SOURCES... LABELS l1 l2): a C test program linked with the library.
function(dlfs_c_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_compile_options(${name} PRIVATE ${DLFS_WARN})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE dlfs)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  dlfs_schedule(${name})
endfunction()

# Scheduling for ctest -j (launch/test runs the suites in parallel), in one table so
# that a test's needs are declared in one place. dlfs_schedule(NAME) is called where a
# test is made (dlfs_c_test, dlfs_sh_test and the add_test calls of the folders):
#  - label `threads`: the suites that start threads of their own (conv's workers, the
#    prefetch thread), which launch/test --full runs under ThreadSanitizer;
#  - RESOURCE_LOCK slurm: the tests that start the machine's one local SLURM cluster
#    (fixed ports and names) run one at a time;
#  - PROCESSORS: the cores a test keeps busy, in slots of half a core (launch/test runs
#    ctest -j with twice the cores): 4 for the tests that compute on 4 to 8 ranks (they run
#    alone on 2 cores), 2 for those that compute on 1 or 2 ranks, 1 (the default) for the
#    tests that mostly wait (process starts, error paths, sleeps, a SLURM queue). ctest
#    -jN starts a test only when that many of its N slots are free (all N when it asks
#    for more), so the multi-rank tests do not pile up while the waiting ones overlap;
#  - COST (below).
set(DLFS_SCHED_THREADS test_ops test_conv_ops test_cpu_threads train_threads train_pipeline train_lag pipeline_ops_cpu)
set(DLFS_SCHED_SLURM slurm_train slurm_requeue slurm_scaling slurm_2node_train slurm_2node_requeue slurm_2node_mpirun)
set(DLFS_SCHED_P4 mpi_deterministic mpi_zero mpi_accum mpi_deterministic_cnn mpi_allreduce_np8 scaling_study train_lm
  slurm_scaling notebook_course)
set(DLFS_SCHED_P2 ckpt_resume ckpt_sharded train_pipeline train_lag train_trace train_target train_threads train_learn
  train_learn_cnn train_learn_precision train_oracle train_torch_ckpt train_torch_gpt train_learn_resnet train_stream mpi_comm mpi_sharding mpi_allreduce_np4 ckpt_atomic ckpt_signal ckpt_chaos
  hostile_train hostile_ckpt hostile_data hostile_resources hostile_outputs hostile_ckptdir slurm_train slurm_requeue slurm_2node_train slurm_2node_requeue
  slurm_2node_mpirun scaling_report scaling_hardware_guide install_tree install_deb)
# COST: seconds a test took in a measured run (results/RESULTS.md, idle 2-core machine),
# for the tests over 15 s: ctest starts the costliest first, so that a fresh build tree
# (no CTestCostData yet, as in CI) does not end on a queue of long tests run one by one.
set(DLFS_SCHED_COST train_lm:25 ckpt_chaos:56 train_learn_precision:40 train_pipeline:38 slurm_requeue:36 mpi_deterministic:34
  hostile_ckpt:31 train_learn_cnn:26 notebook_course:26 slurm_2node_requeue:22 mpi_accum:22 hostile_outputs:20
  hostile_train:20 mpi_zero:20 hostile_ckptdir:20 mpi_deterministic_cnn:18 hostile_data:17 tests_shellcheck:17
  mpi_comm:15 train_bad_input:15 install_deb:23 train_torch_ckpt:45)
# train_stream with its token cases (issue 24, round 2): twice its CPU time before them (11 s idle)
list(APPEND DLFS_SCHED_COST train_stream:22)
function(dlfs_schedule name)
  foreach(pair IN LISTS DLFS_SCHED_COST)
    if(pair MATCHES "^${name}:([0-9]+)$")
      set_tests_properties(${name} PROPERTIES COST ${CMAKE_MATCH_1})
    endif()
  endforeach()
  if(name IN_LIST DLFS_SCHED_THREADS)
    set_property(TEST ${name} APPEND PROPERTY LABELS threads)
  endif()
  if(name IN_LIST DLFS_SCHED_SLURM)
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK slurm)
  endif()
  if(name IN_LIST DLFS_SCHED_P4)
    set_tests_properties(${name} PROPERTIES PROCESSORS 4)
  elseif(name IN_LIST DLFS_SCHED_P2)
    set_tests_properties(${name} PROPERTIES PROCESSORS 2)
  endif()
endfunction()
