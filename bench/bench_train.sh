#!/usr/bin/env bash
# Training throughput of the full `mimic train` epoch loop (batch gather from the in-memory rows, forward,
# loss, backward, gradient allreduce (a no-op on one rank), optimizer) on one rank against the same loop in
# PyTorch (bench_train_torch.py), same thread count (1), data, model, batch and number of samples.
# Each side runs 1 and 3 epochs; throughput = 2 * ROWS / (time(3 epochs) - time(1 epoch)), which cancels
# start-up, reading the data and the first epoch's warm-up. Both CPU time (user + sys of the process, robust
# on a busy machine) and wall time are reported. See bench/README.md, "Training throughput".
# usage: bench/bench_train.sh [BUILD_DIR] [ROWS]      (defaults: build, 10000)
#   ARCHS="mlp cnn resnet" (the default) picks the rows: resnet is the arch line of
#   inputs/fashion-mnist/resnet.cfg, PyTorch channels_last.
#   MIMIC_BASE=OTHER_BUILD/mimic adds a "base" side, timed in the same run (before/after a change), and
#   its ratio to PyTorch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
rows=${2:-10000}
mimic=$build/mimic
py=${MIMIC_PYTHON:-/usr/bin/python3}
out=${BENCH_OUT:-/tmp/mimic-bench-train}
source "$here/common.sh"
mkdir -p "$out"
[ -e "$out/train.h5" ] || "$mimic" data import --out-dir "$out" --quiet
data=$out/subset-$rows.h5
[ -e "$data" ] || "$py" "$here/bench_train_torch.py" subset "$out/train.h5" "$data" "$rows"

archs=${ARCHS:-mlp cnn resnet}
base=${MIMIC_BASE:-}
cfg=$here/../inputs/fashion-mnist/resnet.cfg
declare -A spec=(
  [mlp]="dense:1200,relu,dense:1200,relu,dense:10"
  [cnn]="conv:32x3,relu,conv:32x3,relu,pool:2,conv:64x3,relu,pool:2,dense:256,relu,dropout:0.3,dense:10"
  [resnet]="$(sed -n 's/^arch = //p' "$cfg" | head -n 1)"
)
for m in $archs; do
  [ -n "${spec[$m]:-}" ] || { echo "bench_train.sh: ARCHS names '$m' (known: mlp cnn resnet)" >&2; exit 1; }
done
# run_timed <file> <command...>: "wall cpu" seconds of the command (cpu = user + sys, children included)
run_timed() {
  local f=$1
  shift
  /usr/bin/time -f "%e %U %S" -o "$f" "$@" >/dev/null
  awk '{print $1, $2 + $3}' "$f"
}
# mimic_run / base_run <arch> <epochs>
mimic_run() { mimic_train "$mimic" "$@"; }
base_run() { mimic_train "$base" "$@"; }
mimic_train() {
  local exe=$1
  shift
  rm -f "$out/m.h5" "$out/m.h5.ckpt"
  run_timed "$out/time" "$exe" train --data "$data" --arch "${spec[$1]}" --epochs "$2" --batch 128 \
    --optimizer nesterov --lr 0.01 --out "$out/m.h5" --quiet
}
torch_run() {
  run_timed "$out/time" "$py" "$here/bench_train_torch.py" train --data "$data" --arch "$1" --epochs "$2" \
    --spec "${spec[$1]}"
}

echo "bench_train: $rows rows of Fashion-MNIST, batch 128, SGD-Nesterov, 1 rank / 1 thread"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
sides="mimic${base:+ base} torch"
printf "%-6s %-6s %12s %12s %14s %14s\n" model side "cpu s/epoch" "wall s/epoch" "samples/s cpu" "samples/s wall"
declare -A cpu
for m in $archs; do
  for side in $sides; do
    read -r w1 c1 < <(${side}_run $m 1)
    read -r w3 c3 < <(${side}_run $m 3)
    cpu[$m.$side]=$(echo "2 * $rows / ($c3 - $c1)" | bc -l)
    printf "%-6s %-6s %12.2f %12.2f %14.1f %14.1f\n" $m $side "$(echo "($c3 - $c1) / 2" | bc -l)" \
      "$(echo "($w3 - $w1) / 2" | bc -l)" "${cpu[$m.$side]}" "$(echo "2 * $rows / ($w3 - $w1)" | bc -l)"
  done
  printf "%-6s Mimic / PyTorch (cpu): %.2f\n" $m "$(echo "${cpu[$m.mimic]} / ${cpu[$m.torch]}" | bc -l)"
  [ -z "$base" ] || printf "%-6s base / PyTorch (cpu): %.2f   (base: %s)\n" $m \
    "$(echo "${cpu[$m.base]} / ${cpu[$m.torch]}" | bc -l)" "$base"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
