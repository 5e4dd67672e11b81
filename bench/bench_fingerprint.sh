#!/usr/bin/env bash
# Cost of content verification in `mimic label` on a Fashion-MNIST-sized transfer set (55,000 x 784,
# 172 MB of /X): the fingerprint hashed when the file is opened (the default up to 256 MiB), folded into
# the labelling pass (MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=0), and not computed at all (the same rows
# without @fingerprint, above the open-time limit: identified by size, inode and time). 1 rank, runs
# interleaved; prints label's own total and read-phase seconds per run and the ratios to the unverified run.
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
# run ENV TRANSFER: "total read" seconds of one label run (its own timings: total from the start of the
# command, read = the label::read phase, which holds the folded hashing)
run() {
  rm -f out.h5
  env $1 "$mimic" label --ensemble ens/manifest.h5 --transfer "$2" --out out.h5 >log.txt 2>&1
  echo "$(awk '$1 == "total" {print $3}' log.txt | tail -1) $(awk '$1 == "read" {print $3}' log.txt | tail -1)"
}
echo "bench_fingerprint: label, 55000 x 784 transfer rows, 2 members dense:256, 1 rank; load at start: $(load)"
declare -A tot=([open]=0 [pass]=0 [none]=0) rd=([open]=0 [pass]=0 [none]=0)
for r in $(seq "$repeats"); do
  line="run $r:"
  for mode in open pass none; do
    case $mode in
    open) out=$(run MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=268435456 data/train.h5) ;;
    pass) out=$(run MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=0 data/train.h5) ;;
    none) out=$(run MIMIC_FINGERPRINT_AT_OPEN_MAX_BYTES=0 bare.h5) ;;
    esac
    read -r t p <<<"$out"
    tot[$mode]=$(echo "${tot[$mode]} + $t" | bc -l) rd[$mode]=$(echo "${rd[$mode]} + $p" | bc -l)
    line+=" $mode total $t s (read $p s);"
  done
  echo "$line"
done
for mode in open pass none; do
  printf "mean %-4s: total %.3f s (%.3fx of none), read phase %.3f s\n" "$mode" \
    "$(echo "${tot[$mode]} / $repeats" | bc -l)" "$(echo "${tot[$mode]} / ${tot[none]}" | bc -l)" \
    "$(echo "${rd[$mode]} / $repeats" | bc -l)"
done
echo "load at end: $(load)"
