#!/usr/bin/env bash
# The resume identity of `mimic train` and `mimic distill`: a stopped run resumed with any result-deciding
# option changed is refused with that option named; settings that do not change the result (CSV path,
# progress interval, checkpoint cadence) are accepted; and rerunning the finished run retrains nothing.
source "$(dirname "$0")/../cli/common.sh"
d=$(scratch resume_identity)
py() { "$MIMIC_PYTHON" "$TESTS_DIR/python/$1" "${@:2}"; }
py tiny_dataset.py "$d/data.h5" 400 1 1 4 4 3 || die "cannot write data.h5"
py tiny_dataset.py "$d/val.h5" 100 2 1 4 4 3 || die "cannot write val.h5"
"$MIMIC" ensemble train --members 2 --arch dense:8,relu,dense:3 --data "$d/data.h5" --epochs 1 --out-dir "$d/ens" \
  --quiet || die "ensemble train failed"
"$MIMIC" label --ensemble "$d/ens/manifest.h5" --transfer "$d/data.h5" --out "$d/logits.h5" --quiet ||
  die "label failed"

# check STAGE BASE_ARGS... -- OPTION VALUE ...: after a stopped run of BASE_ARGS, each OPTION VALUE pair
# (one at a time) must be refused naming OPTION.
check_refusals() {
  local stage=$1
  shift
  local base=() pairs=()
  while [ "$1" != -- ]; do base+=("$1"); shift; done
  shift
  pairs=("$@")
  rm -f "$d/$stage.h5" "$d/$stage.h5.ckpt"
  "$MIMIC" "${base[@]}" --stop-after-steps 5 --quiet || die "$stage: the stopped run failed"
  [ -f "$d/$stage.h5.ckpt" ] || die "$stage: no checkpoint after --stop-after-steps"
  local i
  for ((i = 0; i < ${#pairs[@]}; i += 2)); do
    local opt=${pairs[i]} val=${pairs[i + 1]} args=() j
    # BASE_ARGS with OPTION set to VALUE (replaced where BASE_ARGS has it, else appended).
    for ((j = 0; j < ${#base[@]}; ++j)); do
      if [ "${base[j]}" = "$opt" ]; then
        args+=("$opt" "$val")
        ((++j))
      else
        args+=("${base[j]}")
      fi
    done
    [[ " ${args[*]} " == *" $opt "* ]] || args+=("$opt" ${val:+"$val"})
    expect_fail "$stage.h5.ckpt: this checkpoint belongs to a run with other settings ($opt is .* there but .* in this run)" \
      "$MIMIC" "${args[@]}" --quiet
  done
  # Options that do not decide the result are accepted on resume, and the run finishes.
  MIMIC_PROGRESS_INTERVAL=5 "$MIMIC" "${base[@]}" --log-csv "$d/$stage-other.csv" --checkpoint-every 3 >"$d/$stage.log" 2>&1 ||
    { cat "$d/$stage.log"; die "$stage: a resume with only a new CSV path and cadence was refused"; }
  grep -q "$stage: resuming from .*$stage.h5.ckpt at epoch 1, step 5" "$d/$stage.log" || { cat "$d/$stage.log"; die "$stage: did not resume"; }
  [ -f "$d/$stage.h5" ] && [ ! -e "$d/$stage.h5.ckpt" ] || die "$stage: expected the model and no checkpoint"
  # Finished is finished: the same command again trains nothing and leaves the file untouched.
  local before after
  before=$(stat -c '%Y %s' "$d/$stage.h5")-$(sha256sum <"$d/$stage.h5")
  sleep 1
  "$MIMIC" "${base[@]}" >"$d/$stage.rerun.log" 2>&1 || { cat "$d/$stage.rerun.log"; die "$stage: rerun failed"; }
  grep -q "$stage: $d/$stage.h5 is already trained with these settings; nothing to do" "$d/$stage.rerun.log" ||
    { cat "$d/$stage.rerun.log"; die "$stage: the rerun did not say it had nothing to do"; }
  ! grep -q "^epoch " "$d/$stage.rerun.log" || die "$stage: the rerun trained again"
  after=$(stat -c '%Y %s' "$d/$stage.h5")-$(sha256sum <"$d/$stage.h5")
  [ "$before" = "$after" ] || die "$stage: the finished model file changed on rerun"
  # Other settings against a finished output: refused unless --overwrite.
  expect_fail "$stage.h5: exists and was not trained with these settings (--lr is .* there but 0.2 in this run)" \
    "$MIMIC" "${base[@]}" --lr 0.2 --quiet
  echo "$stage: refusals, accepted resume and no-op rerun passed"
}

check_refusals train train --data "$d/data.h5" --val "$d/val.h5" --arch dense:8,relu,dense:3 --epochs 2 \
  --batch 16 --seed 5 --optimizer nesterov --out "$d/train.h5" -- \
  --optimizer sgd --lr 0.1 --momentum 0.5 --weight-decay 0.001 --schedule cosine --batch 17 --seed 6 \
  --arch dense:9,relu,dense:3 --epochs 3 --warmup 1 --shuffle-block 32 --early-stop 2 --val "$d/data.h5" \
  --accumulate 2 --bootstrap ""

check_refusals distill distill --transfer "$d/data.h5" --logits "$d/logits.h5" --arch dense:8,relu,dense:3 \
  --loss kd:4,0.5 --epochs 2 --batch 16 --seed 5 --block-rows 100 --optimizer adam --out "$d/distill.h5" -- \
  --loss mimic --loss kd:3,0.5 --loss kd:4,0.6 --optimizer adamw --lr 0.01 --weight-decay 0.001 \
  --schedule cosine --batch 17 --seed 6 --arch dense:9,relu,dense:3 --epochs 3 --block-rows 64 --early-stop 2 \
  --val "$d/val.h5" --accumulate 2 --beta1 0.8 --beta2 0.99 --eps 1e-6 --warmup 1
echo "resume identity: passed"
