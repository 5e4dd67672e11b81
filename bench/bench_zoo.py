#!/usr/bin/python3
# The peers of `mimic label` for bench_zoo.sh: one family's ONNX file in onnxruntime (1 intra-op thread) and
# its PyTorch model (channels_last, 1 thread) over the same rows and batch, and the check of Mimic's logits.
"""Usage:
  bench_zoo.py time --family NAME --index I --dir DIR [--rows N] [--batch B] [--reps R] [--seed S]
      rows/s of DIR/NAME.onnx in onnxruntime and of the family's PyTorch model (built as zoo_families.py
      built the I-th family of its --families list, seed S), forward passes over the first N rows of
      DIR/data.h5 in batches of B, wall clock of the loop, best of R passes; prints "ort R" and "torch R"
  bench_zoo.py check --family NAME --dir DIR --logits OUT.h5
      Mimic's logits against onnxruntime's (DIR/ref.h5): prints "check MAX_REL_ERR ARGMAX_AGREEMENT\""""
import argparse
import os
import sys
import time

import h5py
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "python"))


def best_rate(rows, batch, reps, run):
    """Rows/s of run(first, last) over rows in batches, wall clock, best of reps passes (after a warm-up)."""
    run(0, min(batch, rows))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for b0 in range(0, rows, batch):
            run(b0, min(rows, b0 + batch))
        best = min(best, time.perf_counter() - t0)
    return rows / best


def time_family(a):
    import onnxruntime as ort
    import torch
    import zoo_families

    with h5py.File(os.path.join(a.dir, "data.h5"), "r") as f:
        X = f["X"][: a.rows]
        C, S, _ = (int(v) for v in f.attrs["shape"])
    X = X.reshape(len(X), C, S, S).astype(np.float32)
    rows = len(X)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(a.dir, a.family + ".onnx"), opts,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    r_ort = best_rate(rows, a.batch, a.reps, lambda i, j: sess.run(None, {name: X[i:j]}))
    print(f"ort {r_ort:.1f}", flush=True)
    torch.set_num_threads(1)
    model, _ = zoo_families.build(a.family, C, S, a.classes, a.seed + 10 * a.index)
    # channels_last, PyTorch's fastest CPU layout for CNNs; a model whose forward uses .view on a
    # channels_last activation cannot run that way (its users run it in NCHW), so it is timed in NCHW.
    try:
        model = model.to(memory_format=torch.channels_last)
        Xt = torch.from_numpy(X).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            r_torch = best_rate(rows, a.batch, a.reps, lambda i, j: model(Xt[i:j]))
    except RuntimeError as e:
        print(f"bench_zoo: {a.family}: channels_last fails ({str(e).splitlines()[0][:60]}...), timed in NCHW",
              file=sys.stderr)
        model = model.to(memory_format=torch.contiguous_format)
        Xt = torch.from_numpy(X)
        with torch.no_grad():
            r_torch = best_rate(rows, a.batch, a.reps, lambda i, j: model(Xt[i:j]))
    print(f"torch {r_torch:.1f}", flush=True)


def check(a):
    with h5py.File(a.logits, "r") as f:
        got = f["logits"][()]
    with h5py.File(os.path.join(a.dir, "ref.h5"), "r") as f:
        want = f[a.family][: len(got)]
    err = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
    agree = float(np.mean(got.argmax(1) == want.argmax(1)))
    print(f"check {err:.2g} {agree:.4f}")


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("what", choices=("time", "check"))
    ap.add_argument("--family", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--logits")
    a = ap.parse_args()
    if a.what == "time":
        time_family(a)
    else:
        if not a.logits:
            sys.exit("bench_zoo.py check: --logits is required")
        check(a)


if __name__ == "__main__":
    main()
