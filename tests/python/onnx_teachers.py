# Builds small PyTorch teachers and exports them with torch.onnx.export for Mimic's ONNX tests: an MLP with
# BatchNorm1d (opset 11), a CNN with BatchNorm2d kept in the graph (opset 13), a Reshape + MatMul + Add net,
# a CNN with every pooling form and ReLU6, an MLP with SiLU, Hardswish and Hardsigmoid (opsets 13 and 14),
# a depthwise-separable CNN (depthwise stride 2, grouped 1x1; opset 13), a CNN ending in LogSoftmax, Pad + Conv,
# exact GELU in two orders other than PyTorch's, and models Mimic refuses (unsupported operators or settings, a
# graph that is not series-parallel, two outputs or two inputs, a Reshape whose computed target mixes the batch
# into the rows, a Slice that is no option-A shortcut, an Erf outside GELU);
# writes a dataset file and PyTorch's logits for comparison (for soft: the values before the LogSoftmax).
# usage: onnx_teachers.py OUTDIR   (writes data.h5, ref.h5, mlp/cnn/mm/pools/acts/acts14/bnrelu/dws/soft/padconv/
#                                   geluorders.onnx
#                                   and bad/pool32/nsp/two/twoin/mixbatch/oddslice/erf/ln_*.onnx)
import os
import sys
import warnings

import h5py
import numpy as np
import torch
from torch import nn

warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(7)
C, H, W, K, N = 1, 8, 8, 4, 192


def randomize_bn(bn):
    """Non-trivial running statistics and affine parameters (as after real training)."""
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)


class MatMulNet(nn.Module):
    """x.reshape(-1, D) @ W + b (exported as Reshape, MatMul, Add), tanh, then a Linear."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(C * H * W, 24) * 0.2)
        self.b = nn.Parameter(torch.randn(24) * 0.1)
        self.out = nn.Linear(24, K)

    def forward(self, x):
        return self.out(torch.tanh(x.reshape(-1, C * H * W) @ self.W + self.b))


mlp = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2),
                    nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, K))
cnn = nn.Sequential(nn.Conv2d(C, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(6, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Sigmoid(), nn.Flatten(), nn.Linear(32, K))
mm = MatMulNet()
bad = nn.Sequential(nn.Conv2d(C, 4, 3), nn.GroupNorm(2, 4), nn.Flatten(), nn.Linear(4 * (H - 2) * (W - 2), K),
                    nn.Softmax(dim=1))
# Supported operators with settings Mimic cannot represent: dilated pooling. BatchNorm after an activation
# (not foldable) imports as bn.
pool32 = nn.Sequential(nn.Conv2d(C, 4, 3), nn.MaxPool2d(2, stride=2, dilation=2), nn.Flatten(), nn.Linear(16, K))
bnrelu = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, K))
for m in (mlp, cnn, bnrelu):
    for layer in m:
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            randomize_bn(layer)

# Created after the models above so that their random weights stay as they were.
# AvgPool2d counting the padding exports as Pad + AveragePool; without, as AveragePool with pads.
pools = nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(3, 1, 1),
                      nn.AvgPool2d(2, 2, 1, count_include_pad=False), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU6(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, K))
# SiLU exports as Sigmoid + Mul; Hardswish as HardSigmoid + Mul at opset 13 and as HardSwish at opset 14.
acts = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 16), nn.SiLU(), nn.Linear(16, 16), nn.Hardswish(),
                     nn.Linear(16, 16), nn.Hardsigmoid(), nn.Linear(16, K))
with torch.no_grad():
    for layer in acts:
        if isinstance(layer, nn.Linear):
            layer.weight.mul_(4.0)  # pre-activations on both sides of every kink (-3, 0, 3)
# Depthwise-separable: Conv with group = 8 (depthwise, stride 2) and group = 2, each followed by a BN.
dws = nn.Sequential(nn.Conv2d(C, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
                    nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
                    nn.Conv2d(8, 6, 1, groups=2), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(6, K))
for layer in dws:
    if isinstance(layer, nn.BatchNorm2d):
        randomize_bn(layer)



class NotSeriesParallel(nn.Module):
    """a = c1(x), b = c2(x); (a + b) + a: the paths from x join at the first Add, but a also reaches the
    second one (no series-parallel decomposition)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(C, 4, 3, padding=1), nn.Conv2d(C, 4, 3, padding=1)
        self.fc = nn.Linear(4 * H * W, K)

    def forward(self, x):
        a = self.c1(x)
        return self.fc(torch.flatten(a + self.c2(x) + a, 1))


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.f, self.g = nn.Linear(C * H * W, K), nn.Linear(C * H * W, 2)

    def forward(self, x):
        return self.f(torch.flatten(x, 1)), self.g(torch.flatten(x, 1))


# A classifier ending in LogSoftmax: Mimic drops it (ref.h5 "soft" holds the values before it).
soft_body = nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, K))
soft = nn.Sequential(soft_body, nn.LogSoftmax(dim=1))
nsp, two = NotSeriesParallel(), TwoOutputs()
# Pad + Conv (as other exporters write padding; PyTorch's own ZeroPad2d exports as a general slicing graph):
# written with onnx.helper below, its logits from these modules.
padconv = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(C, 4, 3), nn.ReLU(), nn.ZeroPad2d(1), nn.Conv2d(4, 4, 3, padding=1),
                        nn.Flatten(), nn.Linear(4 * 10 * 10, K))


def padconv_onnx(path):
    """padconv as Pad, Conv, Relu, Pad, Conv (pads 1), Flatten, Gemm at opset 13."""
    import onnx
    from onnx import helper, numpy_helper

    t = lambda name, v: numpy_helper.from_array(v.detach().numpy() if torch.is_tensor(v) else v, name)
    init = [t("pads1", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)), t("pads2", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
            t("W1", padconv[1].weight), t("B1", padconv[1].bias), t("W2", padconv[4].weight), t("B2", padconv[4].bias),
            t("W3", padconv[6].weight), t("B3", padconv[6].bias)]
    nodes = [helper.make_node("Pad", ["x", "pads1"], ["p1"]), helper.make_node("Conv", ["p1", "W1", "B1"], ["c1"]),
             helper.make_node("Relu", ["c1"], ["r1"]), helper.make_node("Pad", ["r1", "pads2"], ["p2"]),
             helper.make_node("Conv", ["p2", "W2", "B2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c2"], ["f"]), helper.make_node("Gemm", ["f", "W3", "B3"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "padconv", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", C, H, W])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", K])], init)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)

rng = np.random.default_rng(3)
X = rng.standard_normal((N, C * H * W)).astype(np.float32)
xt = torch.from_numpy(X).reshape(N, C, H, W)
logits = {}
for name, model, opset in (("mlp", mlp, 11), ("cnn", cnn, 13), ("mm", mm, 13), ("bad", bad, 17),
                            ("pool32", pool32, 13), ("bnrelu", bnrelu, 13), ("pools", pools, 13),
                            ("acts", acts, 13), ("acts14", acts, 14), ("dws", dws, 13), ("soft", soft, 13),
                            ("nsp", nsp, 13), ("two", two, 13)):
    model.eval()
    with torch.no_grad():
        logits[name] = (soft_body if model is soft else model)(xt)
    outputs = ["y", "z"] if model is two else ["y"]
    # PRESERVE (the model is in eval mode) keeps BatchNormalization nodes in the graph instead of fusing them.
    torch.onnx.export(model, xt[:2], os.path.join(out, name + ".onnx"), opset_version=opset,
                      input_names=["x"], output_names=outputs, dynamic_axes={k: {0: "batch"} for k in ["x"] + outputs},
                      training=torch.onnx.TrainingMode.PRESERVE)
    if model is two:
        del logits[name]
    else:
        logits[name] = logits[name].numpy().astype(np.float32)



class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Linear(C * H * W, K)

    def forward(self, x, w):
        return self.f(torch.flatten(x + w, 1))


torch.onnx.export(TwoInputs(), (xt[:2], xt[:2]), os.path.join(out, "twoin.onnx"), opset_version=13,
                  input_names=["x", "w"], output_names=["y"])


class MixBatch(nn.Module):
    """y.view(y.size(0) * 2, -1): a Reshape whose computed target mixes the batch into the rows."""

    def __init__(self):
        super().__init__()
        self.c, self.f = nn.Conv2d(C, 2, 3, padding=1), nn.Linear(H * W, K)

    def forward(self, x):
        y = self.c(x)
        return self.f(y.view(y.size(0) * 2, -1))


torch.onnx.export(MixBatch(), xt[:2], os.path.join(out, "mixbatch.onnx"), opset_version=13, input_names=["x"],
                  output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


class OddSlice(nn.Module):
    """F.pad(y[:, :, 1::2, ::2], ...): not the option-A shortcut (it starts at row 1)."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(C, 4, 3, padding=1)

    def forward(self, x):
        return torch.flatten(nn.functional.pad(self.c(x)[:, :, 1::2, ::2], (0, 0, 0, 0, 2, 2), "constant", 0), 1)


class LoneErf(nn.Module):
    """erf(y) outside the GELU pattern."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(C, 4, 3, padding=1)

    def forward(self, x):
        return torch.flatten(torch.erf(self.c(x)), 1)


class LayerNormOf(nn.Module):
    """Layer norms Mimic cannot represent: over C, H and W (mode "chw"), over W alone (the last axis of
    [N, C, H, W], "w"), and channels-last values flattened without the Transpose back ("flat")."""

    def __init__(self, mode):
        super().__init__()
        self.mode, self.c = mode, nn.Conv2d(C, 4, 3, padding=1)
        self.ln = nn.LayerNorm({"chw": [4, H, W], "w": W, "flat": 4}[mode])

    def forward(self, x):
        y = self.c(x)
        return torch.flatten(self.ln(y.permute(0, 2, 3, 1) if self.mode == "flat" else y), 1)


for name, model in (("oddslice", OddSlice()), ("erf", LoneErf())):
    torch.onnx.export(model, xt[:2], os.path.join(out, name + ".onnx"), opset_version=13, input_names=["x"],
                      output_names=["y"])
for mode, opset in (("chw", 17), ("w", 13), ("flat", 13)):
    torch.onnx.export(LayerNormOf(mode), xt[:2], os.path.join(out, f"ln_{mode}.onnx"), opset_version=opset,
                      input_names=["x"], output_names=["y"])
padconv.eval()
with torch.no_grad():
    logits["padconv"] = padconv(xt).numpy().astype(np.float32)
padconv_onnx(os.path.join(out, "padconv.onnx"))


# Exact GELU written in two other orders than PyTorch's: Mul(x, 1/sqrt2) and (x * 0.5) * (1 + erf), then
# Div(x, sqrt2) and x * ((1 + erf) * 0.5); onnx.helper below, its logits from these modules.
geluorders = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 8), nn.GELU(), nn.Linear(8, 8), nn.GELU(),
                           nn.Linear(8, K)).eval()
with torch.no_grad():
    logits["geluorders"] = geluorders(xt).numpy().astype(np.float32)


def geluorders_onnx(path):
    import onnx
    from onnx import helper, numpy_helper

    t = lambda name, v: numpy_helper.from_array(v.detach().numpy() if torch.is_tensor(v) else v, name)
    init = [t("r", np.array(2 ** -0.5, np.float32)), t("s", np.array(2 ** 0.5, np.float32)),
            t("one", np.array(1, np.float32)), t("half", np.array(0.5, np.float32))]
    for i in (1, 3, 5):
        init += [t(f"W{i}", geluorders[i].weight), t(f"B{i}", geluorders[i].bias)]
    mk = helper.make_node
    nodes = [mk("Flatten", ["x"], ["f"]), mk("Gemm", ["f", "W1", "B1"], ["a"], transB=1),
             mk("Mul", ["a", "r"], ["a1"]), mk("Erf", ["a1"], ["a2"]), mk("Add", ["one", "a2"], ["a3"]),
             mk("Mul", ["half", "a"], ["a4"]), mk("Mul", ["a4", "a3"], ["g1"]),
             mk("Gemm", ["g1", "W3", "B3"], ["b"], transB=1),
             mk("Div", ["b", "s"], ["b1"]), mk("Erf", ["b1"], ["b2"]), mk("Add", ["b2", "one"], ["b3"]),
             mk("Mul", ["b3", "half"], ["b4"]), mk("Mul", ["b", "b4"], ["g2"]),
             mk("Gemm", ["g2", "W5", "B5"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "geluorders", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", C, H, W])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", K])], init)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


geluorders_onnx(os.path.join(out, "geluorders.onnx"))

y = np.argmax(logits["mlp"] + logits["cnn"] + logits["mm"], axis=1).astype(np.int32)
with h5py.File(os.path.join(out, "data.h5"), "w") as f:
    f.create_dataset("X", data=X)
    f.create_dataset("y", data=y)
    f.attrs["mimic_format"] = np.bytes_("mimic-dataset-1")
    f.attrs["shape"] = np.array([C, H, W], dtype=np.int64)
    f.attrs["num_classes"] = np.int64(K)
    f.attrs["source"] = np.bytes_("onnx_teachers.py")
    f.attrs["norm"] = np.bytes_("none")
    f.attrs["norm_scale"] = np.float64(1.0)
with h5py.File(os.path.join(out, "ref.h5"), "w") as f:
    for k, v in logits.items():
        f.create_dataset(k, data=v)
    f.create_dataset("mean", data=(logits["mlp"] + logits["cnn"] + logits["mm"]) / 3)
print("onnx_teachers: wrote", out)
