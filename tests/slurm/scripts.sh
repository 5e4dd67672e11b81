#!/usr/bin/env bash
# The job scripts' logic without a cluster: jobs/slurm/submit.sh with MIMIC_DRY_RUN=1 (the sbatch command
# lines, the afterok dependency graph, per-stage resources, GPU options, errors on bad input), the default
# executable and run directory of jobs/slurm/locate.sh (checkout or install), and the per-rank GPU binding
# of jobs/slurm/bind.sh.
source "$(dirname "$0")/../cli/common.sh"
d=$(scratch slurm.scripts)
submit=$TESTS_DIR/../jobs/slurm/submit.sh
printf '[label]\nout = logits.h5\n' >"$d/p.ini"
export MIMIC_CONFIG=$d/p.ini MIMIC_RUN_DIR=$d/run MIMIC_BIN=$MIMIC MIMIC_DRY_RUN=1

out=$(MIMIC_NTASKS=8 MIMIC_NTASKS_EVAL=2 MIMIC_TIME_LABEL=30 "$submit") || die "dry run failed"
echo "$out"
[ "$(echo "$out" | grep -c '^sbatch ')" -eq 6 ] || die "expected six sbatch commands"
line() { echo "$out" | grep "jobs/slurm/$1.sbatch"; }
line data_import | grep -q -- "--ntasks=8" && ! line data_import | grep -q -- "--dependency" ||
    die "data_import: 8 tasks and no dependency expected"
line ensemble_train | grep -q -- "--dependency=afterok:<data_import> --kill-on-invalid-dep=yes" ||
    die "ensemble_train must wait for data_import"
line transfer | grep -q -- "--dependency=afterok:<data_import>" || die "transfer must wait for data_import"
line data_import | grep -q -- "--export=ALL,MIMIC_STEP=1/6,MIMIC_SUBMITTED=" || die "data_import: not told it is step 1/6"
line eval | grep -q -- "--export=ALL,MIMIC_STEP=6/6," || die "eval: not told it is step 6/6"
! st=$("$TESTS_DIR/../jobs/slurm/status.sh" "$d/nowhere" 2>&1) && echo "$st" | grep -q "nowhere/jobs.txt: no such file" ||
    die "status.sh without jobs.txt: no clear error and exit 1 ($st)"
line label | grep -q -- "--dependency=afterok:<ensemble_train>:<transfer>" || die "label must wait for both"
line label | grep -q -- "--time=30" || die "label: MIMIC_TIME_LABEL not applied"
line distill | grep -q -- "--dependency=afterok:<label>" || die "distill must wait for label"
line eval | grep -q -- "--ntasks=2 .*--dependency=afterok:<distill>" || die "eval: 2 tasks after distill expected"
line eval | grep -q -- "--output=$d/run/logs/%x-%j.out" || die "logs must go to the run directory"

out=$(MIMIC_NTASKS=4 MIMIC_AFTER=11:12 MIMIC_GPUS_PER_NODE=4 MIMIC_NODES_LABEL=2 "$submit" label eval) ||
    die "partial dry run failed"
echo "$out"
[ "$(echo "$out" | grep -c '^sbatch ')" -eq 2 ] || die "expected two sbatch commands"
line label | grep -q -- "--nodes=2 --gpus-per-node=4 --ntasks-per-node=4 .*--dependency=afterok:11:12" ||
    die "label: 2 nodes, one rank per GPU, after 11 and 12 expected"
# eval's input (distill) is not part of this submission, so eval waits for MIMIC_AFTER like label.
line eval | grep -q -- "--dependency=afterok:11:12 " || die "eval: without its input submitted it waits for MIMIC_AFTER"

expect_fail "unknown stage 'lable'" "$submit" lable
MIMIC_CONFIG=$d/none.ini expect_fail "MIMIC_CONFIG=.*none.ini: no such file" "$submit"
MIMIC_BIN=$d/none expect_fail "MIMIC_BIN=.*none is not an executable" "$submit"
echo "submit.sh: passed"

# Which mimic the jobs run without MIMIC_BIN: build/mimic in a built checkout, else mimic on PATH (an install).
source "$TESTS_DIR/../jobs/slurm/locate.sh"
mkdir -p "$d/checkout/build" "$d/install/build" "$d/path"
touch "$d/checkout/CMakeLists.txt"
for f in "$d/checkout/build/mimic" "$d/install/build/mimic" "$d/path/mimic"; do printf '#!/bin/sh\n' >"$f" && chmod +x "$f"; done
[ "$(PATH=$d/path:$PATH mimic_default_bin "$d/checkout")" = "$d/checkout/build/mimic" ] ||
    die "a built checkout must run its build/mimic"
[ "$(PATH=$d/path:$PATH mimic_default_bin "$d/install")" = "$d/path/mimic" ] || die "an install must run mimic from PATH"
rm "$d/checkout/build/mimic"
[ "$(PATH=$d/path:$PATH mimic_default_bin "$d/checkout")" = "$d/path/mimic" ] ||
    die "an unbuilt checkout must fall back to mimic on PATH"
[ -z "$(PATH=/usr/bin:/bin mimic_default_bin "$d/install")" ] || die "without mimic on PATH nothing may be found"
[ "$(cd "$d" && mimic_default_run_dir "$d/install")" = "$d/run/slurm" ] || die "an install runs in ./run/slurm"
echo "locate.sh: passed"

# One GPU per rank: the node-local rank picks one of the visible devices.
bind=$TESTS_DIR/../jobs/slurm/bind.sh
gpu() { env -u CUDA_VISIBLE_DEVICES -u SLURM_LOCALID -u OMPI_COMM_WORLD_LOCAL_RANK "$@" "$bind" \
    bash -c 'echo "${CUDA_VISIBLE_DEVICES-unset}"'; }
[ "$(gpu SLURM_LOCALID=2 CUDA_VISIBLE_DEVICES=0,1,2,3)" = 2 ] || die "local rank 2 of 4 GPUs should get GPU 2"
[ "$(gpu SLURM_LOCALID=5 CUDA_VISIBLE_DEVICES=4,5,6,7)" = 5 ] || die "local rank 5 of GPUs 4-7 should get GPU 5"
[ "$(gpu SLURM_LOCALID=1 CUDA_VISIBLE_DEVICES=3)" = 3 ] || die "an already narrowed list must stay"
[ "$(gpu OMPI_COMM_WORLD_LOCAL_RANK=3 MIMIC_GPUS_PER_NODE=2)" = 1 ] || die "mpirun rank 3 of 2 GPUs should get 1"
[ "$(gpu SLURM_LOCALID=1 CUDA_VISIBLE_DEVICES=0,1 MIMIC_GPU_BIND=none)" = 0,1 ] || die "MIMIC_GPU_BIND=none must not bind"
[ "$(gpu SLURM_LOCALID=1)" = unset ] || die "without GPUs nothing may be set"
[ "$(SLURM_LOCALID=0 "$bind" bash -c 'exit 7'; echo $?)" = 7 ] || die "bind.sh must pass the exit status on"
echo "bind.sh: passed"
