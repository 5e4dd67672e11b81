#!/usr/bin/env python3
# Content digest of a Mimic HDF5 file: every dataset's name, dtype, shape and bytes and every attribute
# except those that record when, where or by which build a file was made. Usage: h5digest.py FILE...
import hashlib
import sys

import h5py
import numpy as np

# Attributes that legitimately differ between two runs of the same command.
VOLATILE = {"created", "mimic_version", "git_hash", "host", "command", "wall_seconds", "seconds"}


def feed(h, name, value):
    h.update(name.encode())
    if isinstance(value, np.ndarray):
        h.update(str(value.dtype).encode() + str(value.shape).encode() + value.tobytes())
    else:
        h.update(repr(value).encode())


def digest(path):
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        items = []
        f.visititems(lambda name, obj: items.append((name, obj)))
        for name, obj in [("/", f)] + sorted(items, key=lambda t: t[0]):
            for a in sorted(obj.attrs):
                if a not in VOLATILE:
                    feed(h, f"{name}@{a}", np.asarray(obj.attrs[a]))
            if isinstance(obj, h5py.Dataset):
                feed(h, name, np.asarray(obj[()]))
    return h.hexdigest()[:16]


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(digest(p))
