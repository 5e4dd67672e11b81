# Damages a Mimic model file for the bad-input tests: `missing NAME` deletes weight NAME, `shape NAME`
# replaces it by a tensor of the transposed shape; `weights A B` exits 0 iff A and B hold identical weights.
import sys

import h5py
import numpy as np

cmd = sys.argv[1]
if cmd == "weights":
    with h5py.File(sys.argv[2], "r") as a, h5py.File(sys.argv[3], "r") as b:
        names = sorted(a["weights"].keys())
        if names != sorted(b["weights"].keys()):
            sys.exit("different weight names")
        for n in names:
            if not np.array_equal(a["weights"][n][()], b["weights"][n][()]):
                sys.exit("weight %s differs (max |diff| %g)" % (n, np.abs(a["weights"][n][()] - b["weights"][n][()]).max()))
    sys.exit(0)
path, name = sys.argv[2], sys.argv[3]
with h5py.File(path, "r+") as f:
    w = f["weights"][name][()]
    del f["weights"][name]
    if cmd == "shape":
        f["weights"].create_dataset(name, data=np.ascontiguousarray(w.T) if w.ndim == 2 else np.concatenate([w, w]))
