#!/usr/bin/env bash
# `mimic data import` of every source format on N ranks: synthetic files in the official formats
# (tests/python/import_sources.py) holding the same pixels and labels must import to the fingerprints of
# the IDX import made on 1 rank, with the raw values recovered from the files equal to the source pixels
# in C, H, W order; image folders equal the IDX import of their decoded pixels. Then an unlabelled set is
# imported with the training statistics and read by label, distill and transfer.
source "$(dirname "$0")/common.sh"
np=${1:-1}
d=$(scratch "import_formats.np$np")
s=$d/src
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" make "$s" || die "could not write the sources"

# imp OUT [args...]: imports into $d/OUT on $np ranks in small blocks (several per rank).
imp() {
  local out=$1
  shift
  "$MPIEXEC" -n "$np" "$MIMIC" data import --out-dir "$d/$out" --val 8 --name synthetic --block-rows 7 "$@" \
    >"$d/$out.log" 2>&1 || { cat "$d/$out.log"; die "import $out failed"; }
  for f in train val test; do [ ! -e "$d/$out/$f.h5.partial" ] || die "$out/$f.h5.partial left behind"; done
}
fingerprints() {
  for f in train val test; do "$MIMIC_PYTHON" -c "import h5py,sys; print(h5py.File(sys.argv[1])
.attrs['fingerprint'].decode())" "$d/$1/$f.h5"; done | tr '\n' ' '
}
same() { # same A B: the imports A and B hold the same rows
  local a b
  a=$(fingerprints "$1") b=$(fingerprints "$2")
  [ "$a" = "$b" ] || die "$2 ($b) differs from $1 ($a)"
  echo "ok: $2 = $1 ($a)"
}

# The reference: IDX on 1 rank, checked against the pixels.
"$MIMIC" data import --out-dir "$d/idx" --val 8 --name synthetic --quiet --train-images "$s/train-images.idx" \
  --train-labels "$s/train-labels.idx.gz" --test-images "$s/test-images.idx" --test-labels "$s/test-labels.idx" ||
  die "IDX import failed"
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" check "$d/idx" "$s" 8 || die "IDX import content"

imp idx_np --train-images "$s/train-images.idx" --train-labels "$s/train-labels.idx.gz" \
  --test-images "$s/test-images.idx" --test-labels "$s/test-labels.idx"
same idx idx_np
imp npy --train-images "$s/train_x.npy" --train-labels "$s/train_y.npy" --test-images "$s/test_x.npy" \
  --test-labels "$s/test_y.npy" --layout nhwc
same idx npy
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" check "$d/npy" "$s" 8 || die "npy import content"
imp float --train-images "$s/train_xf.npy" --train-labels "$s/train_y.npy" --test-images "$s/test_xf.npy" \
  --test-labels "$s/test_y.npy" --norm per-feature
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" check "$d/float" "$s" 8 flat || die "float import content"
imp npz --train-images "$s/data.npz:x_train" --train-labels "$s/data.npz:y_train" \
  --test-images "$s/data.npz:x_test" --test-labels "$s/data.npz:y_test" --layout nhwc
same idx npz
imp npz_c --train-images "$s/data_c.npz:x_train" --train-labels "$s/data_c.npz:y_train" \
  --test-images "$s/data_c.npz:x_test" --test-labels "$s/data_c.npz:y_test" --layout nhwc
same idx npz_c
for dt in float32 float16 float64 int8 int16 int32 int64 uint16 le_u4 be_i4; do
  imp "dt_$dt" --train-images "$s/dt_${dt}_train.npy" --train-labels "$s/train_y.npy" \
    --test-images "$s/dt_${dt}_test.npy" --test-labels "$s/test_y.npy" --layout "$([ $dt = float32 ] && echo nchw || echo nhwc)"
  [ "$dt" = float32 ] || same dt_float32 "dt_$dt"
done
# --norm per-channel of a float source (float32 N, C, H, W): one mean and std per channel, those of NumPy.
imp dt_pc --train-images "$s/dt_float32_train.npy" --train-labels "$s/train_y.npy" \
  --test-images "$s/dt_float32_test.npy" --test-labels "$s/test_y.npy" --layout nchw --norm per-channel
"$MIMIC_PYTHON" - "$d/dt_pc/train.h5" "$s/dt_float32_train.npy" <<'PY' || die "per-channel statistics"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
x = np.load(sys.argv[2]).astype(np.float64)[: len(f["X"])]
c = x.shape[1]
mean, std = f["norm/mean"][...].reshape(c, -1), f["norm/std"][...].reshape(c, -1)
assert (mean == mean[:, :1]).all() and (std == std[:, :1]).all(), "not one value per channel"
m = x.mean(axis=(0, 2, 3)); s = np.sqrt((x * x).mean(axis=(0, 2, 3)) - m * m)
assert np.allclose(mean[:, 0], m, rtol=1e-6) and np.allclose(std[:, 0], s, rtol=1e-6), (mean[:, 0], m, std[:, 0], s)
assert f.attrs["norm"] == b"per-channel"
print("per-channel statistics of the float source: those of NumPy")
PY
imp h5_half --train-images "$s/data.h5:/half/train" --train-labels "$s/data.h5:/labels/train" \
  --test-images "$s/data.h5:/half/test" --test-labels "$s/data.h5:/labels/test" --layout nchw
same dt_float32 h5_half
imp h5 --train-images "$s/data.h5:/images/train" --train-labels "$s/data.h5:/labels/train" \
  --test-images "$s/data.h5:/images/test" --test-labels "$s/data.h5:/labels/test" --layout nchw
same idx h5
imp cifar --format cifar --train-images "$s/data_batch_1.bin,$s/data_batch_2.bin" --test-images "$s/test_batch.bin"
same idx cifar
imp cifar100 --format cifar100 --train-images "$s/train100.bin" --test-images "$s/test100.bin"
same idx cifar100
for fmt in png jpg; do
  "$MIMIC" data import --out-dir "$d/${fmt}_ref" --val 8 --name synthetic --quiet \
    --train-images "$s/${fmt}_train_images.idx" --train-labels "$s/${fmt}_train_labels.idx" \
    --test-images "$s/${fmt}_test_images.idx" --test-labels "$s/${fmt}_test_labels.idx" || die "$fmt reference"
  imp "$fmt" --train-images "$s/$fmt/train" --test-images "$s/$fmt/test"
  same "${fmt}_ref" "$fmt"
done
names=$("$MIMIC_PYTHON" -c "import h5py,sys; print(h5py.File(sys.argv[1]).attrs['class_names'].decode()
.replace(chr(10), ','))" "$d/png/test.h5")
[ "$names" = "class00,class01,class02,class03,class04,class05,class06,class07,class08,class09" ] ||
  die "class names stored as '$names'"

# Unlabelled rows, normalised as the training file, and the stages that read transfer sets.
"$MPIEXEC" -n "$np" "$MIMIC" data import --unlabelled "$s/unlab.npy" --layout nhwc --norm-from "$d/npy/train.h5" \
  --out "$d/t.h5" --block-rows 7 --quiet || die "unlabelled import failed"
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_sources.py" unlabelled "$d/t.h5" "$d/npy/train.h5" "$s" ||
  die "unlabelled content"
q=(--quiet)
"$MPIEXEC" -n "$np" "$MIMIC" ensemble train --members 2 --arch dense:8,relu,dense:10 --data "$d/npy/train.h5" \
  --epochs 1 --batch 16 --seed 3 --out-dir "$d/ens" "${q[@]}" || die "ensemble train failed"
"$MPIEXEC" -n "$np" "$MIMIC" label --ensemble "$d/ens/manifest.h5" --transfer "$d/t.h5" --out "$d/logits.h5" \
  "${q[@]}" || die "label refused the unlabelled import"
"$MPIEXEC" -n "$np" "$MIMIC" distill --transfer "$d/t.h5" --logits "$d/logits.h5" --arch dense:8,relu,dense:10 \
  --epochs 1 --batch 16 --out "$d/student.h5" "${q[@]}" || die "distill refused the unlabelled import"
"$MPIEXEC" -n "$np" "$MIMIC" transfer --from "$d/t.h5" --size 30 --out "$d/t2.h5" "${q[@]}" ||
  die "transfer refused the unlabelled import"
echo "import formats on $np ranks: passed"
