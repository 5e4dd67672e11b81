# Writes a small learnable dataset file in Mimic's dataset format (mimic-dataset-1) for the CLI tests of
# `mimic train` / `mimic eval`: x ~ N(0, 1), label = argmax of a fixed linear map.
# usage: tiny_dataset.py OUT.h5 ROWS SEED C H W CLASSES
import sys

import h5py
import numpy as np

out, n, seed, c, h, w, classes = sys.argv[1], *map(int, sys.argv[2:8])
d = c * h * w
rng = np.random.default_rng(seed)
X = rng.standard_normal((n, d)).astype(np.float32)
W = np.sin(1.0 + 0.7 * np.arange(d)[:, None] + 2.1 * np.arange(classes)[None, :])
y = np.argmax(X.astype(np.float64) @ W, axis=1).astype(np.int32)
with h5py.File(out, "w") as f:
    f.create_dataset("X", data=X)
    f.create_dataset("y", data=y)
    f.attrs["mimic_format"] = np.bytes_("mimic-dataset-1")
    f.attrs["shape"] = np.array([c, h, w], dtype=np.int64)
    f.attrs["num_classes"] = np.int64(classes)
    f.attrs["source"] = np.bytes_("tiny_dataset.py seed %d" % seed)
    f.attrs["norm"] = np.bytes_("none")
    f.attrs["norm_scale"] = np.float64(1.0)
