#!/usr/bin/env python3
# Compares two HDF5 files bit for bit: the same dataset names, shapes, dtypes and bytes, and equal values
# of the named root attributes. Usage: compare_h5.py A B [--attr NAME ...]; exit 0 when identical.
import sys

import h5py
import numpy as np


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def main():
    args = sys.argv[1:]
    attrs = []
    while "--attr" in args:
        i = args.index("--attr")
        attrs.append(args[i + 1])
        del args[i : i + 2]
    if len(args) != 2:
        sys.exit("usage: compare_h5.py A B [--attr NAME ...]")
    a_path, b_path = args
    problems = []
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        da, db = datasets(a), datasets(b)
        if sorted(da) != sorted(db):
            problems.append(f"dataset names differ: {sorted(set(da) ^ set(db))}")
        for name in sorted(set(da) & set(db)):
            x, y = da[name], db[name]
            if x.shape != y.shape or x.dtype != y.dtype:
                problems.append(f"/{name}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
                continue
            xv, yv = x[()], y[()]
            if isinstance(xv, np.ndarray):
                same = xv.tobytes() == yv.tobytes()
            else:
                same = xv == yv
            if not same:
                detail = ""
                if isinstance(xv, np.ndarray) and xv.dtype.kind == "f":
                    diff = np.abs(xv.astype(np.float64) - yv.astype(np.float64))
                    detail = f" (max |diff| {diff.max():.3g}, {int((diff > 0).sum())} of {diff.size} values differ)"
                problems.append(f"/{name}: values differ{detail}")
        for name in attrs:
            if name not in a.attrs or name not in b.attrs:
                problems.append(f"attribute {name} missing")
            elif a.attrs[name] != b.attrs[name]:
                problems.append(f"attribute {name}: {a.attrs[name]!r} vs {b.attrs[name]!r}")
        count = len(da)
    if problems:
        print(f"{a_path} and {b_path} differ:")
        for p in problems:
            print("  " + p)
        sys.exit(1)
    print(f"identical: {a_path} and {b_path} ({count} datasets{', attributes ' + ', '.join(attrs) if attrs else ''})")


if __name__ == "__main__":
    main()
