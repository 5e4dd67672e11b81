#!/usr/bin/env bash
# One bad input per run of `mimic data import`: each must give a one-line error naming the file and the
# problem, a non-zero exit, and no output file (not even a .partial).
source "$(dirname "$0")/common.sh"
case=$1
d=$(scratch "import_bad.$case")
src=/usr/share/datasets/fashion-mnist
args=(--out-dir "$d/out")

case $case in
missing_file)
  expect_fail "$d/none.gz: no such file" "$MIMIC" data import "${args[@]}" --train-images "$d/none.gz"
  ;;
wrong_magic)
  printf '\x12\x34\x08\x03\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00' >"$d/bad-magic"
  expect_fail "$d/bad-magic: wrong IDX magic number" "$MIMIC" data import "${args[@]}" --train-images "$d/bad-magic"
  ;;
truncated)
  gzip -dc "$src/train-images-idx3-ubyte.gz" | head -c 100000 >"$d/truncated-idx3"
  expect_fail "$d/truncated-idx3: truncated IDX file" "$MIMIC" data import "${args[@]}" --train-images "$d/truncated-idx3"
  ;;
count_mismatch)
  expect_fail "holds 10000 labels but .*train-images-idx3-ubyte.gz holds 60000 images" \
    "$MIMIC" data import "${args[@]}" --train-labels "$src/t10k-labels-idx1-ubyte.gz"
  ;;
unwritable_output)
  touch "$d/a-file"
  expect_fail "$d/a-file/out: cannot create directory" "$MIMIC" data import --out-dir "$d/a-file/out"
  expect_fail "/proc/mimic-out: cannot create directory" "$MIMIC" data import --out-dir /proc/mimic-out
  ;;
*)
  die "unknown case $case"
  ;;
esac
left=$(find "$d" -name '*.h5*' | head -1)
[ -z "$left" ] || die "an output file was left behind: $left"
echo "bad input '$case': passed"
