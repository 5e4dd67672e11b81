# The CNN families users train in PyTorch, built with torchvision or a few lines of torch.nn, random weights
# and non-trivial BN statistics, exported with torch.onnx.export; shared by tests/onnx and bench/bench_zoo.sh.
# usage: zoo_families.py OUTDIR [--families a,b,...] [--channels C] [--size S] [--classes K] [--rows N]
#                               [--opset V] [--seed S] [--static] [--list]
#   writes OUTDIR/<family>.onnx for each family, OUTDIR/data.h5 (N rows of C x S x S standard normal values,
#   a Mimic dataset file) and OUTDIR/ref.h5 (onnxruntime's logits of each family on those rows, key = family;
#   with PyTorch's own logits checked against them first).
import argparse
import os
import sys
import warnings

import h5py
import numpy as np
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

warnings.filterwarnings("ignore")


def randomize_bn(model, seed):
    """Every BatchNorm gets running statistics and affine parameters as after real training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * 0.4)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.0 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) * 0.6 + 0.7)
                m.bias.copy_((torch.rand(n, generator=g) - 0.5) * 0.4)
            if isinstance(m, nn.LayerNorm) and m.elementwise_affine:  # as after training: away from 1 and 0
                n = m.weight.numel()
                m.weight.copy_((torch.rand(n, generator=g) * 0.6 + 0.7).reshape(m.weight.shape))
                m.bias.copy_(((torch.rand(n, generator=g) - 0.5) * 0.4).reshape(m.bias.shape))


class BasicBlock(nn.Module):
    """CIFAR-style basic block: conv-bn-relu-conv-bn + identity or 1x1-stride-s projection, relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.short(x))


class PreActBlock(nn.Module):
    """Pre-activation block: bn-relu first; the projection shortcut (if any) starts after them."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.b1 = nn.BatchNorm2d(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        a = torch.relu(self.b1(x))
        short = self.proj(a) if self.proj is not None else x
        y = self.c2(torch.relu(self.b2(self.c1(a))))
        return y + short


class SEBlock(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(W2 relu(W1 gap(x)))."""

    def __init__(self, c, r=4):
        super().__init__()
        self.f = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // r, 1), nn.ReLU(), nn.Conv2d(c // r, c, 1),
                               nn.Sigmoid())

    def forward(self, x):
        return x * self.f(x)


class KBlock(nn.Module):
    """The basic block of the CIFAR ResNets users copy (functional relu, `out += shortcut`)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class KResNet18(nn.Module):
    """CIFAR ResNet18 as hand-written for 32x32 inputs: F.avg_pool2d(out, 4) and out.view(out.size(0), -1)."""

    def __init__(self, C, K, widths=(64, 128, 256, 512)):
        super().__init__()
        self.conv1 = nn.Conv2d(C, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [KBlock(cin, w, 1 if i == 0 else 2), KBlock(w, w, 1)]
            cin = w
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(cin, K)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        return self.linear(out)


class SELayer(nn.Module):
    """Hu's squeeze-and-excitation with Linear layers: view(b, c), fc, view(b, c, 1, 1), expand_as."""

    def __init__(self, c, r=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, c // r, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(c // r, c, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SEBasic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout), SELayer(cout))
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        r = x if self.down is None else self.down(x)
        return F.relu(self.body(x) + r)


class SEResNet(nn.Module):
    def __init__(self, C, K):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(C, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(SEBasic(16, 16, 1), SEBasic(16, 32, 2), SEBasic(32, 64, 2))
        self.fc = nn.Linear(64, K)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1).squeeze(-1).squeeze(-1)
        return self.fc(x)


class ViewCNN(nn.Module):
    """A CNN with x.view(x.size(0), -1), x.mean([2, 3]), x.mean(3).mean(2) and torch.flatten(x, 1) heads."""

    def __init__(self, C, K):
        super().__init__()
        self.c1 = nn.Conv2d(C, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1)
        self.c3 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 32)
        self.fc2 = nn.Linear(32 * 3, K)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.relu(self.c3(x))
        a = x.mean([2, 3])
        b = x.mean(3).mean(2)
        c = F.relu(self.fc1(F.adaptive_avg_pool2d(x, 4).view(x.size(0), -1)))
        h = torch.flatten(torch.cat([a, b, c], 1).reshape(x.size(0), -1, 1, 1), 1)
        return self.fc2(h)


class PreActBlockF(nn.Module):
    """kuangliu's PreActBlock: F.relu(self.bn1(x)), shortcut from the activation when it projects."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActNet(nn.Module):
    def __init__(self, C, K, block=PreActBlockF, widths=(16, 32, 64), drop=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(C, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            extra = (drop,) if block is WideBlock else ()
            blocks += [block(cin, w, 1 if i == 0 else 2, *extra), block(w, w, 1, *extra)]
            cin = w
        self.layers = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, K)

    def forward(self, x):
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        out = F.avg_pool2d(out, 8)  # 32x32 inputs: 8x8 after two stride-2 stages
        return self.linear(out.view(out.size(0), -1))


class WideBlock(nn.Module):
    """Zagoruyko's wide_basic: bn-relu-conv-dropout-bn-relu-conv, 1x1 projection of the block's input."""

    def __init__(self, cin, cout, stride, drop):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=True)
        self.dropout = nn.Dropout(p=drop)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=True))

    def forward(self, x):
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class LambdaLayer(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class OptionABlock(nn.Module):
    """akamaster's CIFAR BasicBlock: the option-A shortcut subsamples by 2 and pads zero channels."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class OptionAResNet(nn.Module):
    """akamaster's resnet20 (3 blocks per stage of 16, 32, 64 planes)."""

    def __init__(self, C, K, n=3):
        super().__init__()
        self.conv1 = nn.Conv2d(C, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, cin = [], 16
        for i, planes in enumerate((16, 32, 64)):
            for j in range(n):
                stages.append(OptionABlock(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes
        self.layers = nn.Sequential(*stages)
        self.linear = nn.Linear(64, K)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        # akamaster writes out.size()[3]; under this torch's tracer that is a tensor, which avg_pool2d refuses.
        out = F.avg_pool2d(out, int(out.size()[3]))
        out = out.view(out.size(0), -1)
        return self.linear(out)


class InceptionBlock(nn.Module):
    """A user-written Inception-C style block: 1x1, 1x7 then 7x1, 7x1 then 1x7, and a pooled 1x1 branch,
    concatenated (non-square kernels with "same" padding)."""

    def __init__(self, cin, c):
        super().__init__()
        cbr = lambda i, o, k, p: nn.Sequential(nn.Conv2d(i, o, k, padding=p, bias=False), nn.BatchNorm2d(o),
                                               nn.ReLU(inplace=True))
        self.b1 = cbr(cin, c, 1, 0)
        self.b2 = nn.Sequential(cbr(cin, c, 1, 0), cbr(c, c, (1, 7), (0, 3)), cbr(c, c, (7, 1), (3, 0)))
        self.b3 = nn.Sequential(cbr(cin, c, (7, 1), (3, 0)), cbr(c, c, (1, 3), (0, 1)))
        self.b4 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), cbr(cin, c, 1, 0))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class InceptionNet(nn.Module):
    def __init__(self, C, K):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(C, 16, 3, 2, 1), nn.ReLU())
        self.blocks = nn.Sequential(InceptionBlock(16, 8), InceptionBlock(32, 8))
        self.fc = nn.Linear(32, K)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class MiscCNN(nn.Module):
    """What users write beyond the tuned families: nn.Identity, Dropout2d, Conv without bias then BN,
    AdaptiveAvgPool2d to 2x2, x.mean((2, 3), keepdim=True) as a gate, F.avg_pool2d with ceil_mode,
    x.reshape(-1, C*H*W) with the sizes written out, a Linear without bias and BatchNorm1d in the head."""

    def __init__(self, C, K):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(C, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                nn.Identity(), nn.Dropout2d(0.2))
        self.c2 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.gate = nn.Conv2d(32, 32, 1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Sequential(nn.Linear(32 * 2 * 2, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
                                  nn.Linear(64, K))

    def forward(self, x):
        x = self.c1(x)
        x = self.c2(x)
        x = x * torch.sigmoid(self.gate(x.mean((2, 3), keepdim=True)))
        x = self.pool(x)
        return self.head(x.reshape(-1, 32 * 2 * 2))


class CeilAvgCNN(nn.Module):
    """Average pooling in ceil mode where it changes the size (at 16x16 inputs): the last windows reach past
    the input, with the padding not counted, without padding, and with it counted (the divisor reaches the
    padding's edge only, PyTorch's rule)."""

    def __init__(self, C, K):
        super().__init__()
        self.c1 = nn.Conv2d(C, 8, 3, 1, 1)
        self.p1 = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.p3 = nn.AvgPool2d(4, 2, 1, ceil_mode=True)
        self.fc = nn.LazyLinear(K)

    def forward(self, x):
        x = self.p1(torch.relu(self.c1(x)))  # 16x16 -> 9x9
        x = self.p3(F.avg_pool2d(x, 2, ceil_mode=True))  # 9x9 -> 5x5 -> 3x3
        return self.fc(torch.flatten(x, 1))


class FlatMLP(nn.Module):
    """An MLP on flat rows: x.view(-1, 784) first, as MNIST examples write it."""

    def __init__(self, C, K, S=28):
        super().__init__()
        self.d = C * S * S
        self.net = nn.Sequential(nn.Linear(self.d, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 64), nn.ReLU(),
                                 nn.Linear(64, K))

    def forward(self, x):
        return self.net(x.view(-1, self.d))


class PermuteHead(nn.Module):
    """x.permute(0, 2, 3, 1) before the flatten (channels-last features, as a Keras-style head writes it)."""

    def __init__(self, C, K):
        super().__init__()
        self.c = nn.Conv2d(C, 8, 3, 2, 1)
        self.fc = nn.LazyLinear(K)

    def forward(self, x):
        x = torch.relu(self.c(x))
        return self.fc(x.permute(0, 2, 3, 1).reshape(x.size(0), -1))


class TransposeHW(nn.Module):
    """x.transpose(2, 3) (height and width swapped): a Transpose that is neither a shuffle nor channels last."""

    def __init__(self, C, K):
        super().__init__()
        self.c, self.fc = nn.Conv2d(C, 8, 3, 2, 1), nn.LazyLinear(K)

    def forward(self, x):
        return self.fc(torch.relu(self.c(x)).transpose(2, 3).flatten(1))


def valid_1x3(C, K):
    """A 1x3 kernel without padding: the height stays, the width shrinks (no square kernel does that)."""
    return nn.Sequential(nn.Conv2d(C, 8, (1, 3)), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, K))


class SplitNet(nn.Module):
    """torch.split with unequal sizes (a Split node) and x.chunk(2, dim=1) (two Slice nodes) on the channels,
    the parts joined by a concatenation and by a sum."""

    def __init__(self, C, K):
        super().__init__()
        self.c1 = nn.Conv2d(C, 16, 3, 2, 1)
        self.c2 = nn.Conv2d(12, 12, 3, padding=1)
        self.fc = nn.Linear(8, K)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        a, b = torch.split(x, [4, 12], dim=1)
        x = torch.cat([torch.relu(self.c2(b)), a], 1)
        p, q = x.chunk(2, dim=1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(p + q, 1), 1))


class NormCNN(nn.Module):
    """Normalisation inside the model, as users write it: (x - mean) / std with per-channel buffers, x * 2 - 1,
    a conv's output scaled (folded into it), 1 - x and a Linear's output halved."""

    def __init__(self, C, K):
        super().__init__()
        self.register_buffer("mean", torch.linspace(0.3, 0.6, C).view(1, C, 1, 1))
        self.register_buffer("std", torch.linspace(0.2, 0.3, C).view(1, C, 1, 1))
        self.c1 = nn.Conv2d(C, 16, 3, 2, 1)
        self.c2 = nn.Conv2d(16, 16, 3, 2, 1)
        self.fc = nn.Linear(16, K)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = x * 2 - 1
        x = torch.relu(self.c1(x) * 0.5)
        x = 1 - torch.relu(self.c2(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)) * 0.5


class ConcatPoolCNN(nn.Module):
    """fastai's head: AdaptiveConcatPool2d (AdaptiveMaxPool2d(1) and AdaptiveAvgPool2d(1) concatenated), and
    x.amax((2, 3)) of a second branch."""

    def __init__(self, C, K):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(C, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1),
                                  nn.ReLU())
        self.mp, self.ap = nn.AdaptiveMaxPool2d(1), nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(48, K)

    def forward(self, x):
        x = self.body(x)
        h = torch.cat([self.mp(x).flatten(1), self.ap(x).flatten(1), torch.relu(x).amax((2, 3))], 1)
        return self.fc(h)


class ChannelAttention(nn.Module):
    """CBAM's channel attention: one MLP over the average- and the max-pooled features, summed, a gate."""

    def __init__(self, c, r=4):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(c, c // r, 1, bias=False), nn.ReLU(), nn.Conv2d(c // r, c, 1, bias=False))

    def forward(self, x):
        return x * torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))


class SpatialAttention(nn.Module):
    """CBAM's spatial attention: a 7x7 conv over the mean and the max over the channels, a gate."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


class CBAMNet(nn.Module):
    def __init__(self, C, K, spatial=False):
        super().__init__()
        att = lambda c: nn.Sequential(ChannelAttention(c), *([SpatialAttention()] if spatial else []))
        self.body = nn.Sequential(nn.Conv2d(C, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(), att(16),
                                  nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(), att(32))
        self.fc = nn.Linear(32, K)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.body(x), 1), 1))


class PReLUNet(nn.Module):
    """nn.PReLU per channel (after BN, and init 0.1), one shared slope (inside a residual branch) and per unit
    after a Linear; the slopes drawn from [-0.5, 0.9], negative ones included."""

    def __init__(self, C, K):
        super().__init__()
        self.c1, self.b1, self.p1 = nn.Conv2d(C, 16, 3, padding=1), nn.BatchNorm2d(16), nn.PReLU(16)
        self.c2, self.p2 = nn.Conv2d(16, 16, 3, padding=1), nn.PReLU()
        self.c3, self.b3 = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32)
        self.p3 = nn.PReLU(32, init=0.1)
        self.fc1, self.p4, self.fc2 = nn.Linear(32, 24), nn.PReLU(24), nn.Linear(24, K)
        with torch.no_grad():
            for p in (self.p1, self.p2, self.p3, self.p4):
                p.weight.uniform_(-0.5, 0.9)

    def forward(self, x):
        x = self.p1(self.b1(self.c1(x)))
        x = x + self.p2(self.c2(x))
        x = self.p3(self.b3(self.c3(x)))
        return self.fc2(self.p4(self.fc1(x.mean((2, 3)))))


def softplus_cnn(C, K):
    """Softplus after a conv and after a Linear, and Mish (x * tanh(softplus(x)), as opset 13 writes it)."""
    return nn.Sequential(nn.Conv2d(C, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Softplus(),
                         nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.Mish(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 32), nn.Softplus(), nn.Linear(32, K))


class LNNet(nn.Module):
    """Layer norms as users write them: over the channels through x.permute (with and without a scale and
    shift: PyTorch 1.13 cannot export the latter at opset 17), a Linear on channels-last values, and
    nn.LayerNorm on the flat features of the head."""

    def __init__(self, C, K, affine=False):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(C, 16, 3, padding=1), nn.Conv2d(16, 24, 3, stride=2, padding=1)
        self.ln1, self.ln2 = nn.LayerNorm(16, eps=1e-6), nn.LayerNorm(24, elementwise_affine=affine)
        self.pw = nn.Linear(24, 32)
        self.fc1, self.ln3, self.fc2 = nn.Linear(32, 48), nn.LayerNorm(48), nn.Linear(48, K)

    def forward(self, x):
        x = self.ln1(self.conv1(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2).relu()
        x = F.gelu(self.pw(self.ln2(self.conv2(x).permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc2(F.relu(self.ln3(self.fc1(x))))


def softmax_cnn(C, K):
    return nn.Sequential(nn.Conv2d(C, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, K), nn.Softmax(dim=1))


def vgg_cifar(vgg, K):
    """torchvision's VGG features (no BN) for 32x32 inputs, with the one-Linear head CIFAR code gives them."""
    return nn.Sequential(vgg.features, nn.Flatten(), nn.Linear(512, K))


def inception_v3(C, K):
    """torchvision's Inception v3 (75x75 inputs at least) with transform_input, as with its pretrained weights
    (x[:, i] * a + b per channel, concatenated). Its convolutions get He's init, which keeps the activations'
    scale over its 94 convolutions: init_weights=True grows them to 1e9, PyTorch's default init shrinks them
    until the logits no longer depend on the input; the logits are scaled to a few units."""
    model = TV.inception_v3(num_classes=K, aux_logits=False, init_weights=False, transform_input=True)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        model.fc.weight.mul_(20.0)
    return model


def act_cnn(C, K):
    """A small CNN with LeakyReLU(0.1), ELU and GELU (also on a flat hidden layer)."""
    return nn.Sequential(nn.Conv2d(C, 16, 3, padding=1), nn.BatchNorm2d(16), nn.LeakyReLU(0.1),
                         nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ELU(),
                         nn.Conv2d(32, 32, 3, 2, 1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 64), nn.GELU(), nn.Linear(64, K))


def wrn_16_4(C, K):
    return PreActNet(C, K, WideBlock, (64, 128, 256), drop=0.3)


def cifar_resnet(C, K, block=BasicBlock, widths=(16, 32, 64)):
    layers = [nn.Conv2d(C, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    cin = widths[0]
    for i, w in enumerate(widths):
        layers += [block(cin, w, 1 if i == 0 else 2), block(w, w, 1)]
        cin = w
    if block is PreActBlock:
        layers += [nn.BatchNorm2d(cin), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, K))


def vgg_bn(C, K):
    def cbr(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(*cbr(C, 16), *cbr(16, 16), nn.MaxPool2d(2), *cbr(16, 32), *cbr(32, 32), nn.MaxPool2d(2),
                         nn.Flatten(), nn.LazyLinear(64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(64, K))


def se_net(C, K):
    return nn.Sequential(nn.Conv2d(C, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), SEBlock(16),
                         nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(), SEBlock(32),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, K))


def first_conv_channels(model, C):
    """torchvision models take 3 channels; for C != 3 the stem's first Conv2d is rebuilt for C."""
    if C == 3:
        return model
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            parent = model
            *path, leaf = name.split(".")
            for p in path:
                parent = getattr(parent, p)
            setattr(parent, leaf, nn.Conv2d(C, m.out_channels, m.kernel_size, m.stride, m.padding,
                                            bias=m.bias is not None))
            return model
    return model


TV = torchvision.models
# name -> (builder(C, K), export mode[, opset]): EVAL lets the exporter fold BatchNorm into the Conv; PRESERVE
# keeps every BatchNormalization node; a family with its own opset is exported at it instead of --opset.
# New families go at the end (the torch.nn ones written as users write them: functional calls, view/size).
FAMILIES = {
    "cifar_resnet": (lambda C, K: cifar_resnet(C, K), "EVAL"),
    "cifar_resnet_bn": (lambda C, K: cifar_resnet(C, K), "PRESERVE"),
    "preact_resnet": (lambda C, K: cifar_resnet(C, K, PreActBlock), "PRESERVE"),
    "vgg_bn": (vgg_bn, "PRESERVE"),
    "se_net": (se_net, "EVAL"),
    "densenet_small": (lambda C, K: TV.DenseNet(12, (2, 2, 2), 16, 2, 0, K), "PRESERVE"),
    "resnet18": (lambda C, K: TV.resnet18(num_classes=K), "EVAL"),
    "resnet34": (lambda C, K: TV.resnet34(num_classes=K), "EVAL"),
    "resnet50": (lambda C, K: TV.resnet50(num_classes=K), "EVAL"),
    "mobilenet_v2": (lambda C, K: TV.mobilenet_v2(num_classes=K), "EVAL"),
    "mobilenet_v3_small": (lambda C, K: TV.mobilenet_v3_small(num_classes=K), "EVAL"),
    "mobilenet_v3_large": (lambda C, K: TV.mobilenet_v3_large(num_classes=K), "EVAL"),
    "densenet121": (lambda C, K: TV.densenet121(num_classes=K), "PRESERVE"),
    "squeezenet1_0": (lambda C, K: TV.squeezenet1_0(num_classes=K), "EVAL"),
    "squeezenet1_1": (lambda C, K: TV.squeezenet1_1(num_classes=K), "EVAL"),
    "efficientnet_b0": (lambda C, K: TV.efficientnet_b0(num_classes=K), "EVAL"),
    "kuangliu_resnet18": (lambda C, K: KResNet18(C, K), "EVAL"),
    "se_resnet_fc": (lambda C, K: SEResNet(C, K), "PRESERVE"),
    "view_cnn": (lambda C, K: ViewCNN(C, K), "EVAL"),
    "preact_resnet_f": (lambda C, K: PreActNet(C, K), "PRESERVE"),
    "wrn_16_4": (wrn_16_4, "PRESERVE"),
    "regnet_x_400mf": (lambda C, K: TV.regnet_x_400mf(num_classes=K), "EVAL"),
    "regnet_y_400mf": (lambda C, K: TV.regnet_y_400mf(num_classes=K), "EVAL"),
    "efficientnet_v2_s": (lambda C, K: TV.efficientnet_v2_s(num_classes=K), "EVAL"),
    "mnasnet0_5": (lambda C, K: TV.mnasnet0_5(num_classes=K), "EVAL"),
    "resnext50_32x4d": (lambda C, K: TV.resnext50_32x4d(num_classes=K), "EVAL"),
    "googlenet": (lambda C, K: TV.googlenet(num_classes=K, aux_logits=False, init_weights=True), "EVAL"),
    "wide_resnet50_2": (lambda C, K: TV.wide_resnet50_2(num_classes=K), "EVAL"),
    "efficientnet_b1": (lambda C, K: TV.efficientnet_b1(num_classes=K), "EVAL", 11),
    "mobilenet_v3_small_17": (lambda C, K: TV.mobilenet_v3_small(num_classes=K), "EVAL", 17),
    "shufflenet_v2_x0_5": (lambda C, K: TV.shufflenet_v2_x0_5(num_classes=K), "EVAL"),
    "akamaster_resnet20": (lambda C, K: OptionAResNet(C, K), "EVAL"),
    "act_cnn": (act_cnn, "EVAL"),
    "prelu_net": (lambda C, K: PReLUNet(C, K), "EVAL"),
    "softplus_cnn": (softplus_cnn, "EVAL"),
    "vgg11_cifar": (lambda C, K: vgg_cifar(TV.vgg11(), K), "EVAL"),
    "inception_net": (lambda C, K: InceptionNet(C, K), "EVAL"),
    "inception_v3": (inception_v3, "EVAL"),
    "misc_cnn": (lambda C, K: MiscCNN(C, K), "PRESERVE"),
    "ceil_avg_cnn": (lambda C, K: CeilAvgCNN(C, K), "EVAL"),
    "flat_mlp": (lambda C, K: FlatMLP(C, K), "EVAL"),
    "softmax_cnn": (softmax_cnn, "EVAL"),
    "misc_cnn_11": (lambda C, K: MiscCNN(C, K), "PRESERVE", 11),
    "misc_cnn_17": (lambda C, K: MiscCNN(C, K), "PRESERVE", 17),
    "permute_head": (lambda C, K: PermuteHead(C, K), "EVAL"),
    "valid_1x3": (valid_1x3, "EVAL"),
    "split_net": (lambda C, K: SplitNet(C, K), "EVAL"),
    "norm_cnn": (lambda C, K: NormCNN(C, K), "EVAL"),
    "concat_pool_cnn": (lambda C, K: ConcatPoolCNN(C, K), "EVAL"),
    "cbam_channel": (lambda C, K: CBAMNet(C, K), "EVAL"),
    "cbam": (lambda C, K: CBAMNet(C, K, spatial=True), "EVAL"),
    "convnext_tiny": (lambda C, K: TV.convnext_tiny(num_classes=K), "EVAL"),
    "convnext_tiny_17": (lambda C, K: TV.convnext_tiny(num_classes=K), "EVAL", 17),
    "ln_net": (lambda C, K: LNNet(C, K), "EVAL"),
    "ln_net_17": (lambda C, K: LNNet(C, K, affine=True), "EVAL", 17),
    "transpose_hw": (lambda C, K: TransposeHW(C, K), "EVAL"),
}

# Families for the tests only, which --list (bench/bench_zoo.sh's default) leaves out: built for another input
# size (inception_v3: 75x75 at least; flat_mlp: 1x28x28), ending in Softmax, or refused by the import.
TEST_ONLY = {"inception_v3", "flat_mlp", "softmax_cnn", "transpose_hw", "valid_1x3", "cbam"}


def build(name, C, S, K, seed):
    torch.manual_seed(seed)
    make, mode = FAMILIES[name][:2]
    model = first_conv_channels(make(C, K), C)
    with torch.no_grad():
        model(torch.zeros(2, C, S, S))  # materialises lazy layers
    randomize_bn(model, seed + 1)
    return model.eval(), mode


def export(model, mode, path, C, S, opset, static=False):
    """static: without dynamic_axes, so the graph's batch is the 2 of the example input."""
    torch.onnx.export(model, torch.zeros(2, C, S, S), path, opset_version=opset, input_names=["x"],
                      output_names=["y"], dynamic_axes=None if static else {"x": {0: "batch"}, "y": {0: "batch"}},
                      training=getattr(torch.onnx.TrainingMode, mode), do_constant_folding=True)


def write_dataset(path, X, C, S, K):
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X.reshape(len(X), -1))
        f.create_dataset("y", data=np.zeros(len(X), dtype=np.int32))
        f.attrs["mimic_format"] = np.bytes_("mimic-dataset-1")
        f.attrs["shape"] = np.array([C, S, S], dtype=np.int64)
        f.attrs["num_classes"] = np.int64(K)
        f.attrs["source"] = np.bytes_("zoo_families.py")
        f.attrs["norm"] = np.bytes_("none")
        f.attrs["norm_scale"] = np.float64(1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--static", action="store_true", help="export without dynamic_axes (batch 2; even --rows)")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(n for n in FAMILIES if n not in TEST_ONLY))
        return
    if not a.out:
        sys.exit("zoo_families.py: OUTDIR is required")
    import onnxruntime as ort
    names = [n for n in a.families.split(",") if n]
    for n in names:
        if n not in FAMILIES:
            sys.exit(f"zoo_families.py: unknown family '{n}' (--list names them)")
    os.makedirs(a.out, exist_ok=True)
    C, S, K = a.channels, a.size, a.classes
    X = np.random.default_rng(a.seed).standard_normal((a.rows, C, S, S)).astype(np.float32)
    write_dataset(os.path.join(a.out, "data.h5"), X, C, S, K)
    with h5py.File(os.path.join(a.out, "ref.h5"), "w") as ref:
        for i, n in enumerate(names):
            model, mode = build(n, C, S, K, a.seed + 10 * i)
            path = os.path.join(a.out, n + ".onnx")
            export(model, mode, path, C, S, FAMILIES[n][2] if len(FAMILIES[n]) > 2 else a.opset, a.static)
            with torch.no_grad():
                want = model(torch.from_numpy(X)).numpy()
            # The reference without graph rewrites: onnxruntime 1.19's Pad fusion drops a Pad's zeros from the
            # divisor of the AveragePool after it (F.avg_pool2d(x, 3, 1, 1) in Inception v3).
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            step = 2 if a.static else len(X)  # a static graph takes its batch of 2 only
            got = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: X[i:i + step]})[0]
                                  for i in range(0, len(X), step)])
            err = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
            if err > 1e-3:
                sys.exit(f"zoo_families.py: {n}: onnxruntime and PyTorch differ by {err:.3g}")
            ref.create_dataset(n, data=got.astype(np.float32))
            print(f"{n}: {path} ({mode}), onnxruntime vs PyTorch {err:.2g}")


if __name__ == "__main__":
    main()
