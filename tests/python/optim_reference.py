# Reference trajectories of torch.optim.SGD / Adam / AdamW for tests/train/test_optim.cpp: the same
# start point, the same parameter-dependent gradients and the same per-step learning rates.
import math
import sys

import numpy as np
import torch

N, STEPS = 37, 7


def start():
    return np.array([0.5 * math.sin(0.7 * i) for i in range(N)], dtype=np.float32)


def grad(p, t):
    # p: float32 parameters; computed in double and rounded once, like the C++ side.
    i = np.arange(N, dtype=np.float64)
    return (0.3 * p.astype(np.float64) + 0.1 * np.cos(0.13 * i + 0.71 * t)).astype(np.float32)


def lr_at(t):
    return 0.05 * (1.0 + 0.1 * t)


CONFIGS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.0, weight_decay=0.01),
    "momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "nesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
}


def run(name):
    p = torch.nn.Parameter(torch.from_numpy(start()))
    opt = CONFIGS[name]([p])
    for t in range(1, STEPS + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(t)
        p.grad = torch.from_numpy(grad(p.detach().numpy().copy(), t))
        opt.step()
    return p.detach().numpy().astype(np.float32)


if __name__ == "__main__":
    out = sys.argv[1]
    with open(out, "wb") as f:
        for name in ["sgd", "momentum", "nesterov", "adam", "adamw"]:
            f.write(run(name).tobytes())
