#!/usr/bin/python3
# PyTorch (CPU, 1 thread) reference for bench_nn: training steps (forward, CE loss, backward; no optimizer)
# of the same MLP and CNN at the same batch size, in samples/s and GFLOP/s, plus sgemm 1024^3.
"""Usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/bench_nn_torch.py [--batch 128] [--iters 10] [--reps 5]"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def best_time(reps, iters, fn, clock):
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        for _ in range(iters):
            fn()
        best = min(best, (clock() - t0) / iters)
    return best


def models():
    mlp = nn.Sequential(nn.Linear(784, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(), nn.Linear(1200, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))
    # Forward multiply-adds x2 per sample (as Model::flops_per_sample), and the first layer's weight size
    # (a training step skips its input gradient: 3F - first).
    mlp_f = 2 * (784 * 1200 + 1200 * 1200 + 1200 * 10)
    cnn_f = 2 * (784 * 32 * 9 + 784 * 32 * 288 + 196 * 64 * 288 + 3136 * 256 + 256 * 10)
    return [("mlp", mlp, (784,), mlp_f, 2 * 784 * 1200), ("cnn", cnn, (1, 28, 28), cnn_f, 2 * 784 * 32 * 9)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"bench_nn_torch: torch {torch.__version__}, threads {torch.get_num_threads()}, batch {a.batch}, "
          f"mkldnn {torch.backends.mkldnn.is_available()}, best of {a.reps} x {a.iters} steps")
    A, B = torch.rand(1024, 1024), torch.rand(1024, 1024)
    torch.mm(A, B)
    for name, clock in (("wall", time.perf_counter), ("cpu", time.thread_time)):
        t = best_time(a.reps, 3, lambda: torch.mm(A, B), clock)
        print(f"sgemm 1024^3 (torch.mm): {2 * 1024 ** 3 / t / 1e9:.1f} GFLOP/s ({name} clock)")
    for name, net, shape, fwd_flops, first in models():
        x = torch.rand(a.batch, *shape) - 0.5
        y = torch.arange(a.batch) % 10
        net.train()

        def step():
            net.zero_grad(set_to_none=False)
            F.cross_entropy(net(x), y).backward()

        for _ in range(3):
            step()
        for cname, clock in (("wall", time.perf_counter), ("cpu", time.thread_time)):
            t = best_time(a.reps, a.iters, step, clock)
            gf = (3 * fwd_flops - first) * a.batch / t / 1e9
            print(f"RESULT {name} ({cname} clock): train step {t * 1e3:.2f} ms, {a.batch / t:.0f} samples/s, "
                  f"{gf:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
