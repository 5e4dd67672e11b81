# Numerical checks for Mimic's ONNX tests. usage:
#   onnx_check.py ref REF.h5 KEY LOGITS.h5 [TOL]     Mimic's /logits (from `mimic label`) vs PyTorch's REF[KEY]
#                                                    (KEY mean:a,b: the mean of REF[a] and REF[b])
#   onnx_check.py ort MODEL.onnx DATA.h5 LOGITS.h5 [TOL]
#                                                    onnxruntime's output on DATA's rows vs Mimic's /logits
#   onnx_check.py raw MODEL.onnx IMAGES.idx.gz LABELS.idx.gz LOGITS.h5 TOL CORRECT
#                                                    a --raw-input graph on the raw IDX rows ([N, D], 0-255)
#                                                    vs Mimic's /logits, and its correct count vs CORRECT
#   onnx_check.py unfolded MODEL.h5 DATA.h5 LOGITS.h5 TOL CORRECT
#                                                    MODEL's unfolded chain (every bn kept, running statistics)
#                                                    in PyTorch float64 on DATA's rows vs Mimic's /logits, and
#                                                    the logits' correct count vs CORRECT (from mimic eval)
#   onnx_check.py bn_nodes MODEL.onnx N              MODEL holds N BatchNormalization nodes
# Exits non-zero with the largest difference when the tolerance (default 1e-4, relative to max(1, |ref|)) fails,
# or when the largest logit of a row is another class.
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
    rows = np.flatnonzero(got.argmax(axis=1) != want.argmax(axis=1)) if got.ndim == 2 else []
    if len(rows):
        sys.exit(f"FAIL {what}: the largest logit is another class in {len(rows)} rows (first: row {rows[0]})")
    print(f"ok {what}: {got.shape[0]} rows x {got.shape[1]}, max relative difference {worst:.3g} <= {tol:g}, "
          "argmax equal")


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


def unfolded_logits(model, x):
    """The model file's chain (conv, pool, bn, relu, flatten, dense tokens) in eval mode, float64."""
    import re

    import torch
    import torch.nn.functional as F

    with h5py.File(model, "r") as f:
        spec = f.attrs["spec"]
        spec = spec.decode() if isinstance(spec, bytes) else str(spec)
        t = {k: torch.from_numpy(f["weights"][k][...].astype(np.float64)) for k in f["weights"]}
        if "state" in f:
            t.update({k: torch.from_numpy(f["state"][k][...].astype(np.float64)) for k in f["state"]})
    h = torch.from_numpy(x.astype(np.float64))
    for i, tok in enumerate(s.strip() for s in spec.split(",")):
        p = lambda n: t[f"layer{i}.{tok.split(':')[0]}.{n}"]
        conv = re.fullmatch(r"conv:(\d+)x(\d+)(?:s(\d+))?(?:p(\d+))?", tok)
        pool = re.fullmatch(r"pool:(\d+)(?:s(\d+))?(?:p(\d+))?", tok)
        if conv:
            k = int(conv[2])
            pad = int(conv[4]) if conv[4] else k // 2
            h = F.conv2d(h, p("W").permute(3, 0, 1, 2), p("b"), stride=int(conv[3] or 1), padding=pad)
        elif pool:
            k = int(pool[1])
            h = F.max_pool2d(h, k, int(pool[2] or k), int(pool[3] or 0))
        elif tok == "bn":
            h = F.batch_norm(h, p("running_mean"), p("running_var"), p("W"), p("b"), False, 0.0, 1e-5)
        elif tok == "relu":
            h = F.relu(h)
        elif tok == "flatten":
            h = h.flatten(1)
        elif tok.startswith("dense:"):
            h = h.flatten(1) @ p("W") + p("b")
        else:
            sys.exit(f"FAIL {model}: token '{tok}' is not supported by this check")
    return h.numpy()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "ref":
        ref, key, logits = args[:3]
        tol = float(args[3]) if len(args) > 3 else 1e-4
        with h5py.File(ref, "r") as f:  # KEY "mean:a,b,c": the mean of REF[a], REF[b], REF[c]
            keys = key[5:].split(",") if key.startswith("mean:") else [key]
            want = np.mean([f[k][...].astype(np.float64) for k in keys], axis=0)
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
    elif mode == "unfolded":
        model, data, logits, tol, correct = args[:5]
        with h5py.File(data, "r") as f:
            X = f["X"][...].astype(np.float32)
            y = f["y"][...]
            c, h, w = (int(v) for v in f.attrs["shape"])
        want = unfolded_logits(model, X.reshape(-1, c, h, w))
        with h5py.File(logits, "r") as f:
            got = f["logits"][...]
        compare(f"Mimic {logits} vs the unfolded {model} in PyTorch", got, want, float(tol))
        right = int((got.argmax(axis=1) == y).sum())
        if right != int(correct):
            sys.exit(f"FAIL: the logits get {right} rows right, mimic eval {correct}")
        print(f"ok: {right} of {X.shape[0]} rows right, as mimic eval reports")
    elif mode == "bn_nodes":
        import onnx

        ops = [n.op_type for n in onnx.load(args[0]).graph.node]
        if ops.count("BatchNormalization") != int(args[1]):
            sys.exit(f"FAIL {args[0]}: {ops.count('BatchNormalization')} BatchNormalization nodes, not {args[1]}: {ops}")
        print(f"ok {args[0]}: {args[1]} BatchNormalization nodes")
    else:
        sys.exit("usage: onnx_check.py ref|ort|raw|unfolded|bn_nodes ...")


main()
