#!/usr/bin/python3
# PyTorch (CPU, float32, 1 thread) twin of `mimic distill` for bench_distill.sh: trains the same student spec
# on the same transfer rows and ensemble logits (L2 on logits, 0.5*sum((z-t)^2)/B, Adam), same batch; prints
# samples/s and GFLOP/s (3 x forward matmul FLOPs, as Mimic counts them).
"""Usage:
  bench_distill_torch.py --transfer T.h5 --logits L.h5 --arch SPEC [--batch 128] [--epochs 1] [--lr 0.001]
                         [--rows N] [--threads 1]"""
import argparse
import os
import sys
import time

import h5py
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_label_torch import build  # noqa: E402  (Mimic spec -> torch modules)


def fwd_flops(net, shape):
    """2 x multiply-adds of the dense and conv layers for one sample."""
    total = 0
    x = torch.zeros(1, *shape)
    for m in net:
        y = m(x)
        if isinstance(m, torch.nn.Linear):
            total += 2 * m.in_features * m.out_features
        elif isinstance(m, torch.nn.Conv2d):
            total += 2 * y[0].numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        x = y
    return total


def main(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    with h5py.File(a.transfer, "r") as f:
        shape = tuple(int(v) for v in f.attrs["shape"])
        n = f["X"].shape[0] if a.rows <= 0 else min(a.rows, f["X"].shape[0])
        X = torch.from_numpy(f["X"][:n]).reshape(n, *shape)
    with h5py.File(a.logits, "r") as f:
        T = torch.from_numpy(f["logits"][:n])
    net, _ = build(a.arch, shape)
    with torch.no_grad():
        flops = fwd_flops(net, shape)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    gen = torch.Generator().manual_seed(1)
    nparams = sum(p.numel() for p in net.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, '{a.arch}' ({nparams} parameters), "
          f"{n} rows, batch {a.batch}")
    net.train()
    for epoch in range(1, a.epochs + 1):
        c0 = time.process_time()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for b in range(0, n, a.batch):
            idx = perm[b:b + a.batch]
            xb, tb = X[idx], T[idx]
            opt.zero_grad(set_to_none=False)
            z = net(xb)
            loss = 0.5 * ((z - tb) ** 2).sum(dim=1).mean()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        print(f"torch epoch {epoch}: loss {total / n:.4f} time {dt:.2f}s samples/s {n / dt:.1f} "
              f"GFLOP/s {n * 3 * flops / dt / 1e9:.2f} cpu {cpu:.2f}s cpu-samples/s {n / cpu:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--transfer", required=True)
    ap.add_argument("--logits", required=True)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    main(ap.parse_args())
