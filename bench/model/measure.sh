#!/usr/bin/env bash
# Measures every input of the performance model (bench/model/model.py) on this machine and writes them to
# OUTDIR/inputs.json: sgemm time per shape and optimizer cost per parameter (bench_nn), conv-stack forward
# times (bench_nn --spec), memory bandwidth (a numpy array copy), MPI collectives (bench_mpi), file-system
# bandwidth (dd) and the per-round cost of collective HDF5 writes with and without a flush (bench_h5write).
# Compute figures are taken with 1 process and with all cores busy (one process per core), since a 2-rank
# run shares caches and memory bandwidth. About 3 minutes on 2 idle cores.
# usage: bench/model/measure.sh BUILD_DIR OUTDIR [SCRATCH_DIR]   (SCRATCH_DIR: where dd and HDF5 write;
#        default OUTDIR: put it on the file system the label and distill benchmarks use)
#        CLOCK=cpu times bench_nn on the thread CPU clock (robust to other load; for development only: the
#        MPI, file-system and HDF5 figures still need idle cores)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 BUILD_DIR OUTDIR [SCRATCH_DIR]" >&2; exit 2; }
build=$(cd "$1" && pwd)
out=$2
scratch=${3:-$out}
py=${MIMIC_PYTHON:-/usr/bin/python3}
np=${NP:-$(nproc)}
clock=${CLOCK:-wall}
source "$here/../common.sh"
mkdir -p "$out/raw" "$scratch"
raw=$(cd "$out/raw" && pwd)
for exe in bench/bench_nn bench/bench_mpi bench/bench_h5write; do
  [ -x "$build/$exe" ] || { echo "measure.sh: $build/$exe is missing: build the benchmarks first" >&2; exit 1; }
done
t_start=$(date +%s)
echo "measure.sh: $np cores, load at start: $(load)"
echo "$(load)" > "$raw/load_start"
echo "$clock" > "$raw/clock"

# on_all_cores FILE CMD...: CMD once per core at the same time; rank r's stdout in FILE.r
on_all_cores() {
  local f=$1
  shift
  mpirun -np "$np" bash -c 'exec "$@" > "$0.$OMPI_COMM_WORLD_RANK"' "$f" "$@"
}

# --- compute: GEMM shapes the model uses, optimizer updates, conv stacks ---------------------------------
shapes=$("$py" "$here/model.py" shapes)
convs=$("$py" "$here/model.py" convs)
echo "sgemm over $(echo "$shapes" | tr ',' '\n' | wc -l) shapes, 1 process and $np at once"
"$build/bench/bench_nn" --gemm-shapes "$shapes" --reps 5 --clock "$clock" > "$raw/gemm.1"
on_all_cores "$raw/gemm.$np" "$build/bench/bench_nn" --gemm-shapes "$shapes" --reps 5 --clock "$clock"
echo "optimizer updates and conv stacks"
for kind in adam nesterov; do
  "$build/bench/bench_nn" --optim $kind --optim-params 4000000 --reps 5 --clock "$clock" > "$raw/optim-$kind.1"
  on_all_cores "$raw/optim-$kind.$np" "$build/bench/bench_nn" --optim $kind --optim-params 4000000 --reps 5 --clock "$clock"
done
i=0
while IFS='|' read -r spec input batch; do
  [ -n "$spec" ] || continue
  i=$((i + 1))
  echo "$spec|$input|$batch" > "$raw/conv$i.case"
  "$build/bench/bench_nn" --spec "$spec" --input "$input" --batch "$batch" --iters 3 --reps 3 --summary 0 --clock "$clock" \
    > "$raw/conv$i.1"
  on_all_cores "$raw/conv$i.$np" "$build/bench/bench_nn" --spec "$spec" --input "$input" --batch "$batch" \
    --iters 3 --reps 3 --summary 0 --clock "$clock"
done <<< "$convs"

# --- memory bandwidth: numpy copy (read + write counted) of 256 MB (DRAM) and of 4 MB (the last-level
#     cache, where a layer's activations at batch 128-256 live), best of 7 and of 200 -----------------------
cat > "$raw/membw.py" << 'EOF'
import time
import numpy as np
for name, n, reps in (("dram", 64 << 20, 7), ("cache", 1 << 20, 200)):
    a = np.ones(n, dtype=np.float32); b = np.empty_like(a); np.copyto(b, a)
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter(); np.copyto(b, a); best = min(best, time.perf_counter() - t)
    print("MEMBW %s copy_bytes %d seconds %.6g GBps %.3f" % (name, 2 * a.nbytes, best, 2 * a.nbytes / best / 1e9))
EOF
echo "memory bandwidth (numpy copy)"
"$py" "$raw/membw.py" > "$raw/membw.1"
on_all_cores "$raw/membw.$np" "$py" "$raw/membw.py"

# --- MPI collectives on all cores ------------------------------------------------------------------------
echo "MPI collectives, $np ranks"
mpirun -np "$np" "$build/bench/bench_mpi" --reps 5 > "$raw/mpi.$np"

# --- file system: dd write with and without fdatasync, read back (page cache) -----------------------------
echo "file system (dd in $scratch)"
dd_mb=256
for conv in none fdatasync; do
  for rep in 1 2 3; do
    rm -f "$scratch/measure.dd"
    opt=(); [ $conv = none ] || opt=(conv=fdatasync)
    LC_ALL=C dd if=/dev/zero of="$scratch/measure.dd" bs=1M count=$dd_mb "${opt[@]}" 2>&1 | grep copied
  done > "$raw/dd-$conv"
done
for rep in 1 2 3; do
  LC_ALL=C dd if="$scratch/measure.dd" of=/dev/null bs=1M 2>&1 | grep copied
done > "$raw/dd-read"
rm -f "$scratch/measure.dd"

# --- HDF5: per-round cost of collective writes (block rows x 10 floats per rank), with and without a flush,
#     and of the tiny writes of the done records (1 x 1);
#     per round = (time at many rounds - time at few rounds) / rounds difference, best of 3 each ------------
echo "HDF5 collective writes"
: > "$raw/h5write"
for ranks in 1 $np; do
  for cfg in "2048 10" "8192 10" "1 1"; do
    read -r blk cols <<< "$cfg"
    for fl in 0 1; do
      for rounds in 4 404; do
        rows=$((blk * ranks * rounds))
        best=$(for rep in 1 2 3; do
                 rm -f "$scratch/measure.h5"
                 mpirun -np $ranks "$build/bench/bench_h5write" "$scratch/measure.h5" $rows $cols $blk $fl |
                   grep -o ': [0-9.]* s,' | tr -d ':s, '
               done | sort -g | head -1)
        echo "H5WRITE ranks $ranks block_rows $blk cols $cols flush $fl rounds $rounds seconds $best" >> "$raw/h5write"
      done
    done
  done
done
rm -f "$scratch/measure.h5"
echo "$(load)" > "$raw/load_end"

"$py" "$here/model.py" collect "$raw" "$np" > "$out/inputs.json"
echo "measure.sh: wrote $out/inputs.json in $(($(date +%s) - t_start)) s; load at end: $(load)"
