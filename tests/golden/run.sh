#!/usr/bin/env bash
# Golden outputs: short, seeded runs of train, ensemble train, transfer, label and distill whose output
# files must keep the content digests in tests/golden/digests.txt (bitwise-identical results), so that a
# refactor cannot change what Mimic computes unnoticed.
# Usage: tests/golden/run.sh [--record]   (env: MIMIC, MPIEXEC, MIMIC_PYTHON as in the ctest environment)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${MIMIC_PYTHON:-/usr/bin/python3}
mpx=${MPIEXEC:-mpirun}
record=0
[ "${1:-}" = "--record" ] && record=1
work=$(mktemp -d "${TMPDIR:-/tmp}/mimic-golden.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

m() { # m NP mimic-args...: runs one command quietly, stopping the test with its log on failure
  local np=$1
  shift
  "$mpx" -n "$np" "$MIMIC" "$@" --quiet >"$work/log" 2>&1 || {
    cat "$work/log" >&2
    echo "golden: FAILED: mimic $*" >&2
    exit 1
  }
}

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

outputs=(mlp.h5 cnn.h5 mlp_np2.h5 ens/manifest.h5 transfer.h5 logits.h5 val_logits.h5 train_logits.h5 s*_n*.h5)
for f in ens/*.h5; do [ "$f" = ens/manifest.h5 ] || outputs+=("$f"); done
: >digests.txt
for f in "${outputs[@]}"; do
  echo "$f $("$py" "$here/h5digest.py" "$f")" >>digests.txt
done
if [ $record = 1 ]; then
  cp digests.txt "$here/digests.txt"
  echo "golden: recorded $(wc -l <digests.txt) digests in $here/digests.txt"
  exit 0
fi
if diff -u "$here/digests.txt" digests.txt; then
  echo "golden: $(wc -l <digests.txt) output files identical to the recorded digests"
else
  echo "golden: outputs differ from tests/golden/digests.txt (lines above); if the change is deliberate," \
    "explain it in the commit and re-record with tests/golden/run.sh --record" >&2
  exit 1
fi
