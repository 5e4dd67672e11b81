#!/usr/bin/env bash
# Convolution benchmark: Mimic's conv layer and a labelling CNN against PyTorch (NCHW and channels_last),
# one core, one thread each, thread CPU time, rounds interleaved (Mimic, PyTorch, Mimic, ...), best round
# kept. Prints one table: samples/s forward (labelling) and forward + backward (training) and the ratio
# Mimic / the faster PyTorch layout. See bench/README.md, "Convolution".
# usage: bench/bench_conv.sh [BUILD_DIR]   (env: ROUNDS=2 BATCH=32 MIN_TIME=0.2 SET=all|tuning|heldout)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
py=${MIMIC_PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-2}
batch=${BATCH:-32}
min_time=${MIN_TIME:-0.2}
source "$here/common.sh"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

# Tuning set: the layers of the labelling CNN below, the only shapes looked at while optimising. Held out:
# the grid 3x3 and 5x5 filters x 1, 16, 32, 64, 128 input channels x 28, 14, 7 pixels x 'same' or no
# padding (filters: 16 for 1 channel, 32 for 16, else as many as input channels), chosen beforehand.
cnn="conv:16x3,relu,conv:16x3,relu,pool:2,conv:32x3,relu,conv:32x3,relu,pool:2,dense:256,relu,dense:10"
tuning="1x28k3p1f16,16x28k3p1f16,16x14k3p1f32,32x14k3p1f32"
heldout=""
for k in 3 5; do
  for c in 1 16 32 64 128; do
    f=$c; [ "$c" = 1 ] && f=16; [ "$c" = 16 ] && f=32
    for h in 28 14 7; do
      for p in $((k / 2)) 0; do
        s=${c}x${h}k${k}p${p}f${f}
        [[ ",$tuning," == *",$s,"* ]] || heldout+="${heldout:+,}$s"
      done
    done
  done
done
case ${SET:-all} in
  tuning) shapes=$tuning ;;
  heldout) shapes=$heldout ;;
  *) shapes=$tuning,$heldout ;;
esac
args=(--shapes "$shapes" --batch "$batch" --min-time "$min_time" --reps 2 --model "$cnn")
out=$(mktemp /tmp/bench_conv.XXXXXX)
echo "bench_conv: $rounds interleaved rounds, layer batch $batch, CNN label batch 256 / train batch 128;" \
  "load at start: $(load)"
for ((r = 1; r <= rounds; ++r)); do
  "$build/bench/bench_conv" "${args[@]}" >> "$out"
  "$py" "$here/bench_conv_torch.py" "${args[@]}" >> "$out"
done
"$py" - "$out" "$tuning" <<'EOF'
import sys
best = {}
for line in open(sys.argv[1]):
    w = line.split()
    if w[1] == "conv":  # IMPL conv NAME batch B fwd X fwdbwd Y samples/s
        for kind, v in (("fwd", w[6]), ("fwdbwd", w[8])):
            key = (w[0], w[2], kind)
            best[key] = max(best.get(key, 0.0), float(v))
    else:  # IMPL model label|train batch B X samples/s
        key = (w[0], "CNN " + w[2] + " (batch " + w[4] + ")", "model")
        best[key] = max(best.get(key, 0.0), float(w[5]))
tuning = set(sys.argv[2].split(","))
names = list(dict.fromkeys(k[1] for k in best if k[0] == "mimic"))
print(f"{'shape (CxHkKpPfF)':<26}{'kind':>7}{'mimic':>10}{'nchw':>10}{'ch_last':>10}{'ratio':>8}")
ratios = []
for n in names:
    for kind in ("model",) if n.startswith("CNN") else ("fwd", "fwdbwd"):
        m, a, b = (best.get((i, n, kind), float("nan")) for i in ("mimic", "torch-nchw", "torch-cl"))
        r = m / max(a, b)
        if not n.startswith("CNN"):
            ratios.append(r)
        tag = " (tuning)" if n in tuning else ""
        print(f"{n + tag:<26}{kind:>7}{m:>10.0f}{a:>10.0f}{b:>10.0f}{r:>8.2f}")
ratios.sort()
print(f"layer ratios (Mimic / faster PyTorch layout): min {ratios[0]:.2f}, median {ratios[len(ratios) // 2]:.2f}, "
      f"max {ratios[-1]:.2f}; below 0.8: {sum(r < 0.8 for r in ratios)} of {len(ratios)}")
EOF
echo "load at end: $(load); raw lines: $out"
