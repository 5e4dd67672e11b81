#!/usr/bin/env bash
# Side-by-side throughput of two builds against PyTorch in the same run: the training loop
# (bench_train.sh: MLP and CNN), distillation (bench_distill.sh section 1) and labelling (bench_label.sh
# section 1), each run for build A and then build B, so that a refactor or a kernel change is judged
# against the code it replaces on the same machine state. Run on idle cores (the load is printed).
# usage: bench/compare_builds.sh BUILD_A BUILD_B [OUT_DIR]   (env: TRAIN_ROWS=10000 ROWS=20000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [OUT_DIR]" >&2; exit 2; }
a=$(cd "$1" && pwd) b=$(cd "$2" && pwd)
out=${3:-/tmp/mimic-compare}
mkdir -p "$out"
for x in "$a" "$b"; do [ -x "$x/mimic" ] || { echo "compare_builds: $x/mimic is not built" >&2; exit 1; }; done
echo "compare_builds: A = $a ($("$a/mimic" --version | head -1))"
echo "compare_builds: B = $b ($("$b/mimic" --version | head -1))"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
for bench in train distill label; do
  for side in A B; do
    build=$a
    [ $side = B ] && build=$b
    echo "=== $bench, build $side"
    case $bench in
      train) BENCH_OUT=$out/train "$here/bench_train.sh" "$build" "${TRAIN_ROWS:-10000}" ;;
      distill) SECTIONS=1 "$here/bench_distill.sh" "$build" "$out/shared-$side" "${ROWS:-20000}" ;;
      label) SECTIONS=1 "$here/bench_label.sh" "$build" "$out/shared-$side" "${ROWS:-20000}" ;;
    esac 2>&1 | tee "$out/$bench-$side.txt"
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s in all"
