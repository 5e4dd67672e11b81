#!/usr/bin/env bash
# Zoo labelling benchmark: each CNN family of tests/python/zoo_families.py exported at 3x32x32, labelled by
# Mimic (`mimic import onnx`, `mimic ensemble add` of that one member, `mimic label` on 1 rank), onnxruntime
# (1 intra-op thread) and PyTorch (channels_last, 1 thread), same rows and batch, one after the other on the
# same core. Prints a table and writes it as CSV. See bench/README.md, "Zoo".
# usage: bench/bench_zoo.sh [--families a,b,...] [--rows N] [--batch B] [--reps R] [--build DIR]
#                           [--dir BENCH_DIR] [--csv FILE]
#   defaults: every family (zoo_families.py --list), 2048 rows, batch 256 (label's default), 2 passes (best
#   kept) for onnxruntime and PyTorch, build/, $BENCH_DIR/zoo or /tmp/mimic-bench/zoo,
#   bench/results/zoo/zoo-<commit>.csv.
# Mimic's rows/s is rows / the seconds of label's compute phase (its --timings-csv: forward passes and the
# mean over members, without start-up, model loading, reads and writes); the peers time their forward
# loop (wall clock). A family that Mimic cannot import is reported as "not importable: <first line of
# the error>", and the script goes on.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
dir=${BENCH_DIR:-/tmp/mimic-bench}/zoo
rows=2048 batch=256 reps=2 families="" csv=""
py=${MIMIC_PYTHON:-/usr/bin/python3}
zoo=$here/../tests/python/zoo_families.py
usage() { sed -n '6,9p' "$0" | sed 's/^# //' >&2; exit 2; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --families) families=$2 ;;
    --rows) rows=$2 ;;
    --batch) batch=$2 ;;
    --reps) reps=$2 ;;
    --build) build=$2 ;;
    --dir) dir=$2 ;;
    --csv) csv=$2 ;;
    *) usage ;;
  esac
  shift 2
done
for v in "$rows" "$batch" "$reps"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench_zoo.sh: --rows, --batch and --reps take positive integers, not '$v'" >&2; exit 2; }
done
build=$(cd "$build" && pwd)
mimic=$build/mimic
[ -x "$mimic" ] || { echo "bench_zoo.sh: no mimic executable in $build (--build)" >&2; exit 2; }
source "$here/common.sh"
[ -n "$families" ] || families=$("$py" "$zoo" --list | paste -sd,)
[ -n "$csv" ] || csv=$here/results/zoo/zoo-$(git -C "$here" rev-parse --short HEAD).csv
mkdir -p "$dir" "$(dirname "$csv")"
block=$(( (8192 + batch - 1) / batch * batch )) # label's --block-rows must be a multiple of --batch

echo "bench_zoo: families $families; $rows rows of 3x32x32, batch $batch, 1 rank / 1 thread each;" \
  "load at start: $(uptime | sed 's/.*load/load/')"
"$py" "$zoo" "$dir" --families "$families" --rows "$rows" --channels 3 --size 32 > "$dir/export.log" 2>&1 ||
  { cat "$dir/export.log" >&2; echo "bench_zoo.sh: exporting the families failed" >&2; exit 1; }
echo "family,mimic_rows_s,ort_rows_s,torch_cl_rows_s,mimic_over_ort,mimic_over_torch,max_rel_err,argmax_agree,status" > "$csv"
printf "%-20s %10s %10s %10s %8s %8s  %s\n" family mimic ort torch-cl "m/ort" "m/torch" "status (mimic vs ort logits)"

# mimic_rate FAMILY: prints "ROWS_PER_S ERR AGREE" or fails with the first line of the error in $dir/F.err
mimic_rate() {
  local f=$1 e=$dir/$1.err
  "$mimic" import onnx "$dir/$f.onnx" --out "$dir/$f.h5" --overwrite --quiet 2> "$e" ||
    { echo "not importable: $(grep -m1 . "$e")" > "$e"; return 1; }
  rm -rf "$dir/ens-$f" "$dir/$f.timings.csv"
  mkdir -p "$dir/ens-$f"
  "$mimic" ensemble add --manifest "$dir/ens-$f/manifest.h5" --absolute --quiet "$dir/$f.h5" 2> "$e" ||
    { echo "ensemble add failed: $(grep -m1 . "$e")" > "$e"; return 1; }
  mpirun -np 1 "$mimic" label --ensemble "$dir/ens-$f/manifest.h5" --transfer "$dir/data.h5" \
    --out "$dir/$f.logits.h5" --overwrite --quiet --batch "$batch" --block-rows "$block" \
    --timings-csv "$dir/$f.timings.csv" > "$e" 2>&1 ||
    { echo "label failed: $(grep -m1 . "$e")" > "$e"; return 1; }
  local t
  t=$(awk -F, '$8 == "compute" {print $10}' "$dir/$f.timings.csv")
  read -r _ err agree < <("$py" "$here/bench_zoo.py" check --family "$f" --dir "$dir" --logits "$dir/$f.logits.h5")
  echo "$(echo "$rows / $t" | bc -l) $err $agree"
}

i=0
IFS=, read -r -a names <<< "$families"
for f in "${names[@]}"; do
  m=nan err="" agree="" status=ok
  if out=$(mimic_rate "$f"); then
    read -r m err agree <<< "$out"
    status="ok (max rel err $err, argmax $agree)"
  else
    status=$(head -1 "$dir/$f.err")
  fi
  peers=$("$py" "$here/bench_zoo.py" time --family "$f" --index "$i" --dir "$dir" --rows "$rows" \
    --batch "$batch" --reps "$reps")
  o=$(awk '$1 == "ort" {print $2}' <<< "$peers")
  t=$(awk '$1 == "torch" {print $2}' <<< "$peers")
  ro=nan rt=nan
  [ "$m" = nan ] || { ro=$(echo "$m / $o" | bc -l); rt=$(echo "$m / $t" | bc -l); }
  printf "%-20s %10.0f %10.0f %10.0f %8.2f %8.2f  %s\n" "$f" "$m" "$o" "$t" "$ro" "$rt" "$status"
  printf '%s,%.1f,%.1f,%.1f,%.3f,%.3f,%s,%s,"%s"\n' "$f" "$m" "$o" "$t" "$ro" "$rt" "$err" "$agree" \
    "${status//\"/\'}" >> "$csv"
  i=$((i + 1))
done
echo "load at end: $(uptime | sed 's/.*load/load/'); CSV: $csv"
