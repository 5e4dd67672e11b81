#!/usr/bin/python3
# Golden data for the nn core: PyTorch (float64, CPU) forward logits, losses and every parameter gradient of
# a small CNN, a strided CNN, a bottleneck MLP, a CNN with every pooling form, an MLP with the bounded and
# gated activations, a depthwise-separable CNN with a grouped conv and block nets (residual, concatenation,
# SE gates), with weights in Mimic's layout, written with h5py.
"""Usage: nn_golden.py OUT.h5

For each model M the file holds root attributes M.spec and M.input_shape (c, h, w), and the datasets
  M/x [B, D], M/labels [B] int32, M/teacher [B, C], M/logits [B, C],
  M/params/<mimic tensor name>            weights in Mimic's layout (dense W [in, out], conv W [C/G, K, K, F]),
  M/<loss>/loss [1] and M/<loss>/grads/<mimic tensor name>   for loss in ce, l2, kd (T=3, alpha=0.5),
and for models with batch normalisation M/state/<mimic state tensor name> (the running statistics before
the forward pass) and, with the root attribute M.train = 1 (batch statistics), M/state_after/<name>.
Fails (exit 1) when torch, numpy or h5py cannot be imported: the C++ golden test depends on this file.
"""
import sys

try:
    import h5py
    import numpy as np
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
except ImportError as e:  # a missing reference must fail the fixture, never skip it
    sys.stderr.write(f"nn_golden.py: cannot import {e.name}: install python3-torch python3-h5py python3-numpy\n")
    sys.exit(1)

KD_T, KD_ALPHA = 3.0, 0.5


def conv(c, f, k, s=1, p=None):
    return tnn.Conv2d(c, f, k, stride=s, padding=k // 2 if p is None else p)


class Block(tnn.Module):
    """A Mimic block: branches (lists of modules, one per token; [] is the identity) joined by res, cat or
    gate."""

    def __init__(self, kind, *branches):
        super().__init__()
        self.kind, self.layer_lists = kind, [list(b) for b in branches]
        if kind == "res" and len(branches) == 1:
            self.layer_lists.append([])
        self.branches = tnn.ModuleList(tnn.Sequential(*b) for b in self.layer_lists)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        if self.kind == "res":
            return sum(outs)
        if self.kind == "cat":
            return torch.cat(outs, dim=1)
        g = outs[0]
        return x * (g.reshape(x.shape[0], -1, 1, 1) if g.dim() == 2 and x.dim() == 4 else g)


def dense(i, o):
    return tnn.Sequential(tnn.Flatten(), tnn.Linear(i, o))


# name, spec, input shape, torch layers (one per spec token; None for tokens without a torch module)
MODELS = [
    ("cnn", "conv:4x3,relu,pool:2,conv:6x3,relu,pool:2,dense:16,relu,dense:5", (2, 12, 12),
     lambda: [conv(2, 4, 3), tnn.ReLU(), tnn.MaxPool2d(2), conv(4, 6, 3), tnn.ReLU(), tnn.MaxPool2d(2),
              tnn.Sequential(tnn.Flatten(), tnn.Linear(6 * 3 * 3, 16)), tnn.ReLU(), tnn.Linear(16, 5)]),
    ("cnn_strided", "conv:3x5s2p2,tanh,conv:4x3p0,sigmoid,pool:2,flatten,dense:4", (1, 11, 11),
     lambda: [conv(1, 3, 5, 2, 2), tnn.Tanh(), conv(3, 4, 3, 1, 0), tnn.Sigmoid(), tnn.MaxPool2d(2), tnn.Flatten(),
              tnn.Linear(4 * 2 * 2, 4)]),
    ("mlp", "bottleneck:6,dense:20,relu,dense:5", (1, 1, 30),
     lambda: [tnn.Linear(30, 6, bias=False), tnn.Linear(6, 20), tnn.ReLU(), tnn.Linear(20, 5)]),
    # Appended models draw their random numbers after the ones above, which therefore stay as they were.
    ("pools", "conv:4x3,relu,pool:3s2p1,avgpool:3s1p1,conv:4x3,avgpool:2s2p1e,pool:2s1,gap,dense:5", (2, 11, 11),
     lambda: [conv(2, 4, 3), tnn.ReLU(), tnn.MaxPool2d(3, 2, 1), tnn.AvgPool2d(3, 1, 1), conv(4, 4, 3),
              tnn.AvgPool2d(2, 2, 1, count_include_pad=False), tnn.MaxPool2d(2, 1), tnn.AdaptiveAvgPool2d(1),
              tnn.Sequential(tnn.Flatten(), tnn.Linear(4, 5))]),
    ("acts", "dense:12,relu6,dense:12,silu,dense:12,hardswish,dense:12,hardsigmoid,dense:5", (1, 1, 10),
     lambda: [tnn.Linear(10, 12), tnn.ReLU6(), tnn.Linear(12, 12), tnn.SiLU(), tnn.Linear(12, 12), tnn.Hardswish(),
              tnn.Linear(12, 12), tnn.Hardsigmoid(), tnn.Linear(12, 5)]),
    # Blocks: a residual net (identity and stride-2 projection shortcuts), dense concatenation, SE gates.
    ("resnet", "conv:4x3,relu,res(conv:4x3,relu,conv:4x3),relu,res(conv:6x3s2,relu,conv:6x3|conv:6x1s2),relu,"
     "pool:2,dense:5", (2, 8, 8),
     lambda: [conv(2, 4, 3), tnn.ReLU(), Block("res", [conv(4, 4, 3), tnn.ReLU(), conv(4, 4, 3)]), tnn.ReLU(),
              Block("res", [conv(4, 6, 3, 2), tnn.ReLU(), conv(6, 6, 3)], [conv(4, 6, 1, 2)]), tnn.ReLU(),
              tnn.MaxPool2d(2), dense(24, 5)]),
    ("densecat", "conv:4x3,relu,cat(|conv:3x3,relu),cat(id|conv:2x1,tanh|conv:2x3),pool:2,dense:5", (1, 6, 6),
     lambda: [conv(1, 4, 3), tnn.ReLU(), Block("cat", [], [conv(4, 3, 3), tnn.ReLU()]),
              Block("cat", [], [conv(7, 2, 1), tnn.Tanh()], [conv(7, 2, 3)]), tnn.MaxPool2d(2), dense(99, 5)]),
    ("se", "conv:6x3,relu,gate(pool:6,conv:3x1,relu,conv:6x1,sigmoid),"
     "res(conv:6x3,relu,conv:6x3,gate(pool:6,flatten,dense:2,relu,dense:6,sigmoid)),relu,dense:4", (1, 6, 6),
     lambda: [conv(1, 6, 3), tnn.ReLU(),
              Block("gate", [tnn.MaxPool2d(6), conv(6, 3, 1), tnn.ReLU(), conv(3, 6, 1), tnn.Sigmoid()]),
              Block("res", [conv(6, 6, 3), tnn.ReLU(), conv(6, 6, 3),
                            Block("gate", [tnn.MaxPool2d(6), tnn.Flatten(), tnn.Linear(6, 2), tnn.ReLU(),
                                           tnn.Linear(2, 6), tnn.Sigmoid()])]),
              tnn.ReLU(), dense(216, 4)]),
]
# Input scale per model (default 1): large enough for the activations' pre-activations to cross every kink.
X_SCALE = {"acts": 6.0}


def bn_net():
    return lambda: [conv(2, 4, 3), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.MaxPool2d(2),
                    tnn.Sequential(tnn.Flatten(), tnn.Linear(4 * 4 * 4, 8)), tnn.BatchNorm1d(8), tnn.ReLU(),
                    tnn.Linear(8, 5)]


# Batch normalisation in training mode (batch statistics; the running statistics after the forward pass are
# M/state_after) and in inference mode (running statistics), both from non-trivial running statistics.
BN_SPEC = "conv:4x3,bn,relu,pool:2,dense:8,bn,relu,dense:5"
MODELS += [("bn_train", BN_SPEC, (2, 8, 8), bn_net()), ("bn_eval", BN_SPEC, (2, 8, 8), bn_net())]
TRAIN_MODE = {"bn_train", "dws"}
# A depthwise-separable block (depthwise stride 2, bn in training mode, relu6, 1x1 conv) and a grouped conv.
MODELS += [("dws", "conv:6x3,dwconv:3s2,bn,relu6,conv:8x1,relu,conv:8x3g2,gap,dense:5", (3, 9, 9),
            lambda: [conv(3, 6, 3), tnn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6), tnn.BatchNorm2d(6),
                     tnn.ReLU6(), conv(6, 8, 1), tnn.ReLU(), tnn.Conv2d(8, 8, 3, padding=1, groups=2),
                     tnn.AdaptiveAvgPool2d(1), tnn.Sequential(tnn.Flatten(), tnn.Linear(8, 5))])]
# Max pooling in ceil mode (SqueezeNet's MaxPool2d(3, 2, ceil_mode=True)): 10 -> 5 (floor 4), 5 -> 3 (floor
# 2), and padded 3 -> 2 (floor 1).
MODELS += [("ceilpool", "conv:4x3,relu,pool:3s2c,conv:4x3,pool:2c,pool:3s3p1c,dense:5", (2, 10, 10),
            lambda: [conv(2, 4, 3), tnn.ReLU(), tnn.MaxPool2d(3, 2, ceil_mode=True), conv(4, 4, 3),
                     tnn.MaxPool2d(2, ceil_mode=True), tnn.MaxPool2d(3, 3, 1, ceil_mode=True),
                     tnn.Sequential(tnn.Flatten(), tnn.Linear(16, 5))])]
# LeakyReLU (default and given slope), ELU (given alpha) and exact GELU, inputs across their kinks.
MODELS += [("acts2", "dense:12,leakyrelu,dense:12,leakyrelu:0.2,dense:12,elu:0.7,dense:12,gelu,dense:5", (1, 1, 10),
            lambda: [tnn.Linear(10, 12), tnn.LeakyReLU(), tnn.Linear(12, 12), tnn.LeakyReLU(0.2),
                     tnn.Linear(12, 12), tnn.ELU(0.7), tnn.Linear(12, 12), tnn.GELU(), tnn.Linear(12, 5)])]
X_SCALE["acts2"] = 4.0
# Softplus (beta 1, threshold 20): straight on inputs of scale 12, so that some are past the threshold.
MODELS += [("softplus", "softplus,dense:12,softplus,dense:5", (1, 1, 10),
            lambda: [tnn.Softplus(), tnn.Linear(10, 12), tnn.Softplus(), tnn.Linear(12, 5)])]
X_SCALE["softplus"] = 12.0


class LayerNorm2d(tnn.LayerNorm):
    """torchvision ConvNeXt's LayerNorm2d: LayerNorm over the channels of each position of [N, C, H, W]."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


def layer_norms(*mods):
    for m in mods:  # scale and shift away from 1 and 0, so that a swapped or dropped one shows
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    return list(mods)


# ln over the channels of each position (epsilon 1e-6 as ConvNeXt, and the default) and over flat features.
MODELS += [("ln", "conv:6x3,ln:1e-6,gelu,conv:4x1,ln,relu,gap,dense:8,ln,dense:5", (3, 6, 6),
            lambda: [conv(3, 6, 3), *layer_norms(LayerNorm2d(6, eps=1e-6)), tnn.GELU(), conv(6, 4, 1),
                     *layer_norms(LayerNorm2d(4)), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1), dense(4, 8),
                     *layer_norms(tnn.LayerNorm(8)), tnn.Linear(8, 5)])]


def mimic_params(layers, prefix="layer"):
    """Mimic tensor name -> (torch parameter, function mapping a torch tensor to Mimic's layout); a block's
    branch j layer k is named <prefix><i>.<kind>.b<j>.<k>.<kind>.<W|b>."""
    out = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, Block):
            for j, branch in enumerate(layer.layer_lists):
                out.update(mimic_params(branch, f"{prefix}{i}.{layer.kind}.b{j}."))
            continue
        mods = [m for m in (layer if isinstance(layer, tnn.Sequential) else [layer])]
        for m in mods:
            if isinstance(m, tnn.Conv2d):
                out[f"{prefix}{i}.conv.W"] = (m.weight, lambda t: t.permute(1, 2, 3, 0))
                out[f"{prefix}{i}.conv.b"] = (m.bias, lambda t: t)
            elif isinstance(m, (tnn.BatchNorm1d, tnn.BatchNorm2d)):
                out[f"{prefix}{i}.bn.W"] = (m.weight, lambda t: t)
                out[f"{prefix}{i}.bn.b"] = (m.bias, lambda t: t)
            elif isinstance(m, tnn.LayerNorm):
                out[f"{prefix}{i}.ln.W"] = (m.weight, lambda t: t)
                out[f"{prefix}{i}.ln.b"] = (m.bias, lambda t: t)
            elif isinstance(m, tnn.Linear):
                kind = "dense" if m.bias is not None else "bottleneck"
                out[f"{prefix}{i}.{kind}.W"] = (m.weight, lambda t: t.t())
                if m.bias is not None:
                    out[f"{prefix}{i}.{kind}.b"] = (m.bias, lambda t: t)
    return out


def losses(z, labels, teacher):
    ce = F.cross_entropy(z, labels)
    l2 = 0.5 * ((z - teacher) ** 2).sum(dim=1).mean()
    kl = F.kl_div(F.log_softmax(z / KD_T, dim=1), F.softmax(teacher / KD_T, dim=1), reduction="batchmean")
    kd = KD_ALPHA * KD_T * KD_T * kl + (1 - KD_ALPHA) * ce
    return {"ce": ce, "l2": l2, "kd": kd}


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    torch.manual_seed(1234)
    B = 8
    with h5py.File(sys.argv[1], "w") as f:
        for name, spec, shape, build in MODELS:
            layers = build()
            net = tnn.Sequential(*layers).double()
            # Non-zero biases so that bias handling is exercised.
            with torch.no_grad():
                for m in net.modules():
                    if isinstance(m, (tnn.Linear, tnn.Conv2d)) and m.bias is not None:
                        m.bias.uniform_(-0.3, 0.3)
            params = mimic_params(layers)
            bns = [(i, m) for i, m in enumerate(layers) if isinstance(m, (tnn.BatchNorm1d, tnn.BatchNorm2d))]
            with torch.no_grad():
                for _, m in bns:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
                    m.running_mean.copy_(m.running_mean.float().double())
                    m.running_var.copy_(m.running_var.float().double())
            state = {f"layer{i}.bn.running_{k}": getattr(m, "running_" + k).clone() for i, m in bns for k in ("mean", "var")}
            net.train(name in TRAIN_MODE)
            c, h, w = shape
            x = X_SCALE.get(name, 1.0) * torch.randn(B, c, h, w, dtype=torch.float64)
            # Round inputs and weights to float32 so that both sides start from identical values.
            x = x.float().double()
            with torch.no_grad():
                for p in net.parameters():
                    p.copy_(p.float().double())
            labels = torch.randint(0, 5, (B,))
            z = net(x if (c, h) != (1, 1) else x.reshape(B, -1))
            C = z.shape[1]
            labels = labels % C
            teacher = (2.0 * torch.randn(B, C, dtype=torch.float64)).float().double()
            f.attrs[f"{name}.spec"] = np.bytes_(spec)
            f.attrs[f"{name}.input_shape"] = np.array(shape, dtype=np.int64)
            g = f.create_group(name)
            g["x"] = x.reshape(B, -1).numpy().astype(np.float32)
            g["labels"] = labels.numpy().astype(np.int32)
            g["teacher"] = teacher.numpy().astype(np.float32)
            g["logits"] = z.detach().numpy().astype(np.float32)
            if bns:
                f.attrs[f"{name}.train"] = np.int64(name in TRAIN_MODE)
                for sname, v in state.items():
                    g[f"state/{sname}"] = v.numpy().astype(np.float32)
                if name in TRAIN_MODE:
                    for i, m in bns:
                        for k in ("mean", "var"):
                            g[f"state_after/layer{i}.bn.running_{k}"] = getattr(m, "running_" + k).numpy().astype(np.float32)
            for pname, (p, to_mimic) in params.items():
                g[f"params/{pname}"] = to_mimic(p.detach()).contiguous().numpy().astype(np.float32)
            for lname, loss in losses(z, labels, teacher).items():
                net.zero_grad()
                loss.backward(retain_graph=True)
                g[f"{lname}/loss"] = np.array([loss.item()], dtype=np.float64)
                for pname, (p, to_mimic) in params.items():
                    g[f"{lname}/grads/{pname}"] = to_mimic(p.grad).contiguous().numpy().astype(np.float32)
    return 0


if __name__ == "__main__":
    sys.exit(main())
