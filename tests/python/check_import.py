#!/usr/bin/env python3
"""Checks `mimic data import` output against an independent decoding of the Fashion-MNIST IDX bytes.

Usage: check_import.py OUT_DIR IDX_DIR VAL_ROWS
"""
import gzip
import struct
import sys

import h5py
import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    assert zero == 0 and dtype == 0x08, path
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim :], dtype=np.uint8).reshape(dims)


def main():
    out, idx, val = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tx = read_idx(f"{idx}/train-images-idx3-ubyte.gz").reshape(60000, -1)
    ty = read_idx(f"{idx}/train-labels-idx1-ubyte.gz")
    sx = read_idx(f"{idx}/t10k-images-idx3-ubyte.gz").reshape(10000, -1)
    sy = read_idx(f"{idx}/t10k-labels-idx1-ubyte.gz")
    ntrain = 60000 - val
    expect = {"train": (tx[:ntrain], ty[:ntrain]), "val": (tx[ntrain:], ty[ntrain:]), "test": (sx, sy)}

    raw_train = tx[:ntrain].astype(np.float64) / 255.0
    mean, std = raw_train.mean(), raw_train.std()
    for name, (px, lab) in expect.items():
        with h5py.File(f"{out}/{name}.h5", "r") as f:
            X = f["X"][...]
            y = f["y"][...]
            assert X.dtype == np.float32 and X.shape == (len(lab), 784), (name, X.shape)
            assert y.dtype == np.int32 and np.array_equal(y, lab), f"{name}: labels differ"
            assert tuple(f.attrs["shape"]) == (1, 28, 28), f.attrs["shape"]
            assert int(f.attrs["num_classes"]) == 10
            assert f.attrs["norm"].decode() == "global"
            scale = float(f.attrs["norm_scale"])
            m, s = f["norm/mean"][...], f["norm/std"][...]
            # Statistics come from the training rows only.
            assert np.allclose(m, mean, rtol=1e-5) and np.allclose(s, std, rtol=1e-5), (m[0], mean, s[0], std)
            raw = (X * s + m) / scale
            assert np.abs(raw - px).max() < 1e-3, f"{name}: pixels not recoverable"
            assert np.array_equal(np.rint(raw).astype(np.uint8), px), f"{name}: pixels differ"
            assert len(f.attrs["fingerprint"]) == 16
        print(f"{name}: {len(lab)} rows match the IDX decoding")


if __name__ == "__main__":
    main()
