#!/usr/bin/env bash
# The Fashion-MNIST distillation study behind the results table of README.md: the default teacher
# ensemble (inputs/fashion-mnist/teachers.cfg, 8 CNNs), the raw training rows and two generated transfer
# sets, nets on labels as baselines, and students of each kind (shallow mimic and KD, bottleneck, wide,
# conv-shallow, deep), then a table of test accuracies and of the share of the teacher-vs-baseline gap
# each student closes.
# Usage: jobs/fashion_mnist_study.sh     (outputs under run/fashion-mnist-study, or $MIMIC_RUN_DIR)
#        NP=4 STUDY_EPOCHS=20 jobs/fashion_mnist_study.sh
# Settings: inputs/fashion-mnist/study.cfg (shared) and the command lines below. Rerunning skips finished
# steps; about 2.3 hours on 2 cores (inputs/fashion-mnist/README.md has the measured times).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=steps.sh
source jobs/steps.sh
# shellcheck source=fashion_mnist_inputs.sh
source jobs/fashion_mnist_inputs.sh
# The steps in order, each with its time in seconds in the measured run (inputs/fashion-mnist/README.md) for
# the progress estimate; a rerun estimates from the previous run's times instead.
pipeline_setup "$root/inputs/fashion-mnist/study.cfg" "${MIMIC_RUN_DIR:-$root/run/fashion-mnist-study}" study.log \
  "${fashion_mnist_input_plan[@]}" "MUNGE-only transfer set (330k rows)=21" "label munge=248" \
  baseline=80 baseline_dropout=100 mimic=118 mimic_raw=124 mimic_munge=110 kd=133 mimic_bottleneck=202 \
  wide_baseline=538 wide_kd=470 cs_baseline=180 cs_baseline_long=374 cs_mimic=407 cs_kd=1132 cs_baseline_s6=173 \
  cs_kd_s6=994 deep=686 deep_raw=353
epochs=${STUDY_EPOCHS:-10}

# Every shallow student has one wide layer of ~814k parameters in all: 784-1024-10, or a 160-unit linear
# bottleneck in front of 4096 hidden units (825k parameters, the same multiply-adds per row).
shallow=dense:1024,relu,dense:10
bottleneck=bottleneck:160,dense:4096,relu,dense:10
# Ba & Caruana's shallow shape for images: one convolution and max pool, a linear bottleneck, one wide
# non-linear layer (1.09M parameters); its labels baseline adds dropout before the output layer.
conv_shallow=conv:32x5,relu,pool:2,bottleneck:128,dense:2048,relu,dense:10
deep=conv:16x3,relu,pool:2,conv:32x3,relu,pool:2,dense:128,relu,dense:10
# The raw transfer set is 6x smaller, so its students get 6x the epochs: every student sees as many rows.
raw_epochs=$((6 * epochs))

# The data, the teachers, the augmented+MUNGE transfer set and the ensemble's logits on it, on the training
# rows and on the validation rows (shared with the figure sweep, jobs/fashion_mnist_inputs.sh); then the
# MUNGE-only set and its logits.
fashion_mnist_inputs
step "MUNGE-only transfer set (330k rows)" "$run/transfer_munge.h5" "${mpi[@]}" "$mimic" transfer \
  --from "$d/train.h5" --size 330000 --munge 1 --munge-p 0.3 --munge-s 1 --seed 12 --out "$run/transfer_munge.h5"
step "label munge" "$run/logits_munge.h5" "${mpi[@]}" "$mimic" label --config "$cfg" \
  --ensemble "$run/teachers/manifest.h5" --transfer "$run/transfer_munge.h5" --out "$run/logits_munge.h5"

# baseline <name> <arch> [epochs [train options...]]: a net on the hard labels of the training rows.
baseline() {
  local name=$1 arch=$2 n=${3:-$((3 * epochs))}
  shift $(($# < 3 ? $# : 3))
  step "$name" "$run/$name.h5" "${mpi[@]}" "$mimic" train --config "$cfg" --arch "$arch" --epochs "$n" \
    --data "$d/train.h5" --val "$d/val.h5" --out "$run/$name.h5" --log-csv "$run/$name.csv" "$@"
}
# student <name> <transfer set: transfer|munge|train> <epochs> <distill options...>
student() {
  local name=$1 set=$2 n=$3 src=$run/transfer.h5
  shift 3
  [ "$set" = munge ] && src=$run/transfer_munge.h5
  [ "$set" = train ] && src=$d/train.h5
  step "$name" "$run/$name.h5" "${mpi[@]}" "$mimic" distill --config "$cfg" --epochs "$n" \
    --transfer "$src" --logits "$run/logits_$set.h5" --val "$d/val.h5" --val-logits "$run/logits_val.h5" \
    --out "$run/$name.h5" --log-csv "$run/$name.csv" "$@"
}
# The 784-1024-10 shallow net: on labels (with and without dropout), and as mimic students on each
# transfer set, with the L2 and the KD loss, and with a linear bottleneck at the same parameter count.
baseline baseline "$shallow"
baseline baseline_dropout "${shallow/relu,/relu,dropout:0.3,}"
student mimic transfer "$epochs" --arch "$shallow" --loss mimic --model-shards "$np"
student mimic_raw train "$raw_epochs" --arch "$shallow" --loss mimic --model-shards "$np"
student mimic_munge munge "$epochs" --arch "$shallow" --loss mimic --model-shards "$np"
student kd transfer "$epochs" --arch "$shallow" --loss kd:4 --model-shards "$np"
student mimic_bottleneck transfer "$epochs" --arch "$bottleneck" --loss mimic --model-shards "$np"
# A shallow net as large as the whole ensemble (784-8192-10, 6.5M parameters), on labels and by KD.
baseline wide_baseline dense:8192,relu,dropout:0.3,dense:10 $((2 * epochs))
student wide_kd transfer $((6 * epochs / 10)) --arch dense:8192,relu,dense:10 --loss kd:4 --model-shards "$np"
# The conv-shallow net: on labels (20 and 40 epochs; the table takes the better by validation accuracy),
# and as a student: L2 for 8 epochs, and the KD loss for 24 epochs (still improving at 8).
baseline cs_baseline "${conv_shallow/relu,dense:10/relu,dropout:0.3,dense:10}" $((2 * epochs))
baseline cs_baseline_long "${conv_shallow/relu,dense:10/relu,dropout:0.3,dense:10}" $((4 * epochs))
student cs_mimic transfer $((8 * epochs / 10)) --arch "$conv_shallow" --loss mimic
student cs_kd transfer $((12 * epochs / 5)) --arch "$conv_shallow" --loss kd:4
# The KD pair again with another seed (initialisation, dropout and row order), against one seed's noise.
baseline cs_baseline_s6 "${conv_shallow/relu,dense:10/relu,dropout:0.3,dense:10}" $((2 * epochs)) --seed 6
student cs_kd_s6 transfer $((12 * epochs / 5)) --arch "$conv_shallow" --loss kd:4 --seed 6
# A small deep student (two conv layers, 207k parameters) on the augmented and on the raw rows.
student deep transfer "$epochs" --arch "$deep" --loss mimic
student deep_raw train "$raw_epochs" --arch "$deep" --loss mimic

# Test accuracy of everything (`mimic eval`), and the share of the gap between a labels baseline and the
# teachers that each student closes: (student - baseline) / (teachers - baseline). The 784-1024-10
# baseline is the better of the two by validation accuracy; the deep students are measured against it too.
ensemble_results "$run/teachers/manifest.h5" "$d/test.h5"
# better <a> <b>: the name of the model with the higher validation accuracy (a on ties).
better() {
  if awk "BEGIN{exit !($(accuracy "$run/$2.h5" "$d/val.h5") > $(accuracy "$run/$1.h5" "$d/val.h5"))}"; then
    echo "$2"
  else
    echo "$1"
  fi
}
base=$(better baseline baseline_dropout)
cs_base=$(better cs_baseline cs_baseline_long)
# model <name> <label> [baseline name]: one table row; with a baseline, the share of the gap it closes.
model() {
  local a share=
  a=$(accuracy "$run/$1.h5" "$d/test.h5")
  if [ -n "${3:-}" ]; then
    share=$(awk "BEGIN{printf \"%.0f%%\", 100 * ($a - ${accs[$3]}) / ($teacher - ${accs[$3]})}")
  fi
  accs[$1]=$a
  printf '%-62s %10s %9s%% %9s\n' "$2" "$(params "$run/$1.h5")" "$a" "$share"
}
declare -A accs

echo
echo "======================= Mimic distillation study: Fashion-MNIST (test set) ======================="
"$mimic" --version | head -1
echo "ranks: $np   epochs over the augmented set: $epochs   outputs: $run   log: $log"
echo
echo "$ens" | sed -n '/^ensemble of/,$p'
echo
printf '%-62s %10s %10s %9s\n' "model" "parameters" "accuracy" "gap closed"
printf '%-62s %10s %9s%%\n' "teacher ensemble (8 CNNs, mean of logits)" "$teacher_params" "$teacher"
printf '%-62s %10s %9s%%\n' "  its members, mean" "" "$members"
echo "shallow 784-1024-10"
model "$base" "  on labels ($base, $((3 * epochs)) epochs)"
model mimic "  mimic (L2 on logits), augmented+MUNGE set" "$base"
model mimic_raw "  mimic, raw training rows (same rows seen)" "$base"
model mimic_munge "  mimic, MUNGE-only set" "$base"
model kd "  KD loss (T=4), augmented+MUNGE set" "$base"
model mimic_bottleneck "  mimic, 784-b160-4096-10 (linear bottleneck)" "$base"
echo "shallow 784-8192-10 (as many parameters as the ensemble)"
model wide_baseline "  on labels (dropout, $((2 * epochs)) epochs)"
model wide_kd "  KD loss (T=4), augmented+MUNGE set" wide_baseline
echo "conv-shallow: ${conv_shallow}"
model cs_baseline "  on labels (dropout, $((2 * epochs)) epochs)"
model cs_baseline_long "  on labels (dropout, $((4 * epochs)) epochs)"
echo "  (students against $cs_base, the better on validation)"
model cs_mimic "  mimic (L2), augmented+MUNGE set, $((8 * epochs / 10)) epochs" "$cs_base"
model cs_kd "  KD loss (T=4), augmented+MUNGE set, $((12 * epochs / 5)) epochs" "$cs_base"
model cs_baseline_s6 "  seed 6: on labels (dropout, $((2 * epochs)) epochs)"
model cs_kd_s6 "  seed 6: KD loss (T=4), $((12 * epochs / 5)) epochs" cs_baseline_s6
awk -v t="$teacher" -v b1="${accs[cs_baseline]}" -v b2="${accs[cs_baseline_s6]}" -v s1="${accs[cs_kd]}" \
  -v s2="${accs[cs_kd_s6]}" 'BEGIN{b = (b1 + b2) / 2; s = (s1 + s2) / 2
  printf "  mean of seeds 5 and 6 (20-epoch baselines): on labels %.2f%%, KD %.2f%%, gap closed %.0f%%\n", b, s, 100 * (s - b) / (t - b)}'
echo "deep student: ${deep}"
model deep "  mimic, augmented+MUNGE set" "$base"
model deep_raw "  mimic, raw training rows (same rows seen)" "$base"
echo
print_timings
