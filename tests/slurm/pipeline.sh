#!/usr/bin/env bash
# The whole pipeline under a real single-node SLURM: jobs/slurm/submit.sh submits the real batch scripts
# (data import -> ensemble train, transfer -> label -> distill -> eval, 2 ranks each through
# srun --mpi=pmix) on a tiny Fashion-MNIST configuration; the test waits for them and checks job states,
# the dependency order, the parallel-file-system settings the jobs ran with, every output file, and the
# student's test accuracy. A second submission whose label stage fails must cancel distill and eval.
# Its run directory (scratch/slurm.pipeline/run) is the fixture of tests/slurm/preempt.sh.
source "$(dirname "$0")/../cli/common.sh"
source "$(dirname "$0")/cluster.sh"
slurm_lock "$PWD/scratch/slurm.lock"
start=$(date +%s)
d=$PWD/scratch/slurm.pipeline
slurm_clean_stale "$d/cluster"
rm -rf "$d" && mkdir -p "$d/run"
run=$d/run

cat >"$run/pipeline.ini" <<'EOF'
# Tiny Fashion-MNIST pipeline for the SLURM tests; paths are relative to the run directory.
[data-import]
out-dir = data
val = 5000

[ensemble-train]
members = 2
arch = dense:64,relu,dense:10
data = data/train.h5
val = data/val.h5
out-dir = ensemble
epochs = 1

[transfer]
from = data/train.h5
size = 60000
augment = 1
shift = 2
out = transfer.h5

[label]
ensemble = ensemble/manifest.h5
transfer = transfer.h5
out = logits.h5
block-rows = 2048
batch = 256

[distill]
transfer = transfer.h5
logits = logits.h5
arch = dense:128,relu,dense:10
epochs = 1
checkpoint-every = 20
val = data/val.h5
out = student.h5

[eval]
model = student.h5
ensemble = ensemble/manifest.h5
data = data/test.h5
EOF

slurm_start "$d/cluster"
export MIMIC_CONFIG=$run/pipeline.ini MIMIC_RUN_DIR=$run MIMIC_BIN=$MIMIC MIMIC_NTASKS=2
"$TESTS_DIR/../jobs/slurm/submit.sh" >"$d/jobs.txt" || die "submit.sh failed"
cat "$d/jobs.txt"
declare -A id
while read -r stage job; do id[$stage]=$job; done <"$d/jobs.txt"
stages=(data_import ensemble_train transfer label distill eval)
[ ${#id[@]} -eq 6 ] || die "expected six jobs"
slurm_wait "${id[@]}" --timeout 400
log() { echo "$run/logs/mimic-${1//_/-}-${id[$1]}.out"; }

# --- every job completed, in dependency order ----------------------------------------------------------
failed=0
for s in "${stages[@]}"; do
    state=$(slurm_field "${id[$s]}" JobState) code=$(slurm_field "${id[$s]}" ExitCode)
    printf '%-15s job %-8s %-10s exit %-5s %s .. %s\n' "$s" "${id[$s]}" "$state" "$code" \
        "$(slurm_field "${id[$s]}" StartTime)" "$(slurm_field "${id[$s]}" EndTime)"
    [ "$state" = COMPLETED ] && [ "$code" = 0:0 ] || {
        cat "$(log "$s")" >&2
        failed=1
    }
done
[ $failed -eq 0 ] || die "not every job completed"
epoch() { date -d "$(slurm_field "$1" "$2")" +%s; }
for pair in data_import:ensemble_train data_import:transfer ensemble_train:label transfer:label label:distill \
    distill:eval; do
    a=${pair%%:*} b=${pair#*:}
    [ "$(epoch "${id[$b]}" StartTime)" -ge "$(epoch "${id[$a]}" EndTime)" ] || die "$b started before $a ended"
done

# --- the jobs ran as configured: 2 MPI ranks under srun, the parallel-file-system settings -------------
for s in "${stages[@]}"; do
    f=$(log "$s")
    grep -q "^mimic ${s//_/ } on 2 ranks" "$f" || { cat "$f"; die "$s did not run on 2 MPI ranks"; }
    grep -q "running: srun --mpi=pmix" "$f" || die "$s was not started with srun --mpi=pmix"
    grep -q "OMPI_MCA_io=^ompio HDF5_USE_FILE_LOCKING=FALSE MIMIC_HDF5_ALIGNMENT=1048576" "$f" ||
        die "$s did not run with ROMIO, HDF5 locking off and 1 MiB alignment"
    grep -q "finished with exit status 0" "$f" || die "$s: no final status line"
done
# Each log says where the chain is ("[4/6] label started", "... done in 12s, pipeline submitted 1m03s ago"),
# and status.sh shows every job of jobs.txt as completed, in order.
grep -q "mimic-job: \[4/6\] label started, pipeline submitted" "$(log label)" || die "label: no [4/6] start line"
grep -q "mimic-job: \[6/6\] eval done in [0-9]" "$(log eval)" || die "eval: no [6/6] done line"
st=$(MIMIC_RUN_DIR=$run "$TESTS_DIR/../jobs/slurm/status.sh") || die "status.sh failed"
echo "$st"
[ "$(echo "$st" | grep -c ' COMPLETED ')" -eq 6 ] || die "status.sh does not show six completed jobs"
echo "$st" | sed -n 4p | grep -q '^\[4/6\] label ' || die "status.sh: the fourth line is not label"

# --- outputs ---------------------------------------------------------------------------------------
for f in data/train.h5 data/val.h5 data/test.h5 ensemble/manifest.h5 transfer.h5 logits.h5 student.h5; do
    [ -f "$run/$f" ] || die "$f is missing"
done
left=$(find "$run" -name '*.partial' | head -3)
[ -z "$left" ] || die "left behind: $left"
[ -z "$(find "$run" -name '.romio-hints.*')" ] || die "a ROMIO hints file was left behind"
(cd "$run" && "$MIMIC" ensemble info ensemble/manifest.h5) | grep -q "^2 members, 10 classes" ||
    die "the manifest does not list 2 members"
"$MIMIC" info "$run/transfer.h5" | grep -q "/X  float32 \[60000, 784\]" || die "transfer.h5 does not hold 60000 images"
"$MIMIC" info "$run/logits.h5" | grep -q "/logits  float32 \[60000, 10\]" || die "logits.h5 is not 60000 x 10"
"$MIMIC" info "$run/student.h5" | grep -q "mimic-model-1" || die "student.h5 is not a model file"
grep -q "label summary: logits.h5 (60000 x 10" "$(log label)" || die "label summary missing"
grep -q "distill summary: student.h5" "$(log distill)" || die "distill summary missing"

# The student learnt from the ensemble: its test accuracy (first accuracy line of eval) is well above chance.
acc=$(sed -n 's/^ *accuracy *\([0-9.]*\)%.*/\1/p' "$(log eval)" | head -1)
echo "student test accuracy: $acc%"
"$MIMIC_PYTHON" -c "import sys; sys.exit(0 if float('${acc:-0}') >= 75 else 1)" || {
    cat "$(log eval)"
    die "student accuracy ${acc:-none}% < 75%"
}
echo "pipeline: all six jobs completed in $(($(date +%s) - start)) s"

# --- a failing stage cancels what depends on it ---------------------------------------------------------
MIMIC_LABEL_ARGS="--transfer missing.h5 --out bad/logits.h5" MIMIC_DISTILL_ARGS="--out bad/student.h5" \
    MIMIC_EVAL_ARGS="--model bad/student.h5" "$TESTS_DIR/../jobs/slurm/submit.sh" label distill eval >"$d/bad.txt" ||
    die "submit.sh failed"
mapfile -t bad < <(awk '{print $2}' "$d/bad.txt")
slurm_wait "${bad[@]}" --timeout 60
[ "$(slurm_field "${bad[0]}" JobState)" = FAILED ] || die "the broken label job did not fail"
grep -q "missing.h5" "$run/logs/mimic-label-${bad[0]}.out" || die "the label job's log does not name the missing file"
for j in "${bad[1]}" "${bad[2]}"; do
    [ "$(slurm_field "$j" JobState)" = CANCELLED ] || die "job $j was not cancelled after its dependency failed"
done
[ ! -e "$run/bad" ] || [ -z "$(ls -A "$run/bad")" ] || die "the failed chain wrote outputs"
echo "failed label stage: distill and eval cancelled (DependencyNeverSatisfied)"
slurm_stop
echo "pipeline: passed in $(($(date +%s) - start)) s"
