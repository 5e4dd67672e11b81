#!/usr/bin/env python3
# Checks --store files against their float32 twin: `same A B` (A stored as uint8 raw pixels, normalised
# here in float32 as Mimic reads it, equals B's /X bit for bit; fingerprints equal), `half A B` (A stored
# as IEEE half equals B rounded to half, within half precision of it).
import sys

import h5py
import numpy as np


def load(path):
    with h5py.File(path, "r") as f:
        a = dict(f.attrs)
        return f["X"][...], a, f["norm/mean"][...], f["norm/std"][...]


def same(a_path, b_path):
    X, attrs, mean, std = load(a_path)
    Y, battrs, _, _ = load(b_path)
    assert X.dtype == np.uint8, f"{a_path}: /X is {X.dtype}, not uint8"
    assert attrs["store"].decode() == "uint8" and attrs["mimic_format"].decode() == "mimic-dataset-2"
    assert "store" not in battrs and battrs["mimic_format"].decode() == "mimic-dataset-1"
    scale = np.float32(attrs["norm_scale"])
    Z = (X.astype(np.float32) * scale - mean.astype(np.float32)) / std.astype(np.float32)
    assert Z.dtype == np.float32
    assert np.array_equal(Z.view(np.uint32), Y.view(np.uint32)), f"{a_path}: rows differ from {b_path}"
    assert attrs["fingerprint"] == battrs["fingerprint"], "fingerprints differ"
    print(f"ok: {a_path} (uint8, {X.nbytes} bytes) = {b_path} ({Y.nbytes} bytes) bit for bit")


def half(a_path, b_path):
    X, attrs, _, _ = load(a_path)
    Y, _, _, _ = load(b_path)
    assert X.dtype == np.float16, f"{a_path}: /X is {X.dtype}, not float16"
    assert attrs["store"].decode() == "fp16"
    assert np.array_equal(X.view(np.uint16), Y.astype(np.float16).view(np.uint16)), "not round-to-nearest-even"
    err = np.abs(X.astype(np.float32) - Y)
    assert np.all(err <= np.abs(Y) * 2.0**-11 + 2.0**-25), f"{a_path}: error {err.max()} beyond half precision"
    print(f"ok: {a_path} (fp16) within half precision of {b_path}, largest error {err.max():.3g}")


if __name__ == "__main__":
    {"same": same, "half": half}[sys.argv[1]](*sys.argv[2:])
