#!/usr/bin/env bash
# Distillation benchmark of `mimic distill`: samples/s and GFLOP/s of a wide student on 1 rank against PyTorch
# (1 thread, same spec, rows, batch, Adam, L2 on logits), strong and weak scaling over data replicas R and
# model shards M, and peak memory per rank against hidden width with M = 1 and M = 2. Builds what it needs
# (Fashion-MNIST, a one-member teacher, its logits) under BENCH_DIR. See bench/README.md, "Distillation".
# usage: bench/bench_distill.sh [BUILD_DIR] [BENCH_DIR] [ROWS]   (defaults: build, $BENCH_DIR or /tmp/mimic-bench, 20000)
#        SECTIONS=123 picks sections (1 throughput, 2 scaling, 3 memory, 4 accumulation and overlap; default 123).
#        MAX_RANKS=4 adds oversubscribed 4-rank runs (more ranks than cores: labelled as such);
#        WIDTHS="1024 8192 32768 131072" sets the hidden widths of the memory table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
bench=${2:-${BENCH_DIR:-/tmp/mimic-bench}}
rows=${3:-20000}
max_ranks=${MAX_RANKS:-2}
widths=${WIDTHS:-1024 8192 32768 131072}
mimic=$build/mimic
py=${MIMIC_PYTHON:-/usr/bin/python3}
cores=$(nproc)
source "$here/common.sh"
mkdir -p "$bench/distill"
cd "$bench"
want() { [[ ${SECTIONS:-123} == *$1* ]]; } # SECTIONS=2 runs only section 2

# --- inputs: Fashion-MNIST, a one-member MLP teacher, transfer sets of ROWS and 1024 rows and their logits ---
[ -e data/train.h5 ] || "$mimic" data import --out-dir data --quiet
[ -e data/sub.h5 ] || "$py" "$here/bench_label_torch.py" replicate data/train.h5 data/sub.h5 6000 1
[ -e teacher/manifest.h5 ] || mpirun -np 2 "$mimic" ensemble train --members 1 --group-size 2 \
  --arch dense:1200,relu,dense:1200,relu,dense:10 --data data/sub.h5 --epochs 1 --lr 0.02 --out-dir teacher --quiet
[ -e t1.h5 ] || "$py" "$here/bench_label_torch.py" replicate data/train.h5 t1.h5 "$rows" 1
[ -e tm.h5 ] || "$py" "$here/bench_label_torch.py" replicate data/train.h5 tm.h5 1024 1
for t in t1 tm; do
  [ -e distill/$t-logits.h5 ] || "$mimic" label --ensemble teacher/manifest.h5 --transfer $t.h5 \
    --out distill/$t-logits.h5 --quiet
done
csv=$bench/distill/timings.csv
rm -f "$csv"

# run_distill RANKS TRANSFER ARCH [distill options...]: prints "samples/s GFLOP/s maxrss_MB(max over ranks)
# cpu_seconds(user+sys, summed over ranks)"
run_distill() {
  local np=$1 tr=$2 arch=$3
  shift 3
  rm -f distill/student.h5 distill/student.h5.ckpt
  local usage line
  usage=$(mpirun_timed "$PWD/distill" distill/log.txt "$np" "$mimic" distill --transfer "$tr.h5" \
    --logits "distill/$tr-logits.h5" --arch "$arch" --loss mimic --optimizer adam --lr 0.001 --epochs 1 \
    --out distill/student.h5 --overwrite --timings-csv "$csv" "$@")
  line=$(grep 'samples/s, ' distill/log.txt | tail -1)
  echo "$(echo "$line" | grep -o '[0-9.e+]* samples/s' | cut -d' ' -f1) $(echo "$line" | grep -o '[0-9.e+]* GFLOP/s' | cut -d' ' -f1) $usage"
}
# avg seconds of a phase in the last run (timing lines only: "  optimizer = adam" in the echoed configuration is not one)
phase() { awk -v p="$1" '$1 == p && $2 ~ /^[0-9.]+$/ {print $3; exit}' distill/log.txt; }
# avg seconds of the engine's phases in the last run ("-" where a phase did not occur)
phases() { local p; for p in read forward backward allreduce shard-allreduce optimizer total; do printf '%s ' "$(phase $p | grep . || echo -)"; done; }
phase_names="read fwd bwd allreduce shard-allreduce opt total"

s1="dense:4096,relu,dense:10"
s2="bottleneck:250,dense:8000,relu,dense:10"
echo "bench_distill: $rows transfer rows (784 inputs, 10 logits), 1 epoch, batch 128 (global), Adam, loss mimic (L2 on logits), $cores cores; load at start: $(load)"
echo
if want 1; then
echo "1. throughput, 1 rank (Mimic) vs 1 thread (PyTorch): wall clock, and samples per CPU-second"
echo "   (CPU: Mimic's marginal CPU time, (CPU at $rows rows - CPU at 1024 rows) / rows difference, so start-up,"
echo "   saving and checkpointing are excluded; PyTorch's epoch loop (time.process_time); robust to other load)"
printf "%-40s %9s %7s %9s %7s %6s %9s %9s %6s   %s\n" student "mimic s/s" GFLOP/s "torch s/s" GFLOP/s ratio \
  "mimic/cpu" "torch/cpu" ratio "mimic phases (s): $phase_names"
for s in "$s1" "$s2"; do
  read -r _ _ _ c0 < <(run_distill 1 tm "$s" --batch 128)
  read -r m g _ c < <(run_distill 1 t1 "$s" --batch 128)
  ph="$(phases)"
  mc=$(echo "($rows - 1024) / ($c - $c0)" | bc -l)
  out=$("$py" "$here/bench_distill_torch.py" --transfer t1.h5 --logits distill/t1-logits.h5 --arch "$s" --batch 128 \
        --epochs 1 | grep '^torch epoch 1')
  t=$(echo "$out" | awk '{print $9}'); tg=$(echo "$out" | awk '{print $11}'); tc=$(echo "$out" | awk '{print $15}')
  printf "%-40s %9.0f %7.1f %9.0f %7.1f %6.2f %9.0f %9.0f %6.2f   %s\n" "$s" "$m" "$g" "$t" "$tg" \
    "$(echo "$m / $t" | bc -l)" "$mc" "$tc" "$(echo "$mc / $tc" | bc -l)" "$ph"
done

fi
if want 2; then
echo
echo "2. scaling of '$s1' (and 2x wider for weak scaling over M); efficiency vs 1 rank"
echo "   cpu-eff = (work / work at 1 rank) x CPU seconds at 1 rank / CPU seconds summed over ranks"
printf "%-6s %-4s %-4s %-28s %10s %8s %10s %8s   %s\n" ranks R M "run" samples/s GFLOP/s efficiency cpu-eff "phases avg (s): $phase_names"
read -r b1 g1 _ c1 < <(run_distill 1 t1 "$s1" --batch 128)
printf "%-6s %-4s %-4s %-28s %10.0f %8.1f %9.0f%% %7.0f%%   %s\n" 1 1 1 "base H=4096 batch 128" "$b1" "$g1" 100 100 "$(phases)"
for np in 2 4; do
  [ "$np" -le "$max_ranks" ] || continue
  note=""; [ "$np" -gt "$cores" ] && note=" (oversubscribed: $np ranks on $cores cores)"
  # strong over R: same global batch split over np replicas
  read -r m g _ c < <(run_distill $np t1 "$s1" --batch 128 --model-shards 1)
  printf "%-6s %-4s %-4s %-28s %10.0f %8.1f %9.0f%% %7.0f%%   %s%s\n" $np $np 1 "strong R, batch 128" "$m" "$g" \
    "$(echo "100 * $m / ($b1 * $np)" | bc -l)" "$(echo "100 * $c1 / $c" | bc -l)" "$(phases)" "$note"
  # weak over R: 128 rows per replica
  read -r m g _ c < <(run_distill $np t1 "$s1" --batch $((128 * np)) --model-shards 1)
  printf "%-6s %-4s %-4s %-28s %10.0f %8.1f %9.0f%% %7.0f%%   %s%s\n" $np $np 1 "weak R, batch $((128 * np))" "$m" "$g" \
    "$(echo "100 * $m / ($b1 * $np)" | bc -l)" "$(echo "100 * $c1 / $c" | bc -l)" "$(phases)" "$note"
  # strong over M: the same student split over np shards
  read -r m g _ c < <(run_distill $np t1 "$s1" --batch 128 --model-shards $np)
  printf "%-6s %-4s %-4s %-28s %10.0f %8.1f %9.0f%% %7.0f%%   %s%s\n" $np 1 $np "strong M, H=4096" "$m" "$g" \
    "$(echo "100 * $m / ($b1 * $np)" | bc -l)" "$(echo "100 * $c1 / $c" | bc -l)" "$(phases)" "$note"
  # weak over M: np x wider hidden layer, 4096 units per shard (efficiency from GFLOP/s)
  read -r m g _ c < <(run_distill $np t1 "dense:$((4096 * np)),relu,dense:10" --batch 128 --model-shards $np)
  printf "%-6s %-4s %-4s %-28s %10.0f %8.1f %9.0f%% %7.0f%%   %s%s\n" $np 1 $np "weak M, H=$((4096 * np))" "$m" "$g" \
    "$(echo "100 * $g / ($g1 * $np)" | bc -l)" "$(echo "100 * $np * $c1 / $c" | bc -l)" "$(phases)" "$note"
  if [ "$np" -eq 4 ]; then
    read -r m g _ c < <(run_distill 4 t1 "$s1" --batch 128 --model-shards 2)
    printf "%-6s %-4s %-4s %-28s %10.0f %8.1f %9.0f%% %7.0f%%   %s%s\n" 4 2 2 "strong R x M, H=4096" "$m" "$g" \
      "$(echo "100 * $m / ($b1 * 4)" | bc -l)" "$(echo "100 * $c1 / $c" | bc -l)" "$(phases)" "$note"
  fi
done

fi
if want 3; then
echo
echo "3. peak memory per rank (max RSS over ranks, MB) of dense:H,relu,dense:10, 1024 rows, batch 128, Adam"
echo "   (parameters+gradients+2 Adam moments = 16 bytes/parameter; 'model MB' is that per rank)"
printf "%-8s %12s %10s %10s %12s %10s %10s\n" H params "model MB M=1" "RSS M=1" "model MB M=2" "RSS M=2" "RSS ratio"
for h in $widths; do
  p=$((784 * h + h + h * 10 + 10))
  read -r _ _ r1 _ < <(run_distill 1 tm "dense:$h,relu,dense:10" --batch 128 --model-shards 1)
  read -r _ _ r2 _ < <(run_distill 2 tm "dense:$h,relu,dense:10" --batch 128 --model-shards 2)
  printf "%-8s %12s %10.0f %10s %12.0f %10s %10.2f\n" $h $p "$(echo "16 * $p / 1000000" | bc -l)" "$r1" \
    "$(echo "8 * $p / 1000000" | bc -l)" "$r2" "$(echo "$r2 / $r1" | bc -l)"
done
fi
if want 4; then
echo
echo "4. R = 2 replicas, 128 rows per replica per micro-batch: the gradient allreduce blocking after the backward"
echo "   pass (--bucket-mb 0) or bucketed and started during it (--bucket-mb 1), and --accumulate 4 against"
echo "   one batch of the same 1024 rows; efficiency vs 1 rank at batch 128 (samples/s x 1 / (2 x 1-rank samples/s))"
printf "%-44s %-28s %10s %8s %10s   %s\n" student run samples/s GFLOP/s efficiency "phases avg (s): $phase_names"
cnn="conv:16x3,relu,pool:2,conv:32x3,relu,pool:2,dense:512,relu,dense:10"
for s in "$s1" "$cnn"; do
  read -r b1 _ _ _ < <(run_distill 1 t1 "$s" --batch 128)
  for run in "blocking:--batch 256 --bucket-mb 0" "overlapped:--batch 256 --bucket-mb 1" "accumulate 4:--batch 256 --accumulate 4" \
             "one batch of 1024:--batch 1024"; do
    # shellcheck disable=SC2086
    read -r m g _ _ < <(run_distill 2 t1 "$s" ${run#*:})
    printf "%-44s %-28s %10.0f %8.1f %9.0f%%   %s\n" "$s" "${run%%:*}" "$m" "$g" "$(echo "100 * $m / ($b1 * 2)" | bc -l)" "$(phases)"
  done
done
fi
echo
echo "per-phase timings of every run: $csv; load at end: $(load)"
