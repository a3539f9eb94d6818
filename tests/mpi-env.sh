# Sourced by the test drivers: Open MPI settings for small test machines (2 cores,
# often root, no InfiniBand). Everything here is an MCA default override, so a
# user's explicit mpirun flags still win.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI runs as root
export OMPI_MCA_rmaps_base_oversubscribe=1                       # 8 ranks on 2 cores
export OMPI_MCA_hwloc_base_binding_policy=none                   # no pinning when oversubscribed
export OMPI_MCA_mpi_yield_when_idle=1                            # oversubscribed ranks must not spin
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_pml=ob1              # no UCX/IB probing
export OMPI_MCA_btl_vader_single_copy_mechanism=none             # CMA may be blocked in containers
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_orte_execute_quiet=1                             # no mpirun banner after our one-line errors
export OPENBLAS_VERBOSE=0
