# shellcheck shell=bash source-path=SCRIPTDIR
# Sourced by the test drivers: launch/mpi-env.sh plus settings for small test
# machines (2 cores, root, no InfiniBand, loopback only).
. "$(dirname "${BASH_SOURCE[0]}")/../launch/mpi-env.sh"
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_pml=ob1              # no UCX/IB probing
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_orte_execute_quiet=1                             # no mpirun banner after our one-line errors
