#!/usr/bin/env bash
# Cost of content verification in `mimic label` on a Fashion-MNIST-sized transfer set (55,000 x 784,
# 172 MB of /X): the fingerprint hashed when the file is opened (the default up to 256 MiB), folded into
# the labelling pass (MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=0), and not computed at all (the same rows
# without @fingerprint, above the open-time limit: identified by size, inode and time). 1 rank, runs
# interleaved; prints wall seconds per run and the ratios to the unverified run.
# usage: bench/bench_fingerprint.sh [BUILD_DIR] [BENCH_DIR] [REPEATS]   (defaults: build, /tmp/mimic-bench-fp, 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
bench=${2:-/tmp/mimic-bench-fp}
repeats=${3:-3}
mimic=$build/mimic
py=${MIMIC_PYTHON:-/usr/bin/python3}
source "$here/common.sh"
mkdir -p "$bench" && cd "$bench"
[ -e data/train.h5 ] || "$mimic" data import --out-dir data --quiet
[ -e ens/manifest.h5 ] || "$mimic" ensemble train --members 2 --arch dense:256,relu,dense:10 --data data/train.h5 \
  --epochs 1 --out-dir ens --quiet
[ -e bare.h5 ] || { cp data/train.h5 bare.h5 && "$py" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); \
del f.attrs['fingerprint']" bare.h5; }
# run NAME ENV TRANSFER: wall seconds of one label run
run() {
  local t0 t1
  rm -f out.h5
  t0=$(date +%s.%N)
  env $2 "$mimic" label --ensemble ens/manifest.h5 --transfer "$3" --out out.h5 --quiet >log.txt 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
echo "bench_fingerprint: label, 55000 x 784 transfer rows, 2 members dense:256; load at start: $(load)"
declare -A sum=([open]=0 [pass]=0 [none]=0)
for r in $(seq "$repeats"); do
  a=$(run open "MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=268435456" data/train.h5)
  b=$(run pass "MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=0" data/train.h5)
  c=$(run none "MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=0" bare.h5)
  printf "run %d: at open %.2f s, in pass %.2f s, none %.2f s\n" "$r" "$a" "$b" "$c"
  sum[open]=$(echo "${sum[open]} + $a" | bc) sum[pass]=$(echo "${sum[pass]} + $b" | bc)
  sum[none]=$(echo "${sum[none]} + $c" | bc)
done
printf "mean: at open %.2f s (%.3fx of none), in pass %.2f s (%.3fx of none), none %.2f s; load at end: %s\n" \
  "$(echo "${sum[open]} / $repeats" | bc -l)" "$(echo "${sum[open]} / ${sum[none]}" | bc -l)" \
  "$(echo "${sum[pass]} / $repeats" | bc -l)" "$(echo "${sum[pass]} / ${sum[none]}" | bc -l)" \
  "$(echo "${sum[none]} / $repeats" | bc -l)" "$(load)"
