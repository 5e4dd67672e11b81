#!/usr/bin/env bash
# Preemption under a real SLURM: a label job and a distill job (the real job scripts, 2 ranks each) are
# killed by SLURM's time limit in the middle of their work; resubmitted with the same settings, each
# resumes (label from its per-block done record, distill from its checkpoint) and ends with files
# identical, bit for bit, to the uninterrupted run of tests/slurm/pipeline.sh (the fixture).
#
# SLURM's smallest --time is one minute and it enforces limits on a 30 s sweep, while these stages take
# seconds here. So once a job's ranks have made progress they are paused (SIGSTOP, after which they use
# no CPU) until the limit falls: the kill itself is SLURM's own (state TIMEOUT, SIGCONT + SIGTERM, then
# SIGKILL after KillWait). Usage: preempt.sh PIPELINE_RUN_DIR
source "$(dirname "$0")/../cli/common.sh"
source "$(dirname "$0")/cluster.sh"
run=${1:?usage: preempt.sh PIPELINE_RUN_DIR}
[ -f "$run/pipeline.ini" ] && [ -f "$run/logits.h5" ] && [ -f "$run/student.h5" ] ||
    die "$run holds no finished pipeline run (run the slurm.pipeline test first)"
slurm_lock "$PWD/scratch/slurm.lock"
d=$PWD/scratch/slurm.preempt
slurm_clean_stale "$d/cluster"
rm -rf "$d" && mkdir -p "$d"
out=$run/preempt
rm -rf "$out" && mkdir -p "$out"
exe=$(readlink -f "$MIMIC")

# The paused jobs keep their cores: let the four jobs of this test share the two cores.
MIMIC_SLURM_OVERSUBSCRIBE=FORCE:4 slurm_start "$d/cluster"
export MIMIC_CONFIG=$run/pipeline.ini MIMIC_RUN_DIR=$run MIMIC_BIN=$MIMIC MIMIC_NTASKS=2
export MIMIC_PROGRESS_INTERVAL=0.01
export MIMIC_LABEL_ARGS="--out preempt/logits.h5" MIMIC_DISTILL_ARGS="--out preempt/student.h5"
submit() { "$TESTS_DIR/../jobs/slurm/submit.sh" "$1" | awk '{print $2}'; }
log_of() { echo "$run/logs/mimic-$1-$2.out"; }

# The job's mimic ranks: pids SLURM tracks for the job whose executable is mimic.
ranks_of() {
    local p
    for p in $(slurm_pids "$1"); do
        [ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && echo "$p"
    done
}

# Progress tests on the job log: label a quarter of its rows or more (it counts only rows whose done
# records are on disk), distill 30 samples or more and a checkpoint on disk; neither finished.
label_midway() {
    local last
    last=$(grep -o '[0-9]*/[0-9]* rows' "$1" 2>/dev/null | tail -1)
    [ -n "$last" ] || return 1
    local done=${last%%/*} rest=${last#*/}
    local total=${rest%% *}
    [ $((4 * done)) -ge "$total" ] && [ "$done" -lt "$total" ]
}
distill_midway() {
    local last
    last=$(grep -o '[0-9]*/[0-9]* samples' "$1" 2>/dev/null | tail -1)
    [ -n "$last" ] && [ -f "$out/student.h5.ckpt" ] || return 1
    local done=${last%%/*} rest=${last#*/}
    local total=${rest%% *}
    [ "$done" -ge 30 ] && [ "$done" -lt "$total" ]
}

# pause_midway ID NAME TEST WINDOW: pauses the job's ranks as soon as they exist, then lets them run in
# windows of WINDOW seconds until TEST passes on the log, and leaves them paused. After each window the
# paused ranks' last lines are given 0.05 s to reach the log (srun forwards them), so a window is only as
# long as the work it lets through: on a fast idle node the whole label job takes 0.1 s.
pause_midway() {
    local id=$1 name=$2 test=$3 window=$4 ranks=() i
    local log
    log=$(log_of "$name" "$id")
    for i in $(seq 1 600); do
        mapfile -t ranks < <(ranks_of "$id")
        [ ${#ranks[@]} -ge 2 ] && break
        [ "$(slurm_field "$id" JobState)" = PENDING ] || [ "$(slurm_field "$id" JobState)" = RUNNING ] ||
            { cat "$log"; die "$name job $id ended before its ranks were seen"; }
        sleep 0.05
    done
    [ ${#ranks[@]} -ge 2 ] || die "$name job $id: no mimic ranks after 30 s"
    kill -STOP "${ranks[@]}"
    for i in $(seq 1 2000); do
        if $test "$log"; then
            echo "paused $name job $id (ranks ${ranks[*]}) at: $(grep -o '[0-9]*/[0-9]* [a-z]*' "$log" | tail -1)"
            return 0
        fi
        kill -CONT "${ranks[@]}"
        sleep "$window"
        kill -STOP "${ranks[@]}" 2>/dev/null ||
            { cat "$log"; die "$name job $id finished before it could be paused midway"; }
        sleep 0.05
    done
    cat "$log"
    die "$name job $id made no visible progress"
}

# --- 1. both jobs under a one-minute limit, paused midway, killed by SLURM -----------------------------
start=$(date +%s)
# One after the other: the distill job takes about a second here, so submitted beside the label job it
# could finish while the label job is being paused.
label1=$(MIMIC_TIME=1 submit label)
[ -n "$label1" ] || die "sbatch failed for the label job"
pause_midway "$label1" label label_midway 0.01
distill1=$(MIMIC_TIME=1 submit distill)
[ -n "$distill1" ] || die "sbatch failed for the distill job"
pause_midway "$distill1" distill distill_midway 0.05
slurm_wait "$label1" "$distill1" --timeout 150
for id in "$label1" "$distill1"; do
    state=$(slurm_field "$id" JobState) reason=$(slurm_field "$id" Reason)
    echo "job $id: $state ($reason) after $(slurm_field "$id" RunTime)"
    [ "$state" = TIMEOUT ] || { cat "$run"/logs/*-"$id".out; die "job $id ended $state, not TIMEOUT"; }
done
echo "time limits hit $(($(date +%s) - start)) s after submission"
[ -f "$out/logits.h5.partial" ] && [ ! -e "$out/logits.h5" ] || die "label: expected only logits.h5.partial"
[ -f "$out/student.h5.ckpt" ] && [ ! -e "$out/student.h5" ] || die "distill: expected only the checkpoint"

# --- 2. resubmitted as they were, without the limit: both resume and finish ----------------------------
label2=$(submit label)
distill2=$(submit distill)
slurm_wait "$label2" "$distill2" --timeout 300
for id in "$label2" "$distill2"; do
    [ "$(slurm_field "$id" JobState)" = COMPLETED ] || { cat "$run"/logs/*-"$id".out; die "job $id did not complete"; }
done
l2=$(log_of label "$label2") d2=$(log_of distill "$distill2")
resumed=$(sed -n 's/.*label: resuming .*: \([0-9]*\) of \([0-9]*\) blocks already done.*/\1 \2/p' "$l2")
[ -n "$resumed" ] && [ "${resumed% *}" -gt 0 ] || { cat "$l2"; die "label did not resume from its partial file"; }
echo "label resumed with ${resumed% *} of ${resumed#* } blocks already done"
grep -q "distill: resuming from .*student.h5.ckpt at epoch" "$d2" || { cat "$d2"; die "distill did not resume"; }
grep -o "distill: resuming from .*" "$d2"

# --- 3. the same files as the uninterrupted run ------------------------------------------------------
"$MIMIC_PYTHON" "$TESTS_DIR/python/compare_h5.py" "$out/logits.h5" "$run/logits.h5" --attr logits_fingerprint ||
    die "the resumed labels differ from the uninterrupted run's"
"$MIMIC_PYTHON" "$TESTS_DIR/python/compare_h5.py" "$out/student.h5" "$run/student.h5" ||
    die "the resumed student differs from the uninterrupted run's"
slurm_stop
echo "preempt: passed in $(($(date +%s) - start)) s"
