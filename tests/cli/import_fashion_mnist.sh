#!/usr/bin/env bash
# Imports the real Fashion-MNIST on N ranks and checks the files against an independent decoding of
# the IDX bytes (tests/python/check_import.py), then checks `mimic info` on the result.
source "$(dirname "$0")/common.sh"
np=${1:-2}
d=$(scratch "import_fashion_mnist.np$np")
"$MPIEXEC" -n "$np" "$MIMIC" data import --out-dir "$d" --val 5000 >"$d/log" 2>&1 || { cat "$d/log"; die "import failed"; }
grep -q "data import summary" "$d/log" || die "no summary printed"
for f in train val test; do
  [ -f "$d/$f.h5" ] || die "$f.h5 missing"
  [ ! -e "$d/$f.h5.partial" ] || die "$f.h5.partial left behind"
done
"$MIMIC_PYTHON" "$TESTS_DIR/python/check_import.py" "$d" /usr/share/datasets/fashion-mnist 5000 || die "content check failed"
"$MIMIC" info "$d/train.h5" | grep -q "mimic-dataset-1" || die "mimic info does not recognise the dataset"
echo "import: passed"
