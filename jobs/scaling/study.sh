#!/usr/bin/env bash
# Strong and weak scaling of `mimic label` (member groups x data shards) and `mimic distill` (data
# replicas x model shards) over rank counts and grid shapes; per-phase timings into CSV, then plots and
# a markdown report (jobs/scaling/plot.py).
#
# Usage: jobs/scaling/study.sh OUT_DIR            (e.g. bench/results/scaling-<machine>)
#   Outside SLURM the ranks start with mpirun; inside an allocation with srun (e.g.
#   sbatch -N 2 --ntasks-per-node=16 --time=1:00:00 jobs/scaling/study.sbatch OUT_DIR). The batch-script
#   settings of jobs/slurm/common.sh apply (ROMIO, HDF5 locking off, stripe alignment, GPU binding).
#
# Workload (every size is an environment variable; defaults in brackets):
#   SCALING_RANKS               rank counts ["1 2 4 ... cores"]; counts above the cores are run
#                               oversubscribed and marked as such in the CSV and the report
#   SCALING_STAGES [label distill]   SCALING_MODES [strong weak]   SCALING_REPEATS [3] (median taken)
#   label:   SCALING_MEMBERS [4] members of SCALING_MEMBER_ARCH [dense:512,relu,dense:512,relu,dense:10];
#            strong: SCALING_LABEL_ROWS [60000] rows; weak: SCALING_LABEL_ROWS_PER_RANK [30000] x P rows;
#            grid shapes: every member-group count G dividing P (G <= members), S = P / G data shards
#   distill: student SCALING_STUDENT_ARCH [dense:2048,relu,dense:10], one epoch;
#            strong: SCALING_DISTILL_ROWS [30000] rows, global batch SCALING_DISTILL_BATCH [256];
#            weak: SCALING_DISTILL_ROWS_PER_RANK [15000] x P rows, batch SCALING_DISTILL_BATCH_PER_RANK
#            [128] x P (the same steps and the same work per rank for every R x M shape);
#            grid shapes: every model-shard count M dividing P, R = P / M replicas
#   SCALING_WORK_DIR            data, ensemble, transfer sets and logits, kept for the next study of the
#                               same ensemble [run/scaling-work-<hash of the member settings>]
# Outputs in OUT_DIR: label.csv and distill.csv (columns mode,repeat,cores,cpu_share, then the stage's own
# --timings-csv columns), environment.txt, logs of every run in OUT_DIR/logs, and what plot.py draws.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: jobs/scaling/study.sh OUT_DIR}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
# The exact command, with the SCALING_* and MIMIC_BIN settings it was given.
command_line="$(env | grep -E '^(SCALING_[A-Z_]*|MIMIC_BIN)=' | sort | sed "s/=\(.*\)/='\1'/" | tr '\n' ' ')$0 $*"

cores=${SLURM_NTASKS:-$(getconf _NPROCESSORS_ONLN)}
if [ -z "${SCALING_RANKS:-}" ]; then
    SCALING_RANKS=1
    p=2
    while [ $p -le "$cores" ]; do
        SCALING_RANKS+=" $p"
        p=$((p * 2))
    done
fi
stages=${SCALING_STAGES:-label distill}
modes=${SCALING_MODES:-strong weak}
repeats=${SCALING_REPEATS:-3}
members=${SCALING_MEMBERS:-4}
member_arch=${SCALING_MEMBER_ARCH:-dense:512,relu,dense:512,relu,dense:10}
label_rows=${SCALING_LABEL_ROWS:-60000}
label_rows_per_rank=${SCALING_LABEL_ROWS_PER_RANK:-30000}
student_arch=${SCALING_STUDENT_ARCH:-dense:2048,relu,dense:10}
distill_rows=${SCALING_DISTILL_ROWS:-30000}
distill_batch=${SCALING_DISTILL_BATCH:-256}
distill_rows_per_rank=${SCALING_DISTILL_ROWS_PER_RANK:-15000}
distill_batch_per_rank=${SCALING_DISTILL_BATCH_PER_RANK:-128}

# Inputs (data, ensemble, transfer sets, logits) are kept between studies of the same workload.
work=${SCALING_WORK_DIR:-$root/run/scaling-work-$(echo "$members $member_arch" | md5sum | cut -c1-8)}
mkdir -p "$work"
work=$(cd "$work" && pwd)

# The study's fixed options live in a config file, like a pipeline's; each run adds its own.
export MIMIC_CONFIG=$work/study.ini MIMIC_RUN_DIR=$work
export MIMIC_BIN=${MIMIC_BIN:-$root/build/mimic}
export MIMIC_PROGRESS_INTERVAL=${MIMIC_PROGRESS_INTERVAL:-30}
cat >"$MIMIC_CONFIG" <<EOF
[data-import]
out-dir = data
val = 5000
[ensemble-train]
members = $members
arch = $member_arch
data = data/train.h5
out-dir = ensemble
epochs = 1
[transfer]
from = data/train.h5
augment = 1
shift = 2
[label]
ensemble = ensemble/manifest.h5
block-rows = 4096
batch = 256
overwrite = true
[distill]
arch = $student_arch
epochs = 1
overwrite = true
EOF
# shellcheck source=../slurm/common.sh
source "$root/jobs/slurm/common.sh"
log() { echo "scaling: $*"; }

divisors() {
    local n=$1 d
    for d in $(seq 1 "$n"); do [ $((n % d)) -ne 0 ] || echo "$d"; done
}

# --- inputs: data, ensemble, transfer sets of every size the study needs, logits for distill ---------
max_rank=$(echo "$SCALING_RANKS" | tr ' ' '\n' | sort -n | tail -1)
declare -A need_transfer need_logits
for m in $modes; do
    for p in $SCALING_RANKS; do
        case " $stages " in *" label "*)
            [ "$m" = strong ] && need_transfer[$label_rows]=1 || need_transfer[$((label_rows_per_rank * p))]=1 ;;
        esac
        case " $stages " in *" distill "*)
            n=$([ "$m" = strong ] && echo "$distill_rows" || echo $((distill_rows_per_rank * p)))
            need_transfer[$n]=1
            need_logits[$n]=1
            ;;
        esac
    done
done
prep_np=$((max_rank < cores ? max_rank : cores))
prep() {
    local name=$1
    shift
    MIMIC_NP=$prep_np mimic_stage "$@" >"$out/logs/prep-$name.log" 2>&1 ||
        {
            tail -20 "$out/logs/prep-$name.log"
            mimic_die "preparation step $name failed (log: $out/logs/prep-$name.log)"
        }
}
[ -f data/test.h5 ] || prep data-import data import
[ -f ensemble/manifest.h5 ] || prep ensemble-train ensemble train
source_rows=$("$MIMIC_BIN" info data/train.h5 | sed -n 's|^  /X  float32 \[\([0-9]*\),.*|\1|p')
for n in "${!need_transfer[@]}"; do
    [ -f "transfer-$n.h5" ] && continue
    sub=()
    [ "$n" -ge "$source_rows" ] || sub=(--subsample)
    prep "transfer-$n" transfer -- --size "$n" --out "transfer-$n.h5" "${sub[@]}"
done
for n in "${!need_logits[@]}"; do
    [ -f "logits-$n.h5" ] || prep "label-$n" label -- --transfer "transfer-$n.h5" --out "logits-$n.h5"
done

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host: $(hostname -s), $(getconf _NPROCESSORS_ONLN) cores, ${SLURM_JOB_NUM_NODES:-1} node(s), cores used: $cores"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "mimic: $("$MIMIC_BIN" --version | head -1)"
    echo "launcher: $MIMIC_LAUNCHER"
    echo "command: $command_line"
    for v in SCALING_RANKS stages modes repeats members member_arch label_rows label_rows_per_rank student_arch \
        distill_rows distill_batch distill_rows_per_rank distill_batch_per_rank; do
        echo "setting: $v=${!v}"
    done
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/environment.txt"

# Every rank runs under this wrapper, which records its wall time and CPU time (user + system of the
# rank): cpu_share = CPU / wall, averaged over ranks. MPI ranks spin while they wait for each other, so
# with cores of their own it stays near 1 except for time blocked on the disk (fsync) and start-up; far
# below 1, other processes held the cores and the times measure that contention more than Mimic.
timed=$work/timed-mimic.sh
cat >"$timed" <<EOF
#!/usr/bin/env bash
rank=\${SLURM_PROCID:-\${OMPI_COMM_WORLD_RANK:-0}}
start=\$(date +%s.%N)
"$MIMIC_BIN" "\$@"
rc=\$?
end=\$(date +%s.%N)
times >"$work/times.\$rank" # in this shell: a pipe or \$(...) would run it in a child without children
echo "\$start \$end \$(tail -1 "$work/times.\$rank")" >"$work/cpu.\$rank"
exit \$rc
EOF
chmod +x "$timed"
cpu_share() {
    cat "$work"/cpu.* | awk '
        function sec(t,  a) { split(t, a, "m"); return a[1] * 60 + substr(a[2], 1, length(a[2]) - 1) }
        { s += (sec($3) + sec($4)) / ($2 - $1); n++ } END { if (n) printf "%.3f", s / n }'
}

# run_one STAGE MODE P REPEAT NAME [options]: one timed run; its timings CSV rows go to OUT/STAGE.csv.
run_one() {
    local stage=$1 mode=$2 p=$3 rep=$4 name=$5
    shift 5
    local tmp=$work/timings.csv logf=$out/logs/$stage-$mode-P$p-$name-r$rep.log
    rm -f "$tmp" "$work"/cpu.* "$work"/times.*
    if ! MIMIC_BIN=$timed MIMIC_NP=$p MIMIC_TIMINGS_CSV=$tmp mimic_stage "$stage" -- "$@" >"$logf" 2>&1; then
        tail -20 "$logf"
        mimic_die "$stage $mode P=$p $name failed (log: $logf)"
    fi
    [ -f "$tmp" ] || mimic_die "$stage wrote no timings ($logf)"
    local share csv=$out/$stage.csv prefix="mode,repeat,cores,cpu_share"
    share=$(cpu_share)
    if [ ! -f "$csv" ]; then
        echo "$prefix,$(head -1 "$tmp")" >"$csv"
    elif [ "$(head -1 "$csv")" != "$prefix,$(head -1 "$tmp")" ]; then
        mimic_die "$csv: the stage's timing columns changed ($(head -1 "$tmp"))"
    fi
    tail -n +2 "$tmp" | sed "s/^/$mode,$rep,$cores,$share,/" >>"$csv"
    log "$stage $mode P=$p $name r$rep: total $(awk -F, '$(NF-3) == "total" {print $NF}' "$tmp") s," \
        "cpu share $share, load $(cut -d' ' -f1 /proc/loadavg)"
}

rm -f "$out/label.csv" "$out/distill.csv"
for rep in $(seq 1 "$repeats"); do
    for m in $modes; do
        for p in $SCALING_RANKS; do
            if [[ " $stages " == *" label "* ]]; then
                n=$([ "$m" = strong ] && echo "$label_rows" || echo $((label_rows_per_rank * p)))
                for g in $(divisors "$p"); do
                    [ "$g" -le "$members" ] || continue
                    run_one label "$m" "$p" "$rep" "G${g}xS$((p / g))" --transfer "transfer-$n.h5" \
                        --out "out-logits.h5" --groups "$g"
                done
            fi
            if [[ " $stages " == *" distill "* ]]; then
                if [ "$m" = strong ]; then
                    n=$distill_rows b=$distill_batch
                else
                    n=$((distill_rows_per_rank * p)) b=$((distill_batch_per_rank * p))
                fi
                for ms in $(divisors "$p"); do
                    run_one distill "$m" "$p" "$rep" "R$((p / ms))xM$ms" --transfer "transfer-$n.h5" \
                        --logits "logits-$n.h5" --out "out-student.h5" --model-shards "$ms" --batch "$b"
                done
            fi
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/environment.txt"
rm -f out-logits.h5 out-student.h5 out-student.h5.ckpt "$work/timings.csv" "$work"/cpu.* "$work"/times.*
/usr/bin/python3 "$root/jobs/scaling/plot.py" "$out"
log "done: $out"
