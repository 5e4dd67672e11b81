#!/usr/bin/env bash
# `mimic train` / `mimic eval` end to end, one case per run: a short real Fashion-MNIST run, resuming after
# a kill, a residual net stopped and resumed, and bad inputs that must stop with a one-line error and leave
# no model file.
source "$(dirname "$0")/../cli/common.sh"
case=$1
d=$(scratch "train.$case")
py() { "$MIMIC_PYTHON" "$TESTS_DIR/python/$1" "${@:2}"; }
tiny() { py tiny_dataset.py "$@" || die "cannot write $1"; }
no_model() {
  local left
  left=$(find "$d" -name 'model.h5*' | head -1)
  [ -z "$left" ] || die "a model file was left behind: $left"
}
# expect_fail_np2 <pattern> <command...>: like expect_fail for a command run under mpiexec, whose own
# report of the non-zero exit follows; Mimic's error must appear exactly once (rank 0 prints it).
expect_fail_np2() {
  local pattern=$1
  shift
  local err rc
  err=$(mktemp)
  "$MPIEXEC" -n 2 "$@" >/dev/null 2>"$err"
  rc=$?
  [ $rc -ne 0 ] || die "expected failure, got exit 0 from: $*"
  [ "$(grep -c -- "$pattern" "$err")" -eq 1 ] || { cat "$err" >&2; die "stderr has not exactly one line matching '$pattern'"; }
  [ "$(grep -c "^mimic .*error" "$err")" -eq 1 ] || { cat "$err" >&2; die "expected one Mimic error line"; }
  echo "ok (2 ranks): exit $rc, $(grep -- "$pattern" "$err")"
  rm -f "$err"
}
TRAIN=(--epochs 2 --batch 16 --quiet)

case $case in
fashion_mnist)
  # Real data, 2 ranks: one epoch of a small MLP must beat 80% test accuracy; log, CSV and files check out.
  "$MPIEXEC" -n 2 "$MIMIC" data import --out-dir "$d" --quiet || die "import failed"
  "$MPIEXEC" -n 2 "$MIMIC" train --data "$d/train.h5" --val "$d/val.h5" --arch dense:64,relu,dense:10 --epochs 1 \
    --out "$d/model.h5" --log-csv "$d/log.csv" --timings-csv "$d/timings.csv" >"$d/train.log" 2>&1 ||
    { cat "$d/train.log"; die "train failed"; }
  grep -q "epoch 1/1 .* loss .* acc .* val_acc .* samples/s" "$d/train.log" || { cat "$d/train.log"; die "no epoch line"; }
  [ "$(wc -l <"$d/log.csv")" -eq 2 ] || die "log.csv should hold a header and one epoch"
  head -1 "$d/timings.csv" | grep -q "^stage,ranks,rows,params,batch,accumulate,phase,min_s,avg_s,max_s$" &&
    grep -q "^train,2,55000,50890,128,1,total," "$d/timings.csv" || { cat "$d/timings.csv"; die "timings.csv is not train's"; }
  [ ! -e "$d/model.h5.ckpt" ] || die "the checkpoint was not removed after the model was written"
  "$MIMIC" info "$d/model.h5" | grep -q "mimic-model-1" || die "mimic info does not recognise the model"
  "$MPIEXEC" -n 2 "$MIMIC" eval --model "$d/model.h5" --data "$d/test.h5" --top-k 3 >"$d/eval.log" 2>&1 ||
    { cat "$d/eval.log"; die "eval failed"; }
  cat "$d/eval.log" | grep -A 30 "rows):"
  acc=$(sed -n 's/^ *accuracy *\([0-9.]*\)%.*/\1/p' "$d/eval.log")
  "$MIMIC_PYTHON" -c "import sys; sys.exit(0 if float('$acc') >= 80 else 1)" || die "test accuracy $acc% < 80%"
  grep -q "top-3 accuracy" "$d/eval.log" && grep -q "confusion matrix" "$d/eval.log" && grep -q "class 9" "$d/eval.log" ||
    die "eval output incomplete"
  ;;
resume_after_kill)
  # A run killed (SIGKILL) after its first checkpoint and rerun with the same command ends with the same
  # weights, bit for bit, as an uninterrupted run.
  tiny "$d/train.h5" 20000 1 1 4 4 3
  args=(train --data "$d/train.h5" --arch dense:64,relu,dropout:0.2,dense:3 --epochs 10 --batch 32 --optimizer adam
        --lr 0.01 --schedule cosine --checkpoint-every 50)
  "$MIMIC" "${args[@]}" --out "$d/straight.h5" --quiet || die "uninterrupted run failed"
  "$MIMIC" "${args[@]}" --out "$d/resumed.h5" --quiet &
  pid=$!
  # Kill as soon as the first checkpoint (step 50 of 6250) exists: an idle machine finishes the run quickly.
  for _ in $(seq 2000); do [ -e "$d/resumed.h5.ckpt" ] && break; sleep 0.01; done
  kill -KILL $pid 2>/dev/null && echo "killed the run after its first checkpoint" || echo "note: the run ended before the kill"
  wait $pid 2>/dev/null
  [ ! -e "$d/resumed.h5" ] || die "the killed run had already finished: make the workload larger"
  "$MIMIC" "${args[@]}" --out "$d/resumed.h5" >"$d/resume.log" 2>&1 || { cat "$d/resume.log"; die "rerun failed"; }
  grep "train: resuming from .*resumed.h5.ckpt at epoch" "$d/resume.log" || die "the rerun did not resume"
  py edit_model.py weights "$d/straight.h5" "$d/resumed.h5" || die "resumed weights differ from the uninterrupted run"
  # Stopping at a set step on 2 ranks, then resuming, also matches the uninterrupted 2-rank run.
  "$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/straight2.h5" --quiet || die "2-rank run failed"
  "$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/resumed2.h5" --stop-after-steps 1000 --quiet || die "stopped run failed"
  [ ! -e "$d/resumed2.h5" ] || die "a stopped run wrote a model"
  [ -e "$d/resumed2.h5.ckpt" ] || die "no checkpoint after a stopped run"
  "$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/resumed2.h5" | grep "train: resuming from .*resumed2.h5.ckpt at epoch" ||
    die "the rerun did not resume"
  py edit_model.py weights "$d/straight2.h5" "$d/resumed2.h5" || die "2-rank resumed weights differ"
  ;;
residual)
  # A residual net (identity and projection shortcuts, bn inside a branch, a concatenation, an SE gate) trains
  # end to end; a run stopped at a checkpoint and resumed gives the uninterrupted run's weights (and bn's
  # running statistics) bit for bit, on 1 and 2 ranks.
  tiny "$d/train.h5" 600 1 2 6 6 3
  arch="conv:8x3,relu,res(conv:8x3,bn,relu,conv:8x3,bn),relu,res(conv:12x3s2,relu,conv:12x3|conv:12x1s2),relu"
  arch+=",cat(id|conv:4x1,relu),gate(pool:3,conv:4x1,relu,conv:16x1,sigmoid),dense:3"
  args=(train --data "$d/train.h5" --arch "$arch" --epochs 3 --batch 32 --optimizer adam --lr 0.01
        --checkpoint-every 10)
  "$MIMIC" "${args[@]}" --out "$d/straight.h5" --quiet || die "uninterrupted run failed"
  "$MIMIC" info "$d/straight.h5" | grep -q "res(conv:8x3,bn,relu,conv:8x3,bn)" || die "mimic info does not show the spec"
  "$MIMIC" "${args[@]}" --out "$d/resumed.h5" --stop-after-steps 25 --quiet || die "stopped run failed"
  [ ! -e "$d/resumed.h5" ] && [ -e "$d/resumed.h5.ckpt" ] || die "expected a checkpoint and no model after the stop"
  "$MIMIC" "${args[@]}" --out "$d/resumed.h5" | grep "train: resuming from .*resumed.h5.ckpt at epoch" ||
    die "the rerun did not resume"
  py edit_model.py weights "$d/straight.h5" "$d/resumed.h5" || die "resumed weights differ from the uninterrupted run"
  "$MIMIC_PYTHON" -c "import h5py, numpy as np, sys
a, b = h5py.File('$d/straight.h5', 'r'), h5py.File('$d/resumed.h5', 'r')
names = sorted(a['state'])
assert 'layer2.res.b0.1.bn.running_mean' in names and names == sorted(b['state']), names
sys.exit(0 if all(np.array_equal(a['state'][n][()], b['state'][n][()]) for n in names) else 1)" ||
    die "the resumed run's bn running statistics differ from the uninterrupted run's"
  "$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/straight2.h5" --quiet || die "2-rank run failed"
  "$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/resumed2.h5" --stop-after-steps 25 --quiet || die "stopped run failed"
  "$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/resumed2.h5" --quiet || die "2-rank resume failed"
  py edit_model.py weights "$d/straight2.h5" "$d/resumed2.h5" || die "2-rank resumed weights differ"
  "$MIMIC" eval --model "$d/straight.h5" --data "$d/train.h5" >"$d/eval.log" 2>&1 || { cat "$d/eval.log"; die "eval failed"; }
  acc=$(sed -n 's/^ *accuracy *\([0-9.]*\)%.*/\1/p' "$d/eval.log")
  echo "training accuracy after 3 epochs: $acc%"
  "$MIMIC_PYTHON" -c "import sys; sys.exit(0 if float('$acc') >= 50 else 1)" || die "training accuracy $acc% < 50%"
  ;;
nan_loss)
  tiny "$d/train.h5" 200 2 1 1 10 3
  expect_fail_np2 "epoch 1, step [0-9]*: loss is \(nan\|inf\) (learning rate 1e+30); no model written; last good checkpoint: none yet" \
    "$MIMIC" train --data "$d/train.h5" --arch dense:8,relu,dense:3 --out "$d/model.h5" "${TRAIN[@]}" \
    --lr 1e30
  no_model
  ;;
arch_mismatch)
  tiny "$d/flat.h5" 100 3 1 1 12 3
  expect_fail_np2 "arch does not fit the data in $d/flat.h5 (samples 1x1x12): arch: token 1 'conv:4x3': conv needs an image" \
    "$MIMIC" train --data "$d/flat.h5" --arch conv:4x3,relu,dense:3 --out "$d/model.h5" "${TRAIN[@]}"
  expect_fail "arch: the last layer gives 5 outputs but $d/flat.h5 has 3 classes" \
    "$MIMIC" train --data "$d/flat.h5" --arch dense:8,relu,dense:5 --out "$d/model.h5" "${TRAIN[@]}"
  tiny "$d/wide.h5" 100 3 1 1 16 3
  expect_fail "$d/wide.h5: samples are 1x1x16 but the training set's are 1x1x12" \
    "$MIMIC" train --data "$d/flat.h5" --val "$d/wide.h5" --arch dense:8,relu,dense:3 --out "$d/model.h5" "${TRAIN[@]}"
  no_model
  # A trained model evaluated on data of another shape.
  "$MIMIC" train --data "$d/flat.h5" --arch dense:8,relu,dense:3 --out "$d/m.h5" "${TRAIN[@]}" || die "train failed"
  expect_fail_np2 "$d/wide.h5: samples are 1x1x16 (16 features) but $d/m.h5 expects 1x1x12 (12 features)" \
    "$MIMIC" eval --model "$d/m.h5" --data "$d/wide.h5" --quiet
  ;;
bad_model)
  tiny "$d/flat.h5" 100 4 1 1 12 3
  "$MIMIC" train --data "$d/flat.h5" --arch dense:8,relu,dense:3 --out "$d/m.h5" "${TRAIN[@]}" || die "train failed"
  cp "$d/m.h5" "$d/missing.h5" && py edit_model.py missing "$d/missing.h5" layer2.dense.W
  expect_fail_np2 "$d/missing.h5: weight 'layer2.dense.W' is missing" \
    "$MIMIC" eval --model "$d/missing.h5" --data "$d/flat.h5" --quiet
  cp "$d/m.h5" "$d/shape.h5" && py edit_model.py shape "$d/shape.h5" layer0.dense.W
  expect_fail "$d/shape.h5: weight 'layer0.dense.W' has shape \[8, 12\] but the spec 'dense:8,relu,dense:3' needs \[12, 8\]" \
    "$MIMIC" eval --model "$d/shape.h5" --data "$d/flat.h5" --quiet
  expect_fail "$d/flat.h5: not a Mimic model file" "$MIMIC" eval --model "$d/flat.h5" --data "$d/flat.h5" --quiet
  ;;
*)
  die "unknown case $case"
  ;;
esac
echo "train '$case': passed"
