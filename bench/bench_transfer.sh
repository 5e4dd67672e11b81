#!/usr/bin/env bash
# Transfer-set benchmark of `mimic transfer`: rows/s generated and written at 1 and 2 ranks for N rows from
# Fashion-MNIST train (55,000 rows x 784), for an augmentation mix, a MUNGE mix and both. See bench/README.md,
# "Transfer sets".
# usage: bench/bench_transfer.sh [BUILD_DIR] [BENCH_DIR] [ROWS]   (defaults: build, $BENCH_DIR or /tmp/mimic-bench, 300000)
#        MIXES="augment munge both" and RANKS="1 2" pick the runs. CPU s is user + sys of mpirun and its
#        ranks (/usr/bin/time): on a shared machine it shows the work done whatever the wall clock says.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
bench=${2:-${BENCH_DIR:-/tmp/mimic-bench}}
rows=${3:-300000}
mimic=$build/mimic
source "$here/common.sh"
export MIMIC_PROGRESS_INTERVAL=600
mkdir -p "$bench/transfer"
cd "$bench"
[ -e data/train.h5 ] || "$mimic" data import --out-dir data --quiet
: >transfer/fingerprints.txt

declare -A mix=(
  [augment]="--augment 1 --shift 2 --flip --noise 0.05 --mixup-prob 0.2"
  [munge]="--munge 1 --munge-p 0.5 --munge-s 1"
  [both]="--augment 1 --munge 1 --shift 2 --flip --noise 0.05 --mixup-prob 0.2 --munge-p 0.5 --munge-s 1"
)
echo "| mix | ranks | N | total s | rows/s (total) | generate+write s | rows/s (generate+write) | neighbours s | CPU s (all ranks) | rows per CPU-s | load before |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for m in ${MIXES:-augment munge both}; do
  for np in ${RANKS:-1 2}; do
    out=transfer/t-$m-np$np.h5
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    log=transfer/t-$m-np$np.log
    # shellcheck disable=SC2086
    /usr/bin/time -f "cpu %U %S" mpirun -q -n "$np" "$mimic" transfer --from data/train.h5 --size "$rows" \
      --out "$out" --overwrite ${mix[$m]} >"$log" 2>&1
    line=$(grep "rows/s overall" "$log")
    total_rate=$(sed -E 's/^ *([0-9]+) rows\/s overall.*/\1/' <<<"$line")
    total_s=$(sed -E 's/.*overall \(([0-9.]+) s on.*/\1/' <<<"$line")
    gen_rate=$(sed -E 's/.*generate\+write ([0-9]+) rows\/s.*/\1/' <<<"$line")
    gen_s=$(sed -E 's/.*generate\+write [0-9]+ rows\/s \(([0-9.]+) s\).*/\1/' <<<"$line")
    nn_s=$(sed -E 's/.*neighbours ([0-9.]+) s.*/\1/' <<<"$line")
    cpu=$(awk '/^cpu/ {printf "%.1f", $2 + $3}' "$log")
    per_cpu=$(awk -v n="$rows" -v c="$cpu" 'BEGIN {printf "%.0f", n / c}')
    echo "| $m | $np | $rows | $total_s | $total_rate | $gen_s | $gen_rate | $nn_s | $cpu | $per_cpu | $load |"
    echo "$m np$np $(sed -nE 's/.*fingerprint ([0-9a-f]+).*/\1/p' "$log")" >>transfer/fingerprints.txt
    rm -f "$out"
  done
done
echo
echo "fingerprints (must be identical across rank counts for one mix):"
cat transfer/fingerprints.txt
