# Environment for running Mimic with Open MPI on one node (sourced by quickstart.sh, tests/run.sh and
# the job scripts): root is allowed, oversubscription allowed, one BLAS thread per rank.
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
# Containers often lack the CMA ptrace permission vader's single-copy path needs.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export HDF5_USE_FILE_LOCKING=${HDF5_USE_FILE_LOCKING:-FALSE}
# ROMIO rather than OMPIO for MPI-IO: OMPIO returned wrong rows for one rank of a 4-rank collective read
# of partly overlapping row ranges here (ROMIO was right); the SLURM scripts make the same choice.
export OMPI_MCA_io=${OMPI_MCA_io:-^ompio}
# A failing rank prints its one-line error and calls MPI_Abort: keep mpirun's multi-line MPI_ABORT banner
# (and its "N processes returned non-zero" notices) from burying that line.
export OMPI_MCA_orte_execute_quiet=${OMPI_MCA_orte_execute_quiet:-1}
