#!/usr/bin/env bash
# ONNX interop end to end, one case per run, against real producers and consumers: PyTorch teachers from
# torch.onnx.export imported and labelled (logits match PyTorch's), unsupported operators refused, and
# Mimic students (trained, distilled model-parallel with a bottleneck, residual nets with blocks) exported
# and run by onnxruntime, also with the normalisation inside the graph (--raw-input) on raw IDX rows.
source "$(dirname "$0")/../cli/common.sh"
case=$1
d=$(scratch "onnx.$case")
py() { "$MIMIC_PYTHON" "$TESTS_DIR/python/$1" "${@:2}"; }
m() { "$MIMIC" "$@" --quiet || die "mimic $* failed"; }
m2() { "$MPIEXEC" -n 2 "$MIMIC" "$@" --quiet || die "mpiexec -n 2 mimic $* failed"; }
py onnx_teachers.py "$d" >/dev/null || die "onnx_teachers.py failed"

# logits_of MODEL.h5 OUT.h5: Mimic's logits of one model over data.h5 (a one-member ensemble, labelled).
logits_of() {
  local man="${2%.h5}.manifest.h5"
  m ensemble add --manifest "$man" "$1"
  m label --ensemble "$man" --transfer "$d/data.h5" --out "$2"
}

# zoo_check DIR C S FAMILY...: tests/python/zoo_families.py builds each family (torchvision / torch.nn, random
# weights, non-trivial BN statistics) for C x S x S inputs and exports it at opset 13 (or the family's own
# opset; with ZOO_FLAGS=--static, without dynamic_axes: the batch of 2 written into the graph); Mimic imports
# it, labels
# 16 rows like onnxruntime (1e-4 relative, argmax equal) and exports it back to a graph onnxruntime runs to
# Mimic's logits.
zoo_check() {
  local dir=$1 c=$2 s=$3 f
  shift 3
  py zoo_families.py "$dir" --channels "$c" --size "$s" --rows 16 --families "$(IFS=,; echo "$*")" ${ZOO_FLAGS:-} >/dev/null ||
    die "zoo_families.py failed"
  for f in "$@"; do
    m import onnx "$dir/$f.onnx" --out "$dir/$f.h5"
    m ensemble add --manifest "$dir/$f.manifest.h5" "$dir/$f.h5"
    m label --ensemble "$dir/$f.manifest.h5" --transfer "$dir/data.h5" --out "$dir/logits_$f.h5"
    py onnx_check.py ref "$dir/ref.h5" "$f" "$dir/logits_$f.h5" 1e-4 || die "$f ($c x $s x $s): logits differ from onnxruntime's"
    m export onnx "$dir/$f.h5" --out "$dir/$f.back.onnx"
    py onnx_check.py ort "$dir/$f.back.onnx" "$dir/data.h5" "$dir/logits_$f.h5" 1e-4 ||
      die "$f ($c x $s x $s): the exported graph differs in onnxruntime"
  done
}

case $case in
zoo_small)
  # CIFAR ResNet (BN folded by the exporter, and kept as nodes), pre-activation ResNet (standalone BN), VGG-BN,
  # squeeze-and-excitation gates and a small DenseNet at 3x32x32; some at 1x28x28 (Fashion-MNIST's shape).
  zoo_check "$d/rgb" 3 32 cifar_resnet cifar_resnet_bn preact_resnet vgg_bn se_net densenet_small
  zoo_check "$d/gray" 1 28 cifar_resnet densenet_small mobilenet_v2 resnet18 squeezenet1_1
  ;;
zoo_resnet)
  # torchvision's ResNets (basic and bottleneck blocks, 3x3/2 pad-1 MaxPool) and SqueezeNets (fire modules).
  zoo_check "$d/rgb" 3 32 resnet18 resnet34 resnet50 squeezenet1_0 squeezenet1_1
  # SqueezeNet 1.0's MaxPool(3, 2, ceil_mode) on 6x6 gives 3x3 (floor: 2x2): a pool token in ceil mode.
  spec=$("$MIMIC_PYTHON" -c "import h5py; print(h5py.File('$d/rgb/squeezenet1_0.h5', 'r').attrs['spec'])")
  [[ "$spec" == *",pool:3s2c,"* ]] || die "squeezenet1_0: no ceil-mode pool in $spec"
  ;;
zoo_mobile)
  # torchvision's MobileNetV2/V3 (depthwise convs, ReLU6, HardSwish, SE), EfficientNet-B0 (SiLU, SE),
  # EfficientNetV2-S (fused MBConv: a full 3x3 conv in place of the expansion and the depthwise one),
  # RegNetY-400MF (grouped convs with SE) and DenseNet-121 (every earlier feature map concatenated).
  zoo_check "$d/rgb" 3 32 mobilenet_v2 mobilenet_v3_small mobilenet_v3_large efficientnet_b0 efficientnet_v2_s \
    regnet_y_400mf densenet121
  ;;
zoo_norm)
  # Layer norms: torchvision's ConvNeXt-T (LayerNorm2d through x.permute, Linear layers on channels-last values,
  # layer scale) at opset 13 (LayerNorm as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div) and 17
  # (LayerNormalization), a CNN with layer norms over channels (with and without scale and shift) and over
  # the flat features of its head, and a head that flattens x.permute(0, 2, 3, 1) (the Linear's rows reordered).
  zoo_check "$d/rgb" 3 32 convnext_tiny convnext_tiny_17 ln_net ln_net_17 permute_head
  spec() { "$MIMIC_PYTHON" -c "import h5py; s = h5py.File('$d/rgb/$1.h5', 'r').attrs['spec']; print(s.decode() if isinstance(s, bytes) else s)"; }
  [[ "$(spec convnext_tiny)" == "conv:96x4s4p0,ln:1e-06,res(conv:96x7p3g96,ln:1e-06,conv:384x1p0,gelu,conv:96x1p0),"* ]] ||
    die "convnext_tiny: unexpected spec $(spec convnext_tiny)"
  [ "$(spec convnext_tiny)" == "$(spec convnext_tiny_17)" ] || die "convnext_tiny: opset 13 and 17 differ"
  [ "$(spec ln_net)" == "conv:16x3p1,ln:1e-06,relu,conv:24x3s2p1,ln,conv:32x1p0,gelu,gap,flatten,dense:48,ln,relu,dense:10" ] ||
    die "ln_net: unexpected spec $(spec ln_net)"
  ;;
zoo_user)
  # What users' own PyTorch code exports: shape arithmetic (x.view(x.size(0), -1) after F.avg_pool2d, Hu's SE
  # with Linear layers, view(b, c, 1, 1) and expand_as, x.mean([2, 3]), x.mean(3).mean(2), squeeze(-1) twice,
  # reshape(b, -1, 1, 1) then flatten), functional ReLUs, WRN-16-4 with dropout, and torchvision families
  # beyond the tuned ones; EfficientNet-B1 at opset 11, MobileNetV3-Small at opset 17; akamaster's resnet20
  # (option-A shortcuts: x[:, :, ::2, ::2] padded with zero channels), a CNN with LeakyReLU, ELU and GELU, one
  # with PReLU (per channel, shared, per unit of a Linear), and one with Softplus and Mish.
  zoo_check "$d/rgb" 3 32 kuangliu_resnet18 se_resnet_fc view_cnn preact_resnet_f wrn_16_4 regnet_x_400mf \
    mnasnet0_5 googlenet efficientnet_b1 mobilenet_v3_small_17 akamaster_resnet20 act_cnn prelu_net softplus_cnn
  # The SE excitation is a gate over the dense branch; the three heads of view_cnn are one concatenation.
  spec() { "$MIMIC_PYTHON" -c "import h5py; print(h5py.File('$d/rgb/$1.h5', 'r').attrs['spec'])"; }
  [[ "$(spec se_resnet_fc)" == *"gate(gap,flatten,bottleneck:4,relu,bottleneck:16,sigmoid)"* ]] ||
    die "se_resnet_fc: no dense gate in $(spec se_resnet_fc)"
  [[ "$(spec view_cnn)" == *",cat(gap,flatten|gap,flatten|avgpool:2,flatten,dense:32,relu),dense:10"* ]] ||
    die "view_cnn: unexpected spec $(spec view_cnn)"
  # Option A: each stride-2 shortcut is a fixed 1x1 stride-2 conv; GELU is matched from its Erf pattern.
  [[ "$(spec akamaster_resnet20)" == *"|conv:32x1s2p0)"*"|conv:64x1s2p0)"* ]] ||
    die "akamaster_resnet20: no option-A shortcut conv in $(spec akamaster_resnet20)"
  [[ "$(spec act_cnn)" == *",leakyrelu:0.1,"*",elu:1,"*",gelu,gap,flatten,dense:64,gelu,dense:10"* ]] ||
    die "act_cnn: unexpected spec $(spec act_cnn)"
  # PReLU is relu(x) - a * relu(-x): a residual block of relu and of bn (-1), relu, bn (-a).
  [[ "$(spec prelu_net)" == *"dense:24,res(relu|bn,relu,bn),dense:10"* ]] ||
    die "prelu_net: unexpected spec $(spec prelu_net)"
  # Mish is x * tanh(softplus(x)): a gate of softplus and tanh.
  [[ "$(spec softplus_cnn)" == *"conv:16x3p1,softplus,conv:16x3s2p1,gate(softplus,tanh),gap,flatten,dense:32,softplus,dense:10"* ]] ||
    die "softplus_cnn: unexpected spec $(spec softplus_cnn)"
  ;;
zoo_more)
  # Families nobody tuned for, as a new user exports them: ShuffleNetV2 (channel shuffles, x.chunk(2, dim=1)),
  # a user-written Inception block (1x7, 7x1, 1x3 kernels; four branches), VGG11 without BN, user code with
  # nn.Identity, Dropout2d, x.mean((2, 3), keepdim=True) as a gate, AdaptiveAvgPool2d(2), x.reshape(-1, 128),
  # a Linear without bias then BatchNorm1d, at opsets 13, 11 and 17; torch.split and chunk on the channels
  # (Split, Slice); fastai's concat pooling (AdaptiveMaxPool2d(1), amax); CBAM's channel attention (two paths
  # of the gated tensor added before the gate); normalisation inside the model ((x - mean) / std, x * 2 - 1, 1 - x, outputs scaled);
  # Inception v3 at 75x75 (transform_input's x[:, i] * a + b, nested concatenations in its last blocks); an
  # MLP on flat rows (x.view(-1, 784)); graphs exported without dynamic_axes.
  zoo_check "$d/rgb" 3 32 shufflenet_v2_x0_5 inception_net vgg11_cifar misc_cnn misc_cnn_11 misc_cnn_17 split_net \
    norm_cnn concat_pool_cnn cbam_channel
  zoo_check "$d/v3" 3 75 inception_v3
  ZOO_FLAGS=--static zoo_check "$d/static" 3 32 shufflenet_v2_x0_5 se_resnet_fc view_cnn misc_cnn
  zoo_check "$d/flat" 1 28 flat_mlp
  # AveragePool in ceil mode where it changes the size: padding not counted, none, counted (spec below).
  zoo_check "$d/ceil" 1 16 ceil_avg_cnn
  ZOO_FLAGS=--static zoo_check "$d/flat_static" 1 28 flat_mlp
  spec() { "$MIMIC_PYTHON" -c "import h5py; print(h5py.File('$1', 'r').attrs['spec'])"; }
  # spec_has <model.h5> <text>: the imported model's spec (as Python prints it, quoted) contains the text.
  spec_has() { [[ "$(spec "$1")" == *"$2"* ]] || die "$(basename "$1" .h5): unexpected spec $(spec "$1")"; }
  spec_has "$d/ceil/ceil_avg_cnn.h5" "'conv:8x3p1,relu,avgpool:3s2p1ec,avgpool:2c,avgpool:4s2p1c,flatten,dense:10'"
  # A shuffle is a fixed 1x1 conv after the concatenation; chunk's halves are fixed 1x1 convs in the branches.
  spec_has "$d/rgb/shufflenet_v2_x0_5.h5" "),conv:48x1p0,cat(conv:24x1p0|conv:24x1p0,conv:24x1p0,relu,conv:24x3p1g24,"
  # torch.split(x, [4, 12], 1) and x.chunk(2, 1): fixed 1x1 convs at the start of each branch.
  spec_has "$d/rgb/split_net.h5" ",cat(conv:12x1p0,conv:12x3p1,relu|conv:4x1p0),res(conv:8x1p0|conv:8x1p0),"
  # (x - mean) / std * 2 - 1 is one bn, the scaled conv and Linear outputs fold into them, 1 - x is a bn;
  # transform_input's three channels, scaled and shifted, are three 1x1 convs concatenated.
  spec_has "$d/rgb/norm_cnn.h5" "'bn,conv:16x3s2p1,relu,conv:16x3s2p1,relu,bn,gap,flatten,dense:10'"
  spec_has "$d/v3/inception_v3.h5" "'cat(conv:1x1p0|conv:1x1p0|conv:1x1p0),conv:32x3s2p0,"
  # 1x7 with pads (0, 3) and 7x1 with pads (3, 0) are 7x7 kernels with padding 3; 1x3 with (0, 1) is 3x3 p1.
  spec_has "$d/rgb/inception_net.h5" "|conv:8x1p0,relu,conv:8x7p3,relu,conv:8x7p3,relu|conv:8x7p3,relu,conv:8x3p1,relu|"
  # GlobalMaxPool and ReduceMax over H and W of the 8x8 maps: pool:8.
  spec_has "$d/rgb/concat_pool_cnn.h5" ",cat(pool:8,flatten|gap,flatten|relu,pool:8,flatten),dense:10'"
  # CBAM: the average- and max-pooled paths meet at their Add before the Mul joins them with the tensor.
  spec_has "$d/rgb/cbam_channel.h5" ",gate(res(gap,conv:4x1p0,relu,conv:16x1p0|pool:32,conv:4x1p0,relu,conv:16x1p0),sigmoid),"
  # A classifier on 3x32x32 ending in Softmax: dropped with a notice; softmax of Mimic's logits gives
  # onnxruntime's probabilities.
  py zoo_families.py "$d/soft" --rows 16 --families softmax_cnn >/dev/null || die "zoo_families.py failed"
  "$MIMIC" import onnx "$d/soft/softmax_cnn.onnx" --out "$d/soft/softmax_cnn.h5" --quiet 2>"$d/soft.err" ||
    die "softmax_cnn.onnx import failed"
  grep -q "softmax_cnn.onnx: node .* (Softmax): dropped at the output" "$d/soft.err" || die "no notice: $(cat "$d/soft.err")"
  m ensemble add --manifest "$d/soft/manifest.h5" "$d/soft/softmax_cnn.h5"
  m label --ensemble "$d/soft/manifest.h5" --transfer "$d/soft/data.h5" --out "$d/soft/logits.h5"
  "$MIMIC_PYTHON" -c "import h5py, numpy as np
z = h5py.File('$d/soft/logits.h5', 'r')['logits'][...].astype(np.float64)
p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
want = h5py.File('$d/soft/ref.h5', 'r')['softmax_cnn'][...]
err = np.abs(p - want).max(); print(f'softmax of Mimic logits vs onnxruntime probabilities: {err:.2g}')
assert err < 1e-5 and np.array_equal(p.argmax(1), want.argmax(1))" || die "softmax_cnn: probabilities differ"
  # Refused in one line naming the node, nothing written: a Transpose that is no channel shuffle nor channels
  # last, a 1x3 kernel that changes the width alone, CBAM's spatial attention (the mean over the channels).
  py zoo_families.py "$d/bad" --channels 1 --size 14 --rows 2 --families transpose_hw,valid_1x3,cbam >/dev/null ||
    die "zoo_families.py failed"
  expect_fail "transpose_hw.onnx: node 2 '/Transpose' (Transpose): perm \[0, 1, 3, 2\] of \[N, 8, 7, 7\] is not supported; Transpose is supported as a channel shuffle" \
    "$MIMIC" import onnx "$d/bad/transpose_hw.onnx" --out "$d/bad/transpose_hw.h5" --quiet
  expect_fail "valid_1x3.onnx: node 0 '/0/Conv' (Conv): kernel 1x3 with pads \[0, 0, 0, 0\] changes height and width differently" \
    "$MIMIC" import onnx "$d/bad/valid_1x3.onnx" --out "$d/bad/valid_1x3.h5" --quiet
  expect_fail "cbam.onnx: node [0-9]* '/body/body.3/body.3.1/ReduceMean' (ReduceMean): axes \[1\] are not the height and width \[2, 3\]" \
    "$MIMIC" import onnx "$d/bad/cbam.onnx" --out "$d/bad/cbam.h5" --quiet
  [ -z "$(find "$d/bad" -name '*.h5*' ! -name data.h5 ! -name ref.h5)" ] || die "an output file was left behind"
  ;;
zoo_pipeline)
  # An imported ensemble of three families at 1x28x28 (CIFAR ResNet, MobileNetV2, small DenseNet) runs the
  # whole pipeline: ensemble add of the .onnx files, label on 1 rank and on 2 ranks in 2 member groups
  # (bitwise equal; the mean of onnxruntime's logits), distil a small conv student, eval --compare.
  z=$d/zoo fams=cifar_resnet,mobilenet_v2,densenet_small
  py zoo_families.py "$z" --channels 1 --size 28 --rows 64 --families "$fams" >/dev/null || die "zoo_families.py failed"
  # The rows' labels: the class of the ensemble's mean logits (onnxruntime's), so that accuracies mean something.
  "$MIMIC_PYTHON" -c "import h5py, numpy as np
with h5py.File('$z/ref.h5', 'r') as r, h5py.File('$z/data.h5', 'r+') as f:
    f['y'][...] = np.mean([r[k][...] for k in '$fams'.split(',')], axis=0).argmax(axis=1).astype(np.int32)" ||
    die "cannot label data.h5"
  mkdir -p "$z/ens"
  m2 ensemble add --manifest "$z/ens/manifest.h5" "$z/cifar_resnet.onnx" "$z/mobilenet_v2.onnx" "$z/densenet_small.onnx"
  m label --ensemble "$z/ens/manifest.h5" --transfer "$z/data.h5" --out "$z/logits1.h5"
  m2 label --ensemble "$z/ens/manifest.h5" --transfer "$z/data.h5" --groups 2 --out "$z/logits2.h5"
  py compare_h5.py "$z/logits1.h5" "$z/logits2.h5" || die "label on 2 ranks in 2 member groups differs from 1 rank"
  py onnx_check.py ref "$z/ref.h5" "mean:$fams" "$z/logits1.h5" 1e-4 || die "ensemble logits differ from onnxruntime's mean"
  m2 distill --transfer "$z/data.h5" --logits "$z/logits1.h5" --arch conv:8x3s2p1,relu,gap,dense:10 --epochs 2 \
    --batch 16 --out "$z/student.h5"
  "$MIMIC" eval --model "$z/ens/cifar_resnet.h5" --compare "$z/student.h5" --data "$z/data.h5" >"$z/compare.txt" ||
    die "eval --compare failed"
  grep -q "^paired comparison" "$z/compare.txt" || { cat "$z/compare.txt"; die "no paired comparison printed"; }
  ;;
import)
  # Each teacher (MLP + BatchNorm1d at opset 11; CNN + BatchNorm2d, MaxPool, bias-free Conv at opset 13;
  # Reshape + MatMul + Add; MaxPool 3/2 pad 1, Pad + AveragePool, AveragePool without the padding, Clip,
  # GlobalAveragePool; Sigmoid·Mul, HardSigmoid·Mul, HardSwish, HardSigmoid; depthwise and grouped Conv;
  # Pad + Conv; exact GELU written in two other orders than PyTorch's)
  # is imported; Mimic's logits match PyTorch's to float tolerance.
  for t in mlp cnn mm pools acts acts14 bnrelu dws padconv geluorders; do
    m import onnx "$d/$t.onnx" --out "$d/$t.h5"
    logits_of "$d/$t.h5" "$d/logits_$t.h5"
    py onnx_check.py ref "$d/ref.h5" "$t" "$d/logits_$t.h5" 1e-4 || die "$t: logits differ from PyTorch's"
  done
  "$MIMIC" info "$d/cnn.h5" | grep -q 'conv:6x3p1,relu,pool:2,conv:8x3p0,sigmoid,flatten,dense:4' ||
    die "cnn.h5: unexpected spec"
  "$MIMIC" info "$d/pools.h5" |
    grep -q 'conv:4x3p1,relu,pool:3s2p1,avgpool:3s1p1,avgpool:2p1e,conv:6x3p1,relu6,gap,flatten,dense:4' ||
    die "pools.h5: unexpected spec"
  for t in acts acts14; do
    "$MIMIC" info "$d/$t.h5" | grep -q 'flatten,dense:16,silu,dense:16,hardswish,dense:16,hardsigmoid,dense:4' ||
      die "$t.h5: unexpected spec"
  done
  "$MIMIC" info "$d/dws.h5" | grep -q 'conv:8x3p1,relu6,conv:8x3s2p1g8,relu6,conv:6x1p0g2,relu,gap,flatten,dense:4' ||
    die "dws.h5: unexpected spec"
  "$MIMIC" info "$d/bnrelu.h5" | grep -q 'flatten,dense:16,relu,bn,dense:4' || die "bnrelu.h5: unexpected spec"
  "$MIMIC" info "$d/padconv.h5" | grep -q '"conv:4x3p1,relu,conv:4x3p2,flatten,dense:4"' || die "padconv.h5: unexpected spec"
  "$MIMIC" info "$d/geluorders.h5" | grep -q '"flatten,dense:8,gelu,dense:8,gelu,dense:4"' ||
    die "geluorders.h5: unexpected spec"
  # A LogSoftmax at the output is dropped with a notice on stderr: the logits are the values before it.
  "$MIMIC" import onnx "$d/soft.onnx" --out "$d/soft.h5" --quiet 2>"$d/soft.err" || die "soft.onnx import failed"
  grep -q "soft.onnx: node .* (LogSoftmax): dropped at the output" "$d/soft.err" || die "no notice: $(cat "$d/soft.err")"
  logits_of "$d/soft.h5" "$d/logits_soft.h5"
  py onnx_check.py ref "$d/ref.h5" soft "$d/logits_soft.h5" 1e-4 || die "soft: logits differ from PyTorch's before the LogSoftmax"
  # An existing output is kept unless --overwrite.
  expect_fail "cnn.h5: exists" "$MIMIC" import onnx "$d/cnn.onnx" --out "$d/cnn.h5" --quiet
  m import onnx "$d/cnn.onnx" --out "$d/cnn.h5" --overwrite
  # Not an ONNX file.
  expect_fail "not an ONNX model" "$MIMIC" import onnx "$d/data.h5" --out "$d/x.h5" --quiet
  [ ! -e "$d/x.h5" ] || die "x.h5 written for a bad input"
  ;;
unsupported)
  # GroupNorm + Softmax (opset 17): the unsupported operator is named (a Softmax at the output is dropped),
  # the exit is non-zero, no file.
  expect_fail "bad.onnx: unsupported operators: InstanceNormalization$" \
    "$MIMIC" import onnx "$d/bad.onnx" --out "$d/bad.h5" --quiet
  [ -z "$(find "$d" -name 'bad.h5*')" ] || die "an output file was left behind"
  # A graph that is not series-parallel ((a + b) + a) and graphs with two outputs or two inputs: refused,
  # naming the node, the outputs or the inputs, nothing written.
  expect_fail "nsp.onnx: node 3 '/Add_1' (Add): joins paths from tensor '/c1/Conv_output_0' that fork inside the block joined at node 2 '/Add' (Add) (the graph is not series-parallel)" \
    "$MIMIC" import onnx "$d/nsp.onnx" --out "$d/nsp.h5" --quiet
  expect_fail "two.onnx: the graph has 2 outputs ('y', 'z'); Mimic imports models with one output" \
    "$MIMIC" import onnx "$d/two.onnx" --out "$d/two.h5" --quiet
  expect_fail "twoin.onnx: the graph has 2 data inputs ('x', 'w'); Mimic imports models with one input" \
    "$MIMIC" import onnx "$d/twoin.onnx" --out "$d/twoin.h5" --quiet
  # A Reshape whose target, computed from Shape, mixes the batch into the rows: the node and the target named.
  expect_fail "mixbatch.onnx: node [0-9]* '/Reshape' (Reshape): reshape to \[2\*N, -1\] does not keep the batch as the first dimension" \
    "$MIMIC" import onnx "$d/mixbatch.onnx" --out "$d/mixbatch.h5" --quiet
  # A Slice of data that is not x[:, :, ::2, ::2] before a channel Pad, and an Erf outside exact GELU.
  expect_fail "oddslice.onnx: node [0-9]* '/Slice' (Slice): Slice is supported only on shape values .* and as x\[:, :, ::2, ::2\] followed by a Pad of zero channels" \
    "$MIMIC" import onnx "$d/oddslice.onnx" --out "$d/oddslice.h5" --quiet
  expect_fail "erf.onnx: node [0-9]* '/Erf' (Erf): Erf is supported only inside exact GELU" \
    "$MIMIC" import onnx "$d/erf.onnx" --out "$d/erf.h5" --quiet
  # Layer norms over C, H and W (opset 17) and over W alone (opset 13), naming the node and the axes, and
  # channels-last values flattened into the graph's output (no Gemm to reorder): refused.
  expect_fail "ln_chw.onnx: node [0-9]* '/ln/LayerNormalization' (LayerNormalization): normalises from axis 1 of \[N, 4, 8, 8\] to the last; supported are the channels alone" \
    "$MIMIC" import onnx "$d/ln_chw.onnx" --out "$d/ln_chw.h5" --quiet
  expect_fail "ln_w.onnx: node [0-9]* .*: normalises over axis 3 of \[N, 4, 8, 8\]; supported are the channels alone" \
    "$MIMIC" import onnx "$d/ln_w.onnx" --out "$d/ln_w.h5" --quiet
  expect_fail "ln_flat.onnx: tensor 'y': holds channels-last values flattened in H, W, C order ('y'); a Gemm or MatMul must read them next" \
    "$MIMIC" import onnx "$d/ln_flat.onnx" --out "$d/ln_flat.h5" --quiet
  [ -z "$(find "$d" -name 'nsp.h5*' -o -name 'two.h5*' -o -name 'twoin.h5*' -o -name 'mixbatch.h5*' -o -name 'oddslice.h5*' -o -name 'erf.h5*' -o -name 'ln_*.h5*')" ] ||
    die "an output file was left behind"
  # Supported operators with unsupported settings: one line naming the node and the problem.
  expect_fail "pool32.onnx: node 1 .*(MaxPool): dilations are not supported" \
    "$MIMIC" import onnx "$d/pool32.onnx" --out "$d/pool32.h5" --quiet
  [ -z "$(find "$d" -name 'pool32.h5*')" ] || die "an output file was left behind"
  # ensemble add with it: nothing imported, no manifest.
  mkdir -p "$d/ens"
  expect_fail "unsupported operators" "$MIMIC" ensemble add --manifest "$d/ens/manifest.h5" "$d/mlp.onnx" "$d/bad.onnx" --quiet
  [ -z "$(ls -A "$d/ens")" ] || die "ensemble add left files behind: $(ls "$d/ens")"
  ;;
export)
  # A conv student with dropout trained by `mimic train` -> ONNX (dropout left out, Flatten before the
  # dense) -> onnxruntime agrees with Mimic; the exported graph imports back to the same spec minus dropout.
  m2 train --data "$d/data.h5" --arch conv:4x3s2p1,relu,pool:2,dropout:0.2,dense:4 --epochs 1 --batch 32 --out "$d/conv.h5"
  m export onnx "$d/conv.h5" --out "$d/conv.onnx"
  logits_of "$d/conv.h5" "$d/logits_conv.h5"
  py onnx_check.py ort "$d/conv.onnx" "$d/data.h5" "$d/logits_conv.h5" 1e-4 || die "conv student: onnxruntime differs"
  m import onnx "$d/conv.onnx" --out "$d/conv_back.h5"
  "$MIMIC" info "$d/conv_back.h5" | grep -q '"conv:4x3s2p1,relu,pool:2,flatten,dense:4"' || die "round trip spec"
  expect_fail "conv.onnx: exists" "$MIMIC" export onnx "$d/conv.h5" --out "$d/conv.onnx" --quiet
  ;;
ops)
  # A student with every pooling form, activation and batch normalisation, trained on 2 ranks, exports at
  # opset 13 (MaxPool and AveragePool with pads and count_include_pad, GlobalAveragePool, Clip, Sigmoid·Mul,
  # HardSigmoid·Mul, HardSigmoid, BatchNormalization with the running statistics); onnxruntime agrees with
  # Mimic; the graph imports back to the same spec, except for the bn after a conv or dense, folded into it.
  arch=conv:4x3,bn,relu6,pool:3s2p1,bn,avgpool:3s1p1,conv:4x3,silu,avgpool:2p1e,hardswish,gap,dense:8,bn,hardsigmoid,dense:4
  m2 train --data "$d/data.h5" --arch "$arch" --epochs 1 --batch 32 --out "$d/ops.h5"
  m export onnx "$d/ops.h5" --out "$d/ops.onnx"
  logits_of "$d/ops.h5" "$d/logits_ops.h5"
  py onnx_check.py ort "$d/ops.onnx" "$d/data.h5" "$d/logits_ops.h5" 1e-4 || die "ops student: onnxruntime differs"
  m import onnx "$d/ops.onnx" --out "$d/ops_back.h5"
  back=conv:4x3p1,relu6,pool:3s2p1,bn,avgpool:3s1p1,conv:4x3p1,silu,avgpool:2p1e,hardswish,gap,flatten,dense:8,hardsigmoid,dense:4
  "$MIMIC" info "$d/ops_back.h5" | grep -q "\"$back\"" || die "ops round trip spec"
  logits_of "$d/ops_back.h5" "$d/logits_ops_back.h5"
  py onnx_check.py ort "$d/ops.onnx" "$d/data.h5" "$d/logits_ops_back.h5" 1e-4 || die "ops round trip logits"
  ;;
fold)
  # A teacher with bn after conv and dense layers, first and after a pool, trained on 2 ranks: label, eval
  # and export run it with each bn after a conv or dense folded into that layer. Mimic's label logits equal
  # the unfolded model's in inference mode (PyTorch, float64, every bn with its running statistics) and
  # give mimic eval's correct count; the export keeps only the two bn that follow no conv or dense, and
  # onnxruntime gives the same logits.
  arch=bn,conv:6x3,bn,relu,pool:2,bn,conv:8x3s2p1,bn,relu,dense:16,bn,relu,dense:4
  m2 train --data "$d/data.h5" --arch "$arch" --epochs 3 --batch 32 --out "$d/bn.h5"
  m export onnx "$d/bn.h5" --out "$d/bn.onnx"
  py onnx_check.py bn_nodes "$d/bn.onnx" 2 || die "bn.onnx: the bn after a conv or dense are not folded"
  logits_of "$d/bn.h5" "$d/logits_bn.h5"
  correct=$("$MIMIC" eval --model "$d/bn.h5" --data "$d/data.h5" | awk '/^  accuracy /{print $3}' | tr -d '(')
  [ -n "$correct" ] || die "no accuracy from mimic eval"
  py onnx_check.py unfolded "$d/bn.h5" "$d/data.h5" "$d/logits_bn.h5" 1e-5 "$correct" ||
    die "bn teacher: folded logits differ from the unfolded model's"
  py onnx_check.py ort "$d/bn.onnx" "$d/data.h5" "$d/logits_bn.h5" 1e-5 || die "bn teacher: onnxruntime differs"
  ;;
grouped)
  # A depthwise-separable student (dwconv stride 1 and 2, grouped 1x1 conv, bn, relu6) trained on 2 ranks
  # exports Conv with group at opset 13; onnxruntime agrees with Mimic; it imports back as conv..gG (bn
  # folded into the conv before it).
  arch=conv:8x3,bn,relu6,dwconv:3,bn,relu6,conv:8x1g2,dwconv:3s2,relu6,conv:6x1,gap,dense:4
  m2 train --data "$d/data.h5" --arch "$arch" --epochs 1 --batch 32 --out "$d/dws_s.h5"
  m export onnx "$d/dws_s.h5" --out "$d/dws_s.onnx"
  logits_of "$d/dws_s.h5" "$d/logits_dws_s.h5"
  py onnx_check.py ort "$d/dws_s.onnx" "$d/data.h5" "$d/logits_dws_s.h5" 1e-4 || die "grouped student: onnxruntime differs"
  m import onnx "$d/dws_s.onnx" --out "$d/dws_back.h5"
  back=conv:8x3p1,relu6,conv:8x3p1g8,relu6,conv:8x1p0g2,conv:8x3s2p1g8,relu6,conv:6x1p0,gap,flatten,dense:4
  "$MIMIC" info "$d/dws_back.h5" | grep -q "\"$back\"" || die "grouped round trip spec"
  logits_of "$d/dws_back.h5" "$d/logits_dws_back.h5"
  py onnx_check.py ort "$d/dws_s.onnx" "$d/data.h5" "$d/logits_dws_back.h5" 1e-4 || die "grouped round trip logits"
  ;;
blocks)
  # A residual student (identity and projection shortcuts, a 3-way sum on flat features, a concatenation, SE
  # gates from a conv and from a dense branch, an inverted residual with a depthwise conv, dropout and bn in
  # branches) exports as Add / Sum / Concat / Mul nodes (the bn folded into the conv before it);
  # onnxruntime gives Mimic's logits.
  arch="conv:4x3,relu,res(conv:8x1,bn,relu6,dwconv:3,relu,dropout:0.2,conv:4x1),relu,res(conv:6x3s2,relu,conv:6x3|conv:6x1s2,bn),relu"
  arch+=",cat(id|conv:2x1,relu),gate(pool:4,conv:2x1,relu,conv:8x1,sigmoid),gate(pool:4,flatten,dense:8,sigmoid)"
  arch+=",dense:16,tanh,res(dense:16|id|dense:16,tanh),dense:4"
  m2 train --data "$d/data.h5" --arch "$arch" --epochs 2 --batch 32 --out "$d/res.h5"
  m export onnx "$d/res.h5" --out "$d/res.onnx"
  logits_of "$d/res.h5" "$d/logits_res.h5"
  py onnx_check.py ort "$d/res.onnx" "$d/data.h5" "$d/logits_res.h5" 1e-4 || die "residual student: onnxruntime differs"
  ops=$("$MIMIC_PYTHON" -c "import onnx, collections; g = onnx.load('$d/res.onnx').graph
print(' '.join(f'{k}:{v}' for k, v in sorted(collections.Counter(n.op_type for n in g.node).items())))")
  echo "exported operators: $ops"
  for want in Add:2 Concat:1 Mul:2 Sum:1 Reshape:1; do
    [[ " $ops " == *" $want "* ]] || die "expected $want among the exported operators: $ops"
  done
  ;;
raw)
  # A conv model trained on the real Fashion-MNIST and exported with --raw-input takes the raw IDX test
  # rows (0-255 pixels, [N, 784]): onnxruntime gives Mimic's logits on test.h5 and `mimic eval`'s accuracy.
  fm=/usr/share/datasets/fashion-mnist
  m2 data import --out-dir "$d/fm" --val 5000
  m2 train --data "$d/fm/train.h5" --arch conv:4x3s2p1,relu,pool:2,dense:10 --epochs 1 --batch 64 --out "$d/fm.h5"
  m export onnx "$d/fm.h5" --out "$d/fm_raw.onnx" --raw-input "$d/fm/train.h5"
  m ensemble add --manifest "$d/fm.manifest.h5" "$d/fm.h5"
  m label --ensemble "$d/fm.manifest.h5" --transfer "$d/fm/test.h5" --out "$d/logits_fm.h5"
  correct=$("$MIMIC" eval --model "$d/fm.h5" --data "$d/fm/test.h5" | awk '/^  accuracy /{print $3}' | tr -d '(')
  [ -n "$correct" ] || die "no accuracy from mimic eval"
  py onnx_check.py raw "$d/fm_raw.onnx" "$fm/t10k-images-idx3-ubyte.gz" "$fm/t10k-labels-idx1-ubyte.gz" \
    "$d/logits_fm.h5" 1e-4 "$correct" || die "raw-input model: onnxruntime differs"
  expect_fail "raw-input: $d/data.h5: samples are" \
    "$MIMIC" export onnx "$d/fm.h5" --out "$d/x.onnx" --raw-input "$d/data.h5" --quiet
  [ ! -e "$d/x.onnx" ] || die "x.onnx written for a bad --raw-input"
  ;;
input_norm)
  # Teachers trained on torchvision-normalised inputs ((pixel / 255 - mean) / std): with --norm-from the
  # import puts a bn first that maps the stored rows of that data set to those inputs, and the logits are
  # PyTorch's on the raw uint8 images (a CNN on NHWC images imported with --norm global, per-channel and none, through
  # `ensemble add` too; an MLP on flat rows imported per feature). A per-feature normalisation for an image
  # model, options without --norm-from, a wrong count and a zero std are refused, and nothing is written.
  py input_norm_models.py "$d/n" >/dev/null || die "input_norm_models.py failed"
  cifar=(--input-mean 0.4914,0.4822,0.4465 --input-std 0.2470,0.2435,0.2616)
  # label_train DIR MODEL: MODEL's logits over DIR/train.h5 into DIR/logits.h5.
  label_train() {
    m ensemble add --manifest "$1/manifest.h5" "$2"
    m label --ensemble "$1/manifest.h5" --transfer "$1/train.h5" --out "$1/logits.h5"
  }
  imp() { m data import --train-images "$d/n/$1.npy" --train-labels "$d/n/$2.npy" --test-images "$d/n/$1.npy" \
    --test-labels "$d/n/$2.npy" --val 0 "${@:3}"; }
  for norm in global per-channel none; do
    imp x y --layout nhwc --norm $norm --out-dir "$d/$norm"
    m import onnx "$d/n/cnn.onnx" --out "$d/$norm/cnn.h5" --norm-from "$d/$norm/train.h5" "${cifar[@]}"
    label_train "$d/$norm" "$d/$norm/cnn.h5"
    py onnx_check.py ref "$d/n/ref.h5" cnn "$d/$norm/logits.h5" 1e-4 || die "cnn (--norm $norm): logits differ from PyTorch's"
  done
  [[ "$("$MIMIC_PYTHON" -c "import h5py; print(h5py.File('$d/global/cnn.h5', 'r').attrs['spec'])")" == *"'bn,conv:16x3p1,"* ]] ||
    die "cnn.h5: no bn first"
  mkdir -p "$d/ens" && cp "$d/n/cnn.onnx" "$d/ens/"
  m ensemble add --manifest "$d/ens/manifest.h5" "$d/ens/cnn.onnx" --norm-from "$d/global/train.h5" "${cifar[@]}"
  m label --ensemble "$d/ens/manifest.h5" --transfer "$d/global/train.h5" --out "$d/ens/logits.h5"
  py onnx_check.py ref "$d/n/ref.h5" cnn "$d/ens/logits.h5" 1e-4 || die "ensemble add --norm-from: logits differ"
  imp flat fy --norm per-feature --out-dir "$d/flat"
  m import onnx "$d/n/mlp.onnx" --out "$d/flat/mlp.h5" --norm-from "$d/flat/train.h5" --input-mean 0.2860 --input-std 0.3530
  label_train "$d/flat" "$d/flat/mlp.h5"
  py onnx_check.py ref "$d/n/ref.h5" mlp "$d/flat/logits.h5" 1e-4 || die "mlp (per-feature data): logits differ"
  imp x y --layout nhwc --norm per-feature --out-dir "$d/pf"
  expect_fail "--norm-from: $d/pf/train.h5: normalised per feature .*; a per-channel input normalisation needs data imported with --norm global, per-channel or none" \
    "$MIMIC" import onnx "$d/n/cnn.onnx" --out "$d/bad.h5" --norm-from "$d/pf/train.h5" "${cifar[@]}"
  expect_fail "--input-mean, --input-std: need --norm-from DATA.h5" "$MIMIC" import onnx "$d/n/cnn.onnx" --out "$d/bad.h5" "${cifar[@]}"
  expect_fail "--input-mean: 2 values for a model of 3 channels" \
    "$MIMIC" import onnx "$d/n/cnn.onnx" --out "$d/bad.h5" --norm-from "$d/global/train.h5" --input-mean 0.5,0.5
  expect_fail "--input-mean: '0.5,' is not a comma-separated list of numbers" \
    "$MIMIC" import onnx "$d/n/cnn.onnx" --out "$d/bad.h5" --norm-from "$d/global/train.h5" --input-mean 0.5,
  expect_fail "--input-std: '0' in '1,0,1' is not a finite positive number" \
    "$MIMIC" import onnx "$d/n/cnn.onnx" --out "$d/bad.h5" --norm-from "$d/global/train.h5" --input-std 1,0,1
  expect_fail "--input-mean, --input-std: mean 0 and std 1e-300 give channel 0 a scale or shift beyond float range" \
    "$MIMIC" import onnx "$d/n/cnn.onnx" --out "$d/bad.h5" --norm-from "$d/global/train.h5" --input-std 1e-300
  expect_fail "--norm-from: $d/global/train.h5: samples have 3072 features but .*mlp.onnx takes 1x1x784 = 784" \
    "$MIMIC" import onnx "$d/n/mlp.onnx" --out "$d/bad.h5" --norm-from "$d/global/train.h5"
  expect_fail "--norm-from: applies to the .onnx members, and none was given" \
    "$MIMIC" ensemble add --manifest "$d/bad.h5" "$d/global/cnn.h5" --norm-from "$d/global/train.h5"
  [ -z "$(find "$d" -maxdepth 1 -name 'bad.h5*')" ] || die "a refused import left a file"
  ;;
pipeline)
  # Done when: a PyTorch-trained ensemble is imported (ensemble add takes the .onnx files), labelled,
  # distilled into a bottleneck student with the wide layer split over 2 model shards, and exported.
  mkdir -p "$d/ens"
  m2 ensemble add --manifest "$d/ens/manifest.h5" "$d/mlp.onnx" "$d/cnn.onnx" "$d/mm.onnx"
  for t in mlp cnn mm; do [ -f "$d/ens/$t.h5" ] || die "ens/$t.h5 not imported"; done
  m2 label --ensemble "$d/ens/manifest.h5" --transfer "$d/data.h5" --out "$d/logits.h5"
  py onnx_check.py ref "$d/ref.h5" mean "$d/logits.h5" 1e-4 || die "ensemble logits differ from PyTorch's mean"
  m2 distill --transfer "$d/data.h5" --logits "$d/logits.h5" --arch bottleneck:8,dense:64,relu,dense:4 \
    --model-shards 2 --epochs 1 --batch 32 --out "$d/student.h5"
  m2 export onnx "$d/student.h5" --out "$d/student.onnx"
  logits_of "$d/student.h5" "$d/logits_student.h5"
  py onnx_check.py ort "$d/student.onnx" "$d/data.h5" "$d/logits_student.h5" 1e-4 || die "student: onnxruntime differs"
  ;;
*) die "unknown case $case" ;;
esac
echo "onnx.$case: passed"
