#!/usr/bin/env bash
# The main job: installs what is missing, builds Mimic, and runs the Fashion-MNIST pipeline on 2 ranks:
# import -> teacher ensemble -> transfer set -> ensemble logits -> shallow students -> eval, ending with
# a one-screen results table. Settings: inputs/fashion-mnist/quickstart.cfg. Rerunning skips finished
# steps (every stage is resumable; outputs are only ever complete or absent).
# Usage: jobs/quickstart.sh            (outputs under run/quickstart, or $MIMIC_RUN_DIR)
#        NP=4 jobs/quickstart.sh       (ranks; default 2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
t0=$(date +%s)

jobs/install_deps.sh
# shellcheck source=env.sh
source jobs/env.sh
jobs/build.sh
mimic="$root/build/mimic"
np=${NP:-2}
run=${MIMIC_RUN_DIR:-$root/run/quickstart}
cfg="$root/inputs/fashion-mnist/quickstart.cfg"
mkdir -p "$run"
log="$run/quickstart.log"
: >"$log"
# shellcheck source=steps.sh
source jobs/steps.sh

mpi=(mpirun -n "$np")
d=$run/data
step "data import" "$d/test.h5" "${mpi[@]}" "$mimic" data import --config "$cfg" --out-dir "$d" --val 5000
step "teacher ensemble" "$run/teachers/manifest.h5" "${mpi[@]}" "$mimic" ensemble train --config "$cfg" \
  --data "$d/train.h5" --val "$d/val.h5" --out-dir "$run/teachers"
step "transfer set" "$run/transfer.h5" "${mpi[@]}" "$mimic" transfer --config "$cfg" --from "$d/train.h5" \
  --out "$run/transfer.h5"
step "label transfer set" "$run/logits.h5" "${mpi[@]}" "$mimic" label --config "$cfg" \
  --ensemble "$run/teachers/manifest.h5" --transfer "$run/transfer.h5" --out "$run/logits.h5"
step "label validation set" "$run/val_logits.h5" "${mpi[@]}" "$mimic" label --config "$cfg" \
  --ensemble "$run/teachers/manifest.h5" --transfer "$d/val.h5" --out "$run/val_logits.h5"
step "shallow baseline (labels)" "$run/baseline.h5" "${mpi[@]}" "$mimic" train --config "$cfg" \
  --data "$d/train.h5" --val "$d/val.h5" --out "$run/baseline.h5" --log-csv "$run/baseline.csv"
step "shallow mimic student" "$run/mimic.h5" "${mpi[@]}" "$mimic" distill --config "$cfg" \
  --transfer "$run/transfer.h5" --logits "$run/logits.h5" --val "$d/val.h5" --val-logits "$run/val_logits.h5" \
  --out "$run/mimic.h5" --log-csv "$run/mimic.csv"

# Test-set accuracy of everything, from `mimic eval`.
ens=$("${mpi[@]}" "$mimic" eval --ensemble "$run/teachers/manifest.h5" --data "$d/test.h5" 2>&1 | tee -a "$log")
acc() { "${mpi[@]}" "$mimic" eval --model "$1" --data "$d/test.h5" 2>&1 | tee -a "$log" | awk '/^  accuracy /{print $2}'; }
params() { "$mimic" info "$1" | awk -F'= ' '/@num_params/{print $2}'; }
teacher_acc=$(echo "$ens" | awk '/mean of logits:/{print $5}')
member_acc=$(echo "$ens" | awk '/members: mean/{print $3}' | tr -d ',')
base_acc=$(acc "$run/baseline.h5")
mimic_acc=$(acc "$run/mimic.h5")
teacher_params=$("$mimic" ensemble info "$run/teachers/manifest.h5" | awk 'NR>1 && $1 ~ /^[0-9]+$/ {s += $4} END {print s}')

echo
echo "=============================== Mimic quickstart: Fashion-MNIST ==============================="
"$mimic" --version | head -1
echo "ranks: $np   outputs: $run   log: $log"
echo
echo "$ens" | sed -n '/^ensemble of/,$p'
echo
printf '%-44s %12s %10s\n' "model (test set, 10000 rows)" "parameters" "accuracy"
printf '%-44s %12s %10s\n' "teacher ensemble (4 CNNs, mean of logits)" "$teacher_params" "$teacher_acc"
printf '%-44s %12s %10s\n' "  its members, mean" "" "$member_acc"
printf '%-44s %12s %10s\n' "shallow net 784-1024-10 on labels" "$(params "$run/baseline.h5")" "$base_acc"
printf '%-44s %12s %10s\n' "shallow mimic 784-1024-10 (L2 on logits)" "$(params "$run/mimic.h5")" "$mimic_acc"
echo
printf '%-36s %8s\n' step time
printf '%s\n' "${timing[@]}"
echo "total: $(($(date +%s) - t0)) s (build included)"
