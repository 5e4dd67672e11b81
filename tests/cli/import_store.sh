#!/usr/bin/env bash
# `--store uint8|fp16|fp32` of `mimic data import` and `mimic transfer`: the same synthetic IDX and CIFAR
# sources stored as uint8 give the float32 files' rows bit for bit (h5py check and fingerprints), the same
# trained, labelled, distilled and evaluated results bit for bit through every reader, on 2 ranks; fp16
# stays within half precision; uint8 of a float source, uint8 of generated rows and a bad value are
# refused in one line with nothing written.
source "$(dirname "$0")/common.sh"
d=$(scratch import_store)
s=$d/src
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" make "$s" >/dev/null || die "could not write the sources"
check() { "$MIMIC_PYTHON" "$TESTS_DIR/python/check_store.py" "$@" || die "check_store.py $*"; }
run2() { "$MPIEXEC" -n 2 "$MIMIC" "$@" --quiet || die "mimic $*"; }
idx=(--train-images "$s/train-images.idx" --train-labels "$s/train-labels.idx.gz" --test-images "$s/test-images.idx"
  --test-labels "$s/test-labels.idx")
cifar=(--format cifar --train-images "$s/data_batch_1.bin,$s/data_batch_2.bin" --test-images "$s/test_batch.bin")

for st in fp32 uint8 fp16; do
  run2 data import --out-dir "$d/idx_$st" --val 8 --name synthetic --block-rows 7 "${idx[@]}" --store $st
  run2 data import --out-dir "$d/cifar_$st" --val 8 --name synthetic --block-rows 7 --norm per-feature \
    "${cifar[@]}" --store $st
done
for src in idx cifar; do
  for f in train val test; do
    check same "$d/${src}_uint8/$f.h5" "$d/${src}_fp32/$f.h5"
    check half "$d/${src}_fp16/$f.h5" "$d/${src}_fp32/$f.h5"
  done
done
info=$("$MIMIC" info "$d/idx_uint8/test.h5") || die "mimic info of a uint8 file"
grep -q '/X  uint8 \[24, ' <<<"$info" && grep -q '@store = "uint8"' <<<"$info" ||
  die "mimic info does not show the uint8 store: $info"
# An unlabelled import stored as uint8 with a uint8 training file's statistics.
for st in fp32 uint8; do
  run2 data import --unlabelled "$s/unlab.npy" --layout nhwc --norm-from "$d/cifar_$st/train.h5" \
    --out "$d/unlab_$st.h5" --block-rows 7 --store $st
done
check same "$d/unlab_uint8.h5" "$d/unlab_fp32.h5"

# Every reader: train, eval, label, transfer (copies stay uint8), distill give the same bits.
arch=(--arch conv:4x3s2,relu,dense:10)
run2 ensemble train --members 2 "${arch[@]}" --data "$d/cifar_fp32/train.h5" --epochs 1 --batch 16 --seed 3 \
  --out-dir "$d/ens"
for st in fp32 uint8; do
  c=$d/cifar_$st
  run2 train --data "$c/train.h5" --val "$c/val.h5" "${arch[@]}" --epochs 2 --batch 8 --seed 5 --out "$d/m_$st.h5"
  "$MPIEXEC" -n 2 "$MIMIC" eval --model "$d/m_fp32.h5" --data "$c/test.h5" >"$d/eval_$st.txt" 2>&1 ||
    die "eval $st"
  run2 transfer --from "$c/train.h5" --from "$d/unlab_$st.h5" --size 60 --subsample --out "$d/t_$st.h5" --store $st
  run2 label --ensemble "$d/ens/manifest.h5" --transfer "$d/t_$st.h5" --out "$d/l_$st.h5"
  run2 distill --transfer "$d/t_$st.h5" --logits "$d/l_$st.h5" "${arch[@]}" --epochs 1 --batch 8 \
    --out "$d/s_$st.h5"
done
"$MIMIC_PYTHON" "$TESTS_DIR/python/compare_h5.py" "$d/m_uint8.h5" "$d/m_fp32.h5" || die "trained models differ"
echo "ok: train on uint8 = train on fp32"
results() { sed -n '/rows):$/,/timings/p' "$1" | sed 1d; } # accuracy, loss, per class, confusion matrix
[ -n "$(results "$d/eval_fp32.txt")" ] || die "no results in the eval output"
diff <(results "$d/eval_uint8.txt") <(results "$d/eval_fp32.txt") || die "eval differs"
echo "ok: eval on uint8 = eval on fp32"
check same "$d/t_uint8.h5" "$d/t_fp32.h5"
"$MIMIC_PYTHON" "$TESTS_DIR/python/compare_h5.py" "$d/l_uint8.h5" "$d/l_fp32.h5" || die "logits differ"
"$MIMIC_PYTHON" "$TESTS_DIR/python/compare_h5.py" "$d/s_uint8.h5" "$d/s_fp32.h5" || die "students differ"
echo "ok: transfer, label and distill on uint8 = on fp32"
# Generated rows from a uint8 source go to fp16.
run2 transfer --from "$d/cifar_uint8/train.h5" --size 80 --augment 1 --flip --out "$d/aug16.h5" --store fp16
run2 transfer --from "$d/cifar_fp32/train.h5" --size 80 --augment 1 --flip --out "$d/aug32.h5"
check half "$d/aug16.h5" "$d/aug32.h5"

# Refusals: one line, non-zero exit, nothing written.
o=$d/refused
expect_fail "--store uint8: $s/train_xf.npy holds float64 values; uint8 keeps 8-bit sources only" \
  "$MPIEXEC" -n 2 "$MIMIC" data import --out-dir "$o" --train-images "$s/train_xf.npy" \
  --train-labels "$s/train_y.npy" --test-images "$s/test_xf.npy" --test-labels "$s/test_y.npy" --store uint8
expect_fail "--store: 'int8' is not one of fp32, fp16, uint8" \
  "$MPIEXEC" -n 2 "$MIMIC" data import --out-dir "$o" "${idx[@]}" --store int8
expect_fail "--store uint8: 20 generated rows are not 8-bit pixels" "$MPIEXEC" -n 2 "$MIMIC" transfer \
  --from "$d/cifar_uint8/train.h5" --size 76 --augment 1 --flip --out "$o/t.h5" --store uint8
expect_fail "--store uint8: $d/cifar_fp32/train.h5 stores its rows as fp32" "$MPIEXEC" -n 2 "$MIMIC" transfer \
  --from "$d/cifar_fp32/train.h5" --size 20 --subsample --out "$o/t.h5" --store uint8
expect_fail "--store: 'half' is not one of fp32, fp16, uint8" "$MPIEXEC" -n 2 "$MIMIC" transfer \
  --from "$d/cifar_fp32/train.h5" --size 20 --subsample --out "$o/t.h5" --store half
[ -z "$(ls -A "$o" 2>/dev/null)" ] || die "a refused run left files: $(ls -A "$o")"
echo "import store: passed"
