# Numerical checks for Mimic's ONNX tests. usage:
#   onnx_check.py ref REF.h5 KEY LOGITS.h5 [TOL]     Mimic's /logits (from `mimic label`) vs PyTorch's REF[KEY]
#   onnx_check.py ort MODEL.onnx DATA.h5 LOGITS.h5 [TOL]
#                                                    onnxruntime's output on DATA's rows vs Mimic's /logits
#   onnx_check.py raw MODEL.onnx IMAGES.idx.gz LABELS.idx.gz LOGITS.h5 TOL CORRECT
#                                                    a --raw-input graph on the raw IDX rows ([N, D], 0-255)
#                                                    vs Mimic's /logits, and its correct count vs CORRECT
# Exits non-zero with the largest difference when the tolerance (default 1e-4, relative to max(1, |ref|)) fails.
import gzip
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


def idx(path):
    """An IDX file (gzip) as a numpy array of its element type (u8 for Fashion-MNIST)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[2] != 0x08:
        sys.exit(f"FAIL {path}: element type {raw[2]:#x}, expected unsigned bytes")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def session(model):
    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("FAIL: onnxruntime is not installed for this python (tests/run.sh installs it with pip)")
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    if sess.get_inputs()[0].name != "input" or sess.get_outputs()[0].name != "logits":
        sys.exit(f"FAIL: graph input/output are {sess.get_inputs()[0].name}/{sess.get_outputs()[0].name}")
    return sess


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
    elif mode == "raw":
        model, images, labels, logits, tol, correct = args[:6]
        sess = session(model)
        if len(sess.get_inputs()[0].shape) != 2:
            sys.exit(f"FAIL: a raw-input graph takes [N, D], not {sess.get_inputs()[0].shape}")
        x = idx(images)
        x = x.reshape(x.shape[0], -1).astype(np.float32)  # raw pixels, 0-255
        got = sess.run(None, {"input": x})[0]
        with h5py.File(logits, "r") as f:
            want = f["logits"][...].astype(np.float64)
        compare(f"onnxruntime {model} on raw rows vs Mimic {logits}", got, want, float(tol))
        right = int((got.argmax(axis=1) == idx(labels)).sum())
        if right != int(correct):
            sys.exit(f"FAIL: onnxruntime gets {right} rows right, mimic eval {correct}")
        print(f"ok: {right} of {x.shape[0]} raw rows right, as mimic eval reports")
    else:
        sys.exit("usage: onnx_check.py ref|ort|raw ...")


main()
