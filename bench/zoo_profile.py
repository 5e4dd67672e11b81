#!/usr/bin/python3
# Time shares by kind for the zoo families: onnxruntime's per-node profile (1 intra-op thread) and the
# symbols of a `perf report` of `mimic label`, grouped into the same kinds. See bench/README.md, "Zoo".
"""Usage:
  zoo_profile.py ort --family NAME --dir DIR [--rows N] [--batch B]
      onnxruntime's profile of DIR/NAME.onnx over the first N rows of DIR/data.h5 in batches of B (the
      first pass dropped): node time by op type, convs split by kernel, stride and groups
  zoo_profile.py perf REPORT.txt
      Mimic's share by kind from `perf report --comm mimic --no-children --sort symbol -g none` output
      (renormalised to the mimic process' samples)"""
import argparse
import collections
import json
import os
import re

KINDS = [  # Mimic symbols, first match wins
    ("dense conv", r"filter_tile|forward_tile|filter_pass|forward_pass|direct_conv_forward|conv2d_forward|im2col|sgemm"),
    ("depthwise conv", r"depthwise"),
    ("pooling", r"pool"),
    ("layout copies", r"pad_planes|channels_last|unpad|unpack|phase_planes|memmove|copy_row"),
    ("joins, gates, activations, BN", r"concat|copy_columns|gate|activation|expf|sigmoid|batchnorm|relu|add_|affine"),
    ("kernel: page faults, allocation, start-up", r"^\[k\]|memset"),
    ("start-up, model load, HDF5, row hash", r"io::|H5|hash|_dl_|mpi|hwloc|pmix|ompi|opal"),
]


def conv_kind(args):
    """'dense 3x3 s1', 'depthwise 5x5 s2', 'stem 7x7 s2', ... from a Conv node's shapes."""
    x = list(args["input_type_shape"][0].values())[0]
    w = list(args["input_type_shape"][1].values())[0]
    y = list(args["output_type_shape"][0].values())[0]
    k, groups = w[2], x[1] // w[1] if w[1] else 1
    kind = "stem" if x[1] == 3 else "depthwise" if groups > 1 and groups == w[0] else \
        "grouped" if groups > 1 else "dense"
    return f"{kind} {k}x{k} s{2 if x[2] > y[2] else 1}"


def ort_profile(a):
    import h5py
    import numpy as np
    import onnxruntime as ort

    with h5py.File(os.path.join(a.dir, "data.h5"), "r") as f:
        X = f["X"][: a.rows]
        C, S, _ = (int(v) for v in f.attrs["shape"])
    X = X.reshape(len(X), C, S, S).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(a.dir, f"ort-profile-{a.family}")
    sess = ort.InferenceSession(os.path.join(a.dir, a.family + ".onnx"), opts,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: X[: a.batch]})  # warm-up, dropped below
    for i in range(0, len(X), a.batch):
        sess.run(None, {name: X[i:i + a.batch]})
    events = json.load(open(sess.end_profiling()))
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    t0 = runs[1]["ts"]
    kinds = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < t0:
            continue
        op = e["args"].get("op_name", "?")
        kinds[conv_kind(e["args"]) if "Conv" in op else op] += e["dur"]
    run_s = sum(e["dur"] for e in runs[1:]) / 1e6
    total = sum(kinds.values())
    print(f"{a.family}: onnxruntime {len(X) / run_s:.0f} rows/s under profiling, batch {a.batch}")
    for k, v in kinds.most_common():
        print(f"  {k:30s} {100 * v / total:5.1f}%  {v / len(X):8.1f} us/row")


def perf_shares(path):
    shares = collections.Counter()
    for line in open(path):
        m = re.match(r"\s*([\d.]+)%\s+(\[.\])\s+(.*)", line)
        if not m:
            continue
        sym = m.group(2) + " " + m.group(3)
        kind = next((k for k, rx in KINDS if re.search(rx, sym, re.I)), "other")
        shares[kind] += float(m.group(1))
    total = sum(shares.values())  # --comm mimic: percentages of all samples, mpirun's included
    for k, v in shares.most_common():
        print(f"  {k:45s} {100 * v / total:5.1f}%")


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("what", choices=("ort", "perf"))
    ap.add_argument("report", nargs="?")
    ap.add_argument("--family")
    ap.add_argument("--dir")
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    if a.what == "ort":
        if not (a.family and a.dir):
            ap.error("ort: --family and --dir are required")
        ort_profile(a)
    else:
        if not a.report:
            ap.error("perf: the perf report file is required")
        perf_shares(a.report)


if __name__ == "__main__":
    main()
