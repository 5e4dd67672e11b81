# Shared set-up of Mimic's SLURM batch scripts (sourced): run directory, Open MPI, parallel-file-system
# settings (MPI-IO layer, HDF5 locking, stripe alignment), the launcher and one-rank-per-GPU binding.
#
# Every stage script does `source .../common.sh` and then `mimic_stage <command words>`, which runs
#   $MIMIC_BIN <command> --config $MIMIC_CONFIG $MIMIC_ARGS $MIMIC_<STAGE>_ARGS
# on all tasks of the allocation, in $MIMIC_RUN_DIR (relative paths in the config are relative to it).
#
# Environment (all optional except MIMIC_CONFIG; jobs/slurm/submit.sh sets the paths):
#   MIMIC_CONFIG         INI file with a section per command ([label], [distill], ...)      (required)
#   MIMIC_RUN_DIR        directory the stage runs in (default: the submit directory)
#   MIMIC_ROOT           the directory holding jobs/: the Mimic source tree or an install's share/mimic
#                        (default: $MIMIC_SHARE, set by the mimic module, else $SLURM_SUBMIT_DIR)
#   MIMIC_BIN            the mimic executable (default: $MIMIC_ROOT/build/mimic in a built source tree,
#                        else mimic on PATH)
#   MIMIC_ARGS           options added to every stage's command line (they win over the config)
#   MIMIC_<STAGE>_ARGS   options for one stage: MIMIC_DATA_IMPORT_ARGS, MIMIC_ENSEMBLE_TRAIN_ARGS,
#                        MIMIC_TRANSFER_ARGS, MIMIC_LABEL_ARGS, MIMIC_DISTILL_ARGS, MIMIC_EVAL_ARGS
#   MIMIC_TIMINGS_CSV    label, distill, train and ensemble train append per-phase timings to this CSV
#   MIMIC_STEP, MIMIC_SUBMITTED  set by submit.sh: the job's place in the chain ("3/6") and when it was submitted
#   MIMIC_LAUNCHER       srun (default inside SLURM) | mpirun (default outside SLURM) | any command
#                        prefix that starts the ranks, e.g. "mpirun -n 8 --bind-to core"
#   MIMIC_SRUN_MPI       srun's --mpi plugin (default pmix: Open MPI 4 + SLURM 22.05 need it)
#   MIMIC_SRUN_ARGS      extra srun options, e.g. "--cpu-bind=cores"
#   MIMIC_NP             ranks (default: all tasks of the SLURM allocation; 1 outside SLURM)
#   MIMIC_GPU_BIND       auto (default): one GPU per rank when GPUs are visible | none
#   MIMIC_STRIPE_SIZE    file-system stripe size in bytes (default 1048576, Lustre's default)
#   MIMIC_STRIPE_COUNT   stripe count for new files in MIMIC_RUN_DIR (Lustre; default: leave as is)
# shellcheck shell=bash

set -euo pipefail

mimic_log() { echo "mimic-job: $*"; }
# mimic_duration <seconds>: "45s", "4m12s", "1h03m".
mimic_duration() {
    local t=$1
    if [ "$t" -lt 60 ]; then printf '%ds' "$t"
    elif [ "$t" -lt 3600 ]; then printf '%dm%02ds' $((t / 60)) $((t % 60))
    else printf '%dh%02dm' $((t / 3600)) $((t % 3600 / 60)); fi
}
# mimic_since_submit <now>: ", pipeline submitted 12m04s ago" when submit.sh recorded the time.
mimic_since_submit() {
    [ -z "${MIMIC_SUBMITTED:-}" ] || printf ', pipeline submitted %s ago' "$(mimic_duration $(($1 - MIMIC_SUBMITTED)))"
}
mimic_die() {
    echo "mimic-job: error: $*" >&2
    exit 2
}

# --- where things are ----------------------------------------------------------------------------
# sbatch runs a copy of the script from its spool directory, so the scripts cannot be found from $0: they
# come from MIMIC_ROOT (set by submit.sh), MIMIC_SHARE (an install's module) or the submit directory.
MIMIC_ROOT=${MIMIC_ROOT:-${MIMIC_SHARE:-${SLURM_SUBMIT_DIR:-$PWD}}}
[ -f "$MIMIC_ROOT/jobs/slurm/common.sh" ] ||
    mimic_die "MIMIC_ROOT=$MIMIC_ROOT is neither the Mimic source tree nor an install's share/mimic" \
        "(set MIMIC_ROOT, load the mimic module or submit from the source tree)"
MIMIC_ROOT=$(cd "$MIMIC_ROOT" && pwd)
# shellcheck source=locate.sh
source "$MIMIC_ROOT/jobs/slurm/locate.sh"
MIMIC_BIN=${MIMIC_BIN:-$(mimic_default_bin "$MIMIC_ROOT")}
[ -n "$MIMIC_BIN" ] || mimic_die "$(mimic_no_bin_message "$MIMIC_ROOT")"
[ -x "$MIMIC_BIN" ] || mimic_die "MIMIC_BIN=$MIMIC_BIN is not an executable (build Mimic or set MIMIC_BIN)"
[ -n "${MIMIC_CONFIG:-}" ] || mimic_die "MIMIC_CONFIG is not set (the INI file with the stages' options)"
[ -f "$MIMIC_CONFIG" ] || mimic_die "MIMIC_CONFIG=$MIMIC_CONFIG: no such file"
MIMIC_CONFIG=$(cd "$(dirname "$MIMIC_CONFIG")" && pwd)/$(basename "$MIMIC_CONFIG")
MIMIC_RUN_DIR=${MIMIC_RUN_DIR:-${SLURM_SUBMIT_DIR:-$PWD}}
mkdir -p "$MIMIC_RUN_DIR"
MIMIC_RUN_DIR=$(cd "$MIMIC_RUN_DIR" && pwd)
export MIMIC_ROOT MIMIC_BIN MIMIC_CONFIG MIMIC_RUN_DIR
cd "$MIMIC_RUN_DIR"

# Open MPI as root inside containers, one BLAS thread per rank, HDF5 locking off (jobs/env.sh).
# shellcheck source=../env.sh
source "$MIMIC_ROOT/jobs/env.sh"
# One rank per core: threads only if the job asked for several CPUs per task.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-$OMP_NUM_THREADS}
export OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-$OPENBLAS_NUM_THREADS}

# --- parallel file systems (Lustre, GPFS, BeeGFS) --------------------------------------------------
# MPI-IO layer: ROMIO rather than OMPIO. Open MPI 4 picks OMPIO by default on most file systems. ROMIO
# (the MPI-IO of MPICH and its derivatives) is the layer parallel HDF5 is most widely tested with, and it
# reads the hints file below (ROMIO_HINTS: striping, collective buffering, data sieving), which OMPIO
# ignores. Excluding ompio, rather than naming romio321, works for Open MPI 4 and 5 alike.
export OMPI_MCA_io=${OMPI_MCA_io:-^ompio}
# HDF5 1.10 and later lock (flock) every file they open. Lustre mounted without -o flock, and several
# NFS set-ups, do not support it and every open fails ("unable to lock file"); Mimic never has two jobs
# write one file, so locking is off.
export HDF5_USE_FILE_LOCKING=FALSE
# Stripe alignment: HDF5 places every object of 64 KiB or more (every large dataset) at a multiple of
# MIMIC_HDF5_ALIGNMENT (read by Mimic's file layer), so datasets start on a stripe boundary. Collective
# writes go through ROMIO's aggregators, which on Lustre cut the file into stripe-aligned domains of
# striping_unit bytes: with aligned datasets every stripe has a single writer (one lock owner). ROMIO
# also gets the stripe count (used when it creates a file on Lustre), collective buffering for writes,
# and data sieving off for writes (its read-modify-write of whole regions takes extent locks).
MIMIC_STRIPE_SIZE=${MIMIC_STRIPE_SIZE:-1048576}
export MIMIC_HDF5_ALIGNMENT=${MIMIC_HDF5_ALIGNMENT:-$MIMIC_STRIPE_SIZE}
# The hints file lives in the run directory because every node's ranks read it.
if [ -z "${ROMIO_HINTS:-}" ]; then
    ROMIO_HINTS="$MIMIC_RUN_DIR/.romio-hints.${SLURM_JOB_ID:-$$}"
    {
        echo "striping_unit $MIMIC_STRIPE_SIZE"
        [ -z "${MIMIC_STRIPE_COUNT:-}" ] || echo "striping_factor $MIMIC_STRIPE_COUNT"
        echo "romio_cb_write enable"
        echo "romio_ds_write disable"
    } >"$ROMIO_HINTS"
    # shellcheck disable=SC2064
    trap "rm -f '$ROMIO_HINTS'" EXIT
fi
export ROMIO_HINTS
# On Lustre, new files in the run directory inherit its layout: give it the stripe size (and count).
if command -v lfs >/dev/null 2>&1 && lfs getstripe -d "$MIMIC_RUN_DIR" >/dev/null 2>&1; then
    lfs setstripe -S "$MIMIC_STRIPE_SIZE" ${MIMIC_STRIPE_COUNT:+-c "$MIMIC_STRIPE_COUNT"} "$MIMIC_RUN_DIR" ||
        mimic_log "lfs setstripe on $MIMIC_RUN_DIR failed; keeping its layout"
fi

# --- launcher ----------------------------------------------------------------------------------------
if [ -z "${MIMIC_LAUNCHER:-}" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ]; then MIMIC_LAUNCHER=srun; else MIMIC_LAUNCHER=mpirun; fi
fi

# mimic_launcher: fills the array mimic_launch with the command prefix that starts the ranks: all tasks
# of the allocation, or MIMIC_NP of them when set (scaling studies run several sizes in one allocation).
mimic_launcher() {
    case "$MIMIC_LAUNCHER" in
    srun)
        # Open MPI 4.1 with SLURM 22.05: --mpi=pmix works; plain srun and --mpi=pmi2 fail at MPI_Init.
        # shellcheck disable=SC2206
        mimic_launch=(srun --mpi="${MIMIC_SRUN_MPI:-pmix}" --kill-on-bad-exit=1 ${MIMIC_NP:+--ntasks=$MIMIC_NP}
            ${MIMIC_SRUN_ARGS:-})
        ;;
    mpirun)
        mimic_launch=(mpirun -n "${MIMIC_NP:-${SLURM_NTASKS:-1}}")
        ;;
    *)
        # shellcheck disable=SC2206
        mimic_launch=($MIMIC_LAUNCHER)
        ;;
    esac
    # The per-rank wrapper: one GPU per rank (CUDA_VISIBLE_DEVICES narrowed by the node-local rank).
    mimic_launch+=("$MIMIC_ROOT/jobs/slurm/bind.sh")
}

# --- running a stage ----------------------------------------------------------------------------------
# mimic_stage <command words...> [-- extra options]: runs one mimic command with the config, the
# MIMIC_ARGS and MIMIC_<STAGE>_ARGS overrides and any extra options; returns its exit status.
mimic_stage() {
    local words=() extra=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        words+=("$1")
        shift
    done
    [ $# -eq 0 ] || {
        shift
        extra=("$@")
    }
    local key
    key=$(echo "${words[*]}" | tr 'a-z ' 'A-Z_')
    local var="MIMIC_${key}_ARGS"
    local args=()
    # shellcheck disable=SC2206
    args=(${MIMIC_ARGS:-} ${!var:-})
    case "$key" in
    LABEL | DISTILL | TRAIN | ENSEMBLE_TRAIN)
        [ -z "${MIMIC_TIMINGS_CSV:-}" ] || args+=(--timings-csv "$MIMIC_TIMINGS_CSV") ;;
    esac
    mimic_launcher
    local cmd=("${mimic_launch[@]}" "$MIMIC_BIN" "${words[@]}" --config "$MIMIC_CONFIG" "${args[@]}" "${extra[@]}")
    mimic_log "job ${SLURM_JOB_ID:-none} (${SLURM_JOB_NAME:-}) on ${SLURM_JOB_NODELIST:-$(hostname -s)}:" \
        "${MIMIC_NP:-${SLURM_NTASKS:-1}} rank(s), restart ${SLURM_RESTART_COUNT:-0}"
    mimic_log "run dir $MIMIC_RUN_DIR, config $MIMIC_CONFIG"
    mimic_log "OMPI_MCA_io=$OMPI_MCA_io HDF5_USE_FILE_LOCKING=$HDF5_USE_FILE_LOCKING" \
        "MIMIC_HDF5_ALIGNMENT=$MIMIC_HDF5_ALIGNMENT ROMIO_HINTS=$ROMIO_HINTS"
    mimic_log "running: ${cmd[*]}"
    local start rc=0 step=${MIMIC_STEP:+[$MIMIC_STEP] }
    start=$(date +%s)
    mimic_log "${step}${words[*]} started$(mimic_since_submit "$start")"
    "${cmd[@]}" || rc=$?
    mimic_log "${words[*]} finished with exit status $rc after $(($(date +%s) - start)) s"
    mimic_log "${step}${words[*]} $([ $rc -eq 0 ] && echo done || echo failed)" \
        "in $(mimic_duration $(($(date +%s) - start)))$(mimic_since_submit "$(date +%s)")"
    return $rc
}
