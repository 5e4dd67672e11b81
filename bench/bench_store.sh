#!/usr/bin/env bash
# Compact storage benchmark: a Fashion-MNIST-sized transfer file (60,000 rows of 784 pixels, from the
# Debian package's IDX files) stored as uint8 and as float32, then `mimic label` and `mimic distill` on 2
# ranks from each: file sizes, each run's total and read-phase seconds (Mimic's phase timers, avg over
# ranks) and the uint8/float32 ratios side by side. The files sit in the page cache; runs alternate
# between the files and the fastest of REPS (3) is kept. With COLD=1 the page cache is dropped before every
# run (as root), so the files are read from the disk. See bench/README.md, "Compact storage".
# usage: bench/bench_store.sh [BUILD_DIR] [BENCH_DIR]   (defaults: build, $BENCH_DIR or /tmp/mimic-bench)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
bench=${2:-${BENCH_DIR:-/tmp/mimic-bench}}/store
mimic=$build/mimic
cores=$(nproc) # before common.sh, whose OMP_NUM_THREADS=1 nproc would report
source "$here/common.sh"
mkdir -p "$bench"
cd "$bench"
q=(--quiet)
cache=page-cache
[ "${COLD:-0}" = 1 ] && cache=$(cold) # "cold", or "warm" when the cache cannot be dropped
echo "bench_store: Fashion-MNIST train rows, 2 ranks, $cores cores, files read from: $cache; load at start: $(load)"
# before RUN: drops the page cache ahead of each timed run with COLD=1
before() { if [ "${COLD:-0}" = 1 ]; then cold >/dev/null; fi; }
for st in fp32 uint8; do
  [ -e data_$st/train.h5 ] || mpirun -np 2 "$mimic" data import --out-dir data_$st --val 0 --store $st "${q[@]}"
  [ -e t_$st.h5 ] || mpirun -np 2 "$mimic" transfer --from data_$st/train.h5 --size 60000 --out t_$st.h5 \
    --store $st "${q[@]}"
done
[ -e ens/manifest.h5 ] || mpirun -np 2 "$mimic" ensemble train --members 2 --arch dense:256,relu,dense:10 \
  --data data_fp32/train.h5 --epochs 1 --lr 0.02 --out-dir ens "${q[@]}"

# phase LOG NAME: the avg seconds of a phase in a timing table
phase() { grep -E "^ +$2 " "$1" | awk '{print $3}' | tail -1; }
declare -A total read
keep_min() { # keep_min KEY LOG: the smaller total (and that run's read) of the runs so far
  local t r
  t=$(phase "$2" total) r=$(phase "$2" read)
  if [ -z "${total[$1]:-}" ] || [ "$(echo "$t < ${total[$1]}" | bc)" = 1 ]; then total[$1]=$t read[$1]=$r; fi
}
# Runs alternate between the two files, so that both see the same load; the fastest of REPS is kept.
for rep in $(seq "${REPS:-3}"); do
  for st in fp32 uint8; do
    rm -f l_$st.h5
    before
    mpirun -np 2 "$mimic" label --ensemble ens/manifest.h5 --transfer t_$st.h5 --out l_$st.h5 >label_$st.log 2>&1
    keep_min label_$st label_$st.log
    before
    mpirun -np 2 "$mimic" distill --transfer t_$st.h5 --logits l_$st.h5 --arch dense:256,relu,dense:10 \
      --epochs 1 --batch 256 --out s_$st.h5 --overwrite >distill_$st.log 2>&1
    keep_min distill_$st distill_$st.log
  done
done
"${MIMIC_PYTHON:-/usr/bin/python3}" "$here/../tests/python/compare_h5.py" s_fp32.h5 s_uint8.h5 >/dev/null &&
  echo "students from the uint8 and float32 files: identical" || echo "students from the uint8 and float32 files DIFFER"
sz() { stat -c %s "$1"; }
printf '\n%-22s %12s %12s %8s\n' "" float32 uint8 ratio
printf '%-22s %12d %12d %8.3f\n' "transfer file (bytes)" "$(sz t_fp32.h5)" "$(sz t_uint8.h5)" \
  "$(echo "$(sz t_uint8.h5) / $(sz t_fp32.h5)" | bc -l)"
for s in label distill; do
  for k in total read; do
    eval "a=\${$k[${s}_fp32]} b=\${$k[${s}_uint8]}"
    printf '%-22s %12s %12s %8.2f\n' "$s $k (s)" "$a" "$b" "$(echo "$b / $a" | bc -l)"
  done
  eval "a=\${read[${s}_fp32]} b=\${total[${s}_fp32]} c=\${read[${s}_uint8]} e=\${total[${s}_uint8]}"
  printf '%-22s %11.1f%% %11.1f%%\n' "$s read share" "$(echo "100 * $a / $b" | bc -l)" \
    "$(echo "100 * $c / $e" | bc -l)"
done
echo "load at end: $(load)"
