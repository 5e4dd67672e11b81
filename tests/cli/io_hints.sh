#!/usr/bin/env bash
# MPI-IO hints (--io-hints, MIMIC_IO_HINTS): malformed text is a one-line error naming its origin; valid
# hints reach every parallel file, are echoed in the resolved configuration, and leave the logits unchanged.
source "$(dirname "$0")/common.sh"
p="$PWD/scratch/cli.pipeline"
d=$(scratch io_hints)
args=(label --ensemble "$p/ens/manifest.h5" --transfer "$p/data/train.h5" --block-rows 4096)
expect_fail "error: --io-hints: 'romio_cb_write enable' is not a hint of the form key=value" \
  "$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/x.h5" --io-hints "romio_cb_write enable"
expect_fail "error: MIMIC_IO_HINTS: 'cb_nodes=1,' ends with a comma" \
  env MIMIC_IO_HINTS=cb_nodes=1, "$MIMIC" "${args[@]}" --out "$d/x.h5"
[ ! -e "$d/x.h5" ] && [ ! -e "$d/x.h5.partial" ] || die "a run with malformed hints left a file"

hints=striping_factor=4,striping_unit=1048576,romio_cb_write=enable,romio_ds_write=disable,cb_buffer_size=1048576
"$MPIEXEC" -n 2 "$MIMIC" "${args[@]}" --out "$d/plain.h5" --quiet || die "run without hints failed"
MIMIC_IO_HINTS=$hints "$MPIEXEC" -n 2 -x MIMIC_IO_HINTS "$MIMIC" "${args[@]}" --out "$d/hinted.h5" >"$d/log" 2>&1 ||
  { cat "$d/log"; die "run with MIMIC_IO_HINTS failed"; }
grep -qF "io-hints = $hints  (MIMIC_IO_HINTS)" "$d/log" || { cat "$d/log"; die "hints not echoed"; }
"$MIMIC_PYTHON" - "$d/plain.h5" "$d/hinted.h5" <<'PY' || die "logits written with hints differ"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
assert np.array_equal(a["logits"][...], b["logits"][...])
assert a.attrs["logits_fingerprint"] == b.attrs["logits_fingerprint"]
PY
echo "io hints: passed"
