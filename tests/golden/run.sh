#!/usr/bin/env bash
# Golden outputs: short, seeded runs of train, ensemble train, transfer, label and distill whose output
# files must keep the content digests in tests/golden/digests.<profile>.txt (bitwise-identical results), so
# that a refactor cannot change what Mimic computes unnoticed.
# Usage: tests/golden/run.sh [--record]   (env: MIMIC, MPIEXEC, MIMIC_PYTHON as in the ctest environment)
#
# Bitwise results hold for one arithmetic, which two things choose by CPU: Mimic's convolutions (AVX-512F
# direct kernels, else im2col + sgemm) and OpenBLAS's sgemm kernels (Debian's OpenBLAS picks them at run
# time: Cooperlake's on the earlier development VMs' AMD EPYC, whose sgemm is SkylakeX's, but Haswell's on
# an AMD EPYC of family 26 that it does not know). Each profile pins both, and a CPU checks (or records)
# every profile it can run:
#   avx512  OPENBLAS_CORETYPE=SkylakeX, direct convolutions        (CPUs with AVX-512F)
#   avx2    OPENBLAS_CORETYPE=Haswell,  MIMIC_CONV_IM2COL=1        (CPUs with AVX2 and FMA)
# A CPU that can run neither skips the test (exit 77) with a line saying so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${MIMIC_PYTHON:-/usr/bin/python3}
mpx=${MPIEXEC:-mpirun}
record=0
[ "${1:-}" = "--record" ] && record=1
top=$(mktemp -d "${TMPDIR:-/tmp}/mimic-golden.XXXXXX")
trap 'rm -rf "$top"' EXIT

m() { # m NP mimic-args...: runs one command quietly, stopping the test with its log on failure
  local np=$1
  shift
  "$mpx" -n "$np" "$MIMIC" "$@" --quiet >"$work/log" 2>&1 || {
    cat "$work/log" >&2
    echo "golden: FAILED: mimic $*" >&2
    exit 1
  }
}

# golden_runs: every run, in the current directory.
golden_runs() {
  local students si loss src grid name
  # Inputs: a learnable 8x8 set of 600 rows and a validation set of 200.
  "$py" "$here/../python/tiny_dataset.py" train.h5 600 1 1 8 8 10
  "$py" "$here/../python/tiny_dataset.py" val.h5 200 2 1 8 8 10

  # train: an MLP and a CNN (2 ranks, dropout on), SGD-Nesterov and Adam.
  m 1 train --data train.h5 --val val.h5 --arch dense:32,relu,dense:10 --epochs 2 --batch 32 --seed 3 \
    --out mlp.h5
  m 2 train --data train.h5 --val val.h5 --arch conv:4x3,relu,pool:2,dense:16,relu,dropout:0.2,dense:10 \
    --epochs 2 --batch 32 --seed 4 --optimizer adam --lr 0.01 --schedule cosine --out cnn.h5
  m 2 train --data train.h5 --arch dense:24,relu,dense:10 --epochs 2 --batch 50 --seed 5 \
    --shuffle-window 200 --shuffle-block 40 --weight-decay 0.001 --out mlp_np2.h5

  # ensemble train: 2 members on 2 ranks, one group each.
  m 2 ensemble train --members 2 --arch dense:16,relu,dense:10 --data train.h5 --val val.h5 --epochs 2 \
    --batch 32 --seed 7 --group-size 1 --out-dir ens

  # transfer: copies, shifted and MUNGE rows; label: the ensemble over them and over val.
  m 2 transfer --from train.h5 --size 1500 --augment 1 --munge 1 --shift 1 --munge-p 0.3 --seed 11 \
    --block-rows 256 --out transfer.h5
  m 2 label --ensemble ens/manifest.h5 --transfer transfer.h5 --out logits.h5
  m 1 label --ensemble ens/manifest.h5 --transfer val.h5 --out val_logits.h5
  m 2 label --ensemble ens/manifest.h5 --transfer train.h5 --out train_logits.h5

  # distill: a wide and a bottleneck student, four losses, R x M = 1x1, 2x1 and 1x2. The losses that
  # need hard labels train on the labelled training rows and their logits.
  students=("dense:32,relu,dense:10" "bottleneck:6,dense:32,relu,dense:10")
  for si in 0 1; do
    for loss in mimic kd:4 kd:4,0.7 ce; do
      src="--transfer transfer.h5 --logits logits.h5"
      case $loss in *,* | ce) src="--transfer train.h5 --logits train_logits.h5" ;; esac
      for grid in "1 1" "2 1" "2 2"; do
        set -- $grid
        name="s${si}_${loss//[:,.]/}_n$1m$2.h5"
        # shellcheck disable=SC2086
        m "$1" distill $src --val val.h5 --val-logits val_logits.h5 \
          --arch "${students[$si]}" --loss "$loss" --model-shards "$2" --epochs 2 --batch 64 --block-rows 400 \
          --optimizer adam --lr 0.003 --seed 9 --out "$name"
      done
    done
  done
}

# check_profile PROFILE CORETYPE IM2COL: the runs above under one arithmetic, their digests against (or,
# with --record, into) digests.PROFILE.txt.
check_profile() {
  local profile=$1 core=$2 im2col=$3 got
  export OPENBLAS_CORETYPE=$core MIMIC_CONV_IM2COL=$im2col
  got=$(OPENBLAS_VERBOSE=2 "$MIMIC" --version 2>&1 | sed -n 's/^Core: //p' | head -1)
  if [ "$got" != "$core" ]; then
    echo "golden: profile $profile needs OpenBLAS's $core kernels, but $MIMIC reports '${got:-no OpenBLAS core}'" \
      "(OPENBLAS_CORETYPE=$core): the digests cannot be checked with another BLAS" >&2
    exit 1
  fi
  work=$top/$profile
  mkdir -p "$work"
  cd "$work"
  golden_runs
  outputs=(mlp.h5 cnn.h5 mlp_np2.h5 ens/manifest.h5 transfer.h5 logits.h5 val_logits.h5 train_logits.h5 s*_n*.h5)
  for f in ens/*.h5; do [ "$f" = ens/manifest.h5 ] || outputs+=("$f"); done
  : >digests.txt
  for f in "${outputs[@]}"; do
    echo "$f $("$py" "$here/h5digest.py" "$f")" >>digests.txt
  done
  if [ $record = 1 ]; then
    cp digests.txt "$here/digests.$profile.txt"
    echo "golden: recorded $(wc -l <digests.txt) digests in $here/digests.$profile.txt"
  elif diff -u "$here/digests.$profile.txt" digests.txt; then
    echo "golden: profile $profile: $(wc -l <digests.txt) output files identical to the recorded digests"
  else
    echo "golden: profile $profile: outputs differ from tests/golden/digests.$profile.txt (lines above); if the" \
      "change is deliberate, explain it in the commit and re-record with tests/golden/run.sh --record" >&2
    exit 1
  fi
}

ran=0
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  check_profile avx512 SkylakeX 0
  ran=1
fi
if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then
  check_profile avx2 Haswell 1
  ran=1
fi
if [ $ran = 0 ]; then
  echo "golden: skipped: this CPU has neither AVX-512F nor AVX2 with FMA, the arithmetic of every recorded profile" >&2
  exit 77
fi
