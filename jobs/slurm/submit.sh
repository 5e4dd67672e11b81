#!/usr/bin/env bash
# Submits Mimic's pipeline to SLURM: one batch job per stage, chained with --dependency=afterok so a
# stage starts only when the stages it reads from have succeeded (and is cancelled if one fails).
#
# Usage: MIMIC_CONFIG=pipeline.ini [MIMIC_RUN_DIR=run/x] jobs/slurm/submit.sh [stage ...]
#   stages (default: all six, in this order):
#     data_import (import) -> ensemble_train (ensemble) and transfer -> label -> distill -> eval
#   Each stage depends on those of its inputs that are submitted in the same call; MIMIC_AFTER=ID[:ID]
#   makes the first stages wait for jobs submitted earlier. Resubmitting after a failure or a time
#   limit is safe: every stage resumes or skips finished work.
#
# Environment (see jobs/slurm/common.sh for what the jobs themselves read):
#   MIMIC_CONFIG            INI file, one section per command; relative paths in it are relative to
#                           MIMIC_RUN_DIR (required)
#   MIMIC_RUN_DIR           where the stages run and write (default: run/slurm in the source tree;
#                           from an install, run/slurm in the current directory)
#   MIMIC_BIN               mimic executable (default: build/mimic in a built source tree, else mimic
#                           on PATH, as an install's module sets it)
#   MIMIC_NODES[_<STAGE>]   nodes per job (default 1); <STAGE> is DATA_IMPORT, ENSEMBLE_TRAIN, TRANSFER,
#                           LABEL, DISTILL or EVAL
#   MIMIC_NTASKS[_<STAGE>]  ranks per job (default: one per core of every node, whole nodes)
#   MIMIC_GPUS_PER_NODE     GPUs per node: --gpus-per-node=N and N ranks per node (one rank per GPU)
#   MIMIC_CPUS_PER_TASK     --cpus-per-task (threads per rank)
#   MIMIC_TIME[_<STAGE>]    --time limit (SLURM format, e.g. 30 or 2:00:00)
#   MIMIC_PARTITION, MIMIC_ACCOUNT, MIMIC_QOS
#   MIMIC_SBATCH_ARGS[_<STAGE>]  any further sbatch options
#   MIMIC_DRY_RUN=1         print the sbatch commands instead of submitting
# Prints "stage jobid" per job and appends them to $MIMIC_RUN_DIR/jobs.txt; logs go to
# $MIMIC_RUN_DIR/logs/mimic-<stage>-<jobid>.out, and each starts and ends with "[k/N] <stage>" lines.
# jobs/slurm/status.sh [RUN_DIR] shows where the submitted chain is.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/jobs/slurm"
# shellcheck source=locate.sh
source "$here/locate.sh"
die() {
    echo "submit: error: $*" >&2
    exit 2
}

[ -n "${MIMIC_CONFIG:-}" ] || die "MIMIC_CONFIG is not set (the INI file with the stages' options)"
[ -f "$MIMIC_CONFIG" ] || die "MIMIC_CONFIG=$MIMIC_CONFIG: no such file"
MIMIC_CONFIG=$(cd "$(dirname "$MIMIC_CONFIG")" && pwd)/$(basename "$MIMIC_CONFIG")
MIMIC_RUN_DIR=${MIMIC_RUN_DIR:-$(mimic_default_run_dir "$root")}
mkdir -p "$MIMIC_RUN_DIR/logs"
MIMIC_RUN_DIR=$(cd "$MIMIC_RUN_DIR" && pwd)
MIMIC_BIN=${MIMIC_BIN:-$(mimic_default_bin "$root")}
[ -n "$MIMIC_BIN" ] || die "$(mimic_no_bin_message "$root")"
[ -x "$MIMIC_BIN" ] || die "MIMIC_BIN=$MIMIC_BIN is not an executable (build Mimic or set MIMIC_BIN)"
MIMIC_ROOT=$root
# The jobs inherit this environment (sbatch's default --export=ALL).
export MIMIC_ROOT MIMIC_BIN MIMIC_CONFIG MIMIC_RUN_DIR

all=(data_import ensemble_train transfer label distill eval)
declare -A inputs=([data_import]="" [ensemble_train]="data_import" [transfer]="data_import"
    [label]="ensemble_train transfer" [distill]="label" [eval]="distill")
stages=()
[ $# -gt 0 ] || set -- "${all[@]}"
for s in "$@"; do
    case "$s" in
    import) s=data_import ;;
    ensemble) s=ensemble_train ;;
    esac
    [ -n "${inputs[$s]+set}" ] || die "unknown stage '$s' (stages: ${all[*]})"
    stages+=("$s")
done

# Ranks per node when MIMIC_NTASKS is not given: every core of the partition's nodes.
cores_per_node() {
    local c
    c=$(sinfo -h ${MIMIC_PARTITION:+-p "$MIMIC_PARTITION"} -o %c 2>/dev/null | head -1 | tr -dc 0-9)
    [ -n "$c" ] || die "cannot read the cores per node from sinfo; set MIMIC_NTASKS"
    echo "$c"
}

# Each job learns its place in the chain ("[3/6] label") and when the chain was submitted, so that its
# log says where the pipeline is; jobs/slurm/status.sh reads jobs.txt for the whole picture.
declare -A job
total=0
for s in "${all[@]}"; do printf '%s\n' "${stages[@]}" | grep -qx "$s" && total=$((total + 1)); done
step=0
submitted=$(date +%s)
for s in "${all[@]}"; do
    printf '%s\n' "${stages[@]}" | grep -qx "$s" || continue
    key=${s^^}
    step=$((step + 1))
    opts=(--parsable --job-name="mimic-${s//_/-}" --chdir="$MIMIC_RUN_DIR"
        --output="$MIMIC_RUN_DIR/logs/%x-%j.out"
        --export="ALL,MIMIC_STEP=$step/$total,MIMIC_SUBMITTED=$submitted")
    nodes_var=MIMIC_NODES_$key ntasks_var=MIMIC_NTASKS_$key time_var=MIMIC_TIME_$key
    nodes=${!nodes_var:-${MIMIC_NODES:-1}}
    ntasks=${!ntasks_var:-${MIMIC_NTASKS:-}}
    opts+=(--nodes="$nodes")
    if [ -n "${MIMIC_GPUS_PER_NODE:-}" ]; then
        opts+=(--gpus-per-node="$MIMIC_GPUS_PER_NODE" --ntasks-per-node="$MIMIC_GPUS_PER_NODE")
    elif [ -n "$ntasks" ]; then
        opts+=(--ntasks="$ntasks")
    else
        opts+=(--exclusive --ntasks-per-node="$(cores_per_node)")
    fi
    [ -z "${MIMIC_CPUS_PER_TASK:-}" ] || opts+=(--cpus-per-task="$MIMIC_CPUS_PER_TASK")
    t=${!time_var:-${MIMIC_TIME:-}}
    [ -z "$t" ] || opts+=(--time="$t")
    [ -z "${MIMIC_PARTITION:-}" ] || opts+=(--partition="$MIMIC_PARTITION")
    [ -z "${MIMIC_ACCOUNT:-}" ] || opts+=(--account="$MIMIC_ACCOUNT")
    [ -z "${MIMIC_QOS:-}" ] || opts+=(--qos="$MIMIC_QOS")
    deps=()
    for i in ${inputs[$s]}; do
        [ -z "${job[$i]:-}" ] || deps+=("${job[$i]}")
    done
    # Stages without a dependency inside this submission wait for MIMIC_AFTER, if given.
    if [ ${#deps[@]} -eq 0 ] && [ -n "${MIMIC_AFTER:-}" ]; then
        IFS=: read -r -a deps <<<"$MIMIC_AFTER"
    fi
    if [ ${#deps[@]} -gt 0 ]; then
        opts+=(--dependency="afterok:$(
            IFS=:
            echo "${deps[*]}"
        )" --kill-on-invalid-dep=yes)
    fi
    extra_var=MIMIC_SBATCH_ARGS_$key
    # shellcheck disable=SC2206
    opts+=(${MIMIC_SBATCH_ARGS:-} ${!extra_var:-})
    if [ "${MIMIC_DRY_RUN:-0}" = 1 ]; then
        echo "sbatch ${opts[*]} $here/$s.sbatch"
        job[$s]="<$s>"
        continue
    fi
    id=$(sbatch "${opts[@]}" "$here/$s.sbatch") || die "sbatch failed for stage $s"
    id=${id%%;*}
    job[$s]=$id
    echo "$s $id" | tee -a "$MIMIC_RUN_DIR/jobs.txt"
done
