#!/usr/bin/env python3
# Test-time flips for an ensemble: each member (an ONNX file from `mimic export onnx`) scored on a dataset
# file's rows as they are, mirrored left to right, and the mean of the two logits; then the ensembles.
#
# Usage: flip_tta.py DATA.h5 GROUP=M1.onnx,M2.onnx,... [GROUP=...]
#   DATA.h5: a Mimic dataset file (fp32 /X, labels /y, @shape C,H,W) whose normalisation is global, so that
#   mirroring the normalised rows equals normalising the mirrored pixels (refused otherwise).
# Prints one line per member (plain, mirrored, mean of both) and per group and for all groups together
# (mean of the members' logits, without and with the mirrored rows' logits averaged in).
import argparse
import sys

import h5py
import numpy as np
import onnxruntime as ort


def load(path):
    with h5py.File(path, "r") as f:
        norm = f.attrs.get("norm", b"")
        norm = norm.decode() if isinstance(norm, bytes) else str(norm)
        if norm not in ("global", "none"):
            sys.exit(f"{path}: normalisation '{norm}' is per feature: mirrored rows would be misnormalised")
        if "X" not in f or f["X"].dtype != np.float32:
            sys.exit(f"{path}: no float32 /X (import with --store fp32)")
        c, h, w = (int(v) for v in f.attrs["shape"])
        return f["X"][:].reshape(-1, c, h, w), f["y"][:]


def logits(model, x, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    flat = len(inp.shape) == 2
    out = []
    for i in range(0, len(x), 1000):
        b = x[i:i + 1000]
        out.append(s.run(None, {inp.name: b.reshape(len(b), -1) if flat else b})[0])
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data")
    ap.add_argument("groups", nargs="+", help="NAME=M1.onnx,M2.onnx,...")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    x, y = load(a.data)
    mirrored = np.ascontiguousarray(x[:, :, :, ::-1])
    acc = lambda z: 100.0 * float((z.argmax(1) == y).mean())
    sums = {}
    for g in a.groups:
        name, _, files = g.partition("=")
        if not files:
            sys.exit(f"'{g}': expected NAME=M1.onnx,M2.onnx,...")
        plain = flip = 0
        for m in files.split(","):
            p, q = logits(m, x, a.threads), logits(m, mirrored, a.threads)
            print(f"{m}: plain {acc(p):.2f}%, mirrored {acc(q):.2f}%, mean of both {acc(p + q):.2f}%", flush=True)
            plain, flip = plain + p, flip + q
        sums[name] = (plain, flip)
        print(f"ensemble {name}: mean of logits {acc(plain):.2f}%, with the mirrored rows {acc(plain + flip):.2f}%")
    if len(sums) > 1:
        plain = sum(v[0] for v in sums.values())
        flip = sum(v[1] for v in sums.values())
        print(f"ensemble {'+'.join(sums)}: mean of logits {acc(plain):.2f}%, with the mirrored rows "
              f"{acc(plain + flip):.2f}%")


if __name__ == "__main__":
    main()
