# shellcheck shell=bash
# shellcheck disable=SC2015 # `test && row || row`: row never fails
# Sourced by launch/gpu-check.sh, in its shell (its options, helpers and the variables of the
# steps before): step 2, configure and build (CUDA on, NCCL required where there is nvcc), then
# Fashion-MNIST into the build tree; sets DEV, cuda, TRAIN, DATA, FM; a failed build ends the check.

# ==== 2. configure and build ===============================================================
DEV=cuda
[ $DRY = 1 ] && DEV=cpu
cuda=ON nccl=ON
[ $HAVE_NVCC = 1 ] || cuda=OFF
[ -n "$nccl_h" ] || nccl=AUTO
[ $cuda = ON ] || nccl=OFF
# Ninja for a new tree when there is one; a configured tree keeps its generator (reused as it is)
gen=()
[ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null && gen=(-G Ninja)
cargs=(-S "$SRC" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "-DDLFS_CUDA=$cuda" "-DDLFS_NCCL=$nccl"
       -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DDLFS_FMNIST_DIR="$FMNIST_DIR" ${KIT_CMAKE_ARGS[@]+"${KIT_CMAKE_ARGS[@]}"})
[ -n "$NCCL_ROOT_ARG" ] && cargs+=(-DNCCL_ROOT="$NCCL_ROOT_ARG")
[ $PYCHECKS = OFF ] && cargs+=(-DDLFS_PYTHON_CHECKS=OFF)   # else configure stops: no Python with numpy and h5py
# with a kit, the image's compiler and CMake run without the kit's copies of base libraries
BENV=(); [ -n "${KIT_DIR:-}" ] && BENV=(env "LD_LIBRARY_PATH=$KIT_BUILD_LD_LIBRARY_PATH")
targets=(dlfs-train dlfs-data test_pipeline_ops)
[ $cuda = ON ] && targets+=(test_cuda_ops test_lm_ops_cuda)
BUILT=0
rc=0
if ! b=$(budget 30 180); then no_time "configure"
elif run configure "$b" ${BENV[@]+"${BENV[@]}"} cmake "${cargs[@]}" || { rc=$?; false; }; [ $rc -ne 0 ]; then
  row "configure (CUDA $cuda, NCCL $nccl, sm_$ARCH)" "FAIL: $(why $rc "$STEP_S" 180)" "" "" "" "$STEP_S"; tail_of configure 30
else
  cs=$STEP_S
  if ! b=$(budget 60 480); then no_time "build"
  elif run build "$b" ${BENV[@]+"${BENV[@]}"} cmake --build "$BUILD" -j "$NCPU" --target "${targets[@]}" || { rc=$?; false; }; [ $rc -ne 0 ]; then
    row "build (${targets[*]})" "FAIL: $(why $rc "$STEP_S" 480)" "" "" "" "$((cs + STEP_S))"
    grep -E "error|Error" "$LOGS/build.log" | head -n 30
  else
    BUILT=1
    nw=$(grep -c "warning" "$LOGS/build.log")
    ncl=$(sed -n 's/.*dlfs: NCCL \([0-9.]*\):.*/\1/p' "$LOGS/configure.log" | head -n 1)
    st=pass; [ "$nw" -eq 0 ] || st="pass ($nw warning lines)"
    row "configure + build: CUDA $cuda (sm_$ARCH), NCCL ${ncl:-off} ($nccl), Python checks $PYCHECKS, ${targets[*]}, -j $NCPU" "$st" "" "" "" "$((cs + STEP_S))"
    [ $cuda = ON ] || row "build with the CUDA backend" "skipped: no nvcc here (dry run)"
  fi
fi
TRAIN=$BUILD/src/dlfs-train DATA=$BUILD/src/dlfs-data
FM=$BUILD/fmnist.h5
if [ $BUILT = 1 ]; then
  if "$DATA" info "$FM" >/dev/null 2>&1; then :
  elif b=$(budget 10 120) && run convert "$b" "$DATA" convert --fashion-mnist "$FMNIST_DIR" --force -o "$FM"; then :
  else row "Fashion-MNIST converted into the build tree" "FAIL: $(tail -n 1 "$LOGS/convert.log" 2>/dev/null)"; FM=""; fi
fi
pack
if [ $BUILT = 0 ]; then
  row "everything after the build" "skipped: the build did not finish"
  { echo; echo "$N_FAIL failed, $N_SKIP skipped, $N_PASS passed; $((SECONDS - T0)) s"; } >>"$MD"
  pack; echo "gpu-check: the build failed (table: $MD, logs: $OUT/logs.tar.gz)"; exit 1
fi
# shellcheck source=tests/mpi-env.sh
. "$SRC/tests/mpi-env.sh"   # mpirun as root, oversubscription, loopback, one-line errors
