#!/usr/bin/env bash
# `--store uint8` imports of 8-bit sources on N ranks copy the pixels into the file unchanged: the stored
# pixels equal the source's in C, H, W order, the statistics are the exact ones of docs/formats.md, the
# rows read back equal the --store fp32 import's bit for bit with the same fingerprint, and the files equal
# the 1-rank import's whatever N (NHWC .npy, CIFAR batches, IDX; per-feature, per-channel, global and none;
# an unlabelled set normalised as a uint8 training file).
source "$(dirname "$0")/common.sh"
np=${1:-1}
d=$(scratch "import_pixels.np$np")
s=$d/src
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" make "$s" >/dev/null || die "could not write the sources"
check() { "$MIMIC_PYTHON" "$TESTS_DIR/python/check_store.py" "$@" || die "check_store.py $*"; }
imp() { # imp NP OUT [args...]
  local n=$1 out=$2
  shift 2
  "$MPIEXEC" -n "$n" "$MIMIC" data import --out-dir "$out" --val 8 --name synthetic --block-rows 7 "$@" \
    --quiet || die "import into $out on $n ranks failed"
}
npy=(--train-images "$s/train_x.npy" --train-labels "$s/train_y.npy" --test-images "$s/test_x.npy"
  --test-labels "$s/test_y.npy" --layout nhwc)
cifar=(--format cifar --train-images "$s/data_batch_1.bin,$s/data_batch_2.bin" --test-images "$s/test_batch.bin")
idx=(--train-images "$s/train-images.idx" --train-labels "$s/train-labels.idx.gz" --test-images "$s/test-images.idx"
  --test-labels "$s/test-labels.idx")
attrs=(--attr fingerprint --attr norm --attr norm_scale --attr store --attr mimic_format --attr num_classes)
for case in npy:per-feature cifar:global idx:none npy:global cifar:per-channel; do
  src=${case%%:*} norm=${case#*:}
  eval "args=(\"\${${src}[@]}\")"
  o=$d/${src}_${norm}
  imp "$np" "${o}_uint8" "${args[@]}" --norm "$norm" --store uint8
  imp "$np" "${o}_fp32" "${args[@]}" --norm "$norm"
  "$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" pixels "${o}_uint8" "$s" 8 "$norm" || die "$case pixels"
  [ "$np" = 1 ] || imp 1 "${o}_np1" "${args[@]}" --norm "$norm" --store uint8
  for f in train val test; do
    check same "${o}_uint8/$f.h5" "${o}_fp32/$f.h5"
    [ "$np" = 1 ] || "$MIMIC_PYTHON" "$TESTS_DIR/python/compare_h5.py" "${o}_uint8/$f.h5" "${o}_np1/$f.h5" \
      "${attrs[@]}" || die "$case: $f.h5 on $np ranks differs from 1 rank"
  done
done
for st in fp32 uint8; do
  "$MPIEXEC" -n "$np" "$MIMIC" data import --unlabelled "$s/unlab.npy" --layout nhwc --quiet --block-rows 7 \
    --norm-from "$d/npy_per-feature_uint8/train.h5" --out "$d/unlab_$st.h5" --store $st || die "unlabelled $st"
done
check same "$d/unlab_uint8.h5" "$d/unlab_fp32.h5"
echo "import pixels on $np ranks: passed"
