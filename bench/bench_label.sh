#!/usr/bin/env bash
# Labelling benchmark of `mimic label`: member-samples/s on 1 rank against PyTorch (1 thread, same members,
# rows and batch), strong scaling over ranks and grid shapes (--groups), the write phase, and peak memory
# per rank at N and 10N transfer rows. Builds everything it needs under BENCH_DIR. See bench/README.md,
# "Labelling".
# usage: bench/bench_label.sh [BUILD_DIR] [BENCH_DIR] [ROWS]   (defaults: build, $BENCH_DIR or /tmp/mimic-bench, 20000)
#        SECTIONS=1234 picks sections (1 throughput, 2 scaling, 3 memory, 4 write bandwidth).
#        MAX_RANKS=4 adds oversubscribed 4-rank runs (more ranks than cores: labelled as such).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
bench=${2:-${BENCH_DIR:-/tmp/mimic-bench}}
rows=${3:-20000}
max_ranks=${MAX_RANKS:-2}
mimic=$build/mimic
py=${MIMIC_PYTHON:-/usr/bin/python3}
cores=$(nproc)
source "$here/common.sh"
mkdir -p "$bench/label"
cd "$bench"
want() { [[ ${SECTIONS:-1234} == *$1* ]]; } # SECTIONS=24 runs only sections 2 and 4

# --- inputs: Fashion-MNIST, members trained briefly (real weights), transfer sets of N and 10N rows ------
[ -e data/train.h5 ] || "$mimic" data import --out-dir data --quiet
[ -e data/sub.h5 ] || "$py" "$here/bench_label_torch.py" replicate data/train.h5 data/sub.h5 6000 1
declare -A spec=(
  [mlp]="dense:1200,relu,dense:1200,relu,dense:10"
  [cnn]="conv:16x5,relu,pool:2,conv:32x5,relu,pool:2,dense:128,relu,dense:10"
)
for e in mlp cnn; do
  [ -e ens-$e/manifest.h5 ] || mpirun -np 2 "$mimic" ensemble train --members 2 --arch "${spec[$e]}" --data data/sub.h5 \
    --epochs 1 --lr 0.02 --out-dir ens-$e --quiet
done
if [ ! -e ens-all/manifest.h5 ]; then  # 4 members: 2 MLPs + 2 CNNs (unequal costs: LPT balance matters)
  mkdir -p ens-all
  "$mimic" ensemble add --manifest ens-all/manifest.h5 --absolute --quiet \
    "$bench"/ens-mlp/member-*.h5 "$bench"/ens-cnn/member-*.h5
fi
[ -e t1.h5 ] || "$py" "$here/bench_label_torch.py" replicate data/train.h5 t1.h5 "$rows" 1
[ -e tm.h5 ] || "$py" "$here/bench_label_torch.py" replicate data/train.h5 tm.h5 1024 1
[ -e t10.h5 ] || "$py" "$here/bench_label_torch.py" replicate data/train.h5 t10.h5 "$rows" 10
csv=$bench/label/timings.csv
rm -f "$csv"

# run_label RANKS ENSEMBLE TRANSFER [label options...]: prints "member-samples/s maxrss_MB(max over ranks)
# cpu_seconds(user+sys, summed over ranks)"
run_label() {
  local np=$1 ens=$2 tr=$3
  shift 3
  rm -f label/out.h5 label/out.h5.partial
  local usage rate
  usage=$(mpirun_timed "$PWD/label" label/log.txt "$np" "$mimic" label --ensemble "$ens/manifest.h5" \
    --transfer "$tr" --out label/out.h5 --overwrite --timings-csv "$csv" "$@")
  rate=$(grep -o '[0-9.e+]* member-samples/s' label/log.txt | tail -1 | cut -d' ' -f1)
  echo "$rate $usage"
}
phase() { grep -E "^ +$1 " label/log.txt | awk '{print $3}' | head -1; } # avg seconds of a phase, last run

echo "bench_label: $rows transfer rows of Fashion-MNIST, batch 256, block 8192, $cores cores; load at start: $(load)"
echo
if want 1; then
echo "1. throughput, 1 rank (Mimic) vs 1 thread (PyTorch), member-samples/s: wall clock, and per CPU-second"
echo "   (CPU: Mimic's marginal CPU time, (CPU at $rows rows - CPU at 1024 rows) / rows difference, so start-up"
echo "   and model loading are excluded; PyTorch's forward loop (time.process_time); robust to other load)"
printf "%-8s %10s %10s %7s %10s %10s %7s   %s\n" ensemble "mimic" "torch" ratio "mimic/cpu" "torch/cpu" ratio \
  "mimic phases (s): read compute reduce write total"
for e in mlp cnn; do
  read -r _ _ c0 < <(run_label 1 ens-$e tm.h5)
  read -r m _ c < <(run_label 1 ens-$e t1.h5)
  ph="$(phase read) $(phase compute) $(phase reduce) $(phase write) $(phase total)"
  mc=$(echo "2 * ($rows - 1024) / ($c - $c0)" | bc -l)
  out=$("$py" "$here/bench_label_torch.py" label --transfer t1.h5 --members ens-$e/member-*.h5 --batch 256 \
      --check label/out.h5 | tee label/torch-$e.txt | grep '^torch label')
  grep -q "torch check" label/torch-$e.txt || { cat label/torch-$e.txt; exit 1; }
  t=$(echo "$out" | awk '{print $10}'); tc=$(echo "$out" | awk '{print $14}')
  printf "%-8s %10.0f %10.0f %7.2f %10.0f %10.0f %7.2f   %s\n" $e "$m" "$t" "$(echo "$m / $t" | bc -l)" "$mc" "$tc" \
    "$(echo "$mc / $tc" | bc -l)" "$ph"
done

fi
if want 2; then
echo
echo "2. strong scaling, 4-member ensemble (2 MLP + 2 CNN), $rows rows, --block-rows 2048 (so that the blocks"
echo "   spread evenly over 2 and 4 data shards); efficiency = rate / (ranks x rate at 1 rank);"
echo "   cpu-eff = CPU seconds at 1 rank / CPU seconds summed over ranks (MPI waits spin, so they count)"
printf "%-6s %-7s %14s %8s %10s %8s   %s\n" ranks groups member-samp/s speedup efficiency cpu-eff \
  "phases avg (s): read compute reduce write total"
base=; cbase=
for np in 1 2 4; do
  [ "$np" -le "$max_ranks" ] || continue
  for g in 1 2 4; do
    [ "$g" -le "$np" ] || continue
    read -r m _ c < <(run_label "$np" ens-all t1.h5 --groups "$g" --block-rows 2048)
    [ -n "$base" ] || { base=$m; cbase=$c; }
    ph="$(phase read) $(phase compute) $(phase reduce) $(phase write) $(phase total)"
    note=""; [ "$np" -gt "$cores" ] && note=" (oversubscribed: $np ranks on $cores cores)"
    printf "%-6s %-7s %14.0f %8.2f %9.0f%% %7.0f%%   %s%s\n" $np $g "$m" "$(echo "$m / $base" | bc -l)" \
      "$(echo "100 * $m / ($base * $np)" | bc -l)" "$(echo "100 * $cbase / $c" | bc -l)" "$ph" "$note"
  done
done

fi
if want 3; then
echo
echo "3. peak memory per rank (max RSS over ranks, MB), MLP ensemble, N = $rows and 10N rows"
printf "%-6s %10s %10s\n" ranks "N" "10N"
for np in 1 2; do
  read -r _ r1 _ < <(run_label "$np" ens-mlp t1.h5)
  read -r _ r10 _ < <(run_label "$np" ens-mlp t10.h5)
  printf "%-6s %10s %10s\n" $np "$r1" "$r10"
done
fi
if want 4; then
echo
# h5_best NP ROWS COLS BLOCK FLUSH: best MB/s of 3 bench_h5write runs; dd_best MB [CONV]: best of 3 dd runs
h5_best() {
  for rep in 1 2 3; do
    rm -f label/w.h5
    mpirun -np "$1" "$build/bench/bench_h5write" label/w.h5 "$2" "$3" "$4" "$5" | grep -o '[0-9.]* MB/s' | cut -d' ' -f1
  done | sort -g | tail -1
}
dd_best() {
  for rep in 1 2 3; do
    rm -f label/w.dd
    LC_ALL=C dd if=/dev/zero of=label/w.dd bs=1M count=$(($1 * 1000000 / 1048576)) ${2:-} 2>&1 |
      awk '/copied/ {for (i = 1; i <= NF; i++) if ($i == "copied,") printf "%.1f\n", $1 / $(i + 1) / 1e6}'
  done | sort -g | tail -1
}
wrows=${WRITE_ROWS:-2000000} trows=${TRANSFER_WRITE_ROWS:-100000}
echo "4. write bandwidth: bench_h5write, collective h5::write_rows, one block per rank per round, flush = H5Fflush"
echo "   after every round (MPI_File_sync at 2 ranks; mimic label flushes once per round); logits [$wrows, 10]"
echo "   and a transfer set [$trows, 784] float32; vs dd of the same bytes (page cache, or conv=fdatasync for"
echo "   2 ranks with flush: serial H5Fflush does not fsync); best of 3 runs each; MPI-IO layer: ${OMPI_MCA_io:-Open MPI default}, hints: ${MIMIC_IO_HINTS:-none}"
printf "%-52s %10s %8s\n" run "MB/s" "of dd"
for shape in "$wrows 10 8192 65536" "$trows 784 8192"; do
  read -r rows cols blocks <<<"$shape"
  mb=$((rows * cols * 4 / 1000000))
  d0=$(dd_best "$mb") d1=$(dd_best "$mb" conv=fdatasync)
  for np in 1 2; do
    for blk in $blocks; do
      for fl in 0 1; do
        r=$(h5_best $np "$rows" "$cols" $blk $fl)
        dd=$d0; [ $fl -eq 0 ] || [ $np -eq 1 ] || dd=$d1  # serial H5Fflush does not fsync
        printf "%-52s %10s %7.0f%%\n" "[$rows, $cols] $np rank(s), block $blk rows, flush $fl" "$r" \
          "$(echo "100 * $r / $dd" | bc -l)"
      done
    done
  done
  printf "%-52s %10s\n" "dd bs=1M, $mb MB (page cache)" "$d0" "dd bs=1M, $mb MB conv=fdatasync" "$d1"
done
rm -f label/w.h5 label/w.dd
fi
echo
echo "per-phase timings of every run: $csv; load at end: $(load)"
