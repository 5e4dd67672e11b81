#!/usr/bin/env bash
# A disk too small for the logits is refused up front; one that fills up mid-run (a small tmpfs): the write
# fails with a clear error naming the file, the file stays incomplete (OUT.partial only), and after space
# is freed a rerun resumes to the right result.
# Needs root (mount); tests/run.sh and CI run as root.
source "$(dirname "$0")/common.sh"
p="$PWD/scratch/cli.pipeline"
d=$(scratch label_disk_full)
args=(label --ensemble "$p/ens/manifest.h5" --transfer "$p/data/train.h5" --block-rows 2048)
"$MIMIC" "${args[@]}" --out "$d/ref.h5" --quiet || die "reference run failed"

mkdir -p "$d/disk"
mount -t tmpfs -o size=1500k tmpfs "$d/disk" || die "cannot mount a small tmpfs (the test needs root)"
trap 'umount "$d/disk" 2>/dev/null' EXIT
# /logits needs 2.2 MB (55000 x 10 floats): with 1.5 MB the run is refused before anything is written.
"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/disk/out.h5" >"$d/log0" 2>"$d/err0"
[ $? -ne 0 ] || die "the run should be refused when the logits cannot fit"
grep -q "disk/out.h5 would need 2.2 MB but .*disk has 1.5 MB free" "$d/err0" || { cat "$d/err0"; die "no up-front refusal"; }
[ -z "$(ls "$d/disk")" ] || die "a refused run left $(ls "$d/disk")"
# 2156 kB less the lock file's page passes that check by less than the file's metadata: the disk fills
# while the last block is written.
mount -o remount,size=2156k "$d/disk" || die "cannot grow the tmpfs"
"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/disk/out.h5" >"$d/log1" 2>"$d/err1"
[ $? -ne 0 ] || die "the run should fail when the disk fills"
grep -q "disk/out.h5.partial" "$d/err1" || { cat "$d/err1"; die "the error does not name the file"; }
grep -qi "disk full\|quota\|No space" "$d/err1" || { cat "$d/err1"; die "the error does not say why"; }
[ ! -e "$d/disk/out.h5" ] || die "a failed run left a file that looks complete"
[ -e "$d/disk/out.h5.partial" ] || die "the partial file is gone"

mount -o remount,size=16m "$d/disk" || die "cannot grow the tmpfs"
"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/disk/out.h5" >"$d/log2" 2>&1 || { cat "$d/log2"; die "rerun failed"; }
grep -qE "resuming .* [1-9][0-9]* of 27 blocks already done" "$d/log2" || { grep "label:" "$d/log2"; die "the rerun did not resume"; }
"$MIMIC_PYTHON" -c "
import h5py, numpy as np
a, b = h5py.File('$d/ref.h5', 'r'), h5py.File('$d/disk/out.h5', 'r')
assert np.array_equal(a['logits'][...], b['logits'][...])
assert int(b.attrs['complete']) == 1
" || die "result after the disk-full failure differs"
grep -m1 "^mimic label: error" "$d/err0"
grep -m1 "^mimic label: error" "$d/err1"
grep -h "resuming" "$d/log2"
echo "label disk full: passed"
