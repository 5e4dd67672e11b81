#!/usr/bin/env bash
# The main job: installs what is missing, builds Mimic, and runs the Fashion-MNIST pipeline on 2 ranks:
# import -> teacher ensemble -> transfer set -> ensemble logits -> shallow students -> eval, ending with
# a one-screen results table: the student's margin over the same net on labels with its 95% interval, the
# share of the gap to the teachers it closes, the output files and the next commands. Settings:
# inputs/fashion-mnist/quickstart.cfg. Rerunning skips finished steps (every stage is resumable; outputs are
# only ever complete or absent) and appends to the log.
# Usage: jobs/quickstart.sh            (outputs under run/quickstart, or $MIMIC_RUN_DIR)
#        NP=4 jobs/quickstart.sh       (ranks; default 2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=steps.sh
source jobs/steps.sh
# The steps, each with its typical time in seconds on 2 idle cores (inputs/fashion-mnist/README.md); a
# rerun estimates from the previous run's times instead.
pipeline_setup "$root/inputs/fashion-mnist/quickstart.cfg" "${MIMIC_RUN_DIR:-$root/run/quickstart}" quickstart.log \
  "data import=1" "teacher ensemble=88" "transfer set=3" "label transfer set=15" "label validation set=1" \
  "shallow baseline (labels)=79" "shallow mimic student=81"

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

# Test-set accuracy of everything, from `mimic eval`, and the student's paired margin over the baseline.
echo "[eval] test-set accuracy of every model (elapsed $(duration $(($(date +%s) - t0))))" | tee -a "$log"
ensemble_results "$run/teachers/manifest.h5" "$d/test.h5"
base_acc=$(accuracy "$run/baseline.h5" "$d/test.h5")
mimic_acc=$(accuracy "$run/mimic.h5" "$d/test.h5")
compare "$run/mimic.h5" "$run/baseline.h5" "$d/test.h5"
gap=$(awk -v t="$teacher" -v b="$base_acc" -v s="$mimic_acc" 'BEGIN{printf "%.0f", 100 * (s - b) / (t - b)}')

{
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
  echo "Did it work?"
  echo "  margin of the student over the same net on labels: $margin points (95% interval $margin_lo to $margin_hi,"
  echo "  paired over the 10000 test rows, \`mimic eval --compare\`); gap to the teachers closed: $gap%"
  if [ "$verdict" = "within noise" ]; then
    echo "  Within noise: the interval includes 0, so on this test set the student cannot be told apart from"
    echo "  the net trained on labels. A shallow fully connected student gains little here; the distillation"
    echo "  study (inputs/fashion-mnist/README.md) shows the effect clearly with a conv-shallow student and a"
    echo "  stronger ensemble: 56-71% of the gap closed, 0.56-0.87 points over its twin on labels."
  elif [ "$verdict" = "A is better" ]; then
    echo "  The student beats the net trained on labels by more than the test-set noise (the interval excludes 0)."
  else
    echo "  The net trained on labels beats the student by more than the test-set noise (the interval excludes 0)."
  fi
  echo
  r=${run#"$root"/}
  echo "Outputs in $r: mimic.h5 (the student), baseline.h5 (the net on labels), teachers/manifest.h5,"
  echo "  data/{train,val,test}.h5, transfer.h5 and logits.h5 (the transfer set and its logits), quickstart.log"
  echo "Next:"
  echo "  build/mimic eval --model $r/mimic.h5 --compare $r/baseline.h5 --data $r/data/test.h5"
  echo "  build/mimic info $r/teachers/manifest.h5"
  echo "  build/mimic export onnx $r/mimic.h5 --out $r/mimic.onnx --raw-input $r/data/train.h5"
  echo "      (the ONNX graph takes raw 0-255 pixel rows [N, 784] and gives logits [N, 10])"
  echo
  print_timings
} | tee -a "$log"
