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
# shellcheck source=steps.sh
source jobs/steps.sh
pipeline_setup "$root/inputs/fashion-mnist/quickstart.cfg" "${MIMIC_RUN_DIR:-$root/run/quickstart}" quickstart.log

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
ensemble_results "$run/teachers/manifest.h5" "$d/test.h5"
base_acc=$(accuracy "$run/baseline.h5" "$d/test.h5")
mimic_acc=$(accuracy "$run/mimic.h5" "$d/test.h5")

echo
echo "=============================== Mimic quickstart: Fashion-MNIST ==============================="
"$mimic" --version | head -1
echo "ranks: $np   outputs: $run   log: $log"
echo
echo "$ens" | sed -n '/^ensemble of/,$p'
echo
printf '%-46s %12s %10s\n' "model (test set, 10000 rows)" "parameters" "accuracy"
printf '%-46s %12s %10s\n' "teacher ensemble (4 CNNs, mean of logits)" "$teacher_params" "$teacher%"
printf '%-46s %12s %10s\n' "  its members, mean" "" "$members%"
printf '%-46s %12s %10s\n' "shallow net 784-1024-10 on labels (dropout)" "$(params "$run/baseline.h5")" "$base_acc%"
printf '%-46s %12s %10s\n' "shallow student 784-1024-10 (KD loss, T=4)" "$(params "$run/mimic.h5")" "$mimic_acc%"
echo
print_timings
