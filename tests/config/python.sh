#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015 # `check && t_pass || t_fail`: t_pass never fails
# The tests' configure on a machine without numpy/h5py, as launch/quickstart leaves one
# (issue: a by-hand configure after the quickstart failed, and its tree ran no tests):
#   - DLFS_PYTHON_CHECKS=AUTO (the default) with no usable Python: configured, with a
#     line saying the cross-checks will report skipped, and tests to run;
#   - DLFS_PYTHON_CHECKS=ON with none: the configure fails and names the packages;
#   - DLFS_TESTS=OFF: configured, with a line saying ctest will find no tests.
# "No usable Python" is -DPython3_EXECUTABLE naming a program that is not one (the
# only candidate then). CUDA off: the configures take a few seconds each.
# Arguments: SOURCE_DIR CMAKE.
. "$(dirname "$0")/../lib.sh"
src=$1 cmake=$2
conf() { # NAME ARGS...: configure SOURCE_DIR into T_TMP/NAME, output in T_TMP/NAME.log
  local name=$1; shift
  "$cmake" -S "$src" -B "$T_TMP/$name" -DCMAKE_BUILD_TYPE=Release -DDLFS_CUDA=OFF "$@" >"$T_TMP/$name.log" 2>&1
}
if conf auto -DDLFS_TESTS=ON -DPython3_EXECUTABLE=/bin/false; then
  grep -q "no Python with numpy and h5py.*will report skipped" "$T_TMP/auto.log" \
    && [ "$(cd "$T_TMP/auto" && ctest -N | sed -n 's/^Total Tests: //p')" -gt 0 ] \
    && t_pass "AUTO without numpy/h5py: configured, says the cross-checks report skipped, tests listed" \
    || { t_fail "AUTO without numpy/h5py: no line or no tests"; cat "$T_TMP/auto.log"; }
else t_fail "AUTO without numpy/h5py: the configure failed"; tail -5 "$T_TMP/auto.log"; fi
if conf on -DDLFS_TESTS=ON -DPython3_EXECUTABLE=/bin/false -DDLFS_PYTHON_CHECKS=ON; then
  t_fail "ON without numpy/h5py: configured"
else
  grep -q "apt-get install python3-numpy python3-h5py" "$T_TMP/on.log" && t_pass "ON without numpy/h5py: refused, naming the packages" \
    || { t_fail "ON without numpy/h5py: refused without naming the packages"; cat "$T_TMP/on.log"; }
fi
conf off -DDLFS_TESTS=OFF && grep -q "tests OFF (-DDLFS_TESTS=OFF): ctest in this tree finds none" "$T_TMP/off.log" \
  && t_pass "DLFS_TESTS=OFF: says ctest will find no tests" || { t_fail "DLFS_TESTS=OFF: no line"; cat "$T_TMP/off.log"; }
t_done
