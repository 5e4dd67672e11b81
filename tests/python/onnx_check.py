# Numerical checks for Mimic's ONNX tests. usage:
#   onnx_check.py ref REF.h5 KEY LOGITS.h5 [TOL]     Mimic's /logits (from `mimic label`) vs PyTorch's REF[KEY]
#   onnx_check.py ort MODEL.onnx DATA.h5 LOGITS.h5 [TOL]
#                                                    onnxruntime's output on DATA's rows vs Mimic's /logits
# Exits non-zero with the largest difference when the tolerance (default 1e-4, relative to max(1, |ref|)) fails.
import sys

import h5py
import numpy as np


def compare(what, got, want, tol):
    if got.shape != want.shape:
        sys.exit(f"FAIL {what}: shape {got.shape} != {want.shape}")
    err = np.abs(got.astype(np.float64) - want) / np.maximum(1.0, np.abs(want))
    worst = float(err.max()) if err.size else 0.0
    if not np.all(np.isfinite(got)) or worst > tol:
        sys.exit(f"FAIL {what}: max relative difference {worst:.3g} > {tol:g}")
    print(f"ok {what}: {got.shape[0]} rows x {got.shape[1]}, max relative difference {worst:.3g} <= {tol:g}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "ref":
        ref, key, logits = args[:3]
        tol = float(args[3]) if len(args) > 3 else 1e-4
        with h5py.File(ref, "r") as f:
            want = f[key][...].astype(np.float64)
        with h5py.File(logits, "r") as f:
            got = f["logits"][...]
        compare(f"{logits} vs PyTorch {key}", got, want, tol)
    elif mode == "ort":
        model, data, logits = args[:3]
        tol = float(args[3]) if len(args) > 3 else 1e-4
        try:
            import onnxruntime as ort
        except ImportError:
            sys.exit("FAIL: onnxruntime is not installed for this python (tests/run.sh installs it with pip)")
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        if inp.name != "input" or sess.get_outputs()[0].name != "logits":
            sys.exit(f"FAIL: graph input/output are {inp.name}/{sess.get_outputs()[0].name}, not input/logits")
        with h5py.File(data, "r") as f:
            X = f["X"][...].astype(np.float32)
            c, h, w = (int(v) for v in f.attrs["shape"])
        x = X.reshape(-1, c, h, w) if len(inp.shape) == 4 else X
        got = sess.run(None, {"input": x})[0]
        with h5py.File(logits, "r") as f:
            want = f["logits"][...].astype(np.float64)
        compare(f"onnxruntime {model} vs Mimic {logits}", got, want, tol)
    else:
        sys.exit("usage: onnx_check.py ref|ort ...")


main()
