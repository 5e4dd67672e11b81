#!/usr/bin/env bash
# Convolution benchmark: Mimic's conv layer and a labelling CNN against PyTorch (NCHW and channels_last),
# one core, one thread each, thread CPU time, rounds interleaved (Mimic, PyTorch, Mimic, ...), best round
# kept. Prints one table: samples/s forward (labelling), forward + backward (training) and backward alone,
# and the ratio Mimic / the faster PyTorch layout. BEFORE=<another build dir> runs that build's bench_conv in
# the same rounds too (column `before`, ratio after/before). See bench/README.md, "Convolution".
# usage: bench/bench_conv.sh [BUILD_DIR]
#        (env: ROUNDS=2 BATCH=32 MIN_TIME=0.2 SET=all|tuning|heldout|profile|depthwise BEFORE=)
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
# The profile set, CxHkKpPfF[sS][gG]*N (N: layers of that shape in the net, weighting the per-kind sums).
# ResNet-18 at 32x32: 7x7/2 stem, 3x3/2 max pool, then 4 stages of basic blocks (3x3/2 and 1x1/2 at each
# stage's start).
resnet="3x32k7p3f64s2,64x8k3p1f64*4,64x8k3p1f128s2,128x4k3p1f128*3,64x8k1p0f128s2,128x4k3p1f256s2"
resnet+=",256x2k3p1f256*3,128x4k1p0f256s2,256x2k3p1f512s2,512x1k3p1f512*3,256x2k1p0f512s2"
# MobileNetV2 at 32x32: 3x3/2 stem, inverted residuals (1x1 expand, 3x3 depthwise, 1x1 project).
mbv2="3x32k3p1f32s2,32x16k3p1f32g32,32x16k1p0f16,16x16k1p0f96,96x16k3p1f96s2g96,96x8k1p0f24"
mbv2+=",24x8k1p0f144*2,144x8k3p1f144g144,144x8k1p0f24,144x8k3p1f144s2g144,144x4k1p0f32,32x4k1p0f192*3"
mbv2+=",192x4k3p1f192g192*2,192x4k1p0f32*2,192x4k3p1f192s2g192,192x2k1p0f64,64x2k1p0f384*4"
mbv2+=",384x2k3p1f384g384*4,384x2k1p0f64*3,384x2k1p0f96,96x2k1p0f576*3,576x2k3p1f576g576*2,576x2k1p0f96*2"
mbv2+=",576x2k3p1f576s2g576,576x1k1p0f160,160x1k1p0f960*3,960x1k3p1f960g960*3,960x1k1p0f160*2"
mbv2+=",960x1k1p0f320,320x1k1p0f1280"
# Beyond them: a grouped 3x3 (ResNeXt-like) and EfficientNet's 5x5 depthwise, stride 1 and 2.
extra="64x8k3p1f64g4,240x4k5p2f240g240,144x8k5p2f144s2g144"
# Depthwise layers of MobileNet-like students (MobileNetV2 at 112-224 pixels, 5x5 as EfficientNet): 32 to
# 192 channels, 56x56 down to 7x7, 3x3 and 5x5, stride 1 and 2; then two grouped 3x3 (ResNeXt-like).
depthwise="32x56k3p1f32g32,64x56k3p1f64s2g64,96x28k3p1f96g96,144x28k3p1f144s2g144,192x14k3p1f192g192"
depthwise+=",128x14k3p1f128s2g128,192x7k3p1f192g192,144x28k5p2f144s2g144,192x14k5p2f192g192,192x7k5p2f192g192"
depthwise+=",64x28k3p1f64g4,128x14k3p1f128g8"
ort=()
case ${SET:-all} in
  tuning) shapes=$tuning ;;
  heldout) shapes=$heldout ;;
  profile) shapes=$resnet,$mbv2,$extra ort=(--ort) cnn="" ;;
  depthwise) shapes=$depthwise cnn="" ;;
  *) shapes=$tuning,$heldout ;;
esac
weights=$shapes
shapes=$(tr ',' '\n' <<< "$shapes" | sed 's/\*.*//' | awk '!seen[$0]++' | paste -sd,)
args=(--shapes "$shapes" --batch "$batch" --min-time "$min_time" --reps 2)
[ -n "$cnn" ] && args+=(--model "$cnn")
out=$(mktemp /tmp/bench_conv.XXXXXX)
echo "bench_conv: $rounds interleaved rounds, layer batch $batch, CNN label batch 256 / train batch 128;" \
  "load at start: $(load)"
before=${BEFORE:+$(cd "$BEFORE" && pwd)}
for ((r = 1; r <= rounds; ++r)); do
  "$build/bench/bench_conv" "${args[@]}" >> "$out"
  [ -n "$before" ] && "$before/bench/bench_conv" "${args[@]}" | sed 's/^mimic /before /' >> "$out"
  "$py" "$here/bench_conv_torch.py" "${args[@]}" "${ort[@]}" >> "$out"
done
"$py" - "$out" "$tuning" "$weights" <<'EOF'
import math
import re
import sys
best = {}
for line in open(sys.argv[1]):
    w = line.split()
    if w[1] == "conv":  # IMPL conv NAME batch B fwd X fwdbwd Y [bwd Z] samples/s
        for i in range(5, len(w) - 1, 2):
            key, v = (w[0], w[2], w[i]), float(w[i + 1])
            if not math.isnan(v):
                best[key] = max(best.get(key, 0.0), v)
    else:  # IMPL model label|train batch B X samples/s
        key = (w[0], "CNN " + w[2] + " (batch " + w[4] + ")", "model")
        best[key] = max(best.get(key, 0.0), float(w[5]))
tuning = set(sys.argv[2].split(","))
names = list(dict.fromkeys(k[1] for k in best if k[0] == "mimic"))
has_ort = any(k[0] == "ort" for k in best)
has_before = any(k[0] == "before" for k in best)
has_bwd = any(k[2] == "bwd" for k in best)
print(f"{'shape (CxHkKpPfF[sS][gG])':<26}{'kind':>7}{'mimic':>10}{'nchw':>10}{'ch_last':>10}{'ratio':>8}"
      + (f"{'before':>10}{'b/ratio':>8}{'speedup':>8}" if has_before else "")
      + (f"{'ort':>10}{'m/ort':>7}" if has_ort else ""))
ratios = []
for n in names:
    for kind in ("model",) if n.startswith("CNN") else ("fwd", "fwdbwd") + (("bwd",) if has_bwd else ()):
        m, a, b, o, z = (best.get((i, n, kind), float("nan"))
                         for i in ("mimic", "torch-nchw", "torch-cl", "ort", "before"))
        r = m / max(a, b)
        if not n.startswith("CNN"):
            ratios.append(r)
        tag = " (tuning)" if n in tuning else ""
        print(f"{n + tag:<26}{kind:>7}{m:>10.0f}{a:>10.0f}{b:>10.0f}{r:>8.2f}"
              + (f"{z:>10.0f}{z / max(a, b):>8.2f}{m / z:>8.2f}" if has_before else "")
              + (f"{o:>10.0f}{m / o:>7.2f}" if has_ort and kind == "fwd" else ""))
if has_ort:
    # Forward seconds per sample summed over each kind's layers (times their count in the nets).
    def kind_of(n):
        c, h, k, p, f, s, g = (int(v) if v else 1 for v in re.fullmatch(
            r"(\d+)x(\d+)k(\d+)p(\d+)f(\d+)(?:s(\d+))?(?:g(\d+))?", n).groups())
        what = "depthwise" if g == c == f and g > 1 else "grouped" if g > 1 else "stem" if c <= 4 else "dense"
        return f"{what} {k}x{k} s{s}"
    sums = {}
    for item in sys.argv[3].split(","):
        n, _, count = item.partition("*")
        t = sums.setdefault(kind_of(n), [0.0, 0.0, 0.0])
        for i, impl in enumerate(("mimic", "ort", "torch-cl")):
            t[i] += int(count or 1) / best.get((impl, n, "fwd"), float("nan"))
    print(f"\n{'conv kind (forward)':<26}{'mimic us':>10}{'ort us':>10}{'cl us':>10}{'m/ort':>8}{'m/cl':>8}")
    for kind, (m, o, c) in sorted(sums.items()):
        print(f"{kind:<26}{m * 1e6:>10.2f}{o * 1e6:>10.2f}{c * 1e6:>10.2f}{o / m:>8.2f}{c / m:>8.2f}")
ratios.sort()
print(f"layer ratios (Mimic / faster PyTorch layout): min {ratios[0]:.2f}, median {ratios[len(ratios) // 2]:.2f}, "
      f"max {ratios[-1]:.2f}; below 0.8: {sum(r < 0.8 for r in ratios)} of {len(ratios)}")
EOF
echo "load at end: $(load); raw lines: $out"
