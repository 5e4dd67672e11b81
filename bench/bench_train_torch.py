#!/usr/bin/python3
# PyTorch (CPU, 1 thread) reference for bench_train.sh: the same epoch loop as `mimic train` (rows in memory,
# a fresh permutation per epoch, gather each batch, forward, cross-entropy, backward, SGD-Nesterov step)
# on the same dataset file, model and batch size; prints samples/s per epoch. Also cuts the data subset.
"""Usage:
  bench_train_torch.py subset IN.h5 OUT.h5 ROWS        copy the first ROWS rows of a Mimic dataset file
  bench_train_torch.py train --data D.h5 --arch mlp|cnn [--epochs 2] [--batch 128] [--lr 0.01]"""
import argparse
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


def train(a):
    torch.set_num_threads(1)
    torch.manual_seed(1)
    with h5py.File(a.data, "r") as f:
        X = torch.from_numpy(f["X"][()]).reshape(-1, 1, 28, 28)
        y = torch.from_numpy(f["y"][()].astype(np.int64))
    n = X.shape[0]
    net = model(a.arch)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {a.arch}, {n} rows, batch {a.batch}")
    for epoch in range(1, a.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for b in range(0, n, a.batch):
            idx = perm[b:b + a.batch]
            xb, yb = X[idx], y[idx]
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
    ap.add_argument("--arch", choices=["mlp", "cnn"], required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.01)
    train(ap.parse_args())
