#!/usr/bin/python3
# PyTorch (CPU, float32, 1 thread per process) twin of `mimic label` for bench_label.sh: loads the same member
# model files (h5py, Mimic's weight layouts), runs every member over the same rows in the same batch size,
# averages the logits; prints member-samples/s and checks the result against Mimic's logits file.
"""Usage:
  bench_label_torch.py replicate IN.h5 OUT.h5 ROWS COPIES   transfer set of COPIES x the first ROWS rows of IN
  bench_label_torch.py label --transfer T.h5 --members M1.h5 [M2.h5 ...] [--batch 256] [--rows N]
                             [--check LOGITS.h5]"""
import argparse
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn


def replicate(src, dst, rows, copies):
    """Rows 0..ROWS-1 of SRC, COPIES times, as a dataset file (fresh fingerprint; same attributes)."""
    with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        X = a["X"][:rows]
        y = a["y"][:rows] if "y" in a else None
        d = b.create_dataset("X", shape=(rows * copies, X.shape[1]), dtype=np.float32)
        for c in range(copies):
            d[c * rows:(c + 1) * rows] = X
        if y is not None:
            b.create_dataset("y", data=np.tile(y, copies))
        for k in ("norm/mean", "norm/std"):
            if k in a:
                b.create_dataset(k, data=a[k][()])
        # No @fingerprint: Mimic computes the copy's from its rows when it opens it.
        if "fingerprint" in b.attrs:
            del b.attrs["fingerprint"]


def attr_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def build(spec, shape):
    """torch layers for a Mimic spec (include/mimic/nn/spec.hpp grammar) on input (C, H, W); returns
    (module, {mimic weight name: (parameter, Mimic layout -> torch layout)})."""
    c, h, w = (int(v) for v in shape)
    image = not (c == 1 and h == 1)
    mods, params = [], {}
    for i, tok in enumerate(spec.split(",")):
        name, _, arg = tok.partition(":")
        if name in ("dense", "bottleneck"):
            if image or len(mods) == 0 or not isinstance(mods[-1], nn.Flatten):
                mods.append(nn.Flatten())
            n = int(arg)
            lin = nn.Linear(c * h * w, n, bias=(name == "dense"))
            mods.append(lin)
            params[f"layer{i}.{name}.W"] = (lin.weight, lambda t: t.t())
            if name == "dense":
                params[f"layer{i}.{name}.b"] = (lin.bias, lambda t: t)
            c, h, w, image = n, 1, 1, False
        elif name == "conv":
            f, _, rest = arg.partition("x")
            k, s, p = rest, "1", None
            if "p" in k:
                k, p = k.split("p")
            if "s" in k:
                k, s = k.split("s")
            k, s, f = int(k), int(s), int(f)
            p = k // 2 if p is None else int(p)
            conv = nn.Conv2d(c, f, k, stride=s, padding=p)
            mods.append(conv)
            params[f"layer{i}.conv.W"] = (conv.weight, lambda t: t.permute(3, 0, 1, 2))  # {C,K,K,F} -> [F,C,K,K]
            params[f"layer{i}.conv.b"] = (conv.bias, lambda t: t)
            c, h, w = f, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif name == "pool":
            k = int(arg)
            mods.append(nn.MaxPool2d(k))
            h, w = h // k, w // k
        elif name == "relu":
            mods.append(nn.ReLU())
        elif name == "sigmoid":
            mods.append(nn.Sigmoid())
        elif name == "tanh":
            mods.append(nn.Tanh())
        elif name == "dropout":
            mods.append(nn.Dropout(float(arg)))
        elif name == "flatten":
            mods.append(nn.Flatten())
            c, h, w, image = c * h * w, 1, 1, False
        else:
            raise SystemExit(f"bench_label_torch.py: unknown spec token '{tok}'")
    return nn.Sequential(*mods), params


def load_member(path):
    with h5py.File(path, "r") as f:
        spec = attr_str(f.attrs["spec"])
        shape = tuple(int(v) for v in f.attrs["input_shape"])
        net, params = build(spec, shape)
        with torch.no_grad():
            for k, (p, to_torch) in params.items():
                t = to_torch(torch.from_numpy(f["weights"][k][()]))
                assert tuple(t.shape) == tuple(p.shape), f"{path}: {k} {tuple(t.shape)} vs {tuple(p.shape)}"
                p.copy_(t)
    net.eval()
    return net, spec, shape


def label(a):
    torch.set_num_threads(1)
    members = [load_member(p) for p in a.members]
    shape = members[0][2]
    with h5py.File(a.transfer, "r") as f:
        n = f["X"].shape[0] if a.rows <= 0 else min(a.rows, f["X"].shape[0])
        X = torch.from_numpy(f["X"][:n]).reshape(n, *shape)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(members)} members, {n} rows, "
          f"batch {a.batch}")
    acc = torch.zeros(n, 10 if a.check is None else h5py.File(a.check, "r")["logits"].shape[1], dtype=torch.float64)
    per = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for net, spec, _ in members:
            t1 = time.perf_counter()
            for b in range(0, n, a.batch):
                acc[b:b + a.batch] += net(X[b:b + a.batch]).double()
            per.append((spec, time.perf_counter() - t1))
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    mean = (acc / len(members)).float()
    for spec, t in per:
        print(f"torch member {spec}: {n / t:.1f} samples/s")
    print(f"torch label: {n} rows x {len(members)} members in {dt:.2f}s: {n * len(members) / dt:.1f} member-samples/s; "
          f"cpu {cpu:.2f}s: {n * len(members) / cpu:.1f} member-samples/s per cpu-second")
    if a.check:
        with h5py.File(a.check, "r") as f:
            ref = torch.from_numpy(f["logits"][:n].astype(np.float32))
        err = (ref - mean).abs().max().item()
        print(f"torch check: max |mimic - torch| logit difference {err:.3g}")
        if not err < 1e-3 * max(1.0, mean.abs().max().item()):
            sys.exit("bench_label_torch.py: Mimic's logits differ from PyTorch's: not the same computation")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "replicate":
        replicate(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        sys.exit(0)
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["label"])
    ap.add_argument("--transfer", required=True)
    ap.add_argument("--members", nargs="+", required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--check")
    label(ap.parse_args())
