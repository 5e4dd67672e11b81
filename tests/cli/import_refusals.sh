#!/usr/bin/env bash
# One malformed source per run of `mimic data import` (written by tests/python/import_sources.py bad):
# each must give a one-line error naming the file and the problem, a non-zero exit, and no output file
# (not even a .partial), on 2 ranks.
source "$(dirname "$0")/common.sh"
case=$1
d=$(scratch "import_refusals.$case")
s=$d/src
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" bad "$case" "$s" || die "could not write the sources"
o=$d/out
imp() { "$MPIEXEC" -n 2 "$MIMIC" data import --out-dir "$o" --val 4 --block-rows 5 "$@"; }
npy=(--train-images "$s/x.npy" --train-labels "$s/y.npy" --test-images "$s/sx.npy" --test-labels "$s/sy.npy")

case $case in
truncated_npy) expect_fail "$s/x.npy: truncated: the header declares" imp "${npy[@]}" --layout nhwc ;;
object_npy) expect_fail "$s/x.npy: holds Python objects .*ragged" imp "${npy[@]}" ;;
corrupt_npz)
  expect_fail "$s/data.npz:x: corrupt compressed data" imp --train-images "$s/data.npz:x" --train-labels "$s/y.npy" \
    --test-images "$s/sx.npy" --test-labels "$s/sy.npy" --layout nhwc
  ;;
truncated_npz)
  expect_fail "$s/data.npz: not a complete .npz (zip) archive" imp --train-images "$s/data.npz:x" \
    --train-labels "$s/y.npy" --test-images "$s/sx.npy" --test-labels "$s/sy.npy" --layout nhwc
  ;;
ragged_h5)
  expect_fail "$s/data.h5:/x: is a variable-length (ragged) dataset" imp --train-images "$s/data.h5:/x" \
    --train-labels "$s/y.npy" --test-images "$s/sx.npy" --test-labels "$s/sy.npy"
  ;;
mixed_sizes)
  expect_fail "$s/train/class01/img9999.png: image is 3x16x16 (CxHxW) RGB but .* is 3x32x32 RGB" \
    imp --train-images "$s/train" --test-images "$s/train"
  ;;
mixed_channels)
  expect_fail "$s/train/class01/img9999.png: image is 1x32x32 (CxHxW) grey but .* is 3x32x32 RGB; every image must have the same size and mode" \
    imp --train-images "$s/train" --test-images "$s/train"
  ;;
class_mismatch)
  expect_fail "$s/test: its class folders differ from the training set's ($s/train); both need the same class names" \
    imp --train-images "$s/train" --test-images "$s/test"
  ;;
label_count) expect_fail "$s/y.npy: holds 63 labels but $s/x.npy holds 64 images" imp "${npy[@]}" --layout nhwc ;;
float_labels) expect_fail "$s/y.npy: row 0 has label .*; labels must be integers" imp "${npy[@]}" --layout nhwc ;;
negative_labels) expect_fail "$s/y.npy: row 17 has label -1; labels must be integers" imp "${npy[@]}" --layout nhwc ;;
nan_float) expect_fail "$s/sx.npy: row 23, feature 5 is nan; every value must be finite" imp "${npy[@]}" ;;
nan_half) expect_fail "$s/sx.npy: row 23, feature 2148 is nan; every value must be finite" imp "${npy[@]}" --layout nchw ;;
missing_layout) expect_fail "$s/x.npy: rows of shape (32, 32, 3) need --layout nhwc" imp "${npy[@]}" ;;
norm_from_shape)
  "$MIMIC" data import --out-dir "$d/train" "${npy[@]}" --layout nhwc --val 0 --quiet || die "training import failed"
  expect_fail "$d/train/train.h5: --norm-from file holds rows of shape 3x32x32 but $s/u.npy holds 3x16x16" \
    "$MPIEXEC" -n 2 "$MIMIC" data import --unlabelled "$s/u.npy" --layout nhwc --norm-from "$d/train/train.h5" \
    --out "$o/t.h5"
  ;;
truncated_cifar)
  expect_fail "$s/batch.bin: 30830 bytes is not a whole number of 3073-byte CIFAR-10 records" \
    imp --format cifar --train-images "$s/batch.bin" --test-images "$s/batch.bin"
  ;;
labels_given_twice)
  "$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" make "$d/full" >/dev/null || die "make failed"
  expect_fail "--train-labels: .*data_batch_1.bin carries its own labels" imp --format cifar \
    --train-images "$d/full/data_batch_1.bin" --train-labels "$s/y.npy" --test-images "$d/full/test_batch.bin"
  ;;
huge_block)
  expect_fail "--block-rows: 2000000000 rows of 3072 features exceed 2^28 values per block" \
    "$MPIEXEC" -n 2 "$MIMIC" data import --out-dir "$o" --val 4 "${npy[@]}" --layout nhwc --block-rows 2000000000
  ;;
not_a_source)
  echo "hello" >"$s/notes.txt"
  expect_fail "$s/notes.txt: wrong IDX magic number .*; nor is it .npy, .npz, HDF5" imp --train-images "$s/notes.txt"
  ;;
*) die "unknown case $case" ;;
esac
left=$(find "$o" -name '*.h5*' 2>/dev/null | head -1)
[ -z "$left" ] || die "an output file was left behind: $left"
echo "refusal '$case': passed"
