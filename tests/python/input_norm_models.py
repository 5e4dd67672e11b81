#!/usr/bin/env python3
# Teachers trained on torchvision-normalised inputs, for `mimic import onnx --norm-from`: uint8 images (NHWC
# .npy, as a user keeps them) and flat uint8 rows, a CNN and an MLP exported by torch.onnx, and the logits
# PyTorch gives on (pixels / 255 - mean) / std, the inputs these models expect.
# usage: input_norm_models.py OUTDIR
import os
import sys

import h5py
import numpy as np
import torch
from torch import nn

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's, as users copy them
FLAT_MEAN, FLAT_STD = 0.2860, 0.3530  # Fashion-MNIST's


def cnn():
    m = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(32, 10))
    with torch.no_grad():
        for b in (m[1], m[5]):
            b.running_mean.uniform_(-0.5, 0.5)
            b.running_var.uniform_(0.5, 2.0)
    return m.eval()


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


def export(model, example, path):
    torch.onnx.export(model, example, path, opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8)  # NHWC
    y = rng.integers(0, 10, 96).astype(np.int64)
    flat = rng.integers(0, 256, (80, 784), dtype=np.uint8)
    fy = rng.integers(0, 10, 80).astype(np.int64)
    for name, arr in (("x", x), ("y", y), ("flat", flat), ("fy", fy)):
        np.save(os.path.join(out, name + ".npy"), arr)
    c, m = cnn(), mlp()
    export(c, torch.zeros(2, 3, 32, 32), os.path.join(out, "cnn.onnx"))
    export(m, torch.zeros(2, 784), os.path.join(out, "mlp.onnx"))
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    t = (t - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    f = (torch.from_numpy(flat).float() / 255 - FLAT_MEAN) / FLAT_STD
    with torch.no_grad(), h5py.File(os.path.join(out, "ref.h5"), "w") as ref:
        ref["cnn"] = c(t).numpy()
        ref["mlp"] = m(f).numpy()
    print("input_norm_models.py: wrote", out)


if __name__ == "__main__":
    main()
