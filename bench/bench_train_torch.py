#!/usr/bin/python3
# PyTorch (CPU, 1 thread) reference for bench_train.sh: the same epoch loop as `mimic train` (rows in memory,
# a fresh permutation per epoch, gather each batch, forward, cross-entropy, backward, SGD-Nesterov step)
# on the same dataset file, model and batch size; prints samples/s per epoch. Also cuts the data subset.
"""Usage:
  bench_train_torch.py subset IN.h5 OUT.h5 ROWS        copy the first ROWS rows of a Mimic dataset file
  bench_train_torch.py train --data D.h5 --arch mlp|cnn [--epochs 2] [--batch 128] [--lr 0.01]
  bench_train_torch.py train --data D.h5 --arch resnet --spec 'conv:16x3,bn,relu,res(...),...,gap,dense:10'
      the resnet row: the network of a Mimic arch line (conv, bn, relu, res blocks, gap, pool, dense), run
      channels_last (model and input); the arch line comes from inputs/fashion-mnist/resnet.cfg"""
import argparse
import re
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def subset(src, dst, rows):
    with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        b.create_dataset("X", data=a["X"][:rows])
        b.create_dataset("y", data=a["y"][:rows])
        for k in ("norm/mean", "norm/std"):
            if k in a:
                b.create_dataset(k, data=a[k][()])
        # No @fingerprint: Mimic computes the subset's from its rows when it opens it.
        if "fingerprint" in b.attrs:
            del b.attrs["fingerprint"]


def model(arch):
    if arch == "mlp":  # dense:1200,relu,dense:1200,relu,dense:10
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(),
                             nn.Linear(1200, 10))
    # conv:32x3,relu,conv:32x3,relu,pool:2,conv:64x3,relu,pool:2,dense:256,relu,dropout:0.3,dense:10
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))


def split_top(spec, sep):
    """Splits spec at the separators sep that lie outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in spec:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


class Res(nn.Module):
    """res(A|B|...): the sum of the branches' outputs; res(A) adds the identity."""

    def __init__(self, branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.identity = len(branches) == 1

    def forward(self, x):
        y = self.branches[0](x)
        for b in self.branches[1:]:
            y = y + b(x)
        return y + x if self.identity else y


def chain(spec, shape):
    """nn.Sequential of a Mimic chain spec on input shape (c, h, w); returns it and its output shape.
    conv has a bias as in Mimic; bn is BatchNorm2d with PyTorch's defaults (eps 1e-5, momentum 0.1, running
    variance unbiased), which are Mimic's bn (src/nn/layers/batchnorm.cpp)."""
    layers = []
    c, h, w = shape
    for tok in split_top(spec, ","):
        m = re.fullmatch(r"conv:(\d+)x(\d+)(?:s(\d+))?(?:p(\d+))?", tok)
        if m:
            f, k = int(m[1]), int(m[2])
            s, p = int(m[3] or 1), int(m[4] if m[4] is not None else k // 2)
            layers.append(nn.Conv2d(c, f, k, stride=s, padding=p))
            c, h, w = f, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif tok == "bn":
            layers.append(nn.BatchNorm2d(c))
        elif tok == "relu":
            layers.append(nn.ReLU())
        elif tok == "gap":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            h = w = 1
        elif re.fullmatch(r"pool:\d+", tok):
            k = int(tok[5:])
            layers.append(nn.MaxPool2d(k))
            h, w = h // k, w // k
        elif re.fullmatch(r"dense:\d+", tok):
            if h * w > 1 or not any(isinstance(l, nn.Flatten) for l in layers):
                layers.append(nn.Flatten())
            layers.append(nn.Linear(c * h * w, int(tok[6:])))
            c, h, w = int(tok[6:]), 1, 1
        elif tok.startswith("res(") and tok.endswith(")"):
            outs = [chain(b, (c, h, w)) for b in split_top(tok[4:-1], "|")]
            layers.append(Res([m for m, _ in outs]))
            c, h, w = outs[0][1]
        else:
            sys.exit(f"bench_train_torch.py: token {tok!r} of --spec is not supported here")
    return nn.Sequential(*layers), (c, h, w)


def train(a):
    torch.set_num_threads(1)
    torch.manual_seed(1)
    with h5py.File(a.data, "r") as f:
        X = torch.from_numpy(f["X"][()]).reshape(-1, 1, 28, 28)
        y = torch.from_numpy(f["y"][()].astype(np.int64))
    n = X.shape[0]
    if a.arch == "resnet":
        if not a.spec:
            sys.exit("bench_train_torch.py: --arch resnet needs --spec (the arch line of resnet.cfg)")
        net = chain(a.spec, (1, 28, 28))[0].to(memory_format=torch.channels_last)
    else:
        net = model(a.arch)
    fmt = torch.channels_last if a.arch == "resnet" else torch.contiguous_format
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {a.arch} ({fmt}), {n} rows, batch {a.batch}")
    for epoch in range(1, a.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for b in range(0, n, a.batch):
            idx = perm[b:b + a.batch]
            xb, yb = X[idx].contiguous(memory_format=fmt), y[idx]
            opt.zero_grad(set_to_none=False)
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        dt = time.perf_counter() - t0
        print(f"torch epoch {epoch}: loss {total / n:.4f} time {dt:.2f}s samples/s {n / dt:.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "subset":
        subset(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        sys.exit(0)
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", choices=["mlp", "cnn", "resnet"], required=True)
    ap.add_argument("--spec", default="", help="--arch resnet: the Mimic arch line to build")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.01)
    train(ap.parse_args())
