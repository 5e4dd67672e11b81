# Damages or builds inputs for the fault-injection tests (tests/fault/fault.sh), one command per call:
#   set FILE DATASET ROW COL VALUE   set one value of a 1-D or 2-D dataset (nan, inf, or a number)
#   attr FILE NAME VALUE             set a root attribute, keeping its type (a number, or a string)
#   delattr FILE NAME                remove a root attribute
#   float64 FILE                     store /X as float64 (and /y as int64)
#   empty FILE OUT                   a copy of FILE's attributes with zero rows
#   huge FILE ROWS                   a dataset of ROWS rows (36 features, 4 classes) that takes no space: its
#                                    chunks are never written (reads give zeros)
#   widen FILE                       /logits gains one column, the attributes are left as they were
#   idx DIR ROWS CLASSES [ROW LABEL] plain IDX image and label files (train-*, t10k-*), one stray label
import os
import sys

import h5py
import numpy as np

cmd = sys.argv[1]
if cmd == "set":
    path, name, row, col, value = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    with h5py.File(path, "r+") as f:
        d = f[name]
        if d.ndim == 1:
            d[row] = value
        else:
            d[row, col] = value
elif cmd == "attr":
    with h5py.File(sys.argv[2], "r+") as f:
        old = f.attrs[sys.argv[3]]
        if isinstance(old, (bytes, str)):
            f.attrs[sys.argv[3]] = np.bytes_(sys.argv[4])
        else:
            f.attrs[sys.argv[3]] = np.asarray(float(sys.argv[4])).astype(np.asarray(old).dtype)
elif cmd == "delattr":
    with h5py.File(sys.argv[2], "r+") as f:
        del f.attrs[sys.argv[3]]
elif cmd == "float64":
    with h5py.File(sys.argv[2], "r+") as f:
        X, y = f["X"][()], f["y"][()] if "y" in f else None
        del f["X"]
        f.create_dataset("X", data=X.astype(np.float64))
        if y is not None:
            del f["y"]
            f.create_dataset("y", data=y.astype(np.int64))
elif cmd == "empty":
    with h5py.File(sys.argv[2], "r") as a, h5py.File(sys.argv[3], "w") as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        b.create_dataset("X", shape=(0, a["X"].shape[1]), dtype=np.float32)
        b.create_dataset("y", shape=(0,), dtype=np.int32)
elif cmd == "huge":
    with h5py.File(sys.argv[2], "w") as f:
        rows = int(sys.argv[3])
        f.create_dataset("X", shape=(rows, 36), dtype=np.float32, chunks=(1024, 36))
        f.create_dataset("y", shape=(rows,), dtype=np.int32, chunks=(65536,))
        f.attrs["mimic_format"] = np.bytes_("mimic-dataset-1")
        f.attrs["shape"] = np.array([1, 6, 6], dtype=np.int64)
        f.attrs["num_classes"] = np.int64(4)
elif cmd == "widen":
    with h5py.File(sys.argv[2], "r+") as f:
        z = f["logits"][()]
        del f["logits"]
        f.create_dataset("logits", data=np.concatenate([z, z[:, :1]], axis=1))
elif cmd == "idx":
    out, n, classes = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(7)
    os.makedirs(out, exist_ok=True)
    for prefix, rows in (("train", n), ("t10k", n // 2)):
        images = rng.integers(0, 256, size=(rows, 6, 6), dtype=np.uint8)
        labels = (np.arange(rows) % classes).astype(np.uint8)
        if prefix == "train" and len(sys.argv) > 6:
            labels[int(sys.argv[5])] = int(sys.argv[6])
        with open(os.path.join(out, prefix + "-images"), "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + np.array([rows, 6, 6], dtype=">u4").tobytes() + images.tobytes())
        with open(os.path.join(out, prefix + "-labels"), "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + np.array([rows], dtype=">u4").tobytes() + labels.tobytes())
else:
    sys.exit("unknown command " + cmd)
