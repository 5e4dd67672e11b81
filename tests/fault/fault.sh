#!/usr/bin/env bash
# Fault injection, one class of fault per run: an output that is also an input (under several spellings),
# non-finite values, labels out of range, mismatched shapes, a full disk, a missing or stale member, a
# huge size, a concurrent second job, and a rank that raises while the other waits in a collective;
# and a stop signal that arrives once the output is complete (late_signal: exit 0). Content over metadata:
# fewer rows than replicas and unbounded waits (hang), option values that crashed or wrote garbage
# (options), damaged checkpoints (checkpoint), damaged finished outputs (finished: a clean rerun is a
# verified no-op), changed inputs under the same name (fingerprints; inpass: found by the pass over the
# rows of a file too large to hash when opened), and a removed live lock or a replaced
# partial file (lock).
# Every failure must be one line "mimic <command>: error: ..." and a non-zero exit within the timeout
# (a hang fails the test), and no input may change. Exit 77 (skipped) when the case cannot run here.
source "$(dirname "$0")/../cli/common.sh"
case=$1
d=$(scratch "fault.$case")
LIMIT=${FAULT_TIMEOUT:-90}
py() { "$MIMIC_PYTHON" "$TESTS_DIR/$1" "${@:2}" || die "$1 ${*:2} failed"; }
tiny() { py python/tiny_dataset.py "$@"; }
inputs() { py fault/inputs.py "$@"; }
sum() { md5sum "$@" | awk '{print $1}' | tr '\n' ' '; }

# fails <ranks> <pattern> <mimic arguments...>: non-zero exit before the time limit, and stderr holds
# exactly one line, Mimic's error, matching the pattern.
fails() {
  local np=$1 pattern=$2 err rc
  shift 2
  err=$(mktemp)
  if [ "$np" -eq 1 ]; then
    timeout "$LIMIT" "$MIMIC" "$@" >/dev/null 2>"$err"
  else
    timeout "$LIMIT" "$MPIEXEC" -q -n "$np" "$MIMIC" "$@" >/dev/null 2>"$err"
  fi
  rc=$?
  [ $rc -ne 124 ] || { cat "$err" >&2; die "hung for ${LIMIT} s: mimic $*"; }
  [ $rc -ne 0 ] || die "expected failure, got exit 0 from: mimic $*"
  grep -q -- "$pattern" "$err" || { cat "$err" >&2; die "stderr does not match '$pattern'"; }
  [ "$(error_lines "$err")" -eq 1 ] || { cat "$err" >&2; die "expected one line on stderr ($np ranks)"; }
  grep -q "^mimic [a-z ]*: error: " "$err" || { cat "$err" >&2; die "not a Mimic error line"; }
  echo "ok ($np rank(s), exit $rc): $(cat "$err")"
  rm -f "$err"
}
# runs <ranks> <mimic arguments...>: must succeed; its output goes to $d/log.
runs() {
  local np=$1
  shift
  if [ "$np" -eq 1 ]; then
    timeout "$LIMIT" "$MIMIC" "$@" >"$d/log" 2>&1
  else
    timeout "$LIMIT" "$MPIEXEC" -q -n "$np" "$MIMIC" "$@" >"$d/log" 2>&1
  fi || { cat "$d/log"; die "mimic $* failed"; }
}
ARCH=dense:8,relu,dense:4
# A labelled set, a 2-member ensemble trained on it, and that ensemble's logits over it.
setup_pipeline() {
  tiny "$d/g.h5" 200 1 1 6 6 4
  runs 2 ensemble train --members 2 --arch $ARCH --data "$d/g.h5" --epochs 1 --batch 16 --out-dir "$d/ens" --quiet
  runs 2 label --ensemble "$d/ens/manifest.h5" --transfer "$d/g.h5" --out "$d/l.h5" --batch 50 --block-rows 100 --quiet
}

case $case in
same_file)
  setup_pipeline
  runs 1 train --data "$d/g.h5" --arch $ARCH --epochs 1 --out "$d/m.h5" --quiet
  mkdir -p "$d/sub" && ln -s g.h5 "$d/link.h5"
  before=$(sum "$d"/g.h5 "$d"/l.h5 "$d"/m.h5 "$d"/ens/*.h5)
  cp "$d/g.h5" "$d/k.h5.partial"
  for out in "$d/g.h5" "$d//g.h5" "$d/./g.h5" "$d/sub/../g.h5" "$d/link.h5"; do
    fails 2 "the output is the input file" train --data "$d/g.h5" --arch $ARCH --epochs 1 --out "$out"
  done
  (cd "$d" && fails 1 "./g.h5: the output is the input file" train --data g.h5 --arch $ARCH --out ./g.h5)
  fails 1 "$d/g.h5: the output is the input file" train --data "$d/g.h5" --arch $ARCH --out "$d/x.h5" \
    --checkpoint "$d/g.h5"
  fails 2 "$d/k.h5: writing it would replace the input file $d/k.h5.partial" train --data "$d/k.h5.partial" \
    --arch $ARCH --out "$d/k.h5"
  fails 2 "the output is the input file" transfer --from "$d/g.h5" --out "$d/./g.h5" --overwrite --size 300 \
    --augment 1 --noise 0.1
  fails 2 "the output is the input file" label --ensemble "$d/ens/manifest.h5" --transfer "$d/g.h5" \
    --out "$d/g.h5" --overwrite
  fails 2 "the output is the input file" label --ensemble "$d/ens/manifest.h5" --transfer "$d/g.h5" \
    --out "$d/ens/./member-001.h5" --overwrite
  fails 2 "the output is the input file" distill --transfer "$d/g.h5" --logits "$d/l.h5" --arch $ARCH --out "$d/l.h5"
  fails 2 "the output is the input file" distill --transfer "$d/g.h5" --logits "$d/l.h5" --arch $ARCH \
    --out "$d/s.h5" --log-csv "$d/sub/../g.h5"
  fails 1 "the output is the input file" ensemble add "$d/m.h5" --manifest "$d/m.h5"
  fails 1 "the output is the input file" export onnx "$d/m.h5" --out "$d/m.h5" --overwrite
  [ "$(sum "$d"/g.h5 "$d"/l.h5 "$d"/m.h5 "$d"/ens/*.h5)" = "$before" ] || die "an input file changed"
  cmp -s "$d/g.h5" "$d/k.h5.partial" || die "the input k.h5.partial changed"
  ;;
nonfinite)
  setup_pipeline
  runs 1 train --data "$d/g.h5" --arch $ARCH --epochs 1 --out "$d/m.h5" --quiet
  cp "$d/g.h5" "$d/nan.h5" && inputs set "$d/nan.h5" X 150 3 nan
  fails 2 "$d/nan.h5: row 150, feature 3 is nan" train --data "$d/nan.h5" --arch $ARCH --epochs 1 --out "$d/o.h5"
  cp "$d/g.h5" "$d/inf.h5" && inputs set "$d/inf.h5" X 5 0 inf
  fails 2 "$d/inf.h5: row 5, feature 0 is inf" label --ensemble "$d/ens/manifest.h5" --transfer "$d/inf.h5" \
    --out "$d/o.h5"
  fails 2 "$d/inf.h5: row 5, feature 0 is inf; every value must be finite (clean that row, or pass --drop-nonfinite" \
    transfer --from "$d/inf.h5" --size 400 --munge 1 --out "$d/o.h5"
  fails 2 "$d/nan.h5: row 150, feature 3 is nan" eval --model "$d/m.h5" --data "$d/nan.h5"
  cp "$d/m.h5" "$d/mnan.h5" && inputs set "$d/mnan.h5" weights/layer0.dense.W 2 1 nan
  fails 1 "$d/mnan.h5: weight 'layer0.dense.W' element 17 is nan" ensemble add "$d/mnan.h5" --manifest "$d/e2.h5"
  fails 2 "$d/mnan.h5: weight 'layer0.dense.W' element 17 is nan" eval --model "$d/mnan.h5" --data "$d/g.h5"
  inputs set "$d/ens/member-001.h5" weights/layer2.dense.b 0 0 nan
  fails 2 "member-001.h5: weight 'layer2.dense.b' element 0 is nan" label --ensemble "$d/ens/manifest.h5" \
    --transfer "$d/g.h5" --out "$d/o.h5"
  cp "$d/l.h5" "$d/lnan.h5" && inputs set "$d/lnan.h5" logits 7 2 nan
  fails 2 "$d/lnan.h5: row 7, class 2 of /logits is nan" distill --transfer "$d/g.h5" --logits "$d/lnan.h5" \
    --arch $ARCH --epochs 1 --out "$d/o.h5"
  [ ! -e "$d/o.h5" ] || die "an output was written"
  # transfer --drop-nonfinite: rows 7 (rank 0's share of the scan) and 150 (rank 1's) are left out with
  # one notice; the result is the same on 1 and 2 ranks, and the provenance names original rows.
  cp "$d/nan.h5" "$d/two.h5" && inputs set "$d/two.h5" X 7 0 inf
  tr=(transfer --from "$d/two.h5" --size 400 --munge 1 --augment 1 --noise 0.1 --drop-nonfinite)
  runs 2 "${tr[@]}" --out "$d/t2.h5"
  notice="transfer: --drop-nonfinite: dropped 2 source rows of 200 holding a NaN or infinite value ($d/two.h5 row 7, $d/two.h5 row 150)"
  [ "$(grep -cF "$notice" "$d/log")" -eq 1 ] || { cat "$d/log"; die "no one-line notice of the dropped rows"; }
  runs 1 "${tr[@]}" --out "$d/t1.h5"
  "$MIMIC_PYTHON" - "$d/g.h5" "$d/t2.h5" "$d/t1.h5" <<'PY' || die "--drop-nonfinite output is wrong"
import sys, h5py, numpy as np
g, t2, t1 = (h5py.File(p, "r") for p in sys.argv[1:4])
X, src = t2["X"][()], t2["provenance/source_row"][()]
assert X.shape == (400, 36) and np.isfinite(X).all(), "non-finite values or wrong shape"
assert list(t2["provenance/dropped_rows"][()]) == [7, 150]
kept = [r for r in range(200) if r not in (7, 150)]
assert list(src[:198]) == kept, "source copies do not name the kept rows in order"
assert np.array_equal(X[:198], g["X"][()][kept]), "source copies differ from the kept rows"
assert not np.isin(src, [7, 150]).any() and not np.isin(t2["provenance/partner_row"][()], [7, 150]).any()
assert t2.attrs["fingerprint"] == t1.attrs["fingerprint"], "1 and 2 ranks differ"
print("dropped rows 7 and 150; 198 source copies, 202 generated rows, same on 1 and 2 ranks")
PY
  # Without the flag the same sources are refused before an output is complete.
  fails 2 "$d/two.h5: row 7, feature 0 is inf" transfer --from "$d/two.h5" --size 400 --munge 1 --out "$d/t3.h5"
  [ ! -e "$d/t3.h5" ] || die "a transfer set was written from non-finite rows"
  ;;
labels)
  tiny "$d/g.h5" 200 1 1 6 6 4
  runs 1 train --data "$d/g.h5" --arch $ARCH --epochs 1 --out "$d/m.h5" --quiet
  for bad in 10 -1; do
    # Row 150 lies in rank 1's half: rank 1 raises while rank 0 goes on towards the first allreduce.
    cp "$d/g.h5" "$d/bad.h5" && inputs set "$d/bad.h5" y 150 0 "$bad"
    fails 2 "$d/bad.h5: row 150 has label $bad outside \[0, 4)" train --data "$d/bad.h5" --arch $ARCH --epochs 1 \
      --out "$d/o.h5"
    fails 2 "$d/bad.h5: row 150 has label $bad outside \[0, 4)" eval --model "$d/m.h5" --data "$d/bad.h5"
  done
  inputs idx "$d/idx" 100 10 5 12
  imp=(data import --train-images "$d/idx/train-images" --train-labels "$d/idx/train-labels"
    --test-images "$d/idx/t10k-images" --test-labels "$d/idx/t10k-labels" --out-dir "$d/imported")
  fails 1 "train-labels: no training row has label 10 although labels go up to 12" "${imp[@]}"
  fails 2 "train-labels: row 5 has label 12 but there are 10 classes (--num-classes)" "${imp[@]}" --num-classes 10
  [ ! -e "$d/imported/train.h5" ] && [ ! -e "$d/o.h5" ] || die "an output was written"
  ;;
shapes)
  setup_pipeline
  cp "$d/l.h5" "$d/wide.h5" && inputs widen "$d/wide.h5"
  fails 2 "$d/wide.h5: /logits is \[200, 5\] but the attributes declare \[200, 4\]" distill --transfer "$d/g.h5" \
    --logits "$d/wide.h5" --arch $ARCH --out "$d/o.h5"
  inputs empty "$d/g.h5" "$d/empty.h5"
  runs 1 train --data "$d/g.h5" --arch $ARCH --epochs 1 --out "$d/m.h5" --quiet
  fails 2 "$d/empty.h5: holds no rows, so there is nothing to evaluate" eval --model "$d/m.h5" --data "$d/empty.h5"
  fails 2 "$d/empty.h5: holds no rows, so there is nothing to evaluate" eval --ensemble "$d/ens/manifest.h5" \
    --data "$d/empty.h5"
  cp "$d/g.h5" "$d/f64.h5" && inputs float64 "$d/f64.h5"
  runs 2 eval --model "$d/m.h5" --data "$d/f64.h5"
  grep -q "note: $d/f64.h5: /X is 64-bit floating point; converting to float32" "$d/log" || { cat "$d/log"; die "no notice for /X"; }
  grep -q "note: $d/f64.h5: /y is 64-bit integer; converting to int32" "$d/log" || { cat "$d/log"; die "no notice for /y"; }
  ;;
full_disk)
  mkdir -p "$d/small"
  if ! mount -t tmpfs -o size=192k tmpfs "$d/small" 2>"$d/mount.err"; then
    echo "skipped: cannot mount a tmpfs here ($(head -1 "$d/mount.err"))"
    exit 77
  fi
  trap 'umount "$d/small" 2>/dev/null' EXIT
  setup_pipeline
  tiny "$d/big.h5" 20000 2 1 6 6 4
  fails 2 "small/l.h5" label --ensemble "$d/ens/manifest.h5" --transfer "$d/big.h5" --out "$d/small/l.h5" \
    --block-rows 2000 --batch 100
  # Transfer: 224 kB free passes the size check (193 kB of rows), the writes then run out of space.
  mkdir -p "$d/small2"
  mount -t tmpfs -o size=1m tmpfs "$d/small2" || die "cannot mount a second tmpfs"
  trap 'umount "$d/small" "$d/small2" 2>/dev/null' EXIT
  dd if=/dev/zero of="$d/small2/filler" bs=1k count=800 status=none
  fails 2 "small2/t.h5.* failed (disk full or quota exceeded?)" transfer --from "$d/g.h5" --size 1200 --munge 1 \
    --out "$d/small2/t.h5" --block-rows 100
  [ ! -e "$d/small2/t.h5" ] || die "a transfer set was written to a full disk"
  ;;
members)
  setup_pipeline
  mv "$d/ens/member-001.h5" "$d/gone.h5"
  fails 2 "member 1 (.*member-001.h5): member file is missing" eval --ensemble "$d/ens/manifest.h5" --data "$d/g.h5"
  mv "$d/gone.h5" "$d/ens/member-001.h5"
  # A damaged member checkpoint: the group of 1 rank that trains member 1 raises, the other group does not.
  mkdir -p "$d/e2" && printf 'not an HDF5 file' >"$d/e2/member-001.h5.ckpt"
  fails 2 "member-001.h5.ckpt" ensemble train --members 2 --group-size 1 --arch $ARCH --data "$d/g.h5" \
    --epochs 1 --out-dir "$d/e2"
  ;;
huge)
  tiny "$d/g.h5" 200 1 1 6 6 4
  fails 2 "--size 99999999999999 (36 float32 features per row): $d/t.h5 would need .* PB but $d has .* free" \
    transfer --from "$d/g.h5" --size 99999999999999 --munge 1 --out "$d/t.h5"
  [ -z "$(find "$d" -name 't.h5*')" ] || die "an output was left behind"
  ;;
concurrent)
  tiny "$d/g.h5" 200 1 1 6 6 4
  command -v flock >/dev/null || { echo "skipped: no flock(1) to hold the lock"; exit 77; }
  flock -o "$d/t.h5.lock" sleep 60 </dev/null >/dev/null 2>&1 &
  holder=$!
  for _ in $(seq 100); do flock -n "$d/t.h5.lock" true 2>/dev/null || break; sleep 0.05; done
  fails 2 "$d/t.h5: another live job is writing this output" transfer --from "$d/g.h5" --size 400 --munge 1 --out "$d/t.h5"
  pkill -P "$holder" sleep 2>/dev/null
  kill "$holder" 2>/dev/null
  wait "$holder" 2>/dev/null
  # The lock of a job that has gone is free again: the same command now runs, and a rerun is a no-op.
  runs 2 transfer --from "$d/g.h5" --size 400 --munge 1 --out "$d/t.h5"
  [ ! -e "$d/t.h5.lock" ] || die "the lock file was left behind"
  runs 2 transfer --from "$d/g.h5" --size 400 --munge 1 --out "$d/t.h5"
  grep -q "already complete" "$d/log" || { cat "$d/log"; die "a finished transfer rerun is not a no-op"; }
  ;;
late_rank)
  # Two ranks fail alike, but rank 0 reaches the agreement late (replayed by the PMPI shim: 1.5 s late,
  # while rank 1 waits 0.5 s for it): rank 1 gives up and prints its line, and rank 0, agreeing later with
  # the request rank 1 left posted, must not print the same error again. One line, every time.
  : "${LATE_RANK_SHIM:?LATE_RANK_SHIM must point at the late-rank shim}"
  tiny "$d/a.h5" 40 1 1 6 6 4
  for i in 1 2 3; do
    timeout "$LIMIT" "$MPIEXEC" -q -n 2 -x LD_PRELOAD="$LATE_RANK_SHIM" -x MIMIC_TEST_LATE_RANK=0 \
      -x MIMIC_TEST_LATE_SECONDS=1.5 -x MIMIC_TEST_SLOW_ABORT_SECONDS=3 -x MIMIC_ERROR_WAIT=0.5 \
      "$MIMIC" transfer --from "$d/a.h5" --size 100 --out "$d/o.h5" --munge 1 --munge-p 1.5 >/dev/null 2>"$d/err"
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$d/err"; die "run $i: exit $rc"; }
    grep -q "^mimic transfer: error: --munge-p: the MUNGE swap probability" "$d/err" || { cat "$d/err"; die "run $i: no error line"; }
    [ "$(error_lines "$d/err")" -eq 1 ] || { cat "$d/err"; die "run $i: the error was printed more than once"; }
  done
  [ ! -e "$d/o.h5" ] || die "an output was written"
  echo "ok: one line in 3 runs with rank 0 late"
  ;;
hang)
  # A data replica that gets no rows (1 row at 2 ranks, 3 rows at 4) runs the same collectives as the
  # others: train, label and distill finish (the phase timers once hung here), and so does eval.
  setup_pipeline
  tiny "$d/one.h5" 1 1 1 6 6 4
  tiny "$d/three.h5" 3 1 1 6 6 4
  for np in 2 4; do
    for set in one three; do
      runs $np train --data "$d/$set.h5" --arch $ARCH --epochs 2 --out "$d/m$np$set.h5" --timings-csv "$d/t.csv"
      runs $np label --ensemble "$d/ens/manifest.h5" --transfer "$d/$set.h5" --out "$d/l$np$set.h5"
      runs $np distill --transfer "$d/$set.h5" --logits "$d/l$np$set.h5" --arch $ARCH --epochs 2 \
        --val "$d/$set.h5" --out "$d/s$np$set.h5"
      runs $np eval --model "$d/s$np$set.h5" --data "$d/$set.h5"
      echo "ok: train, label, distill and eval of $set row(s) at $np ranks"
    done
  done
  # Wait and grace times from the environment are bounded: a huge or non-finite one is refused up front.
  for bad in MIMIC_ABORT_GRACE=1e99 MIMIC_ERROR_WAIT=inf MIMIC_LOCK_WAIT=nan MIMIC_PROGRESS_INTERVAL=-1; do
    env "$bad" "$MIMIC" train --data "$d/one.h5" --arch $ARCH --out "$d/x.h5" 2>"$d/err" && die "$bad accepted"
    grep -q "^mimic train: error: $bad: must be a number of seconds" "$d/err" || { cat "$d/err"; die "$bad"; }
  done
  [ ! -e "$d/x.h5" ] || die "an output was written"
  ;;
options)
  # Crashes and garbage output from option values and odd inputs: each is one line naming the option or
  # file, before any output exists.
  setup_pipeline
  L=(label --ensemble "$d/ens/manifest.h5" --transfer "$d/g.h5")
  fails 2 "--batch: must be .*1.* got 0" distill --transfer "$d/g.h5" --logits "$d/l.h5" --arch $ARCH --batch 0 \
    --out "$d/o.h5"
  fails 2 "--temperature: must be a finite number > 0, got inf" "${L[@]}" --combine prob --temperature inf --out "$d/o.h5"
  fails 2 "--block-rows: must be from 1 to 16777216 rows, got 2000000000" "${L[@]}" --block-rows 2000000000 \
    --batch 1000 --out "$d/o.h5"
  fails 2 "--flush-seconds: must be a finite number >= 0, got nan" "${L[@]}" --flush-seconds nan --out "$d/o.h5"
  fails 2 "--flush-seconds: must be a finite number >= 0, got -1" data import --flush-seconds -1 --out-dir "$d/imp"
  [ ! -e "$d/imp" ] || die "a refused import made its output directory"
  fails 2 "--block-rows: must be from 1 to 16777216 rows" transfer --from "$d/g.h5" --size 400 --munge 1 \
    --block-rows 2000000000 --out "$d/o.h5"
  fails 2 "--flush-seconds: must be a finite number >= 0, got inf" transfer --from "$d/g.h5" --size 400 \
    --munge 1 --flush-seconds inf --out "$d/o.h5"
  fails 2 "--batch: must be from 1 to 16777216 rows" eval --ensemble "$d/ens/manifest.h5" --data "$d/g.h5" --batch 0
  mkdir -p "$d/dir.h5/keep"
  fails 2 "$d/dir.h5: the output is a directory" "${L[@]}" --out "$d/dir.h5" --overwrite
  for sib in partial lock ckpt; do
    fails 2 "$d/o.h5.$sib: an output may not end in '.$sib'" "${L[@]}" --out "$d/o.h5.$sib"
  done
  fails 1 "$d: --config names a directory" train --config "$d" --data "$d/g.h5" --arch $ARCH --out "$d/o.h5"
  # A config file saved with a UTF-8 byte-order mark reads as the same options.
  printf '\xef\xbb\xbfepochs = 1\narch = %s\n' $ARCH >"$d/bom.ini"
  runs 1 train --config "$d/bom.ini" --data "$d/g.h5" --out "$d/m.h5"
  # h5py's default string attributes (variable-length UTF-8) read as strings; a 10^12-row transfer set is
  # refused for the space its logits need, and leaves nothing behind.
  cp "$d/g.h5" "$d/utf8.h5"
  "$MIMIC_PYTHON" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); f.attrs['mimic_format'] = 'mimic-dataset-1'" \
    "$d/utf8.h5" || die "h5py"
  runs 2 eval --model "$d/m.h5" --data "$d/utf8.h5"
  inputs huge "$d/huge.h5" 1000000000000
  fails 2 "$d/huge.h5 (1000000000000 rows x 4 classes, float32): $d/o.h5 would need 16.0 TB but" \
    label --ensemble "$d/ens/manifest.h5" --transfer "$d/huge.h5" --out "$d/o.h5"
  [ -z "$(find "$d" -name 'o.h5*')" ] || die "an output was left behind: $(find "$d" -name 'o.h5*')"
  ;;
checkpoint)
  # A checkpoint is verified before it is resumed: its state checksum covers weights, optimizer state and
  # cursor; without one (older files) the cursor and finiteness are still checked. --overwrite starts over.
  tiny "$d/g.h5" 200 1 1 6 6 4
  T=(train --data "$d/g.h5" --arch $ARCH --epochs 3 --batch 16 --out "$d/m.h5")
  runs 2 "${T[@]}" --stop-after-steps 5
  cp "$d/m.h5.ckpt" "$d/good.ckpt"
  damage() { cp "$d/good.ckpt" "$d/m.h5.ckpt" && inputs "$@"; }
  corrupt="$d/m.h5.ckpt: the checkpoint is corrupt (state checksum"
  damage set "$d/m.h5.ckpt" weights/layer0.dense.W 2 1 0.5
  fails 2 "$corrupt" "${T[@]}"
  damage attr "$d/m.h5.ckpt" step_in_epoch 1e12
  fails 2 "$corrupt" "${T[@]}"
  damage attr "$d/m.h5.ckpt" epoch -3
  fails 1 "$corrupt" "${T[@]}"
  damage set "$d/m.h5.ckpt" checkpoint/optimizer/momentum 7 0 nan
  fails 2 "$corrupt" "${T[@]}"
  [ ! -e "$d/m.h5" ] || die "a model was written from a damaged checkpoint"
  # Without the checksum, the values themselves are checked.
  damage delattr "$d/m.h5.ckpt" state_checksum && inputs attr "$d/m.h5.ckpt" epoch -3
  fails 2 "$d/m.h5.ckpt: the checkpoint's epoch -3 is outside this run's epochs \[0, 3)" "${T[@]}"
  damage delattr "$d/m.h5.ckpt" state_checksum && inputs attr "$d/m.h5.ckpt" step_in_epoch 1e12
  fails 2 "$d/m.h5.ckpt: the checkpoint's step_in_epoch 1000000000000 is outside the 13 steps" "${T[@]}"
  damage delattr "$d/m.h5.ckpt" state_checksum && inputs set "$d/m.h5.ckpt" checkpoint/optimizer/momentum 7 0 nan
  fails 2 "$d/m.h5.ckpt: the checkpoint's optimizer state 'momentum' holds a non-finite value" "${T[@]}"
  damage delattr "$d/m.h5.ckpt" state_checksum
  runs 2 "${T[@]}"
  grep -q "written before checkpoints carried a state checksum" "$d/log" || { cat "$d/log"; die "no notice"; }
  # --overwrite starts a damaged run over; an intact checkpoint resumes to the uninterrupted result.
  damage set "$d/m.h5.ckpt" weights/layer0.dense.W 2 1 0.5
  runs 2 "${T[@]}" --overwrite
  grep -q "resuming" "$d/log" && die "--overwrite resumed the damaged checkpoint"
  mv "$d/m.h5" "$d/fresh.h5" && cp "$d/good.ckpt" "$d/m.h5.ckpt"
  runs 2 "${T[@]}"
  grep -q "resuming from $d/m.h5.ckpt at epoch 1, step 5" "$d/log" || { cat "$d/log"; die "did not resume"; }
  "$MIMIC_PYTHON" -c "import h5py, sys; a, b = (h5py.File(p, 'r').attrs['weights_checksum'] for p in sys.argv[1:]); \
assert a == b, (a, b)" "$d/m.h5" "$d/fresh.h5" || die "the resumed model differs from the uninterrupted one"
  ;;
finished)
  # "Nothing to do" is earned: a clean rerun verifies the finished output's content first (the model's
  # weights checksum, the logits' block hashes); one changed value makes it corrupt, never reused.
  setup_pipeline
  L=(label --ensemble "$d/ens/manifest.h5" --transfer "$d/g.h5" --batch 50 --block-rows 100)
  T=(train --data "$d/g.h5" --arch $ARCH --epochs 1 --out "$d/m.h5")
  runs 2 "${L[@]}" --out "$d/l16.h5" --storage float16
  runs 2 "${T[@]}"
  for out in l.h5 l16.h5; do
    runs 2 "${L[@]}" --out "$d/$out" $([ $out = l16.h5 ] && echo --storage float16)
    grep -q "already complete .* nothing to do" "$d/log" || { cat "$d/log"; die "$out: a clean rerun is not a no-op"; }
  done
  runs 2 "${T[@]}"
  grep -q "already trained .* nothing to do" "$d/log" || { cat "$d/log"; die "a clean train rerun is not a no-op"; }
  cp "$d/l.h5" "$d/good.h5"
  inputs set "$d/l.h5" logits 150 1 0.25
  inputs set "$d/l16.h5" logits 20 3 0.5
  inputs set "$d/m.h5" weights/layer2.dense.b 0 0 0.125
  fails 2 "$d/l.h5: rows \[100, 200) of /logits differ from the block hash .* it is not reused" "${L[@]}" --out "$d/l.h5"
  fails 2 "$d/l16.h5: rows \[0, 100) of /logits differ from the block hash" "${L[@]}" --out "$d/l16.h5" --storage float16
  fails 2 "$d/m.h5: weights checksum mismatch .* it is not reused: pass --overwrite" "${T[@]}"
  # The corrupted logits never feed a student.
  fails 2 "$d/l.h5: rows \[100, 200) of /logits differ" distill --transfer "$d/g.h5" --logits "$d/l.h5" --arch $ARCH \
    --epochs 1 --out "$d/s.h5"
  fails 2 "$d/l.h5: rows \[100, 200) of /logits differ" distill --transfer "$d/g.h5" --logits "$d/good.h5" \
    --val "$d/g.h5" --val-logits "$d/l.h5" --arch $ARCH --epochs 1 --out "$d/s.h5"
  [ ! -e "$d/s.h5" ] || die "a student was trained on corrupted logits"
  # --overwrite redoes them.
  runs 2 "${L[@]}" --out "$d/l.h5" --overwrite
  runs 2 "${T[@]}" --overwrite
  grep -q "wrote $d/m.h5" "$d/log" || { cat "$d/log"; die "--overwrite did not retrain"; }
  runs 2 distill --transfer "$d/g.h5" --logits "$d/l.h5" --arch $ARCH --epochs 1 --out "$d/s.h5"
  # A finished transfer set: a clean rerun is a verified no-op, also when the file is too large to hash
  # on open (its rows are read once); one changed value makes it corrupt.
  X=(transfer --from "$d/g.h5" --size 300 --augment 1 --noise 0.1 --out "$d/t.h5")
  for limit in 268435456 0; do
    export MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=$limit
    runs 2 "${X[@]}" --overwrite
    runs 2 "${X[@]}"
    grep -q "already complete .* nothing to do" "$d/log" || { cat "$d/log"; die "a clean transfer rerun is not a no-op"; }
    inputs set "$d/t.h5" X 280 3 0.75
    fails 2 "$d/t.h5: its rows hash to fingerprint .* it is not reused: pass --overwrite" "${X[@]}"
  done
  unset MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES
  # A resumed transfer set trusts its done blocks only once their rows hash to the recorded block hashes.
  rm -f "$d/t.h5"
  runs 2 "${X[@]}" --block-rows 64 --stop-after-blocks 1
  [ -e "$d/t.h5.partial" ] || die "no partial transfer set to resume"
  row=$("$MIMIC_PYTHON" -c "
import h5py, sys
with h5py.File(sys.argv[1], 'r+') as f:
    k = int(next(i for i, v in enumerate(f['progress/done'][()]) if v))
    f['X'][k * 64 + 5, 2] += 0.5
    print(k * 64)" "$d/t.h5.partial") || die "could not change a done block"
  fails 2 "$d/t.h5.partial: rows \[$row, $((row + 64))) differ from the block hash recorded" "${X[@]}" --block-rows 64
  [ ! -e "$d/t.h5" ] || die "a transfer set was finished from a changed partial file"
  # A finished ensemble member: kept on a clean rerun, reported as corrupt once changed.
  E=(ensemble train --members 2 --arch $ARCH --data "$d/g.h5" --epochs 1 --batch 16 --out-dir "$d/ens")
  runs 2 "${E[@]}"
  grep -q "2 already trained, 0 to train" "$d/log" || { cat "$d/log"; die "a clean ensemble rerun retrained"; }
  inputs set "$d/ens/member-001.h5" weights/layer0.dense.W 1 1 0.5
  fails 2 "$d/ens/member-001.h5: weights checksum mismatch .* it is not reused: pass --overwrite" "${E[@]}"
  ;;
fingerprints)
  # Content, not metadata: a dataset's fingerprint is computed from its rows when it has none and verified
  # when it has one; logits record the transfer set they labelled and distill's identity holds the logits'
  # own content, so a changed input is a changed identity.
  setup_pipeline
  L=(label --ensemble "$d/ens/manifest.h5" --batch 50 --block-rows 100)
  # g.h5 (made by h5py) has no @fingerprint: one changed value is a different transfer set.
  cp "$d/g.h5" "$d/orig.h5"
  inputs set "$d/g.h5" X 10 0 0.5
  fails 2 "$d/l.h5: exists and holds logits of a different ensemble, transfer set or settings" "${L[@]}" \
    --transfer "$d/g.h5" --out "$d/l.h5"
  fails 2 "$d/l.h5: was computed for a transfer set with fingerprint .* but $d/g.h5 has fingerprint" \
    distill --transfer "$d/g.h5" --logits "$d/l.h5" --arch $ARCH --epochs 1 --out "$d/s.h5"
  cp "$d/orig.h5" "$d/g.h5"
  # A transfer set written by Mimic carries @fingerprint; a row changed afterwards is caught on open.
  runs 2 transfer --from "$d/g.h5" --size 300 --augment 1 --noise 0.1 --out "$d/t.h5"
  runs 2 "${L[@]}" --transfer "$d/t.h5" --out "$d/lt.h5"
  cp "$d/t.h5" "$d/t_orig.h5"
  inputs set "$d/t.h5" X 250 1 7
  fails 2 "$d/t.h5: its rows hash to fingerprint .* but its @fingerprint attribute says" "${L[@]}" \
    --transfer "$d/t.h5" --out "$d/lt.h5"
  cp "$d/t_orig.h5" "$d/t.h5"
  # distill --transfer A --logits <labels of B> is refused.
  fails 2 "$d/lt.h5: holds logits for 300 rows but $d/g.h5 has 200" distill --transfer "$d/g.h5" \
    --logits "$d/lt.h5" --arch $ARCH --epochs 1 --out "$d/s.h5"
  tiny "$d/b.h5" 200 2 1 6 6 4
  runs 2 "${L[@]}" --transfer "$d/b.h5" --out "$d/lb.h5"
  fails 2 "$d/lb.h5: was computed for a transfer set with fingerprint" distill --transfer "$d/g.h5" \
    --logits "$d/lb.h5" --arch $ARCH --epochs 1 --out "$d/s.h5"
  # Relabelled logits under the same name (another --combine) are a changed input for distill.
  D=(distill --transfer "$d/g.h5" --logits "$d/l.h5" --arch $ARCH --epochs 1 --out "$d/s.h5")
  runs 2 "${D[@]}"
  runs 2 "${L[@]}" --transfer "$d/g.h5" --out "$d/l.h5" --combine prob --temperature 2 --overwrite
  fails 2 "$d/s.h5: exists and was not trained with these settings (--logits" "${D[@]}"
  # --val-logits from another ensemble is refused.
  runs 2 ensemble train --members 2 --arch $ARCH --data "$d/g.h5" --epochs 1 --batch 16 --seed 5 --out-dir "$d/ens2"
  runs 2 label --ensemble "$d/ens2/manifest.h5" --transfer "$d/b.h5" --out "$d/vl2.h5"
  fails 2 "$d/vl2.h5: holds the logits of ensemble .* --val-logits must come from the same ensemble" \
    distill --transfer "$d/g.h5" --logits "$d/l.h5" --val "$d/b.h5" --val-logits "$d/vl2.h5" --arch $ARCH \
    --epochs 1 --out "$d/s2.h5"
  ;;
inpass)
  # A dataset too large to hash when opened (forced here with MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=0) has
  # its stored @fingerprint checked by the pass that reads its rows: a row changed after writing is caught
  # by label, distill and train before any output is moved into place.
  setup_pipeline
  runs 2 transfer --from "$d/g.h5" --size 300 --augment 1 --noise 0.1 --out "$d/t.h5"
  runs 2 label --ensemble "$d/ens/manifest.h5" --transfer "$d/t.h5" --batch 50 --block-rows 100 --out "$d/lt.h5"
  inputs idx "$d/idx" 200 4
  runs 1 data import --train-images "$d/idx/train-images" --train-labels "$d/idx/train-labels" \
    --test-images "$d/idx/t10k-images" --test-labels "$d/idx/t10k-labels" --val 0 --out-dir "$d/imp"
  export MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=0
  L=(label --ensemble "$d/ens/manifest.h5" --transfer "$d/t.h5" --batch 50 --block-rows 100)
  D=(distill --transfer "$d/t.h5" --logits "$d/lt.h5" --arch $ARCH --batch 16 --block-rows 64)
  T=(train --data "$d/imp/train.h5" --arch $ARCH --batch 16 --shuffle-block 32)
  # Intact files pass: the folded hashes equal the stored fingerprints.
  runs 2 "${L[@]}" --out "$d/l2.h5"
  cmp -s <(h5dump -d logits "$d/l2.h5" | tail -n +3) <(h5dump -d logits "$d/lt.h5" | tail -n +3) ||
    die "the in-pass check changed the logits"
  runs 2 "${D[@]}" --epochs 2 --out "$d/s.h5"
  runs 2 "${T[@]}" --epochs 2 --out "$d/m.h5"
  # A run resumed within its last epoch reads the rows it has not seen before writing its output.
  runs 2 "${D[@]}" --epochs 1 --stop-after-steps 9 --out "$d/s5.h5"
  runs 2 "${D[@]}" --epochs 1 --out "$d/s5.h5"
  grep -q "resuming" "$d/log" || { cat "$d/log"; die "distill did not resume"; }
  grep -q "$d/t.h5: reading 128 rows this run did not see" "$d/log" || { cat "$d/log"; die "no rows read to check"; }
  runs 2 "${T[@]}" --epochs 1 --stop-after-steps 3 --out "$d/m5.h5"
  runs 2 "${T[@]}" --epochs 1 --out "$d/m5.h5"
  grep -q "resuming" "$d/log" || { cat "$d/log"; die "train did not resume"; }
  # One changed value, the attribute left as it was.
  inputs set "$d/t.h5" X 250 1 7
  inputs set "$d/imp/train.h5" X 130 2 0.5
  fails 2 "$d/t.h5: its rows hash to fingerprint .* but its @fingerprint attribute says .*(found while reading its rows" \
    "${L[@]}" --out "$d/l3.h5"
  [ ! -e "$d/l3.h5" ] || die "label moved logits of a changed transfer set into place"
  fails 2 "$d/t.h5: its rows hash to fingerprint .*(found while reading its rows" "${D[@]}" --epochs 2 --out "$d/s3.h5"
  [ ! -e "$d/s3.h5" ] || die "distill wrote a student of a changed transfer set"
  fails 2 "$d/imp/train.h5: its rows hash to fingerprint .*(found while reading its rows" "${T[@]}" --epochs 2 --out "$d/m3.h5"
  fails 1 "$d/imp/train.h5: its rows hash to fingerprint .*(found while reading its rows" "${T[@]}" --epochs 2 --out "$d/m4.h5" \
    --bootstrap
  [ ! -e "$d/m3.h5" ] && [ ! -e "$d/m4.h5" ] || die "train wrote a model of a changed training set"
  runs 2 "${D[@]}" --epochs 1 --stop-after-steps 9 --out "$d/s6.h5"
  fails 2 "$d/t.h5: its rows hash to fingerprint .*(found while reading its rows" "${D[@]}" --epochs 1 --out "$d/s6.h5"
  [ ! -e "$d/s6.h5" ] || die "a resumed distill wrote a student of a changed transfer set"
  MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=lots fails 1 "MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=lots: must be a whole number" \
    "${L[@]}" --out "$d/l4.h5"
  ;;
lock)
  # The output lock against a second writer. A second job on a live job's output is refused even after
  # the first's OUT.lock was deleted (the first holds its partial file), and the first, having lost its
  # lock file, refuses to move its output into place instead of reporting success.
  setup_pipeline
  # A wide ensemble, so that labelling takes seconds and each first job can be paused mid-run.
  runs 1 ensemble train --members 2 --arch dense:4096,relu,dense:1024,relu,dense:4 --data "$d/g.h5" \
    --epochs 1 --batch 50 --seed 5 --out-dir "$d/wide"
  tiny "$d/big.h5" 20000 3 1 6 6 4
  L=(label --ensemble "$d/wide/manifest.h5" --transfer "$d/big.h5" --batch 50 --block-rows 100)
  # paused <out>: starts a first job on <out> in the background ($first) and pauses it once its partial
  # file exists and is held (its lock shows in /proc/locks).
  paused() {
    # Started directly (not under timeout), so that $first is Mimic itself and the signals reach it; the
    # test's own time limit bounds a hang.
    "$MIMIC" "${L[@]}" --out "$1" >"$d/first.log" 2>"$d/first.err" &
    first=$!
    for _ in $(seq 400); do [ -e "$1.partial" ] && break; sleep 0.01; done
    local ino
    ino=$(stat -c %i "$1.partial" 2>/dev/null)
    for _ in $(seq 400); do grep -q "OFDLCK.*:$ino " /proc/locks 2>/dev/null && break; sleep 0.01; done
    kill -STOP $first 2>/dev/null || { echo "skipped: the first job ended before it could be paused"; exit 77; }
    [ -e "$1.partial" ] || { kill -CONT $first; wait $first; echo "skipped: no partial file seen"; exit 77; }
  }
  paused "$d/o.h5"
  rm -f "$d/o.h5.lock"
  MIMIC_LOCK_WAIT=0 fails 1 "$d/o.h5: another live job is writing this output (it holds $d/o.h5.partial" \
    "${L[@]}" --out "$d/o.h5"
  [ ! -e "$d/o.h5.lock" ] || die "the refused job left a lock file behind"
  kill -CONT $first
  wait $first && die "the first job reported success although its lock file was removed"
  grep -q "$d/o.h5: its lock file $d/o.h5.lock was removed or replaced while this job ran" "$d/first.err" ||
    { cat "$d/first.err"; die "the first job's error does not name its lost lock"; }
  echo "ok: $(cat "$d/first.err")"
  # Its partial file is intact: a rerun resumes it and finishes.
  runs 1 "${L[@]}" --out "$d/o.h5"
  # A partial file replaced while the job runs: the first job fails at its rename, naming the file, and
  # leaves the replacement as it is.
  paused "$d/p.h5"
  printf 'another job\n' >"$d/other" && mv "$d/other" "$d/p.h5.partial"
  kill -CONT $first
  wait $first && die "the first job reported success although its partial file was replaced"
  grep -q "$d/p.h5.partial: the partial file was removed or replaced while this job ran" "$d/first.err" ||
    { cat "$d/first.err"; die "the first job's error does not name its replaced partial file"; }
  echo "ok: $(cat "$d/first.err")"
  [ "$(cat "$d/p.h5.partial")" = "another job" ] || die "the replaced partial file was changed"
  [ ! -e "$d/p.h5" ] || die "an output was moved into place from a replaced partial file"
  # A stale lock (OUT.lock and OUT.partial of a killed job) does not block a rerun, which resumes.
  paused "$d/k.h5"
  kill -KILL $first
  wait $first 2>/dev/null
  [ -e "$d/k.h5.lock" ] && [ -e "$d/k.h5.partial" ] || die "the killed job left no lock or partial file"
  MIMIC_LOCK_WAIT=0 runs 1 "${L[@]}" --out "$d/k.h5"
  grep -q "resuming" "$d/log" || { cat "$d/log"; die "the rerun after kill -9 did not resume"; }
  [ ! -e "$d/k.h5.lock" ] && [ ! -e "$d/k.h5.partial" ] || die "leftovers after the rerun"
  # Outputs named like Mimic's own siblings are refused.
  for sib in partial lock ckpt; do
    fails 2 "$d/x.h5.$sib: an output may not end in '.$sib'" "${L[@]}" --out "$d/x.h5.$sib"
  done
  ;;
lock_stages)
  # The output lock of every writing stage, not only label's: a second job on a live job's output, with
  # --overwrite, is refused, and the first job then finishes with its output intact (a clean rerun is a
  # verified no-op).
  tiny "$d/big.h5" 20000 3 1 6 6 4
  WIDE=dense:2048,relu,dense:512,relu,dense:4
  runs 2 ensemble train --members 2 --arch $ARCH --data "$d/big.h5" --epochs 1 --batch 64 --out-dir "$d/ens"
  runs 2 label --ensemble "$d/ens/manifest.h5" --transfer "$d/big.h5" --out "$d/l.h5"
  inputs idx "$d/idx" 60000 4
  # first_then_second <lock file> <no-op pattern> <mimic arguments...>: the first job, stopped once it holds
  # the lock, then the second (with --overwrite where the command has it), then the first resumed.
  first_then_second() {
    local lock=$1 noop=$2 out=${1%.lock} ino
    shift 2
    "$MIMIC" "$@" >"$d/first.log" 2>"$d/first.err" &
    first=$!
    for _ in $(seq 1000); do
      ino=$(stat -c %i "$lock" 2>/dev/null) && grep -q "FLOCK.*:$ino " /proc/locks 2>/dev/null && break
      sleep 0.01
    done
    kill -STOP $first 2>/dev/null || { echo "skipped: 'mimic $1' ended before it could be paused"; exit 77; }
    local again=("$@")
    [ "$1" = data ] || again+=(--overwrite)
    MIMIC_LOCK_WAIT=0 fails 1 "$out: another live job is writing this output" "${again[@]}"
    kill -CONT $first
    wait $first || { cat "$d/first.err"; die "the first 'mimic $1' failed after a second job was refused"; }
    [ -e "$out" ] && [ ! -e "$out.partial" ] && [ ! -e "$lock" ] || die "mimic $1: output missing or leftovers"
    if [ -n "$noop" ]; then
      runs 1 "$@"
      grep -q "$noop" "$d/log" || { cat "$d/log"; die "mimic $1: the first job's output is not intact"; }
    fi
    echo "ok: mimic $1 held its output against a second job"
  }
  first_then_second "$d/m.h5.lock" "already trained .* nothing to do" train --data "$d/big.h5" --arch $WIDE \
    --epochs 1 --out "$d/m.h5"
  first_then_second "$d/e/manifest.h5.lock" "2 already trained, 0 to train" ensemble train --members 2 \
    --arch $WIDE --data "$d/big.h5" --epochs 1 --out-dir "$d/e"
  first_then_second "$d/s.h5.lock" "already trained .* nothing to do" distill --transfer "$d/big.h5" \
    --logits "$d/l.h5" --arch $WIDE --epochs 1 --out "$d/s.h5"
  first_then_second "$d/t.h5.lock" "already complete .* nothing to do" transfer --from "$d/big.h5" \
    --size 60000 --munge 1 --out "$d/t.h5"
  first_then_second "$d/imp/train.h5.lock" "" data import --train-images "$d/idx/train-images" \
    --train-labels "$d/idx/train-labels" --test-images "$d/idx/t10k-images" --test-labels "$d/idx/t10k-labels" \
    --val 1000 --out-dir "$d/imp"
  runs 1 info "$d/imp/train.h5"
  ;;
late_signal)
  # SIGTERM to every rank the moment the final output is renamed into place: the job has succeeded and
  # must exit 0, keeping the output and leaving no partial or lock file.
  setup_pipeline
  late() {
    local out=$1 tries
    shift
    for tries in 1 2 3; do
      rm -f "$out"
      "$MIMIC_PYTHON" "$TESTS_DIR/fault/signal_after.py" "$out" "$LIMIT" >"$d/sig" &
      local watcher=$!
      runs 2 "$@" --out "$out"
      wait "$watcher"
      [ -e "$out" ] && [ ! -e "$out.partial" ] && [ ! -e "$out.lock" ] || die "mimic $*: output missing or leftovers"
      grep -q "delivered to [1-9]" "$d/sig" && { echo "ok: $1: $(cat "$d/sig"); exit 0"; return; }
    done
    echo "skipped: the ranks of 'mimic $1' exited before the signal could reach them ($(cat "$d/sig"))"
    exit 77
  }
  late "$d/l2.h5" label --ensemble "$d/ens/manifest.h5" --transfer "$d/g.h5" --batch 50 --block-rows 100
  late "$d/t.h5" transfer --from "$d/g.h5" --size 400 --munge 1
  late "$d/m.h5" train --data "$d/g.h5" --arch $ARCH --epochs 1
  late "$d/s.h5" distill --transfer "$d/g.h5" --logits "$d/l.h5" --arch $ARCH --epochs 1
  ;;
leftovers)
  # What a job ended by MPI_Abort or kill -9 leaves (OUT.lock, OUT.partial, OUT.neighbours*): the next run
  # takes the lock at once, and a finished run leaves none of them.
  tiny "$d/g.h5" 200 1 1 6 6 4
  cp "$d/g.h5" "$d/bad.h5" && inputs set "$d/bad.h5" X 150 3 nan
  fails 2 "$d/bad.h5: row 150, feature 3 is nan" transfer --from "$d/bad.h5" --size 400 --munge 1 --out "$d/v.h5"
  printf 'host gone, pid 999999\n' >"$d/v.h5.lock" && printf 'junk' >"$d/v.h5.neighbours.partial"
  runs 2 transfer --from "$d/bad.h5" --size 400 --munge 1 --out "$d/v.h5" --drop-nonfinite --overwrite
  left=$(cd "$d" && ls v.h5.* 2>/dev/null)
  [ -z "$left" ] || die "left behind after a finished run: $left"
  # A run killed after its commit left a scratch file: the no-op rerun removes it.
  printf 'junk' >"$d/v.h5.neighbours"
  runs 2 transfer --from "$d/bad.h5" --size 400 --munge 1 --out "$d/v.h5" --drop-nonfinite
  grep -q "already complete" "$d/log" || { cat "$d/log"; die "the rerun is not a no-op"; }
  left=$(cd "$d" && ls v.h5.* 2>/dev/null)
  [ -z "$left" ] || die "left behind after a no-op rerun: $left"
  ;;
*)
  die "unknown case $case"
  ;;
esac
echo "fault '$case': passed"
