# Shared set-up of the bench scripts (sourced, not run): single-threaded BLAS, Open MPI as root, the load
# average, and mpirun_timed, which runs a command on N ranks and sums their CPU time and peak memory.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

load() { cut -d' ' -f1-3 /proc/loadavg; }

# cold: drops the page cache when allowed (root), so the next read comes from the disk; says which.
cold() {
  if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then echo cold; else echo warm; fi
}

# mpirun_timed DIR LOG RANKS COMMAND...: runs COMMAND on RANKS ranks, each under /usr/bin/time (its record
# in DIR/rss.RANK), stdout and stderr to LOG. Prints "maxrss_MB cpu_seconds": the largest max RSS over the
# ranks and user+sys CPU seconds summed over them. On failure it prints LOG to stderr (callers read the
# stdout) and exits 1.
mpirun_timed() {
  local dir=$1 log=$2 np=$3
  shift 3
  rm -f "$dir"/rss.*
  mpirun -np "$np" bash -c '/usr/bin/time -f "%M %U %S" -o "$0/rss.$OMPI_COMM_WORLD_RANK" "$@"' "$dir" "$@" \
    > "$log" 2>&1 || { cat "$log" >&2; echo "mpirun_timed: $* failed on $np ranks (log above: $log)" >&2; exit 1; }
  awk '$1 > m {m = $1} {c += $2 + $3} END {printf "%d %s\n", m / 1024, c}' "$dir"/rss.*
}
