# The inputs every Fashion-MNIST student of the study and of the figure sweep is trained from, as steps of
# jobs/steps.sh: the data, the default teacher ensemble, the augmented+MUNGE transfer set and its logits.
# Sourced by jobs/fashion_mnist_study.sh and jobs/fashion_mnist_figure.sh after pipeline_setup (which sets
# run, mimic and mpi); both scripts therefore build these files the same way and share them in one run dir.

# Plan entries of the steps below with their times in the measured study run (inputs/fashion-mnist/README.md,
# 2 idle cores), for the progress estimate of the scripts that run them.
fashion_mnist_input_plan=("data import=10" "teacher ensemble=1119" "transfer set (330k rows)=21"
  "label transfer=248" "label train=45" "label val=5")

# fashion_mnist_inputs: runs (a rerun skips what exists) under $run: data/{train,val,test}.h5 (`mimic data
# import --val 5000`), teachers/manifest.h5 (`mimic ensemble train --config $teachers_cfg`, by default
# inputs/fashion-mnist/teachers.cfg: 8 CNNs), transfer.h5 (the 330k augmented+MUNGE rows of study.cfg) and the
# ensemble's logits on the transfer set, on the training rows and on the validation rows (logits_transfer.h5,
# logits_train.h5, logits_val.h5). Sets d (the data directory).
# Extra options go to the ensemble and the transfer stages from the arrays teacher_args and transfer_args
# when they are set (the figure's smoke test: a tiny ensemble and a small transfer set).
fashion_mnist_inputs() {
  local study_cfg=inputs/fashion-mnist/study.cfg
  local -a t_args=(${teacher_args[@]+"${teacher_args[@]}"}) x_args=(${transfer_args[@]+"${transfer_args[@]}"})
  d=$run/data
  step "data import" "$d/test.h5" "${mpi[@]}" "$mimic" data import --out-dir "$d" --val 5000
  step "teacher ensemble" "$run/teachers/manifest.h5" "${mpi[@]}" "$mimic" ensemble train \
    --config "${teachers_cfg:-inputs/fashion-mnist/teachers.cfg}" --data "$d/train.h5" --val "$d/val.h5" \
    --out-dir "$run/teachers" ${t_args[@]+"${t_args[@]}"}
  step "transfer set (330k rows)" "$run/transfer.h5" "${mpi[@]}" "$mimic" transfer --config "$study_cfg" \
    --from "$d/train.h5" --out "$run/transfer.h5" ${x_args[@]+"${x_args[@]}"}
  local set name
  for set in transfer:"$run/transfer.h5" train:"$d/train.h5" val:"$d/val.h5"; do
    name=${set%%:*}
    step "label $name" "$run/logits_$name.h5" "${mpi[@]}" "$mimic" label --config "$study_cfg" \
      --ensemble "$run/teachers/manifest.h5" --transfer "${set#*:}" --out "$run/logits_$name.h5"
  done
}
