#!/usr/bin/env bash
# Shared fixture for the pipeline CLI tests: Fashion-MNIST imported and a 3-member teacher ensemble
# trained briefly on the validation rows, under scratch/cli.pipeline (ctest FIXTURES_SETUP).
source "$(dirname "$0")/common.sh"
d=$(scratch pipeline)
"$MPIEXEC" -n 2 "$MIMIC" data import --out-dir "$d/data" --val 5000 --quiet || die "import failed"
"$MPIEXEC" -n 2 "$MIMIC" ensemble train --members 3 --arch dense:1024,relu,dense:10 --data "$d/data/val.h5" \
  --epochs 1 --out-dir "$d/ens" --timings-csv "$d/ens-timings.csv" --quiet || die "ensemble train failed"
[ -f "$d/ens/manifest.h5" ] || die "no manifest"
grep -q "^ensemble-train,2,2,3,0,train," "$d/ens-timings.csv" || { cat "$d/ens-timings.csv"; die "no ensemble train timings"; }
echo "pipeline fixture ready in $d"
