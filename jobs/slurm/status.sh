#!/usr/bin/env bash
# Shows where a pipeline submitted with jobs/slurm/submit.sh is: one line per job of RUN_DIR/jobs.txt with
# its place in the chain, its SLURM state, its run time and the last progress line of its log.
#
# Usage: jobs/slurm/status.sh [RUN_DIR]     (default: $MIMIC_RUN_DIR, else run/slurm in the source tree,
#                                          or in the current directory when run from an install)
# Needs squeue or sacct on the PATH (the login node's SLURM client). Exit status 0; 1 when jobs.txt is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=locate.sh
source "$root/jobs/slurm/locate.sh"
run=${1:-${MIMIC_RUN_DIR:-$(mimic_default_run_dir "$root")}}
[ -f "$run/jobs.txt" ] || {
    echo "status: $run/jobs.txt: no such file (submit with jobs/slurm/submit.sh first)" >&2
    exit 1
}

# state <jobid>: "STATE ELAPSED" from squeue while the job is known to slurmctld, else from sacct, else scontrol.
state() {
    local s
    s=$(squeue -h -j "$1" -o '%T %M' 2>/dev/null | head -1) || true
    [ -n "$s" ] || s=$(sacct -n -X -j "$1" -o State,Elapsed 2>/dev/null | head -1 | awk '{print $1, $2}') || true
    [ -n "$s" ] || s=$(scontrol show job "$1" 2>/dev/null |
        sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p;s/.*RunTime=\([0-9:-]*\).*/\1/p' | paste -sd' ') || true
    echo "${s:-UNKNOWN -}"
}

# The last submission of each stage wins (a resubmission appends to jobs.txt).
declare -A id
order=()
while read -r stage job; do
    [ -n "${id[$stage]+set}" ] || order+=("$stage")
    id[$stage]=$job
done <"$run/jobs.txt"
n=${#order[@]} k=0
for stage in "${order[@]}"; do
    k=$((k + 1))
    read -r st el <<<"$(state "${id[$stage]}")"
    logf="$run/logs/mimic-${stage//_/-}-${id[$stage]}.out"
    last=""
    # The newest progress or summary line of a running or finished job (carriage returns split updates).
    [ -f "$logf" ] && last=$(tr '\r' '\n' <"$logf" | grep -E '%|summary|error|finished' | tail -1 | cut -c1-90)
    printf '[%d/%d] %-15s job %-8s %-11s %-10s %s\n' "$k" "$n" "$stage" "${id[$stage]}" "$st" "$el" "$last"
done
