#!/usr/bin/env bash
# One source as a real producer writes it (tests/python/import_producers.py: NumPy dtypes and byte orders,
# memmaps, savez_compressed, h5py chunked and compressed datasets, Pillow image modes and folder clutter,
# CIFAR-100) imported on 1 rank: it must either import exactly (values recovered from the files equal the
# source's in C, H, W order, labels equal, and the same files on 2 ranks) or be refused in one line naming
# the file, with nothing written.
source "$(dirname "$0")/common.sh"
case=$1
d=$(scratch "import_producers.$case")
"$MIMIC_PYTHON" "$TESTS_DIR/python/import_producers.py" make "$case" "$d" || die "could not write the sources"
mapfile -t args <"$d/args"
expect=$(cat "$d/expect")
o=$d/out
imp() { "$MIMIC" data import --out-dir "$o" --val 0 --block-rows 5 "$@"; }
if [ "$expect" = ok ]; then
  imp "${args[@]}" --quiet || die "import failed"
  "$MIMIC_PYTHON" "$TESTS_DIR/python/import_producers.py" check "$d" "$o" || die "imported content"
  "$MPIEXEC" -n 2 "$MIMIC" data import --out-dir "$d/np2" --val 0 --block-rows 5 "${args[@]}" --quiet ||
    die "2-rank import failed"
  for f in train test; do
    "$MIMIC_PYTHON" "$TESTS_DIR/python/compare_h5.py" "$o/$f.h5" "$d/np2/$f.h5" --attr fingerprint ||
      die "$f.h5 on 2 ranks differs from 1 rank"
  done
else
  expect_fail "$expect" imp "${args[@]}"
  left=$(find "$o" -name '*.h5*' 2>/dev/null | head -1)
  [ -z "$left" ] || die "an output file was left behind: $left"
fi
echo "producer case '$case': passed"
