# Source me before mpirun on a workstation, laptop or container (not needed under
# SLURM's srun). Open MPI 4 defaults that trip people up on such machines:
if [ "$(id -u)" -eq 0 ]; then   # containers and CI run as root; Open MPI refuses by default
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}  # more ranks than cores is allowed
export OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none} # no pinning when oversubscribed
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}  # waiting ranks give their core away
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none} # CMA is often blocked in containers
