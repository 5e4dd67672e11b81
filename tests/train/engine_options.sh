#!/usr/bin/env bash
# Every engine option through every command that trains (`train`, `ensemble train`, `distill`): each
# --help lists it; a bad value of each numeric option is refused with one line naming the option and the
# value, before anything is written; one run per command with every option set trains and writes its CSV
# logs; a changed result-deciding option (--beta1) is refused against the finished output, which --overwrite
# trains again even with the same settings; ensemble train's --stop-after-steps stops without a manifest;
# --augment-shift / --augment-flip train image rows, enter the identity, and are refused by distill, for flat
# rows and for a shift of the whole image; --layer-lr enters the identity, and a rule that selects no layer
# of the model is refused before anything is written.
source "$(dirname "$0")/../cli/common.sh"
d=$(scratch engine_options)
options=(lr optimizer momentum weight-decay beta1 beta2 eps schedule warmup epochs batch accumulate early-stop
  checkpoint-every stop-after-steps seed bucket-mb log-csv timings-csv augment-shift augment-flip layer-lr)
declare -A base=(
  [train]="train --data $d/data.h5 --arch dense:8,relu,dense:3 --out $d/out/train.h5"
  [ensemble]="ensemble train --members 2 --data $d/data.h5 --arch dense:8,relu,dense:3 --out-dir $d/out/ens"
  [distill]="distill --transfer $d/data.h5 --logits $d/logits.h5 --arch dense:8,relu,dense:3 --out $d/out/distill.h5"
)
commands=(train ensemble distill)

# 1. --help lists every engine option.
for c in "${commands[@]}"; do
  read -ra cmd <<<"${base[$c]}"
  name=${cmd[0]}
  [ "$c" = ensemble ] && name="ensemble train"
  help=$("$MIMIC" $name --help 2>&1) || die "mimic $name --help failed"
  for o in "${options[@]}"; do
    grep -qE "^ +--$o " <<<"$help" || die "mimic $name: --help does not list --$o"
  done
done
echo "ok: every --help lists the ${#options[@]} engine options"

# 2. Bad values, refused as they are parsed or before anything is written: OPTION=VALUE, then the message.
bad=(
  "lr=nan|--lr: must be a finite number > 0, got nan" "lr=0|--lr: must be a finite number > 0, got 0"
  "lr=inf|--lr: must be a finite number > 0, got inf"
  "optimizer=rmsprop|--optimizer: 'rmsprop' is not one of sgd, nesterov, adam, adamw"
  "momentum=nan|--momentum: must be a finite number in \[0, 1), got nan"
  "momentum=1|--momentum: must be a finite number in \[0, 1), got 1"
  "weight-decay=-1|--weight-decay: must be a finite number >= 0, got -1"
  "weight-decay=inf|--weight-decay: must be a finite number >= 0, got inf"
  "beta1=1|--beta1: must be a finite number in \[0, 1), got 1"
  "beta1=nan|--beta1: must be a finite number in \[0, 1), got nan"
  "beta2=-0.5|--beta2: must be a finite number in \[0, 1), got -0.5"
  "eps=inf|--eps: must be a finite number > 0, got inf" "eps=0|--eps: must be a finite number > 0, got 0"
  "schedule=linear|--schedule 'linear': unknown schedule 'linear'"
  "schedule=plateau:x|--schedule 'plateau:x': 'x' is not a number"
  "warmup=-1|--warmup: must be >= 0, got -1" "epochs=0|--epochs: must be >= 1, got 0"
  "batch=0|--batch: must be >= 1, got 0" "accumulate=0|--accumulate: must be >= 1, got 0"
  "early-stop=-2|--early-stop: must be >= 0, got -2"
  "checkpoint-every=-1|--checkpoint-every: must be >= 0, got -1"
  "stop-after-steps=-1|--stop-after-steps: must be >= 0, got -1"
  "bucket-mb=nan|--bucket-mb: must be a finite number in \[0, 1048576\], got nan"
  "bucket-mb=-1|--bucket-mb: must be a finite number in \[0, 1048576\], got -1"
  "seed=x|the argument ('x') for option '--seed' is invalid"
  "augment-shift=-1|--augment-shift: must be >= 0, got -1"
  "layer-lr=bottleneck|--layer-lr: 'bottleneck' is not NAME=F"
  "layer-lr=dense=0|--layer-lr: 'dense=0': the multiplier '0' is not a finite number > 0"
  "layer-lr=dense=2,dense=3|--layer-lr: 'dense' is given twice in 'dense=2,dense=3'"
)
# Options that are only wrong together, checked before any file is opened.
cross=(
  "optimizer=nesterov --momentum=0|--momentum: nesterov needs a momentum > 0, got 0"
  "schedule=cosine:0.5 --lr=0.1|--schedule 'cosine:0.5': MIN_LR must be in \[0, --lr\]"
)
for c in "${commands[@]}"; do
  read -ra cmd <<<"${base[$c]}"
  for case in "${bad[@]}" "${cross[@]}"; do
    read -ra set <<<"--${case%%|*}"
    expect_fail "^mimic ${cmd[0]}.*: error: ${case#*|}" "$MIMIC" "${cmd[@]}" "${set[@]}" >/dev/null
  done
  [ -z "$(ls -A "$d")" ] || die "$c: a refused option left files behind: $(ls -A "$d")"
done
expect_fail "^mimic ensemble train: error: --log-csv: must contain {member} (each member writes its own log), got '$d/log.csv'" \
  "$MIMIC" ${base[ensemble]} --log-csv "$d/log.csv"
[ -z "$(ls -A "$d")" ] || die "ensemble: a refused --log-csv left files behind: $(ls -A "$d")"
echo "ok: ${#bad[@]} bad values and ${#cross[@]} bad pairs refused by each of ${#commands[@]} commands"

# 3. Every engine option set on every command: it trains, and each CSV goes where its option says.
py() { "$MIMIC_PYTHON" "$TESTS_DIR/python/$1" "${@:2}"; }
py tiny_dataset.py "$d/data.h5" 300 1 1 4 4 3 || die "cannot write data.h5"
"$MIMIC" ensemble train --members 1 --arch dense:8,relu,dense:3 --data "$d/data.h5" --epochs 1 \
  --out-dir "$d/teacher" --quiet || die "teacher training failed"
"$MIMIC" label --ensemble "$d/teacher/manifest.h5" --transfer "$d/data.h5" --out "$d/logits.h5" --quiet ||
  die "label failed"
all=(--lr 0.01 --optimizer adam --momentum 0.5 --weight-decay 0.0001 --beta1 0.85 --beta2 0.99 --eps 1e-7
  --schedule step:1,0.5 --warmup 1 --epochs 2 --batch 20 --accumulate 2 --early-stop 3 --checkpoint-every 4
  --stop-after-steps 0 --seed 7 --bucket-mb 0.5 --layer-lr dense=2)
for c in "${commands[@]}"; do
  read -ra cmd <<<"${base[$c]}"
  log=$d/$c-{member}.csv
  [ "$c" = ensemble ] || log=$d/$c.csv
  "$MIMIC" "${cmd[@]}" "${all[@]}" --log-csv "$log" --timings-csv "$d/$c-timings.csv" >"$d/$c.log" 2>&1 ||
    { cat "$d/$c.log"; die "$c with every engine option set failed"; }
  grep -q "^  beta1 = 0.85$" "$d/$c.log" || { cat "$d/$c.log"; die "$c: --beta1 not in the configuration echo"; }
  csvs=("$d/$c.csv")
  [ "$c" = ensemble ] && csvs=("$d/ensemble-000.csv" "$d/ensemble-001.csv")
  for f in "${csvs[@]}" "$d/$c-timings.csv"; do [ -s "$f" ] || die "$c: $f was not written"; done
  [ "$(grep -c . "${csvs[0]}")" = 3 ] || die "$c: ${csvs[0]} should hold a header and 2 epochs"
done
[ ! -e "$d/out/ens/member-000.csv" ] || die "ensemble: --log-csv given, yet the default member log was written"
echo "ok: every engine option set on every command trains and writes its logs"

# 4. The identity: a changed --beta1 is refused against the finished output; --overwrite with the same
# settings trains again (without it: nothing to do, the file untouched).
# output_of C: the file command C wrote with the settings of section 3 (an ensemble's first member).
output_of() { if [ "$1" = ensemble ]; then echo "$d/out/ens/member-000.h5"; else echo "$d/out/$1.h5"; fi; }
for c in "${commands[@]}"; do
  read -ra cmd <<<"${base[$c]}"
  file=$(output_of "$c")
  expect_fail "$file: exists .*(--beta1 is 0.85 there but 0.8 in this run)" \
    "$MIMIC" "${cmd[@]}" "${all[@]/0.85/0.8}" --quiet
  before=$(sha256sum <"$file")
  "$MIMIC" "${cmd[@]}" "${all[@]}" >"$d/$c.rerun.log" 2>&1 || { cat "$d/$c.rerun.log"; die "$c: rerun failed"; }
  ! grep -q "^epoch " "$d/$c.rerun.log" || { cat "$d/$c.rerun.log"; die "$c: a rerun trained again"; }
  [ "$(sha256sum <"$file")" = "$before" ] || die "$c: a rerun changed $file"
  "$MIMIC" "${cmd[@]}" "${all[@]}" --overwrite >"$d/$c.over.log" 2>&1 ||
    { cat "$d/$c.over.log"; die "$c: --overwrite failed"; }
  grep -q "^epoch 2/2 " "$d/$c.over.log" || { cat "$d/$c.over.log"; die "$c: --overwrite did not train again"; }
  grep -q "already trained with these settings; --overwrite: training again" "$d/$c.over.log" ||
    { cat "$d/$c.over.log"; die "$c: --overwrite did not say it trains again"; }
done
echo "ok: --beta1 decides the result; reruns are no-ops; --overwrite trains again"
for c in "${commands[@]}"; do
  read -ra cmd <<<"${base[$c]}"
  expect_fail "$(output_of "$c"): exists .*(--layer-lr is dense=2 there but layer2=2 in this run)" \
    "$MIMIC" "${cmd[@]}" "${all[@]/dense=2/layer2=2}" --quiet
  read -ra cmd <<<"${base[$c]//"$d/out"/"$d/nolayer"}"
  expect_fail "^mimic ${cmd[0]}.*: error: --layer-lr: 'conv' selects no layer with parameters of 'dense:8,relu,dense:3' (its layers with parameters: layer0 (dense), layer2 (dense))" \
    "$MIMIC" "${cmd[@]}" --layer-lr conv=2 --epochs 1
  [ ! -e "$d/nolayer" ] || die "$c: a refused --layer-lr left files behind: $(ls -A "$d/nolayer")"
done
echo "ok: --layer-lr enters the identity; a rule that selects no layer is refused"

# 5. ensemble train --stop-after-steps: the member stops with its checkpoint, its group trains no further
# member, no manifest is written (exit 0); the same command without it resumes and finishes.
e=$d/stop
"$MIMIC" ensemble train --members 2 --data "$d/data.h5" --arch dense:8,relu,dense:3 --epochs 1 --out-dir "$e" \
  --stop-after-steps 3 >"$d/stop.log" 2>&1 || { cat "$d/stop.log"; die "ensemble: --stop-after-steps failed"; }
grep -q "ensemble train: stopped by --stop-after-steps" "$d/stop.log" || { cat "$d/stop.log"; die "ensemble: no stop notice"; }
[ -f "$e/member-000.h5.ckpt" ] && [ ! -e "$e/member-000.h5" ] || die "ensemble: member 0 should have stopped with a checkpoint"
[ ! -e "$e/member-001.h5.ckpt" ] && [ ! -e "$e/member-001.h5" ] || die "ensemble: member 1 was trained after member 0 stopped"
[ ! -e "$e/manifest.h5" ] || die "ensemble: a manifest was written although member 0 stopped"
"$MIMIC" ensemble train --members 2 --data "$d/data.h5" --arch dense:8,relu,dense:3 --epochs 1 --out-dir "$e" \
  >"$d/stop2.log" 2>&1 || { cat "$d/stop2.log"; die "ensemble: the resumed run failed"; }
grep -q "train: resuming from $e/member-000.h5.ckpt at epoch 1, step 3" "$d/stop2.log" || { cat "$d/stop2.log"; die "ensemble: member 0 did not resume"; }
[ -f "$e/manifest.h5" ] && [ -f "$e/member-001.h5" ] || die "ensemble: the resumed run did not finish"
# 6. Augmentation of labelled training batches: trains 4x4 image rows and enters the identity (a rerun
# without --augment-flip is refused against the output); refused by distill, for flat rows (train and
# ensemble train) and for a shift of the whole image, before anything is written.
a=$d/aug
"$MIMIC" train --data "$d/data.h5" --arch conv:4x3,relu,dense:3 --out "$a/train.h5" --epochs 1 --batch 32 \
  --augment-shift 1 --augment-flip --quiet || die "train with --augment-shift 1 --augment-flip failed"
expect_fail "^mimic train: error: .*--augment-flip is on there but this run does not set it" \
  "$MIMIC" train --data "$d/data.h5" --arch conv:4x3,relu,dense:3 --out "$a/train.h5" --epochs 1 --batch 32 \
  --augment-shift 1
"$MIMIC" ensemble train --members 1 --data "$d/data.h5" --arch conv:4x3,relu,dense:3 --out-dir "$a/ens" \
  --epochs 1 --augment-flip --quiet || die "ensemble train with --augment-flip failed"
py tiny_dataset.py "$d/flat.h5" 100 3 1 1 16 3 || die "cannot write flat.h5"
expect_fail "^mimic train: error: --augment-shift: needs image-shaped rows (C x H x W) but $d/flat.h5 holds flat rows of 16 features" \
  "$MIMIC" train --data "$d/flat.h5" --arch dense:8,relu,dense:3 --out "$a/flat/train.h5" --augment-shift 1
expect_fail "^mimic ensemble train: error: --augment-flip: needs image-shaped rows (C x H x W) but $d/flat.h5 holds flat rows" \
  "$MIMIC" ensemble train --members 1 --data "$d/flat.h5" --arch dense:8,relu,dense:3 --out-dir "$a/flat/ens" --augment-flip
expect_fail "^mimic train: error: --augment-shift: 4 pixels moves the whole 4x4 image of $d/data.h5 out (must be < 4)" \
  "$MIMIC" train --data "$d/data.h5" --arch dense:8,relu,dense:3 --out "$a/flat/big.h5" --augment-shift 4
expect_fail "^mimic distill: error: --augment-flip: not supported here: distill's rows must match their teachers' logits" \
  "$MIMIC" ${base[distill]/out\/distill/aug\/flat\/distill} --augment-flip
[ ! -e "$a/flat" ] || die "a refused augmentation left files behind: $(ls -A "$a/flat")"
echo "ok: augmentation trains image rows, enters the identity and is refused where it cannot apply"
echo "engine options: passed"
